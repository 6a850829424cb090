"""What every route of the front door shares: its configuration and readers, the client's
languages, and error answers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import Scope

from frontdoor.reads import FrontdoorReads
from tracecore.clock import now_ms
from tracecore.credentials import OPERATOR, Principal, parse_token
from tracecore.errors import NotFound, Unauthenticated
from tracecore.ledger.epcis_rest import EpcisStores
from tracecore.ledger.tenants import DataDir
from tracecore.ratelimit import RateLimiter
from tracerpc.metrics import Metrics

# A Host header fit to print in a link: a name or address and an optional port.
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")
#: Language ranges read from one Accept-Language header at most.
_MAX_LANGUAGES = 20


@dataclass(frozen=True)
class FrontdoorConfig:
    """How the front door is served."""

    public_base_url: str = ""
    """Scheme, host and optional path of the links it prints, e.g. https://id.example.com;
    empty: the address each request was sent to."""
    public_rate: float = 10.0
    """Checks a second per client address on the public pages (bursts of twice as many)."""
    max_capture_bytes: int = 16 * 1024 * 1024
    """Largest EPCIS document one POST /epcis/capture may send (413 above it): the import
    limit of ``pharmatrace serve --max-import-mib``."""


@dataclass(frozen=True)
class Frontdoor:
    """One worker's front door: what its routes read and count."""

    config: FrontdoorConfig
    data: DataDir
    reads: FrontdoorReads
    metrics: Metrics
    limiter: RateLimiter
    epcis: EpcisStores

    def root(self, scope: Scope) -> str:
        """Where the links this answer prints start: the configured base URL, else the scheme
        and Host header the request came with."""
        if self.config.public_base_url:
            return self.config.public_base_url.rstrip("/")
        host = next((value.decode("latin-1") for name, value in scope["headers"]
                     if name == b"host"), "")
        if not host or not _HOST.fullmatch(host):
            server = scope.get("server") or ("localhost", None)
            host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
        return f"{scope.get('scheme', 'http')}://{host}"

    def bearer(self, authorization: str, client: tuple[str, int] | None, operator_refusal: str
               ) -> Principal:
        """The tenant credential of an ``Authorization: Bearer`` header's value; Unauthenticated
        if none, malformed, unknown, revoked or expired, or an operator token (refused with
        ``operator_refusal``: no tenant's route serves it)."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send 'Authorization: Bearer <API token>'")
        parsed = parse_token(token.strip())
        if parsed.tenant == OPERATOR:
            raise Unauthenticated(operator_refusal)
        try:
            access = self.data.get(parsed.tenant).access
        except NotFound:
            raise Unauthenticated("unknown API token") from None
        peer = f"{client[0]}:{client[1]}" if client else ""
        return access.authenticate_token(parsed, now_ms(), peer)


def accepted_languages(header: str) -> list[str]:
    """The language ranges of an Accept-Language header, lower case, most wanted first
    (ranges with q=0 and the wildcard left out)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:_MAX_LANGUAGES]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def nothing_here() -> JSONResponse:
    """The 404 of a path no route serves."""
    return problem(404, "nothing here: a GS1 Digital Link starts with /01/{gtin} or "
                   "/00/{sscc}, the check page is /check")


def problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer: the status and a message for people (RFC 9457 problem details)."""
    return JSONResponse({"status": status, "title": _TITLES.get(status, "Error"),
                         "detail": message}, status_code=status,
                        media_type="application/problem+json", headers=headers)


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout",
           409: "Conflict", 413: "Content Too Large", 414: "URI Too Long",
           415: "Unsupported Media Type",
           429: "Too Many Requests", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}
