"""Benchmark results: a table of the project's figure, the baseline measured in the same run,
their ratio and the target; and JSON for the CI guard."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import PYTHON


@dataclass(frozen=True)
class Target:
    """One goal: ``figure`` at least / at most ``value``, or the ratio to the baseline at
    least / at most ``value``."""

    kind: str  # "min", "max", "min_ratio" or "max_ratio"
    value: float

    def met(self, figure: float, ratio: float | None) -> bool:
        if self.kind == "min":
            return figure >= self.value
        if self.kind == "max":
            return figure <= self.value
        if self.kind == "max_ratio":
            return ratio is not None and ratio <= self.value
        return ratio is not None and ratio >= self.value

    def text(self, unit: str) -> str:
        if self.kind in ("min_ratio", "max_ratio"):
            sign = ">=" if self.kind == "min_ratio" else "<="
            return f"{sign} {self.value:.0%} of baseline"
        sign = ">=" if self.kind == "min" else "<="
        return f"{sign} {_number(self.value)} {unit}"


@dataclass
class Result:
    """A measured figure beside its baseline from the same run."""

    bench: str
    name: str
    unit: str
    figure: float
    baseline: float | None = None
    baseline_name: str = ""
    key: str = ""
    """Stable identifier, e.g. ``verify.batch.w2``: what bench/floors.json names."""
    elsewhere: float | None = None
    """Cores other jobs kept busy while this was measured (figure or baseline, the larger)."""
    targets: list[Target] = field(default_factory=list)
    command: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline:
            return None
        return self.figure / self.baseline

    @property
    def passed(self) -> bool | None:
        if not self.targets:
            return None
        return all(t.met(self.figure, self.ratio) for t in self.targets)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["passed"] = self.passed
        out["targets"] = [{"kind": t.kind, "value": t.value, "text": t.text(self.unit),
                           "met": t.met(self.figure, self.ratio)} for t in self.targets]
        return out


def _number(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def table(results: Sequence[Result]) -> str:
    """An aligned text table: figure, baseline, ratio, target, pass / miss."""
    header = ("measure", "figure", "unit", "baseline", "ratio", "target", "result",
              "busy elsewhere")
    rows = [header]
    for r in results:
        rows.append((
            r.name,
            _number(r.figure),
            r.unit,
            f"{_number(r.baseline)} ({r.baseline_name})" if r.baseline is not None else "-",
            f"{r.ratio:.1%}" if r.ratio is not None else "-",
            " & ".join(t.text(r.unit) for t in r.targets) or "-",
            {True: "pass", False: "MISS", None: "-"}[r.passed],
            f"{r.elsewhere:.2f} cores" if r.elsewhere is not None else "",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {1, 3, 4, 7}
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_table(results: Sequence[Result]) -> str:
    """The load clients behind the results (those whose details carry a load summary, found
    at the top of ``details`` or one level down): calls, latency percentiles, and every
    call's outcome by status code. Empty when there are none."""
    rows = [("load", "calls", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "outcomes")]
    seen: set[str] = set()
    for r in results:
        name = r.name.removesuffix(" p99")
        found = [("", r.details)] if "outcomes" in r.details else [
            ("" if k == "load" else f" [{k}]", v) for k, v in r.details.items()
            if isinstance(v, dict) and "outcomes" in v]
        for suffix, load in found:
            same = json.dumps(load, sort_keys=True, default=str)
            if same in seen:
                continue
            seen.add(same)
            lat = load.get("latency", {})
            p50, p90, p99, p999 = (_number(lat.get(k, math.nan))
                                   for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms"))
            rows.append((name + suffix, f"{load['calls']:,}", p50, p90, p99, p999,
                         " ".join(f"{k}={v:,}" for k, v in load["outcomes"].items())))
    if len(rows) == 1:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if 0 < i < 6 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import grpc
    import lmdb

    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
        "grpcio": grpc.__version__, "lmdb": lmdb.__version__, "platform": platform.platform(),
    }


def write_json(path: Path, results: Sequence[Result], extra: dict[str, Any] | None = None
               ) -> None:
    payload = {
        "command": " ".join([Path(PYTHON).name, "-m", "bench", *sys.argv[1:]]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "results": [r.as_json() for r in results],
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def say(text: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(text, file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return math.nan
    rank = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[min(rank, len(sorted_values) - 1)]
