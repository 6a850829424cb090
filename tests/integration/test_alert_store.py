"""The alert store on a real LMDB environment: what it seals is the API's Alert byte for byte,
so alerts stored by an earlier release read back unchanged once sealed, and each is stored
once."""

from __future__ import annotations

import struct
from pathlib import Path

from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.ledgers import dev_codes
from tracecore.ledger.alerts import AlertBook, AlertFilter
from tracecore.ledger.env import Env
from tracecore.oversight import (
    AlertKind,
    AlertRecord,
    AlertSource,
    CloneReason,
    Raised,
    RegionRule,
    clone,
    diversion,
)
from tracecore.status import Status


def test_stored_alerts_are_api_alerts_and_read_back_the_same(tmp_path: Path) -> None:
    """A diversion and a clone alert stored once each (a repeat is dropped) parse as
    pharmatrace.v1.Alert with every field, and read back equal with their ids."""
    book = AlertBook(tmp_path / "alerts", tenant="t", codes=dev_codes("t"))
    rule = RegionRule(["44"], "batch")
    raised = [
        diversion(b"k1", "CODE1", source=AlertSource.SCAN, at_ms=5, units=1, product="P",
                  lot="L1", region=110105, party_id="PH", rule=rule, status=Status.ACTIVE),
        clone(b"k2", "CODE2", CloneReason.TRAVEL, at_ms=9, product="P", lot="L1",
              region=650102, party_id="", status=Status.DISPENSED, scan_count=2,
              previous_region=440106, previous_at_ms=3, distance_km=3300.5),
    ]
    stored = book.append(raised + raised[:1])
    assert [a.alert_id for a in stored] == [1, 2]
    assert book.page(AlertFilter(), 100, "")[0] == stored
    with book.env.read() as txn:
        data = txn.get(struct.pack(">Q", 1), db=book.env.dbs["alerts"])
        assert data is not None
        assert b"CODE1" not in bytes(data)  # sealed: it names a pack
        first = tpb.Alert.FromString(dev_codes("t").open(bytes(data)))
    assert (first.alert_id, first.kind, first.source, first.region, list(first.authorised_regions),
            first.status, first.detail) == (
        1, int(AlertKind.DIVERSION), tpb.ALERT_SOURCE_SCAN, "110105", ["44"], int(Status.ACTIVE),
        stored[0].detail)
    book.close()


def test_an_alert_written_in_clear_by_an_earlier_release_is_sealed_and_reads_back(
        tmp_path: Path) -> None:
    """A record an earlier release wrote in clear (a serialized pharmatrace.v1.Alert) is sealed
    when the store is first opened, lists with all its evidence, and is still raised once."""
    old = tpb.Alert(alert_id=1, kind=vpb.ALERT_KIND_CLONE_SUSPECTED, source=tpb.ALERT_SOURCE_SCAN,
                    raised_at_ms=7, code="C0DE-IN-CLEAR", units=1, lot="L", region="440106",
                    clone_reason=tpb.CLONE_REASON_TOO_MANY_SCANS, scan_count=21,
                    distance_km=1.5, detail="C verified 21 times")
    earlier = Env(tmp_path / "alerts", ("alerts", "alert_keys", "meta"), owner="t")
    earlier.write(lambda txn: (
        txn.put(struct.pack(">Q", 1), old.SerializeToString(), db=earlier.dbs["alerts"]),
        txn.put(b"Ck1\x00", struct.pack(">Q", 1), db=earlier.dbs["alert_keys"]),
        txn.put(b"next_id", struct.pack(">Q", 2), db=earlier.dbs["meta"])))
    earlier.close()
    book = AlertBook(tmp_path / "alerts", tenant="t", codes=dev_codes("t"))
    with book.env.read() as txn:
        assert all(b"C0DE-IN-CLEAR" not in bytes(v) and not bytes(k).startswith(b"Ck1")
                   for name in ("alerts", "alert_keys")
                   for k, v in txn.cursor(db=book.env.dbs[name]))
    assert book.append([Raised(b"Ck1\x00", AlertRecord(
        kind=AlertKind.CLONE_SUSPECTED, source=1, raised_at_ms=8, code="C"))]) == []
    (alert,) = book.page(AlertFilter(kind=AlertKind.CLONE_SUSPECTED), 100, "")[0]
    assert (alert.alert_id, alert.clone_reason, alert.scan_count, alert.distance_km,
            alert.detail) == (1, CloneReason.TOO_MANY_SCANS, 21, 1.5, "C verified 21 times")
    book.close()
