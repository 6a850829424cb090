"""GS1-Conformant resolver routes: a Digital Link answers with a redirect to one of the
product's links, or with its RFC 9264 linkset; ``/.well-known/gs1resolver`` describes it."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from frontdoor.http import Frontdoor, accepted_languages, problem
from tracecore.errors import InvalidArgument, NotFound
from tracecore.usecases.resolver import Link, Resolution, resolve

LINKSET_TYPE = "application/linkset+json"
_VOCABULARY = "https://gs1.org/voc/"
_VARY = "Accept, Accept-Language"
_SAME_AS = "http://www.w3.org/2002/07/owl#sameAs"
#: One path segment that may be a compressed Digital Link (the shortest, a GTIN, is 10 long).
_COMPRESSED = re.compile(r"[A-Za-z0-9_-]{10,}")
#: The JSON-LD context GS1 publishes for resolvers' linksets (GS1-Conformant Resolver 1.x).
LINKSET_CONTEXT = "https://ref.gs1.org/standards/resolver/linkset-context"
#: Every resolver answer says what the resolver supports, preflight or not.
_ALLOW = "GET, HEAD, OPTIONS"


async def description(request: Request) -> Response:
    """The resolver description file of GS1-Conformant Resolver 1.x."""
    door: Frontdoor = request.app.state.door
    root = door.root(request)
    return JSONResponse({
        "name": "pharmatrace resolver",
        "resolverRoot": root,
        "supportedPrimaryKeys": ["01", "00"],
        "supportedLinkType": [{"namespace": _VOCABULARY, "prefix": "gs1:",
                               "profile": "https://gs1.org/voc/?show=linktypes"}],
        "linkTypeDefaultCanBeLinkset": False,
        "jsonLdContextLocation": LINKSET_CONTEXT,
    }, headers={"Cache-Control": "max-age=3600"})


async def digital_link(request: Request) -> Response:
    """GET or HEAD of ``/01/{gtin}`` with its key qualifiers and data attributes, or of a
    compressed Digital Link ``/{base64url}``."""
    door: Frontdoor = request.app.state.door
    root = door.root(request)
    params = request.query_params
    try:
        resolution = resolve(
            door.reads, root=root, path=request.scope["raw_path"].decode("ascii"),
            query=request.scope["query_string"].decode("ascii"),
            link_type=params.get("linkType", ""),
            wants_linkset=wants_linkset(request.headers.get("accept", "")),
            languages=accepted_languages(request.headers.get("accept-language", "")))
    except InvalidArgument as exc:
        return problem(400, exc.message)
    except NotFound as exc:
        return problem(404, exc.message)
    return answer(resolution)


async def compressed_link(request: Request) -> Response:
    """GET or HEAD of a compressed Digital Link ``/{base64url}``; any other single segment is
    not found."""
    if not _COMPRESSED.fullmatch(request.path_params["compressed"]):
        raise HTTPException(404)
    return await digital_link(request)


def answer(resolution: Resolution) -> Response:
    """A resolution as HTTP: 307 to its target, 300 with the links it cannot choose between,
    or 200 with the linkset."""
    if resolution.choices:
        return JSONResponse(_linkset(resolution, resolution.choices),
                            status_code=300, media_type=LINKSET_TYPE,
                            headers={"Link": _linkset_link(resolution), "Vary": _VARY,
                                     "Access-Control-Allow-Methods": _ALLOW})
    if resolution.target is None:
        return JSONResponse(
            _linkset(resolution, resolution.links),
            media_type=LINKSET_TYPE, headers={
                "Link": f'{_linkset_link(resolution)}, <{LINKSET_CONTEXT}>; '
                        'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"',
                "Vary": _VARY, "Access-Control-Allow-Methods": _ALLOW})
    return Response(status_code=307, headers={
        "Location": resolution.target.href, "Link": _linkset_link(resolution), "Vary": _VARY,
        "Cache-Control": "no-store", "Access-Control-Allow-Methods": _ALLOW})


def wants_linkset(accept: str) -> bool:
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")[:20]}
    return LINKSET_TYPE in kinds or "application/json" in kinds


@functools.lru_cache(maxsize=4096)
def _relation(link_type: str) -> str:
    return _VOCABULARY + link_type.removeprefix("gs1:")


def _linkset(resolution: Resolution, links: Sequence[Link]) -> dict[str, Any]:
    """RFC 9264 JSON: one context object, its relations in full GS1 vocabulary form (and, for
    a compressed Digital Link, owl:sameAs the uncompressed one)."""
    context: dict[str, Any] = {"anchor": resolution.anchor,
                               "itemDescription": resolution.item_description}
    if resolution.same_as:
        context[_SAME_AS] = [{"href": resolution.same_as}]
    for link in links:
        target: dict[str, Any] = {"href": link.href, "title": link.title}
        if link.lang:
            target["hreflang"] = [link.lang]
        context.setdefault(_relation(link.link_type), []).append(target)
    return {"linkset": [context]}


def _linkset_link(resolution: Resolution) -> str:
    """The Link header value naming the linkset (RFC 8288). The links themselves are only in
    the linkset: listing them all in the header was deprecated by GS1-Conformant Resolver
    1.0.0."""
    return f'<{resolution.anchor}?linkType=linkset>; rel="linkset"; type="{LINKSET_TYPE}"'
