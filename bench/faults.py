"""`python -m bench.faults`: crash safety, proven by fault injection.

Runs the real server (`pharmatrace serve --dev`, issuance plus verification workers) as a
process group and, again and again, SIGKILLs the whole group while clients stream RequestCodes
and commission codes (CaptureEvents streams and unary Commission calls, each with event ids),
then restarts it on the same data directory and checks what every client was told:

- the data directory is whole: `pharmatrace doctor` (counters, pools: no code twice, none in two
  pools) and `pharmatrace audit verify` (audit trail and event journal chains) pass, offline;
- retrying each interrupted request id yields exactly the codes received before, then the rest;
- no code was handed out twice, across every pool of the run;
- every code any client received verifies GENUINE;
- every commissioning the client saw acknowledged is there (its codes ACTIVE); one it did not see
  is all or nothing (its codes all ACTIVE or all ISSUED), and retrying it under the same event
  ids completes it without applying it twice.

    python -m bench.faults --kills 20             the long run (about 20 s per kill on 2 cores)
    python -m bench.faults --kills 3 --workers 1  what tests/e2e/test_fault_injection.py runs

A SIGKILL loses the process, not the page cache: this proves the software's write ordering and
all-or-nothing commits, not the disk's fsync (that is LMDB's, with sync and metasync on).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import (
    admin_pb2_grpc,
    issuance_pb2_grpc,
    lifecycle_pb2_grpc,
    verification_pb2_grpc,
)
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import verification_pb2 as vpb

ROOT = Path(__file__).resolve().parent.parent
TENANT = "demo"                 # `serve --dev` creates it
GTIN = "09501101530003"
LOT = "FAULT-1"
RPC_TIMEOUT_S = 120.0
_START_TIMEOUT_S = 90.0
_VERIFY_BATCH = 50_000
#: Older codes verified again after each restart, besides every code of the round.
_RESAMPLE = 20_000
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                    ("grpc.max_send_message_length", 64 * 1024 * 1024)]


@dataclass
class Pool:
    """One RequestCodes request id, as its client saw it."""

    request_id: str
    count: int
    chunk_size: int
    codes: list[str] = field(default_factory=list)
    complete: bool = False


@dataclass
class Commissioning:
    """One commissioning request (a CaptureEvents stream or a Commission call), as its client
    saw it; each event has its own event id and codes."""

    streamed: bool
    events: list[tuple[str, list[str]]]
    acknowledged: bool = False

    @property
    def codes(self) -> list[str]:
        return [c for _, codes in self.events for c in codes]


@dataclass
class Report:
    kills: int = 0
    streams_cut: int = 0            # RequestCodes streams in flight when the server was killed
    commissionings_cut: int = 0     # commissioning requests in flight, unacknowledged
    cut_found_applied: int = 0      # ... of which the ledger had applied (all codes ACTIVE)
    cut_found_absent: int = 0       # ... of which it had not (all codes ISSUED)
    pools: int = 0
    codes_issued: int = 0
    codes_commissioned: int = 0
    codes_verified: int = 0
    seconds: float = 0.0
    findings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.kills} kills in {self.seconds:,.0f} s: {self.streams_cut} RequestCodes "
                f"streams and {self.commissionings_cut} commissionings cut "
                f"({self.cut_found_applied} found applied, {self.cut_found_absent} not applied, "
                f"none in part); {self.pools} pools, {self.codes_issued:,} codes issued, "
                f"{self.codes_commissioned:,} commissioned, {self.codes_verified:,} "
                f"verifications; {len(self.findings)} findings")


# -- the server ------------------------------------------------------------------------------


class Server:
    """`pharmatrace serve --dev --insecure` in a process group of its own."""

    def __init__(self, data: Path, workdir: Path, workers: int) -> None:
        self.data = data
        self.workdir = workdir
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.log = workdir / "serve.log"

    def start(self) -> None:
        ready = self.workdir / "ready.json"
        ready.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pharmatrace_cli", "serve", "--dev", "--insecure",
                 "--data", str(self.data), "--host", "127.0.0.1", "--issue-port", "0",
                 "--verify-port", "0", "--metrics-port", "0", "--http-port", "0",
                 "--workers", str(self.workers),
                 "--grace", "2", "--ready-file", str(ready)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the server did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        self.ports = json.loads(ready.read_text())

    def kill(self) -> None:
        """SIGKILL to the whole group: the issuance process and every verification worker."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        self.kill()
        return code

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Clients:
    """Stubs of one running server."""

    def __init__(self, server: Server) -> None:
        self.issue = grpc.insecure_channel(f"127.0.0.1:{server.ports['issue']}",
                                           options=_CHANNEL_OPTIONS)
        self.verify = grpc.insecure_channel(f"127.0.0.1:{server.ports['verify']}",
                                            options=_CHANNEL_OPTIONS)
        self.admin = admin_pb2_grpc.AdminStub(self.issue)
        self.issuance = issuance_pb2_grpc.CodeIssuanceStub(self.issue)
        self.lifecycle = lifecycle_pb2_grpc.LifecycleStub(self.issue)
        self.verification = verification_pb2_grpc.VerificationStub(self.verify)

    def close(self) -> None:
        self.issue.close()
        self.verify.close()


# -- the run ---------------------------------------------------------------------------------


def run(kills: int, *, workers: int = 2, seed: int | None = None, workdir: Path | None = None,
        say: Callable[[str], None] = print) -> Report:
    """Kills the server ``kills`` times under load and checks everything after each restart."""
    rng = random.Random(seed)
    started = time.monotonic()
    keep = workdir is not None
    root = workdir or Path(tempfile.mkdtemp(prefix="pharmatrace-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    state = _State()
    report = Report()
    server = Server(root / "data", root, workers)
    try:
        server.start()
        clients = Clients(server)
        _master_data(clients)
        for round_number in range(1, kills + 1):
            target = "stream" if round_number % 2 else "commissioning"
            cut = _load_and_kill(server, clients, state, rng, target)
            clients.close()
            report.kills += 1
            report.streams_cut += cut.streams
            report.commissionings_cut += cut.commissionings
            _check_offline(server.data, report, f"after kill {round_number}")
            server.start()
            clients = Clients(server)
            _check_online(clients, state, report, rng, f"after kill {round_number}")
            say(f"kill {round_number}/{kills} ({target}): {cut.streams} stream(s), "
                f"{cut.commissionings} commissioning(s) cut; {len(state.pools)} pools, "
                f"{sum(len(p.codes) for p in state.pools):,} codes so far; "
                f"findings {len(report.findings)}")
        _verify_all(clients, state, report, "at the end", everything=True)
        clients.close()
        if (code := server.stop()) != 0:
            report.findings.append(f"serve exited {code} on SIGTERM")
        _check_offline(server.data, report, "after the last, clean stop")
    finally:
        server.kill()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    report.pools = len(state.pools)
    report.codes_issued = sum(len(p.codes) for p in state.pools)
    report.codes_commissioned = sum(len(c.codes) for c in state.commissionings)
    report.seconds = time.monotonic() - started
    return report


class _State:
    """Everything the clients were told, across every round."""

    def __init__(self) -> None:
        self.pools: list[Pool] = []
        self.commissionings: list[Commissioning] = []
        self.active: set[str] = set()       # codes whose commissioning was acknowledged
        self.verified_upto = 0              # pools[:verified_upto] were verified in full


@dataclass
class _Cut:
    streams: int = 0
    commissionings: int = 0


def _master_data(clients: Clients) -> None:
    clients.admin.RegisterProduct(apb.RegisterProductRequest(tenant=TENANT, product=cpb.Product(
        gtin=GTIN, name="Amoxicillin 500 mg capsules")), timeout=RPC_TIMEOUT_S)
    clients.admin.AddBatch(apb.AddBatchRequest(tenant=TENANT, batch=cpb.Batch(
        product=GTIN, lot=LOT, expires_on="2035-12-31")), timeout=RPC_TIMEOUT_S)


def _load_and_kill(server: Server, clients: Clients, state: _State, rng: random.Random,
                   target: str) -> _Cut:
    """Streams codes and commissions them from two threads; SIGKILLs the server a random while
    later, at a moment when a request of the ``target`` kind is in flight."""
    stop = threading.Event()
    ready: deque[str] = deque()
    in_flight: dict[str, Any] = {"stream": None, "commissioning": None}
    lock = threading.Lock()
    seed = rng.random()

    def issuer() -> None:
        local = random.Random(seed)
        while not stop.is_set():
            pool = Pool(f"fault-{uuid.uuid4().hex[:12]}", local.randint(2_000, 12_000),
                        local.choice((256, 500, 1_000, 2_000)))
            state.pools.append(pool)
            request = ipb.RequestCodesRequest(tenant=TENANT, product=GTIN, lot=LOT,
                                              count=pool.count, chunk_size=pool.chunk_size,
                                              request_id=pool.request_id)
            try:
                for chunk in clients.issuance.RequestCodes(request, timeout=RPC_TIMEOUT_S):
                    codes = _texts(chunk)
                    pool.codes += codes
                    with lock:
                        ready.extend(codes)
                        in_flight["stream"] = pool if len(pool.codes) < pool.count else None
            except grpc.RpcError:
                return
            pool.complete = True

    def commissioner() -> None:
        local = random.Random(seed + 1)
        while not stop.is_set():
            events: list[tuple[str, list[str]]] = []
            with lock:
                for _ in range(local.randint(1, 3) if len(ready) > 600 else 0):
                    n = local.randint(20, 200)
                    events.append((f"ev-{uuid.uuid4().hex}",
                                   [ready.popleft() for _ in range(min(n, len(ready)))]))
            if not events:
                time.sleep(0.01)
                continue
            job = Commissioning(streamed=local.random() < 0.5 or len(events) > 1, events=events)
            state.commissionings.append(job)
            in_flight["commissioning"] = job
            try:
                _commission(clients, job)
            except grpc.RpcError:
                return
            finally:
                in_flight["commissioning"] = None
            job.acknowledged = True
            state.active.update(job.codes)

    threads = [threading.Thread(target=issuer, daemon=True),
               threading.Thread(target=commissioner, daemon=True)]
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(0.3, 2.5))
    deadline = time.monotonic() + 5.0
    while in_flight[target] is None and time.monotonic() < deadline:
        time.sleep(0.001)
    cut = _Cut(streams=int(in_flight["stream"] is not None),
               commissionings=int(in_flight["commissioning"] is not None))
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(RPC_TIMEOUT_S)
    return cut


def _commission(clients: Clients, job: Commissioning) -> None:
    """Sends the commissioning (again, on a retry: its event ids make a repeat change nothing);
    raises RpcError when the server is gone."""
    if job.streamed:
        messages = [lpb.CaptureEventsRequest(tenant=TENANT, events=[lpb.LifecycleEvent(
            kind=lpb.EVENT_KIND_COMMISSION, codes=codes,
            context=lpb.EventContext(event_id=event_id))]) for event_id, codes in job.events]
        response = clients.lifecycle.CaptureEvents(iter(messages), timeout=RPC_TIMEOUT_S)
        if response.failures or response.recorded + response.duplicates != len(job.events):
            raise AssertionError(f"CaptureEvents refused a commissioning: {response}")
        return
    (event_id, codes), = job.events
    answer = clients.lifecycle.Commission(lpb.CommissionRequest(
        tenant=TENANT, codes=codes, context=lpb.EventContext(event_id=event_id)),
        timeout=RPC_TIMEOUT_S)
    if not answer.applied or answer.failures:
        raise AssertionError(f"Commission refused: {answer}")


# -- checks ----------------------------------------------------------------------------------


def _check_offline(data: Path, report: Report, when: str) -> None:
    """The data directory of the stopped server: doctor and audit verify must pass."""
    for command in (["doctor", "--data", str(data), "--dev", "--quiet"],
                    ["audit", "verify", "--data", str(data), "--dev"]):
        done = subprocess.run([sys.executable, "-m", "pharmatrace_cli", *command], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            report.findings.append(f"{when}: pharmatrace {command[0]} failed "
                                   f"({done.returncode}):\n{done.stdout}{done.stderr}")


def _check_online(clients: Clients, state: _State, report: Report, rng: random.Random,
                  when: str) -> None:
    for pool in state.pools:
        if not pool.complete:
            _retry_pool(clients, pool, report, when)
    for job in state.commissionings:
        if not job.acknowledged:
            _retry_commissioning(clients, job, report, when)
    _verify_all(clients, state, report, when, rng=rng)


def _retry_pool(clients: Clients, pool: Pool, report: Report, when: str) -> None:
    request = ipb.RequestCodesRequest(tenant=TENANT, product=GTIN, lot=LOT, count=pool.count,
                                      chunk_size=pool.chunk_size, request_id=pool.request_id)
    again: list[str] = []
    for chunk in clients.issuance.RequestCodes(request, timeout=RPC_TIMEOUT_S):
        again += _texts(chunk)
    if again[:len(pool.codes)] != pool.codes:
        report.findings.append(f"{when}: retrying {pool.request_id} did not start with the "
                               f"{len(pool.codes):,} codes received before")
    if len(again) != pool.count or len(set(again)) != len(again):
        report.findings.append(f"{when}: retrying {pool.request_id} gave {len(again):,} codes "
                               f"({len(set(again)):,} distinct) for a pool of {pool.count:,}")
    got = clients.issuance.GetPool(ipb.GetPoolRequest(tenant=TENANT, request_id=pool.request_id),
                                   timeout=RPC_TIMEOUT_S).pool
    if got.issued != pool.count or got.state != ipb.POOL_STATE_COMPLETE:
        report.findings.append(f"{when}: pool {pool.request_id} says {got.issued:,} issued, "
                               f"state {got.state}, after a complete retry")
    pool.codes, pool.complete = again, True


def _retry_commissioning(clients: Clients, job: Commissioning, report: Report,
                         when: str) -> None:
    statuses = {s for _, s in _verdicts(clients, job.codes, report)}
    if statuses == {cpb.CODE_STATUS_ACTIVE}:
        report.cut_found_applied += 1
    elif statuses == {cpb.CODE_STATUS_ISSUED}:
        report.cut_found_absent += 1
    else:
        names = sorted(cpb.CodeStatus.Name(s) for s in statuses)
        report.findings.append(f"{when}: an unacknowledged commissioning of {len(job.codes)} "
                               f"codes is half applied: {names}")
    try:
        _commission(clients, job)
    except AssertionError as exc:
        report.findings.append(f"{when}: retrying a commissioning: {exc}")
        return
    job.acknowledged = True


def _verify_all(clients: Clients, state: _State, report: Report, when: str, *,
                everything: bool = False, rng: random.Random | None = None) -> None:
    """Every code of pools not verified yet (all of them if ``everything``) plus a sample of
    older ones: GENUINE, ACTIVE when commissioned, ISSUED otherwise; and no code twice."""
    all_codes = [c for p in state.pools for c in p.codes]
    if len(set(all_codes)) != len(all_codes):
        report.findings.append(f"{when}: {len(all_codes) - len(set(all_codes)):,} codes were "
                               "handed out twice")
    for job in state.commissionings:
        if job.acknowledged:
            state.active.update(job.codes)
    start = 0 if everything else state.verified_upto
    fresh = [c for p in state.pools[start:] for c in p.codes]
    older = [c for p in state.pools[:start] for c in p.codes]
    if rng is not None and older:
        fresh += rng.sample(older, min(_RESAMPLE, len(older)))
    wrong: list[str] = []
    for code, (verdict, status) in zip(fresh, _verdicts(clients, fresh, report), strict=True):
        expected = cpb.CODE_STATUS_ACTIVE if code in state.active else cpb.CODE_STATUS_ISSUED
        if verdict != vpb.VERDICT_GENUINE or status != expected:
            wrong.append(f"{code}: {vpb.Verdict.Name(verdict)} "
                         f"{cpb.CodeStatus.Name(status)}, expected GENUINE "
                         f"{cpb.CodeStatus.Name(expected)}")
    if wrong:
        report.findings.append(f"{when}: {len(wrong):,} codes do not verify as expected, e.g. "
                               + "; ".join(wrong[:3]))
    state.verified_upto = len(state.pools)


def _verdicts(clients: Clients, codes: Sequence[str], report: Report
              ) -> Iterator[tuple[vpb.Verdict.ValueType, cpb.CodeStatus.ValueType]]:
    for start in range(0, len(codes), _VERIFY_BATCH):
        part = list(codes[start:start + _VERIFY_BATCH])
        answer = clients.verification.VerifyBatch(
            vpb.VerifyBatchRequest(tenant=TENANT, codes=part), timeout=RPC_TIMEOUT_S)
        report.codes_verified += len(part)
        # The packed fields hold plain numbers; these are the enums' values.
        yield from ((vpb.Verdict.ValueType(verdict), cpb.CodeStatus.ValueType(status))
                    for verdict, status in zip(answer.verdicts, answer.statuses, strict=True))


def _texts(chunk: ipb.CodeChunk) -> list[str]:
    return [f"(01){chunk.product}(21){serial}" for serial in chunk.serials]


# -- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="verification workers")
    parser.add_argument("--seed", type=int, help="for the random kill moments and sizes")
    parser.add_argument("--workdir", help="keep the data directory and server log here")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    report = run(args.kills, workers=args.workers, seed=args.seed,
                 workdir=Path(args.workdir) if args.workdir else None,
                 say=lambda line: print(line, flush=True))
    print(report.summary())
    for finding in report.findings:
        print(f"FINDING: {finding}")
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
