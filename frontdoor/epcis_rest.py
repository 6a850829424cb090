"""The EPCIS 2.0 REST binding under ``/epcis``: capture jobs, the standard event query, named
queries and their webhook subscriptions, and the OpenAPI description. Every route authenticates
an API token (the tenant is the token's), holds its role to the declaration of the use case it
runs, and answers in GS1's documents."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit
from xml.etree.ElementTree import Element, SubElement, tostring

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from frontdoor import epcis_openapi
from frontdoor.http import Frontdoor, problem
from tracecore import epcis
from tracecore.clock import now_ms
from tracecore.credentials import Principal
from tracecore.epcis.xml_writer import query_document_xml
from tracecore.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from tracecore.ledger.epcis_rest import EpcisStore
from tracecore.ledger.tenants import Tenant
from tracecore.usecases import epcis_capture, epcis_feed, epcis_query
from tracecore.usecases.declare import declaration
from tracecore.usecases.trace import DEFAULT_PAGE

EPCIS_VERSION = "2.0.0"
CBV_VERSION = "2.0.0"
#: Headers every /epcis answer carries, OPTIONS included: what this repository speaks.
VERSIONS = {"GS1-EPCIS-Version": EPCIS_VERSION, "GS1-CBV-Version": CBV_VERSION,
            "GS1-EPCIS-Min": EPCIS_VERSION, "GS1-EPCIS-Max": EPCIS_VERSION,
            "GS1-CBV-Min": CBV_VERSION, "GS1-CBV-Max": CBV_VERSION,
            "GS1-Vendor-Version": "pharmatrace", "GS1-Extensions": ""}
EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent",
               "AssociationEvent")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pharmatrace"'}
_DOCUMENT_TYPES = ("application/json", "application/ld+json", "application/xml", "text/xml")
_XML_TYPES = ("application/xml", "text/xml")
_NAME = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_PAGING = ("perPage", "nextPageToken")
MAX_LISTED = 1000

Handler = Callable[[Request], Awaitable[Response]]


def _answering(handler: Callable[[Request, Frontdoor, Principal], Awaitable[Response]]
               ) -> Handler:
    """A route that authenticates its caller and turns the domain's refusals into problem
    answers with the version headers."""

    @wraps(handler)
    async def route(request: Request) -> Response:
        door: Frontdoor = request.app.state.door
        try:
            caller = await asyncio.to_thread(_caller, door, request)
            answer = await handler(request, door, caller)
        except Unauthenticated as exc:
            answer = problem(401, exc.message, _CHALLENGE)
        except PermissionDenied as exc:
            answer = problem(403, exc.message)
        except (InvalidArgument, NotFound, AlreadyExists) as exc:
            status = {InvalidArgument: 400, NotFound: 404, AlreadyExists: 409}[type(exc)]
            answer = problem(status, str(exc))
        except _NotAcceptable as exc:
            answer = problem(406, str(exc))
        answer.headers.update(VERSIONS)
        return answer

    return route


class _NotAcceptable(Exception):
    """The client accepts none of the media types an answer comes in."""


def _wants_xml(request: Request) -> bool:
    """Whether the answer is EPCIS XML (the client's Accept prefers it) rather than JSON-LD;
    _NotAcceptable when the client takes neither."""
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return False
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate(accept.split(",")):
        media, *params = (p.strip().lower() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, n, media))
    for _, _, media in sorted(ranked):
        if media in _XML_TYPES or media == "text/*":
            return True
        if media in ("application/json", "application/ld+json", "application/*", "*/*"):
            return False
    raise _NotAcceptable("this answer comes as application/ld+json, application/json or "
                         "application/xml")


def _caller(door: Frontdoor, request: Request) -> Principal:
    """The tenant credential of an ``Authorization: Bearer`` header."""
    client = (request.client.host, request.client.port) if request.client else None
    return door.bearer(request.headers.get("authorization", ""), client,
                       "an operator token holds no tenant's events")


def _may(caller: Principal, fn: Callable[..., Any]) -> None:
    """PermissionDenied unless the caller's role may run the use case ``fn``."""
    if caller.role not in declaration(fn).roles:
        raise PermissionDenied(f"the {caller.role.name.lower()} role may not do this")


def _tenant(door: Frontdoor, caller: Principal) -> tuple[Tenant, EpcisStore]:
    tenant = door.data.get(caller.tenant)
    return tenant, door.epcis.get(tenant.name, tenant.path)


def _timestamp(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") \
        + f"{at_ms % 1000:03d}Z"


# -- capture ---------------------------------------------------------------------------------


@_answering
async def capture(request: Request, door: Frontdoor, caller: Principal) -> Response:
    """An EPCIS document accepted as a capture job, applied by the issuance process."""
    _may(caller, epcis_capture.apply_captures)
    behaviour = request.headers.get("gs1-capture-error-behaviour", "rollback").lower()
    if behaviour not in ("rollback", "proceed"):
        raise InvalidArgument("must be rollback or proceed", field="GS1-Capture-Error-Behaviour")
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in _DOCUMENT_TYPES:
        return problem(415, f"send an EPCISDocument as {' or '.join(_DOCUMENT_TYPES)}")
    limit = door.config.max_capture_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        return _too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _too_large(limit)
    except ClientDisconnect:
        return problem(400, "the document did not arrive whole")
    try:
        document = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("is not UTF-8", field="document") from None
    if not document.strip():
        raise InvalidArgument("is empty", field="document")
    tenant, store = _tenant(door, caller)
    at = now_ms()
    capture_id = f"{at:012x}{secrets.token_hex(6)}"
    job = {"captureID": capture_id, "createdAt": _timestamp(at), "running": True,
           "success": True, "captureErrorBehaviour": behaviour, "errors": [],
           "caller": {"role": caller.role.name, "credential": caller.credential_id,
                      "party": caller.party_id}}
    await asyncio.to_thread(store.add_job, job, document)
    await asyncio.to_thread(door.epcis.wake, tenant.name)
    return Response(status_code=202, headers={"Location": f"/epcis/capture/{capture_id}"})


def _too_large(limit: int) -> Response:
    return problem(413, f"larger than this server's limit of {limit:,} bytes per capture "
                   "(pharmatrace serve --max-import-mib): split it")


def _public(job: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k != "caller"}


@_answering
async def capture_job(request: Request, door: Frontdoor, caller: Principal) -> Response:
    """One capture job's state and errors."""
    _may(caller, epcis_capture.apply_captures)
    _, store = _tenant(door, caller)
    xml = _wants_xml(request)
    job = await asyncio.to_thread(store.job, request.path_params["capture_id"])
    if job is None:
        raise NotFound("no capture job of this tenant has that id")
    if xml:
        return Response(_job_xml(_public(job)), media_type="application/xml")
    return JSONResponse(_public(job))


def _job_xml(job: Mapping[str, Any]) -> bytes:
    """A capture job as XML: its members as elements, each error an ``error`` element."""
    root = Element("epcisCaptureJob")
    for name, value in job.items():
        if name == "errors":
            errors = SubElement(root, "errors")
            for error in value:
                item = SubElement(errors, "error")
                for key, text in error.items():
                    SubElement(item, key).text = str(text)
        else:
            SubElement(root, name).text = str(value).lower() if isinstance(value, bool) \
                else str(value)
    return bytes(tostring(root, encoding="utf-8", xml_declaration=True))


@_answering
async def capture_jobs(request: Request, door: Frontdoor, caller: Principal) -> Response:
    """The tenant's capture jobs, oldest first, a page at a time."""
    _may(caller, epcis_capture.apply_captures)
    _, store = _tenant(door, caller)
    size = _per_page(request)
    after = request.query_params.get("nextPageToken", "")
    jobs = await asyncio.to_thread(store.jobs, after, size)
    headers = {}
    if len(jobs) == size:
        headers["Link"] = _next_link(request, jobs[-1]["captureID"])
    return JSONResponse([_public(j) for j in jobs], headers=headers)


# -- events ----------------------------------------------------------------------------------


def _per_page(request: Request) -> int:
    text = request.query_params.get("perPage", "")
    if not text:
        return DEFAULT_PAGE
    if not text.isdigit() or not 1 <= int(text) <= MAX_LISTED:
        raise InvalidArgument(f"must be 1 to {MAX_LISTED}", field="perPage")
    return int(text)


def _next_link(request: Request, token: str) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"]
    return f'<{request.url.path}?{urlencode([*kept, ("nextPageToken", token)])}>; rel="next"'


def _standard(request: Request, fixed: Mapping[str, str] | None = None
              ) -> dict[str, str | Sequence[str]]:
    params: dict[str, str | Sequence[str]] = {}
    for name in request.query_params:
        if name not in _PAGING:
            params[name] = request.query_params.getlist(name)
    params.update(fixed or {})
    return params


async def _query(request: Request, door: Frontdoor, caller: Principal,
                 params: Mapping[str, str | Sequence[str]], name: str = "SimpleEventQuery",
                 *, one: bool = False) -> Response:
    """The events answering ``params``, a page at a time, as JSON-LD or EPCIS XML; with
    ``one``, NotFound when there is none."""
    _may(caller, epcis_query.query_events)
    xml = _wants_xml(request)
    tenant, _ = _tenant(door, caller)
    page = await asyncio.to_thread(
        epcis_query.query_events, tenant.ledger, caller, params, _per_page(request),
        request.query_params.get("nextPageToken", ""))
    if one and not page.events:
        raise NotFound("no event of this tenant has that eventID")
    headers = {}
    if page.next_token:
        headers["Link"] = _next_link(request, page.next_token)
    if xml:
        return Response(query_document_xml(page.context, page.events, name,
                                           _timestamp(now_ms())),
                        headers=headers, media_type="application/xml")
    return JSONResponse(query_document(page.context, page.events, name), headers=headers,
                        media_type="application/ld+json")


def query_document(context: list[Any], events: list[dict[str, Any]], query_name: str,
                   subscription_id: str = "") -> dict[str, Any]:
    """An EPCISQueryDocument holding ``events``."""
    results: dict[str, Any] = {"queryName": query_name}
    if subscription_id:
        results["subscriptionID"] = subscription_id
    results["resultsBody"] = {"eventList": events}
    return {"@context": context, "type": "EPCISQueryDocument", "schemaVersion": "2.0",
            "creationDate": _timestamp(now_ms()), "epcisBody": {"queryResults": results}}


@_answering
async def events(request: Request, door: Frontdoor, caller: Principal) -> Response:
    """The standard event query over the tenant's events."""
    return await _query(request, door, caller, _standard(request))


@_answering
async def event(request: Request, door: Frontdoor, caller: Principal) -> Response:
    """One event by its eventID."""
    return await _query(request, door, caller, {"EQ_eventID": request.path_params["event_id"]},
                        one=True)


@_answering
async def event_types(request: Request, door: Frontdoor, caller: Principal) -> Response:
    """The event types this repository records."""
    _may(caller, epcis_query.query_events)
    return JSONResponse({"@set": list(EVENT_TYPES)})


@_answering
async def events_of_type(request: Request, door: Frontdoor, caller: Principal) -> Response:
    kind = request.path_params["event_type"]
    if kind not in EVENT_TYPES:
        raise NotFound(f"the event types are {', '.join(EVENT_TYPES)}")
    return await _query(request, door, caller, _standard(request, {"eventType": kind}))


@_answering
async def events_of_epc(request: Request, door: Frontdoor, caller: Principal) -> Response:
    return await _query(request, door, caller,
                        _standard(request, {"MATCH_anyEPC": request.path_params["epc"]}))


# -- named queries and subscriptions ---------------------------------------------------------


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidArgument("is not JSON", field="body") from None
    if not isinstance(body, dict):
        raise InvalidArgument("must be a JSON object", field="body")
    return body


@_answering
async def create_query(request: Request, door: Frontdoor, caller: Principal) -> Response:
    """A named query: a name and standard query parameters, kept for GET and subscriptions."""
    _may(caller, epcis_query.query_events)
    body = await _json(request)
    name, query = body.get("name"), body.get("query", {})
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument("must be 1 to 64 letters, digits, '.', '_', '~' or '-'",
                              field="name")
    if not isinstance(query, dict) or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
            for v in query.values()):
        raise InvalidArgument("must map query parameters to a value or a list of values",
                              field="query")
    epcis.parse_query(query)
    _, store = _tenant(door, caller)
    if not await asyncio.to_thread(store.put_query, name, {"name": name, "query": query}):
        raise AlreadyExists(f"a query named {name!r} exists")
    return Response(status_code=201, headers={"Location": f"/epcis/queries/{name}"})


async def _named(door: Frontdoor, caller: Principal, name: str) -> dict[str, Any]:
    _, store = _tenant(door, caller)
    query = await asyncio.to_thread(store.query, name)
    if query is None:
        raise NotFound("no query of this tenant has that name")
    return query


@_answering
async def list_queries(request: Request, door: Frontdoor, caller: Principal) -> Response:
    _may(caller, epcis_query.query_events)
    _, store = _tenant(door, caller)
    return JSONResponse(await asyncio.to_thread(store.queries))


@_answering
async def named_query(request: Request, door: Frontdoor, caller: Principal) -> Response:
    _may(caller, epcis_query.query_events)
    if request.method == "DELETE":
        _, store = _tenant(door, caller)
        if not await asyncio.to_thread(store.delete_query, request.path_params["name"]):
            raise NotFound("no query of this tenant has that name")
        return Response(status_code=204)
    return JSONResponse(await _named(door, caller, request.path_params["name"]))


@_answering
async def named_query_events(request: Request, door: Frontdoor, caller: Principal) -> Response:
    query = await _named(door, caller, request.path_params["name"])
    return await _query(request, door, caller, query["query"], query["name"])


@_answering
async def subscribe(request: Request, door: Frontdoor, caller: Principal) -> Response:
    """A webhook subscription to a named query: the events recorded from now on (from its
    ``initialRecordTime`` when given) that answer it are POSTed to ``dest``, signed with
    ``signatureToken`` when given."""
    _may(caller, epcis_feed.events_since)
    query = await _named(door, caller, request.path_params["name"])
    body = await _json(request)
    dest = body.get("dest")
    if not isinstance(dest, str) or urlsplit(dest).scheme not in ("http", "https") \
            or not urlsplit(dest).hostname or len(dest) > 2000:
        raise InvalidArgument("must be an http or https URL", field="dest")
    stream, schedule = body.get("stream", False), body.get("schedule")
    if stream is not True and not isinstance(schedule, dict):
        raise InvalidArgument("give stream: true, or a schedule", field="stream")
    token = body.get("signatureToken", "")
    if not isinstance(token, str) or len(token) > 500:
        raise InvalidArgument("must be a text of at most 500 characters",
                              field="signatureToken")
    initial = body.get("initialRecordTime", "")
    if not isinstance(initial, str):
        raise InvalidArgument("must be an RFC 3339 date-time", field="initialRecordTime")
    tenant, store = _tenant(door, caller)
    cursor = epcis_feed.initial_cursor(initial) or await asyncio.to_thread(
        epcis_feed.head, tenant.ledger, caller)
    sub_id = secrets.token_hex(8)
    await asyncio.to_thread(store.put_subscription, {
        "subscriptionID": sub_id, "queryName": query["name"], "dest": dest,
        "signatureToken": token, "stream": stream is True, "schedule": schedule,
        "reportIfEmpty": bool(body.get("reportIfEmpty", False)), "initialRecordTime": initial,
        "createdAt": _timestamp(now_ms()), "cursor": cursor,
        "caller": {"role": caller.role.name, "credential": caller.credential_id,
                   "party": caller.party_id}})
    await asyncio.to_thread(door.epcis.wake, tenant.name)
    return Response(status_code=201, headers={
        "Location": f"/epcis/queries/{query['name']}/subscriptions/{sub_id}"})


def _shown(sub: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: sub[k] for k in ("subscriptionID", "queryName", "dest", "stream", "schedule",
                                 "reportIfEmpty", "createdAt")}
    if sub.get("initialRecordTime"):
        shown["initialRecordTime"] = sub["initialRecordTime"]
    return shown


@_answering
async def subscriptions(request: Request, door: Frontdoor, caller: Principal) -> Response:
    _may(caller, epcis_feed.events_since)
    name = (await _named(door, caller, request.path_params["name"]))["name"]
    _, store = _tenant(door, caller)
    return JSONResponse([_shown(s) for s in await asyncio.to_thread(store.subscriptions)
                         if s["queryName"] == name])


@_answering
async def subscription(request: Request, door: Frontdoor, caller: Principal) -> Response:
    _may(caller, epcis_feed.events_since)
    name, sub_id = request.path_params["name"], request.path_params["sub_id"]
    _, store = _tenant(door, caller)
    found = [s for s in await asyncio.to_thread(store.subscriptions)
             if s["queryName"] == name and s["subscriptionID"] == sub_id]
    if not found:
        raise NotFound("no subscription of this query has that id")
    if request.method == "DELETE":
        await asyncio.to_thread(store.delete_subscription, sub_id)
        return Response(status_code=204)
    return JSONResponse(_shown(found[0]))


async def openapi(request: Request) -> Response:
    """The OpenAPI description of the EPCIS 2.0 REST binding as this server serves it."""
    return Response(_openapi(), media_type="application/json",
                    headers={**VERSIONS, "Cache-Control": "public, max-age=3600"})


@functools.cache
def _openapi() -> bytes:
    return json.dumps(epcis_openapi.described(
        ((route.path, route.methods or ()) for route in ROUTES), _DOCUMENT_TYPES)).encode()


async def discovery(request: Request) -> Response:
    """GET /epcis: what this repository offers."""
    return JSONResponse({"epcisVersion": EPCIS_VERSION, "cbvVersion": CBV_VERSION,
                         "openapi": "/epcis/openapi.json",
                         "resources": ["capture", "events", "eventTypes", "epcs", "queries"]},
                        headers=VERSIONS)


ROUTES = [
    Route("/epcis", discovery, methods=["GET"]),
    Route("/epcis/openapi.json", openapi, methods=["GET"]),
    Route("/epcis/capture", capture, methods=["POST"]),
    Route("/epcis/capture", capture_jobs, methods=["GET"]),
    Route("/epcis/capture/{capture_id}", capture_job, methods=["GET"]),
    Route("/epcis/events", events, methods=["GET"]),
    Route("/epcis/events/{event_id:path}", event, methods=["GET"]),
    Route("/epcis/eventTypes", event_types, methods=["GET"]),
    Route("/epcis/eventTypes/{event_type}/events", events_of_type, methods=["GET"]),
    Route("/epcis/epcs/{epc:path}/events", events_of_epc, methods=["GET"]),
    Route("/epcis/queries", create_query, methods=["POST"]),
    Route("/epcis/queries", list_queries, methods=["GET"]),
    Route("/epcis/queries/{name}", named_query, methods=["GET", "DELETE"]),
    Route("/epcis/queries/{name}/events", named_query_events, methods=["GET"]),
    Route("/epcis/queries/{name}/subscriptions", subscribe, methods=["POST"]),
    Route("/epcis/queries/{name}/subscriptions", subscriptions, methods=["GET"]),
    Route("/epcis/queries/{name}/subscriptions/{sub_id}", subscription,
          methods=["GET", "DELETE"]),
]
