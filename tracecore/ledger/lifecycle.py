"""Applying lifecycle events to the ledger: overlays, one write transaction, counters, journal.

Many requests are applied in one write transaction (group commit). Each request sees the
effects of the ones before it, and is kept whole or dropped whole (unless the caller asked for
best effort, which keeps every code that passed): its changes are gathered in an overlay and
merged into the group's only when it succeeds. What each event may do is decided by
``tracecore.lifecycle_rules``; this module reads and writes what those rules ask for.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.codes import Code, Scheme
from tracecore.custody_policy import handler_of
from tracecore.errors import TraceError
from tracecore.events import Event, EventKind
from tracecore.ledger import collector, foreign
from tracecore.ledger.env import Txn
from tracecore.ledger.overlay import Overlay
from tracecore.ledger.pack_session import Session
from tracecore.ledger.store import Ledger
from tracecore.lifecycle_request import Failure, Refused, Request, Result
from tracecore.lifecycle_rules import (
    EVENT_RULES,
    MAX_DIVERSION_NOTES,
    RULES,
    UNDO_WINDOW_MS,
    check_event_time,
    counted,
)
from tracecore.pack_ratio import pack_ratio
from tracecore.status import Status

__all__ = ["UNDO_WINDOW_MS", "Failure", "Request", "Result", "apply", "counted"]

#: Events applied or journaled between two calls of ``apply``'s ``make_way`` (a few ms of work).
MAKE_WAY_EVERY = 32


def _go_on() -> None:
    """``make_way`` when nothing else shares the process."""


def apply(ledger: Ledger, requests: Sequence[Request], now_ms: int,
          make_way: Callable[[], None] = _go_on) -> list[Result]:
    """Applies every request in one durable transaction; one Result per request, in order.
    ``make_way`` is called every ``MAKE_WAY_EVERY`` events: the writer lets other tenants'
    writes run there (``Writer.make_way``)."""

    def fn(txn: Txn) -> list[Result]:
        session = Session(ledger, txn, now_ms)
        results = [_apply_request(session, request, make_way) for request in requests]
        session.flush()
        for n, (record, index) in enumerate(session.group.events, 1):
            seq = session.journal.append(txn, record, session.stored_keys(index), stored=True)
            if record.documents:
                foreign.index_documents(ledger, txn, seq, record.documents)
            if not n % MAKE_WAY_EVERY:
                make_way()
        return results

    with collector.paused():
        return ledger.env.write(fn)


def _apply_request(session: Session, request: Request, make_way: Callable[[], None]
                   ) -> Result:
    result = Result()
    overlay = Overlay(session.group)
    session.view = overlay
    session.request = request
    try:
        for i, event in enumerate(request.events):
            if i and not i % MAKE_WAY_EVERY:
                make_way()
            if event.event_id and (
                event.event_id in overlay.event_ids
                or event.event_id in session.group.event_ids
                or session.journal.seq_of_event_id(session.txn, event.event_id,
                                                   _named_key(event)) is not None
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


def _named_key(event: Event) -> bytes | None:
    """The key of one code the event names, under which its journal entry is indexed."""
    if event.codes:
        return event.codes[0].key()
    return event.parent.key() if event.parent is not None else None


def _apply_event(session: Session, index: int, event: Event, request: Request,
                 result: Result) -> None:
    check_event_time(event)
    if event.kind is EventKind.RECORD:
        _keep(session, event, request)
        return
    handler = handler_of(event)
    touched: list[bytes] = []
    codes = event.codes
    if event.kind is EventKind.DISAGGREGATE and not codes and event.parent is not None:
        codes = tuple(sorted((Code.from_key(k) for k in session.children(event.parent.key())),
                             key=Code.key))
        event = replace(event, codes=codes)
    keys = Code.keys_of(codes)
    # Every rule but commissioning's asks where each code is packed.
    session.prefetch(keys, containers=event.kind is not EventKind.COMMISSION)
    unit = session.logistic_unit(event, event.parent) if event.kind is EventKind.AGGREGATE \
        and event.parent is not None and event.parent.scheme is Scheme.SSCC else None
    if request.not_signed_here is not None:
        _first_sights(session, event, codes, keys, request.not_signed_here)
    left: list[bytes] = []
    whole = EVENT_RULES.get(event.kind) if handler is RULES.get(event.kind) else None
    if whole is not None:
        touched, refusals = whole(session, event, keys, result)
        for position, reason in refusals:
            result.failures.append(Failure(index, codes[position].text(), reason, position))
            left.append(keys[position])
    else:
        for position, (code, key) in enumerate(zip(codes, keys, strict=True)):
            try:
                touched.extend(handler(session, event, key, result))
            except Refused as refused:
                result.failures.append(Failure(index, code.text(), refused.reason, position))
                left.append(key)
    if event.kind is EventKind.AGGREGATE and event.parent is not None and touched:
        broken = pack_ratio(session, event.parent.key(), event.partial)
        if broken is not None:
            # The container stays as it was: none of this event's packs go in.
            for key in touched:
                session.unlink(event.parent.key(), key, settle=False)
            touched = []
            result.failures.append(Failure(index, event.parent.text(), broken))
    if event.parent is not None and touched:
        touched.append(event.parent.key())
    if not touched:
        if unit is not None and event.parent is not None:
            # Nothing went in: the SSCC stays the label no aggregation has used yet.
            session.put(event.parent.key(), unit, unit.evolve(status=Status.ISSUED))
        return
    result.changed += len(touched)
    record = _event_record(event, request.who, session.now_ms)
    record.codes.extend(keys)
    record.refused.extend(left)
    index_keys = list(dict.fromkeys(keys + ([event.parent.key()] if event.parent else [])
                                    + ([event.replacement.key()] if event.replacement else [])))
    session.view.events.append((record, index_keys))
    if event.event_id:
        session.view.event_ids.add(event.event_id)


def _first_sights(session: Session, event: Event, codes: Sequence[Code], keys: list[bytes],
                  not_signed_here: Callable[[Sequence[Code]], Sequence[Code]]) -> None:
    """Records the codes of a partner's event that the ledger does not know and no key of this
    tenant signed as minted elsewhere; only those the ledger does not know are checked."""
    named = [*codes, *((event.parent,) if event.parent is not None else ())]
    named_keys = [*keys, *((event.parent.key(),) if event.parent is not None else ())]
    unknown = [named[i] for i in session.unknown(named_keys)]
    if not unknown:
        return
    for code in not_signed_here(list(dict.fromkeys(unknown))):
        session.first_sight(event, code.key())


def _keep(session: Session, event: Event, request: Request) -> None:
    """Journals an EPCIS event that changes no pack, indexed under the codes it names so that a
    pack's trace and an export by product find it."""
    record = _event_record(event, request.who, session.now_ms)
    keys = Code.keys_of(event.codes)
    record.codes.extend(keys)
    parent = [event.parent.key()] if event.parent else []
    session.view.events.append((record, list(dict.fromkeys(keys + parent))))
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
        replacement=event.replacement.key() if event.replacement else b"",
        product=event.product,
        epcis=event.epcis,
        epcis_context=event.epcis_context,
        who=who or event.who,
        recorded_at_ms=now_ms,
        documents=[cpb.BusinessDocument(type=d.type, id=d.id, counterparty=d.counterparty)
                   for d in event.documents],
    )
