"""pharmatrace.v1.Trace over real gRPC: a pack's history through the containers it travelled in,
its container chain, contents, batch and raw materials, and filtered, paged event listings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Gs1Product

Refused = Callable[[grpc.StatusCode, str | None, Callable[[], object]], str]
INVALID = grpc.StatusCode.INVALID_ARGUMENT
MATERIALS_LOT = "LOT-M7"
MATERIALS = [cpb.MaterialLot(material="amoxicillin trihydrate", supplier="ACME Pharma Chem",
                             supplier_lot="API-2291"),
             cpb.MaterialLot(material="gelatin capsule", supplier="CapsCo", supplier_lot="C-17")]
#: 2026-03-01 08:00 UTC; events in these tests carry explicit times from here on.
T0 = 1_772_352_000_000
MINUTE = 60_000
K = lpb


@dataclass(frozen=True)
class _Site:
    """A test tenant with a GS1 product, two batches (one with raw-material lots), parties, and
    the Lifecycle and Trace stubs."""

    api: Api
    product: Gs1Product
    lifecycle: lifecycle_pb2_grpc.LifecycleStub
    trace: trace_pb2_grpc.TraceStub

    @property
    def tenant(self) -> str:
        return self.product.tenant

    def codes(self, n: int, level: int = cpb.PACKAGING_LEVEL_UNIT, lot: str = "") -> list[str]:
        return self.api.codes(self.tenant, self.product.gtin, n, lot=lot or self.product.lot,
                              level=level)

    def capture(self, *events: lpb.LifecycleEvent) -> lpb.CaptureEventsResponse:
        """Records ``events`` in one stream; every one must apply."""
        response = self.lifecycle.CaptureEvents(
            iter([lpb.CaptureEventsRequest(tenant=self.tenant, events=list(events))]),
            timeout=RPC_TIMEOUT_S)
        assert response.recorded == len(events) and not response.failures, response
        return response

    def traced(self, code: str) -> tpb.TraceCodeResponse:
        return self.trace.TraceCode(tpb.TraceCodeRequest(tenant=self.tenant, code=code),
                                    timeout=RPC_TIMEOUT_S)

    def list_events(self, **fields: Any) -> tpb.ListEventsResponse:
        return self.trace.ListEvents(tpb.ListEventsRequest(tenant=self.tenant, **fields),
                                     timeout=RPC_TIMEOUT_S)


def _event(kind: Any, codes: list[str], party_id: str, when_ms: int, **fields: Any
           ) -> lpb.LifecycleEvent:
    return lpb.LifecycleEvent(kind=kind, codes=codes,
                              context=lpb.EventContext(party_id=party_id, when_ms=when_ms),
                              **fields)


@pytest.fixture
def _site(api: Api, gs1: Gs1Product, issue_channel: grpc.Channel,
          verify_channel: grpc.Channel) -> Iterator[_Site]:
    for party_id, region in (("PLANT", "110105"), ("DIST", "440305"), ("DIST-2", "310101"),
                             ("PHARM", "440106")):
        api.admin.AddParty(apb.AddPartyRequest(tenant=gs1.tenant, party=cpb.Party(
            party_id=party_id, name=party_id, region=region)), timeout=RPC_TIMEOUT_S)
    api.admin.AddBatch(apb.AddBatchRequest(tenant=gs1.tenant, batch=cpb.Batch(
        product=gs1.gtin, lot=MATERIALS_LOT, manufactured_on=gs1.manufactured_on,
        expires_on=gs1.expires_on, materials=MATERIALS)), timeout=RPC_TIMEOUT_S)
    yield _Site(api, gs1, lifecycle_pb2_grpc.LifecycleStub(issue_channel),
                trace_pb2_grpc.TraceStub(verify_channel))


@dataclass(frozen=True)
class _Journey:
    units: list[str]
    case: str
    pallet: str


def _pallet_journey(site: _Site) -> _Journey:
    """Three units packed in a case, on a pallet, shipped PLANT -> DIST and received (minutes
    1-5); DIST takes the case off the pallet (6) and ships the empty pallet on to DIST-2 (7);
    then takes units[0] out of the case (8) and ships the case to PHARM (9)."""
    units = site.codes(3)
    (case,) = site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    (pallet,) = site.codes(1, cpb.PACKAGING_LEVEL_PALLET)
    at = [T0 + i * MINUTE for i in range(10)]
    site.capture(
        _event(K.EVENT_KIND_COMMISSION, [*units, case, pallet], "PLANT", at[0]),
        _event(K.EVENT_KIND_AGGREGATE, units, "PLANT", at[1], parent=case),
        _event(K.EVENT_KIND_AGGREGATE, [case], "PLANT", at[2], parent=pallet),
        _event(K.EVENT_KIND_SHIP, [pallet], "PLANT", at[3], destination="DIST"),
        _event(K.EVENT_KIND_RECEIVE, [pallet], "DIST", at[4]),
        _event(K.EVENT_KIND_DISAGGREGATE, [case], "DIST", at[5], parent=pallet),
        _event(K.EVENT_KIND_SHIP, [pallet], "DIST", at[6], destination="DIST-2"),
        _event(K.EVENT_KIND_DISAGGREGATE, units[:1], "DIST", at[7], parent=case),
        _event(K.EVENT_KIND_SHIP, [case], "DIST", at[8], destination="PHARM"),
    )
    return _Journey(units, case, pallet)


def _steps(traced: tpb.TraceCodeResponse) -> list[tuple[str, str, str]]:
    """(kind, party, destination) of each event of a history."""
    return [(K.EventKind.Name(e.kind).removeprefix("EVENT_KIND_").lower(), e.party_id,
             e.destination) for e in traced.history]


# -- TraceCode ----------------------------------------------------------------------------------


def test_a_unit_shows_the_events_of_the_containers_it_was_in_while_it_was_in_them(
    _site: _Site,
) -> None:
    """A unit still in the case shows the pallet's shipment and receipt and the case's later
    shipment, but not the empty pallet's onward shipment after the case came off it."""
    journey = _pallet_journey(_site)
    assert _steps(_site.traced(journey.units[1])) == [
        ("commission", "PLANT", ""),
        ("aggregate", "PLANT", ""),
        ("aggregate", "PLANT", ""),          # the case onto the pallet
        ("ship", "PLANT", "DIST"),           # the pallet
        ("receive", "DIST", ""),             # the pallet
        ("disaggregate", "DIST", ""),        # the case off the pallet
        ("ship", "DIST", "PHARM"),           # the case
    ]


def test_a_unit_taken_out_of_its_case_does_not_show_the_cases_later_events(
    _site: _Site,
) -> None:
    """units[0], unpacked at DIST, does not show the case going on to PHARM without it."""
    journey = _pallet_journey(_site)
    steps = _steps(_site.traced(journey.units[0]))
    assert steps[-1] == ("disaggregate", "DIST", "")
    assert ("ship", "DIST", "PHARM") not in steps
    assert ("ship", "DIST", "DIST-2") not in steps


def test_events_of_a_pack_itself_have_no_via_and_its_containers_events_name_the_case(
    _site: _Site,
) -> None:
    """`via` is empty for the unit's own events and names the case for the case's shipment."""
    journey = _pallet_journey(_site)
    history = _site.traced(journey.units[1]).history
    assert [e.via for e in history][:2] == ["", ""]
    assert history[-1].via == journey.case


def test_the_pallets_shipment_in_a_units_history_names_the_pallet_as_via(_site: _Site) -> None:
    """The pallet's shipment shows in the unit's history with via = the pallet."""
    journey = _pallet_journey(_site)
    shipment = _site.traced(journey.units[1]).history[3]
    assert (shipment.kind, shipment.via) == (K.EVENT_KIND_SHIP, journey.pallet)


def test_a_unit_dispensed_from_an_opened_case_does_not_show_the_cases_later_shipment(
    _site: _Site,
) -> None:
    """After a unit is sold out of a case, the case's shipment elsewhere is not in its history."""
    units = _site.codes(2)
    (case,) = _site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    _site.capture(
        _event(K.EVENT_KIND_COMMISSION, [*units, case], "DIST", T0),
        _event(K.EVENT_KIND_AGGREGATE, units, "DIST", T0 + MINUTE, parent=case),
        _event(K.EVENT_KIND_DECOMMISSION, units[:1], "DIST", T0 + 2 * MINUTE,
               target=cpb.CODE_STATUS_SAMPLE),
        _event(K.EVENT_KIND_SHIP, [case], "DIST", T0 + 3 * MINUTE, destination="PHARM"),
    )
    traced = _site.traced(units[0])
    assert list(traced.parents) == []
    assert ("ship", "DIST", "PHARM") not in _steps(traced)


def test_a_unit_lists_its_container_chain_innermost_first(_site: _Site) -> None:
    """Before unpacking, a unit's parents are [case, pallet]; the pallet has none."""
    units = _site.codes(1)
    (case,) = _site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    (pallet,) = _site.codes(1, cpb.PACKAGING_LEVEL_PALLET)
    _site.capture(
        _event(K.EVENT_KIND_COMMISSION, [*units, case, pallet], "PLANT", T0),
        _event(K.EVENT_KIND_AGGREGATE, units, "PLANT", T0, parent=case),
        _event(K.EVENT_KIND_AGGREGATE, [case], "PLANT", T0, parent=pallet),
    )
    assert list(_site.traced(units[0]).parents) == [case, pallet]
    assert list(_site.traced(pallet).parents) == []


def test_a_case_lists_its_contents_and_their_count(_site: _Site) -> None:
    """A case's trace lists the units packed in it now, and how many there are."""
    journey = _pallet_journey(_site)
    traced = _site.traced(journey.case)
    assert set(traced.children) == set(journey.units[1:])
    assert traced.child_count == 2
    assert traced.level == cpb.PACKAGING_LEVEL_CASE


def test_a_trace_shows_where_a_pack_is_now(_site: _Site) -> None:
    """Status, holder (the addressee while in transit) and in-transit flag are current."""
    journey = _pallet_journey(_site)
    in_case = _site.traced(journey.units[1])
    assert (in_case.status, in_case.holder, in_case.in_transit) == (
        cpb.CODE_STATUS_ACTIVE, "PHARM", True)
    unpacked = _site.traced(journey.units[0])
    assert (unpacked.holder, unpacked.in_transit) == ("DIST", False)


def test_a_trace_shows_the_product_batch_and_raw_material_lots(_site: _Site) -> None:
    """A pack of the batch made from supplier lots names the product, lot, expiry and every
    material with its supplier and supplier lot."""
    (unit,) = _site.codes(1, lot=MATERIALS_LOT)
    _site.capture(_event(K.EVENT_KIND_COMMISSION, [unit], "PLANT", T0))
    traced = _site.traced(unit)
    assert traced.product.gtin == _site.product.gtin
    assert (traced.batch.lot, traced.batch.expires_on) == (MATERIALS_LOT,
                                                           _site.product.expires_on)
    assert [(m.material, m.supplier, m.supplier_lot) for m in traced.batch.materials] == [
        (m.material, m.supplier, m.supplier_lot) for m in MATERIALS]


def test_traced_events_carry_their_gs1_cbv_business_step_and_disposition(
    _site: _Site,
) -> None:
    """Commission, ship, receive and dispense read as CBV commissioning/active,
    shipping/in_transit, receiving/in_progress and dispensing/dispensed."""
    (unit,) = _site.codes(1)
    _site.capture(
        _event(K.EVENT_KIND_COMMISSION, [unit], "PLANT", T0),
        _event(K.EVENT_KIND_SHIP, [unit], "PLANT", T0 + MINUTE, destination="PHARM"),
        _event(K.EVENT_KIND_RECEIVE, [unit], "PHARM", T0 + 2 * MINUTE),
        _event(K.EVENT_KIND_DECOMMISSION, [unit], "PHARM", T0 + 3 * MINUTE,
               target=cpb.CODE_STATUS_DISPENSED),
    )
    history = _site.traced(unit).history
    assert [(e.biz_step, e.disposition) for e in history] == [
        ("commissioning", "active"), ("shipping", "in_transit"), ("receiving", "in_progress"),
        ("dispensing", "dispensed")]
    assert history[-1].target == cpb.CODE_STATUS_DISPENSED
    assert [e.when_ms for e in history] == [T0 + i * MINUTE for i in range(4)]


def test_tracing_a_code_the_ledger_does_not_hold_is_not_found(
    _site: _Site, refused: Refused, forge: Callable[..., list[str]]
) -> None:
    """A well-formed code never issued by the tenant is NOT_FOUND naming `code`."""
    from tracecore.codes import Scheme

    (stranger,) = forge(_site.tenant, Scheme.GS1, _site.product.gtin, 1)
    refused(grpc.StatusCode.NOT_FOUND, "code", lambda: _site.traced(stranger))


def test_tracing_text_that_is_not_a_code_is_refused_naming_code(
    _site: _Site, refused: Refused
) -> None:
    """Unparseable input is INVALID_ARGUMENT naming `code`."""
    refused(INVALID, "code", lambda: _site.traced("not a code"))


# -- ListEvents ---------------------------------------------------------------------------------


def _seqs(response: tpb.ListEventsResponse) -> list[int]:
    return [e.seq for e in response.events]


def test_listing_by_party_finds_events_at_it_and_shipments_to_it(_site: _Site) -> None:
    """Events by DIST-2: only the pallet's shipment addressed to it."""
    journey = _pallet_journey(_site)
    listed = _site.list_events(party_id="DIST-2")
    assert [(e.kind, e.party_id, e.destination, list(e.codes)) for e in listed.events] == [
        (K.EVENT_KIND_SHIP, "DIST", "DIST-2", [journey.pallet])]
    by_dist = _site.list_events(party_id="DIST")
    assert len(by_dist.events) == 6  # received at, unpacked at (x2), shipped from (x2), to
    assert all("DIST" in (e.party_id, e.destination) for e in by_dist.events)


def test_listing_by_batch_finds_only_events_about_its_packs(_site: _Site) -> None:
    """Events of the materials batch: its own commission and shipment, none of the other batch."""
    (ours,) = _site.codes(1, lot=MATERIALS_LOT)
    (theirs,) = _site.codes(1)
    _site.capture(
        _event(K.EVENT_KIND_COMMISSION, [ours], "PLANT", T0),
        _event(K.EVENT_KIND_COMMISSION, [theirs], "PLANT", T0),
        _event(K.EVENT_KIND_SHIP, [theirs], "PLANT", T0 + MINUTE, destination="DIST"),
        _event(K.EVENT_KIND_SHIP, [ours], "PLANT", T0 + MINUTE, destination="PHARM"),
    )
    listed = _site.list_events(product=_site.product.gtin, lot=MATERIALS_LOT)
    assert [(e.kind, list(e.codes)) for e in listed.events] == [
        (K.EVENT_KIND_COMMISSION, [ours]), (K.EVENT_KIND_SHIP, [ours])]
    assert len(_site.list_events(product=_site.product.gtin).events) == 4


def test_listing_by_batch_finds_a_mixed_event_whatever_the_position_of_its_pack(
    _site: _Site,
) -> None:
    """A shipment of 100 packs of one batch and then one of the materials batch is listed for
    the materials batch."""
    theirs = _site.codes(100)
    (ours,) = _site.codes(1, lot=MATERIALS_LOT)
    _site.capture(_event(K.EVENT_KIND_COMMISSION, [*theirs, ours], "PLANT", T0))
    listed = _site.list_events(product=_site.product.gtin, lot=MATERIALS_LOT)
    assert [e.kind for e in listed.events] == [K.EVENT_KIND_COMMISSION]


def test_listing_by_time_window_includes_the_start_and_excludes_the_end(_site: _Site) -> None:
    """from_ms is inclusive and to_ms exclusive: minutes [3, 5) of the journey are the pallet's
    shipment and receipt."""
    _pallet_journey(_site)
    listed = _site.list_events(from_ms=T0 + 3 * MINUTE, to_ms=T0 + 5 * MINUTE)
    assert [(e.kind, e.when_ms) for e in listed.events] == [
        (K.EVENT_KIND_SHIP, T0 + 3 * MINUTE), (K.EVENT_KIND_RECEIVE, T0 + 4 * MINUTE)]


def test_listing_five_events_two_at_a_time_takes_three_pages(_site: _Site) -> None:
    """Five matching events at page size 2 come as pages of 2, 2 and 1, the last without a
    next page token, together exactly the unpaged listing in ledger order."""
    for i in range(5):
        (unit,) = _site.codes(1)
        _site.capture(_event(K.EVENT_KIND_COMMISSION, [unit], "PHARM", T0 + i))
    (elsewhere,) = _site.codes(1)
    _site.capture(_event(K.EVENT_KIND_COMMISSION, [elsewhere], "PLANT", T0))
    sizes, tokens, seqs = [], [], []
    token = ""
    for _ in range(5):
        page = _site.list_events(party_id="PHARM", page_size=2, page_token=token)
        sizes.append(len(page.events))
        seqs += _seqs(page)
        token = page.next_page_token
        tokens.append(bool(token))
        if not token:
            break
    assert (sizes, tokens) == ([2, 2, 1], [True, True, False])
    assert seqs == _seqs(_site.list_events(party_id="PHARM"))
    assert seqs == sorted(set(seqs))


def test_a_window_that_ends_before_it_starts_is_refused_naming_to_ms(
    _site: _Site, refused: Refused
) -> None:
    """to_ms equal to or before from_ms is INVALID_ARGUMENT naming `to_ms`."""
    refused(INVALID, "to_ms", lambda: _site.list_events(from_ms=T0, to_ms=T0))
    refused(INVALID, "to_ms", lambda: _site.list_events(from_ms=T0, to_ms=T0 - 1))


def test_bad_listing_arguments_are_refused_naming_the_field(
    _site: _Site, refused: Refused
) -> None:
    """A lot without its product, a page over 1000 and a forged page token name their field."""
    refused(INVALID, "product", lambda: _site.list_events(lot=_site.product.lot))
    refused(INVALID, "page_size", lambda: _site.list_events(page_size=1001))
    refused(INVALID, "page_token", lambda: _site.list_events(page_token="abc"))
    refused(grpc.StatusCode.NOT_FOUND, "lot",
            lambda: _site.list_events(product=_site.product.gtin, lot="NO-SUCH-LOT"))
