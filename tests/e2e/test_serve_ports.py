"""Two `pharmatrace serve` given the same ports: whatever the timing, one serves and the other
stops at once, saying in one line which port is taken."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from pharmatrace_cli.config import listening_ports
from pharmatrace_cli.serve import ServeConfig, claim_ports
from tests.e2e.conftest import CLI_TIMEOUT_S, START_TIMEOUT_S, pharmatrace_command
from tracecore.errors import FailedPrecondition


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound to 0, then let go)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _config(data: Path, issue: int, verify: int, http: int, metrics: int) -> ServeConfig:
    return ServeConfig(data=data, host="127.0.0.1", issue_port=issue, verify_port=verify,
                       metrics_port=metrics, workers=1, dev=True, tls_cert=None, tls_key=None,
                       client_ca=None, grace_s=1.0, ready_file=None, http_port=http)


def test_a_port_claimed_but_not_yet_listened_on_is_refused_to_a_second_server(
        tmp_path: Path) -> None:
    """The instant between a server finding its ports free and listening on them: a second
    server checking then is refused, naming the first port, although nothing listens there
    yet; once the first lets its claim go, the ports are free again."""
    ports = _free_ports(4)
    first = claim_ports(listening_ports(_config(tmp_path / "a", *ports)))
    try:
        with pytest.raises(FailedPrecondition) as refused:
            claim_ports(listening_ports(_config(tmp_path / "b", *ports)))
        assert refused.value.field == "issue_port"
        assert f"127.0.0.1:{ports[0]} is in use" in refused.value.message
        # Another port of the second server's alone: refused too, by its own name.
        with pytest.raises(FailedPrecondition) as metrics:
            claim_ports(listening_ports(_config(tmp_path / "b", 0, 0, -1, ports[3])))
        assert metrics.value.field == "metrics_port"
    finally:
        for claim in first:
            claim.close()
    for claim in claim_ports(listening_ports(_config(tmp_path / "c", *ports))):
        claim.close()


def test_two_servers_started_in_the_same_instant_one_serves_the_other_says_why(
        tmp_path: Path) -> None:
    """Two `serve` over two data directories, given the same four ports and started together:
    exactly one is ready and answers; the other exits 1 with a one-line reason naming a port in
    use, and no traceback."""
    issue, verify, http, metrics = _free_ports(4)
    processes = {}
    for name in ("a", "b"):
        command = [*pharmatrace_command(), "serve", "--dev", "--insecure",
                   "--data", str(tmp_path / name), "--issue-port", str(issue),
                   "--verify-port", str(verify), "--http-port", str(http),
                   "--metrics-port", str(metrics), "--workers", "1", "--grace", "1",
                   "--ready-file", str(tmp_path / f"{name}.ready")]
        processes[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, text=True,
                                           start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (sum(p.poll() is not None for p in processes.values()) < 1
               and time.monotonic() < deadline):
            time.sleep(0.05)
        stopped = [name for name, p in processes.items() if p.poll() is not None]
        assert len(stopped) == 1, "exactly one of the two must stop"
        loser = processes[stopped[0]]
        winner = next(name for name in processes if name not in stopped)
        _, stderr = loser.communicate(timeout=CLI_TIMEOUT_S)
        assert loser.returncode == 1, stderr
        assert "Traceback" not in stderr
        reason = stderr.strip().splitlines()[-1]
        assert "is in use by another process" in reason
        assert any(f"127.0.0.1:{port}" in reason for port in (issue, verify, http, metrics))
        while not (tmp_path / f"{winner}.ready").exists():
            assert processes[winner].poll() is None, processes[winner].communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{http}") as client:
            assert client.get("/healthz").text.strip() == "ok"
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_replica_given_a_port_a_server_holds_says_so_before_anything_else(
        tmp_path: Path) -> None:
    """A replica's verification workers share their port (SO_REUSEPORT) as `serve`'s do: on a
    port another pharmatrace process holds they would take part of its connections and answer
    from another ledger. The replica stops at once, in one line naming the port, before it
    looks for NATS or creates its data directory."""
    verify, http, metrics = _free_ports(3)
    held = claim_ports([("verify_port", "127.0.0.1", verify)])
    try:
        data = tmp_path / "replica"
        done = subprocess.run(
            [*pharmatrace_command(), "replica", "--dev", "--nats", "nats://127.0.0.1:1",
             "--data", str(data), "--verify-port", str(verify), "--http-port", str(http),
             "--metrics-port", str(metrics)],
            capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    finally:
        for claim in held:
            claim.close()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    reason = done.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{verify} is in use by another process" in reason
    assert "verify_port" in reason
    assert not data.exists()
