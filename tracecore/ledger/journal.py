"""The event journal: append-only, hash-chained lifecycle events and their per-code index."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from pharmatrace.v1 import ledger_pb2 as lpb
from tracecore.errors import LedgerCorrupt
from tracecore.ledger.env import Database, Txn
from tracecore.ledger.records import seq_key, u64

GENESIS = bytes(32)
_HEAD = b"journal:head"


def record_hash(record: lpb.EventRecord) -> bytes:
    """SHA-256 over the previous hash and the record serialised with ``hash`` left empty."""
    unhashed = lpb.EventRecord()
    unhashed.CopyFrom(record)
    unhashed.ClearField("hash")
    return hashlib.sha256(record.prev_hash + unhashed.SerializeToString(deterministic=True)
                          ).digest()


class Journal:
    """Appends and reads events inside the caller's transaction."""

    def __init__(self, dbs: dict[str, Database]) -> None:
        self._events = dbs["events"]
        self._by_code = dbs["code_events"]
        self._by_id = dbs["event_ids"]
        self._meta = dbs["meta"]

    def head(self, txn: Txn) -> tuple[int, bytes]:
        """(last sequence number, its hash); (0, GENESIS) for an empty journal."""
        data = txn.get(_HEAD, db=self._meta)
        if data is None:
            return 0, GENESIS
        data = bytes(data)
        return u64(data[:8]), data[8:]

    def append(self, txn: Txn, record: lpb.EventRecord, index: Iterable[bytes]) -> int:
        """Stores ``record`` as the next event, chained to the last, and indexes it under each
        code key in ``index``; returns its sequence number."""
        seq, prev = self.head(txn)
        seq += 1
        record.seq = seq
        record.prev_hash = prev
        record.hash = b""
        record.hash = record_hash(record)
        key = seq_key(seq)
        txn.put(key, record.SerializeToString(deterministic=True), db=self._events, append=True)
        txn.cursor(db=self._by_code).putmulti(((code, key) for code in index), dupdata=True)
        if record.event_id:
            txn.put(record.event_id.encode(), key, db=self._by_id)
        txn.put(_HEAD, key + record.hash, db=self._meta)
        return seq

    def seq_of_event_id(self, txn: Txn, event_id: str) -> int | None:
        data = txn.get(event_id.encode(), db=self._by_id)
        return u64(data) if data is not None else None

    def get(self, txn: Txn, seq: int) -> lpb.EventRecord:
        data = txn.get(seq_key(seq), db=self._events)
        if data is None:
            raise LedgerCorrupt(f"event {seq} is missing from the journal")
        return lpb.EventRecord.FromString(bytes(data))

    def seqs_of(self, txn: Txn, code_key: bytes) -> list[int]:
        """Sequence numbers of the events indexed under a code, in order."""
        cursor = txn.cursor(db=self._by_code)
        if not cursor.set_key(code_key):
            return []
        return [u64(v) for v in cursor.iternext_dup()]

    def scan(self, txn: Txn, start: int = 1) -> Iterator[lpb.EventRecord]:
        cursor = txn.cursor(db=self._events)
        if not cursor.set_range(seq_key(start)):
            return
        for _, data in cursor:
            yield lpb.EventRecord.FromString(bytes(data))

    def verify(self, txn: Txn) -> tuple[int, int | None]:
        """(events checked, first bad sequence number or None): each record's hash, its link to
        the one before, gapless numbering, and the head."""
        prev = GENESIS
        expected = 1
        for record in self.scan(txn):
            if record.seq != expected or record.prev_hash != prev or record.hash != record_hash(
                    record):
                return expected - 1, expected
            prev = record.hash
            expected += 1
        head_seq, head_hash = self.head(txn)
        if head_seq != expected - 1 or head_hash != prev:
            return expected - 1, expected
        return expected - 1, None
