"""GS1-Conformant resolver routes: a Digital Link answers with a redirect to one of the
product's links, or with its RFC 9264 linkset; ``/.well-known/gs1resolver`` describes it."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from frontdoor.http import Frontdoor, accepted_languages, problem
from tracecore.errors import InvalidArgument, NotFound
from tracecore.usecases.resolver import Link, Resolution, resolve

LINKSET_TYPE = "application/linkset+json"
_VOCABULARY = "https://gs1.org/voc/"
_VARY = "Accept, Accept-Language"


async def description(request: Request) -> Response:
    """The resolver description file of GS1-Conformant Resolver 1.x."""
    door: Frontdoor = request.app.state.door
    root = door.root(request)
    return JSONResponse({
        "name": "pharmatrace resolver",
        "resolverRoot": root,
        "supportedPrimaryKeys": ["01"],
        "supportedLinkType": [{"namespace": _VOCABULARY, "prefix": "gs1:",
                               "profile": "https://gs1.org/voc/?show=linktypes"}],
        "linkTypeDefaultCanBeLinkset": True,
        "linkset": f"{root}/.well-known/gs1resolver",
    }, headers={"Cache-Control": "max-age=3600"})


async def digital_link(request: Request) -> Response:
    """GET or HEAD of ``/01/{gtin}`` with its key qualifiers and data attributes."""
    door: Frontdoor = request.app.state.door
    root = door.root(request)
    params = request.query_params
    try:
        resolution = resolve(
            door.reads, root=root, path=request.scope["raw_path"].decode("ascii"),
            query=request.scope["query_string"].decode("ascii"),
            link_type=params.get("linkType", ""),
            wants_linkset=_wants_linkset(request.headers.get("accept", "")),
            languages=accepted_languages(request.headers.get("accept-language", "")))
    except InvalidArgument as exc:
        return problem(400, exc.message)
    except NotFound as exc:
        return problem(404, exc.message)
    link_header = _link_header(resolution)
    if resolution.target is None:
        return JSONResponse(_linkset(resolution), media_type=LINKSET_TYPE,
                            headers={"Link": link_header, "Vary": _VARY})
    return Response(status_code=307, headers={
        "Location": resolution.target.href, "Link": link_header, "Vary": _VARY,
        "Cache-Control": "no-store"})


def _wants_linkset(accept: str) -> bool:
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")[:20]}
    return LINKSET_TYPE in kinds or "application/json" in kinds


@functools.lru_cache(maxsize=4096)
def _relation(link_type: str) -> str:
    return _VOCABULARY + link_type.removeprefix("gs1:")


def _linkset(resolution: Resolution) -> dict[str, Any]:
    """RFC 9264 JSON: one context object, its relations in full GS1 vocabulary form."""
    context: dict[str, Any] = {"anchor": resolution.anchor}
    if resolution.item_description:
        context["itemDescription"] = resolution.item_description
    for link in resolution.links:
        target: dict[str, Any] = {"href": link.href}
        if link.title:
            target["title"] = link.title
        if link.lang:
            target["hreflang"] = [link.lang]
        context.setdefault(_relation(link.link_type), []).append(target)
    return {"linkset": [context]}


def _link_header(resolution: Resolution) -> str:
    """The linkset's own address first, then each link (RFC 8288)."""
    parts = [f'<{resolution.anchor}?linkType=linkset>; rel="linkset"; type="{LINKSET_TYPE}"']
    parts += [_link_value(link) for link in resolution.links]
    return ", ".join(parts)


def _link_value(link: Link) -> str:
    value = f'<{link.href}>; rel="{_relation(link.link_type)}"'
    if link.lang:
        value += f'; hreflang="{link.lang}"'
    if link.title:
        value += _title_parameter(link.title)
    return value


@functools.lru_cache(maxsize=4096)
def _title_parameter(title: str) -> str:
    """``; title="…"``, or ``; title*=UTF-8''…`` for a title that is not ASCII (header values
    are Latin-1 on the wire)."""
    if title.isascii():
        escaped = title.replace("\\", "\\\\").replace('"', '\\"')
        return f'; title="{escaped}"'
    return f"; title*=UTF-8''{quote(title, safe='')}"
