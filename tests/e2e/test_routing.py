"""Routing by the replication directory: a check for a code of a tenant a node does not hold
reaches a node that holds it, through the HTTP front door (check page and resolver by redirect,
LVMS passed on) and through `pharmatrace verify --nats`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb

from pharmatrace_cli.command import EXIT_ALERTS
from tests.e2e.conftest import Servers, pharmatrace_command, run_cli
from tests.e2e.nats_server import NatsServer
from tests.processes import stop
from tracecore import gs1

pytestmark = pytest.mark.timeout(300)

DEMO, ACME = "demo", "acme"  # demo is made by `serve --dev`
DEMO_GTIN, ACME_GTIN, NOBODYS_GTIN = "09501101530003", "06901234567892", "04012345678901"
DISTRIBUTOR = 3


@dataclass
class Tenant:
    name: str
    gtin: str
    product: str
    serials: list[str]
    token: str = ""

    @property
    def plant_gln(self) -> str:
        return _gln(self.gtin, "1")

    @property
    def wholesaler_gln(self) -> str:
        return _gln(self.gtin, "2")

    def code(self, i: int = 0) -> str:
        return f"(01){self.gtin}(21){self.serials[i]}"


def _gln(gtin: str, last: str) -> str:
    body = gtin[2:13] + last
    return body + str(gs1.check_digit(body))


def _tenant(issue_addr: str, name: str, gtin: str, product: str) -> Tenant:
    """A tenant with a product, a batch, 5 codes, its plant and a wholesaler with an LVMS
    token."""
    with grpc.insecure_channel(issue_addr) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        if name != DEMO:
            admin.CreateTenant(apb.CreateTenantRequest(tenant=name, name=name.title()), timeout=30)
        admin.RegisterProduct(apb.RegisterProductRequest(tenant=name, product=cpb.Product(
            gtin=gtin, name=product)), timeout=30)
        admin.AddBatch(apb.AddBatchRequest(tenant=name, batch=cpb.Batch(
            product=gtin, lot="L1", expires_on="2029-06-30")), timeout=30)
        for party_id, kind, gln in (("PLANT", cpb.PARTY_KIND_PLANT, _gln(gtin, "1")),
                                    ("WHOLESALER", cpb.PARTY_KIND_DISTRIBUTOR, _gln(gtin, "2"))):
            admin.AddParty(apb.AddPartyRequest(tenant=name, party=cpb.Party(
                party_id=party_id, name=party_id.title(), gln=gln, region="440305",
                kind=kind)), timeout=30)  # type: ignore[arg-type]
        token = admin.CreateToken(apb.CreateTokenRequest(
            tenant=name, role=DISTRIBUTOR, party_id="WHOLESALER"),  # type: ignore[arg-type]
            timeout=30).token
        chunks = issuance_pb2_grpc.CodeIssuanceStub(channel).RequestCodes(
            ipb.RequestCodesRequest(tenant=name, product=gtin, lot="L1", count=5,
                                    request_id=f"R-{name}"), timeout=60)
        serials = [s for chunk in chunks for s in chunk.serials]
    return Tenant(name, gtin, product, serials, token)


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    ports: dict[str, int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        stop(replica.process, "pharmatrace replica")


def _start_replica(url: str, data: Path, tenant: str) -> Replica:
    ready = data.with_suffix(".ready.json")
    log = data.with_suffix(".log").open("wb")
    process = subprocess.Popen(
        [*pharmatrace_command(), "replica", "--nats", url, "--data", str(data),
         "--tenants", tenant, "--dev", "--verify-port", "0", "--metrics-port", "0",
         "--http-port", "0", "--workers", "1", "--ready-file", str(ready)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert process.poll() is None, data.with_suffix(".log").read_text()
        assert time.monotonic() < deadline, "the replica did not start"
        time.sleep(0.05)
    return Replica(process, json.loads(ready.read_text()))


def _check(http: httpx.Client, code: str) -> httpx.Response:
    return http.get("/check", params={"code": code}, headers={"Accept-Language": "en"})


def _until(condition, what: str, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture
def cluster(servers: Servers, nats_server: NatsServer, replicas: list[Replica],
            tmp_path: Path) -> tuple[Tenant, Tenant, Replica, Replica]:
    """A writer of demo and acme, a replica holding only demo and one holding only acme, each
    serving its copy once it holds the codes."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url])
    demo = _tenant(writer.issue_addr, DEMO, DEMO_GTIN, "Amoxicillin 500 mg capsules")
    acme = _tenant(writer.issue_addr, ACME, ACME_GTIN, "Metformin 850 mg tablets")
    of_demo = _start_replica(nats_server.url, tmp_path / "replica-demo", DEMO)
    of_acme = _start_replica(nats_server.url, tmp_path / "replica-acme", ACME)
    replicas.extend([of_demo, of_acme])
    for replica, tenant in ((of_demo, demo), (of_acme, acme)):
        with httpx.Client(base_url=replica.url, timeout=30) as http:
            _until(lambda: tenant.product in _check(http, tenant.code()).text,  # noqa: B023
                   f"the replica of {tenant.name} never showed its code")
    return demo, acme, of_demo, of_acme


def test_a_check_for_another_tenants_code_is_redirected_to_a_node_holding_it(
        cluster: tuple[Tenant, Tenant, Replica, Replica]) -> None:
    """On the replica holding only demo, the check page and the resolver answer a code of acme
    with a 307 to a node holding acme, whose page shows acme's product; the other way round
    too; a product nobody registered gets today's answer for an unknown code."""
    demo, acme, of_demo, of_acme = cluster
    for here, tenant in ((of_demo, acme), (of_acme, demo)):
        with httpx.Client(base_url=here.url, timeout=30) as http:
            sent = _check(http, tenant.code())
            resolved = http.get(f"/01/{tenant.gtin}/21/{tenant.serials[1]}")
        assert sent.status_code == 307, sent.text
        assert sent.headers["location"].startswith("http://127.0.0.1:")
        assert not sent.headers["location"].startswith(here.url)
        assert resolved.status_code == 307
        assert resolved.headers["location"].endswith(f"/01/{tenant.gtin}/21/{tenant.serials[1]}")
        with httpx.Client(timeout=30, follow_redirects=True) as browser:
            page = browser.get(f"{here.url}/check", params={"code": tenant.code()},
                               headers={"Accept-Language": "en"})
            link = browser.get(f"{here.url}/01/{tenant.gtin}/21/{tenant.serials[1]}",
                               headers={"Accept-Language": "en"})
        assert page.status_code == 200 and tenant.product in page.text
        assert 'data-warning="not_commissioned"' in page.text
        assert link.status_code == 200 and tenant.product in link.text
    unknown = f"(01){NOBODYS_GTIN}(21)ABCDEFGHJK23"
    with httpx.Client(base_url=of_demo.url, timeout=30) as http:
        nobody = _check(http, unknown)
    with httpx.Client(base_url=of_acme.url, timeout=30) as http:
        also_nobody = _check(http, unknown)
    assert nobody.status_code == 200
    assert 'data-outcome="not_genuine"' in nobody.text
    assert nobody.text == also_nobody.text


def test_an_lvms_request_for_another_tenants_code_is_answered_by_a_node_holding_it(
        cluster: tuple[Tenant, Tenant, Replica, Replica]) -> None:
    """An LVMS client of acme that asks the replica holding only demo, with acme's token, gets
    the answer the replica holding acme gives (its plant's GLN, its verdict on the pack)
    without following a redirect; a wrong serial gets acme's failure reason; acme's
    connectivity check passes there too."""
    _, acme, of_demo, of_acme = cluster
    auth = {"Authorization": f"Bearer {acme.token}"}
    query = {"exp": "290630", "corrUUID": str(uuid.uuid4()), "context": "dscsaSaleableReturn",
             "reqGLN": acme.wholesaler_gln}
    pack = f"/verify/gtin/{acme.gtin}/lot/L1/ser/{acme.serials[2]}"
    answers = {}
    for replica in (of_demo, of_acme):
        with httpx.Client(base_url=replica.url, timeout=30, follow_redirects=False) as http:
            answers[replica.url] = (
                http.get(pack, params=query, headers=auth),
                http.get(f"/verify/gtin/{acme.gtin}/lot/L1/ser/NOSUCHSERIAL123", params=query,
                         headers=auth),
                http.get("/checkConnectivity", headers=auth))
    (answer, wrong, connectivity), (direct, _, _) = answers[of_demo.url], answers[of_acme.url]
    assert answer.status_code == direct.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body, expected = answer.json(), direct.json()
    assert body["responderGLN"] == acme.plant_gln
    assert body["corrUUID"] == query["corrUUID"]
    assert body["data"] == expected["data"]
    assert wrong.json()["data"]["verificationFailureReason"] == "No_match_GTIN_Serial"
    assert connectivity.status_code == 200 and connectivity.json()["status"] == "OK"


def test_cli_verify_with_nats_finds_the_node_holding_the_codes_tenant(
        cluster: tuple[Tenant, Tenant, Replica, Replica], nats_server: NatsServer,
        tmp_path: Path) -> None:
    """`pharmatrace verify CODE --nats URL` with no tenant or address given verifies acme's
    codes on a node holding acme; codes of two tenants at once are refused, naming both."""
    demo, acme, _, _ = cluster
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    found = run_cli(["verify", acme.code(0), acme.code(1), "--nats", nats_server.url, "--json",
                     "-q"], env=env, cwd=tmp_path)
    assert found.returncode == EXIT_ALERTS, found.stderr  # issued, not yet on a pack
    answers = [json.loads(line) for line in found.stdout.splitlines()]
    assert [a["verdict"] for a in answers] == ["VERDICT_GENUINE"] * 2
    assert answers[0]["product"]["name"] == acme.product
    mixed = run_cli(["verify", acme.code(0), demo.code(0), "--nats", nats_server.url],
                    env=env, cwd=tmp_path)
    assert mixed.returncode != 0
    assert "acme" in mixed.stderr and "demo" in mixed.stderr


def test_a_replica_stopping_takes_its_front_door_out_of_the_directory(
        cluster: tuple[Tenant, Tenant, Replica, Replica], nats_server: NatsServer,
        tmp_path: Path) -> None:
    """`pharmatrace directory route` lists the front doors holding acme, the replica's among
    them; once that replica stops, no node is sent there any more."""
    _, acme, _, of_acme = cluster
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def doors() -> list[str]:
        found = run_cli(["directory", "route", acme.code(), "--nats", nats_server.url],
                        env=env, cwd=tmp_path)
        assert found.returncode == 0, found.stderr
        listed: list[str] = json.loads(found.stdout)["front_doors"]
        return listed

    before = doors()
    stop(of_acme.process, "pharmatrace replica")
    after = doors()
    assert of_acme.url in before and len(before) == 2
    assert of_acme.url not in after and after == [u for u in before if u != of_acme.url]


def test_a_replica_stopped_or_killed_leaves_the_replicas_readers_are_sent_to(
        cluster: tuple[Tenant, Tenant, Replica, Replica], nats_server: NatsServer,
        replicas: list[Replica], tmp_path: Path) -> None:
    """`directory route` lists both replicas of acme; one stopped (SIGTERM) leaves the list and
    the front doors as it stops; one killed (SIGKILL) leaves them once it has not been seen for
    `STALE_S`, so `verify --nats` and the front doors stop sending reads there."""
    _, acme, _, first = cluster
    second = _start_replica(nats_server.url, tmp_path / "replica-acme-2", ACME)
    replicas.append(second)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def listed() -> tuple[list[str], list[str]]:
        found = run_cli(["directory", "route", acme.code(), "--nats", nats_server.url],
                        env=env, cwd=tmp_path)
        assert found.returncode == 0, found.stderr
        entry = json.loads(found.stdout)
        return entry["replicas"], entry["front_doors"]

    def verify(replica: Replica) -> str:
        return f"127.0.0.1:{replica.ports['verify']}"

    both = listed()
    stop(second.process, "pharmatrace replica")
    stopped = listed()
    assert {verify(first), verify(second)} <= set(both[0])
    assert {first.url, second.url} <= set(both[1])
    assert verify(second) not in stopped[0] and second.url not in stopped[1]
    assert verify(first) in stopped[0] and first.url in stopped[1]
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(30)
    killed = time.monotonic()
    _until(lambda: verify(first) not in listed()[0], "a killed replica stayed listed")
    print(f"\na replica killed left the replicas readers are given after "
          f"{time.monotonic() - killed:.1f} s")
    assert first.url not in listed()[1]
