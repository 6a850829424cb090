"""The oversight tests' supply chain: a plant, two distributors in different provinces and their
pharmacies, two products, and the calls the tests make on them (``chain``, a fixture)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api

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
class Chain:
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
          verify_channel: grpc.Channel) -> Chain:
    """The test's tenant with two products and every party registered."""
    site = Chain(api, tenant, lifecycle_pb2_grpc.LifecycleStub(issue_channel),
                  trace_pb2_grpc.TraceStub(verify_channel))
    site.product(AMOX, "Amoxicillin 500 mg capsules")
    site.product(IBU, "Ibuprofen 200 mg tablets")
    site.product(OTHER, "Paracetamol 500 mg tablets")
    for party_id, (kind, region, authorised) in PARTIES.items():
        api.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=cpb.Party(
            party_id=party_id, name=f"{party_id} Ltd", kind=kind, region=region,
            authorised_regions=authorised)), timeout=RPC_TIMEOUT_S)
    return site


# -- the scenario: a story the recall and report tests share --------------------------------------


@dataclass(frozen=True)
class Story:
    units: list[str]
    cases: list[str]
    voided: list[str]
    lot2: list[str]
    lot3: list[str]


def story_of(chain: Chain) -> Story:
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
    return Story(units, cases, voided, lot2, lot3)
