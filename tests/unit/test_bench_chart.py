"""`make bench`'s chart of the verification curves."""

from __future__ import annotations

from pathlib import Path

from bench import chart, curves


def test_the_chart_is_a_png_of_both_curves(tmp_path: Path) -> None:
    """Throughput against ledger size and latency against offered load come out as one PNG."""
    measured = curves.Curves(
        workers=2, throughput=[(1_000_000, 150_000.0), (10_000_000, 140_000.0)],
        latency=[(500.0, 1.1, 2.9), (1_500.0, 1.4, 4.2)],
        echo_latency=[(500.0, 0.9, 2.0), (1_500.0, 1.0, 2.8)], max_rate=3_000.0)
    path = chart.write(measured, tmp_path / "out" / "verify.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert path.stat().st_size > 10_000


def test_ledger_sizes_are_read_as_written_on_the_command_line() -> None:
    """`--sizes 1000000,10_000_000` names two ledgers."""
    assert curves.parse_sizes("1000000,10_000_000") == (1_000_000, 10_000_000)
    assert "VerifyBatch (2 workers) against ledger size:" in curves.summary(curves.Curves(2))
