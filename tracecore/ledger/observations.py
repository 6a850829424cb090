"""Scan statistics, written by verification workers beside (not in) the tenant's ledger.

The ledger has one writer, the issuance service; verifiers only read it. What verifiers learn
(how often and where a code was scanned) goes to this second environment, buffered per worker
and merged in batches, so no verification waits for the ledger's write lock.

The buffer is an append log: each verification call adds one entry (its time, its region and
the list of keys it answered) and bumps a ``Counter`` of keys, both done in C, so a code
scanned costs no Python object of its own. Who scanned first and where a code was last seen
are worked out from the log only when it is merged (by the flusher, away from the answers) or
for the rare code scanned again before the log was merged. Both per-code loops (a call's
statistics, read in key order; the merge, which sorts the log's scans by key) and the keyed hash
have compiled twins in ``tracecore/_speedups/_scans.pyx``; the Python here is their reference.

Codes are stored under a keyed hash (BLAKE2b, 16 bytes, under a secret derived from the
key-encryption key), never as text: a copy of the file or of a backup hands nobody a serial.
An environment written before (``_KEYED`` absent from ``meta``) is rehashed when a worker
opens it.

Public scans count once per client per code per day (``first_scans``): which client scanned
which code on which day is kept as a keyed hash of the client (``tracecore.scan_clients``), in
its own database, written with the statistics and kept for the day and the day before only.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from pathlib import Path
from typing import NamedTuple

from tracecore._speedups import load
from tracecore.ledger.env import Database, Env, Txn
from tracecore.scan_clients import DAY_BYTES

# count, first scan ms, the last scan that said where it was: ms, region (GB/T 2260 as an
# integer; 0, 0 while no scan did), and the first scan's region (0: it did not say)
_SCAN = struct.Struct("<QqqII")
# Totals written before the first scan's region was kept: read with that region unknown.
_SCAN_WITHOUT_FIRST_REGION = struct.Struct("<QqqI")
DATABASES = ("scans", "public_clients", "meta")
#: In ``meta`` once the codes are stored hashed.
_KEYED = b"codes:keyed"
CODE_HASH_BYTES = 16
#: Days of public clients kept before the newest day written: yesterday's clients still count
#: once when they scan again after midnight in another worker's flush.
_CLIENT_DAYS_KEPT = 1
_NOWHERE = (0, 0)


def _unpack(stored: bytes | memoryview) -> tuple[int, int, int, int, int]:
    if len(stored) == _SCAN.size:
        count, first, last_ms, last_region, first_region = _SCAN.unpack(stored)
        return count, first, last_ms, last_region, first_region
    return (*_SCAN_WITHOUT_FIRST_REGION.unpack(stored), 0)


def _once(now_ms: int, region: int) -> tuple[int, int, int, int, int]:
    """The statistics of one scan now in ``region`` (0: unknown), before the stored totals:
    (count, first scan ms, last located scan ms and region, first scan's region)."""
    return 1, now_ms, 0, 0, region


def _plus_stored(stored: bytes | memoryview, count: int, first: int, last_ms: int,
                 last_region: int, first_region: int) -> tuple[int, int, int, int, int]:
    """Statistics not yet stored, added to the stored totals of the same code: (count, first
    scan ms, last located scan ms and region, first scan's region)."""
    stored_count, stored_first, stored_ms, stored_region, stored_first_region = _unpack(stored)
    if stored_first <= first:
        first, first_region = stored_first, stored_first_region
    if stored_ms > last_ms:
        last_ms, last_region = stored_ms, stored_region
    return count + stored_count, first, last_ms, last_region, first_region


@dataclass(slots=True)
class ScanStats:
    count: int
    first_ms: int
    last_ms: int
    last_region: int
    first_region: int = 0

    def merged(self, other: ScanStats) -> ScanStats:
        newer = other if other.last_ms >= self.last_ms else self
        older = other if other.first_ms < self.first_ms else self
        return ScanStats(
            self.count + other.count,
            older.first_ms,
            newer.last_ms,
            newer.last_region,
            older.first_region,
        )


class _Entry(NamedTuple):
    """One verification call's scans: when, where (0: unknown), and the keys in scan order."""

    ms: int
    region: int
    keys: Sequence[bytes]


class _Log:
    """Scans not yet in the stored totals: the entries in order, and each key's count. Each
    key's first scan and last located scan are indexed only when asked for (by the flusher, or
    by a code scanned again before the flush), a whole entry at a time."""

    def __init__(self, entries: list[_Entry] | None = None,
                 counts: Counter[bytes] | None = None) -> None:
        self.entries = entries if entries is not None else []
        self.counts = counts if counts is not None else Counter()
        self._firsts: dict[bytes, tuple[int, int]] = {}
        self._lasts: dict[bytes, tuple[int, int]] = {}
        self._indexed = 0
        # The flusher and a scan during the flush may both index the log being flushed.
        self._indexing = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.counts)

    def add(self, keys: Sequence[bytes], now_ms: int, region: int) -> None:
        self.entries.append(_Entry(now_ms, region, keys))
        if len(keys) == 1:  # one code verified: a dict update, without Counter's type checks
            key = keys[0]
            self.counts[key] = self.counts.get(key, 0) + 1
        else:
            self.counts.update(keys)

    def index(self, upto: int
              ) -> tuple[dict[bytes, tuple[int, int]], dict[bytes, tuple[int, int]]]:
        """Each key's first scan (ms, region) and last located (ms, region) in the first ``upto``
        entries (``upto`` never less than asked for before)."""
        with self._indexing:
            firsts, lasts = self._firsts, self._lasts
            for entry in self.entries[self._indexed:upto]:
                new = set(entry.keys).difference(firsts)
                if new:
                    firsts.update(zip(new, repeat((entry.ms, entry.region))))
                if entry.region:
                    lasts.update(zip(entry.keys, repeat((entry.ms, entry.region))))
            self._indexed = max(self._indexed, upto)
        return firsts, lasts

    def summary(self
                ) -> tuple[dict[bytes, tuple[int, int]], dict[bytes, tuple[int, int]]]:
        """``index`` of every entry."""
        return self.index(len(self.entries))

    def get(self, key: bytes) -> ScanStats | None:
        count = self.counts.get(key)
        if not count:
            return None
        firsts, lasts = self.summary()
        first_ms, first_region = firsts[key]
        return ScanStats(count, first_ms, *lasts.get(key, _NOWHERE), first_region)

    def then(self, later: _Log) -> _Log:
        """This log followed by ``later``."""
        return _Log(self.entries + later.entries, self.counts + later.counts)


class Observations:
    """A tenant's scan statistics: the stored totals plus this worker's unflushed scans."""

    def __init__(self, path: Path, *, tenant: str, code_key: bytes) -> None:
        """``code_key``: what codes are hashed under (``tracecore.scan_clients.codes_key``)."""
        # Statistics, not the ledger: a commit here is not fsynced (it survives the worker being
        # killed, not a power cut), so counting scans costs no disk flush per batch.
        self.env = Env(path, DATABASES, owner=tenant, durable=False)
        self._db = self.env.dbs["scans"]
        self._clients_db = self.env.dbs["public_clients"]
        self._code_key = code_key
        # The same hash in C, the key's block compressed once (hashlib's is the reference).
        self._hasher = (_compiled.KeyedBlake2b(code_key, CODE_HASH_BYTES)
                        if _compiled is not None and 0 < len(code_key) <= 64 else None)
        with self.env.read() as txn:
            keyed = txn.get(_KEYED, db=self.env.dbs["meta"]) is not None
        if not keyed:
            self.env.write(self._rehash)
        self._pending = _Log()
        # (client tag + code key) of public scans not yet written, and those a flush writes.
        self._clients: set[bytes] = set()
        self._clients_flushing: set[bytes] = set()
        # The log a flush is writing, and its write transaction's id once it has one: a read
        # transaction older than that does not see the log yet, so it is added by hand.
        self._flushing = _Log()
        self._flushing_txn: int | None = None
        self._lock = threading.Lock()

    @staticmethod
    def create(path: Path, *, tenant: str) -> None:
        """An empty environment of this layout (made with the tenant, while there is room)."""
        env = Env(path, DATABASES, owner=tenant, durable=False)
        try:
            env.write(lambda txn: txn.put(_KEYED, b"", db=env.dbs["meta"]))
        finally:
            env.close()

    def close(self) -> None:
        self.env.close()

    def _hashed(self, keys: Sequence[bytes]) -> list[bytes]:
        """Each code key as stored: its keyed hash."""
        if self._hasher is not None:
            digests: list[bytes] = self._hasher.digests(keys)
            return digests
        blake2b, key = hashlib.blake2b, self._code_key
        return [blake2b(k, key=key, digest_size=CODE_HASH_BYTES).digest() for k in keys]

    def _rehash(self, txn: Txn) -> None:
        """Brings statistics kept under plain code keys to hashed ones (once, in the first
        worker to open them); the public clients of the day start over."""
        meta = self.env.dbs["meta"]
        if txn.get(_KEYED, db=meta) is not None:
            return
        plain = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=self._db)]
        txn.drop(self._db, delete=False)
        txn.drop(self._clients_db, delete=False)
        if plain:
            hashed = self._hashed([k for k, _ in plain])
            txn.cursor(db=self._db).putmulti(sorted(zip(hashed, (v for _, v in plain),
                                                        strict=True)))
        txn.put(_KEYED, b"", db=meta)

    def record(self, keys: list[bytes], now_ms: int, region: int) -> list[tuple[int, int]]:
        """Counts one scan of each key; returns (scan count, first scan ms) of each, this scan
        included."""
        return [(count, first) for count, first, *_ in self.record_located(keys, now_ms, region)]

    def record_located(self, keys: Sequence[bytes], now_ms: int, region: int
                       ) -> list[tuple[int, int, int, int, int]]:
        """Counts one scan of each key, in ``region`` (0: unknown); returns (scan count, first
        scan ms, ms and region of the last earlier scan with a region, 0 and 0 if none, and
        the first scan's region) of each."""
        return list(zip(*self.record_columns(keys, now_ms, region), strict=True))

    def record_columns(self, keys: Sequence[bytes], now_ms: int, region: int) -> Located:
        """``record_located`` as columns, one list per field, each in the order of ``keys``."""
        return self.tally(keys, now_ms, region).located

    def tally(self, keys: Sequence[bytes], now_ms: int, region: int, client: bytes = b""
              ) -> Tally:
        """Counts one scan of each key, in ``region`` (0: unknown), as ``record_columns``; with
        ``client`` (a public scan's tag, see ``first_scans``), only the keys that client scans
        for the first time that day, the others getting their statistics as they stand. One
        lock, one hash of each key and one read transaction for the whole call."""
        hashed = self._hashed(keys)
        if len(hashed) == 1:
            return self._tally_one(hashed, now_ms, region, client)
        with self._lock, self.env.read() as txn:
            counted: list[bool] | None = None
            standing: list[ScanStats | None] = []
            if client:
                firsts = self._first_scans(txn, hashed, client)
                if not all(firsts):
                    counted = firsts
                    standing = [self._stats(txn, key)
                                for key, first in zip(hashed, firsts, strict=True) if not first]
                    hashed = list(compress(hashed, firsts))
            if not hashed:
                return Tally(([], [], [], [], []), counted, standing)
            log = self._pending
            # Unflushed scans of each key before this call; almost always none.
            earlier = list(map(log.counts.get, hashed, repeat(0)))
            entry = len(log.entries)
            log.add(hashed, now_ms, region)
            repeated = len(hashed) > 1 and len(set(hashed)) != len(hashed)
            located = _located(hashed, earlier, repeated, lambda: log.index(entry),
                               self._unseen_flush(txn), txn, self._db, now_ms, region)
            return Tally(located, counted, standing)

    def _tally_one(self, hashed: list[bytes], now_ms: int, region: int, client: bytes
                   ) -> Tally:
        """``tally`` of one hashed key (a unary Verify, a check page): as for many, without
        the lists a batch needs to set its keys apart."""
        key = hashed[0]
        with self._lock, self.env.read() as txn:
            if client and not self._first_scan(txn, key, client):
                return Tally(([], [], [], [], []), [False], [self._stats(txn, key)])
            log = self._pending
            earlier = log.counts.get(key, 0)
            entry = len(log.entries)
            log.add(hashed, now_ms, region)
            flushing = self._unseen_flush(txn)
            if earlier or (flushing is not None and key in flushing.counts):
                located = _located(hashed, [earlier], False, lambda: log.index(entry),
                                   flushing, txn, self._db, now_ms, region)
                return Tally(located, None, [])
            # Its first scan in this worker's log, none being flushed: the stored totals plus
            # this scan, as ``located_reference`` adds them.
            stored = txn.get(key, db=self._db)
            count, first, last_ms, last_region, first_region = _once(now_ms, region) \
                if stored is None else _plus_stored(stored, *_once(now_ms, region))
            return Tally(([count], [first], [last_ms], [last_region], [first_region]), None, [])

    def first_scans(self, keys: Sequence[bytes], tag: bytes) -> list[bool]:
        """Whether each key is the first scan of that code by the client of ``tag`` (see
        ``tracecore.scan_clients.client_tag``) that day; each such scan is remembered, so the
        same code twice in ``keys`` is first once."""
        hashed = self._hashed(keys)
        with self._lock, self.env.read() as txn:
            return self._first_scans(txn, hashed, tag)

    def _first_scans(self, txn: Txn, keys: Sequence[bytes], tag: bytes) -> list[bool]:
        """``first_scans`` of hashed keys, under the lock."""
        return [self._first_scan(txn, key, tag) for key in keys]

    def _first_scan(self, txn: Txn, key: bytes, tag: bytes) -> bool:
        """Whether this is the first scan of a hashed key by the client of ``tag`` that day
        (remembered if so); under the lock."""
        seen = tag + key
        if seen in self._clients or seen in self._clients_flushing or txn.get(
                seen, db=self._clients_db) is not None:
            return False
        self._clients.add(seen)
        return True

    def _unseen_flush(self, txn: Txn) -> _Log | None:
        """The log being flushed, unless ``txn`` already sees it committed; under the lock."""
        if not self._flushing:
            return None
        if self._flushing_txn is not None and txn.id() >= self._flushing_txn:
            return None
        return self._flushing

    def stats(self, key: bytes) -> ScanStats | None:
        """Stored plus unflushed statistics of one code, without counting a scan."""
        hashed = self._hashed([key])[0]
        with self._lock, self.env.read() as txn:
            return self._stats(txn, hashed)

    def _stats(self, txn: Txn, key: bytes) -> ScanStats | None:
        """``stats`` of a hashed key, under the lock."""
        stored = txn.get(key, db=self._db)
        total = ScanStats(*_unpack(stored)) if stored is not None else None
        flushing = self._unseen_flush(txn)
        writing = flushing.get(key) if flushing is not None else None
        if writing is not None:
            total = total.merged(writing) if total is not None else writing
        pending = self._pending.get(key) if self._pending else None
        if total is None:
            return pending
        return total.merged(pending) if pending is not None else total

    def flush(self) -> int:
        """Merges this worker's scans into the stored totals in one transaction; returns how many
        codes were written. Scans arriving meanwhile wait for the next flush."""
        with self._lock:
            batch, self._pending = self._pending, _Log()
            self._flushing, self._flushing_txn = batch, None
            clients, self._clients = self._clients, set()
            self._clients_flushing = clients
        if not batch and not clients:
            with self._lock:
                self._flushing, self._clients_flushing = _Log(), set()
            return 0

        def fn(txn: Txn) -> int:
            with self._lock:
                self._flushing_txn = txn.id()
            merged = _merge(batch, txn, self._db)
            if clients:
                _write_clients(txn, self._clients_db, clients)
            return merged

        try:
            written = self.env.write(fn)
        except BaseException:
            with self._lock:
                self._pending = batch.then(self._pending)
                self._flushing, self._flushing_txn = _Log(), None
                self._clients |= clients
                self._clients_flushing = set()
            raise
        with self._lock:
            self._flushing, self._flushing_txn = _Log(), None
            self._clients_flushing = set()
        return written


Located = tuple[list[int], list[int], list[int], list[int], list[int]]
"""Scan counts, first scan ms, last located scan ms and region, first scan's region: one list
each, one entry per key."""


class Tally(NamedTuple):
    """What ``Observations.tally`` counted."""

    located: Located
    """The statistics of each counted key, this scan included, in order."""
    counted: list[bool] | None
    """Whether each key was counted; None when every one was."""
    standing: list[ScanStats | None]
    """The statistics as they stand of each key not counted, in order."""


def located_reference(keys: Sequence[bytes], earlier: Sequence[int], repeated: bool,
                      index: Callable[[], tuple[dict[bytes, tuple[int, int]],
                                                dict[bytes, tuple[int, int]]]],
                      flushing: _Log | None, txn: Txn, db: Database, now_ms: int,
                      region: int) -> Located:
    """Each key's statistics, this scan included: ``earlier``, its unflushed scans before this
    call; ``repeated``, whether a key occurs twice in ``keys``; ``index``, the first and last
    located scans of the unflushed log before this call (asked for only when needed);
    ``flushing``, the log a flush is writing that ``txn`` does not see yet."""
    counts: list[int] = []
    firsts_ms: list[int] = []
    lasts_ms: list[int] = []
    last_regions: list[int] = []
    first_regions: list[int] = []
    here: dict[bytes, int] = {}
    firsts: dict[bytes, tuple[int, int]] | None = None
    lasts: dict[bytes, tuple[int, int]] = {}
    writing_counts = flushing.counts if flushing else None
    for key, before in zip(keys, earlier, strict=True):
        if before or repeated:
            if firsts is None:
                firsts, lasts = index()
            count = before
            first, first_region = firsts.get(key, (now_ms, region))
            last_ms, last_region = lasts.get(key, _NOWHERE)
            if repeated:
                # The same code twice in one call: each scan counts the ones before it.
                n = here.get(key, 0)
                here[key] = n + 1
                if n:
                    count += n
                    if region:
                        last_ms, last_region = now_ms, region
            count += 1
        else:
            count, first, last_ms, last_region, first_region = _once(now_ms, region)
        # Of scans in the same millisecond, the stored ones came first, then the ones being
        # flushed, then this worker's log.
        if writing_counts is not None and key in writing_counts:
            assert flushing is not None
            writing = flushing.get(key)
            if writing is not None:
                count += writing.count
                if writing.first_ms <= first:
                    first, first_region = writing.first_ms, writing.first_region
                if writing.last_ms > last_ms:
                    last_ms, last_region = writing.last_ms, writing.last_region
        stored = txn.get(key, db=db)
        if stored is not None:
            count, first, last_ms, last_region, first_region = _plus_stored(
                stored, count, first, last_ms, last_region, first_region)
        counts.append(count)
        firsts_ms.append(first)
        lasts_ms.append(last_ms)
        last_regions.append(last_region)
        first_regions.append(first_region)
    return counts, firsts_ms, lasts_ms, last_regions, first_regions


def merge_reference(log: _Log, txn: Txn, db: Database) -> int:
    """Adds each key's scans in ``log`` to its stored totals in ``txn``, in key order through
    one cursor; returns how many codes were written. Each key's scans are written first,
    in the same step that reads what they replace (``Cursor.replace``): a code with nothing
    stored yet (its first scans) is done, and only one with stored totals has their sum
    written over, beside the cursor."""
    firsts, lasts = log.summary()
    counts = log.counts
    pack = _SCAN.pack
    cursor = txn.cursor(db=db)
    for key in sorted(counts):
        count = counts[key]
        first, first_region = firsts[key]
        last_ms, last_region = lasts.get(key, _NOWHERE)
        stored = cursor.replace(key, pack(count, first, last_ms, last_region, first_region))
        if stored is not None:
            cursor.put(key, pack(*_plus_stored(stored, count, first, last_ms, last_region,
                                               first_region)))
    return len(counts)


# The compiled twins of the two loops above (tracecore/_speedups/_scans.pyx), else these.
_compiled = load("_scans")
_located = located_reference if _compiled is None else _compiled.located
_merge = merge_reference if _compiled is None else _compiled.merge


def _write_clients(txn: Txn, db: Database, clients: set[bytes]) -> None:
    """Stores the public scans' (client tag + code key), and forgets the days before the day
    before the newest one written: tags begin with their day, so those are the first keys."""
    ordered = sorted(clients)
    cursor = txn.cursor(db=db)
    cursor.putmulti([(seen, b"") for seen in ordered])
    newest = int.from_bytes(ordered[-1][:DAY_BYTES], "big")
    cutoff = (newest - _CLIENT_DAYS_KEPT).to_bytes(DAY_BYTES, "big")
    if cursor.first():
        while bytes(cursor.key()[:DAY_BYTES]) < cutoff:
            if not cursor.delete():
                break
