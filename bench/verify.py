"""VerifyBatch and unary Verify over gRPC, against in-process lookups and a bare echo server.

Set-up: a ledger of ``--codes`` codes issued through RequestCodes (one GS1 product, one batch),
written as scanners send them (GS1 element strings with expiry and lot).

- VerifyBatch: client processes, each with several connections and one call in flight on each,
  send batches of ``--batch`` codes for ``--seconds``; codes answered per second. Baseline: one
  in-process loop of parse + tag check + LMDB get over the same codes through tracecore.
- Unary Verify: the same closed-loop client (processes x concurrent grpc.aio calls) against
  Verify and against bench/echo.py with as many workers; requests per second, and their ratio.
- Latency: an open-loop client at half of the measured maximum Verify rate (fixed arrival times;
  a latency runs from when its request was due, so a late client does not hide a slow server);
  p50 / p90 / p99, beside the echo server's at the same rate.

Each step is repeated for every value of ``--workers``; every figure and baseline is the best of
``--repeat`` measurements (the lowest p99 for latency), so that a job sharing the machine for a
moment does not set it. Per-worker CPU use is reported to show whether every worker was busy, and
the cores other jobs kept busy meanwhile to show how far they may have pulled a figure down.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from pharmatrace.v1 import verification_pb2 as vpb

from bench.echo import METHOD as ECHO_METHOD
from bench.harness import (
    CHANNEL_OPTIONS,
    DEV_TENANT,
    HOST,
    Elsewhere,
    Profiler,
    Result,
    ServerProcess,
    Target,
    busy_cpu_seconds,
    cpu_seconds,
    descendants,
    echo_server,
    percentile,
    pharmatrace_server,
    profile_summary,
    say,
    settle,
    workdir,
)
from bench.issue import EXPIRES, GTIN, LOT, register_product, request_pool
from tracecore.codes import Code, Form, Scan, Scheme, parse_many, render
from tracecore.errors import ParseError
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from tracecore.minting import check_tags

VERIFY_METHOD = "/pharmatrace.v1.Verification/Verify"
BATCH_METHOD = "/pharmatrace.v1.Verification/VerifyBatch"
DEFAULT_CODES = 1_000_000
DEFAULT_BATCH = 10_000
DEFAULT_SECONDS = 10.0
UNARY_CODES = 20_000
"""Distinct codes cycled through by the unary clients."""
_LENGTH = struct.Struct("<I")
_READY_TIMEOUT_S = 60.0
_MAX_OUTSTANDING = 20_000
_MAX_ERRORS = 1_000
_NOISY_CPU = 0.2


# -- the load client (runs in its own processes) -------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What one client process does: ``concurrency`` calls in flight (closed loop), or calls
    started at ``rate`` per second (open loop), over ``channels`` connections of its own."""

    address: str
    method: str
    requests: str
    """File of length-prefixed serialized requests, cycled through."""
    check: str
    """How to check the first answer on each connection: "batch", "unary" or "echo"."""
    channels: int
    concurrency: int = 0
    rate: float = 0.0
    phase: float = 0.0
    """Open loop: this process's first call is due ``phase`` s after the start."""


@dataclass
class Tally:
    """One client process's counts inside the measured window."""

    calls: int = 0
    units: int = 0
    errors: int = 0
    dropped: int = 0
    cpu: float = 0.0
    """CPU seconds this client process used from the start to the end of the window."""
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""


def write_requests(path: Path, requests: Sequence[bytes]) -> None:
    with open(path, "wb") as f:
        for request in requests:
            f.write(_LENGTH.pack(len(request)))
            f.write(request)


def _read_requests(path: str) -> list[bytes]:
    data = Path(path).read_bytes()
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        (size,) = _LENGTH.unpack_from(data, pos)
        out.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return out


def _units(check: str, request: bytes) -> int:
    if check == "batch":
        return len(vpb.VerifyBatchRequest.FromString(request).codes)
    return 1


def _check_answer(check: str, request: bytes, answer: bytes) -> None:
    """The server answered this request correctly: every code GENUINE, or the bytes echoed."""
    if check == "echo":
        ok = answer == request
    elif check == "unary":
        ok = vpb.VerifyResponse.FromString(answer).verdict == vpb.VERDICT_GENUINE
    else:
        verdicts = vpb.VerifyBatchResponse.FromString(answer).verdicts
        ok = (len(verdicts) == _units(check, request)
              and all(v == vpb.VERDICT_GENUINE for v in verdicts))
    if not ok:
        raise RuntimeError(f"wrong answer from {check} server")


def _client_main(load: Load, conn: multiprocessing.connection.Connection) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    try:
        conn.send(("tally", asyncio.run(_client(load, conn))))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


async def _client(load: Load, conn: multiprocessing.connection.Connection) -> Tally:
    requests = _read_requests(load.requests)
    units = [_units(load.check, r) for r in requests]
    # A local subchannel pool per channel: one TCP connection each, which SO_REUSEPORT then
    # hands to one of the server's workers.
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(load.address, options=options)
                for _ in range(load.channels)]
    try:
        calls = [c.unary_unary(load.method) for c in channels]
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        for call in calls:
            _check_answer(load.check, requests[0], await call(requests[0], timeout=60))
        conn.send(("ready", None))
        warm, start, end = conn.recv()
        # Wall-clock times from the parent, as this process's perf_counter.
        offset = time.time() - time.perf_counter()
        warm, start, end = warm - offset, start - offset, end - offset
        tally = Tally()
        await asyncio.sleep(max(0.0, warm - time.perf_counter()))
        watcher = asyncio.ensure_future(_cpu_over(start, end, tally))
        if load.rate > 0:
            await _open_loop(load, calls, requests, units, start, end, tally)
        else:
            await _closed_loop(load, calls, requests, units, start, end, tally)
        await watcher
        return tally
    finally:
        for channel in channels:
            await channel.close()


async def _cpu_over(start: float, end: float, tally: Tally) -> None:
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    before = time.process_time()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    tally.cpu = time.process_time() - before


async def _closed_loop(load: Load, calls: list[Any], requests: list[bytes], units: list[int],
                       start: float, end: float, tally: Tally) -> None:
    perf = time.perf_counter

    async def caller(k: int) -> None:
        call = calls[k % len(calls)]
        i = k
        while perf() < end and tally.errors < _MAX_ERRORS:
            n = i % len(requests)
            i += load.concurrency
            try:
                await call(requests[n], timeout=60)
            except grpc.aio.AioRpcError as exc:
                tally.errors += 1
                tally.first_error = tally.first_error or f"{exc.code().name}: {exc.details()}"
                continue
            if start <= perf() < end:
                tally.calls += 1
                tally.units += units[n]

    await asyncio.gather(*(caller(k) for k in range(load.concurrency)))


async def _open_loop(load: Load, calls: list[Any], requests: list[bytes], units: list[int],
                     start: float, end: float, tally: Tally) -> None:
    perf = time.perf_counter
    interval = 1.0 / load.rate
    pending: set[asyncio.Task[None]] = set()

    async def one(call: Any, n: int, due: float) -> None:
        try:
            await call(requests[n], timeout=10)
        except grpc.aio.AioRpcError as exc:
            if due >= start:
                tally.errors += 1
                tally.first_error = tally.first_error or f"{exc.code().name}: {exc.details()}"
            return
        if due >= start:
            tally.latencies.append(perf() - due)
            tally.calls += 1
            tally.units += units[n]

    first = perf() + load.phase
    i = 0
    due = first
    while due < end:
        now = perf()
        if due > now:
            await asyncio.sleep(due - now)
            continue
        if len(pending) >= _MAX_OUTSTANDING:
            if due >= start:
                tally.dropped += 1
        else:
            task = asyncio.ensure_future(one(calls[i % len(calls)], i % len(requests), due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        i += 1
        due = first + i * interval
    if pending:
        await asyncio.wait(pending, timeout=15)


@dataclass
class LoadResult:
    """Every client process's tally over one window, and the server's CPU use meanwhile."""

    seconds: float
    tallies: list[Tally]
    worker_cpu: list[float]
    """CPU seconds per second of each server worker during the window."""
    main_cpu: float
    other_cpu: float
    """Cores busy with anything but the server and the clients: noise from other processes."""

    @property
    def units_per_s(self) -> float:
        return sum(t.units for t in self.tallies) / self.seconds

    @property
    def calls_per_s(self) -> float:
        return sum(t.calls for t in self.tallies) / self.seconds

    @property
    def errors(self) -> int:
        return sum(t.errors + t.dropped for t in self.tallies)

    def latencies(self) -> list[float]:
        return sorted(x for t in self.tallies for x in t.latencies)

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds, "calls": sum(t.calls for t in self.tallies),
            "units": sum(t.units for t in self.tallies), "errors": self.errors,
            "first_error": next((t.first_error for t in self.tallies if t.first_error), ""),
            "client_processes": len(self.tallies),
            "worker_cpu": [round(c, 3) for c in self.worker_cpu],
            "client_cpu": [round(t.cpu / self.seconds, 3) for t in self.tallies],
            "server_main_cpu": round(self.main_cpu, 3),
            "other_cpu": round(self.other_cpu, 3),
            # Robust to other jobs on the machine, unlike the rate: server CPU per unit of work.
            "server_cpu_us_per_unit": (sum(self.worker_cpu) + self.main_cpu) * self.seconds
            / max(1, sum(t.units for t in self.tallies)) * 1e6,
        }


def run_load(loads: Sequence[Load], server: ServerProcess, warmup: float, seconds: float,
             profile: Path | None = None) -> LoadResult:
    """Runs one client process per load; measures the window after ``warmup``, and profiles
    the server meanwhile into ``profile`` when given."""
    ctx = multiprocessing.get_context("spawn")
    workers = _worker_pids(server)
    clients: list[tuple[Any, multiprocessing.connection.Connection]] = []
    try:
        for load in loads:
            parent, child = ctx.Pipe()
            process = ctx.Process(target=_client_main, args=(load, child), daemon=True,
                                  name="bench-client")
            process.start()
            child.close()
            clients.append((process, parent))
        for _, conn in clients:
            kind, value = _receive(conn, _READY_TIMEOUT_S)
            if kind != "ready":
                raise RuntimeError(f"a load client failed: {value}")
        settle()
        warm = time.time() + 0.1
        start = warm + warmup
        end = start + seconds
        for _, conn in clients:
            conn.send((warm, start, end))
        time.sleep(max(0.0, start - time.time()))
        profiler = Profiler(server.pid, profile) if profile is not None else None
        if profiler is not None:
            profiler.start()
        cpu_before = [cpu_seconds(p) for p in (server.pid, *workers)]
        busy_before = busy_cpu_seconds()
        time.sleep(max(0.0, end - time.time()))
        cpu_after = [cpu_seconds(p) for p in (server.pid, *workers)]
        busy = busy_cpu_seconds() - busy_before
        if profiler is not None and (path := profiler.stop()) is not None:
            say(f"profile of the server:\n{profile_summary(path)}")
        tallies = []
        for _, conn in clients:
            kind, value = _receive(conn, 60 + seconds)
            if kind != "tally":
                raise RuntimeError(f"a load client failed: {value}")
            tallies.append(value)
    finally:
        for process, conn in clients:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()
    cpu = [(b - a) / seconds for a, b in zip(cpu_before, cpu_after, strict=True)]
    ours = sum(cpu) + sum(t.cpu for t in tallies) / seconds
    return LoadResult(seconds, tallies, cpu[1:], cpu[0], max(0.0, busy / seconds - ours))


def _receive(conn: multiprocessing.connection.Connection, timeout: float) -> tuple[str, Any]:
    if not conn.poll(timeout):
        raise RuntimeError(f"a load client sent nothing for {timeout:.0f} s")
    try:
        message: tuple[str, Any] = conn.recv()
    except EOFError:
        raise RuntimeError("a load client exited without an answer") from None
    return message


def _worker_pids(server: ServerProcess) -> list[int]:
    """The server's worker processes: echo's from its ready file, pharmatrace's by command."""
    if "workers" in server.ports:
        return [int(p) for p in server.ports["workers"]]
    out = []
    for pid in descendants(server.pid):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"spawn_main" in f.read():
                out.append(pid)
    return out


# -- the benchmark -------------------------------------------------------------------------------


def scanned_texts(serials: Sequence[str]) -> list[str]:
    """What a scanner reads off each pack: the GS1 element string with expiry and lot."""
    expiry = EXPIRES[2:4] + EXPIRES[5:7] + EXPIRES[8:10]
    return [render(Scan(Code(Scheme.GS1, GTIN, s), LOT, expiry), Form.ELEMENT) for s in serials]


def in_process_rate(data: Path, batches: Sequence[Sequence[str]], seconds: float
                    ) -> tuple[float, float]:
    """Parse + tag check + LMDB get in one loop over ``batches``, through tracecore: codes per
    second, and CPU microseconds per code."""
    directory = DataDir(data, KeySource.dev(), readonly=True)
    try:
        tenant = directory.get(DEV_TENANT)
        ledger = tenant.ledger
        codes_db = ledger.db["codes"]
        macs = tenant.keys.macs()
        done = found = 0
        started = time.perf_counter()
        cpu = time.process_time()
        for batch in batches:
            scans = [s for s in parse_many(batch) if not isinstance(s, ParseError)]
            key_ids = check_tags([s.code for s in scans], macs)
            with ledger.env.read() as txn:
                get = txn.get
                for scan, key_id in zip(scans, key_ids, strict=True):
                    if key_id is not None and get(scan.code.key(), db=codes_db) is not None:
                        found += 1
            done += len(batch)
            if time.perf_counter() - started >= seconds:
                break
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        directory.close()
    if found != done:
        raise RuntimeError(f"in-process baseline found {found:,} of {done:,} codes")
    return done / elapsed, cpu / done * 1e6


@dataclass(frozen=True)
class Options:
    codes: int = DEFAULT_CODES
    workers: tuple[int, ...] = (1, 2)
    seconds: float = DEFAULT_SECONDS
    warmup: float = 2.0
    batch: int = DEFAULT_BATCH
    clients: int = 2
    """Client processes of every load."""
    batch_channels: int = 4
    """Per client process, each with one VerifyBatch in flight."""
    unary_channels: int = 4
    unary_concurrency: int = 32
    """Unary calls in flight per client process (closed loop)."""
    latency: bool = True
    echo_latency: bool = True
    repeat: int = 2
    """Every figure and baseline is the best of this many measurements."""
    keep: bool = False
    profile: Path | None = None
    """Directory for py-spy profiles of the server in each measured window."""


def run(options: Options = Options()) -> list[Result]:
    o = options
    results: list[Result] = []
    with workdir("verify", o.keep) as tmp:
        data = tmp / "data"
        say(f"verify: issuing a ledger of {o.codes:,} codes through RequestCodes ...")
        with pharmatrace_server(data, tmp, workers=1, name="pharmatrace-setup") as server:
            address = f"{HOST}:{server.ports['issue']}"
            register_product(address)
            pool = request_pool(address, o.codes, "bench-verify-ledger", keep=True)
        assert pool.serials is not None
        texts = scanned_texts(pool.serials)
        del pool
        batches = [texts[i:i + o.batch] for i in range(0, len(texts), o.batch)]
        batch_file = tmp / "batch-requests.bin"
        write_requests(batch_file, [
            vpb.VerifyBatchRequest(tenant=DEV_TENANT, codes=b).SerializeToString()
            for b in batches])
        unary_file = tmp / "unary-requests.bin"
        write_requests(unary_file, [
            vpb.VerifyRequest(tenant=DEV_TENANT, code=t).SerializeToString()
            for t in texts[:UNARY_CODES]])
        say(f"verify: in-process baseline (parse + tag check + LMDB get, {o.batch:,} a batch) ...")
        baselines = []
        for _ in range(o.repeat):
            settle()
            with Elsewhere() as noise:
                baselines.append((*in_process_rate(data, batches, o.seconds), noise.cores))
        baseline = max(baselines)
        say(f"verify: baseline {baseline[0]:,.0f} codes/s "
            f"(best of {_rounded([b[0] for b in baselines])})")
        del texts, batches
        for w in o.workers:
            results.extend(_run_workers(o, w, tmp, data, baseline, batch_file, unary_file))
    return results


@dataclass(frozen=True)
class _Step:
    """One measurement to repeat: what it is, the server it loads, how, and how to rank it."""

    what: str
    server: ServerProcess
    measure: Callable[[int], LoadResult]
    score: Callable[[LoadResult], float]


def _best(o: Options, *steps: _Step) -> list[tuple[LoadResult, list[float]]]:
    """Each step's best of ``o.repeat`` measurements (highest score) and every score. The steps
    take turns, so that a figure and its baseline see the same spells of outside load."""
    runs: list[list[LoadResult]] = [[] for _ in steps]
    for i in range(o.repeat):
        for step, results in zip(steps, runs, strict=True):
            result = step.measure(i)
            _warn(step.what, result, step.server)
            results.append(result)
    return [(max(results, key=step.score), [step.score(r) for r in results])
            for step, results in zip(steps, runs, strict=True)]


def _run_workers(o: Options, w: int, tmp: Path, data: Path,
                 baseline: tuple[float, float, float], batch_file: Path, unary_file: Path
                 ) -> list[Result]:
    """Every step against one server with ``w`` workers; ``baseline`` is the in-process loop's
    (codes/s, CPU microseconds per code, cores busy elsewhere meanwhile)."""
    baseline_rate, baseline_cpu_us, baseline_noise = baseline
    results = []
    with pharmatrace_server(data, tmp, workers=w, name=f"pharmatrace-w{w}") as server, \
            echo_server(tmp, w) as echo:
        verify_address = f"{HOST}:{server.ports['verify']}"
        echo_address = f"{HOST}:{echo.ports['echo']}"

        def profile(name: str, i: int) -> Path | None:
            return _profile_path(o, f"{name}-w{w}") if i == 0 else None

        say(f"verify[{w}w]: VerifyBatch, {o.clients} processes x {o.batch_channels} streams, "
            f"{o.seconds:.0f} s ...")
        [(batch, rates)] = _best(o, _Step("VerifyBatch", server, lambda i: run_load(
            [Load(verify_address, BATCH_METHOD, str(batch_file), "batch", o.batch_channels,
                  concurrency=o.batch_channels)] * o.clients,
            server, o.warmup, o.seconds, profile("verify-batch", i)),
            score=lambda r: r.units_per_s))
        say(f"verify[{w}w]: {batch.units_per_s:,.0f} codes/s (best of {_rounded(rates)}), "
            f"worker CPU {batch.worker_cpu}")
        results.append(Result(
            bench="verify", name=f"VerifyBatch x{o.batch:,} ({w} workers)", unit="codes/s",
            figure=batch.units_per_s, baseline=baseline_rate, baseline_name="in-process 1 core",
            key=f"verify.batch.w{w}", elsewhere=max(batch.other_cpu, baseline_noise),
            targets=[Target("min", 200_000)],
            details={**batch.summary(), "all_rates": _rounded(rates)}))
        # CPU per code does not depend on how many cores other jobs left free.
        results.append(Result(
            bench="verify", name=f"VerifyBatch: server CPU per code ({w} workers)", unit="µs",
            figure=batch.summary()["server_cpu_us_per_unit"], baseline=baseline_cpu_us,
            baseline_name="in-process", key=f"verify.batch_cpu.w{w}"))

        def closed(target: ServerProcess, address: str, method: str, check: str, i: int
                   ) -> LoadResult:
            return run_load(
                [Load(address, method, str(unary_file), check, o.unary_channels,
                      concurrency=o.unary_concurrency)] * o.clients,
                target, o.warmup, o.seconds,
                None if target is echo else profile("verify-unary", i))

        say(f"verify[{w}w]: unary, {o.clients} processes x {o.unary_concurrency} calls in "
            "flight, echo and Verify in turn ...")
        (echo_closed, echo_rates), (verify_closed, verify_rates) = _best(
            o,
            _Step("echo", echo, lambda i: closed(echo, echo_address, ECHO_METHOD, "echo", i),
                  score=lambda r: r.calls_per_s),
            _Step("Verify", server,
                  lambda i: closed(server, verify_address, VERIFY_METHOD, "unary", i),
                  score=lambda r: r.calls_per_s))
        say(f"verify[{w}w]: echo {echo_closed.calls_per_s:,.0f} req/s (best of "
            f"{_rounded(echo_rates)}), Verify {verify_closed.calls_per_s:,.0f} req/s (best of "
            f"{_rounded(verify_rates)})")
        results.append(Result(
            bench="verify", name=f"Verify unary, closed loop ({w} workers)", unit="req/s",
            figure=verify_closed.calls_per_s, baseline=echo_closed.calls_per_s,
            baseline_name="grpc echo", key=f"verify.unary.w{w}",
            elsewhere=max(verify_closed.other_cpu, echo_closed.other_cpu),
            targets=[Target("min_ratio", 0.7)],
            details={"verify": {**verify_closed.summary(), "all_rates": _rounded(verify_rates)},
                     "echo": {**echo_closed.summary(), "all_rates": _rounded(echo_rates)},
                     "concurrency_per_process": o.unary_concurrency}))
        results.append(Result(
            bench="verify", name=f"Verify unary: server CPU per call ({w} workers)", unit="µs",
            figure=verify_closed.summary()["server_cpu_us_per_unit"],
            baseline=echo_closed.summary()["server_cpu_us_per_unit"], baseline_name="grpc echo",
            key=f"verify.unary_cpu.w{w}"))

        if o.latency:
            rate = verify_closed.calls_per_s / 2

            def open_loop(target: ServerProcess, address: str, method: str, check: str, i: int
                          ) -> LoadResult:
                return run_load(
                    [Load(address, method, str(unary_file), check, o.unary_channels,
                          rate=rate / o.clients, phase=k / rate) for k in range(o.clients)],
                    target, o.warmup, o.seconds,
                    None if target is echo else profile("verify-open-loop", i))

            def p99(result: LoadResult) -> float:
                return -percentile(result.latencies(), 0.99)

            say(f"verify[{w}w]: open loop at {rate:,.0f} req/s (half of max) ...")
            steps = [_Step("Verify, open loop", server,
                           lambda i: open_loop(server, verify_address, VERIFY_METHOD, "unary", i),
                           p99)]
            if o.echo_latency:
                steps.append(_Step("echo, open loop", echo,
                                   lambda i: open_loop(echo, echo_address, ECHO_METHOD, "echo", i),
                                   p99))
            measured = _best(o, *steps)
            verify_open = measured[0][0]
            echo_open = measured[1][0] if o.echo_latency else None
            results.extend(_latency_results(w, rate, verify_open, echo_open))
    return results


def _rounded(values: list[float]) -> list[int]:
    return [round(v) for v in values]


def _latency_results(w: int, rate: float, verify: LoadResult, echo: LoadResult | None
                     ) -> list[Result]:
    lat = verify.latencies()
    echo_lat = echo.latencies() if echo is not None else []
    out = []
    for q in (0.5, 0.9, 0.99):
        figure = percentile(lat, q) * 1000
        base = percentile(echo_lat, q) * 1000 if echo is not None else None
        out.append(Result(
            bench="verify", name=f"Verify p{q * 100:.0f} at {rate:,.0f} req/s ({w} workers)",
            unit="ms", figure=figure, baseline=base, baseline_name="echo, same rate",
            key=f"verify.p{q * 100:.0f}.w{w}",
            elsewhere=max(verify.other_cpu, echo.other_cpu if echo is not None else 0.0),
            targets=[Target("max", 10.0)] if q == 0.99 else [],
            details={"verify": {**verify.summary(), "achieved_req_per_s": verify.calls_per_s,
                                "max_ms": lat[-1] * 1000 if lat else None},
                     "echo": echo.summary() if echo is not None else None,
                     "offered_req_per_s": rate} if q == 0.99 else {}))
    return out


def _profile_path(o: Options, name: str) -> Path | None:
    if o.profile is None:
        return None
    o.profile.mkdir(parents=True, exist_ok=True)
    return o.profile / f"{name}.txt"


def _warn(what: str, result: LoadResult, server: ServerProcess) -> None:
    if result.other_cpu > _NOISY_CPU:
        say(f"  warning: {what}: other processes kept {result.other_cpu:.2f} cores busy "
            "meanwhile; the figure is low by about that share")
    summary = result.summary()
    if summary["errors"]:
        say(f"  warning: {what}: {summary['errors']} failed or dropped calls "
            f"({summary['first_error']}); the server's log ends:\n{server.log_tail(40)}")
