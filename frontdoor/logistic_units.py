"""The Digital Link of a logistic unit: ``/00/{sscc}`` answers with a redirect to the unit's
check page, or with its RFC 9264 linkset, when a tenant served here allocated the SSCC."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from frontdoor.http import Frontdoor, problem
from frontdoor.resolver import LINKSET_TYPE
from tracecore.errors import InvalidArgument, NotFound
from tracecore.usecases.logistic_units import resolve_sscc
from tracecore.usecases.resolver import Resolution

_VOCABULARY = "https://gs1.org/voc/"
_VARY = "Accept"


async def logistic_unit(request: Request) -> Response:
    """GET or HEAD of ``/00/{sscc}``."""
    door: Frontdoor = request.app.state.door
    accept = {part.split(";", 1)[0].strip().lower()
              for part in request.headers.get("accept", "").split(",")[:20]}
    try:
        resolution = resolve_sscc(
            door.reads, root=door.root(request), path=request.scope["raw_path"].decode("ascii"),
            query=request.scope["query_string"].decode("ascii"),
            link_type=request.query_params.get("linkType", ""),
            wants_linkset=bool(accept & {LINKSET_TYPE, "application/json"}))
    except InvalidArgument as exc:
        return problem(400, exc.message)
    except NotFound as exc:
        return problem(404, exc.message)
    link = f'<{resolution.anchor}?linkType=linkset>; rel="linkset"; type="{LINKSET_TYPE}"'
    if resolution.target is None:
        return JSONResponse(_linkset(resolution), media_type=LINKSET_TYPE,
                            headers={"Link": link, "Vary": _VARY})
    return Response(status_code=307, headers={
        "Location": resolution.target.href, "Link": link, "Vary": _VARY,
        "Cache-Control": "no-store"})


def _linkset(resolution: Resolution) -> dict[str, Any]:
    context: dict[str, Any] = {"anchor": resolution.anchor,
                               "itemDescription": resolution.item_description}
    for link in resolution.links:
        context.setdefault(_VOCABULARY + link.link_type.removeprefix("gs1:"), []).append(
            {"href": link.href, "title": link.title})
    return {"linkset": [context]}
