"""pharmatrace.v1.Lifecycle over real gRPC: a pack's journey from the line to the patient, bad
arguments refused naming the field, per-code answers, bulk capture and returned codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Gs1Product

Refused = Callable[[grpc.StatusCode, str | None, Callable[[], object]], str]
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PARTIES = (("PLANT", cpb.PARTY_KIND_PLANT, "110105"),
           ("DIST", cpb.PARTY_KIND_DISTRIBUTOR, "440305"),
           ("PHARM", cpb.PARTY_KIND_PHARMACY, "440106"),
           ("PHARM-2", cpb.PARTY_KIND_PHARMACY, "440106"))


@dataclass(frozen=True)
class _Site:
    """A test tenant with a GS1 product, its batch, four parties, and the Lifecycle and Trace
    stubs."""

    api: Api
    product: Gs1Product
    lifecycle: lifecycle_pb2_grpc.LifecycleStub
    trace: trace_pb2_grpc.TraceStub

    @property
    def tenant(self) -> str:
        return self.product.tenant

    def codes(self, n: int, level: int = cpb.PACKAGING_LEVEL_UNIT) -> list[str]:
        """``n`` new codes of the batch, issued at ``level``."""
        return self.api.codes(self.tenant, self.product.gtin, n, lot=self.product.lot,
                              level=level)

    def context(self, party_id: str = "", **fields: object) -> lpb.EventContext:
        return lpb.EventContext(party_id=party_id, **fields)  # type: ignore[arg-type]

    def commission(self, codes: list[str], party_id: str = "PLANT", **fields: object
                   ) -> lpb.LifecycleResponse:
        return self.lifecycle.Commission(lpb.CommissionRequest(
            tenant=self.tenant, context=self.context(party_id, **fields), codes=codes),
            timeout=RPC_TIMEOUT_S)

    def aggregate(self, parent: str, children: list[str], party_id: str = "PLANT"
                  ) -> lpb.LifecycleResponse:
        return self.lifecycle.Aggregate(lpb.AggregateRequest(
            tenant=self.tenant, context=self.context(party_id), parent=parent,
            children=children), timeout=RPC_TIMEOUT_S)

    def disaggregate(self, parent: str, children: list[str], party_id: str
                     ) -> lpb.LifecycleResponse:
        return self.lifecycle.Disaggregate(lpb.AggregateRequest(
            tenant=self.tenant, context=self.context(party_id), parent=parent,
            children=children), timeout=RPC_TIMEOUT_S)

    def ship(self, codes: list[str], party_id: str, destination: str) -> lpb.LifecycleResponse:
        return self.lifecycle.Ship(lpb.ShipRequest(
            tenant=self.tenant, context=self.context(party_id), codes=codes,
            destination=destination), timeout=RPC_TIMEOUT_S)

    def receive(self, codes: list[str], party_id: str) -> lpb.LifecycleResponse:
        return self.lifecycle.Receive(lpb.ReceiveRequest(
            tenant=self.tenant, context=self.context(party_id), codes=codes),
            timeout=RPC_TIMEOUT_S)

    def dispense(self, codes: list[str], party_id: str = "PHARM", **fields: object
                 ) -> lpb.LifecycleResponse:
        return self.lifecycle.Decommission(lpb.DecommissionRequest(
            tenant=self.tenant, context=self.context(party_id, **fields), codes=codes,
            target=cpb.CODE_STATUS_DISPENSED), timeout=RPC_TIMEOUT_S)

    def capture(self, messages: list[lpb.CaptureEventsRequest]) -> lpb.CaptureEventsResponse:
        return self.lifecycle.CaptureEvents(iter(messages), timeout=RPC_TIMEOUT_S)

    def traced(self, code: str) -> tpb.TraceCodeResponse:
        return self.trace.TraceCode(tpb.TraceCodeRequest(tenant=self.tenant, code=code),
                                    timeout=RPC_TIMEOUT_S)

    def status(self, code: str) -> int:
        return self.traced(code).status


@pytest.fixture
def _site(api: Api, gs1: Gs1Product, issue_channel: grpc.Channel,
          verify_channel: grpc.Channel) -> Iterator[_Site]:
    for party_id, kind, region in PARTIES:
        api.admin.AddParty(apb.AddPartyRequest(tenant=gs1.tenant, party=cpb.Party(
            party_id=party_id, name=party_id, kind=kind, region=region)), timeout=RPC_TIMEOUT_S)
    yield _Site(api, gs1, lifecycle_pb2_grpc.LifecycleStub(issue_channel),
                trace_pb2_grpc.TraceStub(verify_channel))


def _applied(response: lpb.LifecycleResponse) -> lpb.LifecycleResponse:
    assert response.applied and not response.failures, response
    return response


# -- the journey --------------------------------------------------------------------------------


def test_a_pack_travels_from_the_line_to_the_patient_and_cannot_be_dispensed_twice(
    _site: _Site,
) -> None:
    """Issue, commission, aggregate, ship, receive, dispense: Verify then says DISPENSED with
    the already-decommissioned alert, and a second dispense is refused as already dispensed."""
    units = _site.codes(6)
    (case,) = _site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    (pallet,) = _site.codes(1, cpb.PACKAGING_LEVEL_PALLET)
    assert _applied(_site.commission([*units, case, pallet])).changed == 8
    _applied(_site.aggregate(case, units))
    _applied(_site.aggregate(pallet, [case]))
    assert _applied(_site.ship([pallet], "PLANT", "DIST")).changed == 8
    _applied(_site.receive([pallet], "DIST"))
    _applied(_site.disaggregate(pallet, [], "DIST"))
    _applied(_site.disaggregate(case, [], "DIST"))
    _applied(_site.ship(units[:2], "DIST", "PHARM"))
    _applied(_site.receive(units[:2], "PHARM"))
    dispensed = _applied(_site.dispense(units[:1]))
    assert (dispensed.changed, len(dispensed.event_seqs)) == (1, 1)

    answer = _site.api.verify(_site.tenant, units[0])
    assert answer.verdict == vpb.VERDICT_GENUINE
    assert answer.status == cpb.CODE_STATUS_DISPENSED
    assert vpb.ALERT_KIND_ALREADY_DECOMMISSIONED in answer.alerts
    still_on_sale = _site.api.verify(_site.tenant, units[1])
    assert still_on_sale.status == cpb.CODE_STATUS_ACTIVE
    assert vpb.ALERT_KIND_ALREADY_DECOMMISSIONED not in still_on_sale.alerts

    again = _site.dispense(units[:1])
    assert not again.applied
    assert [(f.code, f.reason) for f in again.failures] == [(units[0], "already dispensed")]


def test_the_dispensing_pharmacy_can_undo_a_dispense(_site: _Site) -> None:
    """Undo by the pharmacy that dispensed puts the pack back on sale; another pharmacy may not."""
    (unit,) = _site.codes(1)
    _applied(_site.commission([unit], "PHARM"))
    _applied(_site.dispense([unit]))
    other = _site.lifecycle.Undo(lpb.UndoRequest(
        tenant=_site.tenant, context=_site.context("PHARM-2"), codes=[unit]),
        timeout=RPC_TIMEOUT_S)
    assert not other.applied
    assert "only the party that decommissioned it" in other.failures[0].reason
    _applied(_site.lifecycle.Undo(lpb.UndoRequest(
        tenant=_site.tenant, context=_site.context("PHARM"), codes=[unit]),
        timeout=RPC_TIMEOUT_S))
    assert _site.api.verify(_site.tenant, unit).status == cpb.CODE_STATUS_ACTIVE


def test_a_receipt_by_another_party_than_the_addressee_is_applied_and_noted(
    _site: _Site,
) -> None:
    """A case shipped to DIST and received by PHARM is PHARM's; the answer carries a note."""
    (case,) = _site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    _applied(_site.commission([case]))
    _applied(_site.ship([case], "PLANT", "DIST"))
    received = _applied(_site.receive([case], "PHARM"))
    assert list(received.notes) == [f"{case} was shipped to DIST but received by PHARM"]
    assert _site.traced(case).holder == "PHARM"


def test_the_same_event_id_twice_is_answered_as_a_duplicate(_site: _Site) -> None:
    """A retried commission under the same event id changes nothing and says it was a
    duplicate."""
    units = _site.codes(2)
    first = _applied(_site.commission(units, event_id="line-1:batch-7:1"))
    again = _applied(_site.commission(units, event_id="line-1:batch-7:1"))
    assert (first.duplicates, first.changed) == (0, 2)
    assert (again.duplicates, again.changed, list(again.event_seqs)) == (1, 0, [])


def test_destroying_a_case_destroys_its_contents(_site: _Site) -> None:
    """Destroy on a case reaches every unit inside; Destroy with `stolen` reports theft."""
    units = _site.codes(2)
    (case,) = _site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    (other,) = _site.codes(1)
    _applied(_site.commission([*units, case, other]))
    _applied(_site.aggregate(case, units))
    destroyed = _applied(_site.lifecycle.Destroy(lpb.DestroyRequest(
        tenant=_site.tenant, context=_site.context("PLANT"), codes=[case],
        reason="water damage"), timeout=RPC_TIMEOUT_S))
    _applied(_site.lifecycle.Destroy(lpb.DestroyRequest(
        tenant=_site.tenant, context=_site.context("PLANT"), codes=[other], stolen=True),
        timeout=RPC_TIMEOUT_S))
    assert destroyed.changed == 3
    assert {_site.status(u) for u in units} == {cpb.CODE_STATUS_DESTROYED}
    assert _site.status(other) == cpb.CODE_STATUS_STOLEN


# -- per-code answers ---------------------------------------------------------------------------


def test_an_unparseable_code_is_reported_and_nothing_is_applied(_site: _Site) -> None:
    """One code that is not a code: the answer names it with a reason, the others stay
    ISSUED."""
    units = _site.codes(2)
    response = _site.commission([units[0], "(01)123", units[1]])
    assert not response.applied
    assert [f.code for f in response.failures] == ["(01)123"]
    assert response.failures[0].reason
    assert {_site.status(u) for u in units} == {cpb.CODE_STATUS_ISSUED}


def test_with_best_effort_the_parseable_codes_are_applied(_site: _Site) -> None:
    """With best_effort the good codes are commissioned and each bad one is reported."""
    units = _site.codes(2)
    response = _site.commission([units[0], "garbage", units[1], "(01)09501101530003(21)"],
                                best_effort=True)
    assert response.applied
    assert response.changed == 2
    assert [f.code for f in response.failures] == ["garbage", "(01)09501101530003(21)"]
    assert {_site.status(u) for u in units} == {cpb.CODE_STATUS_ACTIVE}


def test_a_code_never_issued_is_reported_as_such(_site: _Site, forge: Callable[..., list[str]]
                                                 ) -> None:
    """A correctly signed code the ledger never stored is refused as not issued."""
    from tracecore.codes import Scheme

    (stranger,) = forge(_site.tenant, Scheme.GS1, _site.product.gtin, 1)
    response = _site.commission([stranger])
    assert not response.applied
    assert [(f.code, f.reason) for f in response.failures] == [
        (stranger, "not issued by this tenant")]


# -- bad arguments --------------------------------------------------------------------------------


def test_a_request_without_codes_is_refused_naming_codes(_site: _Site, refused: Refused) -> None:
    """Commission with no codes is INVALID_ARGUMENT naming `codes`."""
    refused(INVALID, "codes", lambda: _site.commission([]))


def test_more_than_100000_codes_are_refused_naming_codes(_site: _Site, refused: Refused) -> None:
    """100,001 codes in one request is INVALID_ARGUMENT naming `codes`, before any is read."""
    message = refused(INVALID, "codes", lambda: _site.commission(["x"] * 100_001))
    assert "100,000" in message


@pytest.mark.parametrize("target", [cpb.CODE_STATUS_UNSPECIFIED, cpb.CODE_STATUS_ACTIVE,
                                    cpb.CODE_STATUS_DESTROYED, 99])
def test_decommission_to_an_unknown_or_wrong_target_is_refused_naming_target(
    _site: _Site, refused: Refused, target: int
) -> None:
    """Only the six decommissioned statuses are targets; anything else names `target`."""
    (unit,) = _site.codes(1)
    _applied(_site.commission([unit]))
    refused(INVALID, "target", lambda: _site.lifecycle.Decommission(lpb.DecommissionRequest(
        tenant=_site.tenant, context=_site.context("PLANT"), codes=[unit],
        target=target), timeout=RPC_TIMEOUT_S))  # type: ignore[arg-type]
    assert _site.status(unit) == cpb.CODE_STATUS_ACTIVE


@pytest.mark.parametrize("offset", ["+8:00", "08:00", "+15:00", "UTC", "+08:60"])
def test_a_malformed_time_zone_offset_is_refused_naming_it(
    _site: _Site, refused: Refused, offset: str
) -> None:
    """tz_offset must look like +08:00; anything else names `context.tz_offset`."""
    (unit,) = _site.codes(1)
    refused(INVALID, "context.tz_offset", lambda: _site.commission([unit], tz_offset=offset))


def test_a_receipt_without_the_receiving_party_is_refused_naming_it(
    _site: _Site, refused: Refused
) -> None:
    """Receive needs context.party_id."""
    (unit,) = _site.codes(1)
    refused(INVALID, "context.party_id", lambda: _site.receive([unit], ""))


def test_an_undo_without_the_party_is_refused_naming_it(_site: _Site, refused: Refused) -> None:
    """Undo needs context.party_id: only the decommissioning party may undo."""
    (unit,) = _site.codes(1)
    refused(INVALID, "context.party_id", lambda: _site.lifecycle.Undo(lpb.UndoRequest(
        tenant=_site.tenant, codes=[unit]), timeout=RPC_TIMEOUT_S))


def test_a_malformed_party_id_is_refused_naming_it(_site: _Site, refused: Refused) -> None:
    """A party id with characters no party id has names `context.party_id`."""
    (unit,) = _site.codes(1)
    refused(INVALID, "context.party_id", lambda: _site.commission([unit], "PLANT #1"))


def test_an_unknown_party_is_refused_naming_context_party_id(
    _site: _Site, refused: Refused
) -> None:
    """An event at a party the tenant never registered is NOT_FOUND naming context.party_id."""
    (unit,) = _site.codes(1)
    refused(grpc.StatusCode.NOT_FOUND, "context.party_id",
            lambda: _site.commission([unit], "NOBODY"))


def test_an_unknown_party_is_refused_as_not_found_and_changes_nothing(
    _site: _Site, refused: Refused
) -> None:
    """An event at a party the tenant never registered is NOT_FOUND naming the party."""
    (unit,) = _site.codes(1)
    message = refused(grpc.StatusCode.NOT_FOUND, "NOBODY",
                      lambda: _site.commission([unit], "NOBODY"))
    assert "not registered" in message
    assert _site.status(unit) == cpb.CODE_STATUS_ISSUED


def test_a_shipment_to_an_unknown_or_missing_destination_is_refused_naming_it(
    _site: _Site, refused: Refused
) -> None:
    """Ship without a destination is INVALID_ARGUMENT, to an unregistered one NOT_FOUND."""
    (unit,) = _site.codes(1)
    _applied(_site.commission([unit]))
    refused(INVALID, "destination", lambda: _site.ship([unit], "PLANT", ""))
    refused(grpc.StatusCode.NOT_FOUND, "destination", lambda: _site.ship([unit], "PLANT", "MARS"))
    assert not _site.traced(unit).in_transit


def test_an_aggregation_without_a_readable_parent_is_refused_naming_parent(
    _site: _Site, refused: Refused
) -> None:
    """Aggregate needs a parent that parses as a code."""
    units = _site.codes(1)
    refused(INVALID, "parent", lambda: _site.aggregate("", units))
    refused(INVALID, "parent", lambda: _site.aggregate("not a code", units))


def test_overlong_reason_and_event_id_are_refused_naming_them(
    _site: _Site, refused: Refused
) -> None:
    """A reason over 500 characters, an event id over 256, each name their field."""
    (unit,) = _site.codes(1)
    refused(INVALID, "reason", lambda: _site.lifecycle.Destroy(lpb.DestroyRequest(
        tenant=_site.tenant, codes=[unit], reason="x" * 501), timeout=RPC_TIMEOUT_S))
    refused(INVALID, "context.event_id", lambda: _site.commission([unit], event_id="e" * 257))


def test_an_event_time_no_calendar_holds_is_refused_naming_context_when_ms(
    _site: _Site, refused: Refused
) -> None:
    """An undo dated in the year 146 million is INVALID_ARGUMENT naming context.when_ms."""
    (unit,) = _site.codes(1)
    _applied(_site.commission([unit], "PHARM"))
    _applied(_site.dispense([unit]))
    refused(INVALID, "context.when_ms", lambda: _site.lifecycle.Undo(lpb.UndoRequest(
        tenant=_site.tenant, context=_site.context("PHARM", when_ms=2**62), codes=[unit]),
        timeout=RPC_TIMEOUT_S))


def test_an_unknown_tenant_is_refused_naming_it(_site: _Site, refused: Refused) -> None:
    """Lifecycle calls for a tenant that does not exist are NOT_FOUND naming `tenant`."""
    (unit,) = _site.codes(1)
    refused(grpc.StatusCode.NOT_FOUND, "tenant", lambda: _site.lifecycle.Commission(
        lpb.CommissionRequest(tenant="no-such-tenant", codes=[unit]), timeout=RPC_TIMEOUT_S))


# -- bulk capture --------------------------------------------------------------------------------


def _event(kind: Any, codes: list[str], party_id: str = "PLANT", **fields: Any
           ) -> lpb.LifecycleEvent:
    return lpb.LifecycleEvent(kind=kind, codes=codes,
                              context=lpb.EventContext(party_id=party_id), **fields)


def test_a_mixed_capture_stream_is_applied_in_one_go(_site: _Site) -> None:
    """Commission, aggregate and ship sent in three messages are all recorded: the pallet and
    everything on it end up in transit to DIST."""
    units = _site.codes(4)
    (case,) = _site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    (pallet,) = _site.codes(1, cpb.PACKAGING_LEVEL_PALLET)
    response = _site.capture([
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_COMMISSION, [*units, case, pallet])]),
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_AGGREGATE, units, parent=case),
            _event(lpb.EVENT_KIND_AGGREGATE, [case], parent=pallet)]),
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_SHIP, [pallet], destination="DIST")]),
    ])
    assert (response.events, response.recorded, list(response.failures)) == (4, 4, [])
    assert response.changed == 6 + 5 + 2 + 6
    traced = _site.traced(units[0])
    assert (traced.in_transit, traced.holder, list(traced.parents)) == (True, "DIST",
                                                                       [case, pallet])


def test_a_capture_stream_with_one_bad_event_applies_nothing(_site: _Site) -> None:
    """Without best effort, a refused aggregation in the second message undoes the whole
    stream: the commission of the first is not applied either."""
    units = _site.codes(2)
    (case,) = _site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    (never_commissioned,) = _site.codes(1, cpb.PACKAGING_LEVEL_PALLET)
    response = _site.capture([
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_COMMISSION, [*units, case])]),
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_AGGREGATE, units, parent=case),
            _event(lpb.EVENT_KIND_AGGREGATE, [case], parent=never_commissioned)]),
    ])
    assert (response.events, response.recorded, response.changed) == (3, 0, 0)
    assert [(f.event_index, f.code) for f in response.failures] == [(2, case)]
    assert "ISSUED" in response.failures[0].reason
    assert {_site.status(c) for c in [*units, case]} == {cpb.CODE_STATUS_ISSUED}


def test_a_capture_stream_with_best_effort_keeps_the_good_events(_site: _Site) -> None:
    """With best effort, the events that pass are recorded; the bad one is reported by its
    index in the whole stream."""
    units = _site.codes(2)
    (case,) = _site.codes(1, cpb.PACKAGING_LEVEL_CASE)
    (never_commissioned,) = _site.codes(1, cpb.PACKAGING_LEVEL_PALLET)
    response = _site.capture([
        lpb.CaptureEventsRequest(tenant=_site.tenant, best_effort=True, events=[
            _event(lpb.EVENT_KIND_COMMISSION, [*units, case])]),
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_AGGREGATE, [case], parent=never_commissioned),
            _event(lpb.EVENT_KIND_AGGREGATE, units, parent=case)]),
    ])
    assert (response.events, response.recorded) == (3, 2)
    assert [(f.event_index, f.code) for f in response.failures] == [(1, case)]
    assert set(_site.traced(case).children) == set(units)


def test_a_capture_stream_with_an_unparseable_code_applies_nothing(_site: _Site) -> None:
    """A code that does not parse in any message fails the stream before anything is applied."""
    units = _site.codes(2)
    response = _site.capture([
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_COMMISSION, units)]),
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_COMMISSION, ["garbage"])]),
    ])
    assert (response.recorded, [(f.event_index, f.code) for f in response.failures]) == (
        0, [(1, "garbage")])
    assert {_site.status(u) for u in units} == {cpb.CODE_STATUS_ISSUED}


def test_a_capture_stream_mixing_tenants_is_refused(_site: _Site, refused: Refused) -> None:
    """Every message of a stream must name the same tenant."""
    units = _site.codes(1)
    refused(INVALID, "tenant", lambda: _site.capture([
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_COMMISSION, units)]),
        lpb.CaptureEventsRequest(tenant="someone-else", events=[]),
    ]))


def test_a_captured_commission_with_an_unknown_packaging_level_is_refused(
    _site: _Site, refused: Refused
) -> None:
    """A bulk-captured commission with packaging level 99 is INVALID_ARGUMENT naming `level`."""
    units = _site.codes(1)
    refused(INVALID, "level", lambda: _site.capture([
        lpb.CaptureEventsRequest(tenant=_site.tenant, events=[
            _event(lpb.EVENT_KIND_COMMISSION, units, level=99)])]))


# -- returned codes ------------------------------------------------------------------------------


def test_returned_codes_are_voided_journalled_and_counted_on_their_pool(_site: _Site) -> None:
    """ReturnCodes voids unused codes through the lifecycle: they are VOIDED, their history
    shows the void, GetPool counts them as returned, and they can never be commissioned."""
    request_id = _site.api.new_request_id()
    codes = _site.api.codes(_site.tenant, _site.product.gtin, 5, lot=_site.product.lot,
                            request_id=request_id)
    returned = _site.api.give_back(_site.tenant, codes[:3], ipb.RETURN_REASON_SCRAPPED)
    assert (returned.voided, list(returned.failures)) == (3, [])
    assert _site.api.pool(_site.tenant, request_id).returned == 3
    traced = _site.traced(codes[0])
    assert traced.status == cpb.CODE_STATUS_VOIDED
    assert [(e.kind, e.reason) for e in traced.history] == [(lpb.EVENT_KIND_VOID, "scrapped")]
    again = _site.commission(codes[:1])
    assert not again.applied
    assert "VOIDED" in again.failures[0].reason


def test_returning_a_commissioned_code_is_refused_for_that_code_only(_site: _Site) -> None:
    """A code already on a pack cannot be returned; the others in the request are voided."""
    request_id = _site.api.new_request_id()
    codes = _site.api.codes(_site.tenant, _site.product.gtin, 3, lot=_site.product.lot,
                            request_id=request_id)
    _applied(_site.commission(codes[1:2]))
    returned = _site.api.give_back(_site.tenant, codes)
    assert returned.voided == 2
    assert [(f.index, f.code) for f in returned.failures] == [(1, codes[1])]
    assert _site.api.pool(_site.tenant, request_id).returned == 2
    assert _site.status(codes[1]) == cpb.CODE_STATUS_ACTIVE
