"""Applying lifecycle events to the ledger: state machine, custody, aggregation, counters, journal.

Many requests are applied in one write transaction (group commit). Each request sees the
effects of the ones before it, and is kept whole or dropped whole (unless the caller asked for
best effort, which keeps every code that passed): its changes are gathered in an overlay and
merged into the group's only when it succeeds.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb
from pharmatrace.v1 import trace_pb2 as tpb

from tracecore.codes import Code
from tracecore.errors import InvalidArgument, TraceError
from tracecore.events import Event, EventKind
from tracecore.ledger.counters import UNIT, Flow, Tally
from tracecore.ledger.env import Txn
from tracecore.ledger.journal import Journal
from tracecore.ledger.oversight import Holds, RegionTally
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord, ref_key, ref_of
from tracecore.ledger.store import Ledger
from tracecore.oversight import DISPENSINGS, Raised, RegionRule, diversion
from tracecore.status import DECOMMISSIONED, TERMINAL, Action, Status, transition

#: EU FMD Art. 13: a decommissioning may be reverted within ten days.
UNDO_WINDOW_MS = 10 * 86_400_000
#: Bound on what one request may touch, containers' contents included.
MAX_CODES_PER_REQUEST = 1_000_000
_EARLIEST_MS = 946_684_800_000    # 2000-01-01
_LATEST_MS = 32_503_680_000_000   # 3000-01-01
#: Diversion notes one response carries at most; the alerts are all stored.
MAX_DIVERSION_NOTES = 100


@dataclass(frozen=True, slots=True)
class Failure:
    """A code left unchanged, and why."""

    event: int
    code: str
    reason: str
    position: int = 0       # the code's place in its event's list


@dataclass(slots=True)
class Result:
    """What one request did: whether it was applied, its events' sequence numbers, per-code
    failures, and notes (applied, but worth knowing: a receipt by someone other than the
    addressee)."""

    applied: bool = True
    seqs: list[int] = field(default_factory=list)
    changed: int = 0
    duplicates: int = 0
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: TraceError | None = None     # the request as a whole was refused
    alerts: list[Raised] = field(default_factory=list)  # to store once the request is durable


@dataclass(frozen=True, slots=True)
class Request:
    events: Sequence[Event]
    best_effort: bool = False
    who: str = ""


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Overlay:
    """Changes not yet written: code records, aggregation links, counters, events."""

    def __init__(self, below: _Overlay | None) -> None:
        self.below = below
        self.records: dict[bytes, CodeRecord] = {}
        self.parents: dict[bytes, bytes | None] = {}
        self.children_added: dict[bytes, set[bytes]] = {}
        self.children_removed: dict[bytes, set[bytes]] = {}
        self.batch_codes: list[tuple[bytes, bytes]] = []
        self.tally = Tally()
        self.events: list[tuple[lpb.EventRecord, list[bytes]]] = []
        self.event_ids: set[str] = set()
        self.pool_returns: dict[int, int] = {}
        self.regions = RegionTally()
        self.shipments: dict[bytes, int | None] = {}
        self.alerts: list[Raised] = []

    def merge_into(self, target: _Overlay) -> None:
        target.records.update(self.records)
        target.parents.update(self.parents)
        for parent, kids in self.children_added.items():
            target.children_added.setdefault(parent, set()).update(kids)
            target.children_removed.get(parent, set()).difference_update(kids)
        for parent, kids in self.children_removed.items():
            target.children_removed.setdefault(parent, set()).update(kids)
            target.children_added.get(parent, set()).difference_update(kids)
        target.batch_codes.extend(self.batch_codes)
        target.tally.merge(self.tally)
        target.events.extend(self.events)
        target.event_ids.update(self.event_ids)
        for pool_ref, n in self.pool_returns.items():
            target.pool_returns[pool_ref] = target.pool_returns.get(pool_ref, 0) + n
        target.regions.merge(self.regions)
        target.shipments.update(self.shipments)
        target.alerts.extend(self.alerts)


class _Session:
    """One write transaction applying many requests."""

    def __init__(self, ledger: Ledger, txn: Txn, now_ms: int) -> None:
        self.ledger = ledger
        self.txn = txn
        self.now_ms = now_ms
        self.db = ledger.db
        self.journal = Journal(ledger.db)
        self.group = _Overlay(None)
        self.view = self.group
        self._parties: dict[str, tuple[int, int]] = {}
        self._party_ids: dict[int, str] = {}
        self._batches: dict[tuple[int, str], int] = {}
        self._expiry: dict[int, dt.date] = {}
        self.holds = Holds(ledger, txn)
        self._batch_rules: dict[int, tuple[cpb.Batch, RegionRule]] = {}
        self._party_rules: dict[int, RegionRule | None] = {}
        self._children = txn.cursor(db=ledger.db["children"])
        self._codes = txn.cursor(db=ledger.db["codes"])

    # -- reads through the overlays --------------------------------------------------------------

    def record(self, key: bytes) -> CodeRecord | None:
        layer: _Overlay | None = self.view
        while layer is not None:
            found = layer.records.get(key)
            if found is not None:
                return found
            layer = layer.below
        return self.ledger.code_record(self.txn, key)

    def parent(self, key: bytes) -> bytes | None:
        layer: _Overlay | None = self.view
        while layer is not None:
            if key in layer.parents:
                return layer.parents[key]
            layer = layer.below
        data = self.txn.get(key, db=self.db["parents"])
        return bytes(data) if data is not None else None

    def children(self, key: bytes) -> set[bytes]:
        kids: set[bytes] = set()
        cursor = self._children
        if cursor.set_key(key):
            kids.update(bytes(v) for v in cursor.iternext_dup())
        layers: list[_Overlay] = []
        layer: _Overlay | None = self.view
        while layer is not None:
            layers.append(layer)
            layer = layer.below
        for layer in reversed(layers):
            kids.difference_update(layer.children_removed.get(key, ()))
            kids.update(layer.children_added.get(key, ()))
        return kids

    def records_many(self, keys: list[bytes]) -> list[tuple[bytes, CodeRecord | None]]:
        """Records of many keys through the overlays; the ledger read in key order."""
        layers: list[dict[bytes, CodeRecord]] = []
        layer: _Overlay | None = self.view
        while layer is not None:
            if layer.records:
                layers.append(layer.records)
            layer = layer.below
        found: dict[bytes, CodeRecord | None] = {}
        missing = []
        for k in keys:
            for records in layers:
                r = records.get(k)
                if r is not None:
                    found[k] = r
                    break
            else:
                missing.append(k)
        if missing:
            get = self._codes.get
            unpack = CodeRecord.unpack
            for k in sorted(missing):
                data = get(k)
                found[k] = unpack(data) if data is not None else None
        return [(k, found[k]) for k in keys]

    def tree(self, key: bytes) -> list[tuple[bytes, CodeRecord]]:
        """``key`` and everything packed inside it, with their records, level by level; only
        containers (level above 1: units never contain anything) are looked up for contents."""
        out: list[tuple[bytes, CodeRecord]] = []
        frontier = [key]
        while frontier:
            following: list[bytes] = []
            for k, r in self.records_many(frontier):
                if r is None:
                    raise _Refused("not issued by this tenant")
                out.append((k, r))
                if r.level > 1:
                    following.extend(self.children(k))
            if len(out) + len(following) > MAX_CODES_PER_REQUEST + 1:
                raise InvalidArgument(
                    f"more than {MAX_CODES_PER_REQUEST:,} packs in one request", field="codes")
            frontier = following
        return out

    def descendants(self, key: bytes) -> Iterator[bytes]:
        stack = [key]
        seen = 0
        while stack:
            for child in self.children(stack.pop()):
                seen += 1
                if seen > MAX_CODES_PER_REQUEST:
                    raise InvalidArgument(
                        f"more than {MAX_CODES_PER_REQUEST:,} packs in one request", field="codes")
                yield child
                stack.append(child)

    def party(self, party_id: str, field: str) -> tuple[int, int]:
        """(party ref, region as an integer) of a registered party."""
        found = self._parties.get(party_id)
        if found is None:
            ref, party = self.ledger.party_in(self.txn, party_id, field)
            found = self._parties[party_id] = (ref, int(party.region or 0))
            self._party_ids[ref] = party_id
        return found

    def party_id(self, ref: int) -> str:
        if ref not in self._party_ids:
            self._party_ids[ref] = self.ledger.party_by_ref(self.txn, ref).party_id
        return self._party_ids[ref]

    def batch_ref(self, product_ref: int, lot: str) -> int:
        key = (product_ref, lot)
        if key not in self._batches:
            data = self.txn.get(ref_key(product_ref) + lot.encode(), db=self.db["batch_ids"])
            if data is None:
                raise _Refused(f"batch {lot} is not registered for this code's product")
            self._batches[key] = ref_of(data)
        return self._batches[key]

    def held(self, record: CodeRecord) -> Status | None:
        """RECALLED or WITHDRAWN when a recall or withdrawal covers this pack, else None."""
        if not self.holds.any or (record.status is not Status.ACTIVE
                                  and record.status not in DECOMMISSIONED):
            return None
        return self.holds.hold_status(record.batch_ref, record.product_ref)

    def batch_rule(self, batch_ref: int) -> tuple[cpb.Batch, RegionRule]:
        """A batch and the regions it may be sold in."""
        found = self._batch_rules.get(batch_ref)
        if found is None:
            batch = self.ledger.batch_by_ref(self.txn, batch_ref)
            found = self._batch_rules[batch_ref] = (
                batch, RegionRule(batch.authorised_regions, "batch"))
        return found

    def party_rule(self, party_ref: int) -> RegionRule | None:
        """The regions a party (a distributor) may sell into; None when it is not restricted."""
        if party_ref not in self._party_rules:
            party = self.ledger.party_by_ref(self.txn, party_ref)
            self._party_rules[party_ref] = (
                RegionRule(party.authorised_regions, party.party_id)
                if party.authorised_regions else None)
        return self._party_rules[party_ref]

    def shipped_by(self, key: bytes) -> int:
        """The restricted party that shipped a pack now in transit; 0 if none was recorded."""
        layer: _Overlay | None = self.view
        while layer is not None:
            if key in layer.shipments:
                return layer.shipments[key] or 0
            layer = layer.below
        data = self.txn.get(key, db=self.db["shipments"])
        return ref_of(data) if data is not None else 0

    def expires_on(self, batch_ref: int) -> dt.date | None:
        if not batch_ref:
            return None
        if batch_ref not in self._expiry:
            batch = self.ledger.batch_by_ref(self.txn, batch_ref)
            self._expiry[batch_ref] = dt.date.fromisoformat(batch.expires_on)
        return self._expiry[batch_ref]

    # -- writes into the current overlay --------------------------------------------------------

    def put(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        self.view.records[key] = after
        was = before if counted(before) else None
        if counted(after):
            self.view.tally.move(was, after)
        # Voided codes too: a batch's picture says how many of its codes were scrapped.
        self.view.regions.move(was, after)

    def link(self, parent: bytes, child: bytes) -> None:
        self.view.parents[child] = parent
        self.view.children_added.setdefault(parent, set()).add(child)
        self.view.children_removed.get(parent, set()).discard(child)

    def unlink(self, parent: bytes, child: bytes) -> None:
        self.view.parents[child] = None
        self.view.children_removed.setdefault(parent, set()).add(child)
        self.view.children_added.get(parent, set()).discard(child)

    def flush(self) -> None:
        """Writes the group's overlay into the transaction."""
        group = self.group
        codes = self.txn.cursor(db=self.db["codes"])
        records = group.records
        codes.putmulti([(k, records[k].pack()) for k in sorted(records)])
        for child, parent in group.parents.items():
            if parent is None:
                self.txn.delete(child, db=self.db["parents"])
            else:
                self.txn.put(child, parent, db=self.db["parents"])
        for parent, kids in group.children_removed.items():
            for child in kids:
                self.txn.delete(parent, child, db=self.db["children"])
        for parent, kids in group.children_added.items():
            self.txn.cursor(db=self.db["children"]).putmulti(
                ((parent, child) for child in sorted(kids)), dupdata=True)
        if group.batch_codes:
            by_batch: dict[bytes, list[bytes]] = {}
            for batch, key in group.batch_codes:
                by_batch.setdefault(batch, []).append(key)
            cursor = self.txn.cursor(db=self.db["batch_codes"])
            for batch in sorted(by_batch):
                cursor.putmulti([(batch, k) for k in sorted(by_batch[batch])], dupdata=True)
        group.tally.write(self.txn, self.db["counters"])
        group.regions.write(self.txn, self.db["batch_regions"])
        for key, shipper in group.shipments.items():
            if shipper is None:
                self.txn.delete(key, db=self.db["shipments"])
            else:
                self.txn.put(key, ref_key(shipper), db=self.db["shipments"])
        if group.pool_returns:
            self.ledger.count_returns(self.txn, group.pool_returns)


def apply(ledger: Ledger, requests: Sequence[Request], now_ms: int) -> list[Result]:
    """Applies every request in one durable transaction; one Result per request, in order."""

    def fn(txn: Txn) -> list[Result]:
        session = _Session(ledger, txn, now_ms)
        results = [_apply_request(session, request) for request in requests]
        session.flush()
        for record, index in session.group.events:
            session.journal.append(txn, record, index)
        return results

    return ledger.env.write(fn)


def _apply_request(session: _Session, request: Request) -> Result:
    result = Result()
    overlay = _Overlay(session.group)
    session.view = overlay
    try:
        for i, event in enumerate(request.events):
            if event.event_id and (
                event.event_id in overlay.event_ids
                or event.event_id in session.group.event_ids
                or session.journal.seq_of_event_id(session.txn, event.event_id) is not None
            ):
                result.duplicates += 1
                continue
            _apply_event(session, i, event, request, result)
    except TraceError as exc:
        # A malformed event (unknown party, bad target) refuses its request, not the group.
        result.error = exc
    finally:
        session.view = session.group
    if result.error is not None or (result.failures and not request.best_effort):
        result.applied = False
        result.changed = 0
        result.notes.clear()
        return result
    overlay.merge_into(session.group)
    result.alerts = overlay.alerts
    if len(overlay.alerts) > MAX_DIVERSION_NOTES:
        result.notes.append(f"{len(overlay.alerts) - MAX_DIVERSION_NOTES:,} more diversion "
                            "alerts raised")
    base = session.journal.head(session.txn)[0] + len(session.group.events) - len(overlay.events)
    result.seqs = [base + n + 1 for n in range(len(overlay.events))]
    return result


def _apply_event(session: _Session, index: int, event: Event, request: Request,
                 result: Result) -> None:
    if not _EARLIEST_MS <= event.when_ms <= _LATEST_MS:
        raise InvalidArgument("must be epoch milliseconds between 2000 and 3000", field="when_ms")
    handler = _HANDLERS.get(event.kind)
    if handler is None:
        raise InvalidArgument(f"{event.kind.value} is not a per-pack event here", field="kind")
    touched: list[bytes] = []
    codes = event.codes
    if event.kind is EventKind.DISAGGREGATE and not codes and event.parent is not None:
        codes = tuple(sorted((Code.from_key(k) for k in session.children(event.parent.key())),
                             key=Code.key))
        event = replace(event, codes=codes)
    keys = [code.key() for code in codes]
    for position, (code, key) in enumerate(zip(codes, keys, strict=True)):
        try:
            touched.extend(handler(session, event, key, result))
        except _Refused as refused:
            result.failures.append(Failure(index, code.text(), refused.reason, position))
    if event.parent is not None and touched:
        touched.append(event.parent.key())
    if not touched:
        return
    result.changed += len(touched)
    record = _event_record(event, request.who, session.now_ms)
    record.codes.extend(keys)
    index_keys = list(dict.fromkeys(keys + ([event.parent.key()] if event.parent else [])))
    session.view.events.append((record, index_keys))
    if event.event_id:
        session.view.event_ids.add(event.event_id)


def _event_record(event: Event, who: str, now_ms: int) -> lpb.EventRecord:
    return lpb.EventRecord(
        kind=event.kind.value,
        parent=event.parent.key() if event.parent else b"",
        when_ms=event.when_ms,
        tz_offset=event.tz_offset,
        party_id=event.party_id,
        region=event.region,
        lot=event.lot,
        level=event.level,
        destination=event.destination,
        target=int(event.target) if event.target is not None else 0,
        reason=event.reason,
        # Every recorded event has an EPCIS eventID, so that an exported document sent back is
        # recognised as already recorded.
        event_id=event.event_id or f"urn:uuid:{uuid.uuid4()}",
        who=who or event.who,
        recorded_at_ms=now_ms,
    )


# -- one handler per kind: checks one code, updates it (and what it contains), or refuses -------


def _existing(session: _Session, key: bytes) -> CodeRecord:
    """The code's record; refused when it is not ours, or recalled or withdrawn (which nothing
    leaves)."""
    record = session.record(key)
    if record is None:
        raise _Refused("not issued by this tenant")
    held = session.held(record)
    if held is not None:
        raise _Refused("is RECALLED: its batch was recalled" if held is Status.RECALLED
                       else "is WITHDRAWN: its product was withdrawn")
    return record


def _all_existing(session: _Session, keys: list[bytes]) -> list[tuple[bytes, CodeRecord]]:
    """Every record of a pack and its contents, checked before any is changed, so a refused
    content leaves the whole pack as it was."""
    return [(k, _existing(session, k)) for k in keys]


def _step(record: CodeRecord, action: Action, target: Status | None = None) -> Status:
    try:
        return transition(record.status, action, target)
    except TraceError as exc:
        raise _Refused(exc.message) from exc


def _commission(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    if not 0 <= event.level <= 4:
        raise InvalidArgument("unknown packaging level", field="level")
    record = _existing(session, key)
    status = _step(record, Action.COMMISSION)
    batch_ref = record.batch_ref
    if event.lot:
        wanted = session.batch_ref(record.product_ref, event.lot)
        if batch_ref and batch_ref != wanted:
            raise _Refused("its pool was issued for another batch")
        batch_ref = wanted
    if not batch_ref:
        raise _Refused("no batch: give the lot it is packed from")
    held = session.holds.hold_status(batch_ref, record.product_ref)
    if held is not None:
        raise _Refused("its batch is recalled" if held is Status.RECALLED
                       else "its product is withdrawn")
    holder, region = session.party(event.party_id, "context.party_id") if event.party_id else (0, 0)
    after = record.evolve(status=status, batch_ref=batch_ref, holder_ref=holder, region=region,
                          level=event.level or record.level, updated_at_ms=session.now_ms)
    session.put(key, record, after)
    session.view.batch_codes.append((ref_key(batch_ref), key))
    return [key]


def _void(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    record = _existing(session, key)
    session.put(key, record, record.evolve(status=_step(record, Action.VOID),
                                           updated_at_ms=session.now_ms))
    returns = session.view.pool_returns
    returns[record.pool_ref] = returns.get(record.pool_ref, 0) + 1
    return [key]


def _aggregate(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    if event.parent is None:
        raise _Refused("aggregation needs a parent container")
    parent_key = event.parent.key()
    parent = session.record(parent_key)
    if parent is None:
        raise _Refused("parent container is not issued by this tenant")
    parent_held = session.held(parent)
    if parent_held is not None:
        raise _Refused(f"parent container is {parent_held.name}")
    if parent.status is not Status.ACTIVE:
        raise _Refused(f"parent container is {parent.status.name}, not ACTIVE")
    if parent.in_transit:
        raise _Refused("parent container is in transit")
    child = _existing(session, key)
    if key == parent_key:
        raise _Refused("a container cannot contain itself")
    if child.status is not Status.ACTIVE:
        raise _Refused(f"is {child.status.name}, only ACTIVE packs can be aggregated")
    if child.in_transit:
        raise _Refused("is in transit")
    if child.level >= parent.level:
        raise _Refused(f"packaging level {child.level} cannot go into level {parent.level}")
    current = session.parent(key)
    if current is not None:
        raise _Refused("already in a container: disaggregate it first")
    ancestor = session.parent(parent_key)
    while ancestor is not None:
        if ancestor == key:
            raise _Refused("the parent is inside this pack")
        ancestor = session.parent(ancestor)
    session.link(parent_key, key)
    return [key]


def _disaggregate(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    if event.parent is None:
        raise _Refused("disaggregation needs the parent container")
    _existing(session, key)
    if session.parent(key) != event.parent.key():
        raise _Refused("not in that container")
    session.unlink(event.parent.key(), key)
    return [key]


def _top_level(session: _Session, key: bytes, what: str) -> CodeRecord:
    record = _existing(session, key)
    if session.parent(key) is not None:
        raise _Refused(f"is inside a container: {what} the container, or disaggregate first")
    return record


def _ship(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    record = _top_level(session, key, "ship")
    if record.status is not Status.ACTIVE:
        raise _Refused(f"is {record.status.name}, only ACTIVE packs can be shipped")
    if record.in_transit:
        raise _Refused("is already in transit")
    sender, _ = session.party(event.party_id, "context.party_id") if event.party_id else (0, 0)
    if not event.destination:
        raise _Refused("shipping needs a destination party")
    destination, _ = session.party(event.destination, "destination")
    if sender and record.holder_ref and record.holder_ref != sender:
        raise _Refused(f"is held by {session.party_id(record.holder_ref)}, not {event.party_id}")
    if destination == record.holder_ref:
        raise _Refused("is already held by the destination")
    moved = session.tree(key)
    for k, r in moved:
        session.put(k, r, r.evolve(flags=r.flags | FLAG_IN_TRANSIT, holder_ref=destination))
    # Where a distributor bound to regions ships to is checked where the packs arrive.
    shipper = sender or record.holder_ref
    if shipper and session.party_rule(shipper) is not None:
        session.view.shipments[key] = shipper
    return [k for k, _ in moved]


def _receive(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    record = _top_level(session, key, "receive")
    if not record.in_transit:
        raise _Refused("is not in transit")
    if not event.party_id:
        raise _Refused("receipt needs the receiving party")
    receiver, region = session.party(event.party_id, "context.party_id")
    if receiver != record.holder_ref:
        result.notes.append(
            f"{Code.from_key(key).text()} was shipped to {session.party_id(record.holder_ref)}"
            f" but received by {event.party_id}")
    moved = session.tree(key)
    for k, r in moved:
        after = r.evolve(flags=r.flags & ~FLAG_IN_TRANSIT, holder_ref=receiver, region=region)
        session.put(k, r, after)
        session.view.tally.flow(after, Flow.RECEIVED, event.when_ms)
    shipper = session.shipped_by(key)
    if shipper:
        session.view.shipments[key] = None
    if region:
        _check_receipt(session, event, key, record, [r for _, r in moved], shipper, region,
                       result)
    return [k for k, _ in moved]


def _check_receipt(session: _Session, event: Event, key: bytes, record: CodeRecord,
                   records: list[CodeRecord], shipper: int, region: int, result: Result) -> None:
    """Diversion (窜货): units received where their batch, or the distributor that shipped them,
    may not sell. One alert per pack received and authorisation broken."""
    units: dict[int, int] = {}
    for r in records:
        if r.level == UNIT and r.batch_ref:
            units[r.batch_ref] = units.get(r.batch_ref, 0) + 1
    for batch_ref, n in units.items():
        batch, rule = session.batch_rule(batch_ref)
        if not rule.allows(region):
            _divert(session, event, key, tpb.ALERT_SOURCE_RECEIPT, n, batch, region, rule, result)
    rule_of_shipper = session.party_rule(shipper) if shipper else None
    if rule_of_shipper is not None and not rule_of_shipper.allows(region):
        batch_ref = record.batch_ref or next(iter(units), 0)
        batch = session.batch_rule(batch_ref)[0] if batch_ref else cpb.Batch()
        _divert(session, event, key, tpb.ALERT_SOURCE_RECEIPT, sum(units.values()), batch,
                region, rule_of_shipper, result)


def _divert(session: _Session, event: Event, key: bytes, source: int, units: int,
            batch: cpb.Batch, region: int, rule: RegionRule, result: Result) -> None:
    raised = diversion(key, Code.from_key(key).text(), source=source, at_ms=event.when_ms,
                       units=units, product=batch.product, lot=batch.lot, region=region,
                       party_id=event.party_id, rule=rule, status=Status.ACTIVE)
    alerts = session.view.alerts
    if len(alerts) < MAX_DIVERSION_NOTES:
        result.notes.append(f"DIVERSION: {raised.alert.detail}")
    alerts.append(raised)


def _decommission(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    """A pack leaves the supply chain; a container takes all it holds with it. A pack taken from
    inside a container (a unit sold from an opened case) leaves the container."""
    if event.target not in DECOMMISSIONED:
        raise InvalidArgument("must be a decommissioned status (dispensed, exported, sample, "
                              "free sample, checked out, locked)", field="target")
    record = _existing(session, key)
    if record.in_transit:
        raise _Refused("is in transit")
    if record.status in DECOMMISSIONED:
        raise _Refused(f"already {record.status.name.lower().replace('_', ' ')}")
    _step(record, Action.DECOMMISSION, event.target)
    holder, region = (session.party(event.party_id, "context.party_id") if event.party_id
                      else (record.holder_ref, record.region))
    parent = session.parent(key)
    if parent is not None:
        session.unlink(parent, key)
    changed = [key]
    dispensed: dict[int, int] = {}
    for k, r in _all_existing(session, [key, *session.descendants(key)]):
        if r.status is not Status.ACTIVE:
            continue
        after = r.evolve(status=_step(r, Action.DECOMMISSION, event.target), holder_ref=holder,
                         region=region or r.region, updated_at_ms=session.now_ms)
        session.put(k, r, after)
        if k != key:
            changed.append(k)
        if after.status in DISPENSINGS:
            session.view.tally.flow(after, Flow.SOLD, event.when_ms)
            # A pack its holder received was checked then; one that reached the dispensing
            # party without a receipt there is checked now.
            if r.level == UNIT and r.batch_ref and holder != r.holder_ref:
                dispensed[r.batch_ref] = dispensed.get(r.batch_ref, 0) + 1
    if region:
        for batch_ref, n in dispensed.items():
            batch, rule = session.batch_rule(batch_ref)
            if not rule.allows(region):
                _divert(session, event, key, tpb.ALERT_SOURCE_DISPENSE, n, batch, region, rule,
                        result)
    return changed


def _undo(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    """EU FMD Art. 13: the decommissioning party, within 10 days (LOCKED: any time), a pack not
    expired. A container's undo reverts what its decommissioning took with it."""
    record = _existing(session, key)
    if record.status not in DECOMMISSIONED:
        raise _Refused(f"is {record.status.name}: only a decommissioning can be undone")
    if not event.party_id:
        raise _Refused("undo needs the party that decommissioned the pack")
    party, _ = session.party(event.party_id, "context.party_id")
    if party != record.holder_ref:
        raise _Refused("only the party that decommissioned it can undo it")
    # Measured on the ledger's clock: when the decommissioning and the undo were recorded, not
    # the event times a caller claims.
    elapsed = session.now_ms - record.updated_at_ms
    if record.status is not Status.LOCKED and elapsed > UNDO_WINDOW_MS:
        raise _Refused("more than 10 days since it was decommissioned")
    today = dt.datetime.fromtimestamp(session.now_ms / 1000, dt.UTC).date()
    expires = session.expires_on(record.batch_ref)
    if expires is not None and expires < today:
        raise _Refused("the pack has expired")
    changed = []
    for k in [key, *session.descendants(key)] if record.level > 1 else [key]:
        r = _existing(session, k)
        if r.status is not record.status or r.holder_ref != record.holder_ref:
            continue
        after = r.evolve(status=_step(r, Action.UNDO), updated_at_ms=session.now_ms)
        session.put(k, r, after)
        changed.append(k)
        if r.status in (Status.DISPENSED, Status.FREE_SAMPLE):
            session.view.tally.flow(after, Flow.RETURNED, event.when_ms)
    return changed


def _terminal(action: Action) -> object:
    def handler(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
        record = _top_level(session, key, action.value.replace("_", " "))
        _step(record, action)
        moved = [key, *session.descendants(key)]
        records: list[tuple[bytes, CodeRecord]] = []
        for k in moved:
            r = session.record(k)
            if r is None:
                raise _Refused("contains a code not issued by this tenant")
            # Recalled or withdrawn contents stay as they are: nothing leaves those.
            if r.status not in TERMINAL and session.held(r) is None:
                records.append((k, r))
        for k, r in records:
            session.put(k, r, r.evolve(status=_step(r, action), updated_at_ms=session.now_ms))
        return moved

    return handler


def counted(record: CodeRecord) -> bool:
    """Codes enter the counters when commissioned: issued-but-unused ones, and those voided
    unused, were never on a pack."""
    return record.status not in (Status.ISSUED, Status.VOIDED)


_HANDLERS = {
    EventKind.COMMISSION: _commission,
    EventKind.VOID: _void,
    EventKind.AGGREGATE: _aggregate,
    EventKind.DISAGGREGATE: _disaggregate,
    EventKind.SHIP: _ship,
    EventKind.RECEIVE: _receive,
    EventKind.DECOMMISSION: _decommission,
    EventKind.UNDO: _undo,
    EventKind.DESTROY: _terminal(Action.DESTROY),
    EventKind.REPORT_STOLEN: _terminal(Action.REPORT_STOLEN),
}
