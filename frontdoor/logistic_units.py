"""The Digital Link of a logistic unit: ``/00/{sscc}`` answers with a redirect to the unit's
check page, or with its RFC 9264 linkset, when a tenant served here allocated the SSCC."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from frontdoor.asgi import header, query
from frontdoor.http import Frontdoor
from frontdoor.resolver import finished, refusal, send_answer, wants_linkset
from tracecore.errors import InvalidArgument, NotFound
from tracecore.usecases.logistic_units import resolve_sscc


class LogisticUnit:
    """GET or HEAD of ``/00/{sscc}``, as a plain view."""

    def __init__(self, door: Frontdoor) -> None:
        self._door = door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self._door
        try:
            resolution = resolve_sscc(
                door.reads, root=door.root(scope), path=scope["raw_path"].decode("ascii"),
                query=scope["query_string"].decode("ascii"),
                link_type=query(scope).get("linkType", ""),
                wants_linkset=wants_linkset(header(scope, b"accept")))
        except (InvalidArgument, NotFound) as exc:
            await refusal(exc)(scope, receive, send)
            return
        await send_answer(send, finished(resolution))
