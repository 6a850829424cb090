"""The OpenAPI description GET /epcis/openapi.json serves: GS1's description of the EPCIS 2.0
REST binding (``epcis_openapi.json``, as GS1 publishes it), cut to the resources and methods
this server answers, under the server's ``/epcis`` prefix, and saying what GS1's text leaves
out: the XML and JSON-LD documents capture takes, and the subscription fields it reads."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

GS1_DESCRIPTION = Path(__file__).parent / "epcis_openapi.json"
PREFIX = "/epcis"
#: Route path parameters by the names GS1's description gives them.
_PARAMETERS = {"capture_id": "captureID", "event_id": "eventID", "event_type": "eventType",
               "epc": "epc", "name": "queryName", "sub_id": "subscriptionID"}
_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
_XML = {"application/xml", "text/xml"}
#: What a subscription takes (``frontdoor.epcis_rest.subscribe``), field by field.
_SUBSCRIPTION = {
    "type": "object",
    "required": ["dest"],
    "description": "Either `stream: true` or a `schedule`.",
    "properties": {
        "dest": {"$ref": "#/components/schemas/dest"},
        "signatureToken": {
            "type": "string", "maxLength": 500,
            "description": "Signs each delivery: the `GS1-Signature` header is `sha256=` and "
                           "the HMAC-SHA256 of the body under this token, in hex."},
        "initialRecordTime": {
            "type": "string", "format": "date-time",
            "description": "Events recorded from this time on are delivered, those recorded "
                           "before the subscription included; without it, only events "
                           "recorded after the subscription is made."},
        "stream": {"type": "boolean",
                   "description": "Deliver each matching event as it is recorded."},
        "schedule": {
            "$ref": "#/components/schemas/QueryScheduleSubscription/properties/schedule"},
        "reportIfEmpty": {"$ref": "#/components/schemas/GS1-Query-ReportIfEmpty"},
    },
}
_OWN_DESCRIPTION = {
    "get": {
        "tags": ["Discovery"],
        "summary": "This description of the EPCIS 2.0 REST binding as this server serves it.",
        "responses": {"200": {"description": "An OpenAPI 3 document.",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    },
}


def gs1_path(route_path: str) -> str:
    """The path GS1's description gives the resource a route of this server serves."""
    path = route_path.removeprefix(PREFIX) or "/"
    return _PARAMETER.sub(lambda m: "{" + _PARAMETERS.get(m.group(1), m.group(1)) + "}", path)


def described(routes: Iterable[tuple[str, Iterable[str]]], document_types: Sequence[str]
              ) -> dict[str, Any]:
    """The description of ``routes`` ((path, methods) of each): GS1's operations of the paths
    and methods served (OPTIONS on each, which the front door answers everywhere under
    ``/epcis``), capture taking ``document_types``."""
    gs1 = _gs1()
    served: dict[str, set[str]] = {}
    for path, methods in routes:
        # HEAD goes with every GET (Starlette answers it), as GS1's description leaves it.
        served.setdefault(gs1_path(path), set()).update(m.lower() for m in methods
                                                        if m != "HEAD")
    paths: dict[str, Any] = {}
    for path, methods in sorted(served.items()):
        if path == "/openapi.json":
            paths[path] = copy.deepcopy(_OWN_DESCRIPTION)
            continue
        given = gs1["paths"][path]
        paths[path] = {key: copy.deepcopy(value) for key, value in given.items()
                       if key in methods or key in ("options", "parameters")}
        missing = methods - given.keys()
        if missing:
            raise KeyError(f"GS1's description has no {sorted(missing)} of {path}")
    capture = paths["/capture"]["post"]["requestBody"]["content"]
    as_json = capture["application/json"]
    for media in document_types:
        if media in _XML:
            capture[media] = {"schema": {
                "type": "string",
                "description": "An EPCISDocument in EPCIS 2.0 or 1.2 XML, read into the same "
                               "events as its JSON-LD form."}}
        else:
            capture[media] = as_json
    subscribe = paths["/queries/{queryName}/subscriptions"]["post"]["requestBody"]["content"]
    subscribe["application/json"]["schema"] = _SUBSCRIPTION
    return {**{k: v for k, v in gs1.items() if k != "paths"},
            "servers": [{"url": PREFIX}], "paths": paths}


@cache
def _gs1() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GS1_DESCRIPTION.read_text(encoding="utf-8"))
    return loaded
