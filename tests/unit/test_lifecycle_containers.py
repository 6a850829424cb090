"""Lifecycle events applied to a real ledger: aggregation into containers, and custody as
containers are shipped and received."""

from __future__ import annotations

import pytest

from tests.lifecycle_world import (
    BUNDLE,
    CASE,
    DAY,
    PALLET,
    PARTIES,
    T0,
    UNIT,
    K,
    S,
    World,
    reasons,
)
from tracecore.codes import Code
from tracecore.status import Status

# -- aggregation -------------------------------------------------------------------------------


def test_units_bundles_cases_and_pallets_nest_four_levels_deep(_world: World) -> None:
    """unit -> bundle -> case -> pallet: each pack records its container and each container its
    contents."""
    units = _world.active(2)
    (bundle,) = _world.active(1, BUNDLE)
    (case,) = _world.active(1, CASE)
    (pallet,) = _world.active(1, PALLET)
    _world.ok(K.AGGREGATE, units, parent=bundle)
    _world.ok(K.AGGREGATE, [bundle], parent=case)
    _world.ok(K.AGGREGATE, [case], parent=pallet)
    assert [_world.parent(c) for c in [*units, bundle, case, pallet]] == [
        bundle, bundle, case, pallet, None]
    assert _world.children(bundle) == set(units)
    assert _world.children(pallet) == {case}


@pytest.mark.parametrize(("child_level", "parent_level"),
                         [(CASE, CASE), (PALLET, CASE), (CASE, UNIT), (UNIT, UNIT)])
def test_a_pack_goes_only_into_a_container_of_a_higher_packaging_level(
    _world: World, child_level: int, parent_level: int
) -> None:
    """A case cannot go into a case or a unit, a pallet not into a case."""
    (child,) = _world.active(1, child_level)
    (parent,) = _world.active(1, parent_level)
    result = _world.do(K.AGGREGATE, [child], parent=parent)
    assert not result.applied
    assert f"packaging level {child_level} cannot go into level {parent_level}" in reasons(result)
    assert _world.parent(child) is None


def test_a_pack_in_one_container_cannot_be_packed_into_another(_world: World) -> None:
    """A unit already in a case is refused by a second case until it is taken out."""
    (unit,) = _world.active(1)
    first, second = _world.active(2, CASE)
    _world.ok(K.AGGREGATE, [unit], parent=first)
    result = _world.do(K.AGGREGATE, [unit], parent=second)
    assert not result.applied
    assert "already in a container" in reasons(result)
    assert _world.parent(unit) == first
    assert _world.children(second) == set()


@pytest.mark.parametrize("status", [S.ISSUED, S.DISPENSED, S.DESTROYED], ids=lambda s: s.name)
def test_only_active_containers_accept_packs(_world: World, status: Status) -> None:
    """A container that is not ACTIVE (not commissioned, dispensed, destroyed) takes no packs."""
    (unit,) = _world.active(1)
    (case,) = _world.issued(1, CASE)
    if status is not S.ISSUED:
        _world.ok(K.COMMISSION, [case], party_id="PHARM")
        if status is S.DESTROYED:
            _world.ok(K.DESTROY, [case])
        else:
            _world.ok(K.DECOMMISSION, [case], target=status)
    result = _world.do(K.AGGREGATE, [unit], parent=case)
    assert not result.applied
    assert f"parent container is {status.name}" in reasons(result)


def test_a_container_cannot_contain_itself_or_its_own_container(_world: World) -> None:
    """No cycles: a case cannot go into itself, a pallet not into the case inside it."""
    (case,) = _world.active(1, CASE)
    (pallet,) = _world.active(1, PALLET)
    _world.ok(K.AGGREGATE, [case], parent=pallet)
    # Levels alone would refuse these; force levels so the cycle check itself is exercised.
    _world.force(pallet, level=2)
    assert "itself" in reasons(_world.do(K.AGGREGATE, [case], parent=case))
    result = _world.do(K.AGGREGATE, [pallet], parent=case)
    assert not result.applied
    assert "the parent is inside this pack" in reasons(result)


def test_disaggregating_named_children_takes_out_only_those(_world: World) -> None:
    """Taking two units out of a case leaves the third inside."""
    units = _world.active(3)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.ok(K.DISAGGREGATE, units[:2], parent=case)
    assert _world.children(case) == {units[2]}
    assert [_world.parent(u) for u in units] == [None, None, case]


def test_disaggregating_with_no_children_named_empties_the_container(_world: World) -> None:
    """A disaggregation naming no children takes everything out and journals each of them."""
    units = _world.active(3)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    result = _world.ok(K.DISAGGREGATE, [], parent=case)
    assert _world.children(case) == set()
    assert {_world.parent(u) for u in units} == {None}
    assert result.changed == 4
    recorded = _world.journal()[-1]
    assert sorted(recorded.codes) == sorted(u.key() for u in units)


def test_disaggregating_a_pack_from_a_container_it_is_not_in_is_refused(_world: World) -> None:
    """Naming the wrong container refuses the disaggregation."""
    (unit,) = _world.active(1)
    first, second = _world.active(2, CASE)
    _world.ok(K.AGGREGATE, [unit], parent=first)
    result = _world.do(K.DISAGGREGATE, [unit], parent=second)
    assert not result.applied
    assert "not in that container" in reasons(result)
    assert _world.parent(unit) == first


def test_a_pack_inside_a_container_cannot_be_shipped_alone(_world: World) -> None:
    """Shipping a unit that is packed in a case is refused: ship the case or unpack first."""
    (unit,) = _world.active(1)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, [unit], parent=case)
    result = _world.do(K.SHIP, [unit], party_id="PLANT", destination="DIST")
    assert not result.applied
    assert "inside a container" in reasons(result)
    assert not _world.record(unit).in_transit


def test_a_pack_in_transit_cannot_be_packed_into_a_container(_world: World) -> None:
    """A unit shipped to the distributor cannot be aggregated into a case at the plant."""
    (unit,) = _world.active(1)
    (case,) = _world.active(1, CASE)
    _world.ok(K.SHIP, [unit], party_id="PLANT", destination="DIST")
    result = _world.do(K.AGGREGATE, [unit], parent=case, party_id="PLANT")
    assert not result.applied
    assert "in transit" in reasons(result)
    assert _world.parent(unit) is None


def test_a_pack_dispensed_from_an_opened_case_leaves_the_case(_world: World) -> None:
    """A unit sold from a case is no longer in it, so shipping the case does not move it."""
    units = _world.active(2)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.ok(K.DECOMMISSION, units[:1], party_id="PLANT", target=S.DISPENSED)
    assert (_world.parent(units[0]), _world.children(case)) == (None, {units[1]})
    _world.ok(K.SHIP, [case], party_id="PLANT", destination="DIST")
    assert not _world.record(units[0]).in_transit
    assert _world.record(units[1]).in_transit


def test_exporting_a_case_exports_every_pack_inside(_world: World) -> None:
    """An export decommissions the case and all it holds; the packs stay packed in it."""
    units = _world.active(3)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    result = _world.ok(K.DECOMMISSION, [case], party_id="PLANT", target=S.EXPORTED)
    assert result.changed == 4
    assert {_world.status(c) for c in [*units, case]} == {S.EXPORTED}
    assert _world.children(case) == set(units)


def test_exporting_a_case_leaves_its_already_dispensed_packs_as_they_are(
    _world: World,
) -> None:
    """Packs inside that are no longer ACTIVE keep their status when their case is exported."""
    units = _world.active(2)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.force(units[0], status=S.LOCKED)
    result = _world.ok(K.DECOMMISSION, [case], party_id="PLANT", target=S.EXPORTED)
    assert result.changed == 2
    assert [_world.status(u) for u in units] == [S.LOCKED, S.EXPORTED]


def test_undoing_the_export_of_a_case_puts_its_packs_back_on_the_market(
    _world: World,
) -> None:
    """Undo of an exported case makes the case and the packs exported with it ACTIVE again."""
    units = _world.active(3)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.ok(K.DECOMMISSION, [case], party_id="PLANT", target=S.EXPORTED)
    _world.ok(K.UNDO, [case], party_id="PLANT", when_ms=T0 + DAY)
    assert {_world.status(c) for c in [*units, case]} == {S.ACTIVE}


# -- custody: ship and receive -----------------------------------------------------------------


def _pallet_of_two_cases(world: World) -> tuple[Code, list[Code], list[Code]]:
    """A pallet at PLANT holding two cases of three units each."""
    units = world.active(6)
    cases = world.active(2, CASE)
    (pallet,) = world.active(1, PALLET)
    world.ok(K.AGGREGATE, units[:3], parent=cases[0])
    world.ok(K.AGGREGATE, units[3:], parent=cases[1])
    world.ok(K.AGGREGATE, cases, parent=pallet)
    return pallet, cases, units


def test_shipping_a_pallet_moves_every_pack_inside_it(_world: World) -> None:
    """Each case and unit on a shipped pallet is in transit and addressed to the destination."""
    pallet, cases, units = _pallet_of_two_cases(_world)
    result = _world.ok(K.SHIP, [pallet], party_id="PLANT", destination="DIST")
    assert result.changed == 9
    for code in [pallet, *cases, *units]:
        assert _world.record(code).in_transit, code
        assert _world.holder(code) == "DIST", code
        assert _world.status(code) is S.ACTIVE


def test_receiving_a_pallet_lands_every_pack_inside_it_at_the_receiver(_world: World) -> None:
    """On receipt each pack leaves transit, is held by the receiver and is in its region."""
    pallet, cases, units = _pallet_of_two_cases(_world)
    _world.ok(K.SHIP, [pallet], party_id="PLANT", destination="DIST")
    result = _world.ok(K.RECEIVE, [pallet], party_id="DIST")
    assert result.notes == []
    for code in [pallet, *cases, *units]:
        record = _world.record(code)
        assert not record.in_transit
        assert (_world.holder(code), f"{record.region:06d}") == ("DIST", PARTIES["DIST"])


def test_a_receipt_by_a_party_other_than_the_addressee_is_applied_with_a_note(
    _world: World,
) -> None:
    """A pallet addressed to DIST but received by PHARM is PHARM's, and the answer says so."""
    pallet, _, units = _pallet_of_two_cases(_world)
    _world.ok(K.SHIP, [pallet], party_id="PLANT", destination="DIST")
    result = _world.ok(K.RECEIVE, [pallet], party_id="PHARM")
    assert result.notes == [f"{pallet.text()} was shipped to DIST but received by PHARM"]
    assert {_world.holder(c) for c in [pallet, *units]} == {"PHARM"}


def test_receiving_a_pack_that_is_not_in_transit_is_refused(_world: World) -> None:
    """A receipt of something nobody shipped is refused and changes nothing."""
    (unit,) = _world.active(1)
    before = _world.raw(unit)
    result = _world.do(K.RECEIVE, [unit], party_id="DIST")
    assert not result.applied
    assert "not in transit" in reasons(result)
    assert _world.raw(unit) == before


def test_a_pack_in_transit_cannot_be_shipped_again_or_dispensed(_world: World) -> None:
    """While on its way, a unit can be neither re-shipped nor decommissioned."""
    (unit,) = _world.active(1)
    _world.ok(K.SHIP, [unit], party_id="PLANT", destination="DIST")
    assert "already in transit" in reasons(
        _world.do(K.SHIP, [unit], party_id="DIST", destination="PHARM"))
    assert "in transit" in reasons(
        _world.do(K.DECOMMISSION, [unit], party_id="DIST", target=S.DISPENSED))


def test_only_the_holder_can_ship_a_pack(_world: World) -> None:
    """A pack held by the plant cannot be shipped by the distributor."""
    (unit,) = _world.active(1, party="PLANT")
    result = _world.do(K.SHIP, [unit], party_id="DIST", destination="PHARM")
    assert not result.applied
    assert "is held by PLANT, not DIST" in reasons(result)
