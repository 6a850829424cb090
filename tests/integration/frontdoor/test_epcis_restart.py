"""Capture jobs and webhook deliveries of the EPCIS REST binding outlive the server: a job
accepted while the issuance process was down is applied once it is up (unless its sender's
credential was revoked meanwhile), what a receiver refused before a restart is delivered
after it, from the outbox in the tenant's store, and that store is in the tenant's backups,
which restore in place while the tenant is offline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pharmatrace.v1 import admin_pb2 as apb

from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.frontdoor.conftest import Shop, serving
from tests.integration.frontdoor.epcis_helpers import (
    WAIT_S,
    Receiver,
    bearer,
    capture,
    document,
    finished_job,
    inspection,
)
from tests.integration.frontdoor.test_lvms import Partner, ask
from tracecore.credentials import parse_token
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from verify_svc.workers import WorkerConfig, WorkerPool


@contextmanager
def writer_down(data: Path) -> Iterator[httpx.Client]:
    """A client of the front door of ``data`` served by a verification worker alone: the
    issuance process that applies captures is not running."""
    workers = WorkerPool(WorkerConfig(data, "127.0.0.1", 0, dev_keys=True, tls=None,
                                      grace_s=1.0, authenticate=False, http_port=0), workers=1)
    workers.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{workers.http_port}") as client:
            yield client
    finally:
        workers.stop(1.0)


def accepted(client: httpx.Client, token: str, event: dict[str, Any]) -> str:
    """Where the capture job of ``event``, sent with ``token`` and accepted (202), is told."""
    answer = client.post("/epcis/capture", content=document([event]), headers={
        **bearer(token), "Content-Type": "application/json"})
    assert answer.status_code == 202, answer.text
    return answer.headers["location"]


def test_deliveries_refused_before_a_restart_arrive_after_it(tmp_path: Path) -> None:
    """A receiver that refused an event's delivery gets it once it takes deliveries again,
    though the server was stopped and started in between."""
    receiver = Receiver(refusing=True).start()
    try:
        with serving(tmp_path) as door:
            shop = Shop(door)
            pack = shop.pack(3)
            admin = shop.token(pack.tenant, apb.ROLE_ADMIN)
            sent = inspection(pack.codes[:2])
            with door.client() as client:
                client.post("/epcis/queries", headers=bearer(admin), json={
                    "name": "inspected", "query": {"EQ_bizStep": "inspecting"}})
                assert client.post("/epcis/queries/inspected/subscriptions",
                                   headers=bearer(admin), json={
                                       "dest": receiver.url, "stream": True}).status_code == 201
                assert capture(client, admin, document([sent]))["success"] is True
            deadline = time.monotonic() + WAIT_S
            while receiver.refused == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert receiver.refused > 0
        receiver.refusing = False
        with serving(tmp_path):
            delivered = receiver.wait_for(1)
    finally:
        receiver.stop()
    assert [e["eventID"] for e in delivered] == [sent["eventID"]]


def test_a_job_accepted_while_the_writer_was_down_is_applied_once_it_is_up(
        tmp_path: Path) -> None:
    """The front door accepts a capture (202) while the issuance process is stopped; the job
    waits in the tenant's store, running, and succeeds after the service starts again."""
    with serving(tmp_path) as door:
        shop = Shop(door)
        pack = shop.pack(3)
        admin = shop.token(pack.tenant, apb.ROLE_ADMIN)
    sent = inspection(pack.codes[:2])
    with writer_down(tmp_path) as client:
        location = accepted(client, admin, sent)
        time.sleep(0.5)
        assert client.get(location, headers=bearer(admin)).json()["running"] is True
    with serving(tmp_path) as door, door.client() as client:
        job = finished_job(client, admin, location)
        found = client.get("/epcis/events", params={"EQ_eventID": sent["eventID"]},
                           headers=bearer(admin)).json()
    assert job["success"] is True
    assert found["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0]["eventID"] == \
        sent["eventID"]


def test_a_job_whose_token_was_revoked_before_it_ran_is_not_applied(tmp_path: Path) -> None:
    """A capture accepted (202) before its token was revoked fails when it runs, saying the
    credential was revoked, and none of its events is recorded."""
    with serving(tmp_path) as door:
        shop = Shop(door)
        pack = shop.pack(3)
        sender, reader = (shop.token(pack.tenant, apb.ROLE_ADMIN) for _ in range(2))
    sent = inspection(pack.codes[:2])
    with writer_down(tmp_path) as client:
        location = accepted(client, sender, sent)
    data = DataDir(tmp_path, KeySource.dev())
    try:
        data.get(pack.tenant).access.revoke(parse_token(sender).credential_id)
    finally:
        data.close()
    with serving(tmp_path) as door, door.client() as client:
        job = finished_job(client, reader, location)
        found = client.get("/epcis/events", params={"EQ_eventID": sent["eventID"]},
                           headers=bearer(reader)).json()
    assert job["running"] is False and job["success"] is False
    assert job["errors"][0]["type"] == "epcisException:SecurityException"
    assert "revoked" in job["errors"][0]["detail"]
    assert found["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == []


def test_a_backup_restores_the_rest_binding_s_subscriptions_and_capture_jobs(
        tmp_path: Path) -> None:
    """`pharmatrace backup` taken while serving, restored into a new data directory, serves
    the same named query, webhook subscription and finished capture job."""
    source, restored, saved = tmp_path / "source", tmp_path / "restored", tmp_path / "backup"
    with serving(source) as door:
        shop = Shop(door)
        pack = shop.pack(3)
        admin = shop.token(pack.tenant, apb.ROLE_ADMIN)
        with door.client() as client:
            client.post("/epcis/queries", headers=bearer(admin), json={
                "name": "inspected", "query": {"EQ_bizStep": "inspecting"}})
            subscribed = client.post("/epcis/queries/inspected/subscriptions",
                                     headers=bearer(admin),
                                     json={"dest": "http://127.0.0.1:9/hook", "stream": True})
            answer = client.post("/epcis/capture", content=document([inspection(pack.codes[:2])]),
                                 headers={**bearer(admin), "Content-Type": "application/json"})
            job = finished_job(client, admin, answer.headers["location"])
        taken = _cli("backup", "--data", str(source), "--tenant", pack.tenant, str(saved), "--dev")
        assert taken.returncode == 0, taken.stderr
    assert "epcis-rest" in json.loads((saved / "manifest.json").read_text())["environments"]
    put_back = _cli("restore", str(saved), "--data", str(restored), "--dev")
    assert put_back.returncode == 0, put_back.stderr
    with serving(restored) as door, door.client() as client:
        subscriptions = client.get("/epcis/queries/inspected/subscriptions",
                                   headers=bearer(admin)).json()
        again = client.get(answer.headers["location"], headers=bearer(admin)).json()
    assert [s["subscriptionID"] for s in subscriptions] == \
        [subscribed.headers["location"].rsplit("/", 1)[1]]
    assert again == job and again["success"] is True


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pharmatrace_cli", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_a_tenant_taken_offline_after_captures_and_partner_checks_is_restored_in_place(
        tmp_path: Path) -> None:
    """After captures over the REST binding and a trading partner's LVMS check, taking the
    tenant offline closes its REST store and answer trail in every process as well, so
    `restore --force` puts a backup back into the running data directory; brought back online,
    the tenant answers queries and takes captures again."""
    data, saved = tmp_path / "data", tmp_path / "backup"
    with serving(data) as door:
        shop = Shop(door)
        pack = shop.pack(3)
        admin = shop.token(pack.tenant, apb.ROLE_ADMIN)
        partner = Partner(shop, pack)
        first, second = inspection(pack.codes[:1]), inspection(pack.codes[1:2])
        with door.client() as client:
            assert capture(client, admin, document([first]))["success"] is True
            assert ask(client, pack, partner).json()["data"]["verified"] is True
        taken = _cli("backup", "--data", str(data), "--tenant", pack.tenant, str(saved), "--dev")
        assert taken.returncode == 0, taken.stderr
        offline = door.admin.SetTenantOnline(apb.SetTenantOnlineRequest(
            tenant=pack.tenant, online=False, reason="restore"), timeout=RPC_TIMEOUT_S)
        assert offline.released
        put_back = _cli("restore", str(saved), "--data", str(data), "--force", "--dev")
        assert put_back.returncode == 0, put_back.stderr
        door.admin.SetTenantOnline(apb.SetTenantOnlineRequest(tenant=pack.tenant, online=True),
                                   timeout=RPC_TIMEOUT_S)
        with door.client() as client:
            assert capture(client, admin, document([second]))["success"] is True
            found = client.get("/epcis/events", params={"EQ_bizStep": "inspecting"},
                               headers=bearer(admin)).json()
    assert [e["eventID"] for e in found["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            ] == [first["eventID"], second["eventID"]]
