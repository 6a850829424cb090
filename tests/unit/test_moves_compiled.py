"""The compiled count of a transaction's code changes (tracecore._speedups._moves) counts
exactly as its reference, ``overlay.count_moves_reference``: the same kinds of change,
with the same numbers, keyed by the same values of the same types."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracecore._speedups import load
from tracecore.ledger.counters import PROJECTED
from tracecore.ledger.overlay import count_moves_reference
from tracecore.ledger.records import CodeRecord
from tracecore.status import Status

_moves = load("_moves")
pytestmark = pytest.mark.skipif(_moves is None, reason="the compiled extension is not built or "
                                                       "PHARMATRACE_PURE")

# Few values per field, so that changes repeat, alike ones follow one another in runs, and
# records differ in fields that are not counted as well as in those that are.
_records = st.builds(
    CodeRecord, st.sampled_from(list(Status)), st.integers(0, 2), st.integers(0, 1),
    st.sampled_from([1, 70_000]), st.integers(0, 2), st.integers(0, 1),
    st.sampled_from([0, 5, 2**32 - 1]), st.sampled_from([0, 110105, 440305]),
    st.integers(0, 1), st.integers(0, 1), st.integers(0, 1), st.integers(0, 3))


@st.composite
def _changes(draw: st.DrawFn) -> list[tuple[CodeRecord, CodeRecord]]:
    """Changes one after another, some the very same pair of records again, some runs of pairs
    equal but not the same objects."""
    moves: list[tuple[CodeRecord, CodeRecord]] = []
    for _ in range(draw(st.integers(0, 12))):
        pair = (draw(_records), draw(_records))
        repeat = draw(st.integers(1, 4))
        if draw(st.booleans()):
            moves += [pair] * repeat
        else:
            moves += [(CodeRecord(*pair[0]), CodeRecord(*pair[1])) for _ in range(repeat)]
    return moves


def _typed(counts: dict[tuple[object, ...], int]) -> dict[tuple[object, ...], object]:
    return {k: (n, [type(v) for v in k]) for k, n in counts.items()}


@given(_changes(), st.sampled_from([PROJECTED, (0,), (11, 3), tuple(range(12))]))
def test_changes_are_counted_by_kind_as_the_reference_counts_them(
        moves: list[tuple[CodeRecord, CodeRecord]], fields: tuple[int, ...]) -> None:
    """Every kind of change, its number and its key's types agree with the reference."""
    assert _moves is not None
    assert _typed(_moves.count_moves(moves, fields)) == _typed(
        count_moves_reference(moves, fields))


def test_a_record_shorter_than_the_fields_asked_for_is_refused() -> None:
    """A field past a record's end is an error, never a read past the tuple."""
    assert _moves is not None
    with pytest.raises(IndexError):
        _moves.count_moves([((1, 2), (1, 2))], (0, 5))
