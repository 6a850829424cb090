"""A tenant's answer trail: the hash-chained record of every verification answered to a trading
partner over HTTP, with the requester and the correlation id.

It lives beside the ledger (``<tenant>/answers``), not in it, for the reason the alerts do:
verification workers answer, and only the issuance process writes the ledger. Workers buffer
their records and append them in one transaction per flush, off the request path; LMDB lets
every worker write the environment, one transaction at a time, so the chain stays one chain.

A record names the pack a partner asked about (its GTIN and serial): each is stored sealed under
the tenant's ``CodeKeys`` (AES-GCM), the chain's hashes over the records as they are. A trail of
an earlier release is sealed in one transaction when first opened (``pharmatrace tenant
migrate`` also compacts it, so that no freed page keeps a record in clear).
"""

from __future__ import annotations

import threading
from pathlib import Path

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.errors import Unavailable
from tracecore.ledger.chain import Chain
from tracecore.ledger.code_keys import CodeKeys, seal_store_once
from tracecore.ledger.env import Env, Txn

DATABASES = ("audit", "meta")
DIRECTORY = "answers"
MAX_SUMMARY = 500


class AnswerTrail:
    """One tenant's answer trail, opened once per process."""

    def __init__(self, path: Path, *, tenant: str, codes: CodeKeys) -> None:
        self.env = Env(path, DATABASES, owner=tenant)
        self.chain = Chain(self.env.dbs["audit"], self.env.dbs["meta"], b"answers:head",
                           lpb.AuditRecord, codes)
        self._tenant = tenant
        self._codes = codes
        self._pending: list[lpb.AuditRecord] = []
        self._closed = False
        self._lock = threading.Lock()
        # One flush at a time, and none beside ``close``: a batch a flush has taken is written
        # before the environment closes, not refused by it and dropped with the trail.
        self._writing = threading.Lock()
        # The records of a trail written in clear (by an earlier release), sealed once.
        seal_store_once(self.env, lambda txn: codes.seal_values(txn, self.env.dbs["audit"]))

    def close(self) -> None:
        """Writes the records buffered so far and closes the trail; from then on ``buffer``
        refuses, so that no answer is given whose record the trail would not keep."""
        with self._writing:
            with self._lock:
                self._closed = True
            try:
                self._write_pending()
            finally:
                self.env.close()

    def buffer(self, entry: lpb.AuditRecord) -> None:
        """Keeps a record for the next ``flush``; Unavailable once the trail is closed (its
        tenant went offline): the answer it records must then not be given."""
        entry.summary = entry.summary[:MAX_SUMMARY]
        with self._lock:
            if self._closed:
                raise Unavailable(f"tenant {self._tenant}'s answer trail is closed: the tenant "
                                  "went offline")
            self._pending.append(entry)

    def flush(self) -> int:
        """Appends the buffered records in order, durably; returns how many. Kept for the
        next flush if the write fails."""
        with self._writing:
            if self._closed:
                return 0  # ``close`` wrote them
            return self._write_pending()

    def _write_pending(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0

        def fn(txn: Txn) -> int:
            self.chain.append_many(txn, batch)
            return len(batch)

        try:
            return self.env.write(fn)
        except BaseException:
            with self._lock:
                self._pending[:0] = batch
            raise

    def records(self, start: int = 1) -> list[lpb.AuditRecord]:
        with self.env.read() as txn:
            return list(self.chain.scan(txn, start))

    def verify(self) -> tuple[int, int | None]:
        """(records checked, first bad sequence number or None)."""
        with self.env.read() as txn:
            return self.chain.verify(txn)
