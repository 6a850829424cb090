"""The one custody policy: what each event kind asks of a party-bound credential about the
packs it names (holder, requester of the pack's pool, or nothing), checked before the event's
rule runs; the dispensing a tenant's policy lets a party make of what it does not hold is
raised as an alert."""

from __future__ import annotations

import enum

from pharmatrace.v1 import common_pb2 as cpb

from tracecore.codes import Code
from tracecore.events import Event, EventKind
from tracecore.lifecycle_request import Refused, Result
from tracecore.lifecycle_rules import MAX_DIVERSION_NOTES, RULES, Handler
from tracecore.oversight import DISPENSINGS, dispensed_elsewhere
from tracecore.packs import Packs


class Custody(enum.Enum):
    """What an event kind asks of a party-bound credential about the packs it names."""

    FREE = "free"
    """Nothing: commissioning makes the party the holder; a receipt has its own addressee
    check; voiding touches only issued codes, which no party holds yet."""
    HOLDER = "holder"
    """The credential's party holds the pack (and, for containers, the container), and the
    pack is not in transit."""
    REQUESTER = "requester"
    """The pack's pool was requested by the credential, or by another credential of its party:
    one line cannot void the unused codes of a pool another line printed."""


#: The one custody policy: what each event kind asks of a party-bound credential. Credentials
#: bound to no party (the tenant's own) act for the tenant and are not held to custody.
CUSTODY: dict[EventKind, Custody] = {
    EventKind.COMMISSION: Custody.FREE,
    EventKind.VOID: Custody.REQUESTER,
    EventKind.RECEIVE: Custody.FREE,
    EventKind.AGGREGATE: Custody.HOLDER,
    EventKind.DISAGGREGATE: Custody.HOLDER,
    EventKind.SHIP: Custody.HOLDER,
    EventKind.DECOMMISSION: Custody.HOLDER,
    EventKind.UNDO: Custody.HOLDER,
    EventKind.DESTROY: Custody.HOLDER,
    EventKind.REPORT_STOLEN: Custody.HOLDER,
    EventKind.REPLACE: Custody.HOLDER,
}


def check_custody(packs: Packs, event: Event, key: bytes) -> str | None:
    """Refused unless the event's custodian (a party-bound credential's party) may act on the
    pack under ``CUSTODY``; nothing to check for events of credentials bound to no party.

    Where the tenant's policy lets a party dispense what it does not hold, such a dispensing
    passes: the holder it was taken from is returned ("the tenant" for none), to be raised as
    an alert once the dispensing is done. None otherwise."""
    custody = CUSTODY[event.kind]
    if custody is Custody.REQUESTER:
        _check_requester(packs, event, key)
        return None
    if not event.custodian or custody is Custody.FREE:
        return None
    party, _ = packs.party(event.custodian, "context.party_id")
    elsewhere = (event.kind is EventKind.DECOMMISSION and event.target in DISPENSINGS
                 and event.parent is None and packs.dispense_elsewhere())
    keys = [key] if event.parent is None else [key, event.parent.key()]
    for k in keys:
        record = packs.record(k)
        if record is None:
            continue        # the handler refuses codes the tenant never issued
        record = packs.custody(k, record)
        what = "its container " if k != key else ""
        if record.in_transit and event.kind is not EventKind.UNDO:
            raise Refused(f"{what}is in transit: only the tenant can act on it until it is "
                          "received")
        if record.holder_ref != party:
            holder = packs.party_id(record.holder_ref) if record.holder_ref else "the tenant"
            if elsewhere:
                return holder
            raise Refused(f"{what}is held by {holder}, not {event.custodian}")
    return None


def _dispensed_elsewhere(packs: Packs, event: Event, key: bytes, holder: str,
                         result: Result) -> None:
    record = packs.record(key)
    batch = (packs.batch_rule(record.batch_ref)[0] if record is not None and record.batch_ref
             else cpb.Batch())
    raised = dispensed_elsewhere(key, Code.from_key(key).text(), at_ms=event.when_ms,
                                 product=batch.product, lot=batch.lot,
                                 party_id=event.custodian, holder=holder)
    if packs.raise_alert(raised) < MAX_DIVERSION_NOTES:
        result.notes.append(f"DISPENSED_ELSEWHERE: {raised.alert.detail}")


def _check_requester(packs: Packs, event: Event, key: bytes) -> None:
    """A code goes back only by the credential (or party) whose pool it came from; the
    tenant's admin may return any, and only the admin those of a pool from before requesters
    were kept (or issued with authentication off), which name no one."""
    if not event.credential:
        return
    record = packs.record(key)
    if record is None or not record.pool_ref:
        return
    credential, party = packs.pool_requester(record.pool_ref)
    if credential == event.credential or (party and party == event.custodian):
        return
    if not credential:
        raise Refused("its pool names no requester (issued before requesters were kept, or "
                      "with authentication off): only the tenant's admin may hand its codes "
                      "back")
    raise Refused("its pool was requested by another credential"
                  + (f" (of {party})" if party else "") + ": only it, its party or the "
                  "tenant's admin may hand its codes back")


def _guarded(handler: Handler) -> Handler:
    def guarded(packs: Packs, event: Event, key: bytes, result: Result) -> list[bytes]:
        holder = check_custody(packs, event, key)
        changed = handler(packs, event, key, result)
        if holder is not None:
            _dispensed_elsewhere(packs, event, key, holder, result)
        return changed

    return guarded


#: The handler of each per-pack event kind, custody checked first: checks one code, updates it
#: (and what it contains), or raises Refused.
HANDLERS: dict[EventKind, Handler] = {kind: _guarded(h) for kind, h in RULES.items()}


def handler_of(event: Event) -> Handler:
    """The handler of an event's kind: custody is checked per code only where the event's
    credential is held to it (``check_custody`` passes every code of the others)."""
    custody = CUSTODY[event.kind]
    if (event.credential if custody is Custody.REQUESTER
            else event.custodian and custody is not Custody.FREE):
        return HANDLERS[event.kind]
    return RULES[event.kind]
