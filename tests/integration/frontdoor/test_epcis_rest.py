"""The EPCIS 2.0 REST binding under /epcis, served for real: capture jobs, the standard event
query with paging, discovery, authentication, named queries and webhook subscriptions."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
from pharmatrace.v1 import admin_pb2 as apb

from frontdoor.epcis_runner import RUN, TURN_RUNS
from tests.integration.frontdoor.conftest import Door, Pack, Shop
from tests.integration.frontdoor.epcis_helpers import (
    Receiver,
    bearer,
    capture,
    document,
    epc,
    finished_job,
    inspection,
)
from tracecore.codes import Form, parse, render
from tracecore.epcis.schema import check_schema


@pytest.fixture
def pack(shop: Shop) -> Pack:
    return shop.pack(6)


@pytest.fixture
def admin(shop: Shop, pack: Pack) -> str:
    return shop.token(pack.tenant, apb.ROLE_ADMIN)


def _events(answer: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = answer.json()["epcisBody"]["queryResults"]["resultsBody"][
        "eventList"]
    return events


def test_a_capture_is_accepted_as_a_job_that_succeeds_and_its_events_are_queryable(
        door: Door, pack: Pack, admin: str) -> None:
    """POST /epcis/capture answers 202 with the job's Location; the job ends in success and
    the events are found by GET /epcis/events."""
    sent = [inspection(pack.codes[:2]), inspection(pack.codes[2:4])]
    with door.client() as client:
        job = capture(client, admin, document(sent))
        assert job["running"] is False and job["success"] is True, job
        assert job["errors"] == [] and job["captureErrorBehaviour"] == "rollback"
        answer = client.get("/epcis/events", params={"EQ_bizStep": "inspecting"},
                            headers=bearer(admin))
    assert answer.status_code == 200
    assert answer.headers["gs1-epcis-version"] == "2.0.0"
    found = _events(answer)
    assert {e["eventID"] for e in found} == {e["eventID"] for e in sent}
    assert {u for e in found for u in e["epcList"]} == {epc(c) for c in pack.codes[:4]}


def test_rollback_refuses_the_whole_document_for_one_bad_event(
        door: Door, pack: Pack, admin: str) -> None:
    """With GS1-Capture-Error-Behaviour rollback, one bad event leaves every event out and
    the job says why."""
    good, bad = inspection(pack.codes[:1]), {**inspection(pack.codes[1:2]), "action": "BOGUS"}
    with door.client() as client:
        job = capture(client, admin, document([good, bad]), "rollback")
        found = _events(client.get("/epcis/events", params={"EQ_eventID": good["eventID"]},
                                   headers=bearer(admin)))
    assert job["running"] is False and job["success"] is False
    assert "eventList[1]" in json.dumps(job["errors"])
    assert found == []


def test_proceed_records_the_good_events_and_names_the_bad_one(
        door: Door, pack: Pack, admin: str) -> None:
    """With proceed, the good events are recorded and the bad one is listed in the job's
    errors by its place in the document."""
    good, bad = inspection(pack.codes[:1]), {**inspection(pack.codes[1:2]), "action": "BOGUS"}
    with door.client() as client:
        job = capture(client, admin, document([bad, good]), "proceed")
        found = _events(client.get("/epcis/events", params={"EQ_eventID": good["eventID"]},
                                   headers=bearer(admin)))
    assert job["success"] is False and job["captureErrorBehaviour"] == "proceed"
    assert [e["eventIndex"] for e in job["errors"]] == [0]
    assert [e["eventID"] for e in found] == [good["eventID"]]


def test_events_come_a_page_at_a_time_with_a_next_link(door: Door, pack: Pack,
                                                       admin: str) -> None:
    """perPage bounds a page; the Link rel="next" header leads to the next one until all
    events were seen, each once."""
    sent = [inspection([code], biz_step="storing") for code in pack.codes[:5]]
    seen: list[str] = []
    with door.client() as client:
        assert capture(client, admin, document(sent))["success"] is True
        url: str | None = "/epcis/events?EQ_bizStep=storing&perPage=2"
        pages = 0
        while url is not None:
            answer = client.get(url, headers=bearer(admin))
            assert answer.status_code == 200
            page = _events(answer)
            assert len(page) <= 2
            seen.extend(e["eventID"] for e in page)
            pages += 1
            link = answer.headers.get("link")
            url = link.split(">", 1)[0].lstrip("<") if link else None
    assert pages >= 3
    assert seen == [e["eventID"] for e in sent]


def test_query_documents_validate_against_the_shipped_schema(door: Door, pack: Pack,
                                                             admin: str) -> None:
    """What GET /epcis/events and /epcis/events/{eventID} answer is a valid
    EPCISQueryDocument under the official JSON schema the package ships."""
    sent = inspection(pack.codes[:3])
    with door.client() as client:
        capture(client, admin, document([sent]))
        listed = client.get("/epcis/events", headers=bearer(admin))
        one = client.get(f"/epcis/events/{sent['eventID']}", headers=bearer(admin))
        by_epc = client.get(f"/epcis/epcs/{epc(pack.codes[0])}/events", headers=bearer(admin))
        by_type = client.get("/epcis/eventTypes/ObjectEvent/events", headers=bearer(admin))
    for answer in (listed, one, by_epc, by_type):
        assert answer.status_code == 200, answer.text
        check_schema(answer.json())
    assert [e["eventID"] for e in _events(one)] == [sent["eventID"]]
    assert sent["eventID"] in [e["eventID"] for e in _events(by_epc)]


def test_an_unknown_event_or_capture_job_is_404(door: Door, admin: str) -> None:
    """An eventID or captureID the tenant does not have answers 404 problem JSON."""
    with door.client() as client:
        event = client.get("/epcis/events/urn:uuid:00000000-0000-4000-8000-000000000000",
                           headers=bearer(admin))
        job = client.get("/epcis/capture/nothing", headers=bearer(admin))
    for answer in (event, job):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"


def test_capture_jobs_are_listed(door: Door, pack: Pack, admin: str) -> None:
    """GET /epcis/capture lists the tenant's jobs with their outcome."""
    with door.client() as client:
        job = capture(client, admin, document([inspection(pack.codes[:1])]))
        listed = client.get("/epcis/capture", headers=bearer(admin)).json()
    assert job["captureID"] in [j["captureID"] for j in listed]
    assert all("caller" not in j for j in listed)


def test_options_tells_the_epcis_and_cbv_versions(door: Door) -> None:
    """OPTIONS on /epcis and its resources answers the GS1-EPCIS-Version, GS1-CBV-Version and
    GS1-Extensions headers and the methods allowed."""
    with door.client() as client:
        for path in ("/epcis", "/epcis/capture", "/epcis/events", "/epcis/queries"):
            answer = client.options(path)
            assert answer.status_code == 204
            assert answer.headers["gs1-epcis-version"] == "2.0.0"
            assert answer.headers["gs1-cbv-version"] == "2.0.0"
            assert "gs1-extensions" in answer.headers
            assert "POST" in answer.headers["allow"]


def test_without_a_good_token_the_answer_is_401_problem_json(door: Door) -> None:
    """No token, or one nobody issued, is 401 with a Bearer challenge, on capture and query."""
    with door.client() as client:
        answers = [client.post("/epcis/capture", content="{}",
                               headers={"Content-Type": "application/json"}),
                   client.get("/epcis/events"),
                   client.get("/epcis/events", headers=bearer("t-none.abc.def"))]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_role_that_may_not_capture_is_403(door: Door, shop: Shop, pack: Pack) -> None:
    """A pharmacy's credential may not capture documents nor run the event query."""
    pharmacy = shop.token(pack.tenant, apb.ROLE_PHARMACY)
    with door.client() as client:
        posted = client.post("/epcis/capture", content=document([]),
                             headers={**bearer(pharmacy), "Content-Type": "application/json"})
        queried = client.get("/epcis/events", headers=bearer(pharmacy))
    assert posted.status_code == 403 and queried.status_code == 403


def test_a_document_over_the_import_limit_is_413(door: Door, admin: str) -> None:
    """A capture larger than the server's import limit is refused 413 before any job."""
    with door.client() as client:
        answer = client.post("/epcis/capture", content=b" " * (16 * 1024 * 1024 + 1),
                             headers={**bearer(admin), "Content-Type": "application/json"})
    assert answer.status_code == 413
    assert "max-import-mib" in answer.json()["detail"]


def test_the_openapi_description_is_served(door: Door) -> None:
    """GET /epcis/openapi.json serves the OpenAPI description of the binding (GS1's, cut to
    what this server serves)."""
    with door.client() as client:
        answer = client.get("/epcis/openapi.json")
    assert answer.status_code == 200
    described = answer.json()
    assert described["openapi"].startswith("3.")
    assert "/capture" in described["paths"] and "/events" in described["paths"]


def test_a_subscription_delivers_matching_events_signed_to_its_webhook(
        door: Door, pack: Pack, admin: str) -> None:
    """Events captured after a subscription to a named query are POSTed to its webhook,
    signed with its token; events the query does not match are not."""
    receiver = Receiver().start()
    try:
        with door.client() as client:
            created = client.post("/epcis/queries", headers=bearer(admin), json={
                "name": "inspected", "query": {"EQ_bizStep": ["inspecting"]}})
            assert created.status_code == 201
            subscribed = client.post("/epcis/queries/inspected/subscriptions",
                                     headers=bearer(admin), json={
                                         "dest": receiver.url, "stream": True,
                                         "signatureToken": "s3cret"})
            assert subscribed.status_code == 201
            inspected = inspection(pack.codes[:2])
            stored = inspection(pack.codes[2:3], biz_step="storing")
            assert capture(client, admin, document([inspected, stored]))["success"] is True
            delivered = receiver.wait_for(1)
            named = _events(client.get("/epcis/queries/inspected/events",
                                       headers=bearer(admin)))
    finally:
        receiver.stop()
    assert [e["eventID"] for e in delivered] == [inspected["eventID"]]
    assert inspected["eventID"] in [e["eventID"] for e in named]
    headers, body = receiver.taken[0]
    assert headers["gs1-signature"] == "sha256=" + hmac.new(
        b"s3cret", body, hashlib.sha256).hexdigest()
    check_schema(json.loads(body))


def test_an_xml_document_is_captured_as_its_events(door: Door, pack: Pack, admin: str) -> None:
    """An EPCIS 2.0 XML document POSTed as application/xml is recorded as its events, found
    by their purchase order."""
    po = f"http://transaction.example.com/po/{uuid.uuid4().hex}"
    epcs = "".join(f"<epc>{render(parse(c).code, Form.EPC_URI, company_prefix_length=7)}</epc>"
                   for c in pack.codes[:2])
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0" '
        'creationDate="2026-03-05T09:45:00Z"><EPCISBody><EventList><ObjectEvent>'
        "<eventTime>2026-03-05T09:30:00.000+08:00</eventTime>"
        f"<eventTimeZoneOffset>+08:00</eventTimeZoneOffset><epcList>{epcs}</epcList>"
        "<action>OBSERVE</action><bizStep>urn:epcglobal:cbv:bizstep:inspecting</bizStep>"
        '<bizTransactionList><bizTransaction type="urn:epcglobal:cbv:btt:po">'
        f"{po}</bizTransaction></bizTransactionList>"
        "</ObjectEvent></EventList></EPCISBody></epcis:EPCISDocument>")
    with door.client() as client:
        answer = client.post("/epcis/capture", content=text.encode(), headers={
            **bearer(admin), "Content-Type": "application/xml"})
        assert answer.status_code == 202
        job = finished_job(client, admin, answer.headers["location"])
        found = _events(client.get("/epcis/events", headers=bearer(admin),
                                   params={"EQ_bizTransaction_po": po}))
    assert job["success"] is True, job["errors"]
    assert [len(e["epcList"]) for e in found] == [2]


def test_a_subscription_with_an_initial_record_time_delivers_events_recorded_before_it(
        door: Door, pack: Pack, admin: str) -> None:
    """A subscription given initialRecordTime gets the matching events recorded since that
    time, those captured before it was made included; a time that does not read is 400."""
    receiver = Receiver().start()
    try:
        with door.client() as client:
            earlier = inspection(pack.codes[:1])
            assert capture(client, admin, document([earlier]))["success"] is True
            client.post("/epcis/queries", headers=bearer(admin), json={
                "name": "since", "query": {"EQ_bizStep": "inspecting"}})
            bad = client.post("/epcis/queries/since/subscriptions", headers=bearer(admin),
                              json={"dest": receiver.url, "stream": True,
                                    "initialRecordTime": "yesterday"})
            subscribed = client.post("/epcis/queries/since/subscriptions",
                                     headers=bearer(admin), json={
                                         "dest": receiver.url, "stream": True,
                                         "initialRecordTime": "2000-01-01T00:00:00Z"})
            delivered = receiver.wait_for(1)
            shown = client.get(subscribed.headers["location"], headers=bearer(admin)).json()
    finally:
        receiver.stop()
    assert bad.status_code == 400 and "initialRecordTime" in bad.text
    assert subscribed.status_code == 201
    assert earlier["eventID"] in [e["eventID"] for e in delivered]
    assert shown["initialRecordTime"] == "2000-01-01T00:00:00Z"


def test_documents_posted_back_to_back_are_all_applied_in_the_order_accepted(
        door: Door, pack: Pack, admin: str) -> None:
    """More documents than one turn of the tenant's capture jobs takes, POSTed back to back:
    every job succeeds, and the events are recorded in the order their documents were
    accepted."""
    sent = [inspection(pack.codes[i % 2:i % 2 + 1]) for i in range(RUN * TURN_RUNS + 3)]
    with door.client() as client:
        locations = []
        for event in sent:
            answer = client.post("/epcis/capture", content=document([event]), headers={
                **bearer(admin), "Content-Type": "application/ld+json"})
            assert answer.status_code == 202
            locations.append(answer.headers["location"])
        jobs = [finished_job(client, admin, location) for location in locations]
        answer = client.get("/epcis/events", params={"EQ_bizStep": "inspecting",
                                                     "perPage": 1000}, headers=bearer(admin))
    assert [job["success"] for job in jobs] == [True] * len(sent)
    assert [e["eventID"] for e in _events(answer)] == [e["eventID"] for e in sent]


def test_documents_sent_with_a_byte_order_mark_are_captured(door: Door, pack: Pack,
                                                            admin: str) -> None:
    """A JSON-LD or XML document that a partner's system sends with a UTF-8 byte order mark
    before it (as .NET and Windows tools write) is captured as the same document without one
    (RFC 8259 lets a JSON reader ignore the mark; XML allows it)."""
    sent = inspection(pack.codes[:1])
    xml = ('<?xml version="1.0" encoding="UTF-8"?>'
           '<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0" '
           'creationDate="2026-03-05T09:45:00Z"><EPCISBody><EventList><ObjectEvent>'
           "<eventTime>2026-03-05T09:30:00.000+08:00</eventTime>"
           "<eventTimeZoneOffset>+08:00</eventTimeZoneOffset><epcList><epc>"
           f"{render(parse(pack.codes[1]).code, Form.EPC_URI, company_prefix_length=7)}"
           "</epc></epcList><action>OBSERVE</action>"
           "<bizStep>urn:epcglobal:cbv:bizstep:inspecting</bizStep>"
           "</ObjectEvent></EventList></EPCISBody></epcis:EPCISDocument>")
    with door.client() as client:
        jobs = []
        for body, kind in ((document([sent]), "application/ld+json"), (xml, "application/xml")):
            answer = client.post("/epcis/capture", content=b"\xef\xbb\xbf" + body.encode(),
                                 headers={**bearer(admin), "Content-Type": kind})
            assert answer.status_code == 202, answer.text
            jobs.append(finished_job(client, admin, answer.headers["location"]))
        found = _events(client.get("/epcis/events", params={"EQ_bizStep": "inspecting"},
                                   headers=bearer(admin)))
    assert [job["success"] for job in jobs] == [True, True], [j["errors"] for j in jobs]
    assert len(found) == 2 and sent["eventID"] in {e.get("eventID") for e in found}
