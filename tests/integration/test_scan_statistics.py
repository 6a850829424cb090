"""Scan statistics of a worker (tracecore/ledger/observations.py) against a plain reference:
every scan counted one at a time into a dict, whatever the calls, repeats and flushes."""

from __future__ import annotations

import hashlib
import random
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.atrest import measure
from tracecore._speedups import load
from tracecore.ledger.env import Env, Txn
from tracecore.ledger.observations import (
    Observations,
    _Log,
    located_reference,
    merge_reference,
)
from tracecore.scan_clients import DAY_MS, client_tag

#: What codes are hashed under in these statistics.
CODE_KEY = b"scan-statistics-test-key"


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
    observations = Observations(tmp_path / "observations", tenant="t", code_key=CODE_KEY)
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


def test_one_code_a_call_matches_a_scan_by_scan_reference(tmp_path: Path) -> None:
    """One code a call (a unary Verify, a check page), codes scanned again before and after a
    flush, stored totals and unflushed scans mixed, with and without a region: every answer
    is the one a scan-by-scan count gives."""
    rng = random.Random(23)
    keys = _keys(12)
    observations = Observations(tmp_path / "observations", tenant="t", code_key=CODE_KEY)
    reference = _Reference()
    now = 1_000
    try:
        for step in range(400):
            now += rng.randint(0, 3)
            key = rng.choice(keys)
            region = rng.choice((0, 0, 110101, 310115, 440305))
            assert observations.record_located([key], now, region) == \
                reference.record([key], now, region), step
            if rng.random() < 0.1:
                observations.flush()
    finally:
        observations.close()


def test_unflushed_scans_are_part_of_a_codes_statistics(tmp_path: Path) -> None:
    """Before any flush, a code's statistics already hold this worker's scans of it."""
    key = _keys(1)[0]
    observations = Observations(tmp_path / "observations", tenant="t", code_key=CODE_KEY)
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
    observations = Observations(tmp_path / "observations", tenant="t", code_key=CODE_KEY)
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


def test_a_public_client_counts_once_per_code_per_day_and_its_address_is_not_stored(
        tmp_path: Path) -> None:
    """A client's first scan of a code each day is first, before and after a flush and after
    the worker restarts; another client's is first too; two days on, the oldest day's clients
    are forgotten; the client's address is nowhere in the statistics file."""
    key = secrets.token_bytes(32)
    code = _keys(1)[0]
    day = 20_000 * DAY_MS
    address = "ipv4:203.0.113.77"
    tag = client_tag(key, "t", address, day)
    path = tmp_path / "observations"
    observations = Observations(path, tenant="t", code_key=CODE_KEY)
    try:
        assert observations.first_scans([code, code], tag) == [True, False]
        assert observations.first_scans([code], client_tag(key, "t", address, day + 5)) \
            == [False]
        observations.flush()
        assert observations.first_scans([code], tag) == [False]
    finally:
        observations.close()
    # another worker, or after a restart
    observations = Observations(path, tenant="t", code_key=CODE_KEY)
    try:
        assert observations.first_scans([code], tag) == [False]
        assert observations.first_scans(
            [code], client_tag(key, "t", "ipv4:198.51.100.1", day)) == [True]
        assert observations.first_scans([code], client_tag(key, "t", address, day + DAY_MS)) \
            == [True]
        observations.flush()
        assert observations.first_scans(
            [code], client_tag(key, "t", address, day + 2 * DAY_MS)) == [True]
        observations.flush()
        assert observations.first_scans([code], tag) == [True]  # forgotten two days on
        assert observations.first_scans([code], client_tag(key, "t", address, day + DAY_MS)) \
            == [False]
        observations.flush()
    finally:
        observations.close()
    stored = (path / "data.mdb").read_bytes()
    assert b"203.0.113.77" not in stored
    assert hashlib.sha256(address.encode()).digest()[:8] not in stored


def test_statistics_kept_under_plain_code_keys_are_rehashed_when_a_worker_opens_them(
        tmp_path: Path) -> None:
    """Statistics an earlier release wrote under each code's plain key keep their counts
    once a worker opens them, and no stored key is a code any more."""
    path = tmp_path / "observations"
    key = _keys(1)[0]
    env = Env(path, ("scans", "public_clients"), owner="t", durable=False)
    try:
        env.write(lambda txn: txn.put(key, struct.pack("<QqqI", 4, 1_000, 2_000, 110101),
                                      db=env.dbs["scans"]))
    finally:
        env.close()
    observations = Observations(path, tenant="t", code_key=CODE_KEY)
    try:
        stats = observations.stats(key)
        assert stats is not None
        assert (stats.count, stats.first_ms, stats.last_ms, stats.last_region) == (
            4, 1_000, 2_000, 110101)
        assert observations.record([key], 3_000, 0) == [(5, 1_000)]
        observations.flush()
        with observations.env.read() as txn:
            stored = [bytes(k) for k, _ in txn.cursor(db=observations.env.dbs["scans"])]
        assert len(stored) == 1 and stored[0] != key and len(stored[0]) == 16
    finally:
        observations.close()


def test_the_at_rest_bench_reports_what_hashing_costs_per_code() -> None:
    """`python -m bench.atrest` on a few codes reports the keyed hash's cost beside the whole
    cost of counting a scan and of the flush, of first scans and of codes with stored totals
    (figures only: how they compare is the bench's to print, not a test's to assert)."""
    figures = measure(codes=2_000, rounds=1)
    for name in ("hash_us_per_code", "record_us_per_code", "flush_us_per_code",
                 "flush_stored_us_per_code"):
        assert figures[name] > 0, name


def test_totals_stored_before_the_first_region_was_kept_still_count(tmp_path: Path) -> None:
    """A code whose totals were stored in the older layout (no first region) keeps its count
    and first scan, its first region unknown, and the next scan adds to it."""
    key = _keys(1)[0]
    observations = Observations(tmp_path / "observations", tenant="t", code_key=CODE_KEY)
    try:
        older = struct.pack("<QqqI", 4, 500, 700, 110101)
        (stored,) = observations._hashed([key])
        observations.env.write(
            lambda txn: txn.put(stored, older, db=observations.env.dbs["scans"]))
        assert observations.record_located([key], 1_000, 310115) == [(5, 500, 700, 110101, 0)]
        observations.flush()
        stats = observations.stats(key)
        assert stats is not None
        assert (stats.count, stats.first_ms, stats.first_region) == (5, 500, 0)
    finally:
        observations.close()


_scans = load("_scans")


class _Undone(Exception):
    """Raised to abort a write transaction once what it wrote has been read back."""


def _written(env: Env, log: _Log, merge: Callable[[_Log, Txn, Any], int]
             ) -> tuple[int, list[tuple[bytes, bytes]]]:
    """How many codes ``merge`` says it wrote of ``log`` and every stored total after it, read
    back before its transaction is abandoned (the stored totals stay as they were)."""
    db = env.dbs["scans"]
    seen: list[tuple[int, list[tuple[bytes, bytes]]]] = []

    def merge_then_undo(txn: Txn) -> None:
        written = merge(log, txn, db)
        seen.append((written, [(bytes(k), bytes(v)) for k, v in txn.cursor(db=db)]))
        raise _Undone

    with pytest.raises(_Undone):
        env.write(merge_then_undo)
    return seen[0]
_layouts = st.tuples(st.integers(1, 50), st.integers(0, 3_000), st.integers(0, 3_000),
                     st.sampled_from((0, 110101, 310115)), st.sampled_from((0, 440305)),
                     st.booleans())
_steps = st.lists(st.tuples(st.lists(st.integers(0, 7), min_size=0, max_size=6),
                            st.integers(0, 2), st.sampled_from((0, 0, 110101, 310115))),
                  min_size=1, max_size=20)


@pytest.mark.skipif(_scans is None, reason="the compiled extension is not built or "
                                           "PHARMATRACE_PURE")
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.dictionaries(st.integers(0, 7), _layouts), flushed=_steps, steps=_steps)
def test_the_compiled_loops_answer_and_merge_as_their_references(
        tmp_path: Path, stored: dict[int, tuple[int, int, int, int, int, bool]],
        flushed: list[tuple[list[int], int, int]], steps: list[tuple[list[int], int, int]]
        ) -> None:
    """Over stored totals in both layouts, a log being flushed and calls with repeated codes,
    the compiled loops give every answer and every merged total their references give."""
    assert _scans is not None
    keys = [hashlib.blake2b(bytes((i,)), digest_size=16).digest() for i in range(8)]
    env = Env(tmp_path / f"compiled-{secrets.token_hex(4)}", ("scans",), owner="t",
              durable=False)
    db = env.dbs["scans"]
    try:
        for i, (count, first, last_ms, region, first_region, older) in stored.items():
            value = (struct.pack("<QqqI", count, first, last_ms, region) if older else
                     struct.pack("<QqqII", count, first, last_ms, region, first_region))
            env.write(lambda txn, k=keys[i], v=value: txn.put(k, v, db=db))
        flushing, log = _Log(), _Log()
        now = 1_000
        for batch, later, region in flushed:
            now += later
            flushing.add([keys[i] for i in batch], now, region)
        with env.read() as txn:
            for batch, later, region in steps:
                now += later
                scanned = [keys[i] for i in batch]
                earlier = [log.counts.get(k, 0) for k in scanned]
                entry = len(log.entries)
                log.add(scanned, now, region)
                repeated = len(set(scanned)) != len(scanned)
                args = (scanned, earlier, repeated, lambda e=entry: log.index(e),
                        flushing or None, txn, db, now, region)
                assert _scans.located(*args) == located_reference(*args)
        for merging in (log, flushing):
            assert _written(env, merging, _scans.merge) == _written(env, merging,
                                                                     merge_reference)
    finally:
        env.close()
