"""`serve --nats`: every committed change of a tenant reaches its JetStream stream, in order,
once, even when the server is killed between commit and publish."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time

import grpc
import nats
import pytest
from nats.js.errors import NotFoundError
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb

from replica_svc.streams import EPOCH, PART, PARTS, SEQ, stream_name
from tests.e2e.conftest import pharmatrace_command
from tests.e2e.nats_server import NatsServer
from tracecore.errors import LedgerCorrupt
from tracecore.keys import KeySource
from tracecore.ledger.chain import SEAL_KEY
from tracecore.ledger.code_keys import CodeKeys
from tracecore.replication.changes import PUT, Assembler, Change
from tracecore.replication.sealing import Sealing, part_context

pytestmark = pytest.mark.timeout(180)

TENANT = "demo"  # created by `serve --dev`
GTIN = "09501101530003"


Message = tuple[int, int, int, int, int, bytes]
#: The servers run with --dev: their key-encryption key is the development one.
SEALING = Sealing.of(KeySource.dev())
#: The ledger keeps codes encrypted; the stream carries its writes as they are.
CODES = CodeKeys.of(KeySource.dev(), TENANT)


def _stream(url: str, tenant: str = TENANT) -> list[Message]:
    """(stream seq, epoch, commit, part, parts, payload) of every message of the tenant's
    stream."""

    async def read() -> list[Message]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(stream_name(tenant))
            except NotFoundError:
                return []
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(stream_name(tenant), seq)
                h = msg.headers or {}
                if SEQ not in h:  # the key ring sent beside the changes, or a fence
                    continue
                out.append((seq, int(h[EPOCH]), int(h[SEQ]), int(h[PART]), int(h[PARTS]),
                            msg.data or b""))
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def _changes(url: str, tenant: str = TENANT) -> list[Change]:
    assembler = Assembler()
    changes: list[Change] = []
    for _, epoch, seq, part, parts, data in _stream(url, tenant):
        piece = SEALING.open(tenant, epoch, part_context(seq, part, parts), data)
        whole = assembler.add(seq, part, parts, piece)
        if whole is not None:
            changes.append(Change.decode(whole))
    return changes


def _write(issue_addr: str, lot: str, count: int, tenant: str = TENANT) -> list[str]:
    with grpc.insecure_channel(issue_addr) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        try:
            admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
                gtin=GTIN, name="Amoxicillin 500 mg capsules")), timeout=30)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:  # the product is there already
                raise  # a refused write (a fenced writer): the caller's to see
        admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
            product=GTIN, lot=lot, expires_on="2029-06-30")), timeout=30)
        chunks = issuance_pb2_grpc.CodeIssuanceStub(channel).RequestCodes(
            ipb.RequestCodesRequest(tenant=tenant, product=GTIN, lot=lot, count=count,
                                    request_id=f"R-{lot}"), timeout=60)
        return [s for chunk in chunks for s in chunk.serials]


def _holding(url: str, serials: set[str], timeout: float = 60.0) -> list[Change]:
    """The stream's changes once they hold every one of ``serials``."""
    deadline = time.monotonic() + timeout
    while True:
        changes = _changes(url)
        if serials <= {CODES.plain(key).decode()[15:] for key in _codes_put(changes)}:
            return changes
        assert time.monotonic() < deadline, "codes issued never reached the stream"
        time.sleep(0.2)


def _codes_put(changes: list[Change]) -> set[bytes]:
    return {key for c in changes for kind, db, key, _ in c.ops if kind == PUT and db == "codes"}


def _assert_gapless(changes: list[Change]) -> None:
    seqs = [c.seq for c in changes]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gap or duplicate in {seqs}"
    assert len({c.epoch for c in changes}) == 1


def test_every_committed_change_is_published_in_order(servers, nats_server: NatsServer,
                                                      tmp_path) -> None:
    """Master data, the pool and its codes all reach the stream, numbered without a gap."""
    server = servers.start(tmp_path / "data", extra=["--nats", nats_server.url])
    serials = _write(server.issue_addr, "L1", 500)
    changes = _holding(nats_server.url, set(serials))
    _assert_gapless(changes)
    assert {db for c in changes for _, db, _, _ in c.ops} >= {"products", "batches", "pools",
                                                              "codes", "pool_codes", "audit"}


def test_the_stream_carries_no_serial_in_clear_and_a_message_moved_does_not_open(
        servers, nats_server: NatsServer, tmp_path) -> None:
    """What the NATS servers store is sealed: no issued serial appears in any message; each
    part opens only at its own place (another commit, part or tenant refuses it)."""
    server = servers.start(tmp_path / "data", extra=["--nats", nats_server.url])
    serials = _write(server.issue_addr, "L1", 300)
    _holding(nats_server.url, set(serials))
    stream = _stream(nats_server.url)
    payload = b"".join(data for *_, data in stream)
    assert not any(serial.encode() in payload for serial in serials)
    _, epoch, seq, part, parts, data = stream[-1]
    assert SEALING.open(TENANT, epoch, part_context(seq, part, parts), data)
    for tenant, context in ((TENANT, part_context(seq + 1, part, parts)),
                            ("other", part_context(seq, part, parts))):
        with pytest.raises(LedgerCorrupt):
            SEALING.open(tenant, epoch, context, data)


def test_changes_committed_while_nats_was_away_and_the_server_killed_arrive_once(
        servers, nats_server: NatsServer, tmp_path) -> None:
    """NATS down, writes committed, the server SIGKILLed before it could publish: after both
    restart, the stream holds every commit exactly once, with no gap."""
    data = tmp_path / "data"
    first = servers.start(data, extra=["--nats", nats_server.url])
    before = _write(first.issue_addr, "L1", 200)
    _holding(nats_server.url, set(before))
    nats_server.stop()
    during = _write(first.issue_addr, "L2", 300)
    first.kill()
    nats_server.start()
    second = servers.start(data, extra=["--nats", nats_server.url])
    after = _write(second.issue_addr, "L3", 100)
    changes = _holding(nats_server.url, set(before) | set(during) | set(after))
    _assert_gapless(changes)
    stream = _stream(nats_server.url)
    ids = [(e, c, p) for _, e, c, p, _, _ in stream]
    assert len(ids) == len(set(ids)), "a message was published twice"


def test_a_stopped_and_restarted_writer_continues_its_epoch_with_its_last_seal_published(
        servers, nats_server: NatsServer, tmp_path) -> None:
    """A writer stopped with SIGTERM publishes its last commits (the seal over its chain
    heads) before it goes, and started again it continues the same epoch: replicas never
    start over from a snapshot because a node was restarted."""
    data = tmp_path / "data"
    first = servers.start(data, extra=["--nats", nats_server.url])
    before = _write(first.issue_addr, "L1", 100)
    busy = threading.Thread(target=_keep_writing, args=(first.issue_addr,))
    busy.start()
    time.sleep(2.5)
    assert first.terminate() == 0   # while writes go on: the last ones are not sealed yet
    busy.join(30)
    records = _cli("audit", "verify", "--data", str(data), "--tenant", TENANT, "--dev")
    found = re.search(r"audit trail: ([\d,]+) records", records)
    assert found, records
    audit_records = int(found.group(1).replace(",", ""))
    sealed_at = json.loads(_cli("audit", "heads", "--data", str(data), "--tenant", TENANT)
                           )["audit_seq"]
    seals = [value for c in _changes(nats_server.url) for kind, db, key, value in c.ops
             if kind == PUT and db == "meta" and key == SEAL_KEY]
    assert sealed_at == audit_records, "the last writes were left unsealed"
    assert seals and int.from_bytes(seals[-1][:8], "big") == sealed_at, "seal not published"
    second = servers.start(data, extra=["--nats", nats_server.url])
    after = _write(second.issue_addr, "L2", 100)
    _assert_gapless(_holding(nats_server.url, set(before) | set(after)))


def _keep_writing(issue_addr: str) -> None:
    """Adds batches (each an audited write) until the server no longer answers."""
    with grpc.insecure_channel(issue_addr) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        for n in range(100_000):
            try:
                admin.AddBatch(apb.AddBatchRequest(tenant=TENANT, batch=cpb.Batch(
                    product=GTIN, lot=f"B{n}", expires_on="2029-06-30")), timeout=5)
            except grpc.RpcError:
                return


def _cli(*args: str) -> str:
    done = subprocess.run([*pharmatrace_command(), *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _newest_commit(url: str) -> int:
    """The last commit in the stream (0 while it holds none)."""
    stream = _stream(url)
    return stream[-1][2] if stream else 0


def test_with_replicated_commit_an_answered_write_is_already_in_the_stream(
        servers, nats_server: NatsServer, tmp_path) -> None:
    """`--replicated-commit`: the codes a line receives are in the stream the moment they
    arrive; with NATS away a write is answered UNAVAILABLE, and published once NATS is back."""
    server = servers.start(tmp_path / "data", extra=["--nats", nats_server.url,
                                                     "--replicated-commit"])
    serials = _write(server.issue_addr, "L1", 300)
    published = {CODES.plain(key).decode()[15:] for key in _codes_put(_changes(nats_server.url))}
    assert set(serials) <= published
    nats_server.stop()
    with grpc.insecure_channel(server.issue_addr) as channel, \
            pytest.raises(grpc.RpcError) as refused:
        admin_pb2_grpc.AdminStub(channel).AddBatch(apb.AddBatchRequest(
            tenant=TENANT, batch=cpb.Batch(product=GTIN, lot="AWAY",
                                           expires_on="2029-06-30")), timeout=60)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    nats_server.start()
    deadline = time.monotonic() + 30
    while not any(db == "batch_ids" and key.endswith(b"AWAY")
                  for c in _changes(nats_server.url) for _, db, key, _ in c.ops):
        assert time.monotonic() < deadline, "the committed batch never reached the stream"
        time.sleep(0.2)
