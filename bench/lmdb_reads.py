"""A VerifyBatch's LMDB reads through LMDB's C API (``tracecore/_speedups/_mdb.pyx``) against
the same reads through py-lmdb's methods, in one process, the two taking turns.

Set-up: ``bench.verify_one``'s tenant with ``--codes`` packs commissioned, opened read-only as
a verification worker opens it, with the worker's collector settings (``tracerpc.runtime``).
Each round, for each path: ``Verifier.verify`` of 10,000 codes drawn at random (a public
check, then a supply-chain scan with a region), and the flush of the scans they counted; CPU
time of this process per code, median of ``--rounds`` rounds. The order of the two paths
alternates from round to round, so that both see the statistics grow alike.

Baseline: the same verification with py-lmdb's methods (the loops as they were), and
``bench.verify``'s in-process loop (parse, tag check, one py-lmdb ``get`` a code) over the
same kind of batch, the yardstick of ``verify.batch_cpu``.

    python -m bench.lmdb_reads [--codes N] [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import workdir
from bench.measure import settle
from bench.report import say
from bench.verify_one import GUANGZHOU, T0, build
from tracecore._speedups import load
from tracecore.codes import parse_many, parsed_codes
from tracecore.keys import KeySource
from tracecore.ledger.observations import Observations
from tracecore.ledger.tenants import DataDir
from tracecore.minting import check_tags
from tracecore.oversight import Checks
from tracecore.verification import ScanContext, Verifier
from tracerpc.runtime import tune

BATCH = 10_000
DEFAULT_CODES = 200_000
DEFAULT_ROUNDS = 8
PATHS = {"C API": True, "py-lmdb": False}


def _cpu_us(fn: Callable[[], object], n: int) -> float:
    """CPU microseconds of this process per unit of ``fn()`` over ``n`` units."""
    started = time.process_time()
    fn()
    return (time.process_time() - started) / n * 1e6


def run(codes: int = DEFAULT_CODES, rounds: int = DEFAULT_ROUNDS, keep: bool = False
        ) -> dict[str, list[float]]:
    """Every round's CPU µs a code of each case, by name."""
    mdb = load("_mdb")
    if mdb is None:
        raise SystemExit("the compiled extension is not built, or PHARMATRACE_PURE is set")
    figures: dict[str, list[float]] = {}
    with workdir("lmdb-reads", keep) as tmp:
        say(f"lmdb-reads: commissioning {codes:,} packs in-process ...")
        texts = build(tmp / "data", codes)
        directory = DataDir(tmp / "data", KeySource.dev(), readonly=True)
        observations = Observations(tmp / "observations", tenant="t",
                                    code_key=b"bench-scan-statistics")
        try:
            tenant = directory.get("t")
            verifier = Verifier(tenant, observations, None, Checks())
            ledger, macs = tenant.ledger, tenant.keys.macs()
            codes_db = ledger.db["codes"]
            contexts = {"public": ScanContext(purpose=1),
                        "supply chain": ScanContext("PHARM", GUANGZHOU, 2)}

            def in_process(batch: list[str]) -> None:
                _, codes, keys = parsed_codes(parse_many(batch))
                check_tags(codes, macs)
                stored = ledger.codes.stored_many(keys)
                with ledger.env.read() as txn:
                    get = txn.get
                    for key in stored:
                        get(key, db=codes_db)

            tune()
            verifier.verify(texts[:10], contexts["public"], T0)  # product, batch, party caches
            observations.flush()
            draw = random.Random(17)
            for r in range(rounds):
                order = list(PATHS.items()) if r % 2 == 0 else list(PATHS.items())[::-1]
                for path, on in order:
                    mdb.use(on)
                    settle()
                    for name, context in contexts.items():
                        batch = draw.sample(texts, BATCH)
                        figures.setdefault(f"verify, {name} [{path}]", []).append(_cpu_us(
                            functools.partial(verifier.verify, batch, context, T0), BATCH))
                    figures.setdefault(f"flush of its scans [{path}]", []).append(
                        _cpu_us(observations.flush, len(contexts) * BATCH))
                mdb.use(True)
                batch = draw.sample(texts, BATCH)
                figures.setdefault("in-process loop", []).append(
                    _cpu_us(functools.partial(in_process, batch), BATCH))
                say(f"lmdb-reads: round {r + 1} of {rounds}")
        finally:
            mdb.use(True)
            observations.close()
            directory.close()
    return figures


def table(figures: dict[str, list[float]]) -> str:
    """Each case's median beside the same case through py-lmdb's methods."""
    median = {name: statistics.median(values) for name, values in figures.items()}
    yardstick = median["in-process loop"]
    lines = [f"{'case':<34} {'CPU us/code':>11} {'x py-lmdb':>10} {'x in-process':>13}"]
    for name, us in median.items():
        same = name.replace("[C API]", "[py-lmdb]")
        ratio = f"{us / median[same]:>10.3f}" if same != name and same in median else " " * 10
        lines.append(f"{name:<34} {us:>11.2f} {ratio} {us / yardstick:>13.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lmdb_reads", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codes", type=int, default=DEFAULT_CODES, help="packs commissioned")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--json", type=Path, help="also write every round's figures as JSON")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.codes, args.rounds, args.keep)
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
