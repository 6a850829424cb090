"""Packs inside a container are where the container is, over real gRPC: what a pallet's ship and
receipt do to the packs inside it, as TraceCode, Verify and LocateBatch answer, and what a pack
taken out of it keeps."""

from __future__ import annotations

from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration import test_lifecycle_rpc
from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.test_lifecycle_rpc import _applied, _Site

NORTH_LOT = "LOT-NORTH"
#: A tenant with a product, its batch, four parties and the Lifecycle and Trace stubs.
site = test_lifecycle_rpc._site


def _pallet(site: _Site, cases: int = 2, units: int = 3) -> tuple[str, list[str], list[list[str]]]:
    """A pallet of ``cases`` cases of ``units`` units, commissioned and packed at PLANT."""
    (pallet,) = site.codes(1, cpb.PACKAGING_LEVEL_PALLET)
    boxes = site.codes(cases, cpb.PACKAGING_LEVEL_CASE)
    inside = [site.codes(units) for _ in boxes]
    _applied(site.commission([pallet, *boxes, *(u for case in inside for u in case)]))
    for box, mine in zip(boxes, inside, strict=True):
        _applied(site.aggregate(box, mine))
    _applied(site.aggregate(pallet, boxes))
    return pallet, boxes, inside


def _located(site: _Site) -> dict[tuple[str, int, bool], int]:
    answer = site.trace.LocateBatch(tpb.LocateBatchRequest(
        tenant=site.tenant, product=site.product.gtin, lot=site.product.lot),
        timeout=RPC_TIMEOUT_S)
    return {(h.party_id, h.status, h.in_transit): h.units for h in answer.location.holders}


def test_a_pack_inside_a_received_pallet_is_held_by_the_receiver(site: _Site) -> None:
    """A unit two levels down a shipped pallet is in transit to the destination, then held by
    the receiver in its region once the pallet is received; LocateBatch counts every unit
    there, and shipping or receiving the pallet answers for every pack inside it."""
    pallet, _, inside = _pallet(site)
    unit = inside[1][2]
    shipped = _applied(site.ship([pallet], "PLANT", "DIST"))
    assert shipped.changed == 1 + 2 + 6
    traced = site.traced(unit)
    assert (traced.holder, traced.in_transit) == ("DIST", True)
    assert _located(site) == {("DIST", cpb.CODE_STATUS_ACTIVE, True): 6}
    assert _applied(site.receive([pallet], "DIST")).changed == 9
    traced = site.traced(unit)
    assert (traced.holder, traced.in_transit) == ("DIST", False)
    assert _located(site) == {("DIST", cpb.CODE_STATUS_ACTIVE, False): 6}


def test_a_pack_inside_a_pallet_received_outside_its_batch_regions_verifies_as_diverted(
        site: _Site) -> None:
    """A unit of a Beijing-only batch, packed in a case on a pallet received in Guangdong,
    verifies with the diversion alert: where it was received is its pallet's receipt."""
    site.api.admin.AddBatch(apb.AddBatchRequest(tenant=site.tenant, batch=cpb.Batch(
        product=site.product.gtin, lot=NORTH_LOT, manufactured_on=site.product.manufactured_on,
        expires_on=site.product.expires_on, authorised_regions=["11"])),
        timeout=RPC_TIMEOUT_S)
    (pallet,) = site.codes(1, cpb.PACKAGING_LEVEL_PALLET)
    (case,) = site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    units = site.api.codes(site.tenant, site.product.gtin, 2, lot=NORTH_LOT)
    _applied(site.commission([pallet, case]))
    _applied(site.commission(units))
    _applied(site.aggregate(case, units))
    _applied(site.aggregate(pallet, [case]))
    before = site.api.verify(site.tenant, units[0])
    assert not [a for a in before.alerts if a == vpb.ALERT_KIND_DIVERSION], before
    _applied(site.ship([pallet], "PLANT", "DIST"))
    received = _applied(site.receive([pallet], "DIST"))
    assert any(note.startswith("DIVERSION:") for note in received.notes), received
    after = site.api.verify(site.tenant, units[0])
    assert vpb.ALERT_KIND_DIVERSION in after.alerts, after


def test_a_case_taken_out_of_a_received_pallet_keeps_its_custody_and_ships_again(
        site: _Site) -> None:
    """A case disaggregated from a pallet shipped to and received by DIST stays at DIST with its
    units, ships on to PHARM alone (the pallet's other case stays behind) and is received
    there."""
    pallet, boxes, inside = _pallet(site)
    _applied(site.ship([pallet], "PLANT", "DIST"))
    _applied(site.receive([pallet], "DIST"))
    _applied(site.disaggregate(pallet, [boxes[0]], "DIST"))
    traced = site.traced(inside[0][0])
    assert (traced.holder, traced.in_transit, list(traced.parents)) == (
        "DIST", False, [boxes[0]])
    assert _applied(site.ship([boxes[0]], "DIST", "PHARM")).changed == 4
    assert (site.traced(inside[0][1]).holder, site.traced(inside[0][1]).in_transit) == (
        "PHARM", True)
    assert (site.traced(inside[1][1]).holder, site.traced(inside[1][1]).in_transit) == (
        "DIST", False)
    _applied(site.receive([boxes[0]], "PHARM"))
    assert _located(site) == {("DIST", cpb.CODE_STATUS_ACTIVE, False): 3,
                               ("PHARM", cpb.CODE_STATUS_ACTIVE, False): 3}


def test_a_unit_dispensed_from_a_case_inside_a_received_pallet_leaves_them(
        site: _Site) -> None:
    """A pharmacy that received a pallet dispenses one unit from a case inside it: the unit is
    dispensed by the pharmacy and out of its case, the rest stay inside, and a unit of the
    pallet still in transit cannot be dispensed."""
    pallet, boxes, inside = _pallet(site)
    _applied(site.ship([pallet], "PLANT", "PHARM"))
    refused = site.dispense([inside[0][0]], "PHARM")
    assert [f.reason for f in refused.failures] == ["is in transit"], refused
    _applied(site.receive([pallet], "PHARM"))
    _applied(site.dispense([inside[0][0]], "PHARM"))
    traced = site.traced(inside[0][0])
    assert (traced.status, traced.holder, list(traced.parents)) == (
        cpb.CODE_STATUS_DISPENSED, "PHARM", [])
    assert list(site.traced(inside[0][1]).parents) == [boxes[0], pallet]
    assert _located(site) == {("PHARM", cpb.CODE_STATUS_ACTIVE, False): 5,
                               ("PHARM", cpb.CODE_STATUS_DISPENSED, False): 1}
