"""Daily flow counters are kept per local day of the tenant's time zone."""

from __future__ import annotations

from pathlib import Path

import pytest
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
RECEIVED_AT = 1_772_395_200_000  # 2026-03-01 20:00 UTC


@pytest.mark.parametrize(("zone", "day"), [("Asia/Shanghai", "2026-03-02"), ("UTC", "2026-03-01"),
                                           ("", "2026-03-01")])
def test_an_evening_receipt_in_utc_counts_on_the_tenants_local_day(
        tmp_path: Path, zone: str, day: str) -> None:
    """A receipt at 2026-03-01T20:00Z is a Shanghai tenant's 2026-03-02 and a UTC tenant's 03-01."""
    ledger = Ledger(tmp_path / "ledger", tenant="t", codes=dev_codes("t"))
    try:
        policy.write(ledger, time_zone=zone)
        ledger.register_product(cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg"), T0)
        ledger.add_batch(cpb.Batch(product=GTIN, lot=LOT, expires_on="2030-12-31"), T0)
        for party_id in ("PLANT", "DIST"):
            ledger.add_party(cpb.Party(party_id=party_id, name=party_id, region="110105"), T0)
        ledger.open_pool(PoolRequest("pool-1", GTIN, LOT, 1, 1), 1, T0)
        ledger.append_pool_codes("pool-1", 0, ["SERIAL00001"], 1, T0, lambda _: [])
        code = Code(Scheme.GS1, GTIN, "SERIAL00001")
        apply(ledger, [Request([Event(EventKind.COMMISSION, (code,), T0, party_id="PLANT")])],
              T0)
        apply(ledger, [Request([Event(EventKind.SHIP, (code,), T0 + 1, party_id="PLANT",
                                      destination="DIST")])], T0 + 1)
        apply(ledger, [Request([Event(EventKind.RECEIVE, (code,), RECEIVED_AT,
                                      party_id="DIST")])], RECEIVED_AT)
        with ledger.env.read() as txn:
            rows = flow_counts(txn, ledger.db["counters"], 0, 1 << 31)
        received = [localday.iso_date(d) for d, _, _, flow, n in rows if flow == Flow.RECEIVED]
        assert received == [day]
    finally:
        ledger.close()
