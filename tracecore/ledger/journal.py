"""The event journal: append-only, hash-chained lifecycle events and their per-code index."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.epcis.identifiers import event_uri, may_be_event_uri
from tracecore.ledger.chain import event_journal
from tracecore.ledger.env import Txn
from tracecore.ledger.records import seq_key, sorted_keys, u64
from tracecore.ledger.store import Ledger


class Journal:
    """Appends and reads events inside the caller's transaction. Records are stored sealed and
    the per-code index under codes' stored keys (``Ledger.codes``); both are given and taken
    here as they are."""

    def __init__(self, ledger: Ledger) -> None:
        dbs = ledger.db
        self.chain = event_journal(dbs, ledger.codes)
        self._codes = ledger.codes
        self._by_code = dbs["code_events"]
        self._by_id = dbs["event_ids"]
        self._tenant = ledger.tenant

    def head(self, txn: Txn) -> tuple[int, bytes]:
        return self.chain.head(txn)

    def append(self, txn: Txn, record: lpb.EventRecord, index: Iterable[bytes], *,
               stored: bool = False) -> int:
        """Stores ``record`` as the next event and indexes it under each code key in ``index``
        (``stored``: the keys LMDB holds for them, as a write session has them already);
        returns its sequence number."""
        seq = self.chain.append(txn, record)
        key = seq_key(seq)
        # Stored keys, in key order: an event's codes are random keys, and LMDB inserts them
        # three to four times faster in order (one path down the tree after another).
        txn.cursor(db=self._by_code).putmulti(
            zip(sorted_keys(list(index) if stored else self._codes.stored_many(index)),
                repeat(key)),
            dupdata=True)
        if record.event_id:
            txn.put(record.event_id.encode(), key, db=self._by_id)
        return seq

    def seq_of_event_id(self, txn: Txn, event_id: str, code_key: bytes | None = None
                        ) -> int | None:
        """The event recorded under ``event_id``; or, where ``event_id`` may be the URI an id
        that is not one is exported as (``event_uri``), the event of the code ``code_key`` (one
        the event names) exported under it: a document bringing the event back (the tenant's
        own export imported again, a partner's echo) names it so."""
        data = txn.get(event_id.encode(), db=self._by_id)
        if data is not None:
            return u64(data)
        if code_key is None or not may_be_event_uri(event_id):
            return None
        for seq in self.seqs_of(txn, code_key):
            given = self.get(txn, seq).event_id
            if given and event_uri(self._tenant, given) == event_id:
                return seq
        return None

    def get(self, txn: Txn, seq: int) -> lpb.EventRecord:
        return self.chain.get(txn, seq)

    def seqs_of(self, txn: Txn, code_key: bytes) -> list[int]:
        """Sequence numbers of the events indexed under a code, in order."""
        cursor = txn.cursor(db=self._by_code)
        if not cursor.set_key(self._codes.stored(code_key)):
            return []
        return [u64(v) for v in cursor.iternext_dup()]

    def scan(self, txn: Txn, start: int = 1) -> Iterator[lpb.EventRecord]:
        return self.chain.scan(txn, start)

    def verify(self, txn: Txn) -> tuple[int, int | None]:
        return self.chain.verify(txn)
