"""Diversion (窜货) and clone alerts over real gRPC, how alerts are listed, and bad input refused
naming the field."""

from __future__ import annotations

import threading
import time

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration import oversight_chain
from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.oversight_chain import (
    AMOX,
    CASE,
    IBU,
    INVALID,
    NOT_FOUND,
    SETTLE_S,
    SUPPLIER,
    Chain,
    Refused,
)

chain = oversight_chain.chain  # the fixture: a fresh tenant with the chain registered


# -- diversion --------------------------------------------------------------------------------


def test_receipts_and_dispensings_outside_the_authorised_regions_raise_one_alert_each(
        chain: Chain) -> None:
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
        chain: Chain) -> None:
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


def test_batches_without_authorised_regions_are_never_diverted(chain: Chain) -> None:
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
        chain: Chain) -> None:
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
        chain: Chain) -> None:
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
        chain: Chain) -> None:
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
        chain: Chain) -> None:
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


def test_bad_input_is_refused_naming_the_field(chain: Chain, refused: Refused) -> None:
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


def test_alert_day_filters_cut_at_the_tenants_local_midnight(chain: Chain) -> None:
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
