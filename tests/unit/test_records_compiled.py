"""The compiled reading and writing of code records (tracecore._speedups._records) packs,
orders and reads them exactly as its references in ``tracecore.ledger.records``, and refuses
what the references refuse."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracecore._speedups import load
from tracecore.ledger.records import (
    _STATUS,
    CodeRecord,
    in_key_order_reference,
    packed_in_key_order_reference,
    unpack_many_reference,
    with_custody_reference,
)
from tracecore.status import Status

_records = load("_records")
pytestmark = pytest.mark.skipif(_records is None, reason="the compiled extension is not built "
                                                         "or PHARMATRACE_PURE")

_U8, _U16, _U32, _U64 = (st.integers(0, 2**n - 1) for n in (8, 16, 32, 64))
_I64 = st.integers(-(2**63), 2**63 - 1)
_record = st.builds(CodeRecord, st.sampled_from(list(Status)), _U8, _U16, _U32, _U32, _U32,
                    _U32, _U32, _I64, _I64, _U64, _U8)


@st.composite
def _keyed(draw: st.DrawFn) -> tuple[list[bytes], list[CodeRecord]]:
    """Distinct keys of any length (one the prefix of another too), each with a record."""
    keys = draw(st.lists(st.binary(max_size=6) | st.binary(min_size=20, max_size=40),
                         unique=True, max_size=40))
    return keys, [draw(_record) for _ in keys]


@given(_keyed())
def test_records_are_packed_and_ordered_as_the_reference_does(
        keyed: tuple[list[bytes], list[CodeRecord]]) -> None:
    """The same (key, packed record) pairs in the same order, at every field's extremes."""
    assert _records is not None
    keys, records = keyed
    assert _records.packed_in_key_order(keys, records) == packed_in_key_order_reference(
        keys, records)


@given(st.lists(_record, max_size=30), _U32, st.none() | _U32, _U8, _U8)
def test_custody_is_changed_as_the_reference_changes_it(
        records: list[CodeRecord], holder: int, region: int | None, set_flags: int,
        clear_flags: int) -> None:
    """The same records, of the same types, with the holder, region and flags a ship or a
    receipt gives them."""
    assert _records is not None
    changed = _records.with_custody(records, CodeRecord, holder, region, set_flags, clear_flags)
    assert changed == with_custody_reference(records, holder, region, set_flags=set_flags,
                                             clear_flags=clear_flags)
    assert all(type(r) is CodeRecord for r in changed)
    assert [[type(v) for v in r] for r in changed] == [[type(v) for v in r] for r in records]


@st.composite
def _many_keys(draw: st.DrawFn) -> list[bytes]:
    """Keys as a ledger stores them (one shared prefix, then varied bytes) and as they come
    otherwise: of any length, one the prefix of another, named twice, alike in their first
    bytes after the prefix; enough of them for runs alike in their first 8 bytes after it."""
    prefix = draw(st.sampled_from([b"", b"G09501101530010", b"\x00\x00"]))
    suffixes = st.binary(max_size=12) | st.binary(min_size=8, max_size=8).map(
        lambda b: b[:2] * 4) | st.sampled_from([b"", b"\x00", b"\xff" * 9])
    keys = [prefix + s for s in draw(st.lists(suffixes, max_size=300))]
    if keys and draw(st.booleans()):
        keys += draw(st.lists(st.sampled_from(keys), max_size=20))
    return keys


@given(_many_keys())
def test_keys_are_ordered_as_the_reference_orders_them(keys: list[bytes]) -> None:
    """The same keys in bytes order, the values carried along, keys named twice kept in the
    order given."""
    assert _records is not None
    values = list(range(len(keys)))
    assert _records.in_key_order(keys, values) == in_key_order_reference(keys, values)


@given(st.lists(st.binary(max_size=12), max_size=60))
def test_sorted_keys_is_sorted(keys: list[bytes]) -> None:
    """Any byte strings, short, long, shared prefixes or repeated."""
    assert _records is not None
    assert _records.sorted_keys(keys) == sorted(keys)


@given(st.lists(st.binary(min_size=20, max_size=20), max_size=60), st.binary(max_size=30))
def test_sorted_keys_of_one_product(tails: list[bytes], prefix: bytes) -> None:
    """Keys sharing a product part, as a pool's are."""
    assert _records is not None
    keys = [prefix + tail for tail in tails]
    assert _records.sorted_keys(keys) == sorted(keys)


def test_many_stored_keys_are_ordered_as_the_reference_orders_them() -> None:
    """Ten thousand keys of one product with random serials, as an event names them."""
    assert _records is not None
    rng = random.Random(17)
    keys = [b"G09501101530010" + rng.randbytes(24) for _ in range(10_000)]
    values = [k[::-1] for k in keys]
    assert _records.in_key_order(keys, values) == in_key_order_reference(keys, values)
    assert _records.in_key_order(keys, values)[0] == sorted(keys)


@pytest.mark.parametrize(("field", "value"), [("status", 256), ("level", -1), ("key_id", 2**16),
                                              ("region", 2**32), ("updated_at_ms", 2**63),
                                              ("last_event", 2**64), ("flags", "1")])
def test_a_field_out_of_its_range_is_refused_as_the_reference_refuses_it(
        field: str, value: object) -> None:
    """A value the layout cannot hold raises struct.error from both, never a wrong record."""
    assert _records is not None
    changes: dict[str, Any] = {field: value}
    record = CodeRecord(Status.ACTIVE, 1, 1, 1)._replace(**changes)
    for pack in (_records.packed_in_key_order, packed_in_key_order_reference):
        with pytest.raises(struct.error):
            pack([b"k"], [record])


@given(st.lists(_record, max_size=30), st.booleans())
def test_stored_records_are_read_back_as_the_reference_reads_them(
        records: list[CodeRecord], as_views: bool) -> None:
    """Bytes or memoryviews: the same records, of the same types field by field."""
    assert _records is not None
    data: list[bytes | memoryview] = [r.pack() for r in records]
    if as_views:
        data = [memoryview(d) for d in data]
    read = _records.unpacked(data, CodeRecord, _STATUS)
    assert read == unpack_many_reference(data) == records
    assert [[type(v) for v in r] for r in read] == [[type(v) for v in r] for r in records]
    assert all(type(r) is CodeRecord for r in read)


@pytest.mark.parametrize("size", [51, 53])
def test_a_stored_record_of_another_size_is_refused_as_the_reference_refuses_it(
        size: int) -> None:
    """A record that is not 52 bytes raises struct.error from both."""
    assert _records is not None
    for read in (lambda d: _records.unpacked(d, CodeRecord, _STATUS), unpack_many_reference):
        with pytest.raises(struct.error):
            read([b"\x01" * size])
