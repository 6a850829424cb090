"""Scan statistics of a worker (tracecore/ledger/observations.py) against a plain reference:
every scan counted one at a time into a dict, whatever the calls, repeats and flushes."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

from tracecore.ledger.observations import Observations


@dataclass
class _Seen:
    count: int
    first_ms: int
    last_ms: int = 0
    last_region: int = 0
    first_region: int = 0


class _Reference:
    """What a scan answers, worked out scan by scan (no buffering, no flushing)."""

    def __init__(self) -> None:
        self.seen: dict[bytes, _Seen] = {}

    def record(self, keys: list[bytes], now_ms: int, region: int
               ) -> list[tuple[int, int, int, int, int]]:
        out = []
        for key in keys:
            seen = self.seen.get(key)
            if seen is None:
                seen = self.seen[key] = _Seen(0, now_ms, first_region=region)
            seen.count += 1
            out.append((seen.count, seen.first_ms, seen.last_ms, seen.last_region,
                        seen.first_region))
            if region:
                seen.last_ms, seen.last_region = now_ms, region
        return out


def _keys(n: int) -> list[bytes]:
    return [b"G09501101530003" + f"{i:020d}".encode() for i in range(n)]


def test_counts_first_and_last_place_match_a_scan_by_scan_reference(tmp_path: Path) -> None:
    """Batches with repeated codes, codes scanned again before and after a flush, with and
    without a region: every answer (the first scan's region included) is the one a
    scan-by-scan count gives, and so is what is stored."""
    rng = random.Random(17)
    keys = _keys(40)
    observations = Observations(tmp_path / "observations", tenant="t")
    reference = _Reference()
    now = 1_000
    try:
        for step in range(300):
            now += rng.randint(0, 3)  # several calls in the same millisecond too
            batch = [rng.choice(keys) for _ in range(rng.randint(1, 12))]
            region = rng.choice((0, 0, 110101, 310115, 440305))
            assert observations.record_located(batch, now, region) == \
                reference.record(batch, now, region), step
            if rng.random() < 0.15:
                observations.flush()
        observations.flush()
        for key in keys:
            stored = observations.stats(key)
            expected = reference.seen.get(key)
            if expected is None:
                assert stored is None
                continue
            assert stored is not None
            assert (stored.count, stored.first_ms, stored.last_ms, stored.last_region,
                    stored.first_region) == (expected.count, expected.first_ms,
                                             expected.last_ms, expected.last_region,
                                             expected.first_region)
    finally:
        observations.close()


def test_unflushed_scans_are_part_of_a_codes_statistics(tmp_path: Path) -> None:
    """Before any flush, a code's statistics already hold this worker's scans of it."""
    key = _keys(1)[0]
    observations = Observations(tmp_path / "observations", tenant="t")
    try:
        observations.record_located([key], 1_000, 110101)
        observations.record_located([key, key], 2_000, 0)
        stats = observations.stats(key)
        assert stats is not None
        assert (stats.count, stats.first_ms, stats.last_ms, stats.last_region) == (
            3, 1_000, 1_000, 110101)
    finally:
        observations.close()


def test_a_failed_flush_keeps_its_scans_for_the_next_one(tmp_path: Path) -> None:
    """When writing the statistics fails, nothing is lost: the next flush stores every scan,
    in order with the ones made since."""
    key = _keys(1)[0]
    observations = Observations(tmp_path / "observations", tenant="t")
    write = observations.env.write

    def failing(fn):  # the disk refuses this one write
        raise OSError("no space left on device")

    try:
        observations.record_located([key], 1_000, 110101)
        observations.env.write = failing  # type: ignore[method-assign]
        try:
            observations.flush()
        except OSError:
            pass
        finally:
            observations.env.write = write  # type: ignore[method-assign]
        observations.record_located([key], 2_000, 310115)
        assert observations.flush() == 1
        stats = observations.stats(key)
        assert stats is not None
        assert (stats.count, stats.first_ms, stats.last_ms, stats.last_region) == (
            2, 1_000, 2_000, 310115)
    finally:
        observations.close()


def test_totals_stored_before_the_first_region_was_kept_still_count(tmp_path: Path) -> None:
    """A code whose totals were stored in the older layout (no first region) keeps its count
    and first scan, its first region unknown, and the next scan adds to it."""
    key = _keys(1)[0]
    observations = Observations(tmp_path / "observations", tenant="t")
    try:
        older = struct.pack("<QqqI", 4, 500, 700, 110101)
        observations.env.write(lambda txn: txn.put(key, older, db=observations.env.dbs["scans"]))
        assert observations.record_located([key], 1_000, 310115) == [(5, 500, 700, 110101, 0)]
        observations.flush()
        stats = observations.stats(key)
        assert stats is not None
        assert (stats.count, stats.first_ms, stats.first_region) == (5, 500, 0)
    finally:
        observations.close()
