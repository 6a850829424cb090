"""VerifyBatch and unary Verify over gRPC, against in-process lookups and a bare echo server.

Set-up: a ledger of ``--codes`` codes issued through RequestCodes (one GS1 product, one batch),
written as scanners send them (GS1 element strings with expiry and lot).

- VerifyBatch: client processes, each with several connections and one call in flight on each,
  send batches of ``--batch`` codes for ``--seconds``; codes answered per second. Baseline: one
  in-process loop of parse + tag check + LMDB get over the same codes through tracecore.
- Unary Verify: the same closed-loop client (processes x concurrent grpc.aio calls) against
  Verify and against bench/echo.py with as many workers; requests per second, their ratio, and
  the p95 latency at that maximum rate.
- Latency: an open-loop client at half of the measured maximum Verify rate (fixed arrival times;
  a latency runs from when its request was due, so a late client does not hide a slow server);
  p50 / p90 / p99 / p99.9, beside the echo server's at the same rate.

The load clients are bench/load.py's (every answer checked against its expected verdicts).

Each step is repeated for every value of ``--workers``; every figure and baseline is the best of
``--repeat`` measurements (the lowest p99 for latency), so that a job sharing the machine for a
moment does not set it. Per-worker CPU use is reported to show whether every worker was busy, and
the cores other jobs kept busy meanwhile to show how far they may have pulled a figure down.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pharmatrace.v1 import verification_pb2 as vpb

from bench.echo import METHOD as ECHO_METHOD
from bench.harness import (
    DEV_TENANT,
    HOST,
    SCANNED_OVER_AND_OVER,
    ServerProcess,
    echo_server,
    pharmatrace_server,
    workdir,
)
from bench.issue import EXPIRES, GTIN, LOT, register_product, request_pool
from bench.load import SLOW_S, Load, LoadResult, latency_results, run_load, write_requests
from bench.measure import Elsewhere, settle
from bench.report import Result, Target, say
from tracecore.codes import Code, Form, Scan, Scheme, parse_many, parsed_codes, render
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from tracecore.minting import Minter, check_tags

VERIFY_METHOD = "/pharmatrace.v1.Verification/Verify"
BATCH_METHOD = "/pharmatrace.v1.Verification/VerifyBatch"
DEFAULT_CODES = 1_000_000
DEFAULT_BATCH = 10_000
DEFAULT_SECONDS = 10.0
UNARY_CODES = 20_000
"""Distinct codes cycled through by the unary clients."""
GENUINE = bytes((vpb.VERDICT_GENUINE,))
P99_HALF_MAX_MS = 5.0
"""Unary Verify p99 at half the maximum rate, at most."""
P95_MAX_RATE_MS = 3.0
"""Unary Verify p95 at the maximum rate: the EU FMD's 300 ms for 95 % of requests, by two
orders of magnitude."""
_NOISY_CPU = 0.2


# -- the benchmark -------------------------------------------------------------------------------


def scanned_texts(serials: Sequence[str]) -> list[str]:
    """What a scanner reads off each pack: the GS1 element string with expiry and lot."""
    expiry = EXPIRES[2:4] + EXPIRES[5:7] + EXPIRES[8:10]
    return [render(Scan(Code(Scheme.GS1, GTIN, s), LOT, expiry), Form.ELEMENT) for s in serials]


def in_batches(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    """``texts`` cut into batches of ``size`` (the last may be shorter)."""
    return [texts[i:i + size] for i in range(0, len(texts), size)]


def batch_requests(batches: Sequence[Sequence[str]]) -> list[tuple[bytes, bytes]]:
    """A VerifyBatch request per batch of issued codes, each expecting every code GENUINE."""
    return [(vpb.VerifyBatchRequest(tenant=DEV_TENANT, codes=b).SerializeToString(),
             GENUINE * len(b)) for b in batches]


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
            _, codes, keys = parsed_codes(parse_many(batch))
            key_ids = check_tags(codes, macs)
            # Codes are kept encrypted: looked up as stored, the batch encrypted in one call.
            stored = ledger.codes.stored_many(keys)
            with ledger.env.read() as txn:
                get = txn.get
                for key, key_id in zip(stored, key_ids, strict=True):
                    if key_id is not None and get(key, db=codes_db) is not None:
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


MIX = {"genuine": 0.90, "unknown": 0.04, "bad_signature": 0.03, "malformed": 0.03}
"""What consumers scan: mostly real packs; some well-signed codes never issued (a pack from
another line's lost pool), some with a wrong signature (forged or mistyped) and some text that
is no code at all."""
_MALFORMED = ("hello world", "(01)09501101530003(21)", "]d2010950110153000", "12345678901234",
              "https://example.com/not/a/code", "(01)0950110153000X(21)ABC", "\u00e9\u00e9\u00e9")


def consumer_requests(data: Path, texts: Sequence[str], n: int) -> list[tuple[bytes, bytes]]:
    """``n`` Verify requests (as many as ``texts`` when there are fewer) in the proportions of
    ``MIX``, shuffled (seeded), each with the verdict it must get. Unknown codes are minted here
    with the tenant's active key and never stored; bad signatures are issued codes with their
    last (tag) character changed."""
    n = min(n, len(texts))
    rng = random.Random(8)
    counts = {kind: round(share * n) for kind, share in MIX.items()}
    counts["genuine"] = n - sum(v for k, v in counts.items() if k != "genuine")
    directory = DataDir(data, KeySource.dev(), readonly=True)
    try:
        key = directory.get(DEV_TENANT).keys.active
        unknown = Minter(Scheme.GS1, GTIN, key.key_id, key.mac).mint(counts["unknown"])
    finally:
        directory.close()
    genuine = rng.sample(list(texts), counts["genuine"] + counts["bad_signature"])
    forged = [t[:-1] + ("B" if t[-1] != "B" else "C") for t in genuine[counts["genuine"]:]]
    # Each forged text ends with its serial (the lot and expiry come first), so the last
    # character is the tag's. B and C are no key another keyboard layout types for a
    # character of the alphabet: with A, a serial ending in Q read as AZERTY was repaired to
    # the genuine code.
    items = ([(t, vpb.VERDICT_GENUINE) for t in genuine[:counts["genuine"]]]
             + [(t, vpb.VERDICT_UNKNOWN) for t in scanned_texts(unknown)]
             + [(t, vpb.VERDICT_BAD_SIGNATURE) for t in forged]
             + [(_MALFORMED[i % len(_MALFORMED)], vpb.VERDICT_INVALID_FORMAT)
                for i in range(counts["malformed"])])
    rng.shuffle(items)
    return [(vpb.VerifyRequest(tenant=DEV_TENANT, code=t).SerializeToString(), bytes((v,)))
            for t, v in items]


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
        batches = in_batches(texts, o.batch)
        batch_file = tmp / "batch-requests.bin"
        write_requests(batch_file, batch_requests(batches))
        unary_file = tmp / "unary-requests.bin"
        write_requests(unary_file, consumer_requests(data, texts, UNARY_CODES))
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
    with pharmatrace_server(data, tmp, workers=w, name=f"pharmatrace-w{w}",
                            env=SCANNED_OVER_AND_OVER) as server, \
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
            targets=[Target("min", 400_000)],
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
            targets=[Target("min_ratio", 0.8)],
            details={"verify": {**verify_closed.summary(), "all_rates": _rounded(verify_rates)},
                     "echo": {**echo_closed.summary(), "all_rates": _rounded(echo_rates)},
                     "concurrency_per_process": o.unary_concurrency}))
        results.append(Result(
            bench="verify", name=f"Verify unary: server CPU per call ({w} workers)", unit="µs",
            figure=verify_closed.summary()["server_cpu_us_per_unit"],
            baseline=echo_closed.summary()["server_cpu_us_per_unit"], baseline_name="grpc echo",
            key=f"verify.unary_cpu.w{w}"))
        results.append(Result(
            bench="verify", name=f"Verify p95 at the maximum rate ({w} workers)", unit="ms",
            figure=verify_closed.latency().quantile(0.95) * 1000,
            baseline=echo_closed.latency().quantile(0.95) * 1000,
            baseline_name="echo at its maximum", key=f"verify.p95_max.w{w}",
            targets=[Target("max", P95_MAX_RATE_MS)],
            details={"calls_in_flight": o.clients * o.unary_concurrency}))

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
                return -result.latency().quantile(0.99)

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
            for name, result in (("Verify", verify_open), ("echo", echo_open)):
                if result is not None:
                    slow = result.slow_over_time() or "none"
                    say(f"verify[{w}w]: {name} calls of {SLOW_S * 1e3:.0f} ms or more by 100 ms "
                        f"of the window (s: [calls, worst ms]): {slow}")
            results.extend(latency_results(
                "verify", f"Verify at {rate:,.0f} req/s ({w} workers)", f"verify.w{w}",
                verify_open, echo_open, "echo, same rate", [Target("max", P99_HALF_MAX_MS)],
                {"verify": verify_open.summary(), "offered_req_per_s": rate,
                 "echo": echo_open.summary() if echo_open is not None else None}))
    return results


def _rounded(values: list[float]) -> list[int]:
    return [round(v) for v in values]


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
