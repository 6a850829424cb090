"""Content negotiation on the EPCIS REST binding: events and capture jobs answer EPCIS 2.0 XML,
valid under the official XSD the package ships, to a client that accepts application/xml;
JSON-LD otherwise; 406 to a client that takes neither."""

from __future__ import annotations

import functools
from pathlib import Path
from xml.etree import ElementTree

import pytest
import xmlschema
from pharmatrace.v1 import admin_pb2 as apb

from tests.integration.frontdoor.conftest import Door, Pack, Shop
from tests.integration.frontdoor.epcis_helpers import bearer, capture, document, inspection
from tracecore.codes import Form, parse, render
from tracecore.epcis.xml_reader import document_of_xml

DATA = Path(__file__).parent.parent.parent / "data" / "epcis"
XSD = Path(__file__).parent.parent.parent.parent / "tracecore" / "epcis_schema" / "xsd-2.0"
#: GS1 example shapes: every event type, bills, sensor data, extensions.
EXAMPLES = ["object-commissioning-extensions.jsonld", "transaction-bills.jsonld",
            "transformation.jsonld", "association.jsonld", "sensor.jsonld",
            "error-declaration.jsonld"]
XML = {"Accept": "application/xml"}


@functools.cache
def _query_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD / "EPCglobal-epcis-query-2_0.xsd"))


@pytest.fixture
def pack(shop: Shop) -> Pack:
    return shop.pack(4)


@pytest.fixture
def admin(shop: Shop, pack: Pack) -> str:
    return shop.token(pack.tenant, apb.ROLE_ADMIN)


def _example(name: str, pack: Pack) -> str:
    text = (DATA / name).read_text("utf-8")
    for i, code in enumerate(pack.codes[:2], 1):
        text = text.replace(f"__EPC_{i}__", render(parse(code).code, Form.EPC_URI,
                                                   company_prefix_length=7))
    return text


def test_events_answer_epcis_xml_valid_under_the_shipped_xsd(door: Door, pack: Pack,
                                                            admin: str) -> None:
    """GET /epcis/events with Accept: application/xml answers an EPCISQueryDocument that the
    official EPCIS 2.0 query XSD accepts, holding every event the JSON-LD answer holds, of
    every type, with the same eventIDs and extension members."""
    with door.client() as client:
        for name in EXAMPLES:
            capture(client, admin, _example(name, pack), "proceed")
        as_json = client.get("/epcis/events", params={"perPage": "100"},
                             headers=bearer(admin)).json()
        as_xml = client.get("/epcis/events", params={"perPage": "100"},
                            headers={**bearer(admin), **XML})
    assert as_xml.status_code == 200
    assert as_xml.headers["content-type"].startswith("application/xml")
    _query_schema().validate(as_xml.content)
    sent = as_json["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    root = ElementTree.fromstring(as_xml.content)
    answered = root.find("EPCISBody/{urn:epcglobal:epcis-query:xsd:2}QueryResults/"
                         "resultsBody/EventList")
    assert answered is not None
    assert [e.tag for e in answered] == [e["type"] for e in sent]
    assert {e.tag for e in answered} >= {"ObjectEvent", "TransactionEvent",
                                          "TransformationEvent", "AssociationEvent"}
    assert [e.findtext("eventID") for e in answered] == [e.get("eventID") for e in sent]
    assert answered.findall(".//sensorElement"), "sensor data is in the XML answer"


def test_xml_answers_read_back_as_the_same_events(door: Door, pack: Pack, admin: str) -> None:
    """The XML answer of one event, read as an EPCIS document, gives back its JSON-LD event
    (the standard's members, CBV terms and ILMD extension alike)."""
    with door.client() as client:
        capture(client, admin, _example("object-commissioning-extensions.jsonld", pack),
                "proceed")
        listed = client.get("/epcis/events", params={"eventType": "ObjectEvent"},
                            headers=bearer(admin)).json()
        event = listed["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0]
        one = client.get(f"/epcis/events/{event['eventID']}", headers={**bearer(admin), **XML})
    assert one.status_code == 200
    root = ElementTree.fromstring(one.content)
    body = root.find("EPCISBody/{urn:epcglobal:epcis-query:xsd:2}QueryResults/resultsBody")
    assert body is not None
    wrapped = ElementTree.Element("{urn:epcglobal:epcis:xsd:2}EPCISDocument",
                                  {"schemaVersion": "2.0", "creationDate": root.get(
                                      "creationDate", "")})
    ElementTree.SubElement(wrapped, "EPCISBody").extend(list(body))
    read, refused = document_of_xml(ElementTree.tostring(wrapped, encoding="unicode"))
    assert refused == {}
    back = read["epcisBody"]["eventList"][0]
    for member in ("eventID", "eventTime", "action", "bizStep", "disposition", "epcList",
                   "readPoint", "bizLocation"):
        assert back.get(member) == event.get(member), member


def test_a_capture_job_answers_xml_and_json_by_accept(door: Door, pack: Pack,
                                                       admin: str) -> None:
    """A capture job's state comes as XML to a client accepting application/xml, as JSON to
    one accepting JSON or anything."""
    with door.client() as client:
        answer = client.post("/epcis/capture", content=document([inspection(pack.codes[:1])]),
                             headers={**bearer(admin), "Content-Type": "application/ld+json"})
        location = answer.headers["location"]
        job = capture(client, admin, document([inspection(pack.codes[1:2])]))
        as_json = client.get(location, headers={**bearer(admin), "Accept": "*/*"})
        as_xml = client.get(f"/epcis/capture/{job['captureID']}",
                            headers={**bearer(admin), "Accept": "text/html;q=0.9, "
                                     "application/xml"})
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_xml.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(as_xml.content)
    assert root.findtext("captureID") == job["captureID"]
    assert root.findtext("success") == "true" and root.findtext("running") == "false"


def test_an_unsupported_accept_is_406(door: Door, admin: str) -> None:
    """A client that accepts only media types the binding does not answer in gets 406."""
    with door.client() as client:
        events = client.get("/epcis/events", headers={**bearer(admin), "Accept": "text/html"})
        job = client.get("/epcis/capture/0", headers={**bearer(admin),
                                                      "Accept": "image/png"})
        json_ld = client.get("/epcis/events", headers={
            **bearer(admin), "Accept": "application/ld+json, application/xml;q=0.5"})
    assert events.status_code == 406 and job.status_code == 406
    assert events.json()["title"] == "Not Acceptable"
    assert json_ld.status_code == 200
    assert json_ld.headers["content-type"].startswith("application/ld+json")
