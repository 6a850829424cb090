"""bench/curves.py's curves as one PNG: throughput against ledger size, latency against
offered load (Verify beside the echo server)."""

from __future__ import annotations

from pathlib import Path

from bench.curves import Curves

OUT = Path("bench/out")
"""Where ``make bench`` writes its chart and JSON (git ignores it)."""


def write(curves: Curves, path: Path) -> Path:
    """The chart of ``curves`` at ``path`` (its folder made if needed)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (size_ax, load_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    sizes = [s for s, _ in curves.throughput]
    size_ax.plot(sizes, [r for _, r in curves.throughput], marker="o", label="VerifyBatch")
    size_ax.axhline(400_000, color="grey", linestyle="--", label="target 400k codes/s")
    size_ax.set_xscale("log")
    size_ax.set_xlabel("codes in the ledger")
    size_ax.set_ylabel("codes verified per second")
    size_ax.set_ylim(bottom=0)
    size_ax.set_title(f"VerifyBatch, {curves.workers} workers")
    size_ax.legend()
    for points, name in ((curves.latency, "Verify"), (curves.echo_latency, "gRPC echo")):
        rates = [r for r, _, _ in points]
        load_ax.plot(rates, [p99 for _, _, p99 in points], marker="o", label=f"{name} p99")
        load_ax.plot(rates, [p50 for _, p50, _ in points], marker=".", linestyle=":",
                     label=f"{name} p50")
    load_ax.axhline(5.0, color="grey", linestyle="--", label="p99 target 5 ms")
    load_ax.set_yscale("log")
    load_ax.set_xlabel("offered requests per second (open loop)")
    load_ax.set_ylabel("latency, ms")
    load_ax.set_title(f"unary Verify, largest ledger (max {curves.max_rate:,.0f} req/s)")
    load_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
