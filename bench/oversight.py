"""Recall, LocateBatch, RegionReport and verification with the diversion and clone checks.

Set-up, in-process through tracecore (building over gRPC would only make the run longer): a
tenant with one batch of ``--codes`` unit packs (default 1,000,000) sold in Guangdong and Hunan,
commissioned at a plant, 80% shipped to two distributors, a fifth of that on to 200 pharmacies
in 200 counties, and some dispensed; the same shape at 1/100 of the size as the small ledger.

- RecallBatch of the whole batch over gRPC, the where-are-they answer included (target 2 s).
  Baseline: reading every code record of the batch once in-process with raw LMDB, the least a
  recall that touched the packs would cost.
- LocateBatch and RegionReport (county level, every product) over gRPC, p50 and p99 of
  ``--calls`` calls on the big ledger (target 50 ms), beside the same calls on the small
  ledger (independent of size: ratio near 1) and beside the raw LMDB read of the counters
  they answer from.
- Verification in-process (``tracecore.verification.Verifier``) of 10,000-code batches scanned
  with a region: checks on against checks off, alternating rounds on fresh codes, codes per
  CPU second of this process (so that other jobs on the machine do not tilt the ratio), median
  of the rounds (target: on at least 90% of off).

    python -m bench.oversight [--codes N] [--calls N] [--json PATH] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import lmdb  # the raw baselines, beside (not through) tracecore.ledger
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb

from bench import harness, measure, report
from bench.harness import CHANNEL_OPTIONS, DEV_TENANT, HOST, pharmatrace_server, workdir
from bench.measure import settle
from bench.report import Result, Target, say
from tracecore.codes import Code, Scheme
from tracecore.events import Event, EventKind
from tracecore.keys import KeySource
from tracecore.ledger import lifecycle
from tracecore.ledger.observations import Observations
from tracecore.ledger.store import PoolRequest
from tracecore.ledger.tenants import LEDGER, TENANTS, DataDir
from tracecore.minting import Minter
from tracecore.oversight import Checks
from tracecore.status import Status
from tracecore.verification import ScanContext, Verifier

GTIN = "09501101530010"
LOT = "BENCH-RECALL"
DEFAULT_CODES = 1_000_000
DEFAULT_CALLS = 200
PHARMACIES = 100             # per province
VERIFY_BATCH = 10_000
VERIFY_ROUNDS = 15           # per setting, alternating
REQUEST_CODES = 100_000      # codes per lifecycle request, as a client would send them
T0 = 1_772_352_000_000
_COUNT = struct.Struct(">q")


@dataclass(frozen=True)
class Built:
    data: Path
    codes: list[str]
    seconds: float


# -- building a ledger ----------------------------------------------------------------------------


def build(data: Path, units: int) -> Built:
    """The tenant DEV_TENANT with one batch of ``units`` packs spread over the supply chain."""
    started = time.perf_counter()
    directory = DataDir(data, KeySource.dev())
    try:
        tenant = directory.create(DEV_TENANT, "Bench Pharma", T0)
        ledger = tenant.ledger
        ledger.register_product(cpb.Product(gtin=GTIN, name="Benchmarkol 10 mg"), T0)
        ledger.add_batch(cpb.Batch(product=GTIN, lot=LOT, expires_on="2031-12-31",
                                   authorised_regions=["44", "43"], materials=[
                                       cpb.MaterialLot(material="API", supplier="Bench Chem",
                                                       supplier_lot="BC-1")]), T0)
        parties = {"PLANT": ("110105", cpb.PARTY_KIND_PLANT, []),
                   "DIST-GD": ("440305", cpb.PARTY_KIND_DISTRIBUTOR, ["44"]),
                   "DIST-HN": ("430102", cpb.PARTY_KIND_DISTRIBUTOR, ["43"])}
        for province in ("44", "43"):
            for i in range(PHARMACIES):
                parties[f"PH-{province}-{i:03d}"] = (
                    f"{province}{i // 5 + 1:02d}{i % 5 + 1:02d}", cpb.PARTY_KIND_PHARMACY, [])
        for party_id, (region, kind, authorised) in parties.items():
            ledger.add_party(cpb.Party(party_id=party_id, name=party_id, region=region,
                                       kind=kind, authorised_regions=authorised), T0)
        key = tenant.keys.active
        serials = Minter(Scheme.GS1, GTIN, key.key_id, key.mac).mint(units)
        ledger.open_pool(PoolRequest("bench", GTIN, LOT, 1, units), key.key_id, T0)
        ledger.append_pool_codes("bench", 0, serials, key.key_id, T0, _no_redraw)
        codes = [Code(Scheme.GS1, GTIN, s) for s in serials]

        def apply(kind: EventKind, chunks: list[tuple[list[Code], str, str]], **fields: Any
                  ) -> None:
            requests = [lifecycle.Request([Event(kind, tuple(chunk), T0, party_id=party,
                                                 destination=to, **fields)])
                        for chunk, party, to in chunks]
            for start in range(0, len(requests), 50):
                for result in lifecycle.apply(ledger, requests[start:start + 50], T0):
                    assert result.applied, result.failures[:3] or result.error

        def split(part: list[Code], party: str, to: str = "") -> list[tuple[list[Code], str, str]]:
            return [(part[i:i + REQUEST_CODES], party, to)
                    for i in range(0, len(part), REQUEST_CODES)]

        n = units
        gd, hn = codes[:n // 2], codes[n // 2:n // 2 + n * 3 // 10]
        apply(EventKind.COMMISSION, split(codes, "PLANT"))
        apply(EventKind.SHIP, split(gd, "PLANT", "DIST-GD") + split(hn, "PLANT", "DIST-HN"))
        apply(EventKind.RECEIVE, split(gd, "DIST-GD") + split(hn, "DIST-HN"))
        for province, stock, distributor, share in (("44", gd, "DIST-GD", 2), ("43", hn, "DIST-HN",
                                                                               1)):
            each = n * share // 1000
            shipped = [(stock[i * each:(i + 1) * each], distributor, f"PH-{province}-{i:03d}")
                       for i in range(PHARMACIES)]
            apply(EventKind.SHIP, shipped)
            apply(EventKind.RECEIVE, [(chunk, to, "") for chunk, _, to in shipped])
            apply(EventKind.DECOMMISSION, [(chunk[:each // 4], to, "") for chunk, _, to
                                           in shipped], target=Status.DISPENSED)
    finally:
        directory.close()
    return Built(data, [c.text() for c in codes], time.perf_counter() - started)


def _no_redraw(n: int) -> list[str]:
    raise RuntimeError("a freshly minted serial collided")


# -- raw LMDB baselines ---------------------------------------------------------------------------


def _raw_env(data: Path) -> lmdb.Environment:
    return lmdb.open(str(data / TENANTS / DEV_TENANT / LEDGER), readonly=True, max_dbs=64,
                     lock=False, readahead=False)


def raw_batch_scan_seconds(data: Path) -> float:
    """Every code record of the batch read once: batch_codes dups, then each record."""
    env = _raw_env(data)
    try:
        index, codes = env.open_db(b"batch_codes", dupsort=True), env.open_db(b"codes")
        started = time.perf_counter()
        with env.begin(buffers=True) as txn:
            get = txn.get
            cursor = txn.cursor(db=index)
            cursor.first()
            n = sum(1 for key in cursor.iternext_dup(keys=False)
                    if get(bytes(key), db=codes) is not None)
        seconds = time.perf_counter() - started
    finally:
        env.close()
    if not n:
        raise RuntimeError("the raw scan found no codes")
    return seconds


def raw_counter_read_s(data: Path, prefix: bytes, db_name: bytes = b"counters") -> float:
    """One read transaction over the counters under ``prefix``: what the RPCs answer from."""
    env = _raw_env(data)
    try:
        db = env.open_db(db_name)
        samples = []
        for _ in range(200):
            started = time.perf_counter()
            with env.begin(buffers=True) as txn:
                cursor = txn.cursor(db=db)
                total = 0
                if cursor.set_range(prefix):
                    for key, value in cursor:
                        if bytes(key[:len(prefix)]) != prefix:
                            break
                        total += _COUNT.unpack(value)[0]
            samples.append(time.perf_counter() - started)
    finally:
        env.close()
    return statistics.median(samples)


# -- over gRPC ------------------------------------------------------------------------------------


def _latencies(call: Callable[[], object], calls: int, warm: int = 10) -> list[float]:
    for _ in range(warm):
        call()
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return sorted(out)


@dataclass
class Served:
    locate: list[float]
    report: list[float]
    recall_s: float = 0.0
    recall_again_s: float = 0.0
    report_after: list[float] | None = None
    recall_answer: lpb.BatchLocation | None = None
    elsewhere: float = 0.0          # cores other jobs kept busy while measuring


def serve_and_measure(data: Path, tmp: Path, calls: int, recall: bool, name: str) -> Served:
    with pharmatrace_server(data, tmp, workers=2, name=name) as server:
        issue = grpc.insecure_channel(f"{HOST}:{server.ports['issue']}", options=CHANNEL_OPTIONS)
        verify = grpc.insecure_channel(f"{HOST}:{server.ports['verify']}",
                                       options=CHANNEL_OPTIONS)
        trace = trace_pb2_grpc.TraceStub(verify)
        life = lifecycle_pb2_grpc.LifecycleStub(issue)
        locate = tpb.LocateBatchRequest(tenant=DEV_TENANT, product=GTIN, lot=LOT)
        report = tpb.RegionReportRequest(tenant=DEV_TENANT, level=tpb.REGION_LEVEL_COUNTY)
        settle()
        with measure.Elsewhere(server.pid) as elsewhere:
            served = Served(_latencies(lambda: trace.LocateBatch(locate, timeout=30), calls),
                            _latencies(lambda: trace.RegionReport(report, timeout=30), calls))
        served.elsewhere = elsewhere.cores
        if recall:
            request = lpb.RecallBatchRequest(tenant=DEV_TENANT, product=GTIN, lot=LOT,
                                             reason="bench: contaminated API lot")
            settle()
            started = time.perf_counter()
            answer = life.RecallBatch(request, timeout=60)
            served.recall_s = time.perf_counter() - started
            started = time.perf_counter()
            again = life.RecallBatch(request, timeout=60)
            served.recall_again_s = time.perf_counter() - started
            assert len(answer.event_seqs) == 1 and not again.event_seqs
            assert again.batches == answer.batches
            served.recall_answer = answer.batches[0]
            with measure.Elsewhere(server.pid) as elsewhere:
                served.report_after = _latencies(
                    lambda: trace.RegionReport(report, timeout=30), calls)
            served.elsewhere = max(served.elsewhere, elsewhere.cores)
        issue.close()
        verify.close()
    return served


# -- verification in-process ----------------------------------------------------------------------


def verify_rates(data: Path, codes: Sequence[str], tmp: Path) -> tuple[float, float]:
    """(codes per CPU second with checks, without): alternating rounds over fresh codes."""
    directory = DataDir(data, KeySource.dev(), readonly=True)
    try:
        tenant = directory.get(DEV_TENANT)
        observations = Observations(tmp / "observations", tenant=DEV_TENANT,
                                    code_key=b"bench-scan-statistics")
        on = Verifier(tenant, observations, None, Checks())
        off = Verifier(tenant, observations, None, Checks(diversion=False, clones=False))
        context = ScanContext("", 440106, 0)
        size = min(VERIFY_BATCH, len(codes) // (2 * (VERIFY_ROUNDS + 1)))
        batches = [list(codes[i:i + size])
                   for i in range(0, size * 2 * (VERIFY_ROUNDS + 1), size)]
        on.verify(batches[0], context, T0)        # warm caches (batch, product, keys)
        off.verify(batches[1], context, T0)
        rates: dict[bool, list[float]] = {True: [], False: []}
        settle()
        for round_ in range(VERIFY_ROUNDS * 2):
            checks = round_ % 2 == 0
            batch = batches[2 + round_]
            started = time.process_time()
            (on if checks else off).verify(batch, context, T0 + round_)
            rates[checks].append(len(batch) / (time.process_time() - started))
            observations.flush()
        observations.close()
    finally:
        directory.close()
    return statistics.median(rates[True]), statistics.median(rates[False])


# -- the run --------------------------------------------------------------------------------------


def run(codes: int = DEFAULT_CODES, calls: int = DEFAULT_CALLS, keep: bool = False
        ) -> list[Result]:
    results: list[Result] = []
    with workdir("oversight", keep) as tmp:
        say(f"oversight: building a ledger of {codes:,} packs in-process ...")
        big = build(tmp / "big", codes)
        say(f"oversight: built in {big.seconds:,.0f} s; and one of {codes // 100:,} ...")
        small = build(tmp / "small", codes // 100)

        say("oversight: verification in-process, checks on and off ...")
        with_checks, without = verify_rates(big.data, big.codes, tmp)
        results.append(Result(
            bench="oversight", name="Verifier.verify, diversion + clone checks on",
            unit="codes/CPU s", figure=with_checks, baseline=without,
            baseline_name="checks off",
            key="oversight.verify_checks", targets=[Target("min_ratio", 0.9)],
            details={"batch": VERIFY_BATCH, "rounds": VERIFY_ROUNDS}))

        say("oversight: raw LMDB baselines ...")
        scan_s = raw_batch_scan_seconds(big.data)
        batch_prefix = b"S" + struct.pack(">I", 1)
        locate_raw = raw_counter_read_s(big.data, batch_prefix)
        report_raw = raw_counter_read_s(big.data, b"P" + struct.pack(">I", 1))

        say(f"oversight: LocateBatch / RegionReport on the {codes // 100:,}-pack ledger ...")
        few = serve_and_measure(small.data, tmp, calls, recall=False, name="small")
        say(f"oversight: LocateBatch / RegionReport / RecallBatch on the {codes:,}-pack "
            "ledger ...")
        many = serve_and_measure(big.data, tmp, calls, recall=True, name="big")
        answer = many.recall_answer
        assert answer is not None

        results.append(Result(
            bench="oversight", name=f"RecallBatch of {codes:,} packs, with where they are",
            unit="s", figure=many.recall_s, baseline=scan_s,
            baseline_name="raw LMDB read of every record", key="oversight.recall",
            targets=[Target("max", 2.0)],
            details={"units": answer.units, "holders": len(answer.holders),
                     "again_s": many.recall_again_s}))
        for name, key, figures, baseline_small, raw in (
                ("LocateBatch", "locate", many.locate, few.locate, locate_raw),
                ("RegionReport (county)", "report", many.report, few.report, report_raw)):
            p50, p99 = report.percentile(figures, 0.5), report.percentile(figures, 0.99)
            results.append(Result(
                bench="oversight", name=f"{name} p50 @ {codes:,} packs", unit="ms",
                figure=p50 * 1000, baseline=report.percentile(baseline_small, 0.5) * 1000,
                baseline_name=f"same @ {codes // 100:,}", key=f"oversight.{key}.p50",
                elsewhere=max(many.elsewhere, few.elsewhere), targets=[Target("max", 50.0)],
                details={"p99_ms": p99 * 1000, "calls": calls}))
            results.append(Result(
                bench="oversight", name=f"{name} p99 @ {codes:,} packs", unit="ms",
                figure=p99 * 1000, baseline=raw * 1000, baseline_name="raw LMDB counter read",
                key=f"oversight.{key}.p99", elsewhere=many.elsewhere,
                targets=[Target("max", 50.0)]))
        assert many.report_after is not None
        for q in (0.5, 0.99):
            results.append(Result(
                bench="oversight", name=f"RegionReport p{q * 100:.0f} after the recall",
                unit="ms", figure=report.percentile(many.report_after, q) * 1000,
                baseline=report.percentile(many.report, q) * 1000,
                baseline_name="before the recall", key=f"oversight.report_after.p{q * 100:.0f}",
                elsewhere=many.elsewhere, targets=[Target("max", 50.0)]))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.oversight",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--codes", type=int, default=DEFAULT_CODES,
                        help="packs in the recalled batch (default 1,000,000)")
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS,
                        help="LocateBatch / RegionReport calls measured per ledger")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data and server logs")
    parser.add_argument("--quiet-wait", type=float, default=30.0, metavar="S",
                        help="wait up to S seconds for idle cores before each measurement")
    args = parser.parse_args(argv)
    if args.codes < 100_000:
        parser.error("--codes must be at least 100,000 (the small ledger is 1/100 of it)")
    harness.exit_on_sigterm()
    measure.quiet_wait_s = args.quiet_wait
    results = run(args.codes, args.calls, args.keep)
    print(report.table(results))
    if args.json:
        report.write_json(Path(args.json), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
