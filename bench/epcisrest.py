"""``python -m bench epcisrest``: capture through the EPCIS 2.0 REST binding (POST /epcis/capture,
until every job has finished) beside gRPC CaptureEvents and ImportEpcis of the same events in the
same run, each side run twice, interleaved; and the lag of webhook deliveries (from a capture's
202 to its event arriving at the receiver)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from pharmatrace.v1 import admin_pb2
from pharmatrace.v1 import lifecycle_pb2 as lpb

from bench.harness import DEV_TENANT, HOST
from bench.lifecycle_rig import EXPIRES, LOT, ctx, lifecycle_server
from bench.measure import settle
from bench.report import Result, Target, say
from tracecore.codes import parse

DEFAULT_EVENTS = 2000
CODES_PER_EVENT = 10
EVENTS_PER_DOCUMENT = 100
LAG_SAMPLES = 100
LAG_INTERVAL_S = 0.05
_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
#: The order the sides run in, each on codes of its own.
ORDER = ("grpc", "import", "rest", "rest", "import", "grpc")
_SIDES = {"grpc": "gRPC CaptureEvents", "import": "gRPC ImportEpcis of the same events in "
          f"documents of {EVENTS_PER_DOCUMENT}", "rest": "POST /epcis/capture of those documents"}


def _uri(code: str) -> str:
    parsed = parse(code).code
    return f"https://id.gs1.org/01/{parsed.product}/21/{parsed.serial}"


def commissioning(codes: Sequence[str], biz_step: str = "commissioning") -> dict[str, Any]:
    return {"type": "ObjectEvent", "eventID": f"urn:uuid:{uuid.uuid4()}",
            "eventTime": "2026-03-05T09:30:00.000+08:00", "eventTimeZoneOffset": "+08:00",
            "epcList": [_uri(c) for c in codes], "action": "ADD", "bizStep": biz_step,
            "disposition": "active", "readPoint": {"id": "urn:pharmatrace:party:PLANT"},
            "ilmd": {"cbvmda:lotNumber": LOT, "cbvmda:itemExpirationDate": EXPIRES}}


def document(events: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"@context": [_CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
                       "creationDate": "2026-03-05T09:45:00Z",
                       "epcisBody": {"eventList": list(events)}})


class _Receiver:
    """A webhook receiver on loopback: when each eventID arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                now = time.perf_counter()
                for event in body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]:
                    receiver.arrived.setdefault(event["eventID"], now)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_jobs(http: httpx.Client, locations: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for location in locations:
        while True:
            job = http.get(location).json()
            if not job["running"]:
                if not job["success"]:
                    raise RuntimeError(f"capture job failed: {job['errors'][:3]}")
                break
            if time.monotonic() > deadline:
                raise RuntimeError("capture jobs did not finish in time")
            time.sleep(0.01)


def run(tmp: Path, events: int) -> list[Result]:
    codes_n = events * CODES_PER_EVENT
    with lifecycle_server(tmp, "epcisrest", 1) as (server, client):
        token = client.admin.CreateToken(admin_pb2.CreateTokenRequest(
            tenant=DEV_TENANT, role=admin_pb2.ROLE_ADMIN), timeout=30).token
        http = httpx.Client(base_url=f"http://{HOST}:{server.ports['http']}", timeout=120,
                            headers={"Authorization": f"Bearer {token}"})
        say(f"epcisrest: issuing {len(ORDER) * codes_n:,} codes ...")
        pools = [client.pool(f"epcisrest-{side}-{i}", codes_n) for i, side in enumerate(ORDER)]
        # A small document each way first, so the measured runs find the document readers'
        # processes started and connections open.
        warm = client.pool("epcisrest-warm", 2 * CODES_PER_EVENT)
        client.lifecycle.ImportEpcis(lpb.ImportEpcisRequest(
            tenant=DEV_TENANT, document=document([commissioning(warm[:CODES_PER_EVENT])])),
            timeout=120)
        answer = http.post("/epcis/capture", headers={"Content-Type": "application/ld+json"},
                           content=document([commissioning(warm[CODES_PER_EVENT:])]))
        _wait_jobs(http, [answer.headers["location"]], 120)

        # Each side runs twice, in the order A B C C B A, so that load elsewhere on the
        # machine, rising or falling, weighs on every side alike.
        seconds = dict.fromkeys(ORDER, 0.0)
        posted_s = 0.0
        for side, codes in zip(ORDER, pools, strict=True):
            say(f"epcisrest: {_SIDES[side]}, {events:,} events of {CODES_PER_EVENT} codes ...")
            if side == "grpc":
                seconds[side] += _capture_events(client, codes)
            elif side == "import":
                seconds[side] += _import_epcis(client, codes)
            else:
                took, posted = _post_capture(http, codes)
                seconds[side] += took
                posted_s += posted

        lags = _webhook_lags(http, client)
        http.close()
    rate = {side: events * ORDER.count(side) / seconds[side] for side in seconds}
    grpc_s, rest_s, import_s = seconds["grpc"], seconds["rest"], seconds["import"]
    grpc_rate, rest_rate, import_rate = rate["grpc"], rate["rest"], rate["import"]
    say(f"epcisrest: REST {rest_rate:,.0f} events/s, gRPC CaptureEvents {grpc_rate:,.0f} "
        f"events/s, gRPC ImportEpcis {import_rate:,.0f} events/s; the POSTs took "
        f"{posted_s:.2f} s of REST's {rest_s:.2f} s")
    lags.sort()
    p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    details = {"events": events, "codes_per_event": CODES_PER_EVENT,
               "events_per_document": EVENTS_PER_DOCUMENT, "rest_seconds": rest_s,
               "grpc_seconds": grpc_s, "rest_posting_seconds": posted_s,
               "runs_per_side": ORDER.count("rest")}
    return [
        Result(bench="epcisrest", name=f"POST /epcis/capture, {events:,} events", unit="events/s",
               key="epcisrest.capture", figure=rest_rate, baseline=grpc_rate,
               baseline_name="gRPC CaptureEvents, same events", targets=[Target("min_ratio", 0.6)],
               details={**details, "epcs_per_s": rest_rate * CODES_PER_EVENT}),
        Result(bench="epcisrest", name=f"POST /epcis/capture, {events:,} events", unit="events/s",
               key="epcisrest.capture_vs_import", figure=rest_rate, baseline=import_rate,
               baseline_name="gRPC ImportEpcis, same documents",
               details={**details, "import_seconds": import_s}),
        Result(bench="epcisrest", name="webhook lag p50, capture 202 to arrival", unit="ms",
               key="epcisrest.webhook.p50", figure=p50 * 1000,
               details={"samples": len(lags)}),
        Result(bench="epcisrest", name="webhook lag p99, capture 202 to arrival", unit="ms",
               key="epcisrest.webhook.p99", figure=p99 * 1000,
               details={"samples": len(lags)}),
    ]


def _capture_events(client: Any, codes: Sequence[str]) -> float:
    """Seconds of one gRPC CaptureEvents stream commissioning ``codes``, in messages of
    EVENTS_PER_DOCUMENT events."""
    events = [lpb.LifecycleEvent(kind=lpb.EVENT_KIND_COMMISSION, context=ctx("PLANT"),
                                 codes=codes[i:i + CODES_PER_EVENT])
              for i in range(0, len(codes), CODES_PER_EVENT)]
    messages = [lpb.CaptureEventsRequest(tenant=DEV_TENANT,
                                         events=events[i:i + EVENTS_PER_DOCUMENT])
                for i in range(0, len(events), EVENTS_PER_DOCUMENT)]
    settle()
    started = time.perf_counter()
    response = client.lifecycle.CaptureEvents(iter(messages), timeout=600)
    took = time.perf_counter() - started
    if response.failures or response.changed != len(codes):
        raise RuntimeError(f"CaptureEvents: {response.changed} changed, "
                           f"{list(response.failures)[:3]}")
    return took


def _import_epcis(client: Any, codes: Sequence[str]) -> float:
    """Seconds of gRPC ImportEpcis of the same events, one document at a time."""
    texts = _documents(codes)
    settle()
    started = time.perf_counter()
    for text in texts:
        imported = client.lifecycle.ImportEpcis(lpb.ImportEpcisRequest(
            tenant=DEV_TENANT, document=text), timeout=600)
        if imported.failures:
            raise RuntimeError(f"ImportEpcis: {list(imported.failures)[:3]}")
    return time.perf_counter() - started


def _post_capture(http: httpx.Client, codes: Sequence[str]) -> tuple[float, float]:
    """Seconds from the first POST /epcis/capture of the same documents until every job has
    finished, and how long the POSTs themselves took."""
    texts = _documents(codes)
    settle()
    started = time.perf_counter()
    locations = []
    for text in texts:
        answer = http.post("/epcis/capture", content=text,
                           headers={"Content-Type": "application/ld+json"})
        answer.raise_for_status()
        locations.append(answer.headers["location"])
    posted = time.perf_counter() - started
    _wait_jobs(http, locations, 600)
    return time.perf_counter() - started, posted


def _documents(codes: Sequence[str]) -> list[str]:
    """EPCIS documents of EVENTS_PER_DOCUMENT commissioning events of CODES_PER_EVENT codes."""
    step = EVENTS_PER_DOCUMENT * CODES_PER_EVENT
    return [document([commissioning(codes[j:j + CODES_PER_EVENT])
                       for j in range(i, min(i + step, len(codes)), CODES_PER_EVENT)])
            for i in range(0, len(codes), step)]


def _webhook_lags(http: httpx.Client, client: Any) -> list[float]:
    """Single-event captures at a steady pace, each timed from its 202 to its webhook."""
    receiver = _Receiver()
    try:
        http.post("/epcis/queries", json={"name": "lag", "query": {"EQ_bizStep": "inspecting"}}
                  ).raise_for_status()
        http.post("/epcis/queries/lag/subscriptions",
                  json={"dest": receiver.url, "stream": True}).raise_for_status()
        codes = client.pool("epcisrest-lag", LAG_SAMPLES)
        say(f"epcisrest: webhook lag, {LAG_SAMPLES} single-event captures ...")
        accepted: dict[str, float] = {}
        for code in codes:
            event = {**commissioning([code], "inspecting"), "action": "OBSERVE"}
            del event["ilmd"]
            http.post("/epcis/capture", content=document([event]),
                      headers={"Content-Type": "application/ld+json"}).raise_for_status()
            accepted[event["eventID"]] = time.perf_counter()
            time.sleep(LAG_INTERVAL_S)
        deadline = time.monotonic() + 60
        while len(receiver.arrived) < len(accepted) and time.monotonic() < deadline:
            time.sleep(0.05)
        return [receiver.arrived[e] - t for e, t in accepted.items() if e in receiver.arrived]
    finally:
        receiver.close()
