"""GS1-Conformant resolver routes: a Digital Link answers with a redirect to one of the
product's links, or with its RFC 9264 linkset; ``/.well-known/gs1resolver`` describes it.
Digital Links, most of the front door's traffic with the check page, are plain views
(``frontdoor.asgi``) whose answers are kept while the product's records are unchanged."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from frontdoor.answer_cache import Answer, AnswerCache, Recording
from frontdoor.asgi import header, headers_of, query
from frontdoor.http import Frontdoor, accepted_languages, nothing_here, problem
from frontdoor.resolver_templates import Templates
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
    root = door.root(request.scope)
    return JSONResponse({
        "name": "pharmatrace resolver",
        "resolverRoot": root,
        "supportedPrimaryKeys": ["01", "00"],
        "supportedLinkType": [{"namespace": _VOCABULARY, "prefix": "gs1:",
                               "profile": "https://gs1.org/voc/?show=linktypes"}],
        "linkTypeDefaultCanBeLinkset": False,
        "jsonLdContextLocation": LINKSET_CONTEXT,
    }, headers={"Cache-Control": "max-age=3600"})


class DigitalLink:
    """GET or HEAD of ``/01/{gtin}`` with its key qualifiers and data attributes (or, sent on
    by the route of one bare segment, of a compressed Digital Link ``/{base64url}``) as a plain
    view. Finished answers are kept in ``answers`` for as long as the product's records they
    were made from hold (``frontdoor.answer_cache``); a pack's first answer is filled in from
    its product's template in ``templates`` (``frontdoor.resolver_templates``), or made whole;
    errors are made each time."""

    def __init__(self, door: Frontdoor, answers: AnswerCache[Answer], templates: Templates
                 ) -> None:
        self._door = door
        self._answers = answers
        self._templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = self._door.root(scope)
        raw_path: bytes = scope["raw_path"]
        query_string: bytes = scope["query_string"]
        accept_language = header(scope, b"accept-language")
        linkset = wants_linkset(header(scope, b"accept"))
        key = (root, raw_path, query_string, linkset, accept_language)
        found = self._answers.get(key)
        if found is None:
            made_from = Recording(self._door.reads)

            def made(path: str, query_text: str, made_from: Recording) -> Answer:
                return finished(resolve(
                    made_from, root=root, path=path, query=query_text,
                    link_type=query(scope).get("linkType", ""), wants_linkset=linkset,
                    languages=accepted_languages(accept_language)))

            try:
                found = self._templates.answer(root, raw_path, query_string, key, made_from,
                                               made)
            except (InvalidArgument, NotFound) as exc:
                await refusal(exc)(scope, receive, send)
                return
            self._answers.put(key, found, made_from)
        await send_answer(send, found)


class CompressedLink:
    """The route of one bare path segment: a compressed Digital Link goes to ``view``, any
    other segment is not found."""

    def __init__(self, view: DigitalLink) -> None:
        self._view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _COMPRESSED.fullmatch(scope["path_params"]["compressed"]):
            await self._view(scope, receive, send)
        else:
            await nothing_here()(scope, receive, send)


def refusal(exc: InvalidArgument | NotFound) -> JSONResponse:
    """400 with the reason for a URI that is not a valid Digital Link, 404 for an identifier
    or link type not served here."""
    return problem(400 if isinstance(exc, InvalidArgument) else 404, exc.message)


async def send_answer(send: Send, answer: Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status,
                "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})


def finished(resolution: Resolution) -> Answer:
    """A resolution as an HTTP answer: 307 to its target, 300 with the links it cannot choose
    between, or 200 with the linkset; made by Starlette's responses, kept as their bytes."""
    if resolution.choices:
        response: Response = JSONResponse(
            _linkset(resolution, resolution.choices), status_code=300, media_type=LINKSET_TYPE,
            headers={"Link": _linkset_link(resolution), "Vary": _VARY,
                     "Access-Control-Allow-Methods": _ALLOW})
    elif resolution.target is None:
        response = JSONResponse(
            _linkset(resolution, resolution.links),
            media_type=LINKSET_TYPE, headers={
                "Link": f'{_linkset_link(resolution)}, <{LINKSET_CONTEXT}>; '
                        'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"',
                "Vary": _VARY, "Access-Control-Allow-Methods": _ALLOW})
    else:
        # Most answers: their headers as Starlette's Response writes them, without making one.
        return Answer(307, [*headers_of({
            "Location": resolution.target.href, "Link": _linkset_link(resolution),
            "Vary": _VARY, "Cache-Control": "no-store", "Access-Control-Allow-Methods": _ALLOW}),
            (b"content-length", b"0")], b"")
    return Answer(response.status_code, response.raw_headers, bytes(response.body))


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
