"""`pharmatrace tenant promote`: a replica's node becomes the tenant's writer and the old
writer, still running, is fenced: the stream refuses its changes and its writes fail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest
from nats.js.errors import NoKeysError
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, lifecycle_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import verification_pb2 as vpb

from replica_svc.directory import bucket
from tests.e2e.conftest import pharmatrace_command
from tests.e2e.nats_server import NatsServer
from tests.e2e.test_move import _move, _named_writer, _refused_after_retries, _replica_writer
from tests.e2e.test_replica import _converged, _promote, _start_replica, _verdicts
from tests.e2e.test_replication_stream import GTIN, TENANT, _holding, _newest_commit, _write
from tests.processes import stop

pytestmark = pytest.mark.timeout(240)


def test_promoting_a_replica_fences_the_old_writer(
        servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After `tenant promote`, the promoted replica holds every acknowledged write, and the old
    writer's next write fails naming the fence while the replica never sees it."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    writer = servers.start(tmp_path / "writer",
                           extra=["--nats", nats_server.url, "--replicated-commit"])
    acknowledged = _write(writer.issue_addr, "L1", 200)
    _holding(nats_server.url, set(acknowledged))
    replica_data = tmp_path / "replica"
    process, ports = _start_replica(nats_server.url, replica_data)
    try:
        _converged(replica_data, _newest_commit(nats_server.url))
        result = json.loads(_promote(nats_server.url, replica_data))
        assert result["term"] == 1 and result["node"] == "node-b"
        refused = _refused_after_retries(lambda: _write(writer.issue_addr, "L2", 50))
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no longer writes" in (refused.details() or "")
        assert "no longer writes" in _refused_batch(writer.issue_addr, "L3")
        assert _verdicts(ports["verify"], acknowledged) == {vpb.VERDICT_GENUINE}
    finally:
        stop(process, "pharmatrace replica")


def test_the_promoted_node_writes_and_the_old_writer_restarted_refuses(
        servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The promoted replica's data served as writer takes new writes into the stream under a
    new epoch; the old writer, killed and started again, refuses writes from the start and
    leaves the directory naming the new writer, without its own front door."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    old = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url])
    acknowledged = _write(old.issue_addr, "L1", 100)
    _holding(nats_server.url, set(acknowledged))
    replica_data = tmp_path / "replica"
    process, _ = _start_replica(nats_server.url, replica_data)
    try:
        _converged(replica_data, _newest_commit(nats_server.url))
        old.kill()
        _promote(nats_server.url, replica_data)
    finally:
        stop(process, "pharmatrace replica")
    monkeypatch.setenv("PHARMATRACE_NODE", "node-b")
    new = servers.start(replica_data, extra=["--nats", nats_server.url, "--replicated-commit"])
    later = _write(new.issue_addr, "L2", 100)
    _holding(nats_server.url, set(later))
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    back = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url,
                                                     "--replicated-commit"])
    assert "node node-b was promoted" in _refused_batch(back.issue_addr, "L3")
    routed = subprocess.run(
        [*pharmatrace_command(), "directory", "route", f"(01){GTIN}(21){acknowledged[0]}", "--nats",
         nats_server.url], capture_output=True, text=True, timeout=60)
    assert routed.returncode == 0, routed.stderr
    entry = json.loads(routed.stdout)
    assert entry["writer"]["issue"] == new.issue_addr
    assert f"http://127.0.0.1:{back.ports['http']}" not in entry["front_doors"]


def test_a_fenced_writer_sees_a_recall_made_on_the_new_writer(
        servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After `tenant promote`, the old writer, still running, keeps answering checks of the
    tenant from a copy that follows the new writer's stream: a batch recalled on the new writer
    verifies recalled on the old node too, while the old node still refuses writes."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    old = servers.start(tmp_path / "writer",
                        extra=["--nats", nats_server.url, "--replicated-commit"])
    code = f"(01){GTIN}(21){_write(old.issue_addr, 'L1', 20)[0]}"
    with grpc.insecure_channel(old.issue_addr) as channel:
        assert lifecycle_pb2_grpc.LifecycleStub(channel).Commission(lpb.CommissionRequest(
            tenant=TENANT, codes=[code]), timeout=30).applied
    with _promoted_node_b(nats_server.url, tmp_path, old.issue_addr, code, monkeypatch) as (
            new, _):
        assert vpb.ALERT_KIND_RECALLED not in _alerts(old.verify_addr, code)
        with grpc.insecure_channel(new) as channel:
            lifecycle_pb2_grpc.LifecycleStub(channel).RecallBatch(lpb.RecallBatchRequest(
                tenant=TENANT, product=GTIN, lot="L1", reason="nitrosamine above limit"),
                timeout=30)
        deadline = time.monotonic() + 90
        while vpb.ALERT_KIND_RECALLED not in _alerts(old.verify_addr, code):
            assert time.monotonic() < deadline, "the old writer never saw the recall"
            time.sleep(0.2)
        assert "no longer writes" in _refused_batch(old.issue_addr, "L2")


def test_a_tenant_moved_back_to_its_fenced_writer_is_written_there_again(
        servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenant promoted away from node-a and then moved back (`tenant move --to node-a`) is
    written by node-a's running server again, from the copy it kept current, and node-b, now
    fenced in turn, follows it: a code issued on node-a after the move verifies on node-b."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    old = servers.start(tmp_path / "writer",
                        extra=["--nats", nats_server.url, "--replicated-commit"])
    first = _write(old.issue_addr, "L1", 10)
    code = f"(01){GTIN}(21){first[0]}"
    with _promoted_node_b(nats_server.url, tmp_path, old.issue_addr, code, monkeypatch) as (
            _, ports):
        _move(nats_server.url, tmp_path / "writer", "node-a")
        _named_writer(nats_server.url, code, lambda i: i == old.issue_addr)
        later = _write(old.issue_addr, "L2", 10)
        deadline = time.monotonic() + 90
        while _served_verdicts(ports["verify"], later) != {vpb.VERDICT_GENUINE}:
            assert time.monotonic() < deadline, "node-b never saw node-a's new codes"
            time.sleep(0.2)
        assert _verdicts(old.ports["verify"], first + later) == {vpb.VERDICT_GENUINE}


@contextlib.contextmanager
def _promoted_node_b(url: str, tmp_path: Path, old_issue: str, code: str,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, int]]]:
    """A replica on node-b that writes when promoted, caught up and promoted while node-a's
    writer runs: (its issuance address once the directory names it, its ports)."""
    replica_data = tmp_path / "replica"
    process, ports = _replica_writer(url, replica_data, monkeypatch)
    try:
        _promote(url, replica_data)
        yield _named_writer(url, code, lambda i: i not in ("", old_issue)), ports
    finally:
        stop(process, "pharmatrace replica")


def _served_verdicts(verify_port: int, serials: list[str]) -> set[int]:
    """The verdicts of ``serials`` on a node, none while it answers UNAVAILABLE, retry (its
    copy being replaced by a snapshot)."""
    try:
        return _verdicts(verify_port, serials)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return set()


def _alerts(verify_addr: str, code: str) -> list[int]:
    """The alerts a check of a genuine ``code`` raises on the node at ``verify_addr`` (asked
    again while the node answers UNAVAILABLE, retry: its copy being replaced by a snapshot)."""
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(verify_addr) as channel:
        while True:
            try:
                answer = verification_pb2_grpc.VerificationStub(channel).Verify(
                    vpb.VerifyRequest(tenant=TENANT, code=code), timeout=30)
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    assert answer.verdict == vpb.VERDICT_GENUINE
    return list(answer.alerts)


def _refused_batch(issue_addr: str, lot: str) -> str:
    """The details of the FAILED_PRECONDITION an AddBatch gets."""
    with grpc.insecure_channel(issue_addr) as channel, pytest.raises(grpc.RpcError) as refused:
        admin_pb2_grpc.AdminStub(channel).AddBatch(apb.AddBatchRequest(
            tenant=TENANT, batch=cpb.Batch(product=GTIN, lot=lot, expires_on="2029-06-30")),
            timeout=30)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    return refused.value.details() or ""


@pytest.mark.parametrize("action", [["promote", "acmee", "--node", "node-b"],
                                    ["move", "acmee", "--to", "node-b", "--replica-data", "r"]])
def test_promoting_a_tenant_no_writer_published_is_refused(
        nats_server: NatsServer, tmp_path: Path, action: list[str]) -> None:
    """`tenant promote` or `tenant move` of a tenant that has no stream (a typo, or one never
    served with --nats) is refused in one line naming it, and leaves no entry for it in the
    directory."""
    promoted = subprocess.run(
        [*pharmatrace_command(), "tenant", *action, "--nats", nats_server.url],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert promoted.returncode == 1
    assert promoted.stderr.startswith("pharmatrace: ")
    assert "acmee" in promoted.stderr and len(promoted.stderr.strip().splitlines()) == 1
    assert asyncio.run(_directory_keys(nats_server.url)) == []


async def _directory_keys(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        kv = await bucket(nc.jetstream())
        try:
            return list(await kv.keys())
        except NoKeysError:
            return []
    finally:
        await nc.close()
