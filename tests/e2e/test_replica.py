"""`pharmatrace replica`: a read replica bootstraps a tenant from its snapshot in the object
store, follows its stream, and answers Verification for codes issued on the writer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import nats
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import verification_pb2 as vpb

from replica_svc import snapshots
from tests.e2e.conftest import pharmatrace_command
from tests.e2e.nats_server import NatsServer
from tests.e2e.test_replication_stream import (
    GTIN,
    SEALING,
    TENANT,
    _holding,
    _newest_commit,
    _write,
)
from tests.processes import stop
from tracecore.errors import LedgerCorrupt

pytestmark = pytest.mark.timeout(240)


def _start_replica(url: str, data: Path, extra: list[str] | None = None
                   ) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ready = data.parent / "replica.ready.json"
    log = (data.parent / "replica.log").open("wb")
    process = subprocess.Popen(
        [*pharmatrace_command(), "replica", "--nats", url, "--data", str(data),
         "--tenants", TENANT, "--dev", "--verify-port", "0", "--metrics-port", "0",
         "--http-port", "0", "--workers", "1", "--ready-file", str(ready), *(extra or [])],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert process.poll() is None, (data.parent / "replica.log").read_text()
        assert time.monotonic() < deadline, "the replica did not start"
        time.sleep(0.05)
    return process, json.loads(ready.read_text())


def _promote(url: str, data: Path, node: str = "node-b") -> str:
    """`tenant promote` of the tenant to the replica on ``data``, named ``node``: what it
    printed, once it succeeded."""
    promoted = subprocess.run(
        [*pharmatrace_command(), "tenant", "promote", TENANT, "--node", node, "--nats", url,
         "--replica-data", str(data)], capture_output=True, text=True, timeout=120)
    assert promoted.returncode == 0, promoted.stderr
    return promoted.stdout


def _status(data: Path) -> str:
    return subprocess.run([*pharmatrace_command(), "replica", "status", "--data", str(data)],
                          capture_output=True, text=True, timeout=60, check=True).stdout


def _converged(data: Path, commit: int, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            doc = json.loads((data / ".replica-status.json").read_text())
            status = doc["tenants"][0]
            if status["applied_commit"] >= commit and status["lag_messages"] == 0:
                return status  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError, IndexError):
            pass
        assert time.monotonic() < deadline, f"the replica did not reach commit {commit}"
        time.sleep(0.2)


def _verdicts(verify_port: int, serials: list[str]) -> set[int]:
    with grpc.insecure_channel(f"127.0.0.1:{verify_port}") as channel:
        response = verification_pb2_grpc.VerificationStub(channel).VerifyBatch(
            vpb.VerifyBatchRequest(tenant=TENANT,
                                   codes=[f"(01){GTIN}(21){s}" for s in serials]), timeout=60)
    return set(response.verdicts)


def test_a_replica_converges_and_verifies_codes_issued_on_the_writer(
        servers, nats_server: NatsServer, tmp_path: Path) -> None:
    """Codes issued before the replica started (snapshot) and after (stream) both verify
    GENUINE on the replica; its status and metrics show no lag once it has caught up; the
    directory routes a code to its tenant's writer and replica."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url])
    early = _write(writer.issue_addr, "L1", 300)
    _holding(nats_server.url, set(early))
    replica_data = tmp_path / "replica"
    process, ports = _start_replica(nats_server.url, replica_data)
    try:
        late = _write(writer.issue_addr, "L2", 400)
        _holding(nats_server.url, set(late))
        status = _converged(replica_data, _newest_commit(nats_server.url))
        assert status["bootstraps"] == 1
        assert _verdicts(ports["verify"], early + late) == {vpb.VERDICT_GENUINE}
        assert _verdicts(ports["verify"], ["ZZZZZZZZZZZZ"]) != {vpb.VERDICT_GENUINE}
        table = _status(replica_data)
        assert TENANT in table
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=10).read().decode()
        assert f'pharmatrace_replica_lag_messages{{tenant="{TENANT}"}} 0.0' in metrics
        route = json.loads(subprocess.run(
            [*pharmatrace_command(), "directory", "route", f"(01){GTIN}(21){late[0]}",
             "--nats", nats_server.url], capture_output=True, text=True, timeout=60,
            check=True).stdout)
        assert route["tenant"] == TENANT
        assert route["writer"]["issue"] == writer.issue_addr
        assert route["replicas"] == [f"127.0.0.1:{ports['verify']}"]
    finally:
        stop(process, "pharmatrace replica")


def test_codes_minted_under_a_rotated_key_verify_on_the_replica(
        servers, nats_server: NatsServer, tmp_path: Path) -> None:
    """The key ring travels with the stream: after a rotation on the writer, codes minted under
    the new key verify GENUINE on the replica, and the old ones still do."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url])
    before = _write(writer.issue_addr, "L1", 50)
    replica_data = tmp_path / "replica"
    process, ports = _start_replica(nats_server.url, replica_data)
    try:
        with grpc.insecure_channel(writer.issue_addr) as channel:
            admin_pb2_grpc.AdminStub(channel).RotateKey(apb.RotateKeyRequest(tenant=TENANT),
                                                        timeout=30)
        after = _write(writer.issue_addr, "L2", 50)
        _holding(nats_server.url, set(after))
        _converged(replica_data, _newest_commit(nats_server.url))
        deadline = time.monotonic() + 10  # the workers reread a changed ring within a second
        while _verdicts(ports["verify"], before + after) != {vpb.VERDICT_GENUINE}:
            assert time.monotonic() < deadline, "codes of the new key do not verify"
            time.sleep(0.2)
    finally:
        stop(process, "pharmatrace replica")


def test_the_snapshot_in_the_store_is_sealed_and_names_its_own_position(
        servers, nats_server: NatsServer, tmp_path: Path) -> None:
    """The snapshot a writer stores holds no issued serial in clear; it opens only under the
    position it was taken at, so a description rewritten in the bucket (a later stream
    sequence, which would make a replica skip changes) is refused."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url])
    serials = _write(writer.issue_addr, "L1", 200)
    _holding(nats_server.url, set(serials))

    async def fetch() -> tuple[snapshots.SnapshotInfo, bytes] | None:
        nc = await nats.connect(nats_server.url)
        try:
            return await snapshots.fetch(nc.jetstream(), TENANT)
        finally:
            await nc.close()

    got = asyncio.run(fetch())
    assert got is not None
    info, data = got
    assert info.sealed
    assert not any(serial.encode() in data for serial in serials)
    forged = dataclasses.replace(info, stream_seq=info.stream_seq + 5)
    with pytest.raises(LedgerCorrupt, match="was taken of"):
        snapshots.unpack(forged, data, tmp_path / "forged", SEALING)
    snapshots.unpack(info, data, tmp_path / "opened", SEALING)
    assert (tmp_path / "opened" / "ledger" / "data.mdb").is_file()
