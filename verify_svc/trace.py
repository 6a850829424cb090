"""pharmatrace.v1.Trace: a pack's history and the ledger's events, read-only."""

from __future__ import annotations

import grpc
from pharmatrace.v1 import ledger_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2 as lifecycle_pb
from pharmatrace.v1 import trace_pb2 as pb
from pharmatrace.v1 import trace_pb2_grpc

from tracecore import epcis, masterdata
from tracecore.codes import Code, parse
from tracecore.errors import InvalidArgument, NotFound, ParseError
from tracecore.events import CBV, DECOMMISSION_CBV, EventKind
from tracecore.ledger.history import EventFilter, list_events, trace
from tracecore.ledger import exchange
from tracecore.ledger.store import Ledger
from tracecore.ledger.tenants import DataDir
from tracecore.status import Status

MAX_CODES_LISTED = 100
MAX_PAGE = 1000
_KIND_NUMBERS = {EventKind[name.removeprefix("EVENT_KIND_")]: number
                 for name, number in lifecycle_pb.EventKind.items() if number}


class TraceServicer(trace_pb2_grpc.TraceServicer):
    def __init__(self, data: DataDir) -> None:
        self._data = data

    async def TraceCode(self, request: pb.TraceCodeRequest,
                        context: grpc.aio.ServicerContext) -> pb.TraceCodeResponse:
        try:
            code = parse(request.code).code
        except ParseError as exc:
            raise InvalidArgument(exc.reason, field="code") from exc
        ledger = self._data.get(request.tenant).ledger
        with ledger.env.read() as txn:
            traced = trace(ledger, txn, code)
        if traced is None:
            raise NotFound(f"{code.text()} is not in this tenant's ledger", field="code")
        record = traced.record
        return pb.TraceCodeResponse(
            code=code.text(),
            status=int(record.status),  # type: ignore[arg-type]
            level=record.level,  # type: ignore[arg-type]
            product=traced.product,
            batch=traced.batch,
            holder=traced.holder,
            in_transit=record.in_transit,
            parents=[p.text() for p in traced.parents],
            children=[c.text() for c in traced.children],
            child_count=traced.child_count,
            history=[traced_event(e, via) for e, via in traced.history],
        )

    async def ExportEpcis(self, request: pb.ExportEpcisRequest,
                          context: grpc.aio.ServicerContext) -> pb.ExportEpcisResponse:
        max_events = request.max_events or exchange.MAX_EXPORT_EVENTS
        if max_events > exchange.MAX_EXPORT_EVENTS:
            raise InvalidArgument(f"at most {exchange.MAX_EXPORT_EVENTS:,}", field="max_events")
        cpl = request.company_prefix_length or 7
        if not 6 <= cpl <= 12:
            raise InvalidArgument("must be 6 to 12", field="company_prefix_length")
        host = request.digital_link_host or "https://id.gs1.org"
        if not host.startswith(("https://", "http://")) or len(host) > 200:
            raise InvalidArgument("must be an http(s) URL", field="digital_link_host")
        ledger = self._data.get(request.tenant).ledger
        wanted = _filter(ledger, request.product, request.lot, request.party_id,
                         request.from_ms, request.to_ms)
        form: epcis.IdForm = ("digital-link" if request.epc_form == pb.EPC_FORM_DIGITAL_LINK
                              else "epc")
        document, count, truncated = exchange.export(
            ledger, wanted, id_form=form, company_prefix_length=cpl, host=host.rstrip("/"),
            max_events=max_events)
        return pb.ExportEpcisResponse(document=document, event_count=count, truncated=truncated)

    async def ListEvents(self, request: pb.ListEventsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListEventsResponse:
        size = request.page_size or 100
        if size > MAX_PAGE:
            raise InvalidArgument(f"at most {MAX_PAGE}", field="page_size")
        ledger = self._data.get(request.tenant).ledger
        wanted = _filter(ledger, request.product, request.lot, request.party_id,
                         request.from_ms, request.to_ms)
        with ledger.env.read() as txn:
            events, token = list_events(ledger, txn, wanted, size, request.page_token)
        return pb.ListEventsResponse(events=[traced_event(e, None) for e in events],
                                     next_page_token=token)


def _filter(ledger: Ledger, product: str, lot: str, party_id: str, from_ms: int, to_ms: int
            ) -> EventFilter:
    """The events wanted by ListEvents and ExportEpcis; INVALID_ARGUMENT naming a bad field."""
    if from_ms and to_ms and to_ms <= from_ms:
        raise InvalidArgument("must be after from_ms", field="to_ms")
    if lot and not product:
        raise InvalidArgument("a lot needs its product", field="product")
    product_ref = batch_ref = 0
    if lot:
        batch_ref, _ = ledger.batch(product, lot)
    elif product:
        product_ref, _ = ledger.product(product)
    if party_id:
        masterdata.party_id(party_id)
    return EventFilter(batch_ref, product_ref, party_id, from_ms, to_ms)


def traced_event(event: lpb.EventRecord, via: Code | None) -> pb.TracedEvent:
    kind = EventKind(event.kind)
    target = Status(event.target) if event.target else None
    biz_step, disposition = (DECOMMISSION_CBV[target] if kind is EventKind.DECOMMISSION
                             and target is not None else CBV[kind])
    return pb.TracedEvent(
        seq=event.seq,
        kind=_KIND_NUMBERS[kind],  # type: ignore[arg-type]
        when_ms=event.when_ms,
        tz_offset=event.tz_offset,
        party_id=event.party_id,
        destination=event.destination,
        parent=Code.from_key(event.parent).text() if event.parent else "",
        codes=[Code.from_key(k).text() for k in event.codes[:MAX_CODES_LISTED]],
        code_count=len(event.codes),
        biz_step=biz_step,
        disposition=disposition,
        target=event.target,  # type: ignore[arg-type]
        reason=event.reason,
        event_id=event.event_id,
        who=event.who,
        via=via.text() if via is not None else "",
        lot=event.lot,
    )

