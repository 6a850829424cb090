"""Sending a request for a code of a tenant this node does not hold to a node that holds it
(``tracecore.usecases.routing`` decides which): the check page and the Digital Link resolver
answer 307 to the same path on that node's public base URL; LVMS requests are passed on and
their answers passed back.

Why both: a phone following a QR code, or a browser on the check page, follows a redirect by
itself, and then talks to the node holding the tenant directly, so that node counts the scan
and applies its rate limit to the phone's own address, and no node carries another's traffic.
An LVMS client sends a bearer token, which clients drop when a redirect leaves the host (and
some follow no redirect at all); its answer does not depend on the client's address, so it is
fetched from the node holding the tenant and passed back unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import parse_qsl

import httpx
from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from frontdoor.http import Frontdoor, problem
from tracecore.credentials import parse_token
from tracecore.errors import TraceError, Unavailable
from tracecore.usecases.routing import Directory, Elsewhere, product_of, route_product, route_tenant

log = logging.getLogger("pharmatrace.http")

#: Set on a request passed on to another node: that node answers it itself, whatever its copy
#: of the directory says, so that two nodes with different copies never pass it back and forth.
ROUTED = "x-pharmatrace-routed"
#: Headers of an LVMS request that its answer depends on.
_PASSED_ON = ("authorization", "accept", "accept-language")
_PASSED_BACK = ("content-type", "cache-control", "www-authenticate", "retry-after")
_PROXY_TIMEOUT_S = 10.0


class Holdings:
    """What this worker's node holds: its tenants and their products."""

    def __init__(self, door: Frontdoor) -> None:
        self._door = door

    def owners(self, product_id: str) -> Sequence[str]:
        return self._door.reads.owners(product_id)

    def holds(self, tenant: str) -> bool:
        return tenant in self._door.data.names()


class Router:
    """ASGI middleware in front of the routes: answers here, or sends the request on."""

    def __init__(self, app: ASGIApp, door: Frontdoor, directory: Directory) -> None:
        self.app = app
        self._holdings = Holdings(door)
        self._directory = directory
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            where, proxied = self._where(scope, headers)
        except Unavailable as exc:
            await problem(503, exc.message, {"Retry-After": "1"})(scope, receive, send)
            return
        if where is None:
            await self.app(scope, receive, send)
            return
        target = _target(scope)
        if not proxied:
            response: Response = RedirectResponse(where.base_urls[0].rstrip("/") + target, 307,
                                                  headers={"Cache-Control": "no-store"})
        else:
            response = await self._pass_on(scope, headers, where, target)
        await response(scope, receive, send)

    def _where(self, scope: Scope, headers: Headers) -> tuple[Elsewhere | None, bool]:
        """Where the request is answered (None: here), and whether it is passed on rather
        than redirected."""
        if headers.get(ROUTED):
            return None, False
        path: str = scope["path"]
        try:
            if path == "/check":
                code = dict(parse_qsl(scope["query_string"].decode("latin-1"))).get("code", "")
                return route_product(self._holdings, self._directory, product_of(code)), False
            if path.startswith("/01/"):
                product = product_of("https://host" + path)
                return route_product(self._holdings, self._directory, product), False
            if path.startswith("/verify/gtin/"):
                gtin = path.split("/")[3]
                return route_product(self._holdings, self._directory, gtin), True
            if path == "/checkConnectivity":
                scheme, _, token = headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return None, True
                tenant = parse_token(token.strip()).tenant
                return route_tenant(self._holdings, self._directory, tenant), True
        except Unavailable:
            raise
        except TraceError:  # unreadable: answered here, which says why
            return None, False
        return None, False

    async def _pass_on(self, scope: Scope, headers: Headers, where: Elsewhere, target: str
                       ) -> Response:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=_PROXY_TIMEOUT_S, follow_redirects=False)
        sent = {name: headers[name] for name in _PASSED_ON if name in headers}
        sent[ROUTED] = "1"
        for base in where.base_urls:
            try:
                answer = await self._client.request(scope["method"], base.rstrip("/") + target,
                                                    headers=sent)
            except httpx.HTTPError as exc:
                log.warning("front door %s did not answer: %s", base, exc)
                continue
            return Response(answer.content, answer.status_code, headers={
                name: answer.headers[name] for name in _PASSED_BACK if name in answer.headers})
        return problem(503, "no node serving the tenant of this code answered: retry in a moment",
                       {"Retry-After": "1"})


def _target(scope: Scope) -> str:
    """The request's path and query as the client sent them."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope["query_string"]
    return (raw + (b"?" + query if query else b"")).decode("latin-1")
