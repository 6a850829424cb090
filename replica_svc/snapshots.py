"""Snapshots in the JetStream object store: a tenant's ledger (a compacted copy taken in one read
transaction), key ring and identity as one tar object, with the epoch and the stream sequence
from which the changes after it follow."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import ObjectMeta, ObjectStoreConfig
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError

from replica_svc.streams import copies
from tracecore.ledger.tenants import IDENTITY, KEYRING, LEDGER, Tenant

BUCKET = "pharmatrace_snapshots"


@dataclass(frozen=True)
class SnapshotInfo:
    tenant: str
    epoch: int
    stream_seq: int


async def _bucket(js: JetStreamContext):  # type: ignore[no-untyped-def]
    try:
        return await js.object_store(BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(
            BUCKET, config=ObjectStoreConfig(bucket=BUCKET, replicas=copies(js)))


def pack(tenant: Tenant) -> bytes:
    """The tenant's files as a tar: the ledger first, the key ring after it (keys are only
    added, so the ring holds every key the copied ledger's codes were minted under)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / LEDGER
        copy.mkdir()
        tenant.ledger.env.copy_to(copy)
        for name in (KEYRING, IDENTITY):
            shutil.copyfile(tenant.path / name, Path(tmp) / name)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name in (f"{LEDGER}/data.mdb", KEYRING, IDENTITY):
                tar.add(Path(tmp) / name, arcname=name)
        return out.getvalue()


def unpack(data: bytes, target: Path) -> None:
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(target, filter="data")


async def put(js: JetStreamContext, info: SnapshotInfo, data: bytes) -> None:
    bucket = await _bucket(js)
    await bucket.put(info.tenant, data, meta=ObjectMeta(
        name=info.tenant, description=json.dumps({"epoch": info.epoch,
                                                  "stream_seq": info.stream_seq})))


async def latest(js: JetStreamContext, tenant: str) -> SnapshotInfo | None:
    bucket = await _bucket(js)
    try:
        meta = await bucket.get_info(tenant)
    except (ObjectNotFoundError, NotFoundError):
        return None
    doc = json.loads(meta.description or "{}")
    return SnapshotInfo(tenant, int(doc.get("epoch", 0)), int(doc.get("stream_seq", 0)))


async def fetch(js: JetStreamContext, tenant: str) -> tuple[SnapshotInfo, bytes] | None:
    bucket = await _bucket(js)
    try:
        result = await bucket.get(tenant)
    except (ObjectNotFoundError, NotFoundError):
        return None
    doc = json.loads(result.info.description or "{}")
    info = SnapshotInfo(tenant, int(doc.get("epoch", 0)), int(doc.get("stream_seq", 0)))
    return info, bytes(result.data or b"")
