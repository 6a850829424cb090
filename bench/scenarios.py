"""Scenarios: the service under the loads of a working day, each beside a same-run baseline.

verify  consumers and distributors, as `python -m bench verify` with 2 workers: unary Verify of
        mixed codes (genuine, unknown, forged, not a code) against a bare echo server, and
        VerifyBatch of pallets against in-process lookups.
capture lifecycle capture, as `python -m bench.lifecycle capture`: CaptureEvents against raw
        LMDB read-modify-writes.

and what runs at the same time as something else:

lines  ``--lines`` packaging lines requesting pools of ``--pool`` codes back to back while
       consumers verify in an open loop at a fixed rate: the pools' codes/s beside the
       in-process mint + putmulti rate, and the consumers' latency beside theirs at the same
       rate with no line running (measured first, on the same server).
day    all at once on one server for ``--seconds``, each at the fixed pace of a working day
       (open loop): consumers (30 % of the maximum Verify rate, mixed codes), a distributor
       (a pallet a second), packaging lines (a pool of 100,000 every 5 s) and a plant
       commissioning 5 cases of 1,000 a second (a Commission call a case); whether each kept
       its pace, its latency, and its baseline.
soak   consumers at 70 % of the maximum Verify rate measured first, for ``--soak-seconds``
       (300): the resident memory of every server process at the start and end of the window,
       sampled every few seconds, and the latency over the whole soak.

Every latency is from a proper histogram (bench/load.py): p50, p90, p99, p99.9, and every call's
outcome by gRPC status code, with WRONG_ANSWER for a verdict other than the one expected.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from pharmatrace.v1 import admin_pb2, admin_pb2_grpc, lifecycle_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from bench import issue, lifecycle, verify
from bench.harness import (
    CHANNEL_OPTIONS,
    DEV_TENANT,
    HOST,
    ServerProcess,
    pharmatrace_server,
    workdir,
)
from bench.issue import MIB, register_product, request_pool
from bench.lifecycle_rig import PARTIES, raw_rmw_seconds
from bench.load import (
    Histogram,
    Load,
    LoadResult,
    latency_results,
    run_load,
    worker_pids,
    write_requests,
)
from bench.measure import memory_kib
from bench.report import Result, Target, say
from tracecore.codes import parse

SCENARIOS = ("verify", "capture", "lines", "day", "soak")
DEFAULT_CODES = 1_000_000
DEFAULT_SECONDS = 10.0
DEFAULT_SOAK_SECONDS = 300.0
SOAK_SHARE = 0.7
SOAK_SAMPLE_S = 5.0
SOAK_CODES = 250_000
"""Distinct codes scanned in the soak: each about four times in five minutes, as packs are, and
not the hundred times that would make every scan a clone alert."""
SOAK_GROWTH = 1.10
"""A process's own (anonymous) memory at the end of the soak, at most this times the start."""
PALLET = 10_000
"""Codes a distributor verifies at once: a pallet of 10 cases of 1,000 packs."""
CAPTURE_EVENT = 1_000
"""Codes in one commissioning event: a case."""


@dataclass(frozen=True)
class Options:
    codes: int = DEFAULT_CODES
    """Codes issued into the ledger first."""
    workers: int = 2
    seconds: float = DEFAULT_SECONDS
    warmup: float = 2.0
    clients: int = 2
    """Consumer client processes."""
    consumer_share: float = 0.3
    """lines and day: consumers at this share of the maximum Verify rate measured first."""
    lines: int = 2
    pool: int = 100_000
    soak_seconds: float = DEFAULT_SOAK_SECONDS
    pallets_per_s: float = 1.0
    """day: a distributor verifies a pallet (``PALLET`` codes) this often."""
    pool_every_s: float = 5.0
    """day: the packaging lines' pools of ``pool`` codes come this often (20,000 codes/s)."""
    cases_per_s: float = 5.0
    """day: the plant commissions this many cases of ``CAPTURE_EVENT`` packs a second: 5,000
    packs/s, what some 500 packaging lines at 10 packs/s put out."""
    keep: bool = False


# -- a site: one server, its ledger, and the request files of its clients ------------------------


@dataclass
class Site:
    server: ServerProcess
    data: Path
    tmp: Path
    texts: list[str]
    """Scanned element strings of issued codes."""
    consumer_codes: int = verify.UNARY_CODES
    """Distinct codes the consumers scan, over and over."""
    consumers: Path = field(init=False)
    """Verify requests in verify.MIX proportions."""
    batches: list[Sequence[str]] = field(init=False)
    """``texts`` in pallets of ``PALLET``."""
    pallets: Path = field(init=False)
    """A VerifyBatch request per pallet of ``batches``."""

    def __post_init__(self) -> None:
        self.consumers = self.tmp / f"{self.server.name}-consumers.bin"
        write_requests(self.consumers,
                       verify.consumer_requests(self.data, self.texts, self.consumer_codes))
        self.batches = verify.in_batches(self.texts, PALLET)
        self.pallets = self.tmp / f"{self.server.name}-pallets.bin"
        write_requests(self.pallets, verify.batch_requests(self.batches))

    @property
    def issue_address(self) -> str:
        return f"{HOST}:{self.server.ports['issue']}"

    @property
    def verify_address(self) -> str:
        return f"{HOST}:{self.server.ports['verify']}"

    def consumer_loads(self, clients: int, *, rate: float = 0.0, concurrency: int = 32
                       ) -> list[Load]:
        """Consumers' Verify calls: ``concurrency`` in flight per process, or ``rate`` in all."""
        if rate > 0:
            return [Load(self.verify_address, verify.VERIFY_METHOD, str(self.consumers), "unary",
                         4, rate=rate / clients, phase=k / rate) for k in range(clients)]
        return [Load(self.verify_address, verify.VERIFY_METHOD, str(self.consumers), "unary", 4,
                     concurrency=concurrency)] * clients

    def distributor_loads(self, clients: int, channels: int, *, rate: float = 0.0
                          ) -> list[Load]:
        """Distributors' VerifyBatch calls of a pallet each: one in flight per channel, or
        ``rate`` pallets a second in all."""
        if rate > 0:
            return [Load(self.verify_address, verify.BATCH_METHOD, str(self.pallets), "batch",
                         channels, rate=rate / clients, phase=k / rate, timeout=60)
                    for k in range(clients)]
        return [Load(self.verify_address, verify.BATCH_METHOD, str(self.pallets), "batch",
                     channels, concurrency=channels, timeout=60)] * clients


@contextlib.contextmanager
def site(tmp: Path, name: str, workers: int, *, codes: int = 0, data: Path | None = None,
         serials: Sequence[str] = (), consumer_codes: int = verify.UNARY_CODES
         ) -> Iterator[Site]:
    """A server with ``workers`` verification workers. A new ledger gets the bench product,
    batch and parties and ``codes`` codes through RequestCodes; an existing one (``data``) is
    served as it is, with ``serials`` of its codes as the ones to verify. Consumers scan
    ``consumer_codes`` distinct codes."""
    data = data or tmp / f"data-{name}"
    fresh = not data.exists()
    with pharmatrace_server(data, tmp, workers=workers, name=name) as server:
        address = f"{HOST}:{server.ports['issue']}"
        if fresh:
            register_product(address)
            add_parties(address)
            say(f"{name}: issuing {codes:,} codes ...")
            pool = request_pool(address, codes, f"{name}-ledger", keep=True)
            assert pool.serials is not None
            serials = pool.serials
        yield Site(server, data, tmp, verify.scanned_texts(serials), consumer_codes)


def add_parties(issue_address: str) -> None:
    with grpc.insecure_channel(issue_address, options=CHANNEL_OPTIONS) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        for party_id, kind, region in PARTIES:
            admin.AddParty(admin_pb2.AddPartyRequest(
                tenant=DEV_TENANT,
                party=cpb.Party(party_id=party_id, name=party_id, kind=kind, region=region),
            ), timeout=30)


# -- work that runs beside the load clients, in threads of this process --------------------------


class Lines:
    """Packaging lines in threads, each requesting a pool every ``every`` seconds (0: back to
    back; a pool that takes longer starts the next at once) until ``end``."""

    def __init__(self, address: str, lines: int, pool: int, name: str, every: float = 0.0
                 ) -> None:
        self._address, self._lines, self._pool, self._name = address, lines, pool, name
        self._every = every
        self._threads: list[threading.Thread] = []
        self.pools: list[tuple[float, float, int]] = []
        """(started, finished, codes) of every pool, as time.time()."""
        self.failures: list[BaseException] = []

    def start(self, end: float) -> None:
        def line(k: int) -> None:
            i = 0
            first = time.time()
            while time.time() < end and not self.failures:
                due = first + i * self._every
                if due > time.time():
                    time.sleep(min(due, end) - time.time())
                    continue
                started = time.time()
                try:
                    run = request_pool(self._address, self._pool, f"{self._name}-{k}-{i}")
                except Exception as exc:
                    self.failures.append(exc)
                    return
                self.pools.append((started, time.time(), run.count))
                i += 1

        self._threads = [threading.Thread(target=line, args=(k,), daemon=True)
                         for k in range(self._lines)]
        for t in self._threads:
            t.start()

    def join(self) -> dict[str, Any]:
        for t in self._threads:
            t.join()
        if self.failures:
            raise self.failures[0]
        if not self.pools:
            return {"codes": 0, "codes_per_s": 0.0, "pools": 0}
        first = min(p[0] for p in self.pools)
        last = max(p[1] for p in self.pools)
        codes = sum(p[2] for p in self.pools)
        seconds = sorted(p[1] - p[0] for p in self.pools)
        return {"codes": codes, "pools": len(self.pools), "seconds": last - first,
                "codes_per_s": codes / (last - first),
                "pool_seconds_p50": seconds[len(seconds) // 2], "pool_seconds_max": seconds[-1]}


class Plant:
    """A plant's packing station commissioning a case of ``CAPTURE_EVENT`` codes of ``texts``
    per Commission call, ``cases_per_s`` calls a second at fixed times whatever the answers'
    pace (open loop, a few calls in flight), until the codes run out or ``end``. A call's
    latency runs from when it was due."""

    def __init__(self, address: str, texts: Sequence[str], cases_per_s: float) -> None:
        self._address, self._texts, self._interval = address, texts, 1.0 / cases_per_s
        self._thread: threading.Thread | None = None
        self.latency = Histogram()
        self.changed = 0
        self.seconds = 0.0
        self.failures: list[BaseException] = []

    def start(self, end: float) -> None:
        channel = grpc.insecure_channel(self._address, options=CHANNEL_OPTIONS)
        stub = lifecycle_pb2_grpc.LifecycleStub(channel)
        lock = threading.Lock()

        def commission(codes: Sequence[str], due: float) -> None:
            try:
                response = stub.Commission(lpb.CommissionRequest(
                    tenant=DEV_TENANT, context=lpb.EventContext(party_id="PLANT"), codes=codes),
                    timeout=60)
                if not response.applied or response.failures:
                    raise RuntimeError(f"Commission was not applied: {response.failures[:3]}")
            except Exception as exc:
                self.failures.append(exc)
                return
            with lock:
                self.latency.add(time.time() - due)
                self.changed += len(codes)

        def run() -> None:
            first = time.time()
            with ThreadPoolExecutor(8, thread_name_prefix="plant") as calls:
                for n, i in enumerate(range(0, len(self._texts), CAPTURE_EVENT)):
                    due = first + n * self._interval
                    if due >= end:
                        break
                    time.sleep(max(0.0, due - time.time()))
                    calls.submit(commission, self._texts[i:i + CAPTURE_EVENT], due)
            self.seconds = time.time() - first
            channel.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> dict[str, Any]:
        if self._thread is not None:
            self._thread.join()
        if self.failures:
            raise self.failures[0]
        return {"changed": self.changed, "seconds": self.seconds,
                "changes_per_s": self.changed / self.seconds if self.seconds else 0.0,
                "latency": self.latency.summary()}


class MemoryLog:
    """The memory of a server's processes (main and workers), sampled every ``interval`` s from
    ``start(end)`` until ``end``."""

    def __init__(self, server: ServerProcess, interval: float) -> None:
        self._server, self._interval = server, interval
        self.samples: dict[int, list[tuple[float, dict[str, int]]]] = {}
        self._thread: threading.Thread | None = None

    def start(self, end: float) -> None:
        pids = [self._server.pid, *worker_pids(self._server)]

        def run() -> None:
            while True:
                now = time.time()
                for pid in pids:
                    self.samples.setdefault(pid, []).append((now, memory_kib(pid)))
                if now >= end:
                    return
                time.sleep(min(self._interval, max(0.0, end - now)))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def label(self, pid: int) -> str:
        return "main process" if pid == self._server.pid else f"worker {pid}"


# -- scenarios -----------------------------------------------------------------------------------


def _max_unary(s: Site, o: Options) -> LoadResult:
    say(f"{s.server.name}: maximum Verify rate, closed loop, {o.seconds:.0f} s ...")
    result = run_load(s.consumer_loads(o.clients), s.server, o.warmup, o.seconds)
    _check(f"{s.server.name}: Verify at the maximum rate", result, s.server)
    say(f"{s.server.name}: {result.calls_per_s:,.0f} Verify/s")
    return result


def _check(what: str, result: LoadResult, server: ServerProcess) -> None:
    summary = result.summary()
    if summary["errors"]:
        say(f"  warning: {what}: {summary['outcomes']} ({summary['first_error']}); the "
            f"server's log ends:\n{server.log_tail(20)}")


def run_lines(o: Options) -> list[Result]:
    """Packaging lines while consumers verify: pools against the in-process mint, consumers'
    latency against theirs alone."""
    with workdir("lines", o.keep) as tmp, site(tmp, "pharmatrace-lines", o.workers,
                                               codes=o.codes) as s:
        rate = _max_unary(s, o).calls_per_s * o.consumer_share
        say(f"lines: consumers alone at {rate:,.0f} req/s ...")
        alone = run_load(s.consumer_loads(o.clients, rate=rate), s.server, o.warmup, o.seconds)
        _check("consumers alone", alone, s.server)
        say(f"lines: {o.lines} lines requesting pools of {o.pool:,} while consumers verify ...")
        lines = Lines(s.issue_address, o.lines, o.pool, "lines")
        beside = run_load(s.consumer_loads(o.clients, rate=rate), s.server, o.warmup, o.seconds,
                          during=lines.start)
        pools = lines.join()
        _check("consumers beside the lines", beside, s.server)
        baseline, _ = issue.in_process_rate(o.pool, tmp / "mint-baseline")
    say(f"lines: {pools['codes_per_s']:,.0f} codes/s in {pools['pools']} pools; consumers p99 "
        f"{beside.latency().quantile(0.99) * 1000:.2f} ms (alone "
        f"{alone.latency().quantile(0.99) * 1000:.2f} ms)")
    return [
        Result(bench="scenarios", name=f"lines: {o.lines} lines' pools beside consumers",
               unit="codes/s", figure=pools["codes_per_s"], baseline=baseline,
               baseline_name="mint+encrypt+putmulti", key="scenarios.lines.pools",
               details={**pools, "consumer_rate": rate}),
        *latency_results("scenarios", f"lines: consumers at {rate:,.0f} req/s beside the lines",
                         "scenarios.lines.consumers", beside, alone, "consumers alone"),
    ]


def run_day(o: Options) -> list[Result]:
    """Everyone at the pace of a working day, at once: consumers, a distributor, a packaging
    line and a commissioning plant, each at a fixed offered rate (open loop), so that what one
    does to the others shows in their latency rather than in a slower pace."""
    with workdir("day", o.keep) as tmp, site(tmp, "pharmatrace-day", o.workers,
                                             codes=o.codes) as s:
        rate = _max_unary(s, o).calls_per_s * o.consumer_share
        capture_codes = int(o.cases_per_s * CAPTURE_EVENT * (o.seconds + 1))
        say(f"day: {capture_codes:,} codes for the plant to commission ...")
        plant_codes = request_pool(s.issue_address, capture_codes, "day-plant", keep=True)
        assert plant_codes.serials is not None
        plant_texts = verify.scanned_texts(plant_codes.serials)
        offered = {"consumers": rate, "distributor": o.pallets_per_s * PALLET,
                   "line": o.pool / o.pool_every_s, "plant": o.cases_per_s * CAPTURE_EVENT}
        say(f"day: consumers {rate:,.0f} req/s, a distributor {offered['distributor']:,.0f} "
            f"codes/s, a line {offered['line']:,.0f} codes/s, a plant {offered['plant']:,.0f} "
            f"commissioned/s, {o.seconds:.0f} s ...")
        line = Lines(s.issue_address, 1, o.pool, "day-line", every=o.pool_every_s)
        plant = Plant(s.issue_address, plant_texts, o.cases_per_s)

        def beside(end: float) -> None:
            line.start(end)
            plant.start(end)

        loads = [*s.consumer_loads(o.clients, rate=rate),
                 *s.distributor_loads(1, 1, rate=o.pallets_per_s)]
        day = run_load(loads, s.server, o.warmup, o.seconds, during=beside)
        pools, capture = line.join(), plant.join()
        consumers = day.select(0, o.clients)
        distributor = day.select(o.clients, o.clients + 1)
        _check("day: consumers", consumers, s.server)
        _check("day: distributor", distributor, s.server)
        lookups, _ = verify.in_process_rate(s.data, s.batches, 2.0)
        mint, _ = issue.in_process_rate(o.pool, tmp / "mint-baseline")
        keys = [parse(t).code.key() for t in plant_texts[:capture.get("changed", 0)]]
        rmw = len(keys) / raw_rmw_seconds(keys, tmp / "rmw-baseline", o.codes) if keys else 0.0
    say(f"day: consumers {consumers.calls_per_s:,.0f} req/s (p99 "
        f"{consumers.latency().quantile(0.99) * 1000:.1f} ms), distributor "
        f"{distributor.units_per_s:,.0f} codes/s, line {pools['codes_per_s']:,.0f} codes/s, "
        f"plant {capture.get('changes_per_s', 0):,.0f} commissioned/s")

    def kept(what: str) -> Target:
        return Target("min", offered[what] * 0.95)

    return [
        Result(bench="scenarios", name=f"day: consumers (offered {rate:,.0f} req/s)",
               unit="req/s", figure=consumers.calls_per_s, key="scenarios.day.consumers",
               elsewhere=day.other_cpu, targets=[kept("consumers")],
               details=consumers.summary()),
        *latency_results("scenarios", "day: consumers' Verify", "scenarios.day.consumers",
                         consumers, p99_targets=[Target("max", verify.P99_HALF_MAX_MS)]),
        Result(bench="scenarios", name="day: distributor, a pallet a second", unit="codes/s",
               figure=distributor.units_per_s, baseline=lookups,
               baseline_name="in-process 1 core", key="scenarios.day.distributor",
               targets=[kept("distributor")], details=distributor.summary()),
        *latency_results("scenarios", "day: distributor's VerifyBatch of a pallet",
                         "scenarios.day.distributor", distributor),
        Result(bench="scenarios", name=f"day: packaging line, a pool every "
               f"{o.pool_every_s:g} s", unit="codes/s", figure=pools["codes_per_s"],
               baseline=mint, baseline_name="mint+encrypt+putmulti", key="scenarios.day.line",
               targets=[kept("line")], details=pools),
        Result(bench="scenarios", name=f"day: plant, {o.cases_per_s:g} cases commissioned a "
               "second", unit="changes/s", figure=capture.get("changes_per_s", 0.0),
               baseline=rmw, baseline_name="raw LMDB RMW, 1 txn", key="scenarios.day.capture",
               targets=[kept("plant")], details=capture),
        *(Result(bench="scenarios", name=f"day: plant's Commission of a case p{label}",
                 unit="ms", figure=capture["latency"][f"p{label}_ms"],
                 key=f"scenarios.day.capture.p{label}") for label in ("50", "99")),
    ]


def run_soak(o: Options) -> list[Result]:
    """Consumers at 70 % of the maximum rate for ``soak_seconds``; memory of every process."""
    with workdir("soak", o.keep) as tmp, site(tmp, "pharmatrace-soak", o.workers,
                                              codes=o.codes, consumer_codes=SOAK_CODES) as s:
        rate = _max_unary(s, o).calls_per_s * SOAK_SHARE
        say(f"soak: consumers at {rate:,.0f} req/s for {o.soak_seconds:,.0f} s, sampling the "
            f"memory of every server process every {SOAK_SAMPLE_S:.0f} s ...")
        memory = MemoryLog(s.server, SOAK_SAMPLE_S)
        soak = run_load(s.consumer_loads(o.clients, rate=rate), s.server, o.warmup,
                        o.soak_seconds, during=memory.start)
        memory.join()
        _check("soak", soak, s.server)
    results = [
        Result(bench="scenarios", name=f"soak: consumers (offered {rate:,.0f} req/s)",
               unit="req/s", figure=soak.calls_per_s, key="scenarios.soak.rate",
               elsewhere=soak.other_cpu, targets=[Target("min", rate * 0.95)],
               details=soak.summary()),
        *latency_results("scenarios", "soak: Verify", "scenarios.soak", soak),
    ]
    for n, (pid, samples) in enumerate(memory.samples.items()):
        first, last = samples[0][1], samples[-1][1]
        label = memory.label(pid)
        say(f"soak: {label}: RSS {first.get('VmRSS', 0) / MIB:,.0f} -> "
            f"{last.get('VmRSS', 0) / MIB:,.0f} MiB, own (anonymous) "
            f"{first.get('RssAnon', 0) / MIB:,.0f} -> {last.get('RssAnon', 0) / MIB:,.0f} MiB")
        series = [(round(t - samples[0][0]), m.get("VmRSS", 0) // MIB, m.get("RssAnon", 0) // MIB)
                  for t, m in samples]
        results.append(Result(
            bench="scenarios", name=f"soak: {label}: own memory at the end / start",
            unit="MiB", figure=last.get("RssAnon", 0) / MIB,
            baseline=first.get("RssAnon", 0) / MIB, baseline_name="at the start",
            key=f"scenarios.soak.rss_anon.{'main' if pid == s.server.pid else f'worker{n}'}",
            targets=[Target("max_ratio", SOAK_GROWTH)],
            details={"vmrss_start_mib": first.get("VmRSS", 0) / MIB,
                     "vmrss_end_mib": last.get("VmRSS", 0) / MIB,
                     "samples_s_vmrss_anon_mib": series}))
    return results


def run_verify(o: Options) -> list[Result]:
    return verify.run(verify.Options(codes=o.codes, workers=(o.workers,), seconds=o.seconds,
                                     clients=o.clients, keep=o.keep))


def run_capture(o: Options) -> list[Result]:
    results: list[Result] = lifecycle.run(["capture"], workers=o.workers, keep=o.keep)["results"]
    return results


RUNS = {"verify": run_verify, "capture": run_capture, "lines": run_lines, "day": run_day,
        "soak": run_soak}


def run(names: Sequence[str], o: Options) -> list[Result]:
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    results: list[Result] = []
    for name in names:
        results += RUNS[name](o)
    return results
