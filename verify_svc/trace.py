"""pharmatrace.v1.Trace: a pack's history and the ledger's events, where a batch's packs are,
alerts and the regional report; read-only. Each method runs one use case."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc
from pharmatrace.v1 import trace_pb2 as pb
from pharmatrace.v1 import trace_pb2_grpc

from tracecore import regions
from tracecore.ledger.tenants import DataDir
from tracecore.usecases import oversight, partners, reports, trace
from tracerpc.authz import CALLER
from tracerpc.locations import batch_location
from verify_svc.messages import alert, region_row, traced_event

_LEVELS = {pb.REGION_LEVEL_UNSPECIFIED: regions.RegionLevel.PROVINCE,
           pb.REGION_LEVEL_PROVINCE: regions.RegionLevel.PROVINCE,
           pb.REGION_LEVEL_CITY: regions.RegionLevel.CITY,
           pb.REGION_LEVEL_COUNTY: regions.RegionLevel.COUNTY}


class TraceServicer(trace_pb2_grpc.TraceServicer):
    def __init__(self, data: DataDir) -> None:
        self._data = data

    async def TraceCode(self, request: pb.TraceCodeRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> pb.TraceCodeResponse:
        trail = trace.trace_code(self._data.get(request.tenant).ledger, CALLER.get(),
                                 request.code)
        traced = trail.traced
        return pb.TraceCodeResponse(
            code=traced.code.text(),
            status=int(trail.status),  # type: ignore[arg-type]
            level=traced.record.level,  # type: ignore[arg-type]
            product=traced.product,
            batch=traced.batch,
            holder=traced.holder,
            in_transit=traced.record.in_transit,
            parents=[p.text() for p in traced.parents],
            children=[c.text() for c in traced.children],
            child_count=traced.child_count,
            history=[traced_event(e, via) for e, via in trail.history],
            replaced_by=traced.replaced_by.text() if traced.replaced_by else "",
            replaces=traced.replaces.text() if traced.replaces else "",
        )

    async def ListEvents(self, request: pb.ListEventsRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListEventsResponse:
        events, token = trace.list_events(self._data.get(request.tenant).ledger, CALLER.get(),
                                          _events(request), request.page_size,
                                          request.page_token)
        return pb.ListEventsResponse(events=[traced_event(e, None) for e in events],
                                     next_page_token=token)

    async def ExportEpcis(self, request: pb.ExportEpcisRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> pb.ExportEpcisResponse:
        export = trace.export_epcis(
            self._data.get(request.tenant).ledger, CALLER.get(), _events(request),
            digital_link=request.epc_form == pb.EPC_FORM_DIGITAL_LINK,
            company_prefix_length=request.company_prefix_length,
            host=request.digital_link_host, max_events=request.max_events)
        return pb.ExportEpcisResponse(document=export.document, event_count=export.event_count,
                                      truncated=export.truncated)

    async def LocateBatch(self, request: pb.LocateBatchRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> pb.LocateBatchResponse:
        location = oversight.locate_batch(self._data.get(request.tenant).ledger,
                                          request.product, request.lot)
        return pb.LocateBatchResponse(location=batch_location(location))

    async def BatchesUsingMaterial(self, request: pb.BatchesUsingMaterialRequest,
                                   context: grpc.aio.ServicerContext[Any, Any]
                                   ) -> pb.BatchesUsingMaterialResponse:
        uses = oversight.batches_using_material(self._data.get(request.tenant).ledger,
                                                request.supplier, request.supplier_lot)
        return pb.BatchesUsingMaterialResponse(uses=[
            pb.MaterialUse(material=use.material, batch=batch_location(use.location))
            for use in uses])

    async def ListAlerts(self, request: pb.ListAlertsRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListAlertsResponse:
        page = oversight.list_alerts(self._data.get(request.tenant), _alerts(request),
                                     request.from_ms, request.to_ms, request.page_size,
                                     request.page_token, request.since, request.until)
        return pb.ListAlertsResponse(alerts=[alert(a) for a in page.alerts],
                                     next_page_token=page.next_page_token,
                                     last_alert_id=page.last_alert_id)

    async def WatchAlerts(self, request: pb.WatchAlertsRequest,
                          context: grpc.aio.ServicerContext[Any, Any]
                          ) -> AsyncIterator[pb.WatchAlertsResponse]:
        tenant = request.tenant
        async for found in oversight.watch_alerts(lambda: self._data.get(tenant),
                                                  _alerts(request), request.after_id):
            yield pb.WatchAlertsResponse(alerts=[alert(a) for a in found])

    async def CheckReceipt(self, request: pb.CheckReceiptRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> pb.CheckReceiptResponse:
        document = partners.document(request.document.type, request.document.id,
                                     field="document")
        check = partners.check_receipt(self._data.get(request.tenant).ledger, CALLER.get(),
                                       document)
        return pb.CheckReceiptResponse(
            shipped=check.shipped, received=check.received, missing=check.missing,
            extra=check.extra, missing_count=check.missing_count, extra_count=check.extra_count,
            ship_events=check.ship_events, receive_events=check.receive_events)

    async def RegionReport(self, request: pb.RegionReportRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> pb.RegionReportResponse:
        query = reports.ReportQuery(products=list(request.products), start=request.start,
                                    end=request.end, level=_LEVELS.get(request.level),
                                    region=request.region)
        now = dt.datetime.now(dt.UTC)
        report = reports.region_report(self._data.get(request.tenant).ledger, query,
                                       int(now.timestamp() * 1000))
        return pb.RegionReportResponse(
            rows=[region_row(r) for r in report.rows], start=report.period.start.isoformat(),
            end=report.period.end.isoformat(), level=request.level or pb.REGION_LEVEL_PROVINCE,
            generated_at_ms=int(now.timestamp() * 1000), time_zone=report.time_zone)


def _events(request: pb.ListEventsRequest | pb.ExportEpcisRequest) -> trace.EventQuery:
    document = (request.document.type, request.document.id) \
        if isinstance(request, pb.ListEventsRequest) else ("", "")
    return trace.EventQuery(product=request.product, lot=request.lot,
                            party_id=request.party_id, from_ms=request.from_ms,
                            to_ms=request.to_ms, document=document, since=request.since,
                            until=request.until)


def _alerts(request: pb.ListAlertsRequest | pb.WatchAlertsRequest) -> oversight.AlertQuery:
    return oversight.AlertQuery(kind=request.kind, product=request.product, lot=request.lot,
                                region=request.region)
