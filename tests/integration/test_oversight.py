"""Recall, withdrawal and raw-material trace-back over real gRPC, with every number of the answers
checked against what the test did (the chain of ``oversight_chain``)."""

from __future__ import annotations

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration import oversight_chain
from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.oversight_chain import (
    AMOX,
    IBU,
    SUPPLIER,
    SUPPLIER_LOT,
    Chain,
    story_of,
)

chain = oversight_chain.chain  # the fixture: a fresh tenant with the chain registered


# -- the scenario ---------------------------------------------------------------------------------


def _holders(location: lpb.BatchLocation) -> set[tuple[str, str, bool, int]]:
    return {(h.party_id, cpb.CodeStatus.Name(h.status).removeprefix("CODE_STATUS_"),
             h.in_transit, h.units) for h in location.holders}


def _totals(location: lpb.BatchLocation) -> dict[str, int]:
    return {name: getattr(location, name) for name in (
        "units", "at_plant", "in_stock", "in_transit", "dispensed", "other_decommissioned",
        "destroyed", "voided")}


LOT1_TOTALS = {"units": 42, "at_plant": 10, "in_stock": 23, "in_transit": 3, "dispensed": 3,
               "other_decommissioned": 0, "destroyed": 1, "voided": 2}
LOT1_HOLDERS = {
    ("PLANT", "ACTIVE", False, 10),
    ("DIST-GD", "ACTIVE", False, 12),
    ("DIST-GD", "DESTROYED", False, 1),
    ("PHARM-GZ", "ACTIVE", False, 2),
    ("PHARM-GZ", "DISPENSED", False, 2),
    ("PHARM-SZ", "ACTIVE", True, 3),
    ("DIST-HN", "ACTIVE", False, 5),
    ("PHARM-CS", "ACTIVE", False, 4),
    ("PHARM-CS", "DISPENSED", False, 1),
    ("", "VOIDED", False, 2),
}
LOT1_PROVINCES = {("11", 10, 0, 0), ("43", 9, 0, 1), ("44", 14, 3, 2)}


def test_locate_batch_counts_every_pack_where_the_chain_left_it(chain: Chain) -> None:
    """LocateBatch: units at the plant, in stock per holder, in transit, dispensed per pharmacy,
    destroyed and voided, per holder and per province, exactly as the chain moved them."""
    story_of(chain)
    location = chain.locate(AMOX, "LOT-1")
    assert _totals(location) == LOT1_TOTALS
    assert _holders(location) == LOT1_HOLDERS
    assert {(r.region, r.in_stock, r.in_transit, r.dispensed)
            for r in location.regions} == LOT1_PROVINCES
    assert not location.HasField("recall")
    assert {(h.party_id, h.region, cpb.PartyKind.Name(h.kind)) for h in location.holders
            if h.party_id == "PHARM-CS"} == {("PHARM-CS", "430102", "PARTY_KIND_PHARMACY")}


def test_a_recall_answers_the_same_picture_with_one_event_and_covers_every_pack(
        chain: Chain) -> None:
    """RecallBatch: one event naming reason and party; the answer is LocateBatch's picture; from
    then on every pack verifies RECALLED with a recall alert and no move is accepted."""
    story = story_of(chain)
    response = chain.recall(AMOX, "LOT-1")
    assert len(response.event_seqs) == 1
    (location,) = response.batches
    assert _totals(location) == LOT1_TOTALS
    assert _holders(location) == LOT1_HOLDERS
    assert location.recall.reason == "nitrosamine impurity above limit"
    assert location.recall.party_id == "PLANT"
    assert location.recall.event_seq == response.event_seqs[0]
    assert chain.locate(AMOX, "LOT-1") == location

    for code in (story.units[0], story.units[3], story.units[5], story.units[30]):
        answer = chain.verify(code)
        assert answer.status == cpb.CODE_STATUS_RECALLED
        assert vpb.ALERT_KIND_RECALLED in answer.alerts
    destroyed = chain.verify(story.units[9])
    assert destroyed.status == cpb.CODE_STATUS_DESTROYED    # a recall does not revive it
    assert chain.verify(story.lot2[0]).status == cpb.CODE_STATUS_ACTIVE

    refused = chain.lifecycle.Ship(lpb.ShipRequest(
        tenant=chain.tenant, context=lpb.EventContext(party_id="DIST-GD"),
        codes=[story.cases[1]], destination="PHARM-SZ"), timeout=RPC_TIMEOUT_S)
    assert not refused.applied
    assert "RECALLED" in refused.failures[0].reason
    received = chain.lifecycle.Receive(lpb.ReceiveRequest(
        tenant=chain.tenant, context=lpb.EventContext(party_id="PHARM-SZ"),
        codes=story.units[4:7]), timeout=RPC_TIMEOUT_S)
    assert not received.applied
    assert chain.locate(AMOX, "LOT-1") == location

    traced = chain.trace.TraceCode(tpb.TraceCodeRequest(tenant=chain.tenant,
                                                        code=story.units[0]))
    assert traced.status == cpb.CODE_STATUS_RECALLED
    last = traced.history[-1]
    assert (last.kind, last.reason, last.product, last.lot) == (
        lpb.EVENT_KIND_RECALL, "nitrosamine impurity above limit", AMOX, "LOT-1")


def test_recalling_a_recalled_batch_changes_nothing(chain: Chain) -> None:
    """A second RecallBatch records no event and answers the first recall's picture."""
    story_of(chain)
    first = chain.recall(AMOX, "LOT-1")
    second = chain.recall(AMOX, "LOT-1", reason="asked again")
    assert list(second.event_seqs) == []
    assert second.batches == first.batches
    assert second.batches[0].recall.reason == "nitrosamine impurity above limit"
    events = chain.trace.ListEvents(tpb.ListEventsRequest(tenant=chain.tenant, page_size=1000),
                                    timeout=RPC_TIMEOUT_S).events
    assert [e.kind for e in events].count(lpb.EVENT_KIND_RECALL) == 1


def test_codes_of_a_recalled_batch_can_no_longer_be_commissioned(chain: Chain) -> None:
    """Unused codes of a recalled batch stay ISSUED: commissioning them is refused."""
    chain.batch(AMOX, "LOT-9", [])
    spare = chain.codes(AMOX, "LOT-9", 2)
    chain.commission(spare[:1])
    chain.recall(AMOX, "LOT-9")
    response = chain.lifecycle.Commission(lpb.CommissionRequest(
        tenant=chain.tenant, context=lpb.EventContext(party_id="PLANT"), codes=spare[1:]),
        timeout=RPC_TIMEOUT_S)
    assert not response.applied
    assert "recalled" in response.failures[0].reason
    assert chain.verify(spare[1]).status == cpb.CODE_STATUS_ISSUED


# -- raw materials ----------------------------------------------------------------------------


def test_a_supplier_lot_leads_to_every_batch_that_used_it_across_products(
        chain: Chain) -> None:
    """BatchesUsingMaterial finds LOT-1 (amoxicillin) and LOT-2 (ibuprofen) but not LOT-3, with
    each batch's picture and its material line; case and spacing of the supplier do not matter."""
    story_of(chain)
    uses = chain.trace.BatchesUsingMaterial(tpb.BatchesUsingMaterialRequest(
        tenant=chain.tenant, supplier="  sinochem   API co. ", supplier_lot="sc-2024-07"),
        timeout=RPC_TIMEOUT_S).uses
    assert [(u.batch.product, u.batch.lot) for u in uses] == [(AMOX, "LOT-1"), (IBU, "LOT-2")]
    assert {u.material.quantity for u in uses} == {"120 kg"}
    assert _totals(uses[0].batch) == LOT1_TOTALS
    assert (uses[1].batch.units, uses[1].batch.at_plant) == (6, 6)


def test_a_material_recall_recalls_every_batch_that_used_the_lot_in_one_call(
        chain: Chain) -> None:
    """RecallMaterial: LOT-1 and LOT-2 recalled with one event each, LOT-3 untouched; repeated,
    it changes nothing and answers the same."""
    story = story_of(chain)
    response = chain.lifecycle.RecallMaterial(lpb.RecallMaterialRequest(
        tenant=chain.tenant, supplier=SUPPLIER, supplier_lot=SUPPLIER_LOT,
        reason="supplier lot contaminated"), timeout=RPC_TIMEOUT_S)
    assert len(response.event_seqs) == 2
    assert [(b.product, b.lot, b.recall.reason) for b in response.batches] == [
        (AMOX, "LOT-1", "supplier lot contaminated"), (IBU, "LOT-2", "supplier lot contaminated")]
    assert _totals(response.batches[0]) == LOT1_TOTALS
    assert chain.verify(story.lot2[0]).status == cpb.CODE_STATUS_RECALLED
    assert chain.verify(story.units[1]).status == cpb.CODE_STATUS_RECALLED
    assert chain.verify(story.lot3[0]).status == cpb.CODE_STATUS_ACTIVE
    assert not chain.locate(IBU, "LOT-3").HasField("recall")
    again = chain.lifecycle.RecallMaterial(lpb.RecallMaterialRequest(
        tenant=chain.tenant, supplier=SUPPLIER, supplier_lot=SUPPLIER_LOT, reason="again"),
        timeout=RPC_TIMEOUT_S)
    assert list(again.event_seqs) == []
    assert again.batches == response.batches


def test_a_withdrawn_product_is_withdrawn_in_every_batch(chain: Chain) -> None:
    """WithdrawProduct: packs of every ibuprofen batch verify WITHDRAWN, amoxicillin does not;
    the report moves the stock to recalled; a second withdrawal records nothing."""
    story = story_of(chain)
    response = chain.lifecycle.WithdrawProduct(lpb.WithdrawProductRequest(
        tenant=chain.tenant, product=IBU, reason="marketing authorisation suspended"),
        timeout=RPC_TIMEOUT_S)
    assert len(response.event_seqs) == 1
    assert [(b.lot, b.withdrawal.reason) for b in response.batches] == [
        ("LOT-2", "marketing authorisation suspended"),
        ("LOT-3", "marketing authorisation suspended")]
    answer = chain.verify(story.lot3[0])
    assert (answer.status, list(answer.alerts)) == (cpb.CODE_STATUS_WITHDRAWN,
                                                    [vpb.ALERT_KIND_WITHDRAWN])
    assert chain.verify(story.units[30]).status == cpb.CODE_STATUS_ACTIVE
    assert chain.report(products=[IBU]) == [(IBU, "11", 0, 10, 0, 0, 0)]
    again = chain.lifecycle.WithdrawProduct(lpb.WithdrawProductRequest(
        tenant=chain.tenant, product=IBU, reason="again"), timeout=RPC_TIMEOUT_S)
    assert list(again.event_seqs) == []
