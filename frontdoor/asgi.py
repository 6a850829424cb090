"""The pages most requests hit (the check page, LVMS answers) as plain ASGI callables, in front
of the Starlette app that serves the rest: a view reads the scope as it is and sends prebuilt
headers, without a request object, a route table walk or exception middleware per request."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from frontdoor.http import problem
from tracecore.errors import InvalidArgument, NotFound, TraceError, Unavailable

log = logging.getLogger("pharmatrace.http")

#: ``view(scope, receive, send)``: one plain ASGI route.
View = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
_STATUS = ((InvalidArgument, 400), (NotFound, 404), (Unavailable, 503))


def query(scope: Scope) -> dict[str, str]:
    """The query parameters as Starlette reads them (``parse_qsl``, blank ones kept), the last
    of each name winning."""
    raw: bytes = scope["query_string"]
    if not raw.isascii():
        return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    # What parse_qsl does for an ASCII query, without its per-call set-up and the str round
    # trip of each percent-encoded field.
    found = {}
    for field in raw.split(b"&"):
        if field:
            name, _, value = field.partition(b"=")
            found[_unquoted(name)] = _unquoted(value)
    return found


def _unquoted(field: bytes) -> str:
    if b"%" not in field and b"+" not in field:
        return field.decode("ascii")
    return unquote_to_bytes(field.replace(b"+", b" ")).decode("utf-8", "replace")


def header(scope: Scope, name: bytes) -> str:
    """The first header ``name`` (lower case) of the request, "" if none."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def headers_of(pairs: dict[str, str]) -> Headers:
    """Response headers as ASGI sends them, made once."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in pairs.items()]


async def respond(send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]]
                  ) -> None:
    """One whole answer: ``headers`` and the body's length, then the body."""
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def error_answer(exc: TraceError) -> JSONResponse:
    """A domain error no route expected: its status, its message (which never carries a key
    or a path); anything else is the server's fault."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return problem(status, str(exc))
    log.error("front door: %s", exc)
    return problem(500, "internal error")


class Views:
    """Sends a request whose path is one of ``exact`` (or starts with one of ``prefixes``) to
    its view, everything else to ``app``."""

    def __init__(self, app: ASGIApp, exact: dict[str, View],
                 prefixes: Sequence[tuple[str, View]] = ()) -> None:
        self.app = app
        self._exact = exact
        self._prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            view = self._exact.get(path)
            if view is None:
                view = next((v for prefix, v in self._prefixes if path.startswith(prefix)),
                            None)
            if view is not None:
                try:
                    await view(scope, receive, send)
                except TraceError as exc:
                    await error_answer(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
