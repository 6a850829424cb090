"""A stolen copy of a data directory names no code the EPCIS REST binding was given: after
captures (one applied, one refused, one still queued while the issuance process was down), a
named query naming a pack and a webhook subscription with a delivery still in its outbox, no
file under the data directory (every tenant's stores, the metrics, the wake marks) holds the
serial or a written form of any code issued, while the binding still reads them back."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from pharmatrace.v1 import admin_pb2 as apb

from tests.integration.frontdoor.conftest import Shop, serving
from tests.integration.frontdoor.epcis_helpers import (
    WAIT_S,
    Receiver,
    bearer,
    capture,
    document,
    epc,
    finished_job,
    inspection,
)
from tests.integration.test_codes_at_rest import written_forms
from verify_svc.workers import WorkerConfig, WorkerPool


def _in_clear(root: Path, forms: list[bytes]) -> list[tuple[str, bytes]]:
    """(file, form) for every form found in any file under ``root``."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path.relative_to(root)), form) for form in forms if form in data]
    return found


def test_no_file_of_the_data_directory_holds_a_code_given_to_the_rest_binding(
        tmp_path: Path) -> None:
    receiver = Receiver(refusing=True).start()
    try:
        with serving(tmp_path) as door:
            shop = Shop(door)
            pack = shop.pack(8)
            admin = shop.token(pack.tenant, apb.ROLE_ADMIN)
            with door.client() as client:
                assert client.post("/epcis/queries", headers=bearer(admin), json={
                    "name": "watched", "query": {"MATCH_epc": [epc(pack.codes[0])]}}
                    ).status_code == 201
                assert client.post("/epcis/queries/watched/subscriptions",
                                   headers=bearer(admin), json={
                                       "dest": receiver.url, "stream": True}).status_code == 201
                assert capture(client, admin, document([inspection(pack.codes[:2])]))[
                    "success"] is True
                refused = capture(client, admin, document([
                    inspection(pack.codes[2:3]),
                    {**inspection(pack.codes[3:4]), "action": "BOGUS"}]))
                assert refused["success"] is False
            deadline = time.monotonic() + WAIT_S
            while receiver.refused == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert receiver.refused > 0  # the delivery stays in the outbox
        # The issuance process down: the front door keeps the capture, queued, in the store.
        workers = WorkerPool(WorkerConfig(tmp_path, "127.0.0.1", 0, dev_keys=True, tls=None,
                                          grace_s=1.0, authenticate=False, http_port=0),
                             workers=1)
        workers.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{workers.http_port}") as client:
                answer = client.post("/epcis/capture", content=document([inspection(
                    pack.codes[4:7])]), headers={**bearer(admin),
                                                 "Content-Type": "application/json"})
                assert answer.status_code == 202
                queued = answer.headers["location"]
                assert client.get(queued, headers=bearer(admin)).json()["running"] is True
                assert client.get("/epcis/queries/watched", headers=bearer(admin)).json()[
                    "query"] == {"MATCH_epc": [epc(pack.codes[0])]}
        finally:
            workers.stop(1.0)

        forms = [form for code in pack.codes
                 for form in [*written_forms(code, 7), epc(code).encode()]]
        assert _in_clear(tmp_path, forms) == []

        # Everything kept is read back: the queued job is applied, the delivery made.
        receiver.refusing = False
        with serving(tmp_path) as door, door.client() as client:
            assert finished_job(client, admin, queued)["success"] is True
            assert receiver.wait_for(1)
    finally:
        receiver.stop()
