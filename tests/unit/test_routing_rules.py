"""Which node answers a request for a code: here, elsewhere by the directory, or here as an
unknown code (tracecore.usecases.routing, against in-memory holdings and directory)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tracecore.errors import Unavailable
from tracecore.usecases.routing import Elsewhere, product_of, route_product, route_tenant

HERE_GTIN, THERE_GTIN, NOBODYS_GTIN = "09501101530003", "06901234567892", "04012345678901"


@dataclass
class Node:
    tenants: dict[str, set[str]] = field(default_factory=lambda: {"demo": {HERE_GTIN}})

    def owners(self, product_id: str) -> Sequence[str]:
        return [t for t, products in self.tenants.items() if product_id in products]

    def holds(self, tenant: str) -> bool:
        return tenant in self.tenants


@dataclass
class Directory:
    products: dict[str, str] = field(default_factory=lambda: {HERE_GTIN: "demo",
                                                               THERE_GTIN: "acme"})
    doors: dict[str, list[str]] = field(default_factory=lambda: {
        "demo": ["https://a.example"], "acme": ["https://b.example", "https://c.example"]})

    def tenant_of(self, product_id: str) -> str:
        return self.products.get(product_id, "")

    def front_doors(self, tenant: str) -> Sequence[str]:
        return self.doors.get(tenant, [])


def test_a_product_held_here_is_answered_here() -> None:
    """A product a tenant on this node registered never leaves the node."""
    assert route_product(Node(), Directory(), HERE_GTIN) is None


def test_a_product_of_a_tenant_held_elsewhere_goes_to_its_front_doors() -> None:
    """The directory's tenant of the product, with every front door holding it, in order."""
    assert route_product(Node(), Directory(), THERE_GTIN) == Elsewhere(
        "acme", ("https://b.example", "https://c.example"))


def test_a_product_nobody_registered_is_answered_here() -> None:
    """Unknown everywhere: this node answers, as it answers any unknown code."""
    assert route_product(Node(), Directory(), NOBODYS_GTIN) is None
    assert route_product(Node(), Directory(), "") is None


def test_a_product_of_a_tenant_held_here_but_not_yet_copied_is_answered_here() -> None:
    """A replica that holds the tenant but has not applied the product yet answers itself
    (the copy catches up) rather than sending the client on."""
    node = Node({"demo": {HERE_GTIN}, "acme": set()})
    assert route_product(node, Directory(), THERE_GTIN) is None


def test_a_tenant_without_a_reachable_front_door_is_unavailable_not_unknown() -> None:
    """A product the directory knows, whose tenant no front door announced: retry, never
    'counterfeit'."""
    directory = Directory(doors={})
    with pytest.raises(Unavailable):
        route_product(Node(), directory, THERE_GTIN)


def test_a_credentials_tenant_is_routed_when_held_elsewhere() -> None:
    """LVMS connectivity: routed by the token's tenant; held here or unknown stays here."""
    assert route_tenant(Node(), Directory(), "acme") == Elsewhere(
        "acme", ("https://b.example", "https://c.example"))
    assert route_tenant(Node(), Directory(), "demo") is None
    assert route_tenant(Node(), Directory(), "nobody") is None


@pytest.mark.parametrize("text", [
    f"(01){THERE_GTIN}(21)ABCDEFGHJK23",
    f"https://id.example.com/01/{THERE_GTIN}/21/ABCDEFGHJK23",
    f"https://id.example.com/01/{THERE_GTIN}",
    f"(01){THERE_GTIN}(10)L1",
])
def test_the_product_of_any_printed_form(text: str) -> None:
    """Element strings, Digital Links and a product without serial all name the GTIN."""
    assert product_of(text) == THERE_GTIN


def test_the_product_of_an_nmpa_code_is_its_drug_identifier() -> None:
    """The first 7 digits of a 20-digit NMPA code."""
    assert product_of("81234560000000000000") == "8123456"


def test_unreadable_text_names_no_product() -> None:
    """Text that is no code stays here, where the page says why it cannot be read."""
    assert product_of("hello") == ""
    assert product_of("(01)123") == ""
