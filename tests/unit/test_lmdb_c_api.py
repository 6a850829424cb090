"""The compiled loops' reads through LMDB's C API on py-lmdb's own transactions
(``tracecore/_speedups/_mdb.pyx``): in use with the py-lmdb pyproject pins, answering what
py-lmdb's methods answer, and given up wherever py-lmdb would refuse or the layout is not known."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracecore._speedups import load
from tracecore.ledger.env import Env
from tracerpc.runtime import SWITCH_INTERVAL_S

_mdb = load("_mdb")
_scans = load("_scans")
pytestmark = pytest.mark.skipif(_mdb is None or _scans is None,
                                reason="the compiled extension is not built or PHARMATRACE_PURE")
ROOT = Path(__file__).resolve().parents[2]
KEYS = [hashlib.blake2b(bytes((i,)), digest_size=16).digest() for i in range(12)]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    env = Env(tmp_path / "scans", ("scans",), owner="t", durable=False)
    yield env
    env.close()


@pytest.fixture
def py_lmdb_path() -> Iterator[None]:
    """py-lmdb's methods instead of the C API for the test, as before."""
    assert _mdb is not None
    before = _mdb.use(False)
    yield
    _mdb.use(before)


def _located(txn: object, db: object, keys: list[bytes]) -> object:
    """``_scans.located`` of ``keys`` with nothing unflushed: the stored totals as read."""
    assert _scans is not None
    try:
        return _scans.located(keys, [0] * len(keys), len(set(keys)) != len(keys),
                              lambda: 0, None, txn, db, 5_000, 110101)
    except Exception as error:  # both paths must raise alike
        return type(error), str(error)


def _both_paths(txn: object, db: object, keys: list[bytes]) -> tuple[object, object]:
    assert _mdb is not None
    through_c = _located(txn, db, keys)
    before = _mdb.use(False)
    try:
        return through_c, _located(txn, db, keys)
    finally:
        _mdb.use(before)


def test_the_pinned_py_lmdb_is_read_through_the_c_api(env: Env) -> None:
    """pyproject pins the py-lmdb whose layout ``_mdb`` knows, and with it read and write
    transactions of a ledger's database are read through the C API."""
    assert _mdb is not None
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d.split("#")[0].strip() for d in project["dependencies"]
            if re.match(r"lmdb\b", d)]
    assert pins == [f"lmdb=={lmdb.__version__}"]
    assert lmdb.__version__ in _mdb.KNOWN
    db = env.dbs["scans"]
    with env.read() as txn:
        assert _mdb.in_use(txn, db)
    assert env.write(lambda txn: _mdb.in_use(txn, db))


def test_the_c_api_is_not_used_where_py_lmdb_would_refuse(env: Env, tmp_path: Path) -> None:
    """An ended transaction, a database of another environment, a dupsort database, or the C
    API turned off: py-lmdb's methods, which raise what they raise."""
    assert _mdb is not None
    db = env.dbs["scans"]
    env.write(lambda txn: txn.put(KEYS[0], struct.pack("<QqqII", 3, 1, 2, 110101, 0), db=db))
    with env.read() as txn:
        pass
    assert not _mdb.in_use(txn, db)
    through_c, through_py_lmdb = _both_paths(txn, db, KEYS[:2])
    assert through_c == through_py_lmdb
    assert through_c[0] is lmdb.Error  # type: ignore[index]
    other = lmdb.open(str(tmp_path / "other"), max_dbs=2)
    try:
        dupsort = other.open_db(b"dupsort", dupsort=True)
        foreign = other.open_db(b"scans")
        with env.read() as txn:
            assert not _mdb.in_use(txn, foreign)
            assert _both_paths(txn, foreign, KEYS[:2])[0][0] is lmdb.Error  # type: ignore[index]
        with other.begin() as own:
            assert not _mdb.in_use(own, dupsort)
            assert _mdb.in_use(own, foreign)
    finally:
        other.close()
    before = _mdb.use(False)
    try:
        with env.read() as txn:
            assert not _mdb.in_use(txn, db)
    finally:
        _mdb.use(before)


_totals = st.tuples(st.integers(0, 2**40), st.integers(-2**40, 2**40), st.integers(0, 2**40),
                    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                    st.sampled_from(("<QqqII", "<QqqI", "short")))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.dictionaries(st.integers(0, len(KEYS) - 1), _totals),
       asked=st.lists(st.integers(0, len(KEYS) - 1), max_size=30))
def test_stored_totals_read_through_the_c_api_are_py_lmdb_s(
        env: Env, stored: dict[int, tuple[int, int, int, int, int, str]], asked: list[int]
        ) -> None:
    """Any stored totals (both layouts, and a value of the wrong size), any keys asked, some
    repeated, some absent: the statistics read through the C API are those read through
    py-lmdb's cursor, in a read and in a write transaction."""
    db = env.dbs["scans"]

    def store(txn: lmdb.Transaction) -> None:
        txn.drop(db, delete=False)
        for i, (count, first, last, region, first_region, layout) in stored.items():
            value = (b"\x01" * 7 if layout == "short" else
                     struct.pack(layout, count, first, last, region, first_region)
                     if layout == "<QqqII" else struct.pack(layout, count, first, last, region))
            txn.put(KEYS[i], value, db=db)

    env.write(store)
    keys = [KEYS[i] for i in asked]
    with env.read() as txn:
        through_c, through_py_lmdb = _both_paths(txn, db, keys)
    assert through_c == through_py_lmdb
    through_c, through_py_lmdb = env.write(lambda txn: _both_paths(txn, db, keys))
    assert through_c == through_py_lmdb


def test_an_unknown_py_lmdb_is_read_through_its_methods_with_one_log_line(
        tmp_path: Path) -> None:
    """Run as if the installed py-lmdb were a version whose layout is not known: no read goes
    through the C API, the statistics are the same, and one log line says why."""
    script = f"""
import logging, struct, lmdb
lmdb.__version__ = "3.0.1"
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
from tracecore._speedups import _mdb, _scans
env = lmdb.open({str(tmp_path / "e")!r}, max_dbs=2)
db = env.open_db(b"scans")
with env.begin(write=True) as txn:
    txn.put(b"k" * 16, struct.pack("<QqqII", 3, 1, 2, 110101, 7), db=db)
for _ in range(3):
    with env.begin(buffers=True) as txn:
        assert not _mdb.in_use(txn, db)
        print(_scans.located([b"k" * 16, b"x" * 16], [0, 0], False, lambda: 0, None, txn, db,
                             5_000, 110101))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("pharmatrace.lmdb")]
    assert len(lines) == 1 and "3.0.1" in lines[0], done.stderr
    answers = done.stdout.splitlines()
    assert len(answers) == 3 and len(set(answers)) == 1
    assert answers[0].startswith("([4, 1]")


def _log_of(keys: list[bytes]) -> object:
    from tracecore.ledger.observations import _Log
    log = _Log()
    for start in range(0, len(keys), 1_000):
        log.add(keys[start:start + 1_000], 7_000 + start, 110101 if start % 2_000 else 0)
    return log


def test_a_flush_through_the_c_api_that_fills_the_map_grows_it_and_writes_everything(
        tmp_path: Path) -> None:
    """A flush whose writes (through the C API) fill the statistics' map: it raises py-lmdb's
    MapFullError as py-lmdb's own writes do, so the environment grows its map and merges
    again; every code's totals are then stored once, none twice."""
    assert _mdb is not None and _scans is not None
    env = Env(tmp_path / "small", ("scans",), owner="t", durable=False, map_size=256 * 1024)
    db = env.dbs["scans"]
    keys = [hashlib.blake2b(i.to_bytes(4, "big"), digest_size=16).digest()
            for i in range(20_000)]
    log = _log_of(keys)
    try:
        before = env.map_size
        with env.read() as txn:
            assert _mdb.in_use(txn, db)
        raised: list[type[BaseException]] = []

        def merge(txn: lmdb.Transaction) -> int:
            try:
                written: int = _scans.merge(log, txn, db)
            except lmdb.MapFullError as error:
                raised.append(type(error))
                assert error.code == -30792 and error.what == "mdb_cursor_put"  # type: ignore[attr-defined]
                raise
            return written

        assert env.write(merge) == len(keys)
        assert raised and env.map_size > before
        assert env.write(lambda txn: _scans.merge(log, txn, db)) == len(keys)
        with env.read() as txn:
            stored = {bytes(k): struct.unpack("<QqqII", v) for k, v in txn.cursor(db=db)}
        assert sorted(stored) == sorted(keys)
        assert {count for count, *_ in stored.values()} == {2}
    finally:
        env.close()


def test_a_full_map_raises_the_same_error_through_either_path(tmp_path: Path) -> None:
    """On a plain py-lmdb environment whose map cannot grow, the merge raises MapFullError
    through the C API as through py-lmdb's methods, and the transaction can only be
    aborted."""
    assert _mdb is not None and _scans is not None
    keys = [hashlib.blake2b(i.to_bytes(4, "big"), digest_size=16).digest()
            for i in range(20_000)]
    log = _log_of(keys)
    errors = []
    for through_c in (True, False):
        env = lmdb.open(str(tmp_path / f"e{through_c}"), max_dbs=2, map_size=256 * 1024)
        db = env.open_db(b"scans")
        before = _mdb.use(through_c)
        try:
            txn = env.begin(write=True, buffers=True)
            assert _mdb.in_use(txn, db) is through_c
            with pytest.raises(lmdb.MapFullError) as raised:
                _scans.merge(log, txn, db)
            errors.append((type(raised.value), raised.value.code))  # type: ignore[attr-defined]
            txn.abort()
        finally:
            _mdb.use(before)
            env.close()
    assert errors[0] == errors[1]


def test_a_py_lmdb_cursor_of_the_same_transaction_sees_what_the_c_api_wrote(
        env: Env) -> None:
    """py-lmdb's cursors cache the record they stand on and look again only when told the
    transaction changed: a cursor opened before the merge reads the merged totals after it."""
    assert _scans is not None
    db = env.dbs["scans"]
    env.write(lambda txn: txn.put(KEYS[0], struct.pack("<QqqII", 3, 1, 2, 110101, 0), db=db))
    log = _log_of([KEYS[0]])

    def merge(txn: lmdb.Transaction) -> tuple[bytes, bytes]:
        cursor = txn.cursor(db=db)
        assert cursor.set_key(KEYS[0])
        old = bytes(cursor.value())
        _scans.merge(log, txn, db)
        return old, bytes(cursor.value())

    old, new = env.write(merge)
    assert struct.unpack("<QqqII", old)[0] == 3
    assert struct.unpack("<QqqII", new)[0] == 4


def test_a_long_flush_lets_the_worker_s_other_threads_run_while_it_writes(
        tmp_path: Path) -> None:
    """A flush of 100,000 codes through the C API holds the GIL for slices of a few
    milliseconds, not for its whole length: with a worker's GIL settings (``tracerpc.runtime``),
    another thread (the worker's event loop answering a consumer) runs in the middle of it, as
    it did between py-lmdb's calls."""
    assert _mdb is not None and _scans is not None
    switching = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    env = Env(tmp_path / "long", ("scans",), owner="t", durable=False)
    db = env.dbs["scans"]
    keys = [hashlib.blake2b(i.to_bytes(4, "big"), digest_size=16).digest()
            for i in range(100_000)]
    log = _log_of(keys)
    ran: list[int] = []
    stop = threading.Event()

    def other() -> None:
        while not stop.is_set():
            ran.append(time.perf_counter_ns())

    window: list[int] = []

    def merge(txn: lmdb.Transaction) -> int:
        assert _mdb.in_use(txn, db)
        window.append(time.perf_counter_ns())
        written: int = _scans.merge(log, txn, db)
        window.append(time.perf_counter_ns())
        return written

    thread = threading.Thread(target=other)
    thread.start()
    try:
        time.sleep(0.01)
        assert env.write(merge) == len(keys)
    finally:
        stop.set()
        thread.join()
        env.close()
        sys.setswitchinterval(switching)
    start, end = window
    quarter = (end - start) // 4
    assert any(start + quarter < t < end - quarter for t in ran)
