"""What the EPCIS REST binding's tests share: documents to capture, a capture that waits for its
job, and a webhook receiver (a real HTTP server on 127.0.0.1) that keeps what it is sent."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tracecore.codes import parse

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
WAIT_S = 30.0


def epc(code: str) -> str:
    parsed = parse(code).code
    return f"https://id.gs1.org/01/{parsed.product}/21/{parsed.serial}"


def inspection(codes: Sequence[str], *, when: str = "2026-03-05T09:30:00.000+08:00",
               biz_step: str = "inspecting") -> dict[str, Any]:
    """An ObjectEvent observing ``codes``, with an eventID of its own."""
    return {"type": "ObjectEvent", "eventID": f"urn:uuid:{uuid.uuid4()}", "eventTime": when,
            "eventTimeZoneOffset": when[-6:], "epcList": [epc(c) for c in codes],
            "action": "OBSERVE", "bizStep": biz_step}


def document(events: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"@context": [CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
                       "creationDate": "2026-03-05T09:45:00Z",
                       "epcisBody": {"eventList": list(events)}})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def finished_job(client: httpx.Client, token: str, location: str) -> dict[str, Any]:
    """The capture job at ``location`` once it is no longer running."""
    deadline = time.monotonic() + WAIT_S
    while True:
        job: dict[str, Any] = client.get(location, headers=bearer(token)).json()
        if not job["running"] or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def capture(client: httpx.Client, token: str, text: str, behaviour: str = "rollback"
            ) -> dict[str, Any]:
    """POSTs a document and answers its finished capture job."""
    answer = client.post("/epcis/capture", content=text, headers={
        **bearer(token), "Content-Type": "application/ld+json",
        "GS1-Capture-Error-Behaviour": behaviour})
    assert answer.status_code == 202, answer.text
    return finished_job(client, token, answer.headers["location"])


@dataclass
class Receiver:
    """A webhook receiver: every POST it took (headers, JSON body), or 503 while refusing."""

    refusing: bool = False
    refused: int = 0
    taken: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.refusing:
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.taken.append(({k.lower(): v for k, v in self.headers.items()},
                                           body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for _, body in self.taken:
            found.extend(json.loads(body)["epcisBody"]["queryResults"]["resultsBody"]
                         ["eventList"])
        return found

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        """The events delivered once there are at least ``count`` (or after a while)."""
        deadline = time.monotonic() + WAIT_S
        while len(self.events()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events()
