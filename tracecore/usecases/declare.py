"""What each use case declares: the roles that may run it, whether it writes (and so leaves an
audit record), and the scope it acts in. Transports read these declarations; none keeps a
table of its own."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tracecore.credentials import Role

F = TypeVar("F", bound=Callable[..., Any])

ADMIN, LINE, DISTRIBUTOR, PHARMACY, REGULATOR, PUBLIC, OPERATOR = (
    Role.ADMIN, Role.LINE, Role.DISTRIBUTOR, Role.PHARMACY, Role.REGULATOR, Role.PUBLIC,
    Role.OPERATOR)
#: Every role of a tenant that reads its ledger (not the anonymous public).
READERS = frozenset({ADMIN, LINE, DISTRIBUTOR, PHARMACY, REGULATOR})


class Scope(enum.Enum):
    """Where a use case acts."""

    PLATFORM = "platform"
    """Across tenants: the operator's work (creating tenants, taking one offline)."""
    TENANT = "tenant"
    """Within the caller's tenant, whatever party its credential is bound to."""
    PARTY = "party"
    """Within the caller's tenant, as the party its credential is bound to: a party-bound
    credential acts only for that party (``acting_party``)."""


@dataclass(frozen=True, slots=True)
class UseCase:
    """The declaration of one use case."""

    name: str
    """``module.function`` under ``tracecore.usecases``: the name audit records and tests use."""
    roles: frozenset[Role]
    """The roles that may run it; any other role is refused before it starts."""
    writes: bool
    """Whether it changes state: every run of a writing use case leaves one audit record."""
    scope: Scope


#: Every declared use case by name; filled as the use-case modules are imported.
REGISTRY: dict[str, UseCase] = {}


def use_case(*, roles: frozenset[Role] | set[Role], writes: bool, scope: Scope
             ) -> Callable[[F], F]:
    """Declares the decorated function a use case: ``fn.use_case`` is its ``UseCase``."""

    def declare(fn: F) -> F:
        module = fn.__module__.removeprefix("tracecore.usecases.")
        declared = UseCase(f"{module}.{fn.__name__}", frozenset(roles), writes, scope)
        if declared.name in REGISTRY:
            raise ValueError(f"use case {declared.name} is declared twice")
        REGISTRY[declared.name] = declared
        fn.use_case = declared  # type: ignore[attr-defined]
        return fn

    return declare


def declaration(fn: Callable[..., Any]) -> UseCase:
    """The ``UseCase`` a function was declared as (TypeError for a plain function)."""
    declared = getattr(fn, "use_case", None)
    if not isinstance(declared, UseCase):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r} is not a declared use case")
    return declared
