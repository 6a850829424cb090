"""Cross-cutting work around every front-door request: bounds on what a request may be, CORS,
request metrics and the access log (which names routes, never the codes in a path or query)."""

from __future__ import annotations

import json
import logging
import re
import time
from bisect import bisect_left
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontdoor.http import problem
from tracerpc.metrics import Metrics

log = logging.getLogger("pharmatrace.http.access")

#: Longest request target (path and query) read; every valid one is far shorter.
MAX_TARGET = 4096
MAX_PARAMS = 64
_NOT_ASCII = re.compile(rb"%[89A-Fa-f]")
_METHODS = "GET, HEAD, OPTIONS"
#: The EPCIS REST binding also captures, and makes and drops named queries and subscriptions.
_EPCIS_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"
#: What an OPTIONS on /epcis answers (GS1 EPCIS 2.0 discovery): the versions this repository
#: speaks, in step with frontdoor.epcis_rest.VERSIONS.
_EPCIS_DISCOVERY = {
    "Allow": _EPCIS_METHODS,
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": _EPCIS_METHODS,
    "Access-Control-Allow-Headers": "Accept, Authorization, Content-Type, "
                                    "GS1-Capture-Error-Behaviour, GS1-EPCIS-Version, "
                                    "GS1-CBV-Version, GS1-Extensions",
    "Access-Control-Max-Age": "86400",
}
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"Link, Location, Retry-After"),
]
_PREFLIGHT = {
    "Allow": _METHODS,
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": _METHODS,
    "Access-Control-Allow-Headers": "Accept, Accept-Language, Authorization",
    "Access-Control-Max-Age": "86400",
}
# Route names for metrics and logs, by the path's start (the first that matches, so a longer
# prefix goes before its shorter one): the paths themselves carry codes. Most requests are
# Digital Links, check pages and LVMS verifications, looked at first.
_ROUTES = (("/01/", "resolver"), ("/checkConnectivity", "lvms_connectivity"),
           ("/check", "check"), ("/verify/", "lvms_verify"), ("/00/", "resolver"),
           ("/epcis/capture", "epcis_capture"), ("/epcis/events", "epcis_events"),
           ("/epcis/queries", "epcis_queries"), ("/epcis", "epcis"), ("/healthz", "healthz"),
           ("/.well-known/gs1resolver", "resolver_description"))


def route_of(path: str) -> str:
    for prefix, name in _ROUTES:
        if path.startswith(prefix):
            return name
    return "other"


class RequestLog:
    """Every request's route, status and time, kept on the request path as one list append and
    turned into metrics and access-log lines by ``flush`` in the worker's flush thread, so
    neither a log write nor a metrics file update holds up the event loop.

    The access log has one JSON line per route, method, status and client in each flush (four
    a second): how many requests, their total and longest time. One person's requests read as
    one line each, as they come seconds apart; a busy client's thousand a second are one line
    instead of a thousand (a log record costs more than a check page's verification)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._pending: list[tuple[str, str, int, float, str]] = []
        self._counters: dict[tuple[str, int], Any] = {}
        self._timers = {name: metrics.http_latency.labels(name)
                        for name in [n for _, n in _ROUTES] + ["other"]}
        self._bounds: list[float] = list(self._timers["other"]._upper_bounds)

    def add(self, route: str, method: str, status: int, seconds: float, client: str) -> None:
        self._pending.append((route, method, status, seconds, client))

    def flush(self) -> int:
        """Counts and logs what was added since the last flush; returns how many."""
        batch, self._pending = self._pending, []
        # Each counter is a shared-memory write: one per route and status a flush, not one
        # per request.
        counts: dict[tuple[str, int], int] = {}
        # (route, method, status, client) -> [requests, total s, longest s]
        lines: dict[tuple[str, str, int, str], list[Any]] = {}
        # route -> its requests in each latency bucket, and their total time
        times: dict[str, tuple[list[int], list[float]]] = {}
        for route, method, status, seconds, client in batch:
            counts[(route, status)] = counts.get((route, status), 0) + 1
            spent = times.get(route)
            if spent is None:
                spent = times[route] = ([0] * len(self._bounds), [0.0])
            spent[0][bisect_left(self._bounds, seconds)] += 1
            spent[1][0] += seconds
            line = lines.get((route, method, status, client))
            if line is None:
                lines[(route, method, status, client)] = [1, seconds, seconds]
            else:
                line[0] += 1
                line[1] += seconds
                line[2] = max(line[2], seconds)
        if log.isEnabledFor(logging.INFO):
            for (route, method, status, client), (n, total, longest) in lines.items():
                log.info(json.dumps({"route": route, "method": method, "status": status,
                                     "requests": n, "total_ms": round(total * 1000, 3),
                                     "max_ms": round(longest * 1000, 3), "client": client}))
        for route, (buckets, total) in times.items():
            _observed(self._timers[route], buckets, total[0])
        for (route, status), count in counts.items():
            counter = self._counters.get((route, status))
            if counter is None:
                counter = self._counters[(route, status)] = self._metrics.http_requests.labels(
                    route, str(status))
            counter.inc(count)
        return len(batch)


def _observed(histogram: Any, buckets: list[int], total: float) -> None:
    """What ``histogram.observe`` does for each of many times, given how many fell in each of
    its buckets and their ``total``: one shared-memory write a bucket and one for the sum,
    instead of two a request. prometheus_client has no call for it; a test holds it to
    ``observe``."""
    histogram._sum.inc(total)
    for value, count in zip(histogram._buckets, buckets, strict=True):
        if count:
            value.inc(count)


class Guard:
    """Refuses what no route should see (too long, too many parameters, not UTF-8, a method
    other than GET, HEAD and OPTIONS outside /epcis), answers CORS preflights and EPCIS
    discovery, and notes every request in the ``RequestLog``."""

    def __init__(self, app: ASGIApp, requests: RequestLog) -> None:
        self.app = app
        self._requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_cors(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *_CORS]
            await send(message)

        try:
            refusal = _refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_with_cors)
            elif scope["method"] == "OPTIONS":
                await _preflight(scope, receive, send)
                status = 204
            else:
                await self.app(scope, receive, send_with_cors)
        finally:
            client = scope.get("client")
            self._requests.add(route_of(scope["path"]), scope["method"], status,
                               time.perf_counter() - started, client[0] if client else "")


def _refusal(scope: Scope) -> Any:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope["query_string"]
    method = scope["method"]
    if _is_epcis(scope["path"]):
        if method not in ("GET", "HEAD", "POST", "DELETE", "OPTIONS"):
            return problem(405, f"only {_EPCIS_METHODS}", {"Allow": _EPCIS_METHODS})
    elif method not in ("GET", "HEAD", "OPTIONS"):
        return problem(405, f"only {_METHODS}", {"Allow": _METHODS})
    if len(raw_path) + len(query) > MAX_TARGET:
        return problem(414, f"the request target is longer than {MAX_TARGET} bytes")
    if query.count(b"&") >= MAX_PARAMS:
        return problem(400, f"at most {MAX_PARAMS} query parameters")
    try:
        # The parser lets only ASCII through: what is not escaped is UTF-8 already, and so is
        # what escapes only ASCII bytes (%00 to %7F), as a code's brackets and slashes do.
        if _NOT_ASCII.search(raw_path):
            unquote_to_bytes(raw_path).decode("utf-8")
        if _NOT_ASCII.search(query):
            unquote_to_bytes(query).decode("utf-8")
    except UnicodeDecodeError:
        return problem(400, "the path or query is not UTF-8 once percent-decoded")
    return None


def _is_epcis(path: str) -> bool:
    return path == "/epcis" or path.startswith("/epcis/")


async def _preflight(scope: Scope, receive: Receive, send: Send) -> None:
    from starlette.responses import Response

    from frontdoor.epcis_rest import VERSIONS

    headers = {**_EPCIS_DISCOVERY, **VERSIONS} if _is_epcis(scope["path"]) else _PREFLIGHT
    await Response(status_code=204, headers=headers)(scope, receive, send)
