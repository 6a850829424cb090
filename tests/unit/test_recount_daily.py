"""Changing a tenant's zone recounts its daily counters: they equal a brute-force count of the
receipts by local day, across daylight-saving changes."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pharmatrace.v1 import common_pb2 as cpb

from tests.ledgers import dev_codes
from tracecore import localday
from tracecore.codes import Code, Scheme
from tracecore.events import Event, EventKind
from tracecore.ledger import policy
from tracecore.ledger.counters import Flow, flow_counts
from tracecore.ledger.lifecycle import Request, apply
from tracecore.ledger.store import Ledger, PoolRequest

GTIN = "06901234567892"
LOT = "L1"
T0 = 1_772_352_000_000  # 2026-03-01 08:00 UTC
ZONES = ("America/New_York", "Australia/Lord_Howe", "Asia/Shanghai", "UTC")
#: UTC instants of daylight-saving changes in 2026: New York springs forward and falls back,
#: Lord Howe moves by half an hour each way.
CHANGES_MS = [int(dt.datetime.fromisoformat(s).timestamp() * 1000) for s in (
    "2026-03-08T07:00:00+00:00", "2026-11-01T06:00:00+00:00",
    "2026-04-04T15:00:00+00:00", "2026-10-03T15:30:00+00:00")]

instants = st.builds(lambda change, minutes: change + minutes * 60_000,
                     st.sampled_from(CHANGES_MS), st.integers(-36 * 60, 36 * 60))


def _brute_force(received_ms: list[int], zone: str) -> Counter[str]:
    """Receipts per local date, by converting each instant on its own."""
    return Counter(dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).date().isoformat()
                   for ms in received_ms)


def _stored(ledger: Ledger) -> Counter[str]:
    with ledger.env.read() as txn:
        rows = flow_counts(txn, ledger.db["counters"], 0, 1 << 31)
    return Counter({localday.iso_date(day): n for day, _, _, flow, n in rows
                    if flow == Flow.RECEIVED})


@settings(max_examples=12, deadline=None)
@given(received_ms=st.lists(instants, min_size=1, max_size=8), first=st.sampled_from(ZONES),
       then=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3))
def test_zone_changes_recount_daily_counters_like_a_brute_force_count(
        received_ms: list[int], first: str, then: list[str]) -> None:
    """Receipts around DST changes count on the local day of the tenant's zone, and after each
    zone change (and an explicit recount) the daily counters equal a brute-force count."""
    with tempfile.TemporaryDirectory() as root:
        ledger = Ledger(Path(root) / "ledger", tenant="t", codes=dev_codes("t"))
        try:
            policy.write(ledger, time_zone=first)
            _receive_each(ledger, received_ms)
            assert _stored(ledger) == _brute_force(received_ms, first)
            for zone in then:
                policy.write(ledger, time_zone=zone)
                assert _stored(ledger) == _brute_force(received_ms, zone)
            zone, _ = policy.recount(ledger)
            assert _stored(ledger) == _brute_force(received_ms, zone)
        finally:
            ledger.close()


def _receive_each(ledger: Ledger, received_ms: list[int]) -> None:
    """One pack per instant, shipped at T0 and received by DIST at that instant."""
    ledger.register_product(cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg"), T0)
    ledger.add_batch(cpb.Batch(product=GTIN, lot=LOT, expires_on="2030-12-31"), T0)
    for party_id in ("PLANT", "DIST"):
        ledger.add_party(cpb.Party(party_id=party_id, name=party_id, region="110105"), T0)
    serials = [f"SERIAL{i:05d}" for i in range(len(received_ms))]
    ledger.open_pool(PoolRequest("pool-1", GTIN, LOT, 1, len(serials)), 1, T0)
    ledger.append_pool_codes("pool-1", 0, serials, 1, T0, lambda _: [])
    codes = tuple(Code(Scheme.GS1, GTIN, s) for s in serials)
    apply(ledger, [Request([Event(EventKind.COMMISSION, codes, T0, party_id="PLANT")])], T0)
    apply(ledger, [Request([Event(EventKind.SHIP, codes, T0 + 1, party_id="PLANT",
                                  destination="DIST")])], T0 + 1)
    for code, at in zip(codes, received_ms, strict=True):
        result = apply(ledger, [Request([Event(EventKind.RECEIVE, (code,), at,
                                               party_id="DIST")])], max(received_ms))
        assert result[0].applied, result


def test_daily_counters_without_instants_are_not_recut(tmp_path: Path) -> None:
    """Daily counters kept before their instants were (no quarter-hour flows) make a zone change
    fail FAILED_PRECONDITION, and both the counters and the zone stay as they were."""
    from tracecore.errors import FailedPrecondition
    from tracecore.ledger.counters import add_counts

    ledger = Ledger(tmp_path / "ledger", tenant="t", codes=dev_codes("t"))
    try:
        policy.write(ledger, time_zone="UTC")
        _receive_each(ledger, [CHANGES_MS[0]])
        counters = ledger.db["counters"]
        with ledger.env.read() as txn:
            instants = [(bytes(k), -1) for k, _ in txn.cursor(db=counters) if bytes(k)[:1] == b"Q"]
        ledger.env.write(lambda txn: add_counts(txn, counters, instants))
        before = _stored(ledger)
        with pytest.raises(FailedPrecondition, match="cannot be recut"):
            policy.write(ledger, time_zone="Asia/Shanghai")
        assert _stored(ledger) == before == _brute_force([CHANGES_MS[0]], "UTC")
        assert policy.read(ledger).time_zone == "UTC"
    finally:
        ledger.close()
