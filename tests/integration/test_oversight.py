"""Recall, withdrawal, raw-material trace-back, diversion (窜货) and clone alerts, and the regional
report, over real gRPC: a plant, two distributors in different provinces and their pharmacies,
with every number of the answers checked against what the test did."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from pharmatrace_cli.oversight import register
from tests.integration.conftest import RPC_TIMEOUT_S, Api, Servers

Refused = Callable[[grpc.StatusCode, str | None, Callable[[], object]], str]
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND

AMOX = "09501101530010"      # product 1
IBU = "09501101530027"       # product 2
OTHER = "09501101530034"     # registered, never packed
SUPPLIER, SUPPLIER_LOT = "SinoChem API Co.", "SC-2024-07"
API_LOT = cpb.MaterialLot(material="active ingredient", supplier=SUPPLIER,
                          supplier_lot=SUPPLIER_LOT, quantity="120 kg")
#: Where each party is, and the regions the distributors may sell into.
PARTIES = {
    "PLANT": (cpb.PARTY_KIND_PLANT, "110105", []),            # Beijing
    "DIST-GD": (cpb.PARTY_KIND_DISTRIBUTOR, "440305", ["44"]),  # Shenzhen, Guangdong only
    "DIST-HN": (cpb.PARTY_KIND_DISTRIBUTOR, "430102", ["43"]),  # Changsha, Hunan only
    "PHARM-GZ": (cpb.PARTY_KIND_PHARMACY, "440106", []),      # Guangzhou
    "PHARM-SZ": (cpb.PARTY_KIND_PHARMACY, "440305", []),      # Shenzhen
    "PHARM-CS": (cpb.PARTY_KIND_PHARMACY, "430102", []),      # Changsha
}
UNIT, CASE = cpb.PACKAGING_LEVEL_UNIT, cpb.PACKAGING_LEVEL_CASE
S = cpb
#: Long enough for a verification worker to store what it raised (it flushes every 0.25 s).
SETTLE_S = 20.0


@dataclass
class _Chain:
    """A tenant's supply chain: products, batches, parties, and the RPCs the tests make."""

    api: Api
    tenant: str
    lifecycle: lifecycle_pb2_grpc.LifecycleStub
    trace: trace_pb2_grpc.TraceStub
    notes: list[str] = field(default_factory=list)

    # -- master data ---------------------------------------------------------------------------

    def product(self, gtin: str, name: str) -> None:
        self.api.admin.RegisterProduct(apb.RegisterProductRequest(
            tenant=self.tenant, product=cpb.Product(gtin=gtin, name=name)), timeout=RPC_TIMEOUT_S)

    def batch(self, gtin: str, lot: str, regions: list[str],
              materials: list[cpb.MaterialLot] | None = None) -> None:
        self.api.admin.AddBatch(apb.AddBatchRequest(tenant=self.tenant, batch=cpb.Batch(
            product=gtin, lot=lot, expires_on="2031-06-30", authorised_regions=regions,
            materials=materials or [])), timeout=RPC_TIMEOUT_S)

    # -- lifecycle -----------------------------------------------------------------------------

    def codes(self, gtin: str, lot: str, n: int, level: int = UNIT) -> list[str]:
        return self.api.codes(self.tenant, gtin, n, lot=lot, level=level)

    def _ok(self, method: Any, request: Any) -> lpb.LifecycleResponse:
        response = method(request, timeout=RPC_TIMEOUT_S)
        assert response.applied and not response.failures, response
        self.notes.extend(response.notes)
        return response  # type: ignore[no-any-return]

    def _ctx(self, party: str) -> lpb.EventContext:
        return lpb.EventContext(party_id=party)

    def commission(self, codes: list[str], party: str = "PLANT") -> None:
        self._ok(self.lifecycle.Commission, lpb.CommissionRequest(
            tenant=self.tenant, context=self._ctx(party), codes=codes))

    def pack(self, case: str, units: list[str], party: str = "PLANT") -> None:
        self._ok(self.lifecycle.Aggregate, lpb.AggregateRequest(
            tenant=self.tenant, context=self._ctx(party), parent=case, children=units))

    def unpack(self, case: str, party: str) -> None:
        self._ok(self.lifecycle.Disaggregate, lpb.AggregateRequest(
            tenant=self.tenant, context=self._ctx(party), parent=case))

    def ship(self, codes: list[str], sender: str, to: str) -> None:
        self._ok(self.lifecycle.Ship, lpb.ShipRequest(
            tenant=self.tenant, context=self._ctx(sender), codes=codes, destination=to))

    def receive(self, codes: list[str], party: str) -> lpb.LifecycleResponse:
        return self._ok(self.lifecycle.Receive, lpb.ReceiveRequest(
            tenant=self.tenant, context=self._ctx(party), codes=codes))

    def dispense(self, codes: list[str], party: str) -> lpb.LifecycleResponse:
        return self._ok(self.lifecycle.Decommission, lpb.DecommissionRequest(
            tenant=self.tenant, context=self._ctx(party), codes=codes,
            target=cpb.CODE_STATUS_DISPENSED))

    def undo(self, codes: list[str], party: str) -> None:
        self._ok(self.lifecycle.Undo, lpb.UndoRequest(
            tenant=self.tenant, context=self._ctx(party), codes=codes))

    def destroy(self, codes: list[str], party: str) -> None:
        self._ok(self.lifecycle.Destroy, lpb.DestroyRequest(
            tenant=self.tenant, context=self._ctx(party), codes=codes, reason="damaged"))

    # -- oversight -----------------------------------------------------------------------------

    def locate(self, gtin: str, lot: str) -> lpb.BatchLocation:
        return self.trace.LocateBatch(tpb.LocateBatchRequest(
            tenant=self.tenant, product=gtin, lot=lot), timeout=RPC_TIMEOUT_S).location

    def recall(self, gtin: str, lot: str, reason: str = "nitrosamine impurity above limit"
               ) -> lpb.RecallResponse:
        return self.lifecycle.RecallBatch(lpb.RecallBatchRequest(
            tenant=self.tenant, product=gtin, lot=lot, reason=reason,
            context=lpb.EventContext(party_id="PLANT")), timeout=RPC_TIMEOUT_S)

    def report(self, **fields: Any) -> list[tuple[Any, ...]]:
        """(product, region, stock, recalled, received, sold, returned) rows."""
        response = self.trace.RegionReport(tpb.RegionReportRequest(tenant=self.tenant, **fields),
                                           timeout=RPC_TIMEOUT_S)
        return [(r.product, r.region, r.stock, r.recalled, r.received, r.sold, r.returned)
                for r in response.rows]

    def verify(self, code: str, *, region: str = "", party: str = "") -> vpb.VerifyResponse:
        return self.api.verify(self.tenant, code, region=region, party_id=party)

    def alerts(self, **fields: Any) -> list[tpb.Alert]:
        return list(self.trace.ListAlerts(tpb.ListAlertsRequest(
            tenant=self.tenant, **fields), timeout=RPC_TIMEOUT_S).alerts)

    def alerts_settled(self, expected: int) -> list[tpb.Alert]:
        """The alerts once ``expected`` are stored (verification workers store theirs a moment
        after answering), and a moment more so that an extra one would show."""
        deadline = time.monotonic() + SETTLE_S
        while len(self.alerts()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.6)
        return self.alerts()


@pytest.fixture
def chain(api: Api, tenant: str, issue_channel: grpc.Channel,
          verify_channel: grpc.Channel) -> _Chain:
    """The test's tenant with two products and every party registered."""
    site = _Chain(api, tenant, lifecycle_pb2_grpc.LifecycleStub(issue_channel),
                  trace_pb2_grpc.TraceStub(verify_channel))
    site.product(AMOX, "Amoxicillin 500 mg capsules")
    site.product(IBU, "Ibuprofen 200 mg tablets")
    site.product(OTHER, "Paracetamol 500 mg tablets")
    for party_id, (kind, region, authorised) in PARTIES.items():
        api.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=cpb.Party(
            party_id=party_id, name=f"{party_id} Ltd", kind=kind, region=region,
            authorised_regions=authorised)), timeout=RPC_TIMEOUT_S)
    return site


# -- the scenario ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Story:
    units: list[str]
    cases: list[str]
    voided: list[str]
    lot2: list[str]
    lot3: list[str]


def _story(chain: _Chain) -> _Story:
    """LOT-1 of amoxicillin (sold in Guangdong and Hunan, made from the supplier's lot): 40
    units in 4 cases of 10, 2 more codes scrapped. Cases 0 and 1 go to DIST-GD, case 2 to
    DIST-HN, case 3 stays at the plant. DIST-GD opens case 0: 4 units to PHARM-GZ (received; 3
    dispensed, 1 of them undone), 3 to PHARM-SZ (still in transit), 1 destroyed. DIST-HN opens
    case 2: 5 units to PHARM-CS (received, 1 dispensed). Ibuprofen LOT-2 (same supplier lot): 6
    units at the plant; LOT-3 (another lot): 4 units at the plant."""
    chain.batch(AMOX, "LOT-1", ["44", "43"], [API_LOT])
    chain.batch(IBU, "LOT-2", [], [API_LOT])
    chain.batch(IBU, "LOT-3", [], [cpb.MaterialLot(material="active ingredient",
                                                   supplier=SUPPLIER, supplier_lot="SC-2024-09")])
    units = chain.codes(AMOX, "LOT-1", 42)
    units, voided = units[:40], units[40:]
    cases = chain.codes(AMOX, "LOT-1", 4, CASE)
    chain.api.give_back(chain.tenant, voided)
    chain.commission(units + cases)
    for i, case in enumerate(cases):
        chain.pack(case, units[10 * i:10 * (i + 1)])
    chain.ship(cases[:2], "PLANT", "DIST-GD")
    chain.ship(cases[2:3], "PLANT", "DIST-HN")
    chain.receive(cases[:2], "DIST-GD")
    chain.receive(cases[2:3], "DIST-HN")
    chain.unpack(cases[0], "DIST-GD")
    chain.ship(units[0:4], "DIST-GD", "PHARM-GZ")
    chain.ship(units[4:7], "DIST-GD", "PHARM-SZ")
    chain.receive(units[0:4], "PHARM-GZ")
    chain.dispense(units[0:3], "PHARM-GZ")
    chain.undo(units[2:3], "PHARM-GZ")
    chain.destroy(units[9:10], "DIST-GD")
    chain.unpack(cases[2], "DIST-HN")
    chain.ship(units[20:25], "DIST-HN", "PHARM-CS")
    chain.receive(units[20:25], "PHARM-CS")
    chain.dispense(units[20:21], "PHARM-CS")
    lot2 = chain.codes(IBU, "LOT-2", 6)
    lot3 = chain.codes(IBU, "LOT-3", 4)
    chain.commission(lot2 + lot3)
    return _Story(units, cases, voided, lot2, lot3)


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


def test_locate_batch_counts_every_pack_where_the_chain_left_it(chain: _Chain) -> None:
    """LocateBatch: units at the plant, in stock per holder, in transit, dispensed per pharmacy,
    destroyed and voided, per holder and per province, exactly as the chain moved them."""
    _story(chain)
    location = chain.locate(AMOX, "LOT-1")
    assert _totals(location) == LOT1_TOTALS
    assert _holders(location) == LOT1_HOLDERS
    assert {(r.region, r.in_stock, r.in_transit, r.dispensed)
            for r in location.regions} == LOT1_PROVINCES
    assert not location.HasField("recall")
    assert {(h.party_id, h.region, cpb.PartyKind.Name(h.kind)) for h in location.holders
            if h.party_id == "PHARM-CS"} == {("PHARM-CS", "430102", "PARTY_KIND_PHARMACY")}


def test_a_recall_answers_the_same_picture_with_one_event_and_covers_every_pack(
        chain: _Chain) -> None:
    """RecallBatch: one event naming reason and party; the answer is LocateBatch's picture; from
    then on every pack verifies RECALLED with a recall alert and no move is accepted."""
    story = _story(chain)
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


def test_recalling_a_recalled_batch_changes_nothing(chain: _Chain) -> None:
    """A second RecallBatch records no event and answers the first recall's picture."""
    _story(chain)
    first = chain.recall(AMOX, "LOT-1")
    second = chain.recall(AMOX, "LOT-1", reason="asked again")
    assert list(second.event_seqs) == []
    assert second.batches == first.batches
    assert second.batches[0].recall.reason == "nitrosamine impurity above limit"
    events = chain.trace.ListEvents(tpb.ListEventsRequest(tenant=chain.tenant, page_size=1000),
                                    timeout=RPC_TIMEOUT_S).events
    assert [e.kind for e in events].count(lpb.EVENT_KIND_RECALL) == 1


def test_codes_of_a_recalled_batch_can_no_longer_be_commissioned(chain: _Chain) -> None:
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
        chain: _Chain) -> None:
    """BatchesUsingMaterial finds LOT-1 (amoxicillin) and LOT-2 (ibuprofen) but not LOT-3, with
    each batch's picture and its material line; case and spacing of the supplier do not matter."""
    _story(chain)
    uses = chain.trace.BatchesUsingMaterial(tpb.BatchesUsingMaterialRequest(
        tenant=chain.tenant, supplier="  sinochem   API co. ", supplier_lot="sc-2024-07"),
        timeout=RPC_TIMEOUT_S).uses
    assert [(u.batch.product, u.batch.lot) for u in uses] == [(AMOX, "LOT-1"), (IBU, "LOT-2")]
    assert {u.material.quantity for u in uses} == {"120 kg"}
    assert _totals(uses[0].batch) == LOT1_TOTALS
    assert (uses[1].batch.units, uses[1].batch.at_plant) == (6, 6)


def test_a_material_recall_recalls_every_batch_that_used_the_lot_in_one_call(
        chain: _Chain) -> None:
    """RecallMaterial: LOT-1 and LOT-2 recalled with one event each, LOT-3 untouched; repeated,
    it changes nothing and answers the same."""
    story = _story(chain)
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


def test_a_withdrawn_product_is_withdrawn_in_every_batch(chain: _Chain) -> None:
    """WithdrawProduct: packs of every ibuprofen batch verify WITHDRAWN, amoxicillin does not;
    the report moves the stock to recalled; a second withdrawal records nothing."""
    story = _story(chain)
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


# -- the regional report ----------------------------------------------------------------------


def test_the_regional_report_counts_stock_receipts_sales_and_returns_per_region(
        chain: _Chain) -> None:
    """Provinces and cities: stock now (in-transit packs where they left), received, sold and
    returned over the period; a recall moves the batch's stock to `recalled`, flows stay."""
    _story(chain)
    assert chain.report(products=[AMOX]) == [
        (AMOX, "11", 10, 0, 0, 0, 0),
        (AMOX, "43", 9, 0, 15, 1, 0),
        (AMOX, "44", 17, 0, 24, 3, 1),
    ]
    assert chain.report(products=[AMOX], level=tpb.REGION_LEVEL_CITY) == [
        (AMOX, "1101", 10, 0, 0, 0, 0),
        (AMOX, "4301", 9, 0, 15, 1, 0),
        (AMOX, "4401", 2, 0, 4, 3, 1),
        (AMOX, "4403", 15, 0, 20, 0, 0),
    ]
    assert chain.report(products=[AMOX], level=tpb.REGION_LEVEL_COUNTY, region="44") == [
        (AMOX, "440106", 2, 0, 4, 3, 1),
        (AMOX, "440305", 15, 0, 20, 0, 0),
    ]
    assert chain.report(products=[IBU, AMOX], region="11") == [
        (IBU, "11", 10, 0, 0, 0, 0), (AMOX, "11", 10, 0, 0, 0, 0)]
    chain.lifecycle.RecallMaterial(lpb.RecallMaterialRequest(
        tenant=chain.tenant, supplier=SUPPLIER, supplier_lot=SUPPLIER_LOT,
        reason="supplier lot contaminated"), timeout=RPC_TIMEOUT_S)
    assert chain.report() == [
        (AMOX, "11", 0, 10, 0, 0, 0),
        (AMOX, "43", 0, 9, 15, 1, 0),
        (AMOX, "44", 0, 17, 24, 3, 1),
        (IBU, "11", 4, 6, 0, 0, 0),
    ]


def test_flows_outside_the_period_are_left_out(chain: _Chain) -> None:
    """A period that ended before today shows stock only."""
    _story(chain)
    assert chain.report(products=[AMOX], start="2020-01-01", end="2020-01-31") == [
        (AMOX, "11", 10, 0, 0, 0, 0), (AMOX, "43", 9, 0, 0, 0, 0),
        (AMOX, "44", 17, 0, 0, 0, 0)]


def test_the_report_names_the_time_zone_its_days_are_cut_in(chain: _Chain) -> None:
    """A tenant that never set a zone gets a report that says its days are UTC days."""
    response = chain.trace.RegionReport(tpb.RegionReportRequest(tenant=chain.tenant),
                                        timeout=RPC_TIMEOUT_S)
    assert response.time_zone == "UTC"


def test_the_report_command_prints_a_table_and_writes_a_self_contained_page(
        chain: _Chain, servers: Servers, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`pharmatrace report region --level city --html FILE`: a table with totals, and a page with
    an inline SVG chart and no outside resources."""
    _story(chain)
    page = tmp_path / "report.html"
    assert _cli(servers, chain.tenant, "report", "region", "--product", AMOX, "--level", "city",
                "--html", str(page)) == 0
    table = capsys.readouterr().out
    assert "深圳市 Shenzhen Shi · 广东省" in table
    total = [line for line in table.splitlines() if "total" in line]
    assert total and total[0].split()[1:] == ["36", "0", "39", "4", "1"]
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    assert "长沙市 Changsha Shi · 湖南省" in text and "<td>39</td>" in text
    assert "src=" not in text and "<link" not in text and "<script" not in text


def test_the_report_page_maps_the_chosen_figure(chain: _Chain, servers: Servers,
                                                tmp_path: Path) -> None:
    """`report region --html` draws China's provinces shaded by stock with each value in text;
    with `--region 44 --level county --map sold` it draws Guangdong's counties by sales."""
    _story(chain)
    page = tmp_path / "china.html"
    assert _cli(servers, chain.tenant, "report", "region", "--html", str(page)) == 0
    text = page.read_text(encoding="utf-8")
    assert "Stock by province, China, all products" in text
    assert text.count("<path") >= 34                      # every province drawn
    assert ">广东 17</text>" in text and ">湖南 9</text>" in text
    assert "<title>新疆维吾尔自治区 Xinjiang: 0</title>" in text   # no stock there, hatched
    page = tmp_path / "guangdong.html"
    assert _cli(servers, chain.tenant, "report", "region", "--region", "44", "--level",
                "county", "--map", "sold", "--html", str(page)) == 0
    text = page.read_text(encoding="utf-8")
    assert "Sold by county, 广东省 Guangdong, all products" in text
    assert ">天河区 3</text>" in text
    assert "<title>南山区 Nanshan Qu: 0</title>" in text and "湖南" not in text.split("<svg")[1]


def test_the_locate_command_prints_the_picture(chain: _Chain, servers: Servers,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`pharmatrace locate` prints the totals, one line per holder and per province."""
    _story(chain)
    assert _cli(servers, chain.tenant, "locate", "--product", AMOX, "--lot", "LOT-1") == 0
    out = capsys.readouterr().out
    assert ("42 units: at plant 10, in stock 23, in transit 3, dispensed 3, other "
            "decommissioned 0, destroyed or stolen 1, voided 2") in out
    assert any(line.split() == ["PHARM-SZ", "pharmacy", "440305", "ACTIVE", "in", "transit",
                                "to", "3"] for line in out.splitlines())


def _cli(servers: Servers, tenant: str, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pharmatrace")
    register(parser.add_subparsers())
    args = parser.parse_args([*argv, "--tenant", tenant, "--issue-addr", servers.issue_address,
                              "--verify-addr", servers.verify_address])
    return int(args.run(args))


# -- diversion --------------------------------------------------------------------------------


def test_receipts_and_dispensings_outside_the_authorised_regions_raise_one_alert_each(
        chain: _Chain) -> None:
    """LOT-GD may be sold in Guangdong only, and DIST-GD sells in Guangdong only. A case DIST-GD
    ships to Changsha raises two alerts on receipt (the batch's and the distributor's rule), a
    pack dispensed in Changsha without a receipt there one more; receipts and dispensings in
    Guangdong none. Each change is applied and noted."""
    chain.batch(AMOX, "LOT-GD", ["44"])
    units = chain.codes(AMOX, "LOT-GD", 8)
    cases = chain.codes(AMOX, "LOT-GD", 2, CASE)
    chain.commission(units + cases)
    chain.pack(cases[0], units[:3])
    chain.ship(cases + units[3:], "PLANT", "DIST-GD")
    assert not chain.receive(cases + units[3:], "DIST-GD").notes
    chain.ship(units[3:5], "DIST-GD", "PHARM-SZ")
    assert not chain.receive(units[3:5], "PHARM-SZ").notes
    assert not chain.dispense(units[3:4], "PHARM-SZ").notes
    chain.ship(cases[:1], "DIST-GD", "PHARM-CS")
    receipt = chain.receive(cases[:1], "PHARM-CS")
    assert receipt.applied and len(receipt.notes) == 2
    dispensed = chain.dispense(units[4:5], "PHARM-CS")
    assert len(dispensed.notes) == 1 and "DIVERSION" in dispensed.notes[0]

    found = chain.alerts_settled(3)
    assert [(a.kind, a.source, a.code, a.units, a.region, a.party_id, list(a.authorised_regions),
             a.authorised_by, a.lot) for a in found] == [
        (vpb.ALERT_KIND_DIVERSION, tpb.ALERT_SOURCE_RECEIPT, cases[0], 3, "430102", "PHARM-CS",
         ["44"], "batch", "LOT-GD"),
        (vpb.ALERT_KIND_DIVERSION, tpb.ALERT_SOURCE_RECEIPT, cases[0], 3, "430102", "PHARM-CS",
         ["44"], "DIST-GD", "LOT-GD"),
        (vpb.ALERT_KIND_DIVERSION, tpb.ALERT_SOURCE_DISPENSE, units[4], 1, "430102", "PHARM-CS",
         ["44"], "batch", "LOT-GD"),
    ]
    assert chain.verify(units[0]).status == cpb.CODE_STATUS_ACTIVE   # applied: held in Changsha
    assert chain.locate(AMOX, "LOT-GD").regions[0].region == "43"


def test_a_scan_outside_the_batch_regions_shows_diversion_and_is_stored_once_per_region(
        chain: _Chain) -> None:
    """Verify with a scanner region outside the batch's regions answers DIVERSION; repeated
    scans there store one alert, a scan in a second outside region another, scans inside none.
    A pack recorded outside (received in Changsha) shows DIVERSION to any scan."""
    chain.batch(AMOX, "LOT-GD", ["4403", "4401"])
    codes = chain.codes(AMOX, "LOT-GD", 3)
    chain.commission(codes)
    # Shenzhen's Bao'an, Nanshan and neighbouring Dongguan: near enough for one pack at once.
    assert vpb.ALERT_KIND_DIVERSION not in chain.verify(codes[0], region="440306").alerts
    assert vpb.ALERT_KIND_DIVERSION not in chain.verify(codes[0], region="440305").alerts
    for _ in range(3):
        assert vpb.ALERT_KIND_DIVERSION in chain.verify(codes[0], region="441900").alerts
    assert vpb.ALERT_KIND_DIVERSION in chain.verify(codes[0], region="441900").alerts
    batch_answer = chain.api.verification.VerifyBatch(vpb.VerifyBatchRequest(
        tenant=chain.tenant, codes=codes[1:], context=vpb.ScanContext(region="310101")),
        timeout=RPC_TIMEOUT_S)
    assert all(mask & (1 << vpb.ALERT_KIND_DIVERSION) for mask in batch_answer.alert_masks)
    found = chain.alerts_settled(3)
    assert sorted((a.code, a.region, a.source) for a in found) == sorted([
        (codes[0], "441900", tpb.ALERT_SOURCE_SCAN),
        (codes[1], "310101", tpb.ALERT_SOURCE_SCAN),
        (codes[2], "310101", tpb.ALERT_SOURCE_SCAN)])
    assert {tuple(a.authorised_regions) for a in found} == {("4403", "4401")}

    chain.ship(codes[2:], "PLANT", "PHARM-CS")
    chain.receive(codes[2:], "PHARM-CS")
    assert vpb.ALERT_KIND_DIVERSION in chain.verify(codes[2]).alerts
    assert vpb.ALERT_KIND_DIVERSION not in chain.verify(codes[1]).alerts


def test_batches_without_authorised_regions_are_never_diverted(chain: _Chain) -> None:
    """No regions on the batch, no restricted distributor: no alert anywhere."""
    chain.batch(AMOX, "LOT-ANY", [])
    codes = chain.codes(AMOX, "LOT-ANY", 2)
    chain.commission(codes)
    chain.ship(codes, "PLANT", "PHARM-CS")
    assert not chain.receive(codes, "PHARM-CS").notes
    assert vpb.ALERT_KIND_DIVERSION not in chain.verify(codes[0], region="650102").alerts
    assert chain.alerts_settled(0) == []


# -- clones -----------------------------------------------------------------------------------


def test_a_code_scanned_in_two_far_apart_places_at_once_is_a_suspected_clone(
        chain: _Chain) -> None:
    """Beijing then Guangzhou seconds apart: CLONE_SUSPECTED (travel), stored with both places
    and the distance; so is Guangzhou then Shenzhen (county points, about 90 km); two
    neighbouring Shenzhen districts are not."""
    chain.batch(AMOX, "LOT-C", [])
    far, province, near = chain.codes(AMOX, "LOT-C", 3)
    chain.commission([far, province, near])
    assert vpb.ALERT_KIND_CLONE_SUSPECTED not in chain.verify(far, region="110105").alerts
    assert vpb.ALERT_KIND_CLONE_SUSPECTED in chain.verify(far, region="440106").alerts
    assert vpb.ALERT_KIND_CLONE_SUSPECTED not in chain.verify(province, region="440106").alerts
    assert vpb.ALERT_KIND_CLONE_SUSPECTED in chain.verify(province, region="440305").alerts
    assert vpb.ALERT_KIND_CLONE_SUSPECTED not in chain.verify(near, region="440305").alerts
    assert vpb.ALERT_KIND_CLONE_SUSPECTED not in chain.verify(near, region="440304").alerts
    alert, nearby = sorted(chain.alerts_settled(2), key=lambda a: -a.distance_km)
    assert (alert.kind, alert.clone_reason, alert.code, alert.previous_region, alert.region) == (
        vpb.ALERT_KIND_CLONE_SUSPECTED, tpb.CLONE_REASON_TRAVEL, far, "110105", "440106")
    assert 1800 < alert.distance_km < 2000
    assert (nearby.code, nearby.previous_region, nearby.region) == (province, "440106", "440305")
    assert 80 < nearby.distance_km < 120


def test_a_supply_chain_scan_of_a_dispensed_destroyed_or_voided_pack_is_a_suspected_clone(
        chain: _Chain) -> None:
    """A distributor scanning a dispensed, destroyed or voided pack: CLONE_SUSPECTED. The
    patient scanning it at home, or the pharmacy that dispensed it, is no clone."""
    chain.batch(AMOX, "LOT-C", [])
    dispensed, destroyed, voided, active = chain.codes(AMOX, "LOT-C", 4)
    chain.api.give_back(chain.tenant, [voided])
    chain.commission([dispensed, destroyed, active])
    chain.ship([dispensed], "PLANT", "PHARM-GZ")
    chain.receive([dispensed], "PHARM-GZ")
    chain.dispense([dispensed], "PHARM-GZ")
    chain.destroy([destroyed], "PLANT")
    clone = vpb.ALERT_KIND_CLONE_SUSPECTED
    assert clone not in chain.verify(dispensed).alerts                       # the patient
    assert clone not in chain.verify(dispensed, party="PHARM-GZ").alerts     # its pharmacy
    assert clone not in chain.verify(active, party="DIST-GD").alerts
    for code in (dispensed, destroyed, voided):
        assert clone in chain.verify(code, party="DIST-GD").alerts
    assert clone in chain.verify(dispensed, party="DIST-GD").alerts
    found = chain.alerts_settled(3)
    assert sorted((a.code, a.clone_reason, a.party_id, a.status) for a in found) == sorted([
        (dispensed, tpb.CLONE_REASON_SEEN_AFTER_END, "DIST-GD", cpb.CODE_STATUS_DISPENSED),
        (destroyed, tpb.CLONE_REASON_SEEN_AFTER_END, "DIST-GD", cpb.CODE_STATUS_DESTROYED),
        (voided, tpb.CLONE_REASON_SEEN_AFTER_END, "DIST-GD", cpb.CODE_STATUS_VOIDED)])


def test_a_code_verified_more_often_than_the_threshold_is_a_suspected_clone(
        chain: _Chain) -> None:
    """20 scans (the default threshold) are fine; the 21st and later answer CLONE_SUSPECTED and
    one alert is stored; the consumer answer says how often and since when it was queried."""
    chain.batch(AMOX, "LOT-C", [])
    (code,) = chain.codes(AMOX, "LOT-C", 1)
    chain.commission([code])
    answers = [chain.verify(code) for _ in range(22)]
    flagged = [vpb.ALERT_KIND_CLONE_SUSPECTED in a.alerts for a in answers]
    assert flagged == [False] * 20 + [True, True]
    assert [a.scan_count for a in answers] == list(range(1, 23))
    assert {a.first_verified_at_ms for a in answers} == {answers[0].first_verified_at_ms}
    (alert,) = chain.alerts_settled(1)
    assert (alert.clone_reason, alert.scan_count) == (tpb.CLONE_REASON_TOO_MANY_SCANS, 21)


# -- alerts -----------------------------------------------------------------------------------


def test_alerts_are_listed_by_kind_product_batch_region_and_time_in_pages(
        chain: _Chain) -> None:
    """ListAlerts filters and pages; WatchAlerts from the last id streams a new alert."""
    chain.batch(AMOX, "LOT-GD", ["44"])
    chain.batch(IBU, "LOT-I", ["44"])
    amox = chain.codes(AMOX, "LOT-GD", 3)
    ibu = chain.codes(IBU, "LOT-I", 1)
    chain.commission(amox + ibu)
    chain.verify(amox[0], region="430102")
    chain.verify(amox[1], region="310101")
    chain.verify(ibu[0], region="430102")
    every = chain.alerts_settled(3)
    assert [a.alert_id for a in every] == sorted(a.alert_id for a in every)
    assert {a.code for a in chain.alerts(product=AMOX)} == {amox[0], amox[1]}
    assert {a.code for a in chain.alerts(product=IBU, lot="LOT-I")} == {ibu[0]}
    assert {a.code for a in chain.alerts(region="43")} == {amox[0], ibu[0]}
    assert chain.alerts(kind=vpb.ALERT_KIND_CLONE_SUSPECTED) == []
    assert chain.alerts(from_ms=every[-1].raised_at_ms + 1) == []
    first = chain.trace.ListAlerts(tpb.ListAlertsRequest(tenant=chain.tenant, page_size=2))
    rest = chain.trace.ListAlerts(tpb.ListAlertsRequest(tenant=chain.tenant, page_size=2,
                                                        page_token=first.next_page_token))
    assert [*first.alerts, *rest.alerts] == every and not rest.next_page_token
    assert first.last_alert_id == every[-1].alert_id

    received: list[tpb.Alert] = []
    stream = chain.trace.WatchAlerts(tpb.WatchAlertsRequest(
        tenant=chain.tenant, after_id=first.last_alert_id, region="5101",
        kind=vpb.ALERT_KIND_DIVERSION))

    def watch() -> None:
        try:
            for message in stream:
                received.extend(message.alerts)
        except grpc.RpcError as exc:  # cancelled below
            assert exc.code() == grpc.StatusCode.CANCELLED  # type: ignore[attr-defined]

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    chain.verify(amox[2], region="310101")       # not in the watched region
    chain.verify(amox[2], region="510104")
    deadline = time.monotonic() + SETTLE_S
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    stream.cancel()
    watcher.join(5)
    assert [(a.code, a.region) for a in received] == [(amox[2], "510104")]


# -- bad input ------------------------------------------------------------------------------


def test_bad_input_is_refused_naming_the_field(chain: _Chain, refused: Refused) -> None:
    """Unknown batch, supplier lot or product: NOT_FOUND; malformed region, a period ending
    before it starts, a recall without a reason: INVALID_ARGUMENT naming the field."""
    chain.batch(AMOX, "LOT-1", [])
    t, tr, lc = chain.tenant, chain.trace, chain.lifecycle
    refused(NOT_FOUND, "lot", lambda: tr.LocateBatch(tpb.LocateBatchRequest(
        tenant=t, product=AMOX, lot="NOPE")))
    refused(NOT_FOUND, "product", lambda: tr.LocateBatch(tpb.LocateBatchRequest(
        tenant=t, product="09501101530041", lot="LOT-1")))
    refused(NOT_FOUND, "supplier_lot", lambda: tr.BatchesUsingMaterial(
        tpb.BatchesUsingMaterialRequest(tenant=t, supplier=SUPPLIER, supplier_lot="NOPE")))
    refused(NOT_FOUND, "supplier_lot", lambda: lc.RecallMaterial(lpb.RecallMaterialRequest(
        tenant=t, supplier=SUPPLIER, supplier_lot="NOPE", reason="x")))
    refused(NOT_FOUND, "products[1]", lambda: tr.RegionReport(tpb.RegionReportRequest(
        tenant=t, products=[AMOX, "09501101530041"])))
    refused(NOT_FOUND, "product", lambda: lc.WithdrawProduct(lpb.WithdrawProductRequest(
        tenant=t, product="09501101530041", reason="x")))
    refused(NOT_FOUND, "lot", lambda: lc.RecallBatch(lpb.RecallBatchRequest(
        tenant=t, product=AMOX, lot="NOPE", reason="x")))
    refused(INVALID, "lot", lambda: tr.LocateBatch(tpb.LocateBatchRequest(
        tenant=t, product=AMOX, lot="L" * 21)))
    refused(INVALID, "page_token", lambda: tr.ListAlerts(tpb.ListAlertsRequest(
        tenant=t, page_token="9" * 30)))
    refused(INVALID, "region", lambda: tr.RegionReport(tpb.RegionReportRequest(
        tenant=t, region="4X")))
    refused(INVALID, "region", lambda: tr.ListAlerts(tpb.ListAlertsRequest(
        tenant=t, region="990000")))
    refused(INVALID, "region", lambda: tr.WatchAlerts(tpb.WatchAlertsRequest(
        tenant=t, region="123")))
    refused(INVALID, "context.region", lambda: chain.verify(AMOX, region="44010"))
    refused(INVALID, "end", lambda: tr.RegionReport(tpb.RegionReportRequest(
        tenant=t, start="2026-03-02", end="2026-03-01")))
    refused(INVALID, "start", lambda: tr.RegionReport(tpb.RegionReportRequest(
        tenant=t, start="March")))
    refused(INVALID, "level", lambda: tr.RegionReport(tpb.RegionReportRequest(
        tenant=t, level=9)))  # type: ignore[arg-type]
    refused(INVALID, "reason", lambda: lc.RecallBatch(lpb.RecallBatchRequest(
        tenant=t, product=AMOX, lot="LOT-1")))
    refused(INVALID, "to_ms", lambda: tr.ListAlerts(tpb.ListAlertsRequest(
        tenant=t, from_ms=2, to_ms=1)))
    refused(INVALID, "events[0].kind", lambda: lc.CaptureEvents(iter([
        lpb.CaptureEventsRequest(tenant=t, events=[lpb.LifecycleEvent(
            kind=lpb.EVENT_KIND_RECALL, lot="LOT-1")])])))
    assert not chain.locate(AMOX, "LOT-1").HasField("recall")
    assert chain.report(start="0001-01-01", end="0001-01-31") == []    # before any counter


def test_alert_day_filters_cut_at_the_tenants_local_midnight(chain: _Chain) -> None:
    """ListAlerts since/until are local days of the tenant's zone: in a zone whose date differs
    from UTC's, an alert falls on the local day, not on the UTC one."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    chain.batch(AMOX, "LOT-GD", ["44"])
    (code,) = chain.codes(AMOX, "LOT-GD", 1)
    chain.commission([code])
    chain.verify(code, region="430102")
    (alert,) = chain.alerts_settled(1)
    raised = dt.datetime.fromtimestamp(alert.raised_at_ms / 1000, dt.UTC)
    # UTC-12 is on the day before UTC's in the morning (UTC), UTC+14 on the day after later on.
    zone = "Etc/GMT+12" if raised.hour < 12 else "Pacific/Kiritimati"
    chain.api.admin.SetTenantPolicy(apb.SetTenantPolicyRequest(
        tenant=chain.tenant, policy=apb.TenantPolicy(time_zone=zone)), timeout=RPC_TIMEOUT_S)
    local = raised.astimezone(ZoneInfo(zone)).date()
    assert local != raised.date()
    after = (local + dt.timedelta(days=1)).isoformat()
    assert [a.code for a in chain.alerts(since=local.isoformat())] == [code]
    assert [a.code for a in chain.alerts(until=after)] == [code]
    assert chain.alerts(since=after) == []
    assert chain.alerts(until=local.isoformat()) == []
