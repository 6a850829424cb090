"""The trace section of ``bench.lifecycle``: TraceCode latency for a pack with a long history,
against the raw LMDB reads its answer needs."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import lmdb  # the raw baselines, beside (not through) tracecore.ledger
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import (
    trace_pb2,
)

from bench.harness import (
    DEV_TENANT,
)
from bench.lifecycle_rig import Client, Window, code_keys, ctx, lifecycle_server
from bench.measure import profiling, settle
from bench.report import Result, Target, percentile, say
from tracecore.codes import parse
from tracecore.keys import KeySource
from tracecore.ledger.code_keys import CodeKeys

DEFAULT_TRACE_CODES = 1_000_000

FULL_TRACE_CODES = 10_000_000

DEFAULT_TRACE_CALLS = 300

DEFAULT_TRACE_CASE_UNITS = 1_000

ISSUE_POOL = 1_000_000          # the trace ledger is filled in pools of at most this many



def _build_traced_pack(client: Client, case_units: int) -> tuple[str, str, str, int]:
    """A unit with >= 20 events in its history; (unit, case, pallet, events expected)."""
    units = client.pool("trace-units", case_units)
    case = client.pool("trace-case", 1, cpb.PACKAGING_LEVEL_CASE)[0]
    pallet = client.pool("trace-pallet", 1, cpb.PACKAGING_LEVEL_PALLET)[0]
    unit = units[0]
    n = 0

    def do(method: str, request: Any) -> None:
        client.call(method, request)

    t = DEV_TENANT
    do("Commission", lpb.CommissionRequest(tenant=t, context=ctx("PLANT"),
                                           codes=[*units, case, pallet]))
    n += 1
    do("Aggregate", lpb.AggregateRequest(tenant=t, context=ctx("PLANT"), parent=case,
                                         children=units))
    n += 1
    do("Aggregate", lpb.AggregateRequest(tenant=t, context=ctx("PLANT"), parent=pallet,
                                         children=[case]))
    n += 1
    route = ["PLANT", "DIST", "WH", "DIST", "WH"]
    for source, destination in itertools.pairwise(route):
        do("Ship", lpb.ShipRequest(tenant=t, context=ctx(source), codes=[pallet],
                                   destination=destination))
        do("Receive", lpb.ReceiveRequest(tenant=t, context=ctx(destination), codes=[pallet]))
        n += 2
    do("Disaggregate", lpb.AggregateRequest(tenant=t, context=ctx("WH"), parent=pallet,
                                            children=[case]))
    n += 1
    do("Disaggregate", lpb.AggregateRequest(tenant=t, context=ctx("WH"), parent=case,
                                            children=[unit]))
    n += 1
    do("Ship", lpb.ShipRequest(tenant=t, context=ctx("WH"), codes=[unit],
                               destination="PHARM"))
    do("Receive", lpb.ReceiveRequest(tenant=t, context=ctx("PHARM"), codes=[unit]))
    n += 2
    for _ in range(3):
        do("Decommission", lpb.DecommissionRequest(tenant=t, context=ctx("PHARM"), codes=[unit],
                                                   target=cpb.CODE_STATUS_DISPENSED))
        do("Undo", lpb.UndoRequest(tenant=t, context=ctx("PHARM"), codes=[unit]))
        n += 2
    do("Decommission", lpb.DecommissionRequest(tenant=t, context=ctx("PHARM"), codes=[unit],
                                               target=cpb.CODE_STATUS_DISPENSED))
    n += 1
    return unit, case, pallet, n



def _raw_trace_reader(ledger_path: Path, keys: list[bytes]) -> Any:
    """A function doing the raw LMDB reads of one trace, in one read transaction."""
    env = lmdb.open(str(ledger_path), readonly=True, lock=True, max_dbs=32, readahead=False,
                    max_readers=1024)
    codes = env.open_db(b"codes", create=False)
    parents = env.open_db(b"parents", create=False)
    by_code = env.open_db(b"code_events", create=False, dupsort=True)
    events = env.open_db(b"events", create=False)
    unit = keys[0]

    def read() -> int:
        total = 0
        with env.begin(buffers=True) as txn:
            total += len(txn.get(unit, b"", db=codes))
            parent = txn.get(unit, db=parents)
            while parent is not None:
                parent = txn.get(bytes(parent), db=parents)
            cursor = txn.cursor(db=by_code)
            get = txn.get
            for key in keys:
                if cursor.set_key(key):
                    for seq in cursor.iternext_dup():
                        total += len(bytes(get(seq, b"", db=events)))
        return total

    return read, env



def _latencies(fn: Any, calls: int, warm: int = 20) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return sorted(out)



def run_trace(tmp: Path, ledger_codes: int, calls: int, case_units: int, workers: int,
              profile: Path | None) -> list[Result]:
    from tracecore.ledger.history import trace as ledger_trace
    from tracecore.ledger.store import Ledger

    with lifecycle_server(tmp, "trace", workers) as (server, client):
        filled = 0
        started = time.perf_counter()
        while filled < ledger_codes:
            n = min(ISSUE_POOL, ledger_codes - filled)
            client.pool(f"trace-fill-{filled}", n, keep=False)
            filled += n
            say(f"lifecycle/trace: ledger filled to {filled:,} codes "
                f"({time.perf_counter() - started:.0f} s)")
        fill_s = time.perf_counter() - started
        unit, case, pallet, expected = _build_traced_pack(client, case_units)
        request = trace_pb2.TraceCodeRequest(tenant=DEV_TENANT, code=unit)
        answer = client.trace.TraceCode(request, timeout=30)
        if len(answer.history) != expected:
            raise RuntimeError(f"the traced pack has {len(answer.history)} events in its "
                               f"history, expected {expected}")
        say(f"lifecycle/trace: pack with {len(answer.history)} events; {calls} TraceCode calls "
            "...")
        settle()
        with profiling(server, profile, "lifecycle-trace"), Window(server.pid) as cpu:
            grpc_s = _latencies(lambda: client.trace.TraceCode(request, timeout=30), calls)
        response_bytes = answer.ByteSize()
        ledger_path = tmp / "data-trace" / "tenants" / DEV_TENANT / "ledger"
        stored_as = CodeKeys.of(KeySource.dev(), DEV_TENANT)
        keys = stored_as.stored_many(code_keys([unit, case, pallet]))
        # One environment per path and process: the raw reader first, then tracecore's.
        raw, env = _raw_trace_reader(ledger_path, keys)
        try:
            settle()
            raw_s = _latencies(raw, calls)
        finally:
            env.close()
        ledger = Ledger(ledger_path, tenant=DEV_TENANT, readonly=True, codes=stored_as)
        code = parse(unit).code
        try:

            def in_process() -> None:
                with ledger.env.read() as txn:
                    ledger_trace(ledger, txn, code)

            settle()
            core_s = _latencies(in_process, calls)
            stat = ledger.env.stat()
        finally:
            ledger.close()
    say(f"lifecycle/trace: gRPC p50 {percentile(grpc_s, 0.5) * 1000:.2f} ms, in-process trace "
        f"p50 {percentile(core_s, 0.5) * 1000:.2f} ms, raw reads p50 "
        f"{percentile(raw_s, 0.5) * 1000:.3f} ms")
    details = {
        "ledger_codes": stat.get("codes"), "ledger_events": stat.get("events"),
        "ledger_bytes": stat.get("_bytes"), "history_events": expected,
        "fill_seconds": fill_s, "calls": calls, "response_bytes": response_bytes,
        "case_units": case_units,
        "server_cpu_ms_per_call": cpu.server_cpu_s * 1000 / (calls + 20),
        "client_cpu_ms_per_call": cpu.client_cpu_s * 1000 / (calls + 20),
        "others_cores": cpu.as_dict()["others_cores"],
        "grpc_ms": {q: percentile(grpc_s, v) * 1000 for q, v in
                    (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))},
        "history_trace_ms": {q: percentile(core_s, v) * 1000 for q, v in
                             (("p50", 0.5), ("p99", 0.99))},
        "raw_reads_ms": {q: percentile(raw_s, v) * 1000 for q, v in
                         (("p50", 0.5), ("p99", 0.99))},
    }
    results = []
    for stat_name, q in (("p50", 0.5), ("p99", 0.99)):
        results.append(Result(
            bench="lifecycle",
            name=f"TraceCode {expected} events, {ledger_codes:,}-code ledger, {stat_name}",
            unit="ms", figure=percentile(grpc_s, q) * 1000, key=f"lifecycle.trace.{stat_name}",
            elsewhere=details["others_cores"],
            baseline=percentile(raw_s, q) * 1000, baseline_name="raw LMDB reads",
            targets=[Target("max", 5)], details=details,
        ))
    results.append(Result(
        bench="lifecycle", name="  history.trace in-process p50 (no gRPC)", unit="ms",
        key="lifecycle.trace.in_process.p50",
        figure=percentile(core_s, 0.5) * 1000, baseline=percentile(raw_s, 0.5) * 1000,
        baseline_name="raw LMDB reads",
    ))
    return results
