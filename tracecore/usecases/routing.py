"""Which node answers a request: this one when it holds the tenant the code's product (or the
caller's credential) belongs to, else one that holds it, as the replication directory says.

A product no tenant anywhere registered is answered here, the same way as today: a code its
manufacturer never issued. Who is a customer elsewhere is told to nobody either: a request is
only ever sent on to a node that answers it in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tracecore import codes, gs1
from tracecore.errors import ParseError, Unavailable
from tracecore.usecases.declare import PUBLIC, READERS, Scope, use_case


class Directory(Protocol):
    """The replication directory as this node last saw it."""

    def tenant_of(self, product_id: str) -> str:
        """The tenant that registered a GTIN-14 or NMPA drug identifier ("" if none did)."""

    def front_doors(self, tenant: str) -> Sequence[str]:
        """The public base URLs of the front doors of the nodes that hold ``tenant``."""


class Holdings(Protocol):
    """What this node holds."""

    def owners(self, product_id: str) -> Sequence[str]:
        """The tenants here that registered the product."""

    def holds(self, tenant: str) -> bool:
        """Whether a copy of ``tenant`` (writer's or replica's) is here."""


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """Where a request is answered when not here."""

    tenant: str
    base_urls: tuple[str, ...]
    """The front doors holding the tenant, in the directory's order (any of them answers)."""


def product_of(text: str) -> str:
    """The GTIN-14 or NMPA drug identifier a printed code names, in any form ("" when the text
    names none: it is then answered here, which says why it cannot be read)."""
    try:
        return codes.parse(text).code.product
    except ParseError:
        pass
    return gs1.elements_of(text).get("01", "")


@use_case(roles={PUBLIC, *READERS}, writes=False, scope=Scope.TENANT)
def route_product(holdings: Holdings, directory: Directory, product_id: str
                  ) -> Elsewhere | None:
    """None when the product is answered here; else the nodes holding its tenant.
    Unavailable when the directory names the tenant but no node holding it has a front door."""
    if not product_id or holdings.owners(product_id):
        return None
    tenant = directory.tenant_of(product_id)
    if not tenant or holdings.holds(tenant):
        return None
    return _elsewhere(directory, tenant)


@use_case(roles={PUBLIC, *READERS}, writes=False, scope=Scope.TENANT)
def route_tenant(holdings: Holdings, directory: Directory, tenant: str) -> Elsewhere | None:
    """None when ``tenant`` is answered here (held here, or unknown anywhere); else the nodes
    holding it."""
    if not tenant or holdings.holds(tenant) or not directory.front_doors(tenant):
        return None
    return _elsewhere(directory, tenant)


def _elsewhere(directory: Directory, tenant: str) -> Elsewhere:
    doors = tuple(directory.front_doors(tenant))
    if not doors:
        raise Unavailable("no node serving the tenant of this code has a front door reachable "
                          "now: retry in a moment")
    return Elsewhere(tenant, doors)
