"""The rules of a pack's life: the state machine, custody, aggregation, holds (recalls and
withdrawals) and diversion checks of each lifecycle event, one handler per event kind.

The handlers read and change packs only through ``Packs``, so they run the same against the
ledger's write transaction (``tracecore.ledger.lifecycle``) and against an in-memory fake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from operator import itemgetter
from typing import cast

from pharmatrace.v1 import common_pb2 as cpb

from tracecore.clock import utc_date
from tracecore.codes import Code
from tracecore.errors import InvalidArgument
from tracecore.events import Event, EventKind
from tracecore.ledger.contents import Row, row_of
from tracecore.ledger.counters import UNIT, Flow
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord, with_custody
from tracecore.lifecycle_request import Refused, Result
from tracecore.oversight import DISPENSINGS, RegionRule, diversion
from tracecore.pack_checks import UNCOUNTED as UNCOUNTED  # also named here, for the ledger
from tracecore.pack_checks import counted as counted
from tracecore.pack_checks import (
    existing,
    held,
    market_refusal,
    on_market,
    step,
    top_level,
)
from tracecore.packs import Packs
from tracecore.status import DECOMMISSIONED, TERMINAL, Action, Status

#: EU FMD Art. 13: a decommissioning may be reverted within ten days.
UNDO_WINDOW_MS = 10 * 86_400_000
#: Bound on what one request may touch, containers' contents included.
MAX_CODES_PER_REQUEST = 1_000_000
#: Diversion notes one response carries at most; the alerts are all stored.
MAX_DIVERSION_NOTES = 100
_EARLIEST_MS = 946_684_800_000    # 2000-01-01
_LATEST_MS = 32_503_680_000_000   # 3000-01-01
#: (status, product, batch) of a record: all that commissioning checks of it.
_COMMISSIONING = itemgetter(0, 3, 4)
#: (status, batch, product) of a record: what ``on_market`` checks of it.
_MARKET = itemgetter(0, 4, 3)
#: (status, flags, holder) of a record: what shipping checks of it once it is on the market.
_CUSTODY = itemgetter(0, 11, 6)
#: (status, batch, product, flags) of a record: all a decommissioning checks of it.
_LEAVING = itemgetter(0, 4, 3, 11)
_new = tuple.__new__
#: ``pharmatrace.v1.AlertSource`` of the alerts a custody event raises.
ALERT_SOURCE_RECEIPT = 1
ALERT_SOURCE_DISPENSE = 2


Handler = Callable[[Packs, Event, bytes, Result], list[bytes]]
#: The rule of an event kind over all of an event's codes at once: the codes it changed, and the
#: place and reason of each code it refused.
EventRule = Callable[[Packs, Event, list[bytes], Result],
                     tuple[list[bytes], list[tuple[int, str]]]]


def check_event_time(event: Event) -> None:
    """An event's time is plausible (between 2000 and 3000) and a handler exists for it."""
    if not _EARLIEST_MS <= event.when_ms <= _LATEST_MS:
        raise InvalidArgument("must be epoch milliseconds between 2000 and 3000", field="when_ms")
    if event.kind not in RULES and event.kind is not EventKind.RECORD:
        raise InvalidArgument(f"{event.kind.value} is not a per-pack event here", field="kind")


def _today(packs: Packs) -> dt.date:
    return utc_date(packs.now_ms)


def _commission_all(packs: Packs, event: Event, keys: list[bytes], result: Result
                    ) -> tuple[list[bytes], list[tuple[int, str]]]:
    """Commissioning of an event's codes together: the codes changed, and the place in ``keys``
    and the reason of each refused. The same as one code after another: a code named twice is
    commissioned by its first naming and refused at the next. What a code may become depends
    on its status, product and batch alone: decided once for each of those met, not per code."""
    if not keys:
        return [], []
    if not 0 <= event.level <= 4:
        raise InvalidArgument("unknown packaging level", field="level")
    if len(set(keys)) < len(keys):
        return _one_after_another(_commission_all, packs, event, keys, result)
    stated = event.extra.get("expiry", "")
    expired = bool(stated) and stated < _today(packs).isoformat()
    decided: dict[tuple[Status, int, int] | None, tuple[Status, int] | str] = {}
    touched: list[bytes] = []
    refused: list[tuple[int, str]] = []
    before: list[CodeRecord] = []
    becomes: list[tuple[Status, int]] = []
    for position, (key, found) in enumerate(packs.records_many(keys)):
        asked = None if found is None else _COMMISSIONING(found)
        outcome = decided.get(asked)
        if outcome is None:
            outcome = decided[asked] = _commissioning(packs, event, found, stated, expired)
        if outcome.__class__ is str:
            refused.append((position, outcome))
            continue
        touched.append(key)
        before.append(cast(CodeRecord, found))
        becomes.append(cast("tuple[Status, int]", outcome))
    if not touched:
        return touched, refused
    holder, region = packs.party(event.party_id, "context.party_id") if event.party_id \
        else (0, 0)
    now, level = packs.now_ms, event.level
    after = [_new(CodeRecord, (status, level or own_level, key_id, product, batch, pool, holder,
                               region, issued, now, last, flags))
             for (_, own_level, key_id, product, _, pool, _, _, issued, _, last, flags),
             (status, batch) in zip(before, becomes, strict=True)]
    for key, (_, batch) in zip(touched, becomes, strict=True):
        packs.commissioned(batch, key)
    packs.put_many(touched, before, after)
    return touched, refused


def _commissioning(packs: Packs, event: Event, found: CodeRecord | None, stated: str,
                   expired: bool) -> tuple[Status, int] | str:
    """What commissioning makes of a code of this record: its status and batch after, or why
    it is refused."""
    try:
        record = on_market(packs, found)
        status = step(record, Action.COMMISSION)
        batch_ref = record.batch_ref
        if event.lot:
            wanted = packs.batch_ref(record.product_ref, event.lot)
            if batch_ref and batch_ref != wanted:
                raise Refused("its pool was issued for another batch")
            batch_ref = wanted
        if not batch_ref:
            raise Refused("no batch: give the lot it is packed from")
        if expired:
            raise Refused(f"its expiry date {stated} is past: expired packs are not "
                          "commissioned")
        hold = packs.hold_status(batch_ref, record.product_ref)
        if hold is not None:
            raise Refused("its batch is recalled" if hold is Status.RECALLED
                          else "its product is withdrawn")
    except Refused as refusal:
        return refusal.reason
    return status, batch_ref


def _void(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
    record = existing(packs, key)
    packs.put(key, record, record.evolve(status=step(record, Action.VOID),
                                         updated_at_ms=packs.now_ms))
    packs.returned(record.pool_ref)
    return [key]


def _aggregate(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
    if event.parent is None:
        raise Refused("aggregation needs a parent container")
    parent_key = event.parent.key()
    parent = packs.record(parent_key)
    if parent is None:
        raise Refused("parent container is not issued by this tenant")
    parent_held = held(packs, parent)
    if parent_held is not None:
        raise Refused(f"parent container is {parent_held.name}")
    if parent.status is not Status.ACTIVE:
        raise Refused(f"parent container is {parent.status.name}, not ACTIVE")
    if packs.custody(parent_key, parent).in_transit:
        raise Refused("parent container is in transit")
    child = packs.custody(key, existing(packs, key))
    if key == parent_key:
        raise Refused("a container cannot contain itself")
    if child.status is not Status.ACTIVE:
        raise Refused(f"is {child.status.name}, only ACTIVE packs can be aggregated")
    if child.in_transit:
        raise Refused("is in transit")
    if child.level >= parent.level:
        raise Refused(f"packaging level {child.level} cannot go into level {parent.level}")
    if packs.parent(key) is not None:
        raise Refused("already in a container: disaggregate it first")
    ancestor = packs.parent(parent_key)
    while ancestor is not None:
        if ancestor == key:
            raise Refused("the parent is inside this pack")
        ancestor = packs.parent(ancestor)
    packs.link(parent_key, key)
    return [key]


def _disaggregate(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
    if event.parent is None:
        raise Refused("disaggregation needs the parent container")
    existing(packs, key)
    if packs.parent(key) != event.parent.key():
        raise Refused("not in that container")
    packs.unlink(event.parent.key(), key)
    return [key]


def _ship_all(packs: Packs, event: Event, keys: list[bytes], result: Result
              ) -> tuple[list[bytes], list[tuple[int, str]]]:
    """Packs the sender holds leave for the destination, with all they contain. The same as one
    code after another; an event of units, each named once, is checked in one loop over its
    records read together, each check decided once for each kind of record met (its status,
    batch, product, flags and holder) and only the container it may be in asked per code."""
    if not keys:
        return [], []
    found = packs.records_many(keys)
    if len(keys) > 1 and (len(set(keys)) < len(keys)
                          or any(r is not None and r.level > 1 for _, r in found)):
        return _one_after_another(_ship_all, packs, event, keys, result)
    parties: list[tuple[int, int]] = []
    market: dict[tuple[Status, int, int] | None, str] = {}
    custody: dict[tuple[Status, int, int], str | int] = {}
    touched: list[bytes] = []
    refused: list[tuple[int, str]] = []
    before: list[CodeRecord] = []
    for position, (key, stored) in enumerate(found):
        asked = None if stored is None else _MARKET(stored)
        reason = market.get(asked)
        if reason is None:
            reason = market[asked] = market_refusal(packs, stored)
        if not reason and packs.parent(key) is not None:
            reason = "is inside a container: ship the container, or disaggregate first"
        if reason:
            refused.append((position, reason))
            continue
        record = cast(CodeRecord, stored)
        held_as = _CUSTODY(record)
        outcome = custody.get(held_as)
        if outcome is None:
            outcome = custody[held_as] = _shipping(packs, event, record, parties)
        if isinstance(outcome, str):
            refused.append((position, outcome))
            continue
        touched.append(key)
        before.append(record)
        if outcome:
            packs.shipped(key, outcome)
    if parties:
        after = with_custody(before, parties[0][1], set_flags=FLAG_IN_TRANSIT)
        packs.put_many(touched, before, after)
        for shipped, was, now in zip(touched, before, after, strict=True):
            if was.level > 1:
                # What the container holds goes with it: its custody is the container's.
                packs.carry(shipped, was, now)
                result.changed += sum(packs.contents(shipped).values())
    return touched, refused


def _shipping(packs: Packs, event: Event, record: CodeRecord,
              parties: list[tuple[int, int]]) -> str | int:
    """Why a pack on the market and at the top level may not be shipped by ``event``; else the
    regions-bound party shipping it, whom its receipt is checked against (0: none). The
    (sender, destination) refs are looked up into ``parties`` when first needed."""
    if record.status is not Status.ACTIVE:
        return f"is {record.status.name}, only ACTIVE packs can be shipped"
    if record.in_transit:
        return "is already in transit"
    if not parties:
        parties.append((
            packs.party(event.party_id, "context.party_id")[0] if event.party_id else 0,
            # A partner's EPCIS shipping event may name no destination (destinationList is
            # optional): the packs are then in transit to nobody known, and whoever receives
            # them takes them.
            packs.party(event.destination, "destination")[0] if event.destination else 0))
    sender, destination = parties[0]
    if sender and record.holder_ref and record.holder_ref != sender:
        return f"is held by {packs.party_id(record.holder_ref)}, not {event.party_id}"
    if destination and destination == record.holder_ref:
        return "is already held by the destination"
    # Where a distributor bound to regions ships to is checked where the packs arrive.
    shipper = sender or record.holder_ref
    return shipper if shipper and packs.party_rule(shipper) is not None else 0


def _receive(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
    record = top_level(packs, key, "receive")
    if not record.in_transit:
        raise Refused("is not in transit")
    if not event.party_id:
        raise Refused("receipt needs the receiving party")
    receiver, region = packs.party(event.party_id, "context.party_id")
    if record.holder_ref and receiver != record.holder_ref:
        result.notes.append(
            f"{Code.from_key(key).text()} was shipped to {packs.party_id(record.holder_ref)}"
            f" but received by {event.party_id}")
    after = with_custody([record], receiver, region, clear_flags=FLAG_IN_TRANSIT)[0]
    packs.put(key, record, after)
    # The pack and everything inside it, which takes the container's custody with it.
    rows = packs.contents(key) if record.level > 1 else {}
    packs.carry(key, record, after)
    own = row_of(record)
    rows[own] = rows.get(own, 0) + 1
    packs.flow_rows(rows, after.region, Flow.RECEIVED, event.when_ms)
    shipper = packs.shipped_by(key)
    if shipper:
        packs.shipped(key, None)
    if region:
        _check_receipt(packs, event, key, record, rows, shipper, region, result)
    result.changed += sum(rows.values()) - 1
    return [key]


def _check_receipt(packs: Packs, event: Event, key: bytes, record: CodeRecord,
                   rows: dict[Row, int], shipper: int, region: int, result: Result) -> None:
    """Diversion (窜货): units received where their batch, or the distributor that shipped them,
    may not sell. One alert per pack received and authorisation broken."""
    units: dict[int, int] = {}
    for (level, batch_ref, _, _, _), n in rows.items():
        if level == UNIT and batch_ref:
            units[batch_ref] = units.get(batch_ref, 0) + n
    for batch_ref, n in units.items():
        batch, rule = packs.batch_rule(batch_ref)
        if not rule.allows(region):
            _divert(packs, event, key, ALERT_SOURCE_RECEIPT, n, batch, region, rule, result)
    rule_of_shipper = packs.party_rule(shipper) if shipper else None
    if rule_of_shipper is not None and not rule_of_shipper.allows(region):
        batch_ref = record.batch_ref or next(iter(units), 0)
        batch = packs.batch_rule(batch_ref)[0] if batch_ref else cpb.Batch()
        _divert(packs, event, key, ALERT_SOURCE_RECEIPT, sum(units.values()), batch,
                region, rule_of_shipper, result)


def _divert(packs: Packs, event: Event, key: bytes, source: int, units: int,
            batch: cpb.Batch, region: int, rule: RegionRule, result: Result) -> None:
    raised = diversion(key, Code.from_key(key).text(), source=source, at_ms=event.when_ms,
                       units=units, product=batch.product, lot=batch.lot, region=region,
                       party_id=event.party_id, rule=rule, status=Status.ACTIVE)
    if packs.raise_alert(raised) < MAX_DIVERSION_NOTES:
        result.notes.append(f"DIVERSION: {raised.alert.detail}")


def _decommission_all(packs: Packs, event: Event, keys: list[bytes], result: Result
                      ) -> tuple[list[bytes], list[tuple[int, str]]]:
    """Packs leave the supply chain; a container takes all it holds with it. A pack taken from
    inside a container (a unit sold from an opened case) leaves the container. The same as one
    code after another; an event of units, each named once, is checked in one loop over its
    records read together, whether a record may leave decided once for each kind of record met
    (its status, batch, product and flags)."""
    if not keys:
        return [], []
    if event.target not in DECOMMISSIONED:
        raise InvalidArgument("must be a decommissioned status (dispensed, exported, sample, "
                              "free sample, checked out, locked)", field="target")
    found = packs.records_many(keys)
    if len(keys) > 1 and (len(set(keys)) < len(keys)
                          or any(r is not None and r.level > 1 for _, r in found)):
        # A container's contents may be named after it: each code sees what the ones before
        # did.
        return _one_after_another(_decommission_all, packs, event, keys, result)
    target = event.target
    now = packs.now_ms
    party: tuple[int, int] | None = None
    checked: dict[tuple[Status, int, int, int] | None, str] = {}
    touched: list[bytes] = []
    refused: list[tuple[int, str]] = []
    put: list[bytes] = []
    before: list[CodeRecord] = []
    after: list[CodeRecord] = []
    sold: list[CodeRecord] = []
    for position, (key, stored) in enumerate(found):
        parent = packs.parent(key) if stored is not None else None
        if parent is not None:
            stored = packs.custody(key, cast(CodeRecord, stored))
        asked = None if stored is None else _LEAVING(stored)
        reason = checked.get(asked)
        if reason is None:
            reason = checked[asked] = _decommission_refusal(packs, stored, target)
        if reason:
            refused.append((position, reason))
            continue
        record = cast(CodeRecord, stored)
        if event.party_id:
            if party is None:
                party = packs.party(event.party_id, "context.party_id")
            holder, region = party
        else:
            holder, region = record.holder_ref, record.region
        if record.level > 1:
            # Every record of the pack and its contents is checked before any is changed, so a
            # refused content leaves the whole pack as it was.
            try:
                contents = packs.tree(key)
                for _, r in contents[1:]:
                    on_market(packs, r)
            except Refused as refusal:
                refused.append((position, refusal.reason))
                continue
        else:
            contents = [(key, record)]
        if parent is not None:
            packs.unlink(parent, key)
        touched.append(key)
        dispensed: dict[int, int] = {}
        for k, r in contents:
            if r.status is not Status.ACTIVE:
                continue
            (_, level, key_id, product, batch, pool, own_holder, own_region, issued, _, last,
             flags) = r
            changed = _new(CodeRecord, (
                step(r, Action.DECOMMISSION, target), level, key_id, product, batch, pool,
                holder, region or own_region, issued, now, last, flags))
            put.append(k)
            before.append(r)
            after.append(changed)
            if k != key:
                touched.append(k)
                packs.restated(k, r, changed)
            if changed.status in DISPENSINGS:
                sold.append(changed)
                # A pack its holder received was checked then; one that reached the dispensing
                # party without a receipt there is checked now.
                if level == UNIT and batch and holder != own_holder:
                    dispensed[batch] = dispensed.get(batch, 0) + 1
        if region:
            for batch_ref, n in dispensed.items():
                batch_record, rule = packs.batch_rule(batch_ref)
                if not rule.allows(region):
                    _divert(packs, event, key, ALERT_SOURCE_DISPENSE, n, batch_record, region,
                            rule, result)
    packs.put_many(put, before, after)
    if sold:
        packs.flow_many(sold, Flow.SOLD, event.when_ms)
    return touched, refused


def _decommission_refusal(packs: Packs, stored: CodeRecord | None, target: Status | None
                          ) -> str:
    """Why a pack of this record may not be decommissioned to ``target``; "" when it may."""
    try:
        record = on_market(packs, stored)
        if record.in_transit:
            raise Refused("is in transit")
        if record.status in DECOMMISSIONED:
            raise Refused(f"already {record.status.name.lower().replace('_', ' ')}")
        step(record, Action.DECOMMISSION, target)
    except Refused as refusal:
        return refusal.reason
    return ""


def _per_code(rule: EventRule) -> Handler:
    """A whole-event rule as the handler of one code: Refused when it refuses the code."""

    def handler(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
        touched, refused = rule(packs, event, [key], result)
        if refused:
            raise Refused(refused[0][1])
        return touched

    return handler


def _one_after_another(rule: EventRule, packs: Packs, event: Event, keys: list[bytes],
                       result: Result) -> tuple[list[bytes], list[tuple[int, str]]]:
    """``rule`` applied to one code after another."""
    touched: list[bytes] = []
    refused: list[tuple[int, str]] = []
    for position, key in enumerate(keys):
        done, not_done = rule(packs, event, [key], result)
        touched += done
        refused += [(position, reason) for _, reason in not_done]
    return touched, refused


def _undo(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
    """EU FMD Art. 13: the decommissioning party, within 10 days (LOCKED: any time), a pack not
    expired. A container's undo reverts what its decommissioning took with it."""
    record = packs.custody(key, existing(packs, key))
    if record.status not in DECOMMISSIONED:
        raise Refused(f"is {record.status.name}: only a decommissioning can be undone")
    if not event.party_id:
        raise Refused("undo needs the party that decommissioned the pack")
    party, _ = packs.party(event.party_id, "context.party_id")
    if party != record.holder_ref:
        raise Refused("only the party that decommissioned it can undo it")
    # Measured on the ledger's clock: when the decommissioning and the undo were recorded, not
    # the event times a caller claims.
    elapsed = packs.now_ms - record.updated_at_ms
    if record.status is not Status.LOCKED and elapsed > UNDO_WINDOW_MS:
        raise Refused("more than 10 days since it was decommissioned")
    today = _today(packs)
    expires = packs.expires_on(record.batch_ref)
    if expires is not None and expires < today:
        raise Refused("the pack has expired")
    changed = []
    for k, r in packs.tree(key) if record.level > 1 else [(key, record)]:
        on_market(packs, r)
        if r.status is not record.status or r.holder_ref != record.holder_ref:
            continue
        after = r.evolve(status=step(r, Action.UNDO), updated_at_ms=packs.now_ms)
        packs.put(k, r, after)
        packs.restated(k, r, after)
        changed.append(k)
        if r.status in (Status.DISPENSED, Status.FREE_SAMPLE):
            packs.flow(after, Flow.RETURNED, event.when_ms)
    return changed


def _replace(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
    """A damaged label replaced: the new code, fresh from a pool of the same product, takes
    the old one's place (batch, holder, level, container, contents) and the old code is voided.
    The pack stays one pack: the counters move from the old code to the new."""
    if event.replacement is None:
        raise Refused("a replacement needs the new code")
    old = packs.custody(key, existing(packs, key))
    if old.status is not Status.ACTIVE:
        raise Refused(f"is {old.status.name}: only an ACTIVE pack's label can be replaced")
    if old.in_transit:
        raise Refused("is in transit: replace its label where it is received")
    new_key = event.replacement.key()
    new = packs.record(new_key)
    if new is None:
        raise Refused("the new code is not issued by this tenant")
    if new.status is not Status.ISSUED:
        raise Refused(f"the new code is {new.status.name}, not a fresh ISSUED one")
    if new.product_ref != old.product_ref:
        raise Refused("the new code is of another product")
    now = packs.now_ms
    # The old code leaves its container with the custody it inherited, and its contents go
    # into the new code (its custody is the same) before the old code is voided.
    parent = packs.parent(key)
    if parent is not None:
        packs.unlink(parent, key)
    packs.put(new_key, old, old.evolve(key_id=new.key_id, pool_ref=new.pool_ref,
                                       issued_at_ms=new.issued_at_ms, updated_at_ms=now))
    packs.commissioned(old.batch_ref, new_key)
    for child in list(packs.children(key)):
        packs.unlink(key, child)
        packs.link(new_key, child)
    # Written as if it had never been commissioned: its pack is counted under the new code.
    packs.put(key, new, old.evolve(status=Status.VOIDED, updated_at_ms=now))
    if parent is not None:
        packs.link(parent, new_key)
    return [key, new_key]


def _terminal(action: Action) -> Handler:
    """Destroyed or stolen: a pack at the top level and all it contains."""

    def handler(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
        record = top_level(packs, key, action.value.replace("_", " "))
        step(record, action)
        try:
            tree = packs.tree(key)
        except Refused:
            raise Refused("contains a code not issued by this tenant") from None
        # Recalled or withdrawn contents stay as they are: nothing leaves those.
        records = [(k, r) for k, r in tree if r.status not in TERMINAL and held(packs, r) is None]
        for k, r in records:
            after = r.evolve(status=step(r, action), updated_at_ms=packs.now_ms)
            packs.put(k, r, after)
            packs.restated(k, r, after)
        return [k for k, _ in tree]

    return handler


#: The rules of each per-pack event kind, custody aside.
#: The handler of each per-pack event kind, before custody (tracecore.custody_policy guards
#: them): checks one code, updates it (and what it contains), or raises Refused.
RULES: dict[EventKind, Handler] = {
    EventKind.COMMISSION: _per_code(_commission_all),
    EventKind.VOID: _void,
    EventKind.AGGREGATE: _aggregate,
    EventKind.DISAGGREGATE: _disaggregate,
    EventKind.SHIP: _per_code(_ship_all),
    EventKind.RECEIVE: _receive,
    EventKind.DECOMMISSION: _per_code(_decommission_all),
    EventKind.UNDO: _undo,
    EventKind.DESTROY: _terminal(Action.DESTROY),
    EventKind.REPORT_STOLEN: _terminal(Action.REPORT_STOLEN),
    EventKind.REPLACE: _replace,
}
#: The kinds whose rule is stated over a whole event (``RULES`` holds its form for one code).
EVENT_RULES: dict[EventKind, EventRule] = {
    EventKind.COMMISSION: _commission_all,
    EventKind.DECOMMISSION: _decommission_all,
    EventKind.SHIP: _ship_all,
}
