"""`pharmatrace tenant move`: a tenant's writes move to the node of its replica under a steady
write load, pausing briefly, losing no acknowledged write."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import nats
import pytest
from pharmatrace.v1 import verification_pb2 as vpb

from replica_svc.directory import route
from replica_svc.replica import read_status
from tests.e2e.conftest import Server, Servers, pharmatrace_command
from tests.e2e.nats_server import NatsServer
from tests.e2e.netns_client import _issue
from tests.e2e.test_replica import _converged, _start_replica, _verdicts
from tests.e2e.test_replication_stream import GTIN, TENANT, _newest_commit, _write
from tests.processes import stop

pytestmark = pytest.mark.timeout(240)


class Load:
    """Writes small requests of ``tenant`` in a loop to whichever writer ``addr`` names; keeps
    what was acknowledged, when, and how the other calls failed."""

    def __init__(self, addr: str, tenant: str = TENANT) -> None:
        self.addr = addr
        self.tenant = tenant
        self.acked: list[str] = []
        self.times: list[float] = []
        self.failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            try:
                self.acked += _issue(self.addr, f"M{number}", self.tenant)
                self.times.append(time.monotonic())
            except grpc.RpcError as exc:
                name = exc.code().name
                self.failures[name] = self.failures.get(name, 0) + 1
                time.sleep(0.05)

    def acked_after(self, moment: float) -> int:
        return sum(t > moment for t in self.times)

    def wait_acked_after(self, moment: float, count: int = 5) -> None:
        deadline = time.monotonic() + 60
        while self.acked_after(moment) < count:
            assert self._thread.is_alive() and time.monotonic() < deadline, self.failures
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def longest_gap(self) -> float:
        return max(b - a for a, b in zip(self.times, self.times[1:], strict=False))


def _move(url: str, data: Path, node: str = "node-b") -> dict[str, object]:
    """`pharmatrace tenant move` of the test's tenant to ``node``, whose data directory is
    ``data``: its JSON answer, once it succeeded."""
    moved = subprocess.run(
        [*pharmatrace_command(), "tenant", "move", TENANT, "--to", node, "--nats", url,
         "--replica-data", str(data)], capture_output=True, text=True, timeout=120)
    assert moved.returncode == 0, moved.stderr
    return json.loads(moved.stdout)  # type: ignore[no-any-return]


def test_moving_a_tenant_under_load_loses_no_acknowledged_write(
        servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While writes keep coming, `tenant move` pauses them (UNAVAILABLE), promotes the replica's
    node, and once `serve` runs there every write acknowledged before, during and after the
    move verifies GENUINE on the new writer; the old writer refuses further writes."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    old = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url,
                                                    "--replicated-commit"])
    _write(old.issue_addr, "L0", 50)
    replica_data = tmp_path / "replica"
    process, _ = _start_replica(nats_server.url, replica_data)
    _converged(replica_data, _newest_commit(nats_server.url))
    load = Load(old.issue_addr)
    try:
        load.wait_acked_after(0)
        result = _move(nats_server.url, replica_data)
    finally:
        stop(process, "pharmatrace replica")
    monkeypatch.setenv("PHARMATRACE_NODE", "node-b")
    new = servers.start(replica_data, extra=["--nats", nats_server.url, "--replicated-commit"])
    load.addr = new.issue_addr
    resumed = time.monotonic()
    load.wait_acked_after(resumed)
    load.stop()
    print(f"\ntenant move: {result}; load: {len(load.acked)} codes acknowledged, failures "
          f"{load.failures}, longest gap between acknowledged writes {load.longest_gap():.2f} s")
    assert result["node"] == "node-b" and result["term"] == 1
    assert load.failures.get("UNAVAILABLE", 0) + load.failures.get("FAILED_PRECONDITION", 0)
    assert len(load.acked) == len(set(load.acked))
    assert _verdicts(int(new.ports["verify"]), load.acked) == {vpb.VERDICT_GENUINE}
    assert _refusal(old.issue_addr) == grpc.StatusCode.FAILED_PRECONDITION


def _refusal(addr: str) -> grpc.StatusCode:
    """How the old writer refuses a write, once it has seen the fence."""
    return _refused_after_retries(
        lambda: _issue(addr, f"LATE{int(time.monotonic() * 1000)}")).code()


def _refused_after_retries(write: Callable[[], object], timeout_s: float = 60.0
                           ) -> grpc.RpcError:
    """The refusal ``write`` gets from an old writer once it has seen the fence, asked again as
    a client retries: until then it may answer UNAVAILABLE (still pausing for the move, waiting
    for the stream that refuses it, or reopening its copy to follow the new writer) or
    DEADLINE_EXCEEDED."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            write()
        except grpc.RpcError as exc:
            retry = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            if not retry or time.monotonic() > deadline:
                return exc
            time.sleep(0.2)
            continue
        raise AssertionError("the fenced writer took a write")


def _writer_issue(url: str, code: str) -> str:
    """The issuance address the directory names for the tenant of ``code`` ("" between a
    promotion and the new writer's announcement)."""

    async def look_up() -> str:
        nc = await nats.connect(url)
        try:
            return (await route(nc.jetstream(), code)).writer.get("issue", "")
        finally:
            await nc.close()

    return asyncio.run(look_up())


def _named_writer(url: str, code: str, wanted: Callable[[str], bool]) -> str:
    """The issuance address the directory names for the tenant of ``code``, once it is one
    ``wanted`` accepts (a minute at most)."""
    deadline = time.monotonic() + 60
    while not wanted(issue := _writer_issue(url, code)):
        assert time.monotonic() < deadline, f"the directory still names {issue!r} the writer"
        time.sleep(0.02)
    return issue


def _serve_and_replica_writer(
        servers: Servers, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        codes: int, extra: Sequence[str] = ()
        ) -> tuple[Server, str, Path, subprocess.Popen[bytes], dict[str, int]]:
    """node-a's `serve` (with ``extra``) holding ``codes`` codes it issued, and node-b's
    `replica --write-when-promoted` once it holds them: the writer, one of its codes, and the
    replica's data directory, process (the caller stops it) and ports."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    writer = servers.start(tmp_path / "writer", extra=["--nats", url, *extra])
    code = f"(01){GTIN}(21){_write(writer.issue_addr, 'L0', codes)[0]}"
    data = tmp_path / "replica"
    return (writer, code, data, *_replica_writer(url, data, monkeypatch))


def _replica_writer(url: str, data: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """node-b's `replica --write-when-promoted` on ``data``, once it holds the tenant's stream:
    its process (the caller stops it) and ports."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-b")
    process, ports = _start_replica(url, data,
                                    extra=["--write-when-promoted", "--issue-port", "0"])
    try:
        _converged(data, _newest_commit(url))
    except BaseException:
        stop(process, "pharmatrace replica")
        raise
    return process, ports


def test_a_replica_that_writes_when_promoted_takes_a_move_without_a_restart(
        servers: Servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`replica --write-when-promoted` on node-b: `tenant move` hands the writes over to the
    running replica, which the directory then names as writer; a client following the directory
    keeps writing, every acknowledged write verifies GENUINE there, and the pause is printed."""
    old, code, replica_data, process, ports = _serve_and_replica_writer(
        servers, nats_server.url, tmp_path, monkeypatch, 50, ["--replicated-commit"])
    load = Load(old.issue_addr)
    try:
        load.wait_acked_after(0)
        result = _move(nats_server.url, replica_data)
        load.addr = _named_writer(nats_server.url, code, lambda i: i not in ("", old.issue_addr))
        resumed = time.monotonic()
        load.wait_acked_after(resumed)
        load.stop()
        print(f"\ntenant move to a running replica: {result}; load: {len(load.acked)} codes "
              f"acknowledged, failures {load.failures}, longest gap between acknowledged "
              f"writes {load.longest_gap():.2f} s")
        assert len(load.acked) == len(set(load.acked))
        assert _verdicts(ports["verify"], load.acked) == {vpb.VERDICT_GENUINE}
        assert _refusal(old.issue_addr) == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        load.stop()
        stop(process, "pharmatrace replica")


def test_a_replica_writer_moved_away_again_follows_the_tenant_in_its_one_replica(
        servers: Servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenant moved to `replica --write-when-promoted` on node-b and back to node-a: node-b,
    fenced again, follows the tenant's stream in the replica it already runs, so `replica
    status` lists the tenant every time it is read (a second replica in the process wrote the
    status file in turns with the first, which follows nothing since the hand-over)."""
    old, code, replica_data, process, _ = _serve_and_replica_writer(
        servers, nats_server.url, tmp_path, monkeypatch, 20)
    try:
        _move(nats_server.url, replica_data)
        _named_writer(nats_server.url, code, lambda i: i not in ("", old.issue_addr))
        _move(nats_server.url, tmp_path / "writer", "node-a")
        _named_writer(nats_server.url, code, lambda i: i == old.issue_addr)
        deadline = time.monotonic() + 60
        while TENANT not in _status_tenants(replica_data):
            assert time.monotonic() < deadline, "node-b never followed the tenant again"
            time.sleep(0.1)
        seen = []
        for _ in range(30):  # 3 s: six reports of each replica the process would run
            seen.append(_status_tenants(replica_data))
            time.sleep(0.1)
        assert all(TENANT in tenants for tenants in seen), seen
    finally:
        stop(process, "pharmatrace replica")


def _status_tenants(data: Path) -> list[str]:
    """The tenants `pharmatrace replica status` lists for the replica in ``data``."""
    try:
        tenants = read_status(data)["tenants"]
    except (FileNotFoundError, ValueError):
        return []
    assert isinstance(tenants, list)
    return [str(t["tenant"]) for t in tenants]
