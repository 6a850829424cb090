"""A writer fenced from a tenant keeps no write its tenant's stream never took: a write it
committed while cut off from NATS, after another node was promoted, was never acknowledged,
and once it sees the fence its copy of the tenant holds what the stream holds, as the new
writer's node does; moved back, it writes on from there."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import verification_pb2 as vpb

from tests.e2e.nats_server import NatsServer
from tests.e2e.test_move import _move, _named_writer, _refusal
from tests.e2e.test_replica import _converged, _promote, _start_replica
from tests.e2e.test_replication_stream import GTIN, TENANT, _newest_commit, _write
from tests.processes import stop

pytestmark = pytest.mark.timeout(240)


class Link:
    """A TCP relay to the NATS server: node-a's link to it, which the test cuts and mends."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"nats://127.0.0.1:{self._listener.getsockname()[1]}"
        self._cut = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Every connection through the link is closed, and new ones are closed at once."""
        self._cut.set()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def mend(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def link(nats_server: NatsServer) -> Iterator[Link]:
    relay = Link(nats_server.port)
    yield relay
    relay.close()


def _code(serial: str) -> str:
    return f"(01){GTIN}(21){serial}"


def _commission(addr: str, serials: list[str], timeout: float = 30) -> None:
    with grpc.insecure_channel(addr) as channel:
        lifecycle_pb2_grpc.LifecycleStub(channel).Commission(lpb.CommissionRequest(
            tenant=TENANT, codes=[_code(s) for s in serials]), timeout=timeout)


def _answers(verify_addr: str, serials: list[str]) -> list[tuple[int, int]]:
    """(verdict, status) of each code on a node (asked again while it answers UNAVAILABLE,
    retry: its copy being replaced by a snapshot)."""
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(verify_addr) as channel:
        stub = verification_pb2_grpc.VerificationStub(channel)
        while True:
            try:
                return [(a.verdict, a.status) for a in (
                    stub.Verify(vpb.VerifyRequest(tenant=TENANT, code=_code(s)), timeout=30)
                    for s in serials)]
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _agreeing(node_a: str, node_b: str, serials: list[str]) -> list[tuple[int, int]]:
    """The answers both nodes give for ``serials``, once they give the same."""
    deadline = time.monotonic() + 90
    while (a := _answers(node_a, serials)) != (b := _answers(node_b, serials)):
        assert time.monotonic() < deadline, f"node-a answers {a}, node-b {b}"
        time.sleep(0.2)
    return a


def test_a_write_the_stream_refused_leaves_no_trace_on_the_fenced_writer(
        servers, nats_server: NatsServer, link: Link, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """node-a, cut off from NATS while node-b is promoted, commits a commissioning it never
    acknowledges; once back, it refuses writes, and its checks answer as node-b's (the code
    is not commissioned) instead of from what the stream refused. Moved back to node-a, the
    tenant is written there again and both nodes answer alike."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    node_a = servers.start(tmp_path / "writer", extra=["--nats", link.url,
                                                       "--replicated-commit"])
    issued = _write(node_a.issue_addr, "L1", 10)
    replica_data = tmp_path / "replica"
    monkeypatch.setenv("PHARMATRACE_NODE", "node-b")
    process, ports = _start_replica(nats_server.url, replica_data)
    node_b = f"127.0.0.1:{ports['verify']}"
    try:
        _converged(replica_data, _newest_commit(nats_server.url))
        before = _answers(node_b, issued)
        link.cut()
        _promote(nats_server.url, replica_data)
        with pytest.raises(grpc.RpcError) as unanswered:
            _commission(node_a.issue_addr, issued[:1], timeout=3)
        assert unanswered.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED,
                                           grpc.StatusCode.UNAVAILABLE), unanswered.value
        assert _answers(node_a.verify_addr, issued[:1]) != before[:1]  # committed on node-a
        link.mend()
        assert _refusal(node_a.issue_addr) == grpc.StatusCode.FAILED_PRECONDITION
        assert _agreeing(node_a.verify_addr, node_b, issued) == before

        _move(nats_server.url, tmp_path / "writer", "node-a")
        _named_writer(nats_server.url, _code(issued[0]), lambda i: i == node_a.issue_addr)
        later = _write(node_a.issue_addr, "L2", 5)
        _commission(node_a.issue_addr, issued[1:2])
        answers = _agreeing(node_a.verify_addr, node_b, [*issued, *later])
        assert answers[1] != before[1] and answers[0] == before[0]
        assert {verdict for verdict, _ in answers[-5:]} == {vpb.VERDICT_GENUINE}
    finally:
        stop(process, "pharmatrace replica")
