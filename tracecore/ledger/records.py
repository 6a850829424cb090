"""Fixed-width binary records and key layouts of the ledger."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat, starmap
from operator import itemgetter
from typing import NamedTuple, Self, TypeVar

from tracecore._speedups import load
from tracecore.status import Status

#: What ``in_key_order`` carries along with the keys it orders.
V = TypeVar("V")
# status, level, flags, key id, product, batch, pool, holder party, region,
# issued at, updated at (ms), last event sequence.
_CODE = struct.Struct("<BBBxHxxIIIIIqqQ")
CODE_RECORD_SIZE = _CODE.size

FLAG_IN_TRANSIT = 1
#: Minted elsewhere: not signed by this tenant, recorded with a provenance (``foreign_codes``).
FLAG_FOREIGN = 2

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_POOL_CODE = struct.Struct(">II")


_STATUS = {int(s): s for s in Status}


class CodeRecord(NamedTuple):
    """One code's current state; 52 bytes in the ``codes`` database.

    Custody (``holder_ref``, ``region`` and the in-transit flag) is the code's own only while it
    is in no container: inside one, the top container's is the pack's, and what this record
    holds there is not kept up to date (``tracecore.ledger.contents``)."""

    status: Status
    level: int
    key_id: int
    product_ref: int
    batch_ref: int = 0
    pool_ref: int = 0
    holder_ref: int = 0
    region: int = 0
    issued_at_ms: int = 0
    updated_at_ms: int = 0
    last_event: int = 0
    flags: int = 0

    def pack(self) -> bytes:
        return _CODE.pack(*_STORED_ORDER(self))

    @classmethod
    def unpack(cls, data: bytes | memoryview) -> Self:
        (status, level, flags, key_id, product, batch, pool, holder, region, issued, updated,
         event) = _CODE.unpack(data)
        return _new(cls, (_STATUS[status], level, key_id, product, batch, pool, holder, region,
                          issued, updated, event, flags))

    @property
    def in_transit(self) -> bool:
        return bool(self.flags & FLAG_IN_TRANSIT)

    @property
    def foreign(self) -> bool:
        return bool(self.flags & FLAG_FOREIGN)

    def evolve(self, **changes: int | Status) -> Self:
        values = list(self)
        for name, value in changes.items():
            values[_INDEX[name]] = value
        return _new(type(self), values)


_new = tuple.__new__
_INDEX = {name: i for i, name in enumerate(CodeRecord._fields)}
#: A record's fields in the order ``_CODE`` stores them (flags third, not last).
_STORED_ORDER = itemgetter(0, 1, 11, 2, 3, 4, 5, 6, 7, 8, 9, 10)


def pack_many(records: Iterable[CodeRecord]) -> Iterator[bytes]:
    """``CodeRecord.pack`` of each record, without a Python-level call each (a pallet's ten
    thousand packs are written at once)."""
    return starmap(_CODE.pack, map(_STORED_ORDER, records))


def packed_in_key_order_reference(keys: list[bytes], records: list[CodeRecord]
                                  ) -> list[tuple[bytes, bytes]]:
    """[(key, record packed)] of each key and its record, in the keys' order: a transaction's
    changed records as LMDB takes them fastest (``putmulti`` of increasing keys). What
    ``tracecore._speedups._records`` does in C."""
    return sorted(zip(keys, pack_many(records), strict=True), key=_FIRST)


def in_key_order_reference(keys: list[bytes], values: list[V]) -> tuple[list[bytes], list[V]]:
    """(``keys`` in bytes order, ``values`` in the same order): the order LMDB holds keys in
    and takes them fastest in. What ``tracecore._speedups._records`` does in C."""
    pairs = sorted(zip(keys, values, strict=True), key=_FIRST)
    return [k for k, _ in pairs], [v for _, v in pairs]


_FIRST = itemgetter(0)
_compiled = load("_records")
packed_in_key_order: Callable[[list[bytes], list[CodeRecord]], list[tuple[bytes, bytes]]] = (
    _compiled.packed_in_key_order if _compiled is not None else packed_in_key_order_reference)
in_key_order: Callable[[list[bytes], list[V]], tuple[list[bytes], list[V]]] = (
    _compiled.in_key_order if _compiled is not None else in_key_order_reference)
#: ``sorted`` for a list of ledger keys (``in_key_order`` without values).
sorted_keys: Callable[[list[bytes]], list[bytes]] = (
    _compiled.sorted_keys if _compiled is not None else sorted)


def unpack_many(data: Sequence[bytes | memoryview]) -> list[CodeRecord]:
    """``CodeRecord.unpack`` of each stored record, in one pass over them (in C where
    ``tracecore._speedups._records`` is built)."""
    if _compiled is not None:
        records: list[CodeRecord] = _compiled.unpacked(list(data), CodeRecord, _STATUS)
        return records
    return unpack_many_reference(data)


def unpack_many_reference(data: Sequence[bytes | memoryview]) -> list[CodeRecord]:
    """``unpack_many`` in Python."""
    status_of = _STATUS
    return [_new(CodeRecord, (status_of[status], level, key_id, product, batch, pool, holder,
                              region, issued, updated, event, flags))
            for (status, level, flags, key_id, product, batch, pool, holder, region, issued,
                 updated, event) in _CODE.iter_unpack(b"".join(data))]


def with_custody(records: Iterable[CodeRecord], holder: int, region: int | None = None, *,
                 set_flags: int = 0, clear_flags: int = 0) -> list[CodeRecord]:
    """Each record held by ``holder`` (in ``region`` when given, else its own), with
    ``set_flags`` set and ``clear_flags`` cleared: what a ship or receipt makes of the packs it
    names (tens of thousands of units in one event), built without ``evolve``'s per-field
    lookups (in C where ``tracecore._speedups._records`` is built)."""
    if _compiled is not None:
        changed: list[CodeRecord] = _compiled.with_custody(
            list(records), CodeRecord, holder, region, set_flags, clear_flags)
        return changed
    return with_custody_reference(records, holder, region, set_flags=set_flags,
                                  clear_flags=clear_flags)


def with_custody_reference(records: Iterable[CodeRecord], holder: int,
                           region: int | None = None, *, set_flags: int = 0,
                           clear_flags: int = 0) -> list[CodeRecord]:
    """``with_custody`` in Python."""
    keep = ~clear_flags
    return [_new(CodeRecord, (status, level, key_id, product, batch, pool, holder,
                              own if region is None else region, issued, updated, event,
                              (flags | set_flags) & keep))
            for (status, level, key_id, product, batch, pool, _, own, issued, updated, event,
                 flags) in records]


def unpack_status(data: bytes | memoryview) -> Status:
    """Just the status byte, for loops that need nothing else."""
    return Status(data[0])


def ref_key(ref: int) -> bytes:
    return _U32.pack(ref)


def ref_of(key: bytes | memoryview) -> int:
    return int(_U32.unpack(key)[0])


def seq_key(seq: int) -> bytes:
    return _U64.pack(seq)


def u64(value: bytes | memoryview) -> int:
    return int(_U64.unpack(value)[0])


def pool_code_key(pool_ref: int, position: int) -> bytes:
    """Big-endian so that one pool's codes sort together, in issue order."""
    return _POOL_CODE.pack(pool_ref, position)


def pool_code_keys(pool_ref: int, start: int, stop: int) -> Iterator[bytes]:
    """``pool_code_key`` of positions [start, stop), in order, packed without a Python-level
    call each (the issuing loop makes a million of them)."""
    return map(_POOL_CODE.pack, repeat(pool_ref), range(start, stop))
