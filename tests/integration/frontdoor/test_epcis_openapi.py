"""The OpenAPI description GET /epcis/openapi.json serves says what the server does: the
resources and methods it answers, the documents capture takes, the fields a subscription
reads; each checked against the server itself."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pharmatrace.v1 import admin_pb2 as apb

from tests.integration.frontdoor.conftest import Door, Pack, Shop
from tests.integration.frontdoor.epcis_helpers import (
    Receiver,
    bearer,
    document,
    finished_job,
    inspection,
)
from tracecore.codes import Form, parse, render

#: A value for each path parameter of the description, to reach the route.
_SAMPLES = {"{captureID}": "0", "{eventID}": "urn:uuid:0", "{eventType}": "ObjectEvent",
            "{epc}": "https://id.gs1.org/01/09501101530003/21/X", "{queryName}": "none",
            "{subscriptionID}": "0"}
_METHODS = ("get", "post", "delete")


@pytest.fixture
def pack(shop: Shop) -> Pack:
    return shop.pack(4)


@pytest.fixture
def admin(shop: Shop, pack: Pack) -> str:
    return shop.token(pack.tenant, apb.ROLE_ADMIN)


@pytest.fixture
def described(door: Door) -> dict[str, Any]:
    with door.client() as client:
        answer = client.get("/epcis/openapi.json")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


def _url(path: str) -> str:
    for name, value in _SAMPLES.items():
        path = path.replace(name, value)
    return "/epcis" + path.rstrip("/")


def test_every_method_described_is_answered_and_no_other(door: Door, admin: str,
                                                         described: dict[str, Any]) -> None:
    """Under the described server prefix, each path answers the methods the description gives
    it (never 405), and answers 405 to the others; OPTIONS is described on every resource."""
    assert described["openapi"].startswith("3.")
    assert described["servers"] == [{"url": "/epcis"}]
    assert {"/capture", "/events", "/queries/{queryName}/subscriptions"} <= set(
        described["paths"])
    with door.client() as client:
        for path, operations in described["paths"].items():
            for method in _METHODS:
                answer = client.request(method.upper(), _url(path), headers=bearer(admin))
                if method in operations:
                    assert answer.status_code != 405, (method, path)
                else:
                    assert answer.status_code == 405, (method, path, answer.status_code)
            if path != "/openapi.json":
                assert "options" in operations, path


def _xml(codes: list[str]) -> str:
    epcs = "".join(f"<epc>{render(parse(c).code, Form.EPC_URI, company_prefix_length=7)}</epc>"
                   for c in codes)
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0" '
            'creationDate="2026-03-05T09:45:00Z"><EPCISBody><EventList><ObjectEvent>'
            "<eventTime>2026-03-05T09:30:00.000+08:00</eventTime>"
            f"<eventTimeZoneOffset>+08:00</eventTimeZoneOffset><epcList>{epcs}</epcList>"
            "<action>OBSERVE</action><bizStep>urn:epcglobal:cbv:bizstep:inspecting</bizStep>"
            "</ObjectEvent></EventList></EPCISBody></epcis:EPCISDocument>")


def test_capture_takes_every_document_type_described_and_refuses_others(
        door: Door, pack: Pack, admin: str, described: dict[str, Any]) -> None:
    """Each media type the description lists for POST /capture (JSON, JSON-LD, and EPCIS XML)
    is captured as its events; a type it does not list is refused with 415."""
    types = described["paths"]["/capture"]["post"]["requestBody"]["content"]
    assert set(types) == {"application/json", "application/ld+json", "application/xml",
                          "text/xml"}
    with door.client() as client:
        for n, media in enumerate(sorted(types)):
            codes = pack.codes[n:n + 1]
            text = _xml(codes) if media.endswith("xml") else document([inspection(codes)])
            answer = client.post("/epcis/capture", content=text.encode(), headers={
                **bearer(admin), "Content-Type": media})
            assert answer.status_code == 202, (media, answer.text)
            job = finished_job(client, admin, answer.headers["location"])
            assert job["success"] is True, (media, job["errors"])
        refused = client.post("/epcis/capture", content=document([inspection(pack.codes[:1])]),
                              headers={**bearer(admin), "Content-Type": "text/plain"})
    assert refused.status_code == 415


def test_a_subscription_takes_every_field_described(door: Door, admin: str,
                                                    described: dict[str, Any]) -> None:
    """The subscription fields the description gives (initialRecordTime among them) are
    taken by POST .../subscriptions, and initialRecordTime is shown back."""
    post = described["paths"]["/queries/{queryName}/subscriptions"]["post"]
    fields = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(fields) == {"dest", "signatureToken", "initialRecordTime", "stream", "schedule",
                           "reportIfEmpty"}
    assert fields["initialRecordTime"]["format"] == "date-time"
    name = f"q{uuid.uuid4().hex[:8]}"
    receiver = Receiver().start()
    try:
        with door.client() as client:
            made = client.post("/epcis/queries", headers=bearer(admin), json={
                "name": name, "query": {"EQ_bizStep": ["inspecting"]}})
            assert made.status_code == 201, made.text
            subscribed = client.post(f"/epcis/queries/{name}/subscriptions",
                                     headers=bearer(admin), json={
                                         "dest": receiver.url, "signatureToken": "s3cret",
                                         "initialRecordTime": "2000-01-01T00:00:00Z",
                                         "stream": True, "reportIfEmpty": False})
            assert subscribed.status_code == 201, subscribed.text
            shown = client.get(subscribed.headers["location"], headers=bearer(admin)).json()
            client.delete(subscribed.headers["location"], headers=bearer(admin))
    finally:
        receiver.stop()
    assert shown["initialRecordTime"] == "2000-01-01T00:00:00Z"
    assert shown["stream"] is True
