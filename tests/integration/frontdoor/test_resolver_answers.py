"""The resolver's kept answers over real HTTP: a changed product is served within the reuse
bound of its record, one request's answer never reaches another that differs in what the
answer depends on, HEAD and GET share answers without a body for HEAD, and made-up GTINs keep
nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from prometheus_client import CollectorRegistry

from codegen_svc import app as codegen_app
from frontdoor import server
from frontdoor.app import Built, build
from frontdoor.http import FrontdoorConfig
from frontdoor.reads import _PRODUCT_TTL_S
from tests.integration.conftest import RPC_TIMEOUT_S, _LoopThread
from tests.integration.frontdoor.conftest import Door, Shop, new_gtin
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from tracerpc.metrics import Metrics
from verify_svc.verification import Verifiers


def _pip(answer: httpx.Response) -> str:
    return str(answer.headers["location"])


def test_a_link_added_is_served_within_the_reuse_bound(door: Door, shop: Shop) -> None:
    """An answer asked for again is the same until the admin adds a link; once a product's
    record may be reused no longer, the linkset has the new link and the redirect to that
    link type works."""
    pack = shop.pack()
    shop.link(pack, "gs1:pip", "https://example.com/first")
    with door.client() as http:
        before = [http.get(f"/01/{pack.gtin}", params={"linkType": "linkset"})
                  for _ in range(3)]
        assert all(a.json() == before[0].json() for a in before)
        shop.link(pack, "gs1:epil", "https://example.com/leaflet-added.pdf", "en")
        time.sleep(_PRODUCT_TTL_S + 0.2)
        after = http.get(f"/01/{pack.gtin}", params={"linkType": "linkset"})
        leaflet = http.get(f"/01/{pack.gtin}", params={"linkType": "gs1:epil"})
    assert "https://gs1.org/voc/epil" not in before[0].json()["linkset"][0]
    assert after.json()["linkset"][0]["https://gs1.org/voc/epil"] == [
        {"href": "https://example.com/leaflet-added.pdf", "title": "Patient information leaflet",
         "hreflang": ["en"]}]
    assert leaflet.status_code == 307
    assert _pip(leaflet) == "https://example.com/leaflet-added.pdf"


def test_answers_are_kept_apart_by_product_language_and_accept(door: Door, shop: Shop) -> None:
    """Asked alternately and again, each tenant's product gets its own link, each language
    its own leaflet, and an Accept for the linkset gets the linkset, never another request's
    kept answer."""
    first, second = shop.pack(), shop.pack()
    shop.link(first, "gs1:pip", "https://first.example.com/pip")
    shop.link(second, "gs1:pip", "https://second.example.com/pip")
    shop.link(first, "gs1:epil", "https://first.example.com/en.pdf", "en")
    shop.link(first, "gs1:epil", "https://first.example.com/zh.pdf", "zh-CN")
    with door.client() as http:
        for _ in range(3):
            assert _pip(http.get(f"/01/{first.gtin}?linkType=gs1:pip")) == \
                "https://first.example.com/pip"
            assert _pip(http.get(f"/01/{second.gtin}?linkType=gs1:pip")) == \
                "https://second.example.com/pip"
            for language, href in (("zh-CN,zh;q=0.9", "https://first.example.com/zh.pdf"),
                                   ("en-GB", "https://first.example.com/en.pdf")):
                answer = http.get(f"/01/{first.gtin}?linkType=gs1:epil",
                                  headers={"Accept-Language": language})
                assert _pip(answer) == href
            redirect = http.get(first.digital_link())
            linkset = http.get(first.digital_link(),
                               headers={"Accept": "application/linkset+json"})
            assert redirect.status_code == 307
            assert linkset.status_code == 200
            assert linkset.json()["linkset"][0]["anchor"].endswith(
                f"/01/{first.gtin}/10/{first.lot}/21/{first.serial()}")


def test_head_and_get_share_an_answer_and_head_gets_no_body(door: Door, shop: Shop) -> None:
    """A HEAD before any GET, and after one, gets the redirect or linkset headers and no
    body; a GET after a HEAD gets the whole linkset."""
    pack = shop.pack()
    with door.client() as http:
        url = f"/01/{pack.gtin}?linkType=linkset"
        head_first = http.head(url)
        got = http.get(url)
        head_after = http.head(url)
        redirect_head = http.head(pack.digital_link())
    assert head_first.content == b"" and head_after.content == b""
    assert head_first.headers["content-length"] == got.headers["content-length"]
    assert int(got.headers["content-length"]) == len(got.content) > 0
    assert got.json()["linkset"][0]["anchor"].endswith(f"/01/{pack.gtin}")
    assert head_after.headers["link"] == got.headers["link"]
    assert redirect_head.status_code == 307 and redirect_head.content == b""
    assert "/check?code=" in redirect_head.headers["location"]


@dataclass(frozen=True)
class Served:
    """A front door served in this process over real LMDB files, and what it keeps."""

    url: str
    built: Built
    gtin: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A product registered by an issuance server that is stopped before the front door opens
    the ledger (a process opens an LMDB environment once), then the front door on the real
    server stack, in this process so that what it keeps can be seen."""
    loop = _LoopThread()
    gtin = new_gtin()
    try:
        codegen = loop.run(codegen_app.start(tmp_path, KeySource.dev(), "127.0.0.1:0",
                                             Metrics(CollectorRegistry()), tls=None,
                                             authenticate=False))
        with grpc.insecure_channel(f"127.0.0.1:{codegen.port}") as channel:
            admin = admin_pb2_grpc.AdminStub(channel)
            admin.CreateTenant(apb.CreateTenantRequest(tenant="kept", name="Kept Pharma"),
                               timeout=RPC_TIMEOUT_S)
            admin.RegisterProduct(apb.RegisterProductRequest(tenant="kept", product=cpb.Product(
                gtin=gtin, name="Amoxicillin Capsules")), timeout=RPC_TIMEOUT_S)
        loop.run(codegen.stop(1.0))
        data = DataDir(tmp_path, KeySource.dev(), readonly=True)
        built = build(FrontdoorConfig(), data, Verifiers(data), Metrics(CollectorRegistry()))
        running = loop.run(server.start(built.app, server.bind("127.0.0.1", 0)))
        try:
            yield Served(f"http://127.0.0.1:{running.port}", built, gtin)
        finally:
            loop.run(running.stop(1.0))
            built.close()
            data.close()
    finally:
        loop.close()


def test_made_up_gtins_keep_nothing_and_real_ones_are_bounded(served: Served) -> None:
    """Valid GTINs nobody registered answer 404 and leave nothing kept; a registered one's
    answers are kept, one per distinct request."""
    with httpx.Client(base_url=served.url, timeout=RPC_TIMEOUT_S) as http:
        for _ in range(200):
            assert http.get(f"/01/{new_gtin()}/21/ABC").status_code == 404
        assert len(served.built.answers) == 0
        for serial in ("A1", "A2", "A3"):
            for _ in range(2):
                assert http.get(f"/01/{served.gtin}/21/{serial}").status_code == 307
    assert len(served.built.answers) == 3
    assert 0 < served.built.answers.size_bytes < 3 * 2048
