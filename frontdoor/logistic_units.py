"""The Digital Link of a logistic unit: ``/00/{sscc}`` answers with a redirect to the unit's
check page, or with its RFC 9264 linkset, when a tenant served here allocated the SSCC."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from frontdoor.http import Frontdoor, problem
from frontdoor.resolver import answer, wants_linkset
from tracecore.errors import InvalidArgument, NotFound
from tracecore.usecases.logistic_units import resolve_sscc


async def logistic_unit(request: Request) -> Response:
    """GET or HEAD of ``/00/{sscc}``."""
    door: Frontdoor = request.app.state.door
    try:
        resolution = resolve_sscc(
            door.reads, root=door.root(request), path=request.scope["raw_path"].decode("ascii"),
            query=request.scope["query_string"].decode("ascii"),
            link_type=request.query_params.get("linkType", ""),
            wants_linkset=wants_linkset(request.headers.get("accept", "")))
    except InvalidArgument as exc:
        return problem(400, exc.message)
    except NotFound as exc:
        return problem(404, exc.message)
    return answer(resolution)
