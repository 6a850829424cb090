"""Trace: one pack's history through its containers, the ledger's events by batch, product,
party and time, and the same events as an EPCIS 2.0 document. A distributor's credential
reads only what was in its own custody."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import epcis, localday, masterdata
from tracecore.codes import Code, parse
from tracecore.credentials import Principal, Role
from tracecore.errors import InvalidArgument, NotFound, ParseError, PermissionDenied
from tracecore.ledger import exchange, foreign, history, oversight, policy
from tracecore.ledger.history import EventFilter, Traced, trace
from tracecore.ledger.store import Ledger
from tracecore.status import Status
from tracecore.usecases import partners
from tracecore.usecases.catalogue import Catalogue
from tracecore.usecases.declare import ADMIN, DISTRIBUTOR, REGULATOR, Scope, use_case

MAX_PAGE = 1000
DEFAULT_PAGE = 100
DEFAULT_PREFIX_LENGTH = 7
DEFAULT_HOST = "https://id.gs1.org"
_TRACERS = {ADMIN, DISTRIBUTOR, REGULATOR}

#: An event of a pack's history and the container it was recorded on (None: the pack itself).
Step = tuple[lpb.EventRecord, Code | None]


@dataclass(frozen=True, slots=True)
class Trail:
    """A pack as readers see it: its status (a recall or withdrawal applied), its picture and
    its history, oldest first, with the recall or withdrawal that covers it."""

    status: Status
    traced: Traced
    history: list[Step]


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events a listing or export wants; empty fields match everything."""

    product: str = ""
    lot: str = ""
    party_id: str = ""
    from_ms: int = 0
    to_ms: int = 0
    document: tuple[str, str] = ("", "")
    """A business document's (type, id): only the events that are part of it."""
    since: str = ""
    until: str = ""
    """Local days of the tenant's zone (YYYY-MM-DD): events from ``since``'s midnight there and
    before ``until``'s, on top of from_ms / to_ms."""


@dataclass(frozen=True, slots=True)
class Export:
    """An EPCIS 2.0 document and what it holds."""

    document: str
    event_count: int
    truncated: bool


def custody_party(caller: Principal | None) -> str:
    """The party a distributor's credential acts for: it reads only its own custody ("" for
    every other caller)."""
    if caller is not None and caller.role is Role.DISTRIBUTOR and caller.party_id:
        return caller.party_id
    return ""


def check_custody(own: str, holder: str, history: Sequence[Step]) -> None:
    """PERMISSION_DENIED unless ``own`` ("" = anyone) holds the pack or an event of its history
    names it as the acting party or the destination."""
    if own and holder != own and not any(own in (e.party_id, e.destination)
                                         for e, _ in history):
        raise PermissionDenied("a distributor traces the packs that were in its custody")


def party_filter(own: str, requested: str) -> str:
    """The party whose events a caller acting for ``own`` reads when it asks for
    ``requested``."""
    if own and requested and requested != own:
        raise PermissionDenied(f"this credential reads the events of {own} only",
                               field="party_id")
    return own or requested


@use_case(roles=_TRACERS, writes=False, scope=Scope.PARTY)
def trace_code(ledger: Ledger, caller: Principal | None, code_text: str) -> Trail:
    """Everything the ledger knows about one pack, in any input form."""
    try:
        code = parse(code_text).code
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field="code") from exc
    with ledger.env.read() as txn:
        traced = trace(ledger, txn, code)
        if traced is None:
            raise NotFound(f"{code.text()} is not in this tenant's ledger", field="code")
        record = traced.record
        status = oversight.Holds(ledger, txn).status(record)
        holds = (oversight.hold_events(ledger, txn, record.batch_ref, record.product_ref)
                 if status is not record.status else [])
    history = sorted([*traced.history, *((e, None) for e in holds)],
                     key=lambda step: (step[0].when_ms, step[0].seq))
    check_custody(custody_party(caller), traced.holder, history)
    return Trail(status, traced, history)


@use_case(roles=_TRACERS, writes=False, scope=Scope.PARTY)
def list_events(ledger: Ledger, caller: Principal | None, query: EventQuery, page_size: int,
                page_token: str) -> tuple[list[lpb.EventRecord], str]:
    """One page of matching events in ledger order, and the token of the next."""
    size = page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise InvalidArgument(f"at most {MAX_PAGE}", field="page_size")
    wanted = event_filter(ledger, local_days(ledger, query), custody_party(caller))
    foreign.open_late(ledger)
    with ledger.env.read() as txn:
        return history.list_events(ledger, txn, wanted, size, page_token)


@use_case(roles=_TRACERS, writes=False, scope=Scope.PARTY)
def export_epcis(ledger: Ledger, caller: Principal | None, query: EventQuery, *,
                 digital_link: bool, company_prefix_length: int, host: str, max_events: int
                 ) -> Export:
    """Matching events as an EPCIS 2.0 JSON-LD document; 0 or "" options take their
    defaults."""
    max_events = max_events or exchange.MAX_EXPORT_EVENTS
    if max_events > exchange.MAX_EXPORT_EVENTS:
        raise InvalidArgument(f"at most {exchange.MAX_EXPORT_EVENTS:,}", field="max_events")
    cpl = company_prefix_length or DEFAULT_PREFIX_LENGTH
    if not 6 <= cpl <= 12:
        raise InvalidArgument("must be 6 to 12", field="company_prefix_length")
    host = host or DEFAULT_HOST
    if not host.startswith(("https://", "http://")) or len(host) > 200:
        raise InvalidArgument("must be an http(s) URL", field="digital_link_host")
    wanted = event_filter(ledger, local_days(ledger, query), custody_party(caller))
    form: epcis.IdForm = "digital-link" if digital_link else "epc"
    document, count, truncated = exchange.export(
        ledger, wanted, id_form=form, company_prefix_length=cpl, host=host.rstrip("/"),
        max_events=max_events)
    return Export(document, count, truncated)


def event_filter(ledger: Catalogue, query: EventQuery, own: str) -> EventFilter:
    """The events wanted by a listing or export; INVALID_ARGUMENT or NOT_FOUND naming a bad
    field, PERMISSION_DENIED for another party's events."""
    party_id = party_filter(own, query.party_id)
    if query.from_ms and query.to_ms and query.to_ms <= query.from_ms:
        raise InvalidArgument("must be after from_ms", field="to_ms")
    if query.lot and not query.product:
        raise InvalidArgument("a lot needs its product", field="product")
    product_ref = batch_ref = 0
    product = ""
    if query.lot:
        batch_ref, batch = ledger.batch(query.product, query.lot)
        product = batch.product
    elif query.product:
        product_ref, found = ledger.product(query.product)
        product = masterdata.code_product(found)
    if party_id:
        masterdata.party_id(party_id)
    doc_type, doc_id = query.document
    document = partners.document(doc_type, doc_id, field="document") if doc_id or doc_type \
        else None
    return EventFilter(batch_ref, product_ref, party_id, query.from_ms, query.to_ms, product,
                       query.lot, document)



def local_days(ledger: Ledger, query: EventQuery) -> EventQuery:
    """``query`` with its local days (since / until) turned into instants cut at midnight in the
    tenant's zone."""
    if not query.since and not query.until:
        return query
    with ledger.env.read() as txn:
        zone = policy.day_zone(ledger, txn)
    from_ms, to_ms = query.from_ms, query.to_ms
    if query.since:
        start = localday.day_start(_day(query.since, "since"), zone)
        from_ms = max(from_ms, start) if from_ms else start
    if query.until:
        end = localday.day_start(_day(query.until, "until"), zone)
        to_ms = min(to_ms, end) if to_ms else end
    return replace(query, from_ms=from_ms, to_ms=to_ms, since="", until="")


def _day(text: str, field: str) -> int:
    try:
        return localday.day_number(text)
    except InvalidArgument:
        raise InvalidArgument(f"{text!r} is not YYYY-MM-DD", field=field) from None
