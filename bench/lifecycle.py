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
         Lifecycle API): client-side latency, p50 and max over ``pallets`` x ``rounds`` ships,
         then the same for Receive. Baseline: raw read-modify-writes of as many records (10,011)
         in one transaction with fsync.
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
import contextlib
import itertools
import json
import os
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import lmdb  # the raw baselines, beside (not through) tracecore.ledger
from pharmatrace.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    issuance_pb2,
    issuance_pb2_grpc,
    lifecycle_pb2_grpc,
    trace_pb2,
    trace_pb2_grpc,
)
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from bench import harness
from bench.harness import (
    CHANNEL_OPTIONS,
    DEV_TENANT,
    HOST,
    Result,
    RssSampler,
    Target,
    busy_cpu_seconds,
    cpu_seconds,
    descendants,
    exit_on_sigterm,
    machine,
    percentile,
    pharmatrace_server,
    profiling,
    say,
    settle,
    table,
    workdir,
)
from tracecore.codes import parse
from tracecore.ledger.records import CODE_RECORD_SIZE, CodeRecord
from tracecore.status import Status

GTIN = "09501101530003"
LOT = "BENCH-LC-1"
MANUFACTURED = "2025-01-15"
EXPIRES = "2030-12-31"
PARTIES = (("PLANT", 1, "110105"), ("DIST", 3, "440305"), ("WH", 3, "310115"),
           ("PHARM", 4, "440106"))
MIB = 1024

DEFAULT_CAPTURE_CODES = 200_000
DEFAULT_EVENT_CODES = 10_000
DEFAULT_EVENTS_PER_MESSAGE = 2
DEFAULT_PALLETS = 3
DEFAULT_ROUNDS = 2
CASES_PER_PALLET = 10
UNITS_PER_CASE = 1_000
DEFAULT_TRACE_CODES = 1_000_000
FULL_TRACE_CODES = 10_000_000
DEFAULT_TRACE_CALLS = 300
DEFAULT_TRACE_CASE_UNITS = 1_000
ISSUE_POOL = 1_000_000          # the trace ledger is filled in pools of at most this many
SECTIONS = ("capture", "pallet", "trace")

# The code record layout of tracecore.ledger.records, restated for the raw baseline.
_RAW_CODE = struct.Struct("<BBBxHxxIIIIIqqQ")
assert _RAW_CODE.size == CODE_RECORD_SIZE


# -- server set-up over gRPC ---------------------------------------------------------------------


class Client:
    """Stubs over one channel to the issuance port, and one to the verification port."""

    def __init__(self, ports: dict[str, int]) -> None:
        self._issue = grpc.insecure_channel(f"{HOST}:{ports['issue']}", options=CHANNEL_OPTIONS)
        self._verify = grpc.insecure_channel(f"{HOST}:{ports['verify']}",
                                             options=CHANNEL_OPTIONS)
        self.admin = admin_pb2_grpc.AdminStub(self._issue)
        self.issuance = issuance_pb2_grpc.CodeIssuanceStub(self._issue)
        self.lifecycle = lifecycle_pb2_grpc.LifecycleStub(self._issue)
        self.trace = trace_pb2_grpc.TraceStub(self._verify)

    def close(self) -> None:
        self._issue.close()
        self._verify.close()

    def setup(self) -> None:
        """The bench product, its batch and the parties, in the development tenant."""
        self.admin.RegisterProduct(admin_pb2.RegisterProductRequest(
            tenant=DEV_TENANT,
            product=cpb.Product(gtin=GTIN, scheme=cpb.SCHEME_GS1, name="Benchmarkol 10 mg",
                                form="tablet", strength="10 mg", pack_size=30),
        ), timeout=30)
        self.admin.AddBatch(admin_pb2.AddBatchRequest(
            tenant=DEV_TENANT,
            batch=cpb.Batch(product=GTIN, lot=LOT, manufactured_on=MANUFACTURED,
                            expires_on=EXPIRES,
                            materials=[cpb.MaterialLot(material="api", supplier="ACME",
                                                       supplier_lot="S-1")]),
        ), timeout=30)
        for party_id, kind, region in PARTIES:
            self.admin.AddParty(admin_pb2.AddPartyRequest(
                tenant=DEV_TENANT,
                party=cpb.Party(party_id=party_id, name=party_id, kind=kind, region=region),
            ), timeout=30)

    def pool(self, request_id: str, count: int, level: int = cpb.PACKAGING_LEVEL_UNIT,
             keep: bool = True) -> list[str]:
        """RequestCodes; the codes as HRI text when ``keep``, else just counted."""
        request = issuance_pb2.RequestCodesRequest(
            tenant=DEV_TENANT, product=GTIN, lot=LOT, count=count, request_id=request_id,
            level=level)
        out: list[str] = []
        received = 0
        prefix = f"(01){GTIN}(21)"
        for chunk in self.issuance.RequestCodes(request, timeout=120 + count / 20_000):
            received += len(chunk.serials)
            if keep:
                out.extend(prefix + s for s in chunk.serials)
        if received != count:
            raise RuntimeError(f"received {received:,} codes of {count:,}")
        return out

    def call(self, method: str, request: Any) -> lpb.LifecycleResponse:
        """A typed Lifecycle RPC that must apply."""
        response = getattr(self.lifecycle, method)(request, timeout=120)
        if not response.applied or response.failures:
            raise RuntimeError(f"{method} was not applied: {response.failures[:3]}")
        return response


def _ctx(party: str) -> lpb.EventContext:
    return lpb.EventContext(party_id=party)


@contextlib.contextmanager
def _server(tmp: Path, name: str, workers: int) -> Iterator[Any]:
    with pharmatrace_server(tmp / f"data-{name}", tmp, workers=workers, name=name) as server:
        client = Client(server.ports)
        try:
            client.setup()
            yield server, client
        finally:
            client.close()


class Window:
    """CPU spent during a ``with`` block: by the server's processes, by this client, and by the
    whole machine. Other work on the machine inflates wall-clock figures; ``others_cores`` says
    how much there was."""

    def __init__(self, pid: int) -> None:
        self._pids = [pid, *descendants(pid)]
        self.wall_s = self.server_cpu_s = self.client_cpu_s = self.busy_s = 0.0

    def __enter__(self) -> Window:
        self._server0 = sum(cpu_seconds(p) for p in self._pids)
        self._busy0 = busy_cpu_seconds()
        self._client0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall0
        self.client_cpu_s = time.process_time() - self._client0
        self.busy_s = busy_cpu_seconds() - self._busy0
        self.server_cpu_s = sum(cpu_seconds(p) for p in self._pids) - self._server0

    def as_dict(self) -> dict[str, float]:
        wall = self.wall_s or float("nan")
        return {
            "wall_s": self.wall_s, "server_cpu_s": self.server_cpu_s,
            "client_cpu_s": self.client_cpu_s,
            "machine_busy_cores": self.busy_s / wall,
            "others_cores": max(0.0, self.busy_s - self.server_cpu_s - self.client_cpu_s) / wall,
        }


# -- raw baselines -------------------------------------------------------------------------------


def _code_keys(texts: Sequence[str]) -> list[bytes]:
    return [parse(t).code.key() for t in texts]


def raw_rmw_seconds(keys: Sequence[bytes], directory: Path, ledger_size: int = 0) -> float:
    """Seconds for one LMDB transaction that reads, unpacks, changes, packs and writes back the
    record of every key (in the order given), committed with fsync. The records are stored first,
    untimed, in a fresh environment, with random others up to ``ledger_size`` records so that the
    commit writes as many pages as the server's ledger of that size would."""
    value = CodeRecord(status=Status.ISSUED, level=1, key_id=1, product_ref=1, batch_ref=1,
                       pool_ref=1, issued_at_ms=1, updated_at_ms=1).pack()
    directory.mkdir(parents=True)
    env = lmdb.open(str(directory), map_size=64 << 30, max_dbs=2, readahead=False, sync=True,
                    metasync=True)
    try:
        db = env.open_db(b"codes")
        others = max(0, ledger_size - len(keys))
        prefix = keys[0][:15] if keys else b"G"
        filler = (prefix + os.urandom(8).hex().upper().encode() for _ in range(others))
        with env.begin(write=True, db=db) as txn:
            txn.cursor().putmulti(sorted([*((k, value) for k in keys),
                                          *((k, value) for k in filler)]))
        unpack, pack = _RAW_CODE.unpack, _RAW_CODE.pack
        started = time.perf_counter()
        with env.begin(write=True, db=db) as txn:
            get, put = txn.get, txn.put
            for key in keys:
                fields = list(unpack(get(key, b"")))
                fields[0] = Status.ACTIVE.value
                fields[2] |= 1
                fields[7] = 2
                put(key, pack(*fields))
        return time.perf_counter() - started
    finally:
        env.close()


# -- capture -------------------------------------------------------------------------------------


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
    with _server(tmp, "capture", workers) as (server, client):
        say(f"lifecycle/capture: issuing {codes:,} codes ...")
        texts = client.pool("capture-1", codes)
        commission = [lpb.LifecycleEvent(kind=lpb.EVENT_KIND_COMMISSION, context=_ctx("PLANT"),
                                         codes=texts[i:i + event_codes])
                      for i in range(0, codes, event_codes)]
        half = (codes // 2 // event_codes) * event_codes or codes // 2
        second: list[lpb.LifecycleEvent] = []
        for i in range(0, half, event_codes):
            second.append(lpb.LifecycleEvent(
                kind=lpb.EVENT_KIND_SHIP, context=_ctx("PLANT"),
                codes=texts[i:min(i + event_codes, half)], destination="DIST"))
        for i in range(half, codes, event_codes):
            second.append(lpb.LifecycleEvent(
                kind=lpb.EVENT_KIND_DECOMMISSION, context=_ctx("PLANT"),
                codes=texts[i:i + event_codes], target=cpb.CODE_STATUS_DISPENSED))
        streams = [("commission", _capture_messages(commission, per_message)),
                   ("ship+dispense", _capture_messages(second, per_message))]
        # A small stream first, so the measured ones find connections and caches warm.
        warm = client.pool("capture-warm", 100)
        _stream(client, _capture_messages(
            [lpb.LifecycleEvent(kind=lpb.EVENT_KIND_COMMISSION, context=_ctx("PLANT"),
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
    keys = _code_keys(texts)
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


# -- pallet --------------------------------------------------------------------------------------


def _build_pallets(client: Client, count: int) -> list[str]:
    """``count`` pallets of CASES_PER_PALLET cases of UNITS_PER_CASE units, commissioned at the
    plant and aggregated; the pallet codes."""
    units = client.pool("pallet-units", count * CASES_PER_PALLET * UNITS_PER_CASE)
    cases = client.pool("pallet-cases", count * CASES_PER_PALLET, cpb.PACKAGING_LEVEL_CASE)
    pallets = client.pool("pallet-pallets", count, cpb.PACKAGING_LEVEL_PALLET)
    per_pallet = CASES_PER_PALLET * UNITS_PER_CASE
    for p, pallet in enumerate(pallets):
        mine = units[p * per_pallet:(p + 1) * per_pallet]
        my_cases = cases[p * CASES_PER_PALLET:(p + 1) * CASES_PER_PALLET]
        client.call("Commission", lpb.CommissionRequest(
            tenant=DEV_TENANT, context=_ctx("PLANT"), codes=[*mine, *my_cases, pallet]))
        for c, case in enumerate(my_cases):
            client.call("Aggregate", lpb.AggregateRequest(
                tenant=DEV_TENANT, context=_ctx("PLANT"), parent=case,
                children=mine[c * UNITS_PER_CASE:(c + 1) * UNITS_PER_CASE]))
        client.call("Aggregate", lpb.AggregateRequest(
            tenant=DEV_TENANT, context=_ctx("PLANT"), parent=pallet, children=my_cases))
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


def run_pallet(tmp: Path, pallets: int, rounds: int, workers: int, profile: Path | None
               ) -> list[Result]:
    per_pallet = CASES_PER_PALLET * UNITS_PER_CASE + CASES_PER_PALLET + 1
    ships: list[float] = []
    receives: list[float] = []
    windows: dict[str, list[Window]] = {"Ship": [], "Receive": []}
    with _server(tmp, "pallet", workers) as (server, client):
        say(f"lifecycle/pallet: building {pallets} pallets of {CASES_PER_PALLET} x "
            f"{UNITS_PER_CASE:,} units ...")
        codes = _build_pallets(client, pallets)
        where = {code: "PLANT" for code in codes}
        with profiling(server, profile, "lifecycle-pallet"):
            for r in range(rounds):
                for pallet in codes:
                    source = where[pallet]
                    destination = "DIST" if source != "DIST" else "WH"
                    wall, window = _timed(client, "Ship", lpb.ShipRequest(
                        tenant=DEV_TENANT, context=_ctx(source), codes=[pallet],
                        destination=destination), per_pallet, server.pid)
                    ships.append(wall)
                    windows["Ship"].append(window)
                    wall, window = _timed(client, "Receive", lpb.ReceiveRequest(
                        tenant=DEV_TENANT, context=_ctx(destination), codes=[pallet]),
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
    keys = _code_keys([codes[0], *case_codes, *unit_codes])
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
                key=f"lifecycle.pallet.{name.lower()}.{stat}",
                elsewhere=sum(c["others_cores"] for c in cpu) / len(cpu),
                figure=value, baseline=base_ms, baseline_name="raw LMDB RMW, 1 txn",
                targets=[Target("max", 50)], details=details,
            ))
    return results


# -- trace ---------------------------------------------------------------------------------------


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
    do("Commission", lpb.CommissionRequest(tenant=t, context=_ctx("PLANT"),
                                           codes=[*units, case, pallet]))
    n += 1
    do("Aggregate", lpb.AggregateRequest(tenant=t, context=_ctx("PLANT"), parent=case,
                                         children=units))
    n += 1
    do("Aggregate", lpb.AggregateRequest(tenant=t, context=_ctx("PLANT"), parent=pallet,
                                         children=[case]))
    n += 1
    route = ["PLANT", "DIST", "WH", "DIST", "WH"]
    for source, destination in itertools.pairwise(route):
        do("Ship", lpb.ShipRequest(tenant=t, context=_ctx(source), codes=[pallet],
                                   destination=destination))
        do("Receive", lpb.ReceiveRequest(tenant=t, context=_ctx(destination), codes=[pallet]))
        n += 2
    do("Disaggregate", lpb.AggregateRequest(tenant=t, context=_ctx("WH"), parent=pallet,
                                            children=[case]))
    n += 1
    do("Disaggregate", lpb.AggregateRequest(tenant=t, context=_ctx("WH"), parent=case,
                                            children=[unit]))
    n += 1
    do("Ship", lpb.ShipRequest(tenant=t, context=_ctx("WH"), codes=[unit],
                               destination="PHARM"))
    do("Receive", lpb.ReceiveRequest(tenant=t, context=_ctx("PHARM"), codes=[unit]))
    n += 2
    for _ in range(3):
        do("Decommission", lpb.DecommissionRequest(tenant=t, context=_ctx("PHARM"), codes=[unit],
                                                   target=cpb.CODE_STATUS_DISPENSED))
        do("Undo", lpb.UndoRequest(tenant=t, context=_ctx("PHARM"), codes=[unit]))
        n += 2
    do("Decommission", lpb.DecommissionRequest(tenant=t, context=_ctx("PHARM"), codes=[unit],
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

    with _server(tmp, "trace", workers) as (server, client):
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
        keys = _code_keys([unit, case, pallet])
        # One environment per path and process: the raw reader first, then tracecore's.
        raw, env = _raw_trace_reader(ledger_path, keys)
        try:
            settle()
            raw_s = _latencies(raw, calls)
        finally:
            env.close()
        ledger = Ledger(ledger_path, tenant=DEV_TENANT, readonly=True)
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


# -- entry points --------------------------------------------------------------------------------


def run(
    sections: Sequence[str] = SECTIONS,
    *,
    capture_codes: int = DEFAULT_CAPTURE_CODES,
    event_codes: int = DEFAULT_EVENT_CODES,
    events_per_message: int = DEFAULT_EVENTS_PER_MESSAGE,
    pallets: int = DEFAULT_PALLETS,
    rounds: int = DEFAULT_ROUNDS,
    trace_codes: int = DEFAULT_TRACE_CODES,
    trace_calls: int = DEFAULT_TRACE_CALLS,
    trace_case_units: int = DEFAULT_TRACE_CASE_UNITS,
    workers: int = 1,
    keep: bool = False,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Runs the chosen sections; {"results": [harness.Result], "params": {...}}."""
    params = {"sections": list(sections), "capture_codes": capture_codes,
              "event_codes": event_codes, "events_per_message": events_per_message,
              "pallets": pallets, "rounds": rounds, "trace_codes": trace_codes,
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
            results += run_pallet(tmp, pallets, rounds, workers, profile)
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
    harness.quiet_wait_s = getattr(args, "quiet_wait", harness.quiet_wait_s)
    return run(
        args.sections or SECTIONS, capture_codes=args.capture_codes,
        event_codes=args.event_codes, events_per_message=args.events_per_message,
        pallets=args.pallets, rounds=args.rounds, trace_codes=args.trace_codes,
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
