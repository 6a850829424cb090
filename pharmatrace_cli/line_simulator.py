"""`pharmatrace line simulate`: packaging lines driving a running server as real lines do.

Each line requests code pools (units, bundles) and SSCC pools, prints every code (ZPL text; for
a sample, a PNG that is decoded back with zxing-cpp, as a camera would), checks what was read
against what was printed, commissions each good pack (one Commission call per pack, timed: the
commission-to-ledger lag), returns rejected packs as scrapped, aggregates units into bundles,
bundles into cases and cases onto pallets, each case and pallet being the logistic unit its
SSCC label names, and ships full pallets.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pharmatrace_cli.command import EXIT_ERROR, EXIT_OK, CliError

_RATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)/(s|min|h)")
_PER_S = {"s": 1.0, "min": 1 / 60, "h": 1 / 3600}
_POOL = 2_000
#: SSCCs a line asks for at once: its cases and pallets for a while.
_SSCC_POOL = 32
_STATUS_EVERY_S = 1.0


@dataclass(frozen=True)
class Plan:
    """What every simulated line does."""

    tenant: str
    product: str
    lot: str
    party: str
    ship_to: str
    lines: int
    packs_per_s: float
    reject: float
    bundle: int
    bundles_per_case: int
    cases_per_pallet: int
    pallets: int
    seconds: float
    sample_every: int
    seed: int


@dataclass
class LineState:
    """One line's counters, read by the status printer while the line runs."""

    name: str
    packs: int = 0
    rejects: int = 0
    bundles: int = 0
    cases: int = 0
    pallets: int = 0
    shipped: int = 0
    sampled: int = 0
    misreads: int = 0
    pool_left: int = 0
    lags_ms: list[float] = field(default_factory=list)
    error: str = ""
    started: float = 0.0
    finished: float = 0.0

    def packs_per_min(self, now: float) -> float:
        elapsed = (self.finished or now) - self.started
        return self.packs / elapsed * 60 if self.started and elapsed > 0 else 0.0


def parse_rate(text: str) -> float:
    """Packs per second of ``400/min``, ``7/s`` or ``24000/h``."""
    match = _RATE.fullmatch(text.strip())
    if match is None or float(match[1]) <= 0:
        raise CliError(f"--rate {text!r}: expected N/s, N/min or N/h")
    return float(match[1]) * _PER_S[match[2]]


def parse_share(text: str) -> float:
    """0.01 of ``1%`` or ``0.01``."""
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise CliError(f"--reject {text!r}: expected a percentage such as 1%") from None
    if not 0 <= share < 1:
        raise CliError(f"--reject {text!r}: must be at least 0% and under 100%")
    return share


def parse_case(text: str) -> tuple[int, int]:
    """(units a bundle, bundles a case) of ``10x12``."""
    match = re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", text.strip())
    if match is None:
        raise CliError(f"--case {text!r}: expected UNITSxBUNDLES, such as 10x12")
    return int(match[1]), int(match[2])


def simulate(plan: Plan, services: Any, logistics: Any, out: Any = sys.stderr) -> int:
    """Runs the lines until each has shipped ``plan.pallets`` pallets or ``plan.seconds`` have
    passed; prints a live status and a final report; the exit status."""
    states = run_lines(plan, services, logistics, out)
    failed = [s for s in states if s.error or s.misreads]
    return EXIT_ERROR if failed else EXIT_OK


def run_lines(plan: Plan, services: Any, logistics: Any, out: Any = sys.stderr
              ) -> list[LineState]:
    """The lines of ``simulate``, run to their end: each line's counters and lags."""
    run = uuid.uuid4().hex[:8]
    states = [LineState(f"line{i + 1}") for i in range(plan.lines)]
    threads = [threading.Thread(target=_run_line, name=state.name, daemon=True,
                                args=(plan, services, logistics, state, f"{run}-{i + 1}",
                                      random.Random(plan.seed + i)))  # noqa: S311 - rejects, not secrets
               for i, state in enumerate(states)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        threads[0].join(_STATUS_EVERY_S)
        threads.sort(key=lambda thread: not thread.is_alive())
        print(_status(states, time.monotonic() - started), file=out, flush=True)
    print(_report(states, time.monotonic() - started), file=out)
    return states


def _run_line(plan: Plan, services: Any, logistics: Any, state: LineState, run: str,
              rng: random.Random) -> None:
    state.started = time.monotonic()
    try:
        _Line(plan, services, logistics, state, run, rng).run()
    except Exception as exc:  # reported in the final table; the other lines go on
        details = exc.details() if hasattr(exc, "details") else str(exc)
        state.error = f"{type(exc).__name__}: {details}"
    finally:
        state.finished = time.monotonic()


class _Line:
    """One packaging line: its pools, its open containers, its clock."""

    def __init__(self, plan: Plan, services: Any, logistics: Any, state: LineState, run: str,
                 rng: random.Random) -> None:
        from pharmatrace.v1 import admin_pb2 as apb

        self.plan, self.state, self.run_id, self.rng = plan, state, run, rng
        self.issuance = services.issuance()
        self.lifecycle = services.lifecycle()
        self.logistics = logistics
        batch = services.admin().GetBatch(apb.GetBatchRequest(
            tenant=plan.tenant, product=plan.product, lot=plan.lot)).batch
        self.expiry = batch.expires_on[2:4] + batch.expires_on[5:7] + batch.expires_on[8:10]
        self.pools: dict[int, Iterator[str]] = {}
        self.ssccs: Iterator[str] = iter(())
        self.left: dict[int, int] = {}
        self.requests = 0

    def run(self) -> None:
        from pharmatrace.v1 import common_pb2 as cpb

        plan = self.plan
        deadline = time.monotonic() + plan.seconds
        due = time.monotonic()
        cases: list[str] = []
        while self.state.pallets < plan.pallets and time.monotonic() < deadline:
            bundles: list[str] = []
            while len(bundles) < plan.bundles_per_case:
                units: list[str] = []
                while len(units) < plan.bundle:
                    due += 1 / plan.packs_per_s
                    time.sleep(max(0.0, due - time.monotonic()))
                    code = self._pack(cpb.PACKAGING_LEVEL_UNIT)
                    if code is not None:
                        units.append(code)
                bundles.append(self._container(cpb.PACKAGING_LEVEL_BUNDLE, units))
                self.state.bundles += 1
            cases.append(self._container(cpb.PACKAGING_LEVEL_CASE, bundles, sscc=True))
            self.state.cases += 1
            if len(cases) == plan.cases_per_pallet:
                self._ship(self._container(cpb.PACKAGING_LEVEL_PALLET, cases, sscc=True))
                cases = []

    def _pack(self, level: int) -> str | None:
        """One unit through printer, camera and reject gate: its code once commissioned, None
        when it was rejected (and returned as scrapped)."""
        from pharmatrace.v1 import issuance_pb2 as ipb
        from pharmatrace.v1 import lifecycle_pb2 as lpb

        code = self._next(level)
        if self.rng.random() < self.plan.reject:
            self.issuance.ReturnCodes(ipb.ReturnCodesRequest(
                tenant=self.plan.tenant, codes=[code], reason=ipb.RETURN_REASON_SCRAPPED))
            self.state.rejects += 1
            return None
        started = time.perf_counter()
        self.lifecycle.Commission(lpb.CommissionRequest(
            tenant=self.plan.tenant, codes=[code], lot=self.plan.lot,
            context=lpb.EventContext(party_id=self.plan.party)))
        self.state.lags_ms.append((time.perf_counter() - started) * 1000)
        self.state.packs += 1
        return code

    def _container(self, level: int, children: list[str], *, sscc: bool = False) -> str:
        """A bundle, case or pallet with its children aggregated into it: a bundle is a code
        of its own, commissioned; a case or pallet is the logistic unit its SSCC label, printed
        and read, names."""
        from pharmatrace.v1 import lifecycle_pb2 as lpb

        context = lpb.EventContext(party_id=self.plan.party)
        if sscc:
            parent = self._next_sscc()
        else:
            parent = self._next(level)
            self.lifecycle.Commission(lpb.CommissionRequest(
                tenant=self.plan.tenant, codes=[parent], lot=self.plan.lot, context=context))
        self.lifecycle.Aggregate(lpb.AggregateRequest(
            tenant=self.plan.tenant, parent=parent, children=children, context=context))
        return parent

    def _next_sscc(self) -> str:
        """The next SSCC of the line's SSCC pool, its GS1-128 label printed and read back."""
        from pharmatrace.v1 import logistics_pb2 as spb

        from tracecore.printing import labels

        code = next(self.ssccs, None)
        if code is None:
            self.requests += 1
            self.ssccs = iter(self.logistics.RequestSsccs(spb.RequestSsccsRequest(
                tenant=self.plan.tenant, request_id=f"sim-{self.run_id}-sscc-{self.requests}",
                count=_SSCC_POOL)).ssccs)
            code = next(self.ssccs)
        label = labels.for_ssccs([code])[0]
        self._read(label, sample=True)
        return str(label.code)

    def _ship(self, pallet: str) -> None:
        from pharmatrace.v1 import lifecycle_pb2 as lpb

        self.state.pallets += 1
        if self.plan.ship_to:
            self.lifecycle.Ship(lpb.ShipRequest(
                tenant=self.plan.tenant, codes=[pallet], destination=self.plan.ship_to,
                context=lpb.EventContext(party_id=self.plan.party)))
            self.state.shipped += 1

    def _next(self, level: int) -> str:
        """The next code of the line's pool for ``level``, printed and read back."""
        from tracecore.codes import Scheme
        from tracecore.printing import labels

        pool = self.pools.get(level)
        serial = next(pool, None) if pool is not None else None
        if serial is None:
            self.pools[level] = pool = self._request(level)
            serial = next(pool)
        self.left[level] -= 1
        if level == 1:
            self.state.pool_left = self.left[level]
        label = labels.for_codes(Scheme.GS1, self.plan.product, [serial], lot=self.plan.lot,
                                 expiry=self.expiry)[0]
        self._read(label, sample=self.rng.randrange(self.plan.sample_every) == 0)
        return label.code

    def _request(self, level: int) -> Iterator[str]:
        from pharmatrace.v1 import issuance_pb2 as ipb

        self.requests += 1
        count = _POOL if level == 1 else max(16, _POOL // 10)
        chunks = self.issuance.RequestCodes(ipb.RequestCodesRequest(
            tenant=self.plan.tenant, product=self.plan.product, lot=self.plan.lot,
            level=level, count=count,  # type: ignore[arg-type]
            request_id=f"sim-{self.run_id}-{level}-{self.requests}"))
        serials = [serial for chunk in chunks for serial in chunk.serials]
        self.left[level] = len(serials)
        return iter(serials)

    def _read(self, label: Any, *, sample: bool) -> None:
        """What the camera reads: the decoded image for a sample, the printed text otherwise;
        a misread is counted (a real line would reject the pack)."""
        from tracecore.codes import parse
        from tracecore.printing import zpl

        next(zpl.formats([label]))  # what the printer is sent
        if sample:
            read = _decode(label)
            self.state.sampled += 1
        else:
            read = label.scanned
        expected = label.scanned
        same = read == expected and parse(read).code == parse(expected).code
        if not same:
            self.state.misreads += 1


def _decode(label: Any) -> str:
    import io

    import zxingcpp
    from PIL import Image

    from tracecore.printing import symbols

    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(symbols.png(label))),
                                   text_mode=zxingcpp.TextMode.Plain)
    return "".join(f"{b.symbology_identifier}{b.text}" for b in found)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _status(states: list[LineState], elapsed: float) -> str:
    parts = [f"{elapsed:6.1f}s"]
    now = time.monotonic()
    for s in states:
        parts.append(f"{s.name}: {s.packs} packs {s.packs_per_min(now):.0f}/min rej {s.rejects} "
                     f"case {s.cases} pal {s.pallets} pool {s.pool_left}"
                     + (" ERROR" if s.error else ""))
    return " | ".join(parts)


def _report(states: list[LineState], elapsed: float) -> str:
    lags = [lag for s in states for lag in s.lags_ms]
    lines = ["", f"{'line':<8}{'packs':>8}{'/min':>7}{'rejects':>9}{'bundles':>9}{'cases':>7}"
                 f"{'pallets':>9}{'shipped':>9}{'sampled':>9}{'misreads':>10}"]
    for s in states:
        lines.append(f"{s.name:<8}{s.packs:>8}{s.packs_per_min(s.finished):>7.0f}{s.rejects:>9}"
                     f"{s.bundles:>9}{s.cases:>7}{s.pallets:>9}{s.shipped:>9}{s.sampled:>9}"
                     f"{s.misreads:>10}" + (f"  {s.error}" if s.error else ""))
    lines.append(f"commission-to-ledger lag: p50 {percentile(lags, 0.5):.1f} ms, "
                 f"p99 {percentile(lags, 0.99):.1f} ms over {len(lags):,} packs in "
                 f"{elapsed:.1f} s")
    return "\n".join(lines)


def register(line: Any, add_command: Callable[..., Any]) -> None:
    """Adds `simulate` to the `line` command group."""
    sim = add_command(line, "simulate", "Simulated packaging lines driving a running server: "
                      "pools, printing, reading back, commissioning, rejects, aggregation into "
                      "bundles, cases and pallets with SSCC labels, shipping.", _simulate)
    sim.add_argument("--product", required=True, help="GTIN of the packs")
    sim.add_argument("--lot", required=True, help="the batch being packed")
    sim.add_argument("--party", required=True, help="the plant (a registered party)")
    sim.add_argument("--ship-to", default="", help="party full pallets are shipped to")
    sim.add_argument("--lines", type=int, default=1)
    sim.add_argument("--rate", default="400/min", help="packs per line: N/s, N/min or N/h")
    sim.add_argument("--reject", default="1%", help="share of packs the camera rejects")
    sim.add_argument("--case", default="10x12", help="units a bundle x bundles a case")
    sim.add_argument("--pallet", type=int, default=40, help="cases a pallet")
    sim.add_argument("--pallets", type=int, default=1, help="stop after this many pallets")
    sim.add_argument("--seconds", type=float, default=600.0,
                     help="or after this long (the case being packed is finished first)")
    sim.add_argument("--sample-every", type=int, default=50,
                     help="decode the printed image of one pack in N (the others by text)")
    sim.add_argument("--seed", type=int, default=1)


def _simulate(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import logistics_pb2_grpc

    from pharmatrace_cli.command import endpoints

    bundle, bundles_per_case = parse_case(args.case)
    if args.lines < 1 or args.pallet < 1 or args.pallets < 1 or args.sample_every < 1:
        raise CliError("--lines, --pallet, --pallets and --sample-every must be at least 1")
    plan = Plan(args.tenant, args.product, args.lot, args.party, args.ship_to, args.lines,
                parse_rate(args.rate), parse_share(args.reject), bundle, bundles_per_case,
                args.pallet, args.pallets, args.seconds, args.sample_every, args.seed)
    services = endpoints(args)
    logistics = logistics_pb2_grpc.LogisticUnitsStub(services.channel(services.issue))
    return simulate(plan, services, logistics)
