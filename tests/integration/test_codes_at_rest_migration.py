"""The step to format 3 on a ledger written by pharmatrace 0.1.0 (tests/data/format1): every
code stored encrypted, every pack still found, traced and its events read back, and a step cut
after any of its transactions resumed to the same ledger."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledgers import dev_codes
from tracecore.codes import Code
from tracecore.ledger import format as ledger_format
from tracecore.ledger.env import compact
from tracecore.ledger.history import trace
from tracecore.ledger.journal import Journal
from tracecore.ledger.migrations import to_2, to_3
from tracecore.ledger.records import CodeRecord
from tracecore.ledger.store import DATABASES, Ledger

FIXTURE = Path(__file__).parent.parent / "data" / "format1" / "tenant" / "ledger"
TENANT = "acme"
NOW_MS = 1_800_000_000_000

Dump = dict[str, list[tuple[bytes, bytes]]]


class _Cut(Exception):
    """Stands for a kill between two of the step's transactions."""


def _dump(ledger: Ledger) -> Dump:
    with ledger.env.read() as txn:
        return {name: [(bytes(k), bytes(v)) for k, v in txn.cursor(db=ledger.db[name])]
                for name in DATABASES}


@pytest.fixture
def format2(tmp_path: Path) -> Iterator[tuple[Path, Dump]]:
    """A copy of the 0.1.0 ledger brought to format 2, and its records then."""
    path = tmp_path / "ledger"
    shutil.copytree(FIXTURE, path)
    ledger = Ledger(path, tenant=TENANT, codes=dev_codes(TENANT))
    try:
        assert to_2.apply(ledger, NOW_MS)
        before = _dump(ledger)
    finally:
        ledger.close()
    yield path, before


def _migrated(path: Path, *, cut_after: int | None = None) -> Dump:
    """Runs the step (cut after ``cut_after`` transactions, then run again) and dumps it."""
    ledger = Ledger(path, tenant=TENANT, codes=dev_codes(TENANT))
    try:
        if cut_after is not None:
            done = 0

            def cut() -> None:
                nonlocal done
                done += 1
                if done == cut_after:
                    raise _Cut

            with pytest.raises(_Cut):
                to_3.apply(ledger, NOW_MS, chunk=4, after_chunk=cut)
            assert ledger_format.version_of(ledger) == 2
        assert to_3.apply(ledger, NOW_MS, chunk=4) is True
        assert to_3.apply(ledger, NOW_MS, chunk=4) is False
        assert ledger_format.version_of(ledger) == 3
        dump = _dump(ledger)
        assert ledger.env.stat()["codes"] == len(dump["codes"])  # no stale work database left
        opened = ledger.codes.open
        dump["events"] = [(k, opened(v)) for k, v in dump["events"]]
        dump.pop("audit")
        return dump
    finally:
        ledger.close()


def test_every_code_is_stored_encrypted_and_still_answers(format2: tuple[Path, Dump]) -> None:
    """After the step no serial of the fixture is in any database; each pack's record, history
    and containers read back as before, through its plain code."""
    path, before = format2
    units = [Code.from_key(k) for k, _ in before["codes"]]
    history: dict[bytes, list[int]] = {}
    for key, seq in before["code_events"]:
        history.setdefault(key, []).append(int.from_bytes(seq, "big"))
    _migrated(path)
    compact(path, TENANT)  # as `tenant migrate` does after the steps: freed pages held them
    raw = (path / "data.mdb").read_bytes()
    assert units and all(code.serial.encode() not in raw for code in units)
    ledger = Ledger(path, tenant=TENANT, codes=dev_codes(TENANT), readonly=True)
    try:
        with ledger.env.read() as txn:
            journal = Journal(ledger)
            assert journal.verify(txn)[1] is None
            for (key, value), code in zip(before["codes"], units, strict=True):
                assert ledger.code_record(txn, key) == CodeRecord.unpack(value)
                assert journal.seqs_of(txn, key) == history.get(key, [])
                traced = trace(ledger, txn, code)
                assert traced is not None and traced.code == code
                assert {e.seq for e, via in traced.history if via is None} == set(
                    history.get(key, []))
            parents = dict(before["parents"])
            for child, parent in parents.items():
                assert ledger.parent_of(txn, child) == parent
            for parent in set(parents.values()):
                kids = sorted(c for c, p in parents.items() if p == parent)
                assert ledger.children_of(txn, parent) == (kids, len(kids))
    finally:
        ledger.close()


@pytest.mark.parametrize("cut_after", [1, 2, 5, 9, 17])
def test_a_step_cut_between_transactions_resumes_to_the_same_ledger(
        format2: tuple[Path, Dump], tmp_path: Path, cut_after: int) -> None:
    """Cut after any of its transactions (copying a table out, moving it back, sealing the
    events), the step run again ends with exactly the ledger an uncut run makes."""
    path, _ = format2
    whole = tmp_path / "whole"
    shutil.copytree(path, whole)
    assert _migrated(path, cut_after=cut_after) == _migrated(whole)
