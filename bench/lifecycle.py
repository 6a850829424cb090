"""Lifecycle benchmarks: bulk capture, shipping a pallet, tracing a pack; each against a raw LMDB
baseline measured in the same run.

Every figure comes from a real `pharmatrace serve` subprocess (bench.harness), driven over gRPC
from this process, each section on a fresh server and data directory:

capture  CaptureEvents throughput, in pack state changes per second of the whole stream (from the
         first message sent to the answer, so parsing, the group commit and its fsync are in).
         Stream 1 commissions ``capture_codes`` issued codes in events of ``event_codes`` codes,
         ``events_per_message`` events a message; stream 2 ships half of them to another party
         and dispenses the other half. Baseline: as many raw read-modify-writes of 52-byte code
         records in one LMDB transaction (get, struct unpack, pack, put; commit with fsync), no
         gRPC, no domain logic. For scale: an open-source Python EPCIS repository captures
         roughly 750 EPCs/s on this class of machine (quoted, not run here).
pallet   One Ship RPC naming one pallet code (10 cases x 1,000 units, aggregated through the
         Lifecycle API; ``--pallet-cases`` sets the cases): client-side latency, p50 and max
         over ``pallets`` x ``rounds`` ships, then the same for Receive. Baseline: raw
         read-modify-writes of as many records (10,011) in one transaction with fsync.
trace    TraceCode latency (verify_svc) for a pack with >= 20 events in its history (its own,
         and its case's and pallet's while it was inside them) in a ledger of ``trace_codes``
         codes issued through RequestCodes. Baseline: the raw LMDB reads the answer needs (the
         code record, the event index of the pack, its case and pallet, every event record's
         bytes, the parent chain) in one read transaction; ``history.trace`` in this process is
         shown beside it, to split gRPC and response building from the ledger work.

The raw baselines store their records in an environment padded with random others to the size of
the server's ledger in that section, so both commits write comparable numbers of pages.

Latency ratios are figure / baseline (how many times the raw work); throughput ratios are
figure / baseline (the share of the raw rate reached). This machine may be shared: each figure's
details in the JSON carry the server's CPU time for the window and ``others_cores``, the cores
busy with other work meanwhile; CPU per operation is the figure least skewed by neighbours.

    python -m bench.lifecycle                          all sections, default sizes (~1 min)
    python -m bench.lifecycle trace --trace-codes 10000000   the full TraceCode ledger (~4 min)
    python -m bench.lifecycle capture --profile DIR    py-spy stacks of the server per window
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import measure
from bench.harness import (
    exit_on_sigterm,
    workdir,
)
from bench.lifecycle_capture import (
    DEFAULT_CAPTURE_CODES,
    DEFAULT_EVENT_CODES,
    DEFAULT_EVENTS_PER_MESSAGE,
    run_capture,
)
from bench.lifecycle_pallet import CASES_PER_PALLET, DEFAULT_PALLETS, DEFAULT_ROUNDS, run_pallet
from bench.lifecycle_trace import (
    DEFAULT_TRACE_CALLS,
    DEFAULT_TRACE_CASE_UNITS,
    DEFAULT_TRACE_CODES,
    FULL_TRACE_CODES,
    run_trace,
)
from bench.report import Result, machine, table

SECTIONS = ("capture", "pallet", "trace")



def run(
    sections: Sequence[str] = SECTIONS,
    *,
    capture_codes: int = DEFAULT_CAPTURE_CODES,
    event_codes: int = DEFAULT_EVENT_CODES,
    events_per_message: int = DEFAULT_EVENTS_PER_MESSAGE,
    pallets: int = DEFAULT_PALLETS,
    rounds: int = DEFAULT_ROUNDS,
    pallet_cases: int = CASES_PER_PALLET,
    trace_codes: int = DEFAULT_TRACE_CODES,
    trace_calls: int = DEFAULT_TRACE_CALLS,
    trace_case_units: int = DEFAULT_TRACE_CASE_UNITS,
    workers: int = 1,
    keep: bool = False,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Runs the chosen sections; {"results": [report.Result], "params": {...}}."""
    params = {"sections": list(sections), "capture_codes": capture_codes,
              "event_codes": event_codes, "events_per_message": events_per_message,
              "pallets": pallets, "rounds": rounds, "pallet_cases": pallet_cases,
              "trace_codes": trace_codes,
              "trace_calls": trace_calls, "trace_case_units": trace_case_units,
              "workers": workers}
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    results: list[Result] = []
    # Other work on this machine skews every figure: the load average goes into the JSON.
    params["loadavg_before"] = os.getloadavg()
    with workdir("lifecycle", keep) as tmp:
        if "capture" in sections:
            results += run_capture(tmp, capture_codes, event_codes, events_per_message, workers,
                                   profile)
        if "pallet" in sections:
            results += run_pallet(tmp, pallets, rounds, workers, profile, pallet_cases)
        if "trace" in sections:
            results += run_trace(tmp, trace_codes, trace_calls, trace_case_units, workers,
                                 profile)
    params["loadavg_after"] = os.getloadavg()
    return {"bench": "lifecycle", "results": results, "params": params}



def add_arguments(p: argparse.ArgumentParser) -> None:
    """This benchmark's own options (sections and sizes); ``--json``, ``--keep`` and
    ``--profile`` are left to the caller, as `python -m bench` has them already."""
    p.add_argument("sections", nargs="*", metavar="SECTION",
                   help=f"any of {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--capture-codes", type=int, default=DEFAULT_CAPTURE_CODES)
    p.add_argument("--event-codes", type=int, default=DEFAULT_EVENT_CODES,
                   help="codes per captured event")
    p.add_argument("--events-per-message", type=int, default=DEFAULT_EVENTS_PER_MESSAGE)
    p.add_argument("--pallets", type=int, default=DEFAULT_PALLETS)
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help="ship + receive rounds over all pallets")
    p.add_argument("--pallet-cases", type=int, default=CASES_PER_PALLET,
                   help="cases of 1,000 units on each pallet (how ship and receive scale)")
    p.add_argument("--trace-codes", type=int, default=DEFAULT_TRACE_CODES,
                   help=f"codes in the trace ledger (full run: {FULL_TRACE_CODES:,})")
    p.add_argument("--trace-calls", type=int, default=DEFAULT_TRACE_CALLS)
    p.add_argument("--trace-case-units", type=int, default=DEFAULT_TRACE_CASE_UNITS,
                   help="units commissioned and packed with the traced pack")
    p.add_argument("--trace-workers", type=int, default=1,
                   help="verification worker processes of each server")
    if not any(a.dest == "quiet_wait" for a in p._actions):
        p.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                       help="before each measured step, wait up to S s for the other cores to "
                            "go idle (default 0: measure at once)")



def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``run`` with the options of ``add_arguments`` (and ``keep``, ``profile`` if present)."""
    measure.quiet_wait_s = getattr(args, "quiet_wait", measure.quiet_wait_s)
    return run(
        args.sections or SECTIONS, capture_codes=args.capture_codes,
        event_codes=args.event_codes, events_per_message=args.events_per_message,
        pallets=args.pallets, rounds=args.rounds, pallet_cases=args.pallet_cases,
        trace_codes=args.trace_codes,
        trace_calls=args.trace_calls, trace_case_units=args.trace_case_units,
        workers=args.trace_workers, keep=getattr(args, "keep", False),
        profile=getattr(args, "profile", None),
    )



def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy the server (and its workers) in each measured window into DIR")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    return p



def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    exit_on_sigterm()
    out = run_from_args(args)
    results: list[Result] = out["results"]
    command = " ".join(["python", "-m", "bench.lifecycle", *(argv if argv is not None
                                                             else sys.argv[1:])])
    for r in results:
        r.command = command
    print(table(results))
    if args.json:
        payload = {"command": command, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "machine": machine(), "params": out["params"],
                   "results": [r.as_json() for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0



if __name__ == "__main__":
    sys.exit(main())
