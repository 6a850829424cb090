"""Applying lifecycle events to the ledger: state machine, custody, aggregation, counters, journal.

Many requests are applied in one write transaction (group commit). Each request sees the
effects of the ones before it, and is kept whole or dropped whole (unless the caller asked for
best effort, which keeps every code that passed): its changes are gathered in an overlay and
merged into the group's only when it succeeds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.codes import Code
from tracecore.errors import InvalidArgument, TraceError
from tracecore.events import Event, EventKind
from tracecore.ledger.counters import Flow, Tally
from tracecore.ledger.env import Txn
from tracecore.ledger.journal import Journal
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord, ref_key, ref_of
from tracecore.ledger.store import Ledger
from tracecore.status import DECOMMISSIONED, TERMINAL, Action, Status, transition

#: EU FMD Art. 13: a decommissioning may be reverted within ten days.
UNDO_WINDOW_MS = 10 * 86_400_000
#: Bound on what one request may touch, containers' contents included.
MAX_CODES_PER_REQUEST = 1_000_000


@dataclass(frozen=True, slots=True)
class Failure:
    """A code left unchanged, and why."""

    event: int
    code: str
    reason: str


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
        cursor = self.txn.cursor(db=self.db["children"])
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
        if _counted(after):
            self.view.tally.move(before if _counted(before) else None, after)

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
        codes.putmulti(sorted((k, r.pack()) for k, r in group.records.items()))
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
            self.txn.cursor(db=self.db["batch_codes"]).putmulti(sorted(group.batch_codes),
                                                               dupdata=True)
        group.tally.write(self.txn, self.db["counters"])
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
    base = session.journal.head(session.txn)[0] + len(session.group.events) - len(overlay.events)
    result.seqs = [base + n + 1 for n in range(len(overlay.events))]
    return result


def _apply_event(session: _Session, index: int, event: Event, request: Request,
                 result: Result) -> None:
    handler = _HANDLERS.get(event.kind)
    if handler is None:
        raise InvalidArgument(f"{event.kind.value} is not a per-pack event here", field="kind")
    touched: list[bytes] = []
    codes = event.codes
    if event.kind is EventKind.DISAGGREGATE and not codes and event.parent is not None:
        codes = tuple(sorted((Code.from_key(k) for k in session.children(event.parent.key())),
                             key=Code.key))
        event = replace(event, codes=codes)
    for code in codes:
        key = code.key()
        try:
            touched.extend(handler(session, event, key, result))
        except _Refused as refused:
            result.failures.append(Failure(index, code.text(), refused.reason))
    if event.parent is not None and touched:
        touched.append(event.parent.key())
    if not touched:
        return
    result.changed += len(touched)
    record = _event_record(event, request.who, session.now_ms)
    record.codes.extend(c.key() for c in event.codes)
    index_keys = list(dict.fromkeys(
        [c.key() for c in event.codes] + ([event.parent.key()] if event.parent else [])))
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
        event_id=event.event_id,
        who=who or event.who,
        recorded_at_ms=now_ms,
    )


# -- one handler per kind: checks one code, updates it (and what it contains), or refuses -------


def _existing(session: _Session, key: bytes) -> CodeRecord:
    record = session.record(key)
    if record is None:
        raise _Refused("not issued by this tenant")
    return record


def _step(record: CodeRecord, action: Action, target: Status | None = None) -> Status:
    try:
        return transition(record.status, action, target)
    except TraceError as exc:
        raise _Refused(exc.message) from exc


def _commission(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
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
    holder, region = session.party(event.party_id, "party_id") if event.party_id else (0, 0)
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
    sender, _ = session.party(event.party_id, "party_id") if event.party_id else (0, 0)
    if not event.destination:
        raise _Refused("shipping needs a destination party")
    destination, _ = session.party(event.destination, "destination")
    if sender and record.holder_ref and record.holder_ref != sender:
        raise _Refused(f"is held by {session.party_id(record.holder_ref)}, not {event.party_id}")
    if destination == record.holder_ref:
        raise _Refused("is already held by the destination")
    moved = [key, *session.descendants(key)]
    for k in moved:
        r = _existing(session, k)
        session.put(k, r, r.evolve(flags=r.flags | FLAG_IN_TRANSIT, holder_ref=destination))
    return moved


def _receive(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    record = _top_level(session, key, "receive")
    if not record.in_transit:
        raise _Refused("is not in transit")
    if not event.party_id:
        raise _Refused("receipt needs the receiving party")
    receiver, region = session.party(event.party_id, "party_id")
    if receiver != record.holder_ref:
        result.notes.append(
            f"{Code.from_key(key).text()} was shipped to {session.party_id(record.holder_ref)}"
            f" but received by {event.party_id}")
    moved = [key, *session.descendants(key)]
    for k in moved:
        r = _existing(session, k)
        after = r.evolve(flags=r.flags & ~FLAG_IN_TRANSIT, holder_ref=receiver, region=region)
        session.put(k, r, after)
        session.view.tally.flow(after, Flow.RECEIVED, event.when_ms)
    return moved


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
    holder, region = (session.party(event.party_id, "party_id") if event.party_id
                      else (record.holder_ref, record.region))
    parent = session.parent(key)
    if parent is not None:
        session.unlink(parent, key)
    changed = [key]
    for k in [key, *session.descendants(key)]:
        r = _existing(session, k)
        if r.status is not Status.ACTIVE:
            continue
        after = r.evolve(status=_step(r, Action.DECOMMISSION, event.target), holder_ref=holder,
                         region=region or r.region, updated_at_ms=session.now_ms)
        session.put(k, r, after)
        if k != key:
            changed.append(k)
        if after.status in (Status.DISPENSED, Status.FREE_SAMPLE):
            session.view.tally.flow(after, Flow.SOLD, event.when_ms)
    return changed


def _undo(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
    record = _existing(session, key)
    if record.status not in DECOMMISSIONED:
        raise _Refused(f"is {record.status.name}: only a decommissioning can be undone")
    if not event.party_id:
        raise _Refused("undo needs the party that decommissioned the pack")
    party, _ = session.party(event.party_id, "party_id")
    if party != record.holder_ref:
        raise _Refused("only the party that decommissioned it can undo it")
    # Measured on the ledger's clock: when the decommissioning and the undo were recorded, not
    # the event times a caller claims.
    elapsed = session.now_ms - record.updated_at_ms
    if record.status is not Status.LOCKED and elapsed > UNDO_WINDOW_MS:
        raise _Refused("more than 10 days since it was decommissioned")
    expires = session.expires_on(record.batch_ref)
    when = dt.datetime.fromtimestamp(event.when_ms / 1000, dt.UTC).date()
    if expires is not None and expires < when:
        raise _Refused("the pack has expired")
    after = record.evolve(status=_step(record, Action.UNDO), updated_at_ms=session.now_ms)
    session.put(key, record, after)
    if record.status in (Status.DISPENSED, Status.FREE_SAMPLE):
        session.view.tally.flow(after, Flow.RETURNED, event.when_ms)
    return [key]


def _terminal(action: Action) -> object:
    def handler(session: _Session, event: Event, key: bytes, result: Result) -> list[bytes]:
        record = _top_level(session, key, action.value.replace("_", " "))
        _step(record, action)
        moved = [key, *session.descendants(key)]
        for k in moved:
            r = _existing(session, k)
            if r.status in TERMINAL:
                continue
            session.put(k, r, r.evolve(status=_step(r, action), updated_at_ms=session.now_ms))
        return moved

    return handler


def _counted(record: CodeRecord) -> bool:
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
