"""Where verification bends: VerifyBatch throughput against ledger size, and unary Verify
latency against offered load.

- Ledger size: one ledger grown through RequestCodes to each of ``sizes`` in turn (1M, then 10M
  codes ...); at each size VerifyBatch is measured as bench/verify.py measures it, over codes of
  the first pool (random serials, so they fall all over the key space of the bigger ledger).
- Offered load: the closed-loop maximum of unary Verify on the largest ledger, then open loops
  at fractions of it (fixed arrival times, as bench/verify.py's latency step): p50 and p99 at
  each rate, beside the echo server's at the same rates.

``run`` returns both curves as plain data for bench/chart.py and for JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.echo import METHOD as ECHO_METHOD
from bench.harness import (
    HOST,
    SCANNED_OVER_AND_OVER,
    ServerProcess,
    echo_server,
    pharmatrace_server,
    workdir,
)
from bench.issue import register_product, request_pool
from bench.load import Load, LoadResult, run_load, write_requests
from bench.measure import settle
from bench.report import say
from bench.verify import (
    BATCH_METHOD,
    UNARY_CODES,
    VERIFY_METHOD,
    batch_requests,
    consumer_requests,
    in_batches,
    scanned_texts,
)

SIZES = (1_000_000, 10_000_000)
"""Ledger sizes of ``make bench``; 100,000,000 takes about 30 GiB of disk and half an hour of
issuing (``python -m bench all --sizes 1000000,10000000,100000000``)."""
LOADS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
"""Offered unary load, as fractions of the closed-loop maximum."""
_POOL = 1_000_000


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...] = SIZES
    loads: tuple[float, ...] = LOADS
    workers: int = 2
    seconds: float = 5.0
    warmup: float = 1.0
    batch: int = 10_000
    clients: int = 2
    keep: bool = False


@dataclass
class Curves:
    """The measured points: (ledger codes, codes/s) and (offered req/s, p50 ms, p99 ms)."""

    workers: int
    throughput: list[tuple[int, float]] = field(default_factory=list)
    latency: list[tuple[float, float, float]] = field(default_factory=list)
    echo_latency: list[tuple[float, float, float]] = field(default_factory=list)
    max_rate: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def run(options: Options = Options()) -> Curves:
    o = options
    curves = Curves(o.workers)
    sizes = sorted(o.sizes)
    with workdir("curves", o.keep) as tmp:
        data = tmp / "data"
        issued = 0
        first: list[str] = []
        batch_file = tmp / "batch-requests.bin"
        unary_file = tmp / "unary-requests.bin"
        for size in sizes:
            say(f"curves: growing the ledger to {size:,} codes ...")
            with pharmatrace_server(data, tmp, workers=1, name="pharmatrace-setup") as server:
                address = f"{HOST}:{server.ports['issue']}"
                if not issued:
                    register_product(address)
                while issued < size:
                    count = min(_POOL, size - issued)
                    pool = request_pool(address, count, f"bench-curves-{issued}",
                                        keep=not first)
                    if not first:
                        assert pool.serials is not None
                        first = pool.serials
                    issued += count
            if not batch_file.exists():
                texts = scanned_texts(first)
                write_requests(batch_file, batch_requests(in_batches(texts, o.batch)))
                write_requests(unary_file, consumer_requests(data, texts, UNARY_CODES))
            with pharmatrace_server(data, tmp, workers=o.workers, name=f"pharmatrace-{size}",
                                    env=SCANNED_OVER_AND_OVER) as server:
                rate = _batch_rate(o, server, batch_file)
                say(f"curves: {size:,} codes: VerifyBatch {rate:,.0f} codes/s")
                curves.throughput.append((size, rate))
                if size == sizes[-1]:
                    _latency(o, curves, server, tmp, unary_file)
    return curves


def _batch_rate(o: Options, server: ServerProcess, batch_file: Path) -> float:
    address = f"{HOST}:{server.ports['verify']}"
    settle()
    result = run_load([Load(address, BATCH_METHOD, str(batch_file), "batch", 4, concurrency=4)]
                      * o.clients, server, o.warmup, o.seconds)
    return result.units_per_s


def _latency(o: Options, curves: Curves, server: ServerProcess, tmp: Path,
             unary_file: Path) -> None:
    """The closed-loop maximum of Verify, then open loops at ``o.loads`` of it, with echo."""
    address = f"{HOST}:{server.ports['verify']}"
    settle()
    closed = run_load([Load(address, VERIFY_METHOD, str(unary_file), "unary", 4,
                            concurrency=32)] * o.clients, server, o.warmup, o.seconds)
    curves.max_rate = closed.calls_per_s
    with echo_server(tmp, o.workers) as echo:
        echo_address = f"{HOST}:{echo.ports['echo']}"
        for share in o.loads:
            rate = curves.max_rate * share
            for target, at, method, check, points in (
                    (server, address, VERIFY_METHOD, "unary", curves.latency),
                    (echo, echo_address, ECHO_METHOD, "echo", curves.echo_latency)):
                settle()
                result = _open_loop(o, target, at, method, check, unary_file, rate)
                lat = result.latency()
                points.append((rate, lat.quantile(0.5) * 1000, lat.quantile(0.99) * 1000))
            say(f"curves: {rate:,.0f} req/s offered: Verify p99 {curves.latency[-1][2]:.2f} ms, "
                f"echo p99 {curves.echo_latency[-1][2]:.2f} ms")


def _open_loop(o: Options, target: ServerProcess, address: str, method: str, check: str,
               requests: Path, rate: float) -> LoadResult:
    return run_load([Load(address, method, str(requests), check, 4, rate=rate / o.clients,
                          phase=k / rate) for k in range(o.clients)],
                    target, o.warmup, o.seconds)


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"1000000,10000000"`` as ledger sizes."""
    return tuple(int(s.replace("_", "")) for s in text.split(",") if s.strip())


def summary(curves: Curves) -> Sequence[str]:
    """The curves as lines of text, for the terminal."""
    lines = [f"VerifyBatch ({curves.workers} workers) against ledger size:"]
    lines += [f"  {size:>13,} codes  {rate:>10,.0f} codes/s" for size, rate in curves.throughput]
    lines.append(f"unary Verify latency against offered load (maximum {curves.max_rate:,.0f} "
                 "req/s):")
    for (rate, p50, p99), (_, e50, e99) in zip(curves.latency, curves.echo_latency, strict=True):
        lines.append(f"  {rate:>8,.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms   "
                     f"(echo p50 {e50:6.2f}, p99 {e99:7.2f})")
    return lines
