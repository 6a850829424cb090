"""How many packaging lines one server sustains: the line simulator
(``pharmatrace_cli/line_simulator.py``) at 400 packs a minute a line, against one
``pharmatrace serve``, with more lines each step until the commission-to-ledger lag p99 crosses
1 s or the cap is reached. One line's lag, measured first in the same run, is the baseline."""

from __future__ import annotations

import io
from dataclasses import dataclass

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, logistics_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import logistics_pb2 as spb

from bench.harness import HOST, pharmatrace_server, workdir
from bench.report import say
from pharmatrace_cli.client import Endpoints
from pharmatrace_cli.line_simulator import Plan, percentile, run_lines

GTIN = "09501101530003"
LOT = "LOT-LINE"
PREFIX = "0614141"
PACKS_PER_MIN = 400
LAG_P99_LIMIT_MS = 1000.0
DEFAULT_SECONDS = 10.0
DEFAULT_CAP = 64
KEPT_RATE_MIN = 0.9
"""A step counts only if its lines packed at least this share of 400 packs a minute each: lines
that fall behind hide a slow server behind a low lag."""


@dataclass(frozen=True)
class Step:
    """One step: this many lines for a while, and what their packs saw."""

    lines: int
    packs: int
    packs_per_min: float
    lag_p50_ms: float
    lag_p99_ms: float
    errors: int

    @property
    def kept(self) -> float:
        """The share of the offered rate (400 packs a minute a line) the lines achieved."""
        return self.packs_per_min / (self.lines * PACKS_PER_MIN)

    @property
    def sustained(self) -> bool:
        return (self.lag_p99_ms < LAG_P99_LIMIT_MS and not self.errors
                and self.kept >= KEPT_RATE_MIN)


def _setup(issue: str, tenant: str) -> None:
    with grpc.insecure_channel(issue) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        admin.CreateTenant(apb.CreateTenantRequest(tenant=tenant, name="Line bench"), timeout=30)
        admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
            gtin=GTIN, name="Amoxicillin 500 mg capsules")), timeout=30)
        admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
            product=GTIN, lot=LOT, expires_on="2029-06-30")), timeout=30)
        for party, kind in (("PLANT-B", cpb.PARTY_KIND_PLANT),
                            ("DC-B", cpb.PARTY_KIND_DISTRIBUTOR)):
            admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=cpb.Party(
                party_id=party, name=party, kind=kind, region="310115")), timeout=30)
        logistics_pb2_grpc.LogisticUnitsStub(channel).RegisterCompanyPrefix(
            spb.RegisterCompanyPrefixRequest(tenant=tenant, company_prefix=PREFIX), timeout=30)


def _step(endpoints: Endpoints, tenant: str, lines: int, seconds: float) -> Step:
    plan = Plan(tenant, GTIN, LOT, "PLANT-B", "DC-B", lines, PACKS_PER_MIN / 60, 0.01,
                5, 4, 2, 1_000_000, seconds, 50, lines)
    logistics = logistics_pb2_grpc.LogisticUnitsStub(endpoints.channel(endpoints.issue))
    states = run_lines(plan, endpoints, logistics, io.StringIO())
    lags = [lag for state in states for lag in state.lags_ms]
    packs = sum(state.packs for state in states)
    elapsed = max(state.finished - state.started for state in states)
    return Step(lines, packs, packs / elapsed * 60 if elapsed > 0 else 0.0,
                percentile(lags, 0.5), percentile(lags, 0.99),
                sum(1 for state in states if state.error))


def run(seconds: float = DEFAULT_SECONDS, cap: int = DEFAULT_CAP, workers: int = 1,
        keep: bool = False) -> list[Step]:
    """1 line (the baseline), then 2, 4, 8 ... up to ``cap`` lines, ``seconds`` each, stopping
    after the first step that is not sustained (lag p99 of 1 s or more, a failed line, or the
    lines falling behind their rate)."""
    steps: list[Step] = []
    with workdir("line", keep) as tmp, pharmatrace_server(tmp / "data", tmp, workers) as server:
        issue = f"{HOST}:{server.ports['issue']}"
        endpoints = Endpoints.resolve(issue, f"{HOST}:{server.ports['verify']}")
        lines = 1
        while lines <= cap:
            tenant = f"line{lines}"
            _setup(issue, tenant)
            say(f"line: {lines} line(s) at {PACKS_PER_MIN}/min for {seconds:.0f} s ...")
            step = _step(endpoints, tenant, lines, seconds)
            steps.append(step)
            say(table([step]).splitlines()[-1])
            if not step.sustained:
                break
            lines *= 2
    return steps


def sustained(steps: list[Step]) -> int:
    """The most lines of a sustained step; 0 if none."""
    return max((s.lines for s in steps if s.sustained), default=0)


def table(steps: list[Step]) -> str:
    rows = [f"{'lines':>5} {'packs':>7} {'packs/min':>10} {'lag p50 ms':>11} "
            f"{'lag p99 ms':>11} {'kept':>5} {'failed':>6}"]
    rows += [f"{s.lines:>5} {s.packs:>7,} {s.packs_per_min:>10,.0f} {s.lag_p50_ms:>11.1f} "
             f"{s.lag_p99_ms:>11.1f} {s.kept:>5.0%} {s.errors:>6}" for s in steps]
    return "\n".join(rows)
