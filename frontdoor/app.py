"""The HTTP front door: the Digital Link resolver, the consumer check page and the LVMS
responder, as routes over the use cases. Built once per verification worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from frontdoor import check_page, epcis_rest, logistic_units, lvms, resolver
from frontdoor.http import Frontdoor, FrontdoorConfig, problem
from frontdoor.middleware import Guard, RequestLog
from frontdoor.reads import FrontdoorReads
from frontdoor.routing import Router
from tracecore.errors import InvalidArgument, NotFound, TraceError, Unavailable
from tracecore.ledger.epcis_rest import EpcisStores
from tracecore.ledger.tenants import DataDir
from tracecore.ratelimit import RateLimiter
from tracecore.usecases.routing import Directory
from tracerpc.metrics import Metrics
from verify_svc.verification import Verifiers

log = logging.getLogger("pharmatrace.http")

_STATUS = ((InvalidArgument, 400), (NotFound, 404), (Unavailable, 503))


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})


async def _not_found(request: Request, exc: Exception) -> Response:
    return problem(404, "nothing here: a GS1 Digital Link starts with /01/{gtin} or "
                   "/00/{sscc}, the check page is /check")


def _trace_error(request: Request, exc: Exception) -> Response:
    """A domain error no route expected: its status, its message (which never carries a key
    or a path); anything else is the server's fault."""
    assert isinstance(exc, TraceError)
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return problem(status, str(exc))
    log.error("front door: %s", exc)
    return problem(500, "internal error")


@dataclass(frozen=True)
class Built:
    """One worker's front door: the ASGI app, and what the worker flushes and closes."""

    app: Starlette
    reads: FrontdoorReads
    requests: RequestLog
    epcis: EpcisStores

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


def build(config: FrontdoorConfig, data: DataDir, verifiers: Verifiers, metrics: Metrics,
          directory: Directory | None = None) -> Built:
    """The front door of one worker; with the replication ``directory``, a request for a code
    of a tenant this node does not hold is sent to a node that holds it."""
    reads = FrontdoorReads(data, verifiers)
    requests = RequestLog(metrics)
    stores = EpcisStores(data.root)
    door = Frontdoor(config, data, reads, metrics,
                     RateLimiter(config.public_rate, burst=max(1.0, 2 * config.public_rate)),
                     stores)
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/.well-known/gs1resolver", resolver.description, methods=["GET"]),
            Route("/01/{rest:path}", resolver.digital_link, methods=["GET"]),
            Route("/00/{rest:path}", logistic_units.logistic_unit, methods=["GET"]),
            Route("/check", check_page.page, methods=["GET"]),
            Route("/verify/gtin/{gtin}/lot/{lot}/ser/{serial}", lvms.verify, methods=["GET"]),
            Route("/checkConnectivity", lvms.check_connectivity, methods=["GET"]),
            *epcis_rest.ROUTES,
            # Last: one bare segment is a compressed Digital Link only if nothing above took it.
            Route("/{compressed}", resolver.compressed_link, methods=["GET"]),
        ],
        middleware=[Middleware(Guard, requests=requests),
                    *([Middleware(Router, door=door, directory=directory)]
                      if directory is not None else [])],
        exception_handlers={TraceError: _trace_error, 404: _not_found},
    )
    app.state.door = door
    return Built(app, reads, requests, stores)
