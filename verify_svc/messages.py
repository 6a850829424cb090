"""Read-side answers as the API's messages: traced events, alerts, report rows, verification
summaries."""

from __future__ import annotations

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2 as lifecycle_pb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tracecore import epcis
from tracecore.codes import Code
from tracecore.events import CBV, DECOMMISSION_CBV, EventKind
from tracecore.oversight import AlertRecord, RegionRow
from tracecore.status import Status

MAX_CODES_LISTED = 100
_KIND_NUMBERS = {EventKind[name.removeprefix("EVENT_KIND_")]: number
                 for name, number in lifecycle_pb.EventKind.items() if number}


def traced_event(event: lpb.EventRecord, via: Code | None) -> tpb.TracedEvent:
    kind = EventKind(event.kind)
    target = Status(event.target) if event.target else None
    if kind is EventKind.RECORD:
        biz_step, disposition = epcis.why_of(event.epcis)
    else:
        biz_step, disposition = (DECOMMISSION_CBV[target] if kind is EventKind.DECOMMISSION
                                 and target is not None else CBV[kind])
    return tpb.TracedEvent(
        seq=event.seq,
        kind=_KIND_NUMBERS[kind],
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
        documents=event.documents,
    )


def alert(record: AlertRecord) -> tpb.Alert:
    return tpb.Alert(
        alert_id=record.alert_id,
        kind=record.kind,  # type: ignore[arg-type]
        source=record.source,  # type: ignore[arg-type]
        raised_at_ms=record.raised_at_ms, code=record.code, units=record.units,
        product=record.product, lot=record.lot, region=record.region, party_id=record.party_id,
        authorised_regions=record.authorised_regions, authorised_by=record.authorised_by,
        clone_reason=record.clone_reason,  # type: ignore[arg-type]
        previous_region=record.previous_region, previous_at_ms=record.previous_at_ms,
        distance_km=record.distance_km, scan_count=record.scan_count,
        status=record.status,  # type: ignore[arg-type]
        detail=record.detail, address=record.address, credential=record.credential,
        refusals=record.refusals,
    )


def region_row(row: RegionRow) -> tpb.RegionRow:
    return tpb.RegionRow(
        product=row.product, product_name=row.product_name, region=row.region,
        region_name=row.region_name, stock=row.stock, recalled=row.recalled,
        received=row.received, sold=row.sold, returned=row.returned)


def product_summary(p: cpb.Product) -> vpb.ProductSummary:
    return vpb.ProductSummary(gtin=p.gtin, nmpa_id=p.nmpa_id, name=p.name, form=p.form,
                              strength=p.strength, pack_size=p.pack_size)


def batch_summary(b: cpb.Batch) -> vpb.BatchSummary:
    return vpb.BatchSummary(lot=b.lot, manufactured_on=b.manufactured_on,
                            expires_on=b.expires_on)
