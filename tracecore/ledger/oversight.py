"""Recalls and withdrawals, where a batch's packs are, and the regional report.

A recall writes one record and one event, whatever the size of the batch: the status every reader
shows is derived from it (``Holds``), as expiry is. Where the packs are and what a region holds
come from counters kept on every event, never from a scan over codes.
"""

from __future__ import annotations

import struct
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import masterdata, regions
from tracecore.errors import NotFound
from tracecore.events import EventKind
from tracecore.ledger.counters import (
    UNIT,
    Flow,
    Projection,
    add_counts,
    batch_counts,
    counts_under,
    flow_counts,
    product_counts,
)
from tracecore.ledger.env import Database, Txn
from tracecore.ledger.journal import Journal
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord, ref_key, ref_of
from tracecore.ledger.store import Ledger
from tracecore.oversight import (
    RECALLABLE,
    Holding,
    Location,
    RecallNote,
    RegionFigures,
    RegionRow,
    effective_status,
    report_region,
    report_rows,
    within,
)
from tracecore.status import Status

_HOLD = struct.Struct(">qQ")        # recalled (withdrawn) at ms, event sequence
_REGION = struct.Struct(">IIB")     # batch ref, region, status


@dataclass(frozen=True, slots=True)
class Order:
    """Who ordered a recall or withdrawal, when and why."""

    reason: str
    when_ms: int
    who: str = ""
    party_id: str = ""
    tz_offset: str = "+00:00"


# -- holds: recalled batches, withdrawn products --------------------------------------------------


def _batch_key(batch_ref: int) -> bytes:
    return b"B" + ref_key(batch_ref)


def _product_key(product_ref: int) -> bytes:
    return b"P" + ref_key(product_ref)


class Holds:
    """Which batches are recalled and which products withdrawn, as one transaction sees them."""

    def __init__(self, ledger: Ledger, txn: Txn) -> None:
        self._txn = txn
        self._db = ledger.db["recalls"]
        self._batches: dict[int, bool] = {}
        self._products: dict[int, bool] = {}
        #: Whether anything was ever recalled or withdrawn: most ledgers, most of the time, not.
        #: (A cursor's first entry costs a fifth of ``txn.stat``, which every verification paid.)
        self.any = txn.cursor(self._db).first()

    def batch_recalled(self, batch_ref: int) -> bool:
        found = self._batches.get(batch_ref)
        if found is None:
            found = self._batches[batch_ref] = bool(batch_ref) and self._txn.get(
                _batch_key(batch_ref), db=self._db) is not None
        return found

    def product_withdrawn(self, product_ref: int) -> bool:
        found = self._products.get(product_ref)
        if found is None:
            found = self._products[product_ref] = self._txn.get(
                _product_key(product_ref), db=self._db) is not None
        return found

    def status(self, record: CodeRecord) -> Status:
        """The record's status as readers see it: RECALLED or WITHDRAWN when a hold covers it."""
        if not self.any or record.status not in RECALLABLE:
            return record.status
        return effective_status(record.status, self.batch_recalled(record.batch_ref),
                                self.product_withdrawn(record.product_ref))

    def hold_status(self, batch_ref: int, product_ref: int) -> Status | None:
        """RECALLED or WITHDRAWN for packs of this batch and product on the market, else None."""
        if not self.any:
            return None
        if self.batch_recalled(batch_ref):
            return Status.RECALLED
        if self.product_withdrawn(product_ref):
            return Status.WITHDRAWN
        return None


def recall_note(ledger: Ledger, txn: Txn, batch_ref: int) -> RecallNote | None:
    return _note(ledger, txn, _batch_key(batch_ref))


def withdrawal_note(ledger: Ledger, txn: Txn, product_ref: int) -> RecallNote | None:
    return _note(ledger, txn, _product_key(product_ref))


def hold_events(ledger: Ledger, txn: Txn, batch_ref: int, product_ref: int
                ) -> list[lpb.EventRecord]:
    """The recall of a batch and the withdrawal of its product, as journal events."""
    keys = ([_batch_key(batch_ref)] if batch_ref else []) + [_product_key(product_ref)]
    out: list[lpb.EventRecord] = []
    for key in keys:
        data = txn.get(key, db=ledger.db["recalls"])
        if data is not None:
            out.append(Journal(ledger).get(txn, _HOLD.unpack(data)[1]))
    return out


def _note(ledger: Ledger, txn: Txn, key: bytes) -> RecallNote | None:
    data = txn.get(key, db=ledger.db["recalls"])
    if data is None:
        return None
    when_ms, seq = _HOLD.unpack(data)
    event = Journal(ledger).get(txn, seq)
    return RecallNote(when_ms, event.reason, event.who, event.party_id, seq)


# -- recall and withdrawal (writes) ----------------------------------------------------------------


def recall_batch(ledger: Ledger, product: str, lot: str, order: Order, now_ms: int
                 ) -> tuple[list[Location], list[int]]:
    """Recalls one batch: one record, one event. An already recalled batch is left as it is."""

    def fn(txn: Txn) -> tuple[list[Location], list[int]]:
        _check_party(ledger, txn, order)
        batch_ref, batch = ledger.batch_in(txn, product, lot)
        seq = _hold(ledger, txn, _batch_key(batch_ref), EventKind.RECALL, order, now_ms,
                    product=batch.product, lot=batch.lot)
        return [locate(ledger, txn, batch_ref, batch)], [seq] if seq else []

    return ledger.env.write(fn)


def recall_material(ledger: Ledger, supplier: str, supplier_lot: str, order: Order,
                    now_ms: int) -> tuple[list[Location], list[int]]:
    """Recalls every batch that used a supplier's lot, in one transaction."""

    def fn(txn: Txn) -> tuple[list[Location], list[int]]:
        _check_party(ledger, txn, order)
        uses = ledger.batches_using(txn, supplier, supplier_lot)
        if not uses:
            raise NotFound(f"no batch used lot {supplier_lot} of {supplier}",
                           field="supplier_lot")
        seqs: list[int] = []
        for batch_ref, batch, _ in uses:
            seq = _hold(ledger, txn, _batch_key(batch_ref), EventKind.RECALL, order, now_ms,
                        product=batch.product, lot=batch.lot)
            if seq:
                seqs.append(seq)
        return [locate(ledger, txn, ref, batch) for ref, batch, _ in uses], seqs

    return ledger.env.write(fn)


def withdraw_product(ledger: Ledger, product: str, order: Order, now_ms: int
                     ) -> tuple[list[Location], list[int]]:
    """Withdraws a product from the market: one record, one event; answers each batch."""

    def fn(txn: Txn) -> tuple[list[Location], list[int]]:
        _check_party(ledger, txn, order)
        product_ref, p = ledger.product_in(txn, product)
        seq = _hold(ledger, txn, _product_key(product_ref), EventKind.WITHDRAW, order, now_ms,
                    product=masterdata.code_product(p))
        locations = [locate(ledger, txn, ref, batch)
                     for ref, batch in batches_of(ledger, txn, product_ref)]
        return locations, [seq] if seq else []

    return ledger.env.write(fn)


def _check_party(ledger: Ledger, txn: Txn, order: Order) -> None:
    if order.party_id:
        ledger.party_in(txn, order.party_id, "context.party_id")


def _hold(ledger: Ledger, txn: Txn, key: bytes, kind: EventKind, order: Order, now_ms: int,
          *, product: str, lot: str = "") -> int:
    """Records the hold and its event; 0 (and nothing written) if it was recorded before."""
    if txn.get(key, db=ledger.db["recalls"]) is not None:
        return 0
    record = lpb.EventRecord(
        kind=kind.value, when_ms=order.when_ms, tz_offset=order.tz_offset,
        party_id=order.party_id, reason=order.reason, who=order.who, recorded_at_ms=now_ms,
        product=product, lot=lot, event_id=f"urn:uuid:{uuid.uuid4()}",
    )
    seq = Journal(ledger).append(txn, record, ())
    txn.put(key, _HOLD.pack(order.when_ms, seq), db=ledger.db["recalls"])
    return seq


# -- where a batch's packs are ---------------------------------------------------------------------


def batches_of(ledger: Ledger, txn: Txn, product_ref: int) -> list[tuple[int, cpb.Batch]]:
    """Every batch of a product, in lot order."""
    prefix = ref_key(product_ref)
    cursor = txn.cursor(db=ledger.db["batch_ids"])
    out: list[tuple[int, cpb.Batch]] = []
    if not cursor.set_range(prefix):
        return out
    for key, value in cursor:
        if bytes(key[:len(prefix)]) != prefix:
            break
        out.append((ref_of(value), ledger.batch_by_ref(txn, ref_of(value))))
    return out


def locate(ledger: Ledger, txn: Txn, batch_ref: int, batch: cpb.Batch) -> Location:
    """Where a batch's units are, from its counters: a read of a few entries per holder."""
    product_ref, product = ledger.product_in(txn, batch.product)
    parties: dict[int, cpb.Party] = {}
    holdings: list[Holding] = []
    for holder, status, flags, units in batch_counts(txn, ledger.db["counters"], batch_ref):
        if units <= 0:
            continue
        party = None
        if holder:
            party = parties.get(holder)
            if party is None:
                party = parties[holder] = ledger.party_by_ref(txn, holder)
        holdings.append(Holding(party, Status(status), bool(flags & FLAG_IN_TRANSIT), units))
    # Codes voided unused were never on a pack, so the holder counters leave them out.
    voided = sum(units for _, status, units in batch_regions(txn, ledger.db["batch_regions"],
                                                             batch_ref)
                 if status == Status.VOIDED)
    if voided > 0:
        holdings.append(Holding(None, Status.VOIDED, False, voided))
    return Location(product, batch, recall_note(ledger, txn, batch_ref),
                    withdrawal_note(ledger, txn, product_ref), holdings)


# -- units per batch and region: what a recall takes out of a region's stock ----------------------


class RegionTally:
    """Batch x region x status units changed in a transaction, written once at its end; kept
    beside tracecore.ledger.counters' own (and voided codes too, which those leave out)."""

    def __init__(self) -> None:
        self.units: defaultdict[tuple[int, int, int], int] = defaultdict(int)

    def move(self, before: CodeRecord | None, after: CodeRecord) -> None:
        """One code changed from ``before`` (None: not counted yet) to ``after``."""
        if after.level != UNIT:
            return
        if before is not None and before.batch_ref:
            self.units[(before.batch_ref, before.region, before.status)] -= 1
        if after.batch_ref:
            self.units[(after.batch_ref, after.region, after.status)] += 1

    def move_many(self, moves: Iterable[tuple[Projection | None, Projection, int]]) -> None:
        """``move`` of many codes at once, as ``Tally.move_many`` takes them."""
        units = self.units
        for before, after, n in moves:
            if after[0] != UNIT:
                continue
            if before is not None and before[1]:
                units[(before[1], before[6], before[3])] -= n
            if after[1]:
                units[(after[1], after[6], after[3])] += n

    def merge(self, other: RegionTally) -> None:
        for key, delta in other.units.items():
            self.units[key] += delta

    def write(self, txn: Txn, db: Database) -> None:
        add_counts(txn, db, ((_REGION.pack(*fields), delta)
                             for fields, delta in self.units.items()))


def stored_regions(txn: Txn, db: Database) -> dict[tuple[int, int, int], int]:
    """Units of every (batch ref, region, status) stored."""
    return {_REGION.unpack(key): units for key, units in counts_under(txn, db, b"")}


def batch_regions(txn: Txn, db: Database, batch_ref: int) -> list[tuple[int, int, int]]:
    """(region, status, units) of a batch's counted units."""
    return [(*_REGION.unpack(key)[1:], units)
            for key, units in counts_under(txn, db, ref_key(batch_ref))]


# -- regional report -------------------------------------------------------------------------------


def region_report(ledger: Ledger, txn: Txn, products: Sequence[str], first_day: int,
                  last_day: int, level: regions.RegionLevel, limit: str) -> list[RegionRow]:
    """Stock now and the flows of days [first_day, last_day] (days since the epoch, UTC) per
    product and region prefix at ``level``, within the ``limit`` prefix ("" = everywhere)."""
    wanted = ([ledger.product_in(txn, p, f"products[{i}]") for i, p in enumerate(products)]
              if products else _all_products(ledger, txn))
    refs = {ref for ref, _ in wanted}
    recalled, withdrawn = _holds_by_product(ledger, txn, refs)
    counters = ledger.db["counters"]
    prefixes: dict[int, str | None] = {}

    def prefix_of(region: int) -> str | None:
        if region not in prefixes:
            prefix = report_region(region, level)
            prefixes[region] = prefix if within(prefix, limit) else None
        return prefixes[region]

    figures: dict[int, dict[str, RegionFigures]] = {ref: {} for ref in refs}

    def row(product_ref: int, region: int) -> RegionFigures | None:
        prefix = prefix_of(region)
        if prefix is None:
            return None
        by_region = figures[product_ref]
        found = by_region.get(prefix)
        if found is None:
            found = by_region[prefix] = RegionFigures()
        return found

    for ref in refs:
        for region, status, units in product_counts(txn, counters, ref):
            if status == Status.ACTIVE and (f := row(ref, region)) is not None:
                if ref in withdrawn:
                    f.recalled += units
                else:
                    f.stock += units
        if ref in withdrawn:
            continue
        for batch_ref in recalled.get(ref, ()):
            for region, status, units in batch_regions(txn, ledger.db["batch_regions"],
                                                       batch_ref):
                if status == Status.ACTIVE and (f := row(ref, region)) is not None:
                    f.stock -= units
                    f.recalled += units
    for _, product_ref, region, flow, units in flow_counts(txn, counters, first_day, last_day):
        if product_ref in refs and (f := row(product_ref, region)) is not None:
            if flow == Flow.RECEIVED:
                f.received += units
            elif flow == Flow.SOLD:
                f.sold += units
            elif flow == Flow.RETURNED:
                f.returned += units
    return report_rows((p, figures[ref]) for ref, p in wanted)


def _all_products(ledger: Ledger, txn: Txn) -> list[tuple[int, cpb.Product]]:
    return [(ref_of(key), cpb.Product.FromString(bytes(data)))
            for key, data in txn.cursor(db=ledger.db["products"])]


def _holds_by_product(ledger: Ledger, txn: Txn, refs: Iterable[int]
                      ) -> tuple[dict[int, list[int]], set[int]]:
    """(recalled batch refs per product ref, withdrawn product refs) among ``refs``."""
    wanted = set(refs)
    recalled: dict[int, list[int]] = {}
    withdrawn: set[int] = set()
    for key, _ in txn.cursor(db=ledger.db["recalls"]):
        kind, ref = bytes(key[:1]), ref_of(key[1:])
        if kind == b"P":
            if ref in wanted:
                withdrawn.add(ref)
            continue
        product_ref, _ = ledger.product_in(txn, ledger.batch_by_ref(txn, ref).product)
        if product_ref in wanted:
            recalled.setdefault(product_ref, []).append(ref)
    return recalled, withdrawn
