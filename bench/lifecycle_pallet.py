"""The pallet section of ``bench.lifecycle``: one Ship or Receive RPC naming a whole pallet,
against raw read-modify-writes of its packs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import (
    trace_pb2,
)

from bench.harness import (
    DEV_TENANT,
)
from bench.lifecycle_rig import Client, Window, code_keys, ctx, lifecycle_server, raw_rmw_seconds
from bench.measure import profiling, settle
from bench.report import Result, Target, percentile, say

DEFAULT_PALLETS = 3

DEFAULT_ROUNDS = 2

#: Cases on one pallet by default (``--pallet-cases`` changes it, to see how a pallet's ship
#: and receipt scale with its size).
CASES_PER_PALLET = 10

UNITS_PER_CASE = 1_000



def _build_pallets(client: Client, count: int, cases_per_pallet: int) -> list[str]:
    """``count`` pallets of ``cases_per_pallet`` cases of UNITS_PER_CASE units, commissioned at
    the plant and aggregated; the pallet codes."""
    units = client.pool("pallet-units", count * cases_per_pallet * UNITS_PER_CASE)
    cases = client.pool("pallet-cases", count * cases_per_pallet, cpb.PACKAGING_LEVEL_CASE)
    pallets = client.pool("pallet-pallets", count, cpb.PACKAGING_LEVEL_PALLET)
    per_pallet = cases_per_pallet * UNITS_PER_CASE
    for p, pallet in enumerate(pallets):
        mine = units[p * per_pallet:(p + 1) * per_pallet]
        my_cases = cases[p * cases_per_pallet:(p + 1) * cases_per_pallet]
        client.call("Commission", lpb.CommissionRequest(
            tenant=DEV_TENANT, context=ctx("PLANT"), codes=[*mine, *my_cases, pallet]))
        for c, case in enumerate(my_cases):
            client.call("Aggregate", lpb.AggregateRequest(
                tenant=DEV_TENANT, context=ctx("PLANT"), parent=case,
                children=mine[c * UNITS_PER_CASE:(c + 1) * UNITS_PER_CASE]))
        client.call("Aggregate", lpb.AggregateRequest(
            tenant=DEV_TENANT, context=ctx("PLANT"), parent=pallet, children=my_cases))
    return pallets



def _timed(client: Client, method: str, request: Any, expect: int, pid: int
           ) -> tuple[float, Window]:
    settle()
    with Window(pid) as window:
        response = client.call(method, request)
    if response.changed != expect:
        raise RuntimeError(f"{method} changed {response.changed:,} codes, expected {expect:,}")
    return window.wall_s, window



def _ms(seconds: Iterator[float]) -> str:
    return ", ".join(f"{s * 1000:.0f}" for s in seconds)



def run_pallet(tmp: Path, pallets: int, rounds: int, workers: int, profile: Path | None,
               cases_per_pallet: int = CASES_PER_PALLET) -> list[Result]:
    per_pallet = cases_per_pallet * UNITS_PER_CASE + cases_per_pallet + 1
    ships: list[float] = []
    receives: list[float] = []
    windows: dict[str, list[Window]] = {"Ship": [], "Receive": []}
    with lifecycle_server(tmp, "pallet", workers) as (server, client):
        say(f"lifecycle/pallet: building {pallets} pallets of {cases_per_pallet} x "
            f"{UNITS_PER_CASE:,} units ...")
        codes = _build_pallets(client, pallets, cases_per_pallet)
        where = {code: "PLANT" for code in codes}
        with profiling(server, profile, "lifecycle-pallet"):
            for r in range(rounds):
                for pallet in codes:
                    source = where[pallet]
                    destination = "DIST" if source != "DIST" else "WH"
                    wall, window = _timed(client, "Ship", lpb.ShipRequest(
                        tenant=DEV_TENANT, context=ctx(source), codes=[pallet],
                        destination=destination), per_pallet, server.pid)
                    ships.append(wall)
                    windows["Ship"].append(window)
                    wall, window = _timed(client, "Receive", lpb.ReceiveRequest(
                        tenant=DEV_TENANT, context=ctx(destination), codes=[pallet]),
                        per_pallet, server.pid)
                    receives.append(wall)
                    windows["Receive"].append(window)
                    where[pallet] = destination
                say(f"lifecycle/pallet: round {r + 1}: ship "
                    f"{', '.join(f'{s * 1000:.1f}' for s in ships[-pallets:])} ms; receive "
                    f"{', '.join(f'{s * 1000:.1f}' for s in receives[-pallets:])} ms; server "
                    f"CPU per ship {_ms(w.server_cpu_s for w in windows['Ship'][-pallets:])} ms")
        # The case of one pallet's units, for the baseline's keys.
        trace = client.trace.TraceCode(trace_pb2.TraceCodeRequest(
            tenant=DEV_TENANT, code=codes[0]), timeout=30)
        case_codes = list(trace.children)
        unit_codes: list[str] = []
        for case in case_codes:
            unit_codes.extend(client.trace.TraceCode(trace_pb2.TraceCodeRequest(
                tenant=DEV_TENANT, code=case), timeout=30).children)
    keys = code_keys([codes[0], *case_codes, *unit_codes])
    if len(keys) != per_pallet:
        raise RuntimeError(f"pallet has {len(keys):,} codes, expected {per_pallet:,}")
    ledger_size = pallets * per_pallet
    base = []
    for i in range(3):
        settle()
        base.append(raw_rmw_seconds(keys, tmp / f"baseline-pallet-{i}", ledger_size))
    base_ms = sorted(base)[1] * 1000
    say(f"lifecycle/pallet: baseline {per_pallet:,} raw RMW in one txn: {base_ms:.1f} ms")
    results = []
    # Other sizes get keys of their own: the floors guard the default pallet only.
    size = "" if cases_per_pallet == CASES_PER_PALLET else f"-{per_pallet}"
    for name, samples in (("Ship", ships), ("Receive", receives)):
        ordered = sorted(s * 1000 for s in samples)
        cpu = [w.as_dict() for w in windows[name]]
        details = {"samples_ms": [s * 1000 for s in samples], "codes_per_pallet": per_pallet,
                   "baseline_ms_runs": [b * 1000 for b in base],
                   "server_cpu_ms": [c["server_cpu_s"] * 1000 for c in cpu],
                   "others_cores": [c["others_cores"] for c in cpu]}
        for stat, value in (("p50", percentile(ordered, 0.5)), ("max", ordered[-1])):
            results.append(Result(
                bench="lifecycle",
                name=f"{name} 1 pallet ({per_pallet:,} packs) {stat}", unit="ms",
                key=f"lifecycle.pallet{size}.{name.lower()}.{stat}",
                elsewhere=sum(c["others_cores"] for c in cpu) / len(cpu),
                figure=value, baseline=base_ms, baseline_name="raw LMDB RMW, 1 txn",
                targets=[Target("max", 50)], details=details,
            ))
    return results
