"""Event ids a gRPC client gives that are not URIs, over real gRPC and real ledgers: kept as the
client's idempotency key, exported as UUID URNs that the official EPCIS schema accepts, and the
same id through a partner's import and export, and back home."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Make
from tracecore.epcis.schema import check_schema

LINE_ID = "line7-000123"
URI_ID = f"urn:uuid:{uuid.uuid4()}"


def _export(trace: trace_pb2_grpc.TraceStub, tenant: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(trace.ExportEpcis(
        tpb.ExportEpcisRequest(tenant=tenant), timeout=RPC_TIMEOUT_S).document)
    check_schema(document)
    return document


def _ids(document: dict[str, Any]) -> list[str]:
    return [event["eventID"] for event in document["epcisBody"]["eventList"]]


def _import(lifecycle: lifecycle_pb2_grpc.LifecycleStub, tenant: str,
            document: dict[str, Any]) -> lpb.ImportEpcisResponse:
    return lifecycle.ImportEpcis(lpb.ImportEpcisRequest(
        tenant=tenant, document=json.dumps(document)), timeout=RPC_TIMEOUT_S)


def test_an_event_id_that_is_not_a_uri_exports_as_a_stable_uuid_urn(
        api: Api, make: Make, issue_channel: grpc.Channel,
        verify_channel: grpc.Channel) -> None:
    """A line captures a commissioning under its own id "line7-000123" and another under a
    URI: the capture is accepted (and a repeat of it is a duplicate), the export conforms to
    the official EPCIS 2.0 schema, the URI is exported as given and the line's id as a UUID
    URN, the same in every export; a partner importing the export and exporting it again
    gives both ids unchanged, and the export imported back home is recognised event for
    event as already recorded."""
    lifecycle = lifecycle_pb2_grpc.LifecycleStub(issue_channel)
    trace = trace_pb2_grpc.TraceStub(verify_channel)
    home, partner = make.tenant(), make.tenant()
    product = make.gs1(home)
    make.gs1(partner)
    codes = api.codes(home, product.gtin, 2, lot=product.lot)

    def capture() -> lpb.CaptureEventsResponse:
        return lifecycle.CaptureEvents(iter([lpb.CaptureEventsRequest(tenant=home, events=[
            lpb.LifecycleEvent(kind=lpb.EVENT_KIND_COMMISSION, codes=[code], lot=product.lot,
                               context=lpb.EventContext(event_id=event_id))
            for code, event_id in zip(codes, (LINE_ID, URI_ID), strict=True)])]),
            timeout=RPC_TIMEOUT_S)

    first = capture()
    assert (first.recorded, list(first.failures)) == (2, []), first
    assert capture().duplicates == 2

    exported = _export(trace, home)
    line_event, uri_event = _ids(exported)
    assert uri_event == URI_ID
    assert line_event.startswith("urn:uuid:") and line_event != LINE_ID
    assert uuid.UUID(line_event.removeprefix("urn:uuid:")).version == 5
    assert _ids(_export(trace, home)) == [line_event, uri_event]

    imported = _import(lifecycle, partner, exported)
    assert (imported.events, imported.duplicates, list(imported.failures)) == (2, 0, [])
    assert _ids(_export(trace, partner)) == [line_event, uri_event]

    back = _import(lifecycle, home, exported)
    assert (back.events, back.duplicates, back.recorded) == (2, 2, 0), back
