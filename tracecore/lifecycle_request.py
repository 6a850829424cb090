"""What one lifecycle request is (``Request``: events applied together) and what it did
(``Result``, with a ``Failure`` per code left unchanged), as ``tracecore.lifecycle_rules``
applies it and the use cases answer it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tracecore.codes import Code
from tracecore.errors import TraceError
from tracecore.events import Event
from tracecore.oversight import Raised


class Refused(Exception):
    """One code left unchanged by its event, and why (the rest of the event goes on)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Failure:
    """A code left unchanged, and why."""

    event: int
    code: str
    reason: str
    position: int = 0       # the code's place in its event's list
    field: str = ""         # an imported document's JSON path of the problem


@dataclass(slots=True)
class Result:
    """What one request did: whether it was applied, its events' sequence numbers, per-code
    failures, and notes (applied, but worth knowing: a receipt by someone other than the
    addressee)."""

    applied: bool = True
    seqs: list[int] = field(default_factory=list)
    changed: int = 0
    duplicates: int = 0
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: TraceError | None = None     # the request as a whole was refused
    alerts: list[Raised] = field(default_factory=list)  # to store once the request is durable


@dataclass(frozen=True, slots=True)
class Request:
    """Events to apply together, kept whole or dropped whole unless ``best_effort``."""

    events: Sequence[Event]
    best_effort: bool = False
    who: str = ""
    not_signed_here: Callable[[Sequence[Code]], Sequence[Code]] | None = None
    """For a partner's events: which of the given codes no key of this tenant signed. Those the
    ledger does not know are recorded as minted elsewhere on first sight, as ``via`` tells
    (epcis, capture); it is asked only about codes the ledger does not know."""
    via: str = ""
    external_parties: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Party ids a partner named that may be recorded as external parties on first sight:
    (identifier as named, GLN or "")."""
