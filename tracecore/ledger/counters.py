"""Counters kept on every change, so that locating a batch or reporting a region reads a few
entries instead of scanning codes.

Only sales units (packaging level 1) are counted: they are what pharmacies sell and regulators
locate; cases and pallets are transport.

- ``S`` batch, holder party, status, in-transit flag -> units (where a batch's packs are)
- ``P`` product, region, status -> units (stock and status by region)
- ``F`` day, product, region, flow -> units (received, sold, returned per day)
- ``Q`` UTC quarter hour, product, region, flow -> units (the same flows by instant: every
  zone's midnight falls on a quarter hour, so ``F`` is recounted from ``Q`` in any zone)
"""

from __future__ import annotations

import enum
import struct
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter

from tracecore.errors import FailedPrecondition
from tracecore.ledger.env import Database, Txn
from tracecore.ledger.records import CodeRecord

_S = struct.Struct(">cIIBB")
_P = struct.Struct(">cIIB")
_F = struct.Struct(">cIIIB")
_Q = struct.Struct(">cIIIB")
QUARTER_MS = 15 * 60 * 1000
_COUNT = struct.Struct(">q")
UNIT = 1

#: What a unit's counters depend on: (level, batch, holder, status, flags, product, region).
Projection = tuple[int, int, int, int, int, int, int]
#: ``Projection`` of a record, read in C (CodeRecord fields: level 1, batch 4, holder 6,
#: status 0, flags 11, product 3, region 7).
PROJECTED = (1, 4, 6, 0, 11, 3, 7)
project: Callable[[CodeRecord], Projection] = itemgetter(*PROJECTED)
_FLOW_FIELDS = itemgetter(1, 3, 7)


class Flow(enum.IntEnum):
    RECEIVED = 1
    SOLD = 2
    RETURNED = 3


class Tally:
    """Counter deltas gathered during a transaction and written once at its end."""

    def __init__(self) -> None:
        self.deltas: defaultdict[bytes, int] = defaultdict(int)
        # (batch, holder, status, flags, product, region) -> units; expanded at write
        self.units: defaultdict[tuple[int, int, int, int, int, int], int] = defaultdict(int)
        # (day, quarter hour, product, region, flow) -> units; expanded at write
        self.flows: defaultdict[tuple[int, int, int, int, int], int] = defaultdict(int)

    def move(self, before: CodeRecord | None, after: CodeRecord) -> None:
        """One code changed from ``before`` (None: not counted yet) to ``after``."""
        if after.level != UNIT:
            return
        units = self.units
        if before is not None:
            units[(before.batch_ref, before.holder_ref, before.status, before.flags,
                   before.product_ref, before.region)] -= 1
        units[(after.batch_ref, after.holder_ref, after.status, after.flags, after.product_ref,
               after.region)] += 1

    def move_many(self, moves: Iterable[tuple[Projection | None, Projection, int]]) -> None:
        """``move`` of many codes at once: ``n`` codes went from projection ``before`` to
        ``after`` (``project`` of their records), for each (before, after, n); ``before`` is
        None when they were not counted yet."""
        units = self.units
        for before, after, n in moves:
            if after[0] != UNIT:
                continue
            if before is not None:
                units[before[1:]] -= n
            units[after[1:]] += n

    def flow(self, record: CodeRecord, flow: Flow, day: int, at_ms: int) -> None:
        """One unit moved at ``at_ms``, on ``day``: the tenant's local day number
        (tracecore.localday)."""
        if record.level == UNIT:
            self.flows[(day, at_ms // QUARTER_MS, record.product_ref, record.region,
                        flow)] += 1

    def flow_many(self, records: Iterable[CodeRecord], flow: Flow, day: int, at_ms: int
                  ) -> None:
        """``flow`` of many records moved at the same instant, counted by product and region
        before anything is added."""
        quarter = at_ms // QUARTER_MS
        flows = self.flows
        for (level, product, region), n in Counter(map(_FLOW_FIELDS, records)).items():
            if level == UNIT:
                flows[(day, quarter, product, region, flow)] += n

    def flow_rows(self, units: Iterable[tuple[int, int]], region: int, flow: Flow, day: int,
                  at_ms: int) -> None:
        """``flow`` of (product ref, units) pairs, all in ``region`` at ``at_ms``."""
        quarter = at_ms // QUARTER_MS
        flows = self.flows
        for product, n in units:
            flows[(day, quarter, product, region, flow)] += n

    def merge(self, other: Tally) -> None:
        for key, delta in other.deltas.items():
            self.deltas[key] += delta
        for projection, delta in other.units.items():
            self.units[projection] += delta
        for moved, delta in other.flows.items():
            self.flows[moved] += delta

    def expand(self) -> dict[bytes, int]:
        """Every counter key this tally changes, with its delta."""
        deltas = self.deltas
        for (batch, holder, status, flags, product, region), n in self.units.items():
            if n:
                if batch:
                    deltas[_S.pack(b"S", batch, holder, status, flags)] += n
                deltas[_P.pack(b"P", product, region, status)] += n
        self.units.clear()
        for (day, quarter, product, region, flow), n in self.flows.items():
            deltas[_F.pack(b"F", day, product, region, flow)] += n
            deltas[_Q.pack(b"Q", quarter, product, region, flow)] += n
        self.flows.clear()
        return deltas

    def write(self, txn: Txn, db: Database) -> None:
        add_counts(txn, db, self.expand().items())


def add_counts(txn: Txn, db: Database, deltas: Iterable[tuple[bytes, int]]) -> None:
    """Adds each delta to its stored count, in key order; a count reaching 0 is deleted."""
    for key, delta in sorted(deltas):
        if not delta:
            continue
        stored = txn.get(key, db=db)
        total = (_COUNT.unpack(stored)[0] if stored is not None else 0) + delta
        if total:
            txn.put(key, _COUNT.pack(total), db=db)
        elif stored is not None:
            txn.delete(key, db=db)


def counts_under(txn: Txn, db: Database, prefix: bytes) -> Iterator[tuple[bytes, int]]:
    """(key, count) of every stored count whose key starts with ``prefix``, in key order."""
    cursor = txn.cursor(db=db)
    if not cursor.set_range(prefix):
        return
    for key, value in cursor:
        key = bytes(key)
        if not key.startswith(prefix):
            return
        yield key, _COUNT.unpack(value)[0]


def batch_counts(txn: Txn, db: Database, batch_ref: int) -> list[tuple[int, int, int, int]]:
    """(holder ref, status, flags, units) of a batch's counted units."""
    return [(*_S.unpack(key)[2:], units)
            for key, units in counts_under(txn, db, b"S" + struct.pack(">I", batch_ref))]


def product_counts(txn: Txn, db: Database, product_ref: int) -> list[tuple[int, int, int]]:
    """(region, status, units) of a product's counted units."""
    return [(*_P.unpack(key)[2:], units)
            for key, units in counts_under(txn, db, b"P" + struct.pack(">I", product_ref))]


def flow_counts(
    txn: Txn, db: Database, first_day: int, last_day: int
) -> list[tuple[int, int, int, int, int]]:
    """(day, product ref, region, flow, units) for days in [first_day, last_day]."""
    cursor = txn.cursor(db=db)
    out: list[tuple[int, int, int, int, int]] = []
    if not cursor.set_range(b"F" + struct.pack(">I", first_day)):
        return out
    for key, value in cursor:
        key = bytes(key)
        if key[:1] != b"F":
            break
        _, day, product, region, flow = _F.unpack(key)
        if day > last_day:
            break
        out.append((day, product, region, flow, _COUNT.unpack(value)[0]))
    return out


def recount_flows(txn: Txn, db: Database, day_of: Callable[[int], int]) -> int:
    """Replaces every daily flow counter (``F``) by a recount of the flows by instant (``Q``),
    each instant put on the day ``day_of(ms)`` says; the number of daily counters now stored.
    FailedPrecondition, changing nothing, when the daily counters hold flows the instants do
    not (counted by a release that kept days only): recutting them would lose those."""
    days: defaultdict[bytes, int] = defaultdict(int)
    for key, units in counts_under(txn, db, b"Q"):
        _, quarter, product, region, flow = _Q.unpack(key)
        days[_F.pack(b"F", day_of(quarter * QUARTER_MS), product, region, flow)] += units
    stored = list(counts_under(txn, db, b"F"))
    if sum(units for _, units in stored) != sum(days.values()):
        raise FailedPrecondition("the daily counters hold flows counted before their instants "
                                 "were kept; they cannot be recut in another time zone")
    stale = [key for key, _ in stored]
    for key in stale:
        txn.delete(key, db=db)
    for key, units in sorted(days.items()):
        if units:
            txn.put(key, _COUNT.pack(units), db=db)
    return sum(1 for units in days.values() if units)
