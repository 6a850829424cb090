"""The HTTP front door: the Digital Link resolver, the consumer check page and the LVMS
responder, as routes over the use cases. Built once per verification worker."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from frontdoor import epcis_rest, logistic_units, lvms, resolver
from frontdoor.answer_cache import Answer, AnswerCache
from frontdoor.asgi import Views, error_answer
from frontdoor.check_page import CheckPage
from frontdoor.http import Frontdoor, FrontdoorConfig, nothing_here
from frontdoor.middleware import Guard, RequestLog
from frontdoor.reads import FrontdoorReads
from frontdoor.resolver_templates import Templates
from frontdoor.routing import Router
from tracecore.errors import TraceError
from tracecore.ledger.epcis_rest import EpcisStores
from tracecore.ledger.tenants import DataDir
from tracecore.ratelimit import RateLimiter
from tracecore.usecases.routing import Directory
from tracerpc.metrics import Metrics
from verify_svc.verification import Verifiers

#: The bytes of finished Digital Link answers a worker keeps (a redirect is about 1.4 kB with
#: what keeping it costs).
ANSWER_CACHE_BYTES = 32 * 1024 * 1024
#: The bytes of resolver answer templates a worker keeps (one per product and request shape,
#: about 1.5 kB each).
TEMPLATE_CACHE_BYTES = 4 * 1024 * 1024


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})


async def _not_found(request: Request, exc: Exception) -> Response:
    return nothing_here()


def _trace_error(request: Request, exc: Exception) -> Response:
    """A domain error a Starlette route did not expect, answered as a plain view's is."""
    assert isinstance(exc, TraceError)
    return error_answer(exc)


@dataclass(frozen=True)
class Built:
    """One worker's front door: the ASGI app, and what the worker flushes and closes."""

    app: ASGIApp
    reads: FrontdoorReads
    requests: RequestLog
    epcis: EpcisStores
    answers: AnswerCache[Answer]
    """The Digital Link answers the worker keeps."""

    def flush(self) -> None:
        """Writes the answer trail, and the request metrics and access log lines."""
        try:
            self.reads.flush()
        finally:
            self.requests.flush()

    def close(self) -> None:
        try:
            self.reads.close()
            self.epcis.close()
        finally:
            self.requests.flush()


def _forget(tenant: str, reads: FrontdoorReads, stores: EpcisStores) -> None:
    """Closes the answer trail and the EPCIS REST store of a tenant that went offline."""
    try:
        reads.forget(tenant)
    finally:
        stores.forget(tenant)


def build(config: FrontdoorConfig, data: DataDir, verifiers: Verifiers, metrics: Metrics,
          directory: Directory | None = None) -> Built:
    """The front door of one worker; with the replication ``directory``, a request for a code
    of a tenant this node does not hold is sent to a node that holds it."""
    reads = FrontdoorReads(data, verifiers)
    requests = RequestLog(metrics)
    stores = EpcisStores(data.root, data.code_keys)
    # A tenant taken offline has every file closed, for a restore to replace them.
    data.add_close_listener(lambda tenant, _: _forget(tenant, reads, stores))
    door = Frontdoor(config, data, reads, metrics,
                     RateLimiter(config.public_rate, burst=max(1.0, 2 * config.public_rate)),
                     stores)
    answers: AnswerCache[Answer] = AnswerCache(ANSWER_CACHE_BYTES)
    digital_link = resolver.DigitalLink(door, answers, Templates(reads, TEMPLATE_CACHE_BYTES))
    site = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/.well-known/gs1resolver", resolver.description, methods=["GET"]),
            Route("/checkConnectivity", lvms.check_connectivity, methods=["GET"]),
            *epcis_rest.ROUTES,
            # Last: one bare segment is a compressed Digital Link only if nothing above took it.
            Route("/{compressed}", resolver.CompressedLink(digital_link), methods=["GET"]),
        ],
        exception_handlers={TraceError: _trace_error, 404: _not_found},
    )
    site.state.door = door
    # Digital Links, the check page and LVMS answers, most of the traffic, skip Starlette's
    # routing.
    app: ASGIApp = Views(site, {"/check": CheckPage(door)},
                         [("/01/", digital_link), ("/00/", logistic_units.LogisticUnit(door)),
                          (lvms.PATH_PREFIX, lvms.Verify(door))])
    if directory is not None:
        app = Router(app, door=door, directory=directory)
    app = Guard(app, requests=requests)
    return Built(app, reads, requests, stores, answers)
