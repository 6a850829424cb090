"""Change records: encoded and decoded unchanged, cut into parts and put back together."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracecore.errors import LedgerCorrupt
from tracecore.replication.changes import DELETE, PUT, Assembler, Change, iter_parts

_ops = st.lists(st.tuples(st.sampled_from((PUT, DELETE)),
                          st.sampled_from(("codes", "pools", "meta", "audit")),
                          st.binary(min_size=1, max_size=64), st.binary(max_size=256)),
                max_size=50)


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**50), _ops)
def test_a_change_record_decodes_to_what_was_encoded(epoch: int, seq: int, at: int,
                                                     ops: list[tuple[int, str, bytes, bytes]]
                                                     ) -> None:
    """Every put and delete comes back in order, with its database, key and value."""
    change = Change(epoch, seq, at, ops)
    assert Change.decode(change.encode()) == change


def test_a_large_record_is_cut_into_parts_and_reassembled_whole() -> None:
    """A commit of 2 MB of codes travels as parts under the message limit and is handed out
    once, whole, when its last part arrives; a part resent from the start restarts it."""
    change = Change(1, 7, 0, [(PUT, "codes", b"K%07d" % i, b"v" * 40) for i in range(40_000)])
    data = change.encode()
    parts = list(iter_parts(data))
    assert len(parts) > 1 and all(len(piece) <= 900 * 1024 for _, _, piece in parts)
    assembler = Assembler()
    assert assembler.add(7, 0, len(parts), parts[0][2]) is None
    assert assembler.add(7, 0, len(parts), parts[0][2]) is None  # resent from the start
    whole = None
    for index, count, piece in parts[1:]:
        whole = assembler.add(7, index, count, piece)
    assert whole is not None and Change.decode(whole) == change


def test_a_damaged_record_is_refused() -> None:
    """A truncated record is LedgerCorrupt, never half applied."""
    data = Change(1, 1, 0, [(PUT, "codes", b"k", b"value")]).encode()
    with pytest.raises(LedgerCorrupt):
        Change.decode(data[:-2])
