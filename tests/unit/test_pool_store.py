"""Storing a pool's codes: new codes only, in issue order, the pool's product only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pharmatrace.v1 import common_pb2 as cpb

from tests.ledgers import dev_codes
from tracecore.codes import Code, Scheme
from tracecore.errors import InvalidArgument
from tracecore.ledger.store import Ledger, PoolRequest

GTIN = "09501101530003"
OTHER_GTIN = "09501101530010"
T0 = 1_700_000_000_000


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    found = Ledger(tmp_path / "ledger", tenant="acme", codes=dev_codes("acme"))
    found.register_product(cpb.Product(gtin=GTIN, name="Testol"), T0)
    found.register_product(cpb.Product(gtin=OTHER_GTIN, name="Otherol"), T0)
    yield found
    found.close()


def _serials(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(n)]


def test_codes_clashing_with_issued_ones_or_each_other_are_redrawn(ledger: Ledger) -> None:
    """A commit holding a code of an earlier pool and one code twice: those are replaced by
    redrawn ones, the earlier pool's code keeps its record, and the pool lists what was stored,
    in issue order."""
    ledger.open_pool(PoolRequest("first", GTIN, "", 1, 3), 1, T0)
    first = ledger.append_pool_codes("first", 0, _serials("A", 3), 1, T0, _never)
    with ledger.env.read() as txn:
        before = ledger.code_record(txn, Code(Scheme.GS1, GTIN, first[1]).key())
    ledger.open_pool(PoolRequest("second", GTIN, "", 1, 6), 1, T0 + 1)
    drawn = iter(_serials("R", 10))
    asked: list[int] = []

    def redraw(n: int) -> list[str]:
        asked.append(n)
        return [next(drawn) for _ in range(n)]

    wanted = ["B000000", first[1], "B000002", "B000003", "B000002", "B000005"]
    stored = ledger.append_pool_codes("second", 0, wanted, 1, T0 + 1, redraw)
    assert stored == ["B000000", "R000000", "B000002", "B000003", "R000001", "B000005"]
    assert asked == [2]
    assert ledger.pool_serials(ledger.pool("second").pool_ref, 0, 6) == stored
    assert ledger.pool("second").pool.issued == 6
    with ledger.env.read() as txn:
        assert ledger.code_record(txn, Code(Scheme.GS1, GTIN, first[1]).key()) == before
        for serial in stored:
            record = ledger.code_record(txn, Code(Scheme.GS1, GTIN, serial).key())
            assert record is not None and record.issued_at_ms == T0 + 1
    assert ledger.minted(GTIN, 1) == 9


def test_codes_of_another_product_are_refused_and_nothing_is_stored(ledger: Ledger) -> None:
    """Keys of another product than the pool's, anywhere in the commit, refuse all of it."""
    ledger.open_pool(PoolRequest("p", GTIN, "", 1, 3), 1, T0)
    pool_ref = ledger.pool("p").pool_ref
    keys = [Code(Scheme.GS1, GTIN, s).key() for s in _serials("C", 3)]
    keys[1] = Code(Scheme.GS1, OTHER_GTIN, "C000001").key()
    with pytest.raises(InvalidArgument):
        ledger.append_pool_keys("p", 0, keys, 1, T0, _never_keys)
    assert ledger.pool("p").pool.issued == 0
    assert ledger.pool_serials(pool_ref, 0, 3) == []
    with ledger.env.read() as txn:
        assert ledger.code_record(txn, Code(Scheme.GS1, GTIN, "C000000").key()) is None


def _never(n: int) -> list[str]:
    raise AssertionError("these serials never collide")


def _never_keys(n: int) -> list[bytes]:
    raise AssertionError("these keys never collide")
