"""The step to format 4 on the ledger pharmatrace 0.1.0 wrote (tests/data/format1), brought to
format 3: every container's contents tallied, every pack where it was, the report counters
equal to a recount with custody inherited, and a pack packed into a container held elsewhere
moved to its container's custody with its counters."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_codes_at_rest_migration import FIXTURE, NOW_MS, TENANT
from tests.ledgers import dev_codes
from tracecore.codes import Code
from tracecore.ledger import format as ledger_format
from tracecore.ledger.contents import recount, resolved, row_of, stored_all
from tracecore.ledger.counters import Tally
from tracecore.ledger.history import trace
from tracecore.ledger.migrations import to_2, to_3, to_4
from tracecore.ledger.records import CodeRecord
from tracecore.ledger.store import Ledger
from tracecore.lifecycle_rules import counted


@pytest.fixture
def format3(tmp_path: Path) -> Iterator[Ledger]:
    """A copy of the 0.1.0 ledger brought to format 3."""
    path = tmp_path / "ledger"
    shutil.copytree(FIXTURE, path)
    ledger = Ledger(path, tenant=TENANT, codes=dev_codes(TENANT))
    try:
        assert to_2.apply(ledger, NOW_MS) and to_3.apply(ledger, NOW_MS)
        yield ledger
    finally:
        ledger.close()


def _where(ledger: Ledger) -> dict[Code, tuple[str, bool, int, int]]:
    """(holder, in transit, status, parent count) of every pack, as TraceCode reads it."""
    out = {}
    with ledger.env.read() as txn:
        for stored, _ in txn.cursor(db=ledger.db["codes"]):
            code = Code.from_key(ledger.codes.plain(bytes(stored)))
            traced = trace(ledger, txn, code)
            assert traced is not None
            out[code] = (traced.holder, traced.record.in_transit, int(traced.record.status),
                         len(traced.parents))
    return out


def _agrees(ledger: Ledger) -> None:
    """The location and region counters equal a recount of the codes with custody inherited,
    and every container's tally what is packed inside it."""
    with ledger.env.read() as txn:
        tally = Tally()
        for stored, value in txn.cursor(db=ledger.db["codes"]):
            record = CodeRecord.unpack(value)
            if counted(record):
                tally.move(None, resolved(ledger, txn, ledger.codes.plain(bytes(stored)), record))
        counters = {bytes(k): int.from_bytes(v, "big", signed=True)
                    for k, v in txn.cursor(db=ledger.db["counters"]) if bytes(k)[:1] in b"SP"}
        assert counters == {k: n for k, n in tally.expand().items() if n}
        tallies = stored_all(txn, ledger.db["contents"])
        assert tallies and tallies == {k: dict(rows) for k, rows in recount(ledger, txn).items()}


def test_the_step_tallies_every_container_and_keeps_every_pack_where_it_was(
        format3: Ledger) -> None:
    """Every pack's holder, transit flag and status read the same after the step; each case's
    tally holds its units; a second run does nothing."""
    ledger = format3
    before = _where(ledger)
    assert to_4.apply(ledger, NOW_MS) is True
    assert to_4.apply(ledger, NOW_MS) is False
    assert ledger_format.version_of(ledger) == 4
    assert _where(ledger) == before
    assert sum(1 for _, _, _, parents in before.values() if parents) == 20
    _agrees(ledger)


def test_a_pack_packed_where_its_container_was_not_takes_its_custody(format3: Ledger) -> None:
    """A unit whose record names another holder than its case's (packed before the case's
    custody was inherited) is moved to its case's holder, and the counters move with it."""
    ledger = format3
    with ledger.env.read() as txn:
        unit = next(Code.from_key(ledger.codes.plain(bytes(child)))
                    for child, _ in txn.cursor(db=ledger.db["parents"]))
        record = ledger.code_record(txn, unit.key())
        case = ledger.parent_of(txn, unit.key())
        assert record is not None and case is not None
        held = ledger.code_record(txn, case)
        assert held is not None
        others = [ref for ref in (1, 2, 3) if ref != held.holder_ref]

    def elsewhere(txn: object) -> None:
        moved = record.evolve(holder_ref=others[0])
        tally = Tally()
        tally.move(record, moved)
        tally.write(txn, ledger.db["counters"])  # type: ignore[arg-type]
        txn.put(ledger.codes.stored(unit.key()), moved.pack(),  # type: ignore[attr-defined]
                db=ledger.db["codes"])

    ledger.env.write(elsewhere)
    assert to_4.apply(ledger, NOW_MS) is True
    with ledger.env.read() as txn:
        after = ledger.code_record(txn, unit.key())
        assert after is not None
        assert (after.holder_ref, after.region, after.in_transit) == (
            held.holder_ref, held.region, held.in_transit)
        assert row_of(after) == row_of(record)
    _agrees(ledger)
