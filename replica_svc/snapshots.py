"""Snapshots in the JetStream object store: a tenant's ledger (a compacted copy taken in one read
transaction), key ring and identity as one tar object, with the epoch and the stream sequence
from which the changes after it follow. The tar is encrypted (``Sealing.seal_snapshot``) and
carries that position itself (``snapshot.json``), so the object's description, which anyone
with access to the bucket can rewrite, is checked against what was sealed."""

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
from tracecore.errors import LedgerCorrupt
from tracecore.ledger.tenants import IDENTITY, KEYRING, LEDGER, Tenant
from tracecore.replication.sealing import Sealing

BUCKET = "pharmatrace_snapshots"
_POSITION = "snapshot.json"


@dataclass(frozen=True)
class SnapshotInfo:
    tenant: str
    epoch: int
    stream_seq: int
    sealed: bool = True
    """False for a snapshot an earlier release stored in clear: replicas wait for a sealed one,
    which its writer stores once it runs this release."""


async def _bucket(js: JetStreamContext):  # type: ignore[no-untyped-def]
    try:
        return await js.object_store(BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(
            BUCKET, config=ObjectStoreConfig(bucket=BUCKET, replicas=copies(js)))


def pack(tenant: Tenant, info: SnapshotInfo, sealing: Sealing) -> bytes:
    """The tenant's files as a sealed tar: the ledger first, the key ring after it (keys are
    only added, so the ring holds every key the copied ledger's codes were minted under)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / LEDGER
        copy.mkdir()
        tenant.ledger.env.copy_to(copy)
        for name in (KEYRING, IDENTITY):
            shutil.copyfile(tenant.path / name, Path(tmp) / name)
        (Path(tmp) / _POSITION).write_text(json.dumps(_position(info)))
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name in (f"{LEDGER}/data.mdb", KEYRING, IDENTITY, _POSITION):
                tar.add(Path(tmp) / name, arcname=name)
        return sealing.seal_snapshot(out.getvalue())


def unpack(info: SnapshotInfo, data: bytes, target: Path, sealing: Sealing) -> None:
    """Opens the snapshot ``info`` describes into the new directory ``target``; LedgerCorrupt
    when it does not open or was taken of another tenant or position."""
    clear = sealing.open_snapshot(info.tenant, data)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(clear), mode="r") as tar:
        tar.extractall(target, filter="data")
    sealed = json.loads((target / _POSITION).read_text()) if (target / _POSITION).is_file() \
        else None
    if sealed != _position(info):
        raise LedgerCorrupt(f"the snapshot of tenant {info.tenant} was taken of {sealed}, not "
                            f"of {_position(info)} as its description says")
    (target / _POSITION).unlink()


def _position(info: SnapshotInfo) -> dict[str, int | str]:
    return {"tenant": info.tenant, "epoch": info.epoch, "stream_seq": info.stream_seq}


async def put(js: JetStreamContext, info: SnapshotInfo, data: bytes) -> None:
    bucket = await _bucket(js)
    await bucket.put(info.tenant, data, meta=ObjectMeta(
        name=info.tenant, description=json.dumps({"epoch": info.epoch,
                                                  "stream_seq": info.stream_seq,
                                                  "sealed": True})))


async def latest(js: JetStreamContext, tenant: str) -> SnapshotInfo | None:
    bucket = await _bucket(js)
    try:
        meta = await bucket.get_info(tenant)
    except (ObjectNotFoundError, NotFoundError):
        return None
    return _info(tenant, meta.description)


async def fetch(js: JetStreamContext, tenant: str) -> tuple[SnapshotInfo, bytes] | None:
    bucket = await _bucket(js)
    try:
        result = await bucket.get(tenant)
    except (ObjectNotFoundError, NotFoundError):
        return None
    return _info(tenant, result.info.description), bytes(result.data or b"")


def _info(tenant: str, description: str | None) -> SnapshotInfo:
    doc = json.loads(description or "{}")
    return SnapshotInfo(tenant, int(doc.get("epoch", 0)), int(doc.get("stream_seq", 0)),
                        bool(doc.get("sealed", False)))
