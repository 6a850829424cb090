"""The load generator: client processes driving unary gRPC calls, closed or open loop.

Each client process (``multiprocessing`` spawn, uvloop when installed) opens its own
connections and runs one ``Load``:

- closed loop: ``concurrency`` calls in flight, each starting the next as it returns (the
  maximum rate);
- open loop: calls started at fixed arrival times, ``rate`` per second, whatever the server's
  pace, and a latency runs from when its call was due, so queueing shows in it instead of being
  hidden by a client that waits (coordinated omission).

Requests come from a file of serialized requests, each with the answer it must get (the
verdicts of a Verify or VerifyBatch, or the bytes back from the echo server); every answer is
checked, and outcomes are counted by gRPC status code, with ``WRONG_ANSWER`` for an OK call
that answered otherwise. Latencies go into a log-bucketed ``Histogram`` (about 1 % wide
buckets) that merges across processes. The parent starts every client at one wall-clock
instant, measures the window after a warm-up, and samples the server's CPU meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
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

from bench.harness import CHANNEL_OPTIONS, ServerProcess
from bench.measure import (
    Profiler,
    busy_cpu_seconds,
    cpu_seconds,
    descendants,
    major_faults,
    profile_summary,
    settle,
)
from bench.report import Result, Target, say

_LENGTH = struct.Struct("<II")
_READY_TIMEOUT_S = 60.0
_MAX_OUTSTANDING = 20_000
_MAX_ERRORS = 1_000
SLOW_S = 0.010
"""A call answered after this long counts in ``LoadResult.slow_over_time``."""
OK = "OK"
WRONG = "WRONG_ANSWER"
DROPPED = "DROPPED"
"""Open loop: a call not started because ``_MAX_OUTSTANDING`` were already in flight."""


# -- latency histogram ---------------------------------------------------------------------------


class Histogram:
    """Latencies in log-spaced buckets, ``PER_OCTAVE`` per doubling (about 1.1 % wide), from
    1 µs up; mergeable, small (a few hundred buckets), exact count, min and max."""

    PER_OCTAVE = 64

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, seconds: float) -> None:
        us = seconds * 1e6
        b = int(math.log2(us) * self.PER_OCTAVE) if us > 1.0 else 0
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1
        self.total += seconds
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)

    def merge(self, other: Histogram) -> Histogram:
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def quantile(self, q: float) -> float:
        """Seconds: the upper edge of the bucket holding the ``q`` quantile (nearest rank), so
        never below the true value by more than a bucket; NaN when empty."""
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(self.max, 2 ** ((b + 1) / self.PER_OCTAVE) / 1e6)
        return self.max

    def summary(self) -> dict[str, float]:
        """Milliseconds: p50, p90, p99, p99.9, mean, max; and the count."""
        ms = {f"p{label}_ms": self.quantile(q) * 1000
              for label, q in (("50", 0.5), ("90", 0.9), ("99", 0.99), ("99.9", 0.999))}
        return {**ms, "mean_ms": self.total / self.count * 1000 if self.count else math.nan,
                "max_ms": self.max * 1000, "count": self.count}


# -- request files -------------------------------------------------------------------------------


def write_requests(path: Path, requests: Sequence[tuple[bytes, bytes]]) -> None:
    """Serialized requests, each with its expected answer: the verdicts (one byte each, as
    ``bytes(verdicts)``) for Verify and VerifyBatch, anything for echo (which answers with the
    request)."""
    with open(path, "wb") as f:
        for request, expected in requests:
            f.write(_LENGTH.pack(len(request), len(expected)))
            f.write(request)
            f.write(expected)


def read_requests(path: str | Path) -> list[tuple[bytes, bytes]]:
    data = Path(path).read_bytes()
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        size, expected = _LENGTH.unpack_from(data, pos)
        pos += _LENGTH.size
        out.append((data[pos:pos + size], data[pos + size:pos + size + expected]))
        pos += size + expected
    return out


def _units(check: str, request: bytes) -> int:
    if check == "batch":
        return len(vpb.VerifyBatchRequest.FromString(request).codes)
    return 1


def _is_right(check: str, request: bytes, expected: bytes, answer: bytes) -> bool:
    """The answer is the one expected: the verdicts, or the request echoed."""
    if check == "echo":
        return answer == request
    if check == "unary":
        return bytes((vpb.VerifyResponse.FromString(answer).verdict,)) == expected
    return bytes(vpb.VerifyBatchResponse.FromString(answer).verdicts) == expected


# -- the client process --------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What one client process does: ``concurrency`` calls in flight (closed loop), or calls
    started at ``rate`` per second (open loop), over ``channels`` connections of its own."""

    address: str
    method: str
    requests: str
    """File written by ``write_requests``, cycled through."""
    check: str
    """How to read an answer: "batch" (VerifyBatch), "unary" (Verify) or "echo"."""
    channels: int
    concurrency: int = 0
    rate: float = 0.0
    phase: float = 0.0
    """Open loop: this process's first call is due ``phase`` s after the start."""
    timeout: float = 10.0


@dataclass
class Tally:
    """One client process's counts inside the measured window."""

    calls: int = 0
    """Calls answered OK and right."""
    units: int = 0
    """Codes in those calls (1 a call but for VerifyBatch)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    """Calls by gRPC status code name, WRONG_ANSWER and DROPPED; OK counts right answers."""
    cpu: float = 0.0
    """CPU seconds this client process used in the window."""
    latency: Histogram = field(default_factory=Histogram)
    """Of the calls answered OK and right."""
    slow: list[tuple[float, float]] = field(default_factory=list)
    """(s into the window the call was due, its latency in s) of each call answered OK and
    right after ``SLOW_S`` or more: when in the window the tail happened."""
    first_error: str = ""

    @property
    def errors(self) -> int:
        return sum(n for name, n in self.outcomes.items() if name != OK)

    def count(self, outcome: str, detail: str = "") -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome != OK and not self.first_error:
            self.first_error = f"{outcome}: {detail}" if detail else outcome


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
    requests = read_requests(load.requests)
    units = [_units(load.check, r) for r, _ in requests]
    # A local subchannel pool per channel: one TCP connection each, which SO_REUSEPORT then
    # hands to one of the server's workers.
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(load.address, options=options)
                for _ in range(load.channels)]
    try:
        # No serializers: requests and answers are the encoded messages.
        calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
            c.unary_unary(load.method) for c in channels]
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        for call in calls:
            request, expected = requests[0]
            if not _is_right(load.check, request, expected, await call(request, timeout=60)):
                raise RuntimeError(f"wrong answer from the {load.check} server at warm-up")
        conn.send(("ready", None))
        warm, start, end = conn.recv()
        # Wall-clock times from the parent, as this process's perf_counter.
        offset = time.time() - time.perf_counter()
        warm, start, end = warm - offset, start - offset, end - offset
        tally = Tally()
        await asyncio.sleep(max(0.0, warm - time.perf_counter()))
        watcher = asyncio.ensure_future(_cpu_over(start, end, tally))
        runner = _open_loop if load.rate > 0 else _closed_loop
        await runner(load, calls, requests, units, start, end, tally)
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


async def _one(load: Load, call: Any, request: bytes, expected: bytes, units: int, due: float,
               start: float, end: float, tally: Tally) -> None:
    """One call; counted when it was due inside the window ``[start, end)``."""
    perf = time.perf_counter
    try:
        answer = await call(request, timeout=load.timeout)
    except grpc.aio.AioRpcError as exc:
        if start <= due < end:
            tally.count(exc.code().name, exc.details() or "")
        return
    if not start <= due < end:
        return
    if not _is_right(load.check, request, expected, answer):
        tally.count(WRONG, f"{load.method} answered otherwise than expected")
        return
    took = perf() - due
    tally.latency.add(took)
    if took >= SLOW_S:
        tally.slow.append((due - start, took))
    tally.count(OK)
    tally.calls += 1
    tally.units += units


async def _closed_loop(load: Load, calls: list[Any], requests: list[tuple[bytes, bytes]],
                       units: list[int], start: float, end: float, tally: Tally) -> None:
    perf = time.perf_counter

    async def caller(k: int) -> None:
        call = calls[k % len(calls)]
        i = k
        while perf() < end and tally.errors < _MAX_ERRORS:
            n = i % len(requests)
            i += load.concurrency
            request, expected = requests[n]
            await _one(load, call, request, expected, units[n], perf(), start, end, tally)

    await asyncio.gather(*(caller(k) for k in range(load.concurrency)))


async def _open_loop(load: Load, calls: list[Any], requests: list[tuple[bytes, bytes]],
                     units: list[int], start: float, end: float, tally: Tally) -> None:
    perf = time.perf_counter
    interval = 1.0 / load.rate
    pending: set[asyncio.Task[None]] = set()
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
                tally.count(DROPPED, f"{_MAX_OUTSTANDING:,} calls already in flight")
        else:
            n = i % len(requests)
            request, expected = requests[n]
            task = asyncio.ensure_future(_one(load, calls[i % len(calls)], request, expected,
                                              units[n], due, start, end, tally))
            pending.add(task)
            task.add_done_callback(pending.discard)
        i += 1
        due = first + i * interval
    if pending:
        await asyncio.wait(pending, timeout=load.timeout + 5)


# -- the parent ----------------------------------------------------------------------------------


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
    major_faults: int = 0
    """Pages the machine read from disk on a fault during the window (all processes)."""

    def select(self, start: int, stop: int) -> LoadResult:
        """The tallies of the loads ``start:stop`` (in the order given to ``run_load``), for
        one kind of client among several; the server's CPU figures stay the whole server's."""
        return LoadResult(self.seconds, self.tallies[start:stop], self.worker_cpu,
                          self.main_cpu, self.other_cpu, self.major_faults)

    @property
    def units_per_s(self) -> float:
        return sum(t.units for t in self.tallies) / self.seconds

    @property
    def calls_per_s(self) -> float:
        return sum(t.calls for t in self.tallies) / self.seconds

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.tallies)

    def outcomes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tallies:
            for name, n in t.outcomes.items():
                out[name] = out.get(name, 0) + n
        return dict(sorted(out.items()))

    def slow_over_time(self, bucket_s: float = 0.1) -> dict[str, Any]:
        """The calls of ``SLOW_S`` or more by ``bucket_s`` of the window they were due in:
        {start of the bucket in s: [calls, worst latency in ms]}, buckets without one left
        out. Pauses of a server show as runs of slow calls in one or two buckets."""
        buckets: dict[float, list[float]] = {}
        for t in self.tallies:
            for at, took in t.slow:
                key = round(at // bucket_s * bucket_s, 3)
                entry = buckets.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] = max(entry[1], round(took * 1e3, 1))
        return {f"{k:.1f}": v for k, v in sorted(buckets.items())}

    def latency(self) -> Histogram:
        out = Histogram()
        for t in self.tallies:
            out.merge(t.latency)
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds, "calls": sum(t.calls for t in self.tallies),
            "units": sum(t.units for t in self.tallies), "errors": self.errors,
            "outcomes": self.outcomes(),
            "first_error": next((t.first_error for t in self.tallies if t.first_error), ""),
            "latency": self.latency().summary(),
            "slow_calls_over_time": self.slow_over_time(),
            "client_processes": len(self.tallies),
            "worker_cpu": [round(c, 3) for c in self.worker_cpu],
            "client_cpu": [round(t.cpu / self.seconds, 3) for t in self.tallies],
            "server_main_cpu": round(self.main_cpu, 3),
            "other_cpu": round(self.other_cpu, 3),
            "major_faults": self.major_faults,
            # Robust to other jobs on the machine, unlike the rate: server CPU per unit of work.
            "server_cpu_us_per_unit": (sum(self.worker_cpu) + self.main_cpu) * self.seconds
            / max(1, sum(t.units for t in self.tallies)) * 1e6,
        }


QUANTILES = (("50", 0.5), ("90", 0.9), ("99", 0.99), ("99.9", 0.999))


def latency_results(bench: str, what: str, key: str, result: LoadResult,
                    baseline: LoadResult | None = None, baseline_name: str = "",
                    p99_targets: Sequence[Target] = (), details: dict[str, Any] | None = None
                    ) -> list[Result]:
    """Rows "``what`` p50" ... "p99.9" (keys ``key``.p50 ...) of ``result``'s latencies, each
    beside ``baseline``'s when given; the p99 row carries ``p99_targets`` and the details (by
    default both summaries)."""
    lat = result.latency()
    base = baseline.latency() if baseline is not None else None
    if details is None:
        details = {"load": result.summary(),
                   "baseline": baseline.summary() if baseline is not None else None}
    return [Result(
        bench=bench, name=f"{what} p{label}", unit="ms", figure=lat.quantile(q) * 1000,
        baseline=base.quantile(q) * 1000 if base is not None else None,
        baseline_name=baseline_name, key=f"{key}.p{label}",
        elsewhere=max(result.other_cpu, baseline.other_cpu if baseline is not None else 0.0),
        targets=list(p99_targets) if label == "99" else [],
        details=details if label == "99" else {}) for label, q in QUANTILES]


def run_load(loads: Sequence[Load], server: ServerProcess, warmup: float, seconds: float,
             profile: Path | None = None, during: Callable[[float], None] | None = None
             ) -> LoadResult:
    """Runs one client process per load; measures the window after ``warmup``, and profiles
    the server meanwhile into ``profile`` when given. ``during(end)``, when given, runs in this
    process while the window lasts (it is handed the window's end as a ``time.time()``)."""
    ctx = multiprocessing.get_context("spawn")
    workers = worker_pids(server)
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
        faults_before = major_faults()
        if during is not None:
            during(end)
        time.sleep(max(0.0, end - time.time()))
        cpu_after = [cpu_seconds(p) for p in (server.pid, *workers)]
        busy = busy_cpu_seconds() - busy_before
        faults = major_faults() - faults_before
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
    return LoadResult(seconds, tallies, cpu[1:], cpu[0], max(0.0, busy / seconds - ours),
                      faults)


def _receive(conn: multiprocessing.connection.Connection, timeout: float) -> tuple[str, Any]:
    if not conn.poll(timeout):
        raise RuntimeError(f"a load client sent nothing for {timeout:.0f} s")
    try:
        message: tuple[str, Any] = conn.recv()
    except EOFError:
        raise RuntimeError("a load client exited without an answer") from None
    return message


def worker_pids(server: ServerProcess) -> list[int]:
    """The server's worker processes: echo's from its ready file, pharmatrace's by command."""
    if "workers" in server.ports:
        return [int(p) for p in server.ports["workers"]]
    out = []
    for pid in descendants(server.pid):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"spawn_main" in f.read():
                out.append(pid)
    return out
