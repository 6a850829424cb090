"""A tenant's alerts: diversion and clone findings, each stored once with its evidence.

They live beside the ledger (``<tenant>/alerts``), not in it, because both sides raise them: the
issuance process on receipts and dispensings, every verification worker on scans. LMDB lets all
of them write one environment, one transaction at a time. Workers buffer what they raise and
store it with their scan statistics, off the request path.

An alert names its pack: each is stored sealed under the tenant's ``CodeKeys`` (AES-GCM), and
the key that says an alert was already raised is a keyed hash. A store written in clear by an
earlier release is sealed in one transaction when first opened (``pharmatrace tenant migrate``
does it, then compacts the file so that the freed pages keep nothing).
"""

from __future__ import annotations

import dataclasses
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import paging
from tracecore.ledger.code_keys import CodeKeys, seal_store_once
from tracecore.ledger.env import Env, Txn
from tracecore.oversight import AlertFilter as AlertFilter  # what page() and after() take
from tracecore.oversight import AlertRecord, Raised

DATABASES = ("alerts", "alert_keys", "meta")
DIRECTORY = "alerts"
#: Alerts read per ListAlerts page at most, so a sparse filter cannot stall a worker.
MAX_SCAN = 50_000
#: A worker forgets the alerts it already raised past this many (the store still refuses them).
_SEEN_LIMIT = 1_000_000
_ID = struct.Struct(">Q")
_LAST_ID = (1 << 64) - 1
_NEXT = b"next_id"


class AlertBook:
    """One tenant's alert store, opened once per process (see ``book``)."""

    def __init__(self, path: Path, *, tenant: str, codes: CodeKeys) -> None:
        self.env = Env(path, DATABASES, owner=tenant)
        self._db = self.env.dbs
        self._codes = codes
        self._pending: list[Raised] = []
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()
        seal_store_once(self.env, self._seal_old)

    def _seal_old(self, txn: Txn) -> None:
        """Seals the alerts of a store written in clear (by an earlier release): each alert,
        and its once-only key as a keyed hash."""
        keys = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=self._db["alert_keys"])]
        txn.drop(self._db["alert_keys"], delete=False)
        self._codes.seal_values(txn, self._db["alerts"])
        txn.cursor(db=self._db["alert_keys"]).putmulti(
            sorted((self._codes.digest(k), v) for k, v in keys))

    def close(self) -> None:
        self.env.close()

    def append(self, raised: Sequence[Raised]) -> list[AlertRecord]:
        """Stores the alerts not stored before, in one durable transaction; returns those, with
        their ids."""
        if not raised:
            return []

        def fn(txn: Txn) -> list[AlertRecord]:
            data = txn.get(_NEXT, db=self._db["meta"])
            next_id = _ID.unpack(data)[0] if data is not None else 1
            stored: list[AlertRecord] = []
            digest, seal = self._codes.digest, self._codes.seal
            for item in raised:
                if not txn.put(digest(item.key), _ID.pack(next_id), db=self._db["alert_keys"],
                               overwrite=False):
                    continue
                alert = dataclasses.replace(item.alert, alert_id=next_id)
                txn.put(_ID.pack(next_id), seal(_encode(alert)), db=self._db["alerts"],
                        append=True)
                stored.append(alert)
                next_id += 1
            txn.put(_NEXT, _ID.pack(next_id), db=self._db["meta"])
            return stored

        return self.env.write(fn)

    def buffer(self, raised: Sequence[Raised]) -> None:
        """Keeps alerts for the next ``flush``; one already raised by this process is dropped."""
        with self._lock:
            if len(self._seen) > _SEEN_LIMIT:
                self._seen.clear()
            for item in raised:
                if item.key not in self._seen:
                    self._seen.add(item.key)
                    self._pending.append(item)

    def flush(self) -> int:
        """Stores the buffered alerts; returns how many were new. Kept for the next flush if the
        write fails."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            return len(self.append(batch))
        except BaseException:
            with self._lock:
                self._pending[:0] = batch
            raise

    def last_id(self) -> int:
        with self.env.read() as txn:
            data = txn.get(_NEXT, db=self._db["meta"])
            return _ID.unpack(data)[0] - 1 if data is not None else 0

    def page(self, wanted: AlertFilter, page_size: int, page_token: str
             ) -> tuple[list[AlertRecord], str]:
        """One page of matching alerts, oldest first; the token resumes after it."""
        size = paging.page_size(page_size)
        start = paging.page_start(page_token, last=_LAST_ID)
        out: list[AlertRecord] = []
        for scanned, alert in enumerate(self._scan(start), start=1):
            if wanted.matches(alert):
                out.append(alert)
                if len(out) == size:
                    return out, str(alert.alert_id + 1)
            if scanned >= MAX_SCAN:
                return out, str(alert.alert_id + 1)
        return out, ""

    def after(self, after_id: int, wanted: AlertFilter, limit: int = paging.MAX_PAGE
              ) -> tuple[list[AlertRecord], int]:
        """Matching alerts with ids above ``after_id`` (at most ``limit``, reading at most
        MAX_SCAN), and the id to continue after."""
        out: list[AlertRecord] = []
        last = after_id
        if after_id >= _LAST_ID:
            return out, last
        for scanned, alert in enumerate(self._scan(after_id + 1), start=1):
            last = alert.alert_id
            if wanted.matches(alert):
                out.append(alert)
                if len(out) == limit:
                    break
            if scanned >= MAX_SCAN:
                break
        return out, last

    def _scan(self, start: int) -> Iterator[AlertRecord]:
        with self.env.read() as txn:
            cursor = txn.cursor(db=self._db["alerts"])
            if not cursor.set_range(_ID.pack(start)):
                return
            opened = self._codes.open
            for _, data in cursor:
                yield _decode(opened(bytes(data)))


_FIELDS = tuple(f.name for f in dataclasses.fields(AlertRecord))


def _encode(alert: AlertRecord) -> bytes:
    """The stored form: an ``AlertRecord`` message, wire-identical to the API's ``Alert``."""
    return lpb.AlertRecord(**{name: getattr(alert, name) for name in _FIELDS}
                           ).SerializeToString()


def _decode(data: bytes) -> AlertRecord:
    record = lpb.AlertRecord.FromString(data)
    fields = {name: getattr(record, name) for name in _FIELDS}
    fields["authorised_regions"] = tuple(record.authorised_regions)
    return AlertRecord(**fields)


_books: dict[Path, AlertBook] = {}
_books_lock = threading.Lock()


def book(tenant_path: Path, tenant: str, codes: CodeKeys) -> AlertBook:
    """The tenant's alert store in this process. LMDB must not open one environment twice in a
    process (its locks are per process), and the issuance side and a worker's services share it,
    so every opener goes through here. ``codes``: the tenant ledger's ``codes``."""
    path = (tenant_path / DIRECTORY).resolve()
    with _books_lock:
        opened = _books.get(path)
        if opened is None:
            opened = _books[path] = AlertBook(path, tenant=tenant, codes=codes)
        return opened


def close_book(tenant_path: Path) -> None:
    """Writes what is buffered and closes the tenant's alert store in this process (the tenant
    went offline); the next ``book`` opens it again."""
    with _books_lock:
        opened = _books.pop((tenant_path / DIRECTORY).resolve(), None)
    if opened is not None:
        try:
            opened.flush()
        finally:
            opened.close()


def close_books() -> None:
    with _books_lock:
        for opened in _books.values():
            opened.close()
        _books.clear()
