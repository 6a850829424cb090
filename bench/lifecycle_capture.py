"""The capture section of ``bench.lifecycle``: CaptureEvents throughput against raw
read-modify-writes."""

from __future__ import annotations

import time
from pathlib import Path

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from bench.harness import (
    DEV_TENANT,
)
from bench.lifecycle_rig import (
    MIB,
    Client,
    Window,
    code_keys,
    ctx,
    lifecycle_server,
    raw_rmw_seconds,
)
from bench.measure import RssSampler, profiling, settle
from bench.report import Result, Target, say

DEFAULT_CAPTURE_CODES = 200_000

DEFAULT_EVENT_CODES = 10_000

DEFAULT_EVENTS_PER_MESSAGE = 2



def _capture_messages(events: list[lpb.LifecycleEvent], per_message: int
                      ) -> list[lpb.CaptureEventsRequest]:
    return [lpb.CaptureEventsRequest(tenant=DEV_TENANT, events=events[i:i + per_message])
            for i in range(0, len(events), per_message)]



def _stream(client: Client, messages: list[lpb.CaptureEventsRequest]
            ) -> tuple[float, lpb.CaptureEventsResponse]:
    started = time.perf_counter()
    response = client.lifecycle.CaptureEvents(iter(messages), timeout=600)
    seconds = time.perf_counter() - started
    if response.failures:
        raise RuntimeError(f"capture failed: {response.failures[:3]}")
    return seconds, response



def run_capture(tmp: Path, codes: int, event_codes: int, per_message: int, workers: int,
                profile: Path | None) -> list[Result]:
    with lifecycle_server(tmp, "capture", workers) as (server, client):
        say(f"lifecycle/capture: issuing {codes:,} codes ...")
        texts = client.pool("capture-1", codes)
        commission = [lpb.LifecycleEvent(kind=lpb.EVENT_KIND_COMMISSION, context=ctx("PLANT"),
                                         codes=texts[i:i + event_codes])
                      for i in range(0, codes, event_codes)]
        half = (codes // 2 // event_codes) * event_codes or codes // 2
        second: list[lpb.LifecycleEvent] = []
        for i in range(0, half, event_codes):
            second.append(lpb.LifecycleEvent(
                kind=lpb.EVENT_KIND_SHIP, context=ctx("PLANT"),
                codes=texts[i:min(i + event_codes, half)], destination="DIST"))
        for i in range(half, codes, event_codes):
            second.append(lpb.LifecycleEvent(
                kind=lpb.EVENT_KIND_DECOMMISSION, context=ctx("PLANT"),
                codes=texts[i:i + event_codes], target=cpb.CODE_STATUS_DISPENSED))
        streams = [("commission", _capture_messages(commission, per_message)),
                   ("ship+dispense", _capture_messages(second, per_message))]
        # A small stream first, so the measured ones find connections and caches warm.
        warm = client.pool("capture-warm", 100)
        _stream(client, _capture_messages(
            [lpb.LifecycleEvent(kind=lpb.EVENT_KIND_COMMISSION, context=ctx("PLANT"),
                                codes=warm)], 1))
        measured: list[tuple[str, int, int, float, lpb.CaptureEventsResponse, int, Window]] = []
        for name, messages in streams:
            n_events = sum(len(m.events) for m in messages)
            say(f"lifecycle/capture: {name}: {codes:,} codes in {n_events} events, "
                f"{len(messages)} messages ...")
            settle()
            window = profiling(server, profile, f"lifecycle-capture-{name}")
            with RssSampler(server.pid) as rss, window, Window(server.pid) as cpu:
                seconds, response = _stream(client, messages)
            if response.changed != codes:
                raise RuntimeError(f"{name}: {response.changed:,} codes changed of {codes:,}")
            measured.append((name, n_events, len(messages), seconds, response,
                             rss.root_hwm_kib, cpu))
            say(f"lifecycle/capture: {name}: {codes / seconds:,.0f} changes/s "
                f"({seconds:.2f} s; server CPU {cpu.server_cpu_s:.2f} s = "
                f"{codes / cpu.server_cpu_s:,.0f} changes per CPU-second; other work on the "
                f"machine {cpu.as_dict()['others_cores']:.1f} cores)")
    say(f"lifecycle/capture: baseline, {codes:,} raw read-modify-writes in one txn ...")
    keys = code_keys(texts)
    # As many records as the server's ledger held: the pools, the warm-up codes.
    base_runs = []
    for i in range(3):
        settle()
        base_runs.append(raw_rmw_seconds(keys, tmp / f"baseline-capture-{i}", codes + 100))
    base_s = sorted(base_runs)[1]
    baseline = codes / base_s
    say(f"lifecycle/capture: baseline {baseline:,.0f} RMW/s ({base_s:.2f} s)")
    results = []
    for name, n_events, n_messages, seconds, response, hwm, cpu in measured:
        results.append(Result(
            bench="lifecycle", name=f"CaptureEvents {name} {codes:,} codes", unit="changes/s",
            key=f"lifecycle.capture.{name.replace('+', '_')}",
            elsewhere=cpu.as_dict()["others_cores"],
            figure=codes / seconds, baseline=baseline, baseline_name="raw LMDB RMW, 1 txn",
            targets=[Target("min", 100_000)],
            details={"codes": codes, "seconds": seconds, "events": n_events,
                     "messages": n_messages, "codes_per_event": event_codes,
                     "recorded": response.recorded, "changed": response.changed,
                     "baseline_seconds": base_s,
                     "baseline_seconds_runs": base_runs, "server_vmhwm_mib": hwm / MIB,
                     "changes_per_server_cpu_s": codes / cpu.server_cpu_s, **cpu.as_dict()},
        ))
    total_s = sum(m[3] for m in measured)
    # CPU per change does not depend on how many cores other jobs left free; the raw
    # read-modify-writes run on one core, so their wall time is their CPU time.
    server_cpu_s = sum(m[6].server_cpu_s for m in measured)
    results.append(Result(
        bench="lifecycle", name="CaptureEvents: server CPU per change, both streams", unit="µs",
        key="lifecycle.capture_cpu", figure=server_cpu_s / (2 * codes) * 1e6,
        baseline=base_s / codes * 1e6, baseline_name="raw LMDB RMW, 1 txn",
        elsewhere=max(m[6].as_dict()["others_cores"] for m in measured),
        details={"changes": 2 * codes, "server_cpu_s": server_cpu_s}))
    results.append(Result(
        bench="lifecycle", name=f"CaptureEvents both streams, {2 * codes:,} changes",
        key="lifecycle.capture.both",
        elsewhere=max(m[6].as_dict()["others_cores"] for m in measured),
        unit="changes/s", figure=2 * codes / total_s, baseline=baseline,
        baseline_name="raw LMDB RMW, 1 txn", targets=[Target("min", 100_000)],
        details={"changes": 2 * codes, "seconds": total_s,
                 "epcis_reference_epcs_per_s": 750},
    ))
    return results
