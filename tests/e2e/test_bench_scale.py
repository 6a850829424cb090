"""`python -m bench scale`'s ledger build, small: pools from several lines at once, the
verification sample, and a resumed build that requests nothing twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import scale
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir

pytestmark = pytest.mark.timeout(180)


def _codes_in_ledger(data: Path) -> int:
    directory = DataDir(data, KeySource.dev(), readonly=True)
    try:
        ledger = directory.get("demo").ledger
        with ledger.env.read() as txn:
            return int(txn.stat(ledger.db["codes"])["entries"])
    finally:
        directory.close()


def test_a_build_fills_the_ledger_keeps_a_sample_and_resumes_where_it_stopped(tmp_path: Path
                                                                              ) -> None:
    data = tmp_path / "data"
    first = scale.build(data, tmp_path, codes=5_000, pool=2_000, lines=2, report=2_000)
    assert first.codes == 5_000 and first.seconds > 0 and first.disk_bytes > 0
    assert _codes_in_ledger(data) == 5_000
    sample = scale.read_sample(data)
    assert len(sample) == len(set(sample)) == 1_000  # the last pool: 5,000 - 2 x 2,000
    assert first.steps and first.steps[-1]["codes"] == 5_000

    # Done: the saved report, nothing requested.
    again = scale.build(data, tmp_path, codes=5_000, pool=2_000)
    assert (again.codes, again.seconds) == (first.codes, first.seconds)

    # Interrupted before the last pool was recorded: that pool is requested again under its
    # request id, which gives back the same codes, and the figures add up.
    progress = data / scale.PROGRESS
    pools = json.loads(progress.read_text())["pools"]
    progress.write_text(json.dumps({"pools": [p for p in pools if p != "scale-000002"]}))
    (data / scale.SAMPLE).unlink()
    resumed = scale.build(data, tmp_path, codes=5_000, pool=2_000)
    assert _codes_in_ledger(data) == 5_000
    assert scale.read_sample(data) == sample
    assert resumed.codes == first.codes + 1_000
    assert resumed.seconds > first.seconds


def test_verifying_a_ledger_that_was_never_built_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="build the ledger first"):
        scale.read_sample(tmp_path)
