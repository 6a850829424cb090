"""Replication under failures, each node its own host: a 3-node nats-server cluster, a writer
and two replicas in Linux network namespaces, under a bounded write and verify load. A NATS
node, a replica and the writer are SIGKILLed (a replica is then promoted writer), and a
replica's link is cut for 30 s; afterwards every acknowledged write is on every node, no code
was issued twice, every node's audit chain verifies and the nodes converge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import pharmatrace_command
from tests.e2e.nats_server import BINARY
from tests.e2e.netns import Network

pytestmark = pytest.mark.timeout(420)

TENANT = "demo"
NATS_NODES = (1, 2, 3)
CLIENT, WRITER, R1, R2 = 9, 10, 11, 12
CUT_S = 30.0
REPO = Path(__file__).resolve().parents[2]
#: Where each node's front proxy takes connections on its namespace address.
ISSUE_PORT, VERIFY_PORT = 50051, 50062


def _said(what: str) -> None:
    print(f"[cluster] {time.strftime('%H:%M:%S')} {what}", flush=True)


@dataclass
class Cluster:
    """The namespaces and every process started in them."""

    net: Network
    root: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def nats_url(self) -> str:
        return ",".join(f"nats://{self.net.hosts[f'nats{i}']}:4222" for i in NATS_NODES)

    def spawn(self, name: str, host: str, argv: list[str],
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen(self.net.command(host, argv), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, cwd=REPO,
                                   env={**os.environ, **(env or {})})
        self.processes[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL to the process, its front proxy and everything it started, as a power cut."""
        for proxy in [p for p in self.processes if p.startswith(f"{name}-proxy")]:
            self.kill(proxy)
        process = self.processes.pop(name, None)
        if process is None:  # a front proxy already killed with its process
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def stop(self, name: str) -> None:
        for proxy in [p for p in self.processes if p.startswith(f"{name}-proxy")]:
            self.kill(proxy)
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)

    def start_nats(self, i: int) -> None:
        address = self.net.hosts[f"nats{i}"]
        store = self.root / f"nats{i}"
        store.mkdir(exist_ok=True)
        routes = ",".join(f"nats://{self.net.hosts[f'nats{n}']}:6222" for n in NATS_NODES)
        self.spawn(f"nats{i}", f"nats{i}", [
            BINARY, "-js", "-sd", str(store), "-n", f"nats-{i}", "-a", address, "-p", "4222",
            "--cluster_name", "pharmatrace", "--cluster", f"nats://{address}:6222",
            "--routes", routes])

    def client(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(self.net.command("client", [
            sys.executable, "-m", "tests.e2e.netns_client", *args]), cwd=REPO,
            capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def ready(self, name: str, process: subprocess.Popen[bytes], file: Path) -> dict[str, int]:
        deadline = time.monotonic() + 90
        while not file.exists():
            assert process.poll() is None, (self.root / f"{name}.log").read_text()
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.1)
        ports: dict[str, int] = json.loads(file.read_text())
        return ports

    def proxy(self, name: str, host: str, port: int, target: int) -> str:
        """A front proxy on ``host``'s address, ``port``, to its loopback ``target``."""
        address = self.net.hosts[host]
        self.spawn(f"{name}-proxy{port}", host, [sys.executable, "-m", "tests.e2e.netns_client",
                                           "forward", address, str(port), str(target)])
        return f"{address}:{port}"

    def start_writer(self, name: str, host: str, data: Path, node: str) -> tuple[str, str]:
        """Its issuance and verification addresses."""
        ready = self.root / f"{name}.ready.json"
        ready.unlink(missing_ok=True)
        process = self.spawn(name, host, [
            *pharmatrace_command(), "serve", "--dev", "--insecure", "--data", str(data),
            "--issue-port", "0", "--verify-port", "0",
            "--metrics-port", "0", "--http-port", "0", "--workers", "1", "--grace", "2",
            "--nats", self.nats_url, "--replicated-commit", "--ready-file", str(ready)],
            env={"PHARMATRACE_NODE": node})
        ports = self.ready(name, process, ready)
        return (self.proxy(name, host, ISSUE_PORT, ports["issue"]),
                self.proxy(name, host, VERIFY_PORT, ports["verify"]))

    def start_replica(self, name: str, host: str, data: Path) -> str:
        ready = self.root / f"{name}.ready.json"
        ready.unlink(missing_ok=True)
        process = self.spawn(name, host, [
            *pharmatrace_command(), "replica", "--nats", self.nats_url, "--data", str(data),
            "--tenants", TENANT, "--dev", "--verify-port", "0",
            "--metrics-port", "0", "--workers", "1", "--ready-file", str(ready)])
        ports = self.ready(name, process, ready)
        return self.proxy(name, host, VERIFY_PORT, ports["verify"])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Seven namespaces (three NATS nodes, a writer, two replicas, a client) on one bridge."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns); CI runs this test as root")
    assert Path(BINARY).exists(), "nats-server is not installed (apt-get install nats-server)"
    net = Network()
    started = Cluster(net, tmp_path)
    try:
        net.create()
        for i in NATS_NODES:
            net.add(f"nats{i}", i)
        for host, number in (("client", CLIENT), ("writer", WRITER), ("r1", R1), ("r2", R2)):
            net.add(host, number)
        yield started
    finally:
        for name in list(started.processes):
            started.kill(name)
        net.destroy()


def _wait_applied(data: Path, stream_seq: int, timeout: float = 90) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status: dict[str, object] = json.loads(
                (data / ".replica-status.json").read_text())["tenants"][0]
            if int(status["applied_stream_seq"]) >= stream_seq:  # type: ignore[call-overload]
                return status
        except (FileNotFoundError, ValueError, IndexError):
            pass
        assert time.monotonic() < deadline, f"{data.name} did not reach {stream_seq}"
        time.sleep(0.3)


def _wait_load(run: Path, timeout: float) -> dict[str, int]:
    """The load's counts once it has had a write acknowledged and checked GENUINE on a replica."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            load: dict[str, int] = json.loads((run / "load.json").read_text())
            if load.get("writes acknowledged", 0) and load.get("checks genuine", 0):
                return load
        except FileNotFoundError:
            load = {}
        assert time.monotonic() < deadline, f"the load did not get going: {load}"
        time.sleep(0.2)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*pharmatrace_command(), *args], capture_output=True, text=True,
                          timeout=120)


def test_acknowledged_writes_survive_killed_nodes_a_cut_link_and_a_promotion(
        cluster: Cluster) -> None:
    """Under load, with a NATS node, a replica and the writer SIGKILLed (a replica promoted)
    and a replica cut off for 30 s, every acknowledged code verifies GENUINE on every node, no
    code is issued twice, every node's audit chain verifies and the nodes hold the same chain;
    a check naming its write's sequence is never answered before the replica holds the write."""
    root = cluster.root
    run = root / "run"
    run.mkdir()
    writer_data, r1_data, r2_data = root / "writer", root / "r1", root / "r2"
    for i in NATS_NODES:
        cluster.start_nats(i)
    cluster.client("ready", cluster.nats_url)
    _said(f"3-node NATS cluster up: {cluster.nats_url}")
    writer, _ = cluster.start_writer("writer", "writer", writer_data, "node-w")
    (run / "writer.addr").write_text(writer)
    (run / "replicas.json").write_text("[]")
    _said(f"writer up at {writer} (replicated commit)")
    replicas = [cluster.start_replica("r1", "r1", r1_data),
                cluster.start_replica("r2", "r2", r2_data)]
    (run / "replicas.json").write_text(json.dumps(replicas))
    _said(f"replicas up at {', '.join(replicas)}")
    cluster.spawn("load", "client", [sys.executable, "-m", "tests.e2e.netns_client", "load",
                                     str(run)])
    load = _wait_load(run, 60)
    _said(f"write + verify load started: {load}")

    time.sleep(2)
    cluster.kill("nats1")
    _said("SIGKILL nats-1")
    time.sleep(2)
    cluster.net.link("r1", up=False)
    cut_at = time.monotonic()
    _said("r1's link cut")
    time.sleep(2)
    cluster.kill("r2")
    _said("SIGKILL replica r2")
    time.sleep(3)
    cluster.start_nats(1)
    _said("nats-1 started again")
    replicas[1] = cluster.start_replica("r2", "r2", r2_data)
    _said("replica r2 started again on its data")
    time.sleep(2)
    cluster.kill("writer")
    _said("SIGKILL the writer")
    promoted = subprocess.run(cluster.net.command("r2", [
        *pharmatrace_command(), "tenant", "promote", TENANT, "--node", "node-r2", "--nats",
        cluster.nats_url, "--replica-data", str(r2_data), "--timeout", "90"]),
        capture_output=True, text=True, timeout=120)
    assert promoted.returncode == 0, promoted.stderr
    _said(f"r2 promoted: {promoted.stdout.strip()}")
    cluster.stop("r2")
    new_writer, new_verify = cluster.start_writer("writer2", "r2", r2_data, "node-r2")
    (run / "writer.addr").write_text(new_writer)
    (run / "replicas.json").write_text(json.dumps(replicas[:1]))
    _said(f"r2 serves as writer at {new_writer}")
    time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
    cluster.net.link("r1", up=True)
    _said(f"r1's link restored after {time.monotonic() - cut_at:.0f} s")
    time.sleep(5)
    (run / "stop").touch()
    cluster.processes["load"].wait(60)
    load = json.loads((run / "load.json").read_text())
    _said(f"load stopped: {load}")

    acks = [json.loads(line) for line in (run / "acks.jsonl").read_text().splitlines()]
    acked = [s for ack in acks for s in ack["serials"]]
    by_writer = {addr: sum(a["writer"] == addr for a in acks) for addr in (writer, new_writer)}
    _said(f"acknowledged requests by writer: {by_writer}")
    stream = json.loads(cluster.client("stream", cluster.nats_url))
    _said(f"{len(acked)} codes acknowledged; stream last sequence {stream['last_seq']}, "
          f"{stream['replicas']} copies, {len(stream['codes'])} codes put")
    r1_status = _wait_applied(r1_data, int(stream["last_seq"]))
    _said(f"r1 caught up: {r1_status}")
    (run / "acked.json").write_text(json.dumps(acked))
    found = {}
    for name, addr in (("r1", replicas[0]), ("r2 (promoted writer)", new_verify)):
        found[name] = json.loads(cluster.client("verify", addr, str(run / "acked.json")))
        _said(f"{name}: verdicts of the acknowledged codes {found[name]}")
    # The promoted writer stops first: its last commits (the seal over its chain heads) go to
    # the stream as it stops, and r1 takes them before it stops in turn.
    cluster.stop("writer2")
    last_seq = int(json.loads(cluster.client("stream", cluster.nats_url))["last_seq"])
    _said(f"r2 stopped; r1 at the stream's last sequence: {_wait_applied(r1_data, last_seq)}")
    for name in ("r1", "nats1", "nats2", "nats3"):
        cluster.stop(name)
    audits, heads = {}, {}
    for name, data in (("old writer", writer_data), ("r1", r1_data), ("r2", r2_data)):
        audits[name] = _cli("audit", "verify", "--data", str(data), "--tenant", TENANT, "--dev")
        _said(f"audit verify on {name}: {audits[name].stdout.strip()}")
    for name, data in (("r1", r1_data), ("r2", r2_data)):
        heads[name] = _cli("audit", "heads", "--data", str(data), "--tenant", TENANT).stdout

    assert all(by_writer.values()) and load.get("checks genuine", 0) > 0
    assert load.get("checks not genuine", 0) == 0, "a replica answered before it held a write"
    assert stream["replicas"] == 3
    assert len(acked) == len(set(acked)), "a code was issued twice"
    assert len(stream["codes"]) == len(set(stream["codes"])), "a code was put twice"
    assert set(acked) <= set(stream["codes"])
    for name, verdicts in found.items():
        assert verdicts == {"VERDICT_GENUINE": len(acked)}, name
    for name, done in audits.items():
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    assert heads["r1"] and heads["r1"] == heads["r2"], "the nodes' chains differ"
    _said("every acknowledged code is on every node, none issued twice, chains verify and "
          "agree")
