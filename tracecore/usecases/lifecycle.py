"""A pack's life in the supply chain: commissioning, packing into containers, shipping,
receiving, decommissioning and its undo, destruction, and partners' events captured or imported
as EPCIS. Every event of a request is checked here, then applied by the group committer."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pharmatrace.v1 import common_pb2 as cpb

from tracecore import masterdata
from tracecore.codes import Code, parse, parse_many
from tracecore.credentials import Principal
from tracecore.errors import FailedPrecondition, InvalidArgument, ParseError, PermissionDenied
from tracecore.events import Document, Event, EventKind
from tracecore.ledger import lifecycle, policy
from tracecore.ledger.exchange import Imported
from tracecore.ledger.tenants import Tenant
from tracecore.lifecycle_request import Failure
from tracecore.status import Status
from tracecore.usecases import partners
from tracecore.usecases.declare import ADMIN, DISTRIBUTOR, LINE, PHARMACY, Scope, use_case
from tracecore.usecases.writeside import WriteSide, sender, who

#: Codes one event may name.
MAX_CODES = 100_000
MAX_REASON = 500
MAX_EVENT_ID = 256
_EARLIEST_MS = 946_684_800_000  # 2000-01-01
_DAY_MS = 86_400_000
_TZ = re.compile(r"[+-](?:0\d|1[0-4]):[0-5]\d")


@dataclass(frozen=True, slots=True)
class EventContext:
    """When, where and by whom an event happened, as the caller states it (all optional)."""

    party_id: str = ""
    when_ms: int = 0
    tz_offset: str = ""
    event_id: str = ""
    best_effort: bool = False


@dataclass(frozen=True, slots=True)
class EventInput:
    """One event of a captured stream; ``kind`` is the event kind's name ("" when unknown)."""

    kind: str
    codes: Sequence[str]
    context: EventContext = EventContext()
    parent: str = ""
    lot: str = ""
    level: int = 0
    destination: str = ""
    target: int = 0
    reason: str = ""
    partial: bool = False
    documents: Sequence[tuple[str, str, str]] = ()
    """Business documents (type, id, counterparty) the event is part of."""


@dataclass(slots=True)
class Outcome:
    """What a request did: applied or not, its events' sequence numbers, codes changed,
    events already recorded, codes refused (and why), and notes worth knowing."""

    applied: bool = True
    event_seqs: list[int] = field(default_factory=list)
    changed: int = 0
    duplicates: int = 0
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: int = 0


_WRITERS = {ADMIN, LINE, DISTRIBUTOR}
_HOLDERS = {ADMIN, DISTRIBUTOR, PHARMACY}


@use_case(roles={ADMIN, LINE}, writes=True, scope=Scope.PARTY)
async def commission(side: WriteSide, caller: Principal, tenant: str, codes: Sequence[str],
                     context: EventContext, *, lot: str = "", level: int = 0) -> Outcome:
    """Issued codes become packs on the market, bound to a batch."""
    if level and level not in cpb.PackagingLevel.values():
        raise InvalidArgument("unknown packaging level", field="level")
    return await _one(side, caller, tenant, context, EventKind.COMMISSION, codes, lot=lot,
                      level=level)


@use_case(roles=_WRITERS, writes=True, scope=Scope.PARTY)
async def aggregate(side: WriteSide, caller: Principal, tenant: str, parent: str,
                    children: Sequence[str], context: EventContext, *, partial: bool = False
                    ) -> Outcome:
    """Packs go into a container; a container short of its product's pack ratio only when
    ``partial``."""
    return await _one(side, caller, tenant, context, EventKind.AGGREGATE, children,
                      parent=_code(parent, "parent"), partial=partial)


@use_case(roles=_WRITERS, writes=True, scope=Scope.PARTY)
async def disaggregate(side: WriteSide, caller: Principal, tenant: str, parent: str,
                       children: Sequence[str], context: EventContext) -> Outcome:
    """Packs come out of a container; none named: all it holds."""
    return await _one(side, caller, tenant, context, EventKind.DISAGGREGATE, children,
                      parent=_code(parent, "parent"), allow_empty=True)


@use_case(roles=_WRITERS, writes=True, scope=Scope.PARTY)
async def ship(side: WriteSide, caller: Principal, tenant: str, codes: Sequence[str],
               destination: str, context: EventContext,
               documents: Sequence[tuple[str, str, str]] = ()) -> Outcome:
    """Packs the sender holds leave for another party, with all they contain, under the
    business documents given (the bill or despatch advice: type, number, counterparty)."""
    masterdata.party_id(destination, "destination")
    return await _one(side, caller, tenant, context, EventKind.SHIP, codes,
                      destination=destination, documents=partners.documents(documents))


@use_case(roles={ADMIN, LINE, DISTRIBUTOR, PHARMACY}, writes=True, scope=Scope.PARTY)
async def receive(side: WriteSide, caller: Principal, tenant: str, codes: Sequence[str],
                  context: EventContext, documents: Sequence[tuple[str, str, str]] = ()
                  ) -> Outcome:
    """Packs in transit arrive at the receiving party (a pharmacy takes delivery of the packs
    it dispenses: a pack in transit cannot be dispensed), under the bill they came with."""
    if not acting_party(caller, context.party_id):
        raise InvalidArgument("is required: the receiving party", field="context.party_id")
    return await _one(side, caller, tenant, context, EventKind.RECEIVE, codes,
                      documents=partners.documents(documents))


@use_case(roles={ADMIN, LINE, DISTRIBUTOR}, writes=True, scope=Scope.PARTY)
async def replace_code(side: WriteSide, caller: Principal, tenant: str, old_code: str,
                       new_code: str, reason: str, context: EventContext) -> Outcome:
    """A damaged label replaced by a fresh code of the same product, where the tenant's policy
    allows it (China's code rules do, the EU's do not)."""
    old, new = _code(old_code, "old_code"), _code(new_code, "new_code")
    if old == new:
        raise InvalidArgument("must differ from old_code", field="new_code")
    if not policy.read(side.data.get(tenant).ledger).label_replacement:
        raise FailedPrecondition("this tenant's policy does not allow replacing labels "
                                 "(pharmatrace tenant policy --label-replacement on)")
    return await _one(side, caller, tenant, context, EventKind.REPLACE, [old_code],
                      replacement=new, reason=_reason(reason))


@use_case(roles=_HOLDERS, writes=True, scope=Scope.PARTY)
async def decommission(side: WriteSide, caller: Principal, tenant: str, codes: Sequence[str],
                       target: int, reason: str, context: EventContext) -> Outcome:
    """Packs leave the supply chain: dispensed, exported, samples, checked out or locked."""
    return await _one(side, caller, tenant, context, EventKind.DECOMMISSION, codes,
                      target=_target(target), reason=_reason(reason))


@use_case(roles=_HOLDERS, writes=True, scope=Scope.PARTY)
async def undo(side: WriteSide, caller: Principal, tenant: str, codes: Sequence[str],
               context: EventContext) -> Outcome:
    """A decommissioning reverted by the party that made it (EU FMD Art. 13)."""
    if not acting_party(caller, context.party_id):
        raise InvalidArgument("is required: the party that decommissioned the packs",
                              field="context.party_id")
    return await _one(side, caller, tenant, context, EventKind.UNDO, codes)


@use_case(roles=_HOLDERS, writes=True, scope=Scope.PARTY)
async def destroy(side: WriteSide, caller: Principal, tenant: str, codes: Sequence[str],
                  stolen: bool, reason: str, context: EventContext) -> Outcome:
    """Packs destroyed, or reported stolen, with all they contain."""
    kind = EventKind.REPORT_STOLEN if stolen else EventKind.DESTROY
    return await _one(side, caller, tenant, context, kind, codes, reason=_reason(reason))


@use_case(roles=_WRITERS, writes=True, scope=Scope.PARTY)
async def capture_events(side: WriteSide, caller: Principal, tenant: str,
                         events: Sequence[EventInput], best_effort: bool) -> Outcome:
    """Many events of any kinds, applied in order as one request."""
    checked: list[Event] = []
    failures: list[Failure] = []
    for index, given in enumerate(events):
        event, bad = _event(caller, given, index, f"events[{index}]", side.clock())
        failures.extend(bad)
        checked.append(event)
    found = side.data.get(tenant)
    if failures and not best_effort:
        return Outcome(applied=False, failures=failures, events=len(events))
    result = await side.committer.submit(
        found.name, lifecycle.Request(checked, best_effort, who(caller),
                                      not_signed_here=_elsewhere(found), via="capture"))
    outcome = _outcome(result, failures)
    outcome.events = len(events)
    return outcome


@use_case(roles=_WRITERS, writes=True, scope=Scope.TENANT)
async def import_epcis(side: WriteSide, caller: Principal, tenant: str, document: str,
                       best_effort: bool) -> Outcome:
    """A partner's EPCIS document (2.0 JSON-LD, 1.2 or 2.0 XML), its events applied as one
    request; under best effort an event that does not read is refused alone, with its JSON
    path, and the others are applied."""
    found = side.data.get(tenant)
    imported = await side.importer.read(found, document, caller.party_id, sender(caller))
    return await apply_imported(side, found, caller, imported, best_effort)


async def apply_imported(side: WriteSide, found: Tenant, caller: Principal,
                         imported: Imported, best_effort: bool) -> Outcome:
    """What ``import_epcis`` makes of a document once read (the REST binding's queued capture
    jobs too): its events applied as one request, refusals named by their place."""
    read, refusals, external = imported
    if refusals and not best_effort:
        raise InvalidArgument(refusals[0].reason, field=refusals[0].field)
    # A party-bound credential's document is held to custody like its single events (the
    # importer's readers set that already, off the event loop).
    held = caller.party_id, sender(caller)
    events = [e if (e.custodian, e.credential) == held
              else replace(e, custodian=held[0], credential=held[1]) for _, e in read]
    result = await side.committer.submit(
        found.name, lifecycle.Request(events, best_effort, who(caller),
                                      not_signed_here=_elsewhere(found), via="epcis",
                                      external_parties=external))
    # Failures name the event by its place in the document, not in the list applied.
    places = [i for i, _ in read]
    result.failures = [replace(f, event=places[f.event]) for f in result.failures]
    refused = [Failure(r.index, "", r.reason, field=r.field) for r in refusals]
    outcome = _outcome(result, sorted(refused, key=lambda f: f.event))
    if events and result.duplicates == len(events):
        outcome.notes.append("every event of this document was recorded before: nothing changed")
    outcome.events = len(events) + len(refusals)
    return outcome


def _elsewhere(tenant: Tenant) -> Callable[[Sequence[Code]], list[Code]]:
    """Which of the codes a partner's events name no key of this tenant signed: those the
    ledger does not know yet are recorded as minted elsewhere on first sight."""
    macs = tenant.keys.macs()
    return lambda codes: partners.not_signed_here(codes, macs)


async def _one(side: WriteSide, caller: Principal, tenant: str, context: EventContext,
               kind: EventKind, texts: Sequence[str], *, parent: Code | None = None,
               lot: str = "", level: int = 0, destination: str = "",
               target: Status | None = None, reason: str = "",
               allow_empty: bool = False, partial: bool = False,
               replacement: Code | None = None, documents: tuple[Document, ...] = ()
               ) -> Outcome:
    found = side.data.get(tenant)
    codes, bad = _codes(texts, 0, "codes", allow_empty=allow_empty)
    if bad and not context.best_effort:
        return Outcome(applied=False, failures=bad)
    event = Event(kind, tuple(codes), event_time(context.when_ms, side.clock()),
                  tz_offset(context.tz_offset), party_id=acting_party(caller, context.party_id),
                  parent=parent, lot=lot, level=level, destination=destination, target=target,
                  reason=reason, event_id=_event_id(context.event_id), partial=partial,
                  replacement=replacement, custodian=caller.party_id, documents=documents,
                  credential=sender(caller))
    result = await side.committer.submit(
        found.name,
        lifecycle.Request([event] if codes or allow_empty else [], context.best_effort,
                          who(caller)))
    return _outcome(result, bad)


def _outcome(result: lifecycle.Result, failures: list[Failure]) -> Outcome:
    if result.error is not None:
        raise result.error
    return Outcome(result.applied, result.seqs, result.changed, result.duplicates,
                   failures + result.failures, result.notes)


def _codes(texts: Sequence[str], event: int, field: str, *, allow_empty: bool = False
           ) -> tuple[list[Code], list[Failure]]:
    if not texts and not allow_empty:
        raise InvalidArgument("at least one code is required", field=field)
    if len(texts) > MAX_CODES:
        raise InvalidArgument(f"at most {MAX_CODES:,} codes", field=field)
    codes: list[Code] = []
    bad: list[Failure] = []
    for text, scan in zip(texts, parse_many(texts), strict=True):
        if isinstance(scan, ParseError):
            bad.append(Failure(event, text[:200], scan.reason))
        else:
            codes.append(scan.code)
    return codes, bad


def _event(caller: Principal, e: EventInput, index: int, field: str, now: int
           ) -> tuple[Event, list[Failure]]:
    kind = EventKind.__members__.get(e.kind)
    if kind is None:
        raise InvalidArgument("unknown event kind", field=f"{field}.kind")
    if kind in (EventKind.RECALL, EventKind.WITHDRAW, EventKind.REPLACE):
        raise InvalidArgument("recalls, withdrawals and label replacements are RecallBatch, "
                              "WithdrawProduct and ReplaceCode", field=f"{field}.kind")
    if kind is EventKind.RECORD:
        raise InvalidArgument("EPCIS records come in whole EPCIS documents: ImportEpcis",
                              field=f"{field}.kind")
    codes, bad = _codes(e.codes, index, f"{field}.codes",
                        allow_empty=kind is EventKind.DISAGGREGATE)
    parent = _code(e.parent, f"{field}.parent") if e.parent else None
    if kind in (EventKind.AGGREGATE, EventKind.DISAGGREGATE) and parent is None:
        raise InvalidArgument("is required for aggregation", field=f"{field}.parent")
    if kind is EventKind.SHIP:
        masterdata.party_id(e.destination, f"{field}.destination")
    if e.level not in cpb.PackagingLevel.values():
        raise InvalidArgument("unknown packaging level", field=f"{field}.level")
    event = Event(
        kind, tuple(codes), event_time(e.context.when_ms, now), tz_offset(e.context.tz_offset),
        party_id=acting_party(caller, e.context.party_id), parent=parent, lot=e.lot, level=e.level,
        destination=e.destination,
        target=_target(e.target) if kind is EventKind.DECOMMISSION else None,
        reason=_reason(e.reason), event_id=_event_id(e.context.event_id),
        partial=e.partial and kind is EventKind.AGGREGATE,
        custodian=caller.party_id, credential=sender(caller),
        documents=partners.documents(e.documents, f"{field}.documents"),
    )
    return event, bad


def _code(text: str, field: str) -> Code:
    if not text:
        raise InvalidArgument("is required", field=field)
    try:
        return parse(text).code
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field=field) from exc


def _target(value: int) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise InvalidArgument("unknown status", field="target") from None


def event_time(when_ms: int, now: int) -> int:
    """The event time: ``now`` when not given; not before 2000, not more than a day ahead."""
    if not when_ms:
        return now
    if not _EARLIEST_MS <= when_ms <= now + _DAY_MS:
        raise InvalidArgument("must be epoch milliseconds between 2000 and tomorrow",
                              field="context.when_ms")
    return when_ms


def tz_offset(text: str) -> str:
    """A time-zone offset like +08:00; +00:00 when not given."""
    if not text:
        return "+00:00"
    if not _TZ.fullmatch(text):
        raise InvalidArgument("must be a time-zone offset like +08:00", field="context.tz_offset")
    return text


def acting_party(caller: Principal, party_id: str) -> str:
    """The party an event names as acting ("" when none). A credential bound to a party acts
    only as that party: its events name it, or nobody and then they are its."""
    if caller.party_id:
        if party_id and party_id != caller.party_id:
            raise PermissionDenied(f"this credential acts for party {caller.party_id}",
                                   field="context.party_id")
        return caller.party_id
    return masterdata.party_id(party_id, "context.party_id") if party_id else ""


def _reason(text: str) -> str:
    if len(text) > MAX_REASON:
        raise InvalidArgument(f"at most {MAX_REASON} characters", field="reason")
    return text


def _event_id(text: str) -> str:
    if len(text) > MAX_EVENT_ID:
        raise InvalidArgument(f"at most {MAX_EVENT_ID} characters", field="context.event_id")
    return text
