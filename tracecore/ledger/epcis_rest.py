"""What the EPCIS 2.0 REST binding keeps of a tenant: capture jobs (and the documents still to
apply), named queries, webhook subscriptions and their outbox of deliveries.

It lives beside the ledger (``<tenant>/epcis-rest``), as the answer trail does: the verification
workers that serve HTTP write it (LMDB lets every process write an environment, one transaction at
a time), and the issuance process, the ledger's one writer, applies the documents and delivers the
webhooks. Records are JSON: they are the REST binding's own documents.

Every value that can name a code (jobs, whose errors may, the documents still to apply, named
queries, subscriptions and the outbox's event documents) is sealed under the tenant's
``CodeKeys`` (AES-GCM); keys are capture ids, query names, subscription ids and outbox numbers,
never codes. A store of an earlier release, written in clear, is sealed in one transaction when
first opened.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tracecore.ledger.code_keys import CodeKeys, seal_store_once
from tracecore.ledger.env import Env, Txn
from tracecore.ledger.records import seq_key, u64

DATABASES = ("jobs", "documents", "queue", "queries", "subscriptions", "outbox", "meta")
#: The databases whose values are sealed (``queue``'s are empty, ``meta`` names no code).
SEALED = ("jobs", "documents", "queries", "subscriptions", "outbox")
DIRECTORY = "epcis-rest"
#: Where a worker leaves one empty file per tenant whose store has work for the issuance process.
WAKE_DIRECTORY = "epcis-wake"

Record = dict[str, Any]


class EpcisStore:
    """One tenant's REST binding store, opened once per process."""

    def __init__(self, path: Path, *, tenant: str, codes: CodeKeys) -> None:
        self.tenant = tenant
        self.env = Env(path, DATABASES, owner=tenant)
        self._db = self.env.dbs
        self._seal = codes.seal
        self._open = codes.open
        # The values of a store written in clear (by an earlier release), sealed once.
        seal_store_once(self.env, lambda txn: codes.seal_values(
            txn, *(self._db[name] for name in SEALED)))

    def close(self) -> None:
        self.env.close()

    def _dump(self, record: Record) -> bytes:
        return self._seal(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode())

    def _load(self, data: bytes | memoryview) -> Record:
        loaded: Record = json.loads(self._open(bytes(data)))
        return loaded

    # -- capture jobs ------------------------------------------------------------------------

    def add_job(self, job: Record, document: str) -> None:
        """Keeps a new job and its document, queued for the issuance process, durably."""
        key = job["captureID"].encode()

        def fn(txn: Txn) -> None:
            txn.put(key, self._dump(job), db=self._db["jobs"])
            txn.put(key, self._seal(document.encode()), db=self._db["documents"])
            txn.put(key, b"", db=self._db["queue"])

        self.env.write(fn)

    def job(self, capture_id: str) -> Record | None:
        with self.env.read() as txn:
            data = txn.get(capture_id.encode(), db=self._db["jobs"])
            return self._load(data) if data is not None else None

    def jobs(self, after: str, limit: int) -> list[Record]:
        """Jobs in id order (ids grow with time), from the first after ``after``."""
        found: list[Record] = []
        with self.env.read() as txn:
            cursor = txn.cursor(db=self._db["jobs"])
            if not cursor.set_range(after.encode() + b"\x00"):
                return found
            for _, data in cursor:
                found.append(self._load(data))
                if len(found) == limit:
                    break
        return found

    def queued(self, limit: int | None = None) -> list[str]:
        """The ids of the jobs still to apply, oldest first (the first ``limit`` of them)."""
        with self.env.read() as txn:
            keys = txn.cursor(db=self._db["queue"]).iternext(values=False)
            return [bytes(key).decode() for key in itertools.islice(keys, limit)]

    def load(self, capture_id: str) -> tuple[Record, str] | None:
        """A queued job and its document; None once it is finished."""
        key = capture_id.encode()
        with self.env.read() as txn:
            job = txn.get(key, db=self._db["jobs"])
            document = txn.get(key, db=self._db["documents"])
            if job is None or document is None:
                return None
            return self._load(job), self._open(bytes(document)).decode()

    def finish_jobs(self, jobs: list[Record]) -> None:
        """Keeps jobs' outcomes and lets their documents go, in one transaction."""

        def fn(txn: Txn) -> None:
            for job in jobs:
                key = job["captureID"].encode()
                txn.put(key, self._dump(job), db=self._db["jobs"])
                txn.delete(key, db=self._db["documents"])
                txn.delete(key, db=self._db["queue"])

        self.env.write(fn)

    # -- named queries and subscriptions -----------------------------------------------------

    def put_query(self, name: str, query: Record) -> bool:
        """Keeps a named query; False when the name is taken."""

        def fn(txn: Txn) -> bool:
            return bool(txn.put(name.encode(), self._dump(query), db=self._db["queries"],
                                overwrite=False))

        return self.env.write(fn)

    def query(self, name: str) -> Record | None:
        with self.env.read() as txn:
            data = txn.get(name.encode(), db=self._db["queries"])
            return self._load(data) if data is not None else None

    def queries(self) -> list[Record]:
        with self.env.read() as txn:
            return [self._load(data) for _, data in txn.cursor(db=self._db["queries"])]

    def delete_query(self, name: str) -> bool:
        """Forgets a named query and its subscriptions (with their pending deliveries)."""

        def fn(txn: Txn) -> bool:
            if not txn.delete(name.encode(), db=self._db["queries"]):
                return False
            for sub in self._subscriptions(txn):
                if sub["queryName"] == name:
                    self._drop_subscription(txn, sub["subscriptionID"])
            return True

        return self.env.write(fn)

    def put_subscription(self, sub: Record) -> None:
        self.env.write(lambda txn: txn.put(sub["subscriptionID"].encode(), self._dump(sub),
                                           db=self._db["subscriptions"]))

    def subscriptions(self) -> list[Record]:
        with self.env.read() as txn:
            return list(self._subscriptions(txn))

    def delete_subscription(self, sub_id: str) -> bool:
        return self.env.write(lambda txn: self._drop_subscription(txn, sub_id))

    def _subscriptions(self, txn: Txn) -> Iterator[Record]:
        for _, data in txn.cursor(db=self._db["subscriptions"]):
            yield self._load(data)

    def _drop_subscription(self, txn: Txn, sub_id: str) -> bool:
        prefix = sub_id.encode() + b"\x00"
        cursor = txn.cursor(db=self._db["outbox"])
        if cursor.set_range(prefix):
            while bytes(cursor.key()).startswith(prefix):
                if not cursor.delete():
                    break
        return bool(txn.delete(sub_id.encode(), db=self._db["subscriptions"]))

    # -- the outbox --------------------------------------------------------------------------

    def enqueue(self, sub_id: str, cursor: int, bodies: list[bytes]) -> None:
        """Adds deliveries after the subscription's last and moves its cursor (the ledger
        sequence number its next look starts at), in one transaction: a delivery is never
        lost nor added twice by a restart."""

        def fn(txn: Txn) -> None:
            data = txn.get(sub_id.encode(), db=self._db["subscriptions"])
            if data is None:
                return
            sub = self._load(data)
            number = int(sub.get("enqueued", 0))
            for body in bodies:
                number += 1
                txn.put(_outbox_key(sub_id, number), self._seal(body), db=self._db["outbox"])
            sub["enqueued"] = number
            sub["cursor"] = cursor
            txn.put(sub_id.encode(), self._dump(sub), db=self._db["subscriptions"])

        self.env.write(fn)

    def next_delivery(self, sub_id: str) -> tuple[int, bytes] | None:
        """The oldest pending delivery of a subscription: (its number, the body)."""
        prefix = sub_id.encode() + b"\x00"
        with self.env.read() as txn:
            cursor = txn.cursor(db=self._db["outbox"])
            if cursor.set_range(prefix) and bytes(cursor.key()).startswith(prefix):
                return (u64(bytes(cursor.key())[len(prefix):]),
                        self._open(bytes(cursor.value())))
        return None

    def delivered(self, sub_id: str, number: int) -> None:
        self.env.write(lambda txn: txn.delete(_outbox_key(sub_id, number),
                                              db=self._db["outbox"]))

    def pending(self) -> int:
        """Deliveries not yet made, of every subscription."""
        with self.env.read() as txn:
            return int(txn.stat(self._db["outbox"])["entries"])


def _outbox_key(sub_id: str, number: int) -> bytes:
    return sub_id.encode() + b"\x00" + seq_key(number)


class EpcisStores:
    """Each tenant's store, opened on first use and kept open (one per process)."""

    def __init__(self, root: Path, codes: Callable[[str], CodeKeys]) -> None:
        self._root = root
        self._codes = codes
        self._stores: dict[str, EpcisStore] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, tenant_path: Path) -> EpcisStore:
        store = self._stores.get(tenant)
        if store is None:
            with self._lock:
                store = self._stores.get(tenant)
                if store is None:
                    store = self._stores[tenant] = EpcisStore(
                        tenant_path / DIRECTORY, tenant=tenant, codes=self._codes(tenant))
        return store

    def forget(self, tenant: str) -> None:
        """Closes the tenant's store (it went offline); the next ``get`` opens it again."""
        with self._lock:
            store = self._stores.pop(tenant, None)
        if store is not None:
            store.close()

    def wake(self, tenant: str) -> None:
        """Tells the issuance process that ``tenant``'s store has work."""
        directory = self._root / WAKE_DIRECTORY
        directory.mkdir(exist_ok=True)
        (directory / tenant).touch()

    def woken(self) -> list[str]:
        """The tenants whose stores were woken since the last call (their marks taken away
        before the work is looked at, so that a later mark is never lost)."""
        directory = self._root / WAKE_DIRECTORY
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        for name in names:
            (directory / name).unlink(missing_ok=True)
        return names

    def close(self) -> None:
        with self._lock:
            stores, self._stores = self._stores, {}
        for store in stores.values():
            store.close()


def has_store(tenant_path: Path) -> bool:
    return (tenant_path / DIRECTORY / "data.mdb").exists()
