"""Pack hierarchies: a product's levels and ratios validated, and an aggregation's container
counted against them (in memory, no ledger)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from pharmatrace.v1 import common_pb2 as cpb

from tracecore import masterdata
from tracecore.errors import InvalidArgument
from tracecore.ledger.records import CodeRecord
from tracecore.pack_ratio import pack_ratio
from tracecore.status import Status

UNIT, BUNDLE, CASE, PALLET = (cpb.PACKAGING_LEVEL_UNIT, cpb.PACKAGING_LEVEL_BUNDLE,
                              cpb.PACKAGING_LEVEL_CASE, cpb.PACKAGING_LEVEL_PALLET)
PRODUCT, BARE = 1, 2     # a product with a hierarchy, and one without
HIERARCHY = [cpb.PackLevel(level=BUNDLE, quantity=10), cpb.PackLevel(level=CASE, quantity=12),
             cpb.PackLevel(level=PALLET, quantity=40)]


@dataclass
class Contents:
    """Records and containers in dictionaries."""

    records: dict[bytes, CodeRecord] = field(default_factory=dict)
    inside: dict[bytes, list[bytes]] = field(default_factory=dict)

    def container(self, level: int, kids: int, kid_level: int, *, product: int = PRODUCT,
                  kid_product: int = PRODUCT) -> bytes:
        parent = f"P{len(self.records)}".encode()
        self.records[parent] = CodeRecord(Status.ACTIVE, level, 1, product)
        keys = [f"{parent.decode()}-{i}".encode() for i in range(kids)]
        for key in keys:
            self.records[key] = CodeRecord(Status.ACTIVE, kid_level, 1, kid_product)
        self.inside[parent] = keys
        return parent

    def record(self, key: bytes) -> CodeRecord | None:
        return self.records.get(key)

    def children(self, key: bytes) -> list[bytes]:
        return self.inside.get(key, [])

    def hierarchy(self, product_ref: int) -> Sequence[cpb.PackLevel]:
        return HIERARCHY if product_ref == PRODUCT else []


def test_a_full_case_passes_and_a_short_one_is_refused_naming_the_ratio() -> None:
    """12 bundles make a case; 11 are refused with the rule and the way out (mark it partial)."""
    packs = Contents()
    assert pack_ratio(packs, packs.container(CASE, 12, BUNDLE), partial=False) is None
    short = packs.container(CASE, 11, BUNDLE)
    assert pack_ratio(packs, short, partial=False) == (
        "case holds 12 bundles; 11 given; mark it partial")


def test_a_short_case_marked_partial_passes_but_an_overfull_one_never_does() -> None:
    """Partial allows fewer than the ratio, not more."""
    packs = Contents()
    assert pack_ratio(packs, packs.container(CASE, 5, BUNDLE), partial=True) is None
    assert pack_ratio(packs, packs.container(CASE, 13, BUNDLE), partial=True) == (
        "case holds 12 bundles; 13 given")


def test_the_first_level_holds_units_and_a_pallet_holds_cases() -> None:
    """Each level counts packs of the level below it in the hierarchy."""
    packs = Contents()
    assert pack_ratio(packs, packs.container(BUNDLE, 10, UNIT), partial=False) is None
    assert pack_ratio(packs, packs.container(BUNDLE, 9, UNIT), partial=False) == (
        "bundle holds 10 units; 9 given; mark it partial")
    assert pack_ratio(packs, packs.container(PALLET, 40, CASE), partial=False) is None


def test_packs_of_another_level_in_a_counted_container_are_refused() -> None:
    """Units straight into a case whose hierarchy has bundles break the hierarchy."""
    packs = Contents()
    assert pack_ratio(packs, packs.container(CASE, 12, UNIT), partial=True) == (
        "case holds 12 bundles; 12 of another packaging level given")


def test_a_container_without_a_product_takes_its_contents_hierarchy() -> None:
    """A case coded under a product without a hierarchy is counted by its bundles' product."""
    packs = Contents()
    case = packs.container(CASE, 3, BUNDLE, product=BARE)
    assert pack_ratio(packs, case, partial=False) == (
        "case holds 12 bundles; 3 given; mark it partial")


def test_products_without_a_hierarchy_are_not_counted() -> None:
    """No hierarchy, no ratio: any number goes, as before hierarchies existed."""
    packs = Contents()
    case = packs.container(CASE, 7, UNIT, product=BARE, kid_product=BARE)
    assert pack_ratio(packs, case, partial=False) is None


def _product(*levels: cpb.PackLevel) -> cpb.Product:
    return masterdata.product(cpb.Product(gtin="09501101530003", name="Amoxicillin",
                                          hierarchy=levels))


def test_a_hierarchy_is_stored_canonical_with_each_levels_gtin_padded() -> None:
    """Levels lowest first with quantities; a level's GTIN-13 becomes its GTIN-14."""
    out = _product(cpb.PackLevel(level=BUNDLE, quantity=10),
                   cpb.PackLevel(level=CASE, quantity=12, gtin="9501101530010"))
    assert [(lv.level, lv.quantity, lv.gtin) for lv in out.hierarchy] == [
        (BUNDLE, 10, ""), (CASE, 12, "09501101530010")]


@pytest.mark.parametrize(("levels", "field", "says"), [
    ([cpb.PackLevel(level=CASE, quantity=12), cpb.PackLevel(level=BUNDLE, quantity=10)],
     "product.hierarchy[1].level", "above cases"),
    ([cpb.PackLevel(level=UNIT, quantity=1)], "product.hierarchy[0].level", "above units"),
    ([cpb.PackLevel(level=CASE, quantity=0)], "product.hierarchy[0].quantity", "1 to 100,000"),
    ([cpb.PackLevel(level=CASE, quantity=12, gtin="9501101530011")],
     "product.hierarchy[0].gtin", "check digit"),
])
def test_a_bad_hierarchy_is_refused_naming_the_level(
    levels: list[cpb.PackLevel], field: str, says: str
) -> None:
    """Levels out of order, a unit level, a zero quantity, a bad GTIN: each names its field."""
    with pytest.raises(InvalidArgument) as refused:
        _product(*levels)
    assert refused.value.field == field
    assert says in refused.value.message
