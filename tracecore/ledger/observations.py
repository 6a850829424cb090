"""Scan statistics, written by verification workers beside (not in) the tenant's ledger.

The ledger has one writer, the issuance service; verifiers only read it. What verifiers learn
(how often and where a code was scanned) goes to this second environment, buffered per worker
and merged in batches, so no verification waits for the ledger's write lock.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from tracecore.ledger.env import Env, Txn

# count, first scan ms, and the last scan that said where it was: ms, region (GB/T 2260 as an
# integer); 0, 0 while no scan did
_SCAN = struct.Struct("<QqqI")
DATABASES = ("scans",)


@dataclass(slots=True)
class ScanStats:
    count: int
    first_ms: int
    last_ms: int
    last_region: int

    def merged(self, other: ScanStats) -> ScanStats:
        newer = other if other.last_ms >= self.last_ms else self
        return ScanStats(
            self.count + other.count,
            min(self.first_ms, other.first_ms),
            newer.last_ms,
            newer.last_region,
        )


class Observations:
    """A tenant's scan statistics: the stored totals plus this worker's unflushed scans."""

    def __init__(self, path: Path, *, tenant: str) -> None:
        # Statistics, not the ledger: a commit here is not fsynced (it survives the worker being
        # killed, not a power cut), so counting scans costs no disk flush per batch.
        self.env = Env(path, DATABASES, owner=tenant, durable=False)
        self._db = self.env.dbs["scans"]
        self._pending: dict[bytes, ScanStats] = {}
        # The batch a flush is writing, and its write transaction's id once it has one: a read
        # transaction older than that does not see the batch yet, so it is added by hand.
        self._flushing: dict[bytes, ScanStats] = {}
        self._flushing_txn: int | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.env.close()

    def record(self, keys: list[bytes], now_ms: int, region: int) -> list[tuple[int, int]]:
        """Counts one scan of each key; returns (scan count, first scan ms) of each, this scan
        included."""
        return [(count, first) for count, first, _, _ in self.record_located(keys, now_ms, region)]

    def record_located(self, keys: list[bytes], now_ms: int, region: int
                       ) -> list[tuple[int, int, int, int]]:
        """Counts one scan of each key, in ``region`` (0: unknown); returns (scan count, first
        scan ms, ms and region of the last earlier scan with a region, 0 and 0 if none) of
        each."""
        out: list[tuple[int, int, int, int]] = []
        append = out.append
        db = self._db
        with self._lock, self.env.read() as txn:
            pending_map = self._pending
            get = txn.get
            flushing = self._unseen_flush(txn)
            for key in keys:
                pending = pending_map.get(key)
                if pending is None:
                    pending = pending_map[key] = ScanStats(0, now_ms, 0, 0)
                last_ms, last_region = pending.last_ms, pending.last_region
                pending.count += 1
                if region:
                    pending.last_ms = now_ms
                    pending.last_region = region
                count, first = pending.count, pending.first_ms
                stored = get(key, db=db)
                if stored is not None:
                    stored_count, stored_first, stored_ms, stored_region = _SCAN.unpack(stored)
                    count += stored_count
                    first = min(first, stored_first)
                    if stored_ms > last_ms:
                        last_ms, last_region = stored_ms, stored_region
                if flushing:
                    writing = flushing.get(key)
                    if writing is not None:
                        count += writing.count
                        first = min(first, writing.first_ms)
                        if writing.last_ms > last_ms:
                            last_ms, last_region = writing.last_ms, writing.last_region
                append((count, first, last_ms, last_region))
        return out

    def _unseen_flush(self, txn: Txn) -> dict[bytes, ScanStats]:
        """The batch being flushed, unless ``txn`` already sees it committed; under the lock."""
        if not self._flushing:
            return {}
        if self._flushing_txn is not None and txn.id() >= self._flushing_txn:
            return {}
        return self._flushing

    def stats(self, key: bytes) -> ScanStats | None:
        """Stored plus unflushed statistics of one code, without counting a scan."""
        with self._lock, self.env.read() as txn:
            stored = txn.get(key, db=self._db)
            total = ScanStats(*_SCAN.unpack(stored)) if stored is not None else None
            writing = self._unseen_flush(txn).get(key)
            if writing is not None:
                total = total.merged(writing) if total is not None else writing
            pending = self._pending.get(key)
            if pending is not None:
                pending = ScanStats(pending.count, pending.first_ms, pending.last_ms,
                                    pending.last_region)
        if total is None:
            return pending
        return total.merged(pending) if pending is not None else total

    def flush(self) -> int:
        """Merges this worker's scans into the stored totals in one transaction; returns how many
        codes were written. Scans arriving meanwhile wait for the next flush."""
        with self._lock:
            batch, self._pending = self._pending, {}
            self._flushing, self._flushing_txn = batch, None
        if not batch:
            return 0

        def fn(txn: Txn) -> int:
            with self._lock:
                self._flushing_txn = txn.id()
            # One pass in key order with plain tuples, then one putmulti: this runs for every
            # code scanned, so it is written like the verification loop itself.
            get, pack, unpack, db = txn.get, _SCAN.pack, _SCAN.unpack, self._db
            merged: list[tuple[bytes, bytes]] = []
            for key in sorted(batch):
                s = batch[key]
                stored = get(key, db=db)
                if stored is None:
                    merged.append((key, pack(s.count, s.first_ms, s.last_ms, s.last_region)))
                    continue
                count, first, last_ms, last_region = unpack(stored)
                if s.last_ms >= last_ms:
                    last_ms, last_region = s.last_ms, s.last_region
                merged.append((key, pack(count + s.count, min(first, s.first_ms), last_ms,
                                         last_region)))
            txn.cursor(db=db).putmulti(merged)
            return len(batch)

        try:
            written = self.env.write(fn)
        except BaseException:
            with self._lock:
                for key, stats in batch.items():
                    later = self._pending.get(key)
                    self._pending[key] = stats.merged(later) if later is not None else stats
                self._flushing, self._flushing_txn = {}, None
            raise
        with self._lock:
            self._flushing, self._flushing_txn = {}, None
        return written
