"""pharmatrace.v1.Trace: a pack's history and the ledger's events, where a batch's packs are,
alerts and the regional report; read-only."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import grpc
from pharmatrace.v1 import ledger_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2 as lifecycle_pb
from pharmatrace.v1 import trace_pb2 as pb
from pharmatrace.v1 import trace_pb2_grpc
from pharmatrace.v1 import verification_pb2 as vpb

from tracecore import epcis, masterdata, regions
from tracecore.codes import Code, parse
from tracecore.credentials import Role
from tracecore.errors import InvalidArgument, NotFound, ParseError, PermissionDenied
from tracecore.events import CBV, DECOMMISSION_CBV, EventKind
from tracecore.ledger import alerts, exchange, oversight
from tracecore.ledger.history import EventFilter, list_events, trace
from tracecore.ledger.store import Ledger
from tracecore.ledger.tenants import DataDir
from tracecore.oversight import lot as check_lot
from tracecore.status import Status
from tracerpc.authz import CALLER

MAX_CODES_LISTED = 100
MAX_PAGE = 1000
MAX_REPORT_PRODUCTS = 100
#: Longest regional report period, so one report reads a bounded number of counters.
MAX_REPORT_DAYS = 3660
#: How often WatchAlerts looks for new alerts.
WATCH_POLL_S = 0.5
_EPOCH = dt.date(1970, 1, 1)
_LEVELS = {pb.REGION_LEVEL_UNSPECIFIED: regions.RegionLevel.PROVINCE,
           pb.REGION_LEVEL_PROVINCE: regions.RegionLevel.PROVINCE,
           pb.REGION_LEVEL_CITY: regions.RegionLevel.CITY,
           pb.REGION_LEVEL_COUNTY: regions.RegionLevel.COUNTY}
_KIND_NUMBERS = {EventKind[name.removeprefix("EVENT_KIND_")]: number
                 for name, number in lifecycle_pb.EventKind.items() if number}


class TraceServicer(trace_pb2_grpc.TraceServicer):
    def __init__(self, data: DataDir) -> None:
        self._data = data

    async def TraceCode(self, request: pb.TraceCodeRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> pb.TraceCodeResponse:
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
            status = oversight.Holds(ledger, txn).status(record)
            holds = (oversight.hold_events(ledger, txn, record.batch_ref, record.product_ref)
                     if status is not record.status else [])
        history = sorted([*((e, via) for e, via in traced.history), *((e, None) for e in holds)],
                         key=lambda item: (item[0].when_ms, item[0].seq))
        own = _custody_party()
        if own and traced.holder != own and not any(
                own in (e.party_id, e.destination) for e, _ in history):
            raise PermissionDenied("a distributor traces the packs that were in its custody")
        return pb.TraceCodeResponse(
            code=code.text(),
            status=int(status),  # type: ignore[arg-type]
            level=record.level,  # type: ignore[arg-type]
            product=traced.product,
            batch=traced.batch,
            holder=traced.holder,
            in_transit=record.in_transit,
            parents=[p.text() for p in traced.parents],
            children=[c.text() for c in traced.children],
            child_count=traced.child_count,
            history=[traced_event(e, via) for e, via in history],
            replaced_by=traced.replaced_by.text() if traced.replaced_by else "",
            replaces=traced.replaces.text() if traced.replaces else "",
        )

    async def LocateBatch(self, request: pb.LocateBatchRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> pb.LocateBatchResponse:
        _product_and_lot(request.product, request.lot)
        ledger = self._data.get(request.tenant).ledger
        with ledger.env.read() as txn:
            batch_ref, batch = ledger.batch_in(txn, request.product, request.lot)
            location = oversight.locate(ledger, txn, batch_ref, batch)
        return pb.LocateBatchResponse(location=location.message())

    async def BatchesUsingMaterial(self, request: pb.BatchesUsingMaterialRequest,
                                   context: grpc.aio.ServicerContext[Any, Any]
                                   ) -> pb.BatchesUsingMaterialResponse:
        if not request.supplier.strip():
            raise InvalidArgument("is required", field="supplier")
        if not request.supplier_lot.strip():
            raise InvalidArgument("is required", field="supplier_lot")
        ledger = self._data.get(request.tenant).ledger
        with ledger.env.read() as txn:
            uses = ledger.batches_using(txn, request.supplier, request.supplier_lot)
            if not uses:
                raise NotFound(f"no batch used lot {request.supplier_lot} of "
                               f"{request.supplier}", field="supplier_lot")
            found = [pb.MaterialUse(material=material,
                                    batch=oversight.locate(ledger, txn, ref, batch).message())
                     for ref, batch, material in uses]
        return pb.BatchesUsingMaterialResponse(uses=found)

    async def ListAlerts(self, request: pb.ListAlertsRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListAlertsResponse:
        if request.from_ms and request.to_ms and request.to_ms <= request.from_ms:
            raise InvalidArgument("must be after from_ms", field="to_ms")
        tenant = self._data.get(request.tenant)
        wanted = replace(_alert_filter(tenant.ledger, request), from_ms=request.from_ms,
                         to_ms=request.to_ms)
        book = alerts.book(tenant.path, tenant.name)
        found, token = book.page(wanted, request.page_size, request.page_token)
        return pb.ListAlertsResponse(alerts=found, next_page_token=token,
                                     last_alert_id=book.last_id())

    async def WatchAlerts(self, request: pb.WatchAlertsRequest,
                          context: grpc.aio.ServicerContext[Any, Any]
                          ) -> AsyncIterator[pb.WatchAlertsResponse]:
        tenant = self._data.get(request.tenant)
        wanted = _alert_filter(tenant.ledger, request)
        after = request.after_id
        while True:
            # Looked up each time: a tenant taken offline closes its store (and answers
            # UNAVAILABLE here).
            tenant = self._data.get(request.tenant)
            found, after = alerts.book(tenant.path, tenant.name).after(after, wanted)
            if found:
                yield pb.WatchAlertsResponse(alerts=found)
            else:
                await asyncio.sleep(WATCH_POLL_S)

    async def RegionReport(self, request: pb.RegionReportRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> pb.RegionReportResponse:
        if len(request.products) > MAX_REPORT_PRODUCTS:
            raise InvalidArgument(f"at most {MAX_REPORT_PRODUCTS}", field="products")
        for i, product in enumerate(request.products):
            masterdata.product_identifier(product, f"products[{i}]")
        level = _LEVELS.get(request.level)
        if level is None:
            raise InvalidArgument("must be province, city or county", field="level")
        limit = (regions.parse_region_prefix(request.region, field="region")
                 if request.region else "")
        today = dt.datetime.now(dt.UTC).date()
        end = masterdata.iso_date(request.end, "end", required=False) or today
        start = (masterdata.iso_date(request.start, "start", required=False)
                 or dt.date.fromordinal(max(1, end.toordinal() - 29)))
        if end < start:
            raise InvalidArgument("is before start", field="end")
        if (end - start).days >= MAX_REPORT_DAYS:
            raise InvalidArgument(f"the period is longer than {MAX_REPORT_DAYS} days",
                                  field="end")
        ledger = self._data.get(request.tenant).ledger
        with ledger.env.read() as txn:
            # Counters are kept per day since 1970: nothing was counted before it.
            rows = oversight.region_report(ledger, txn, list(request.products),
                                           max(0, (start - _EPOCH).days),
                                           max(-1, (end - _EPOCH).days), level, limit)
        return pb.RegionReportResponse(
            rows=rows, start=start.isoformat(), end=end.isoformat(),
            level=request.level or pb.REGION_LEVEL_PROVINCE,
            generated_at_ms=int(dt.datetime.now(dt.UTC).timestamp() * 1000))


    async def ExportEpcis(self, request: pb.ExportEpcisRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> pb.ExportEpcisResponse:
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
        wanted = _filter(ledger, request.product, request.lot,
                         _party_filter(request.party_id), request.from_ms, request.to_ms)
        form: epcis.IdForm = ("digital-link" if request.epc_form == pb.EPC_FORM_DIGITAL_LINK
                              else "epc")
        document, count, truncated = exchange.export(
            ledger, wanted, id_form=form, company_prefix_length=cpl, host=host.rstrip("/"),
            max_events=max_events)
        return pb.ExportEpcisResponse(document=document, event_count=count, truncated=truncated)

    async def ListEvents(self, request: pb.ListEventsRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListEventsResponse:
        size = request.page_size or 100
        if size > MAX_PAGE:
            raise InvalidArgument(f"at most {MAX_PAGE}", field="page_size")
        ledger = self._data.get(request.tenant).ledger
        wanted = _filter(ledger, request.product, request.lot,
                         _party_filter(request.party_id), request.from_ms, request.to_ms)
        with ledger.env.read() as txn:
            events, token = list_events(ledger, txn, wanted, size, request.page_token)
        return pb.ListEventsResponse(events=[traced_event(e, None) for e in events],
                                     next_page_token=token)


def _product_and_lot(product: str, lot: str) -> None:
    masterdata.product_identifier(product)
    check_lot(lot)


def _alert_filter(ledger: Ledger, request: pb.ListAlertsRequest | pb.WatchAlertsRequest
                  ) -> alerts.AlertFilter:
    """The alerts a listing or watch wants; INVALID_ARGUMENT or NOT_FOUND naming a bad field."""
    if request.kind and request.kind not in vpb.AlertKind.values():
        raise InvalidArgument("unknown alert kind", field="kind")
    if request.lot and not request.product:
        raise InvalidArgument("a lot needs its product", field="product")
    product = ""
    if request.lot:
        check_lot(request.lot)
        product = ledger.batch(request.product, request.lot)[1].product
    elif request.product:
        ledger.product(request.product)  # NOT_FOUND when it is not registered
        product = masterdata.product_identifier(request.product)
    region = (regions.parse_region_prefix(request.region, field="region")
              if request.region else "")
    return alerts.AlertFilter(kind=request.kind, product=product, lot=request.lot,
                              region=region)


def _custody_party() -> str:
    """The party a distributor's credential acts for: it reads only its own custody."""
    caller = CALLER.get()
    if caller is not None and caller.role is Role.DISTRIBUTOR and caller.party_id:
        return caller.party_id
    return ""


def _party_filter(requested: str) -> str:
    own = _custody_party()
    if own and requested and requested != own:
        raise PermissionDenied(f"this credential reads the events of {own} only",
                               field="party_id")
    return own or requested


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
        product=event.product,
        replacement=Code.from_key(event.replacement).text() if event.replacement else "",
    )

