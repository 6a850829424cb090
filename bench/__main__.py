"""`python -m bench`: run benchmarks, print figure / baseline / ratio / target, optionally as JSON.

    python -m bench all [--sizes N,N]         codec + issue + verify at default sizes, the
                                              capture, lines and day scenarios, and the curves
                                              (bench/curves.py) charted in bench/out/verify.png
    python -m bench issue [--count N] [--big] RequestCodes; --big adds the 10,000,000-code RSS run
    python -m bench verify [--codes N] [--workers 1,2] [--seconds S]
    python -m bench verify-one [--codes N]    one code verified in-process (a consumer's first
                                              check, a repeat, a supply-chain scan): CPU µs
                                              beside parse + tag check + LMDB get of that code
    python -m bench codec [--n N]
    python -m bench cli [--codes N]           `pharmatrace verify --file --json` against the
                                              VerifyBatch rate of one client, same server
    python -m bench line [--seconds S] [--cap N] lines at 400 packs/min one server sustains
                                              with commission-to-ledger lag p99 under 1 s
    python -m bench printing [--n N]          print jobs in-process: symbols per second per
                                              output kind (ZPL, CSV, SVG, PNG, PDF), sealing,
                                              and a ZPL job over PrintPool
    python -m bench scenarios [NAME ...]      verify, capture, lines, day, soak: consumers and
                                              distributors, lifecycle capture, packaging lines
                                              beside consumers, a working day, a 5-minute soak
    python -m bench scale --data DIR          build a 100,000,000-code ledger in DIR (resumes),
                                              then verify against it and a 1,000,000-code one
    python -m bench replication [--writes N] [--codes N]
                                              NATS JetStream: replicated vs local commit, replica
                                              apply rate and lag under load
    python -m bench http [--workers 1,2]      resolver redirects and check-page views against a
                                              hello-world on the same stack; LVMS p99 at half
                                              its maximum rate, and where in time its tail is
    python -m bench epcisrest [--events N]    POST /epcis/capture beside gRPC CaptureEvents of the
                                              same events; webhook lag p50 / p99
    python -m bench fairness [--events N]     another tenant's write p99 while one tenant
                                              imports an EPCIS document of N events
    python -m bench ci                        short run; exits 1 when a ratio passes its limit

Every command takes ``--json PATH``, ``--keep`` (keep the temporary data directory and server
logs) and ``--quiet-wait S`` (wait up to S seconds before each measurement for other jobs to
leave the cores idle; the table's last column says how many cores they kept busy anyway). issue,
verify and all take ``--profile DIR`` (py-spy collapsed stacks of the server in each measured
window, summarised on stderr) and ``--repeat N`` (each figure and baseline is the best of N
measurements). Only ``ci`` judges: the others print figures, and a missed target is a row marked
MISS, not an exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import (
    chart,
    cli,
    curves,
    harness,
    issue,
    measure,
    report,
    scale,
    scenarios,
    verify,
    verify_one,
)
from bench.lifecycle_capture import (
    DEFAULT_EVENT_CODES,
    DEFAULT_EVENTS_PER_MESSAGE,
    run_capture,
)
from bench.lifecycle_pallet import run_pallet
from bench.report import Result, say

FLOORS = Path(__file__).with_name("floors.json")
CI_CODES = 200_000
CI_SECONDS = 3.0
#: Pallets of 10,011 packs shipped and received, and how many times each, in ``ci``.
CI_PALLETS = 2
CI_PALLET_ROUNDS = 3
#: Codes commissioned, then shipped or dispensed, in ``ci``'s CaptureEvents streams.
CI_CAPTURE_CODES = 50_000
ISSUE_REPEAT = 3
VERIFY_REPEAT = 2
ALL_SCENARIOS = ("capture", "lines", "day")
"""What `all` (`make bench`) runs of bench/scenarios.py; the soak and the 100M-code ledger take
long enough to be run on their own."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not hasattr(args, "run"):
        _parser().print_help()
        return 2
    harness.exit_on_sigterm()
    measure.quiet_wait_s = args.quiet_wait
    started = time.monotonic()
    code: int = args.run(args)
    say(f"bench: {time.monotonic() - started:,.0f} s")
    return code


def _issue(args: argparse.Namespace) -> int:
    results = issue.run(args.count, big=args.big, keep=args.keep, profile=args.profile,
                        repeat=args.repeat or ISSUE_REPEAT)
    return _report(args, results)


def _verify(args: argparse.Namespace) -> int:
    results = verify.run(_verify_options(args))
    return _report(args, results)


def _verify_one(args: argparse.Namespace) -> int:
    figures = verify_one.run(args.codes, args.rounds, args.keep)
    print(verify_one.table(figures))
    if args.json:
        report.write_json(Path(args.json), [], {"verify_one_cpu_us": figures})
    return 0


def _cli(args: argparse.Namespace) -> int:
    results = cli.run(args.codes, batch=args.batch, seconds=args.seconds, keep=args.keep)
    return _report(args, results)


def _codec(args: argparse.Namespace) -> int:
    figures = _run_codec(args.n)
    if args.json:
        report.write_json(Path(args.json), [], {"codec": figures})
    return 0


def _all(args: argparse.Namespace) -> int:
    figures = _run_codec(args.n)
    results = issue.run(args.count, big=args.big, keep=args.keep, profile=args.profile,
                        repeat=args.repeat or ISSUE_REPEAT)
    results += verify.run(_verify_options(args))
    results += scenarios.run(ALL_SCENARIOS, scenarios.Options(keep=args.keep))
    found = curves.run(curves.Options(sizes=curves.parse_sizes(args.sizes), keep=args.keep))
    print("\n".join(curves.summary(found)))
    say(f"bench: wrote {chart.write(found, chart.OUT / 'verify.png')}")
    return _report(args, results, {"codec": figures, "curves": found.as_json()})


def _replication(args: argparse.Namespace) -> int:
    from bench import replication

    results = replication.run(args.writes, args.codes, args.lag_samples, keep=args.keep)
    replication.report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _ci(args: argparse.Namespace) -> int:
    """Ratios only (absolute rates depend on the machine): each figure / baseline at or above
    its floor, each CPU-per-unit ratio at or below its ceiling."""
    limits = json.loads(FLOORS.read_text())
    floors: dict[str, float] = limits["floors"]
    ceilings: dict[str, float] = limits.get("ceilings", {})
    results = issue.run(CI_CODES, keep=args.keep, repeat=2)
    results += verify.run(verify.Options(codes=CI_CODES, workers=(2,), seconds=CI_SECONDS,
                                         warmup=1.0, latency=False, repeat=2, keep=args.keep))
    with harness.workdir("ci-capture", args.keep) as tmp:
        results += run_capture(tmp, CI_CAPTURE_CODES, DEFAULT_EVENT_CODES,
                               DEFAULT_EVENTS_PER_MESSAGE, 1, None)
    with harness.workdir("ci-pallet", args.keep) as tmp:
        results += run_pallet(tmp, CI_PALLETS, CI_PALLET_ROUNDS, 1, None)
    _report(args, results)
    ratios = {r.key: r.ratio for r in results}
    failed = []
    print()
    for key, limit, is_floor in [*((k, v, True) for k, v in floors.items()),
                                 *((k, v, False) for k, v in ceilings.items())]:
        ratio = ratios.get(key)
        if ratio is None:
            failed.append(f"{key}: not measured")
            continue
        ok = ratio >= limit if is_floor else ratio <= limit
        kind = "floor" if is_floor else "ceiling"
        print(f"{key:<30} ratio {ratio:7.1%}   {kind:<7} {limit:7.1%}   {'ok' if ok else 'FAILED'}")
        if not ok:
            side = "below its floor" if is_floor else "above its ceiling"
            failed.append(f"{key}: ratio {ratio:.1%} is {side} {limit:.1%}")
    if failed:
        print("\nbench ci: FAILED\n  " + "\n  ".join(failed))
        return 1
    print(f"\nbench ci: every ratio is within its limit ({FLOORS.name})")
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    options = scenarios.Options(
        codes=args.codes, workers=args.workers, seconds=args.seconds, lines=args.lines,
        pool=args.pool, soak_seconds=args.soak_seconds, keep=args.keep)
    return _report(args, scenarios.run(args.names or scenarios.SCENARIOS, options))


def _scale(args: argparse.Namespace) -> int:
    """Builds (or finishes building) the ledger in --data, then compares verification on it
    with a 1M-code ledger unless --build-only."""
    data: Path = args.data
    data.mkdir(parents=True, exist_ok=True)
    say(f"scale: building a ledger of {args.codes:,} codes in {data} "
        f"({args.lines} lines, pools of {args.pool:,}) ...")
    report = scale.build(data, data, codes=args.codes, pool=args.pool, lines=args.lines)
    results = scale.build_results(report, args.codes)
    if not args.build_only:
        results += scale.compare(data, scale.VerifyOptions(
            small_codes=args.small_codes, seconds=args.seconds, workers=args.workers,
            keep=args.keep))
    return _report(args, results)


def _run_codec(n: int) -> Any:
    """bench/codec.py (in-process code formats): its own figures and table."""
    from bench import codec

    say(f"codec: {n:,} codes per scheme ...")
    measure.settle()
    figures = codec.run(n)
    print(codec.table(figures))
    print()
    return figures


def _epcisrest(args: argparse.Namespace) -> int:
    from bench import epcisrest

    with harness.workdir("epcisrest", args.keep) as tmp:
        return _report(args, epcisrest.run(tmp, args.events))


def _fairness(args: argparse.Namespace) -> int:
    from bench import fairness

    with harness.workdir("fairness", args.keep) as tmp:
        return _report(args, fairness.run(tmp, args.events))


def _http(args: argparse.Namespace) -> int:
    from bench import http

    results = http.run([int(w) for w in args.workers.split(",")], args.seconds, args.codes,
                       args.keep, args.profile)
    code = _report(args, results)
    print(http.details(results))
    return code


def _printing(args: argparse.Namespace) -> int:
    from bench import printing

    say(f"printing: {args.n:,} symbols for ZPL and CSV, a share of them for the others ...")
    measure.settle()
    rows = printing.run(args.n)
    if args.rpc_n:
        say(f"printing: a pool of {args.rpc_n:,} codes as ZPL over PrintPool ...")
        rows.append(printing.rpc(args.rpc_n))
    print(printing.table(rows))
    if args.json:
        report.write_json(Path(args.json), [], {"printing": rows})
    return 0


def _line(args: argparse.Namespace) -> int:
    from bench import line

    steps = line.run(args.seconds, args.cap)
    print(line.table(steps))
    most = line.sustained(steps)
    capped = " (the cap: more were not tried)" if most == steps[-1].lines >= args.cap else ""
    print(f"baseline (1 line): lag p99 {steps[0].lag_p99_ms:.1f} ms; lines sustained at "
          f"{line.PACKS_PER_MIN}/min with lag p99 under 1 s and at least "
          f"{line.KEPT_RATE_MIN:.0%} of the rate kept: {most}{capped}")
    return 0


def _verify_options(args: argparse.Namespace) -> verify.Options:
    return verify.Options(
        codes=args.codes, workers=tuple(int(w) for w in str(args.workers).split(",")),
        seconds=args.seconds, batch=args.batch, clients=args.clients,
        unary_concurrency=args.concurrency, repeat=args.repeat or VERIFY_REPEAT, keep=args.keep,
        profile=args.profile,
    )


def _report(args: argparse.Namespace, results: list[Result], extra: dict[str, Any] | None = None
            ) -> int:
    print(report.table(results))
    loads = report.load_table(results)
    if loads:
        print(f"\n{loads}")
    if args.json:
        report.write_json(Path(args.json), results, extra)
        say(f"bench: wrote {args.json}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(title="benchmarks")

    def command(name: str, run: Any, help_text: str, quiet_wait: float = 30.0
                ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(run=run)
        sub.add_argument("--json", metavar="PATH", help="also write the results as JSON")
        sub.add_argument("--keep", action="store_true",
                         help="keep the temporary data directory and server logs")
        sub.add_argument("--quiet-wait", type=float, default=quiet_wait, metavar="S",
                         help="before each measurement wait up to S seconds for other jobs to "
                              f"leave the cores idle (default {quiet_wait:g})")
        return sub

    def issue_args(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--count", type=int, default=issue.DEFAULT_COUNT,
                         help="codes in the measured pool (default 1,000,000)")
        sub.add_argument("--big", action="store_true",
                         help=f"also stream {issue.BIG_COUNT:,} codes and report peak RSS")

    def verify_args(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--codes", type=int, default=verify.DEFAULT_CODES,
                         help="codes issued into the ledger first (default 1,000,000)")
        sub.add_argument("--workers", default="1,2",
                         help="verification worker counts to measure, comma-separated")
        sub.add_argument("--seconds", type=float, default=verify.DEFAULT_SECONDS,
                         help="length of each measured window")
        sub.add_argument("--batch", type=int, default=verify.DEFAULT_BATCH,
                         help="codes per VerifyBatch request")
        sub.add_argument("--clients", type=int, default=2, help="client processes")
        sub.add_argument("--concurrency", type=int, default=32,
                         help="unary calls in flight per client process")

    def profile_arg(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--profile", metavar="DIR", type=Path,
                         help="py-spy the server in each measured window into DIR")
        sub.add_argument("--repeat", type=int,
                         help="each figure and baseline is the best of this many measurements "
                              f"(default {ISSUE_REPEAT} for issue, {VERIFY_REPEAT} for verify)")

    sub = command("issue", _issue, "RequestCodes against in-process mint + putmulti")
    issue_args(sub)
    profile_arg(sub)
    sub = command("verify", _verify, "VerifyBatch and Verify against in-process and echo")
    verify_args(sub)
    profile_arg(sub)
    sub = command("verify-one", _verify_one, "one code verified in-process (bench/verify_one.py)",
                  quiet_wait=0.0)
    sub.add_argument("--codes", type=int, default=verify_one.DEFAULT_CODES,
                     help="packs commissioned, each verified once per case")
    sub.add_argument("--rounds", type=int, default=verify_one.DEFAULT_ROUNDS,
                     help="figures are the median of this many rounds")
    sub = command("cli", _cli, "pharmatrace verify --file against VerifyBatch (bench/cli.py)")
    sub.add_argument("--codes", type=int, default=cli.DEFAULT_CODES,
                     help="codes issued, then verified by the command (default 1,000,000)")
    sub.add_argument("--batch", type=int, default=cli.DEFAULT_BATCH,
                     help="codes per VerifyBatch request and per message of the command")
    sub.add_argument("--seconds", type=float, default=cli.DEFAULT_SECONDS,
                     help="length of the VerifyBatch window")
    sub = command("codec", _codec, "code formats in-process (bench/codec.py)")
    sub.add_argument("--n", type=int, default=200_000, help="codes per scheme")
    sub = command("epcisrest", _epcisrest, "EPCIS REST capture against gRPC CaptureEvents")
    sub.add_argument("--events", type=int, default=2000,
                     help="events of 10 codes captured by each path (default 2,000)")
    sub = command("fairness", _fairness, "another tenant's writes during a large EPCIS import")
    sub.add_argument("--events", type=int, default=10_000,
                     help="events of the imported document (default 10,000)")
    sub = command("http", _http, "the HTTP front door against a hello-world (bench/http.py)")
    sub.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    sub.add_argument("--seconds", type=float, default=5.0, help="length of each window")
    sub.add_argument("--codes", type=int, default=20_000, help="packs commissioned first")
    sub.add_argument("--profile", metavar="DIR", type=Path,
                     help="py-spy the server in each measured window into DIR")
    sub = command("printing", _printing, "print jobs in-process (bench/printing.py)")
    sub.add_argument("--n", type=int, default=200_000, help="symbols of the ZPL and CSV rows")
    sub.add_argument("--rpc-n", type=int, default=100_000,
                     help="codes printed over PrintPool from a real server (0: skip)")
    sub = command("line", _line, "simulated packaging lines against one server (bench/line.py)")
    sub.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    sub.add_argument("--cap", type=int, default=64, help="most lines tried")
    sub = command("all", _all, "codec, issue, verify and the capture, lines and day scenarios, "
                  f"then the curves and {chart.OUT}/verify.png")
    sub.add_argument("--n", type=int, default=200_000, help="codec: codes per scheme")
    sub.add_argument("--sizes", default=",".join(str(s) for s in curves.SIZES),
                     help="ledger sizes of the throughput curve, comma-separated "
                          "(default 1M and 10M codes)")
    issue_args(sub)
    verify_args(sub)
    profile_arg(sub)
    sub = command("scenarios", _scenarios, "consumers, distributors, capture, lines, a day, a soak",
                  quiet_wait=0.0)
    sub.add_argument("names", nargs="*", metavar="SCENARIO",
                     help=f"any of {', '.join(scenarios.SCENARIOS)} (default: all)")
    sub.add_argument("--codes", type=int, default=scenarios.DEFAULT_CODES,
                     help="codes issued into each ledger first (default 1,000,000)")
    sub.add_argument("--workers", type=int, default=2, help="verification worker processes")
    sub.add_argument("--seconds", type=float, default=scenarios.DEFAULT_SECONDS,
                     help="length of each measured window but the soak's")
    sub.add_argument("--lines", type=int, default=2, help="lines: packaging lines at once")
    sub.add_argument("--pool", type=int, default=100_000, help="codes per requested pool")
    sub.add_argument("--soak-seconds", type=float, default=scenarios.DEFAULT_SOAK_SECONDS,
                     help="length of the soak's window (default 300)")
    sub = command("scale", _scale, "a 100M-code ledger: build it, then verify against it",
                  quiet_wait=0.0)
    sub.add_argument("--data", type=Path, required=True,
                     help="where the big ledger is built and kept (about 0.3 GiB per 1M codes)")
    sub.add_argument("--codes", type=int, default=scale.DEFAULT_CODES)
    sub.add_argument("--pool", type=int, default=scale.DEFAULT_POOL, help="codes per pool")
    sub.add_argument("--lines", type=int, default=2, help="packaging lines requesting at once")
    sub.add_argument("--build-only", action="store_true", help="build, do not verify")
    sub.add_argument("--small-codes", type=int, default=1_000_000,
                     help="codes in the ledger compared with (default 1,000,000)")
    sub.add_argument("--workers", type=int, default=2, help="verification worker processes")
    sub.add_argument("--seconds", type=float, default=10.0, help="length of each window")
    sub = command("replication", _replication, "NATS JetStream: replicated commit beside local "
                  "commit, replica apply rate, lag under load", quiet_wait=0.0)
    sub.add_argument("--writes", type=int, default=300, help="unary writes per mode")
    sub.add_argument("--codes", type=int, default=200_000, help="codes per mode")
    sub.add_argument("--lag-samples", type=int, default=100, help="pools timed to the replica")
    command("ci", _ci, f"short run; ratios against {FLOORS.name}, exit 1 past a limit",
            quiet_wait=2.0)
    return parser


if __name__ == "__main__":
    sys.exit(main())
