"""GS1 EPCIS example document shapes through ImportEpcis and ExportEpcis on a real server: every
event type, class level, sensor data, error declarations, extensions, 1.2 and 2.0 XML."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jsonschema  # type: ignore[import-untyped]  # jsonschema ships no type information
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Gs1Product, Servers
from tracecore import epcis
from tracecore.codes import Form, parse, render
from tracecore.errors import InvalidArgument
from tracecore.ledger.exchange import QueryPage
from tracecore.ledger.store import Ledger
from tracecore.usecases import epcis_query

DATA = Path(__file__).parent.parent / "data" / "epcis"

JSON_EXAMPLES = ["object-commissioning-extensions", "transaction-bills", "transformation",
                 "association", "sensor"]

XML_EXAMPLES = ["epcis-1.2-object-transformation", "epcis-2.0-sensor-aggregation"]


@dataclass(frozen=True)
class _Site:
    tenant: str
    epcs: list[str]
    lifecycle: lifecycle_pb2_grpc.LifecycleStub
    trace: trace_pb2_grpc.TraceStub

    def document(self, name: str) -> str:
        text = (DATA / name).read_text("utf-8")
        for i, epc in enumerate(self.epcs, 1):
            text = text.replace(f"__EPC_{i}__", epc)
        return text

    def send(self, text: str, best_effort: bool = False) -> lpb.ImportEpcisResponse:
        return self.lifecycle.ImportEpcis(lpb.ImportEpcisRequest(
            tenant=self.tenant, document=text, best_effort=best_effort), timeout=RPC_TIMEOUT_S)

    def exported(self, **query: Any) -> dict[str, Any]:
        response = self.trace.ExportEpcis(tpb.ExportEpcisRequest(tenant=self.tenant, **query),
                                          timeout=RPC_TIMEOUT_S)
        document: dict[str, Any] = json.loads(response.document)
        _validator().validate(document)
        return document


def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(epcis.schema_path().read_text("utf-8")))


def _by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {event["eventID"] + ("#error" if "errorDeclaration" in event else ""): event
            for event in document["epcisBody"]["eventList"]}


@pytest.fixture
def site(api: Api, gs1: Gs1Product, issue_channel: grpc.Channel,
         verify_channel: grpc.Channel) -> _Site:
    api.admin.AddParty(apb.AddPartyRequest(tenant=gs1.tenant, party=cpb.Party(
        party_id="plant-1", name="Plant 1", region="440305", kind=cpb.PARTY_KIND_PLANT)),
        timeout=RPC_TIMEOUT_S)
    codes = api.codes(gs1.tenant, gs1.gtin, 2, lot=gs1.lot)
    epcs = [render(parse(code).code, Form.EPC_URI, company_prefix_length=7) for code in codes]
    return _Site(gs1.tenant, epcs, lifecycle_pb2_grpc.LifecycleStub(issue_channel),
                 trace_pb2_grpc.TraceStub(verify_channel))


@pytest.mark.parametrize("name", JSON_EXAMPLES)
def test_each_example_comes_back_out_exactly_as_it_was_sent(site: _Site, name: str) -> None:
    """Every event of an example document is recorded and exported equal to what was sent."""
    if name != JSON_EXAMPLES[0]:
        site.send(site.document(f"{JSON_EXAMPLES[0]}.jsonld"))
    sent = json.loads(site.document(f"{name}.jsonld"))
    response = site.send(json.dumps(sent, ensure_ascii=False))
    events = sent["epcisBody"]["eventList"]
    assert (response.events, response.recorded, list(response.failures)) == \
        (len(events), len(events), [])
    exported = _by_id(site.exported())
    for event in events:
        assert exported[event["eventID"]] == event
    context = site.exported()["@context"]
    assert all(entry in context[1].items()
               for entry in sent["@context"][1:] for entry in entry.items())


def test_commissioning_from_a_document_activates_the_packs(site: _Site, api: Api) -> None:
    """A modelled event changes the packs as well as being kept as received."""
    response = site.send(site.document("object-commissioning-extensions.jsonld"))
    assert response.changed == 2
    code = parse(site.epcs[0]).code.text()
    assert api.verify(site.tenant, code).status == cpb.CODE_STATUS_ACTIVE


def test_importing_the_same_documents_again_changes_nothing(site: _Site) -> None:
    """Events are recognised by eventID: a document sent twice is recorded once."""
    for name in JSON_EXAMPLES:
        site.send(site.document(f"{name}.jsonld"))
    before = site.exported()
    for name in JSON_EXAMPLES:
        again = site.send(site.document(f"{name}.jsonld"))
        assert (again.recorded, again.duplicates) == (0, again.events)
    assert site.exported()["epcisBody"] == before["epcisBody"]


def test_an_error_declaration_is_kept_beside_the_event_it_declares_erroneous(
        site: _Site) -> None:
    """The declaration is exported beside the original event and found by the packs' product."""
    site.send(site.document("object-commissioning-extensions.jsonld"))
    declared = json.loads(site.document("error-declaration.jsonld"))
    assert site.send(json.dumps(declared, ensure_ascii=False)).recorded == 1
    exported = _by_id(site.exported(product="09501101530003"))
    original = declared["epcisBody"]["eventList"][0]
    assert exported[original["eventID"] + "#error"] == original
    assert "errorDeclaration" not in exported[original["eventID"]]
    assert site.send(json.dumps(declared, ensure_ascii=False)).duplicates == 1


@pytest.mark.parametrize("name", XML_EXAMPLES)
def test_xml_documents_import_as_the_events_of_their_2_0_json(site: _Site, name: str) -> None:
    """EPCIS 1.2 and 2.0 XML, validated by the official XSD, export as the expected 2.0 JSON."""
    response = site.send(site.document(f"{name}.xml"))
    expected = json.loads((DATA / f"{name}.expected.jsonld").read_text("utf-8"))
    events = expected["epcisBody"]["eventList"]
    assert (response.recorded, list(response.failures)) == (len(events), [])
    exported = _by_id(site.exported())
    assert [exported[event["eventID"]] for event in events] == events


def test_best_effort_refuses_only_the_bad_event_with_its_json_path(site: _Site) -> None:
    """Under best effort the other events are recorded; without it nothing is."""
    document = json.loads(site.document("association.jsonld"))
    document["epcisBody"]["eventList"][0]["eventTime"] = "yesterday"
    text = json.dumps(document)
    with pytest.raises(grpc.RpcError) as refused:
        site.send(text)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "$.epcisBody.eventList[0].eventTime" in str(refused.value.details())
    response = site.send(text, best_effort=True)
    assert (response.events, response.recorded) == (2, 1)
    (failure,) = response.failures
    assert (failure.event_index, failure.field) == (0, "$.epcisBody.eventList[0].eventTime")


def test_an_xml_event_the_xsd_refuses_is_refused_alone(site: _Site) -> None:
    """An XML event invalid under the XSD is refused by its place; the others are recorded."""
    text = site.document("epcis-2.0-sensor-aggregation.xml").replace(
        "<action>OBSERVE</action>", "<action>LOOK</action>")
    response = site.send(text, best_effort=True)
    assert response.recorded == 1
    assert [(f.event_index, f.field) for f in response.failures] == \
        [(0, "$.epcisBody.eventList[0]")]


def test_a_recall_exports_with_its_product_and_lot(site: _Site, gs1: Gs1Product) -> None:
    """A batch recall is exported as a class-level event of the lot, found by that lot."""
    site.lifecycle.RecallBatch(lpb.RecallBatchRequest(
        tenant=site.tenant, product=gs1.gtin, lot=gs1.lot, reason="contamination"),
        timeout=RPC_TIMEOUT_S)
    exported = site.exported(product=gs1.gtin, lot=gs1.lot)
    (recall,) = [e for e in exported["epcisBody"]["eventList"]
                 if e.get("disposition") == "recalled"]
    assert recall["quantityList"] == [
        {"epcClass": f"urn:epc:class:lgtin:{gs1.gtin[1:8]}.{gs1.gtin[0]}{gs1.gtin[8:13]}."
                     f"{gs1.lot}"}]


def test_a_packs_trace_shows_the_records_that_name_it(site: _Site) -> None:
    """Sensor readings on a pack appear in its trace with their business step."""
    site.send(site.document("object-commissioning-extensions.jsonld"))
    site.send(site.document("sensor.jsonld"))
    trail = site.trace.TraceCode(tpb.TraceCodeRequest(
        tenant=site.tenant, code=parse(site.epcs[1]).code.text()), timeout=RPC_TIMEOUT_S)
    assert [(e.biz_step, e.kind) for e in trail.history] == [
        ("commissioning", lpb.EVENT_KIND_COMMISSION), ("inspecting", lpb.EVENT_KIND_RECORD)]


@pytest.fixture
def stored(site: _Site, servers: Servers) -> Ledger:
    """The site's ledger holding every example document's events."""
    for name in JSON_EXAMPLES:
        site.send(site.document(f"{name}.jsonld"))
    for name in XML_EXAMPLES:
        site.send(site.document(f"{name}.xml"))
    return servers.codegen.data.get(site.tenant).ledger


def _ids(page: QueryPage) -> list[str]:
    return [event["eventID"][-2:] for event in page.events]


@pytest.mark.parametrize(("params", "ids"), [
    ({"eventType": "TransactionEvent|TransformationEvent"}, ["02", "03", "12"]),
    ({"EQ_bizStep": "urn:epcglobal:cbv:bizstep:inspecting"}, ["06", "21"]),
    ({"EQ_bizStep": "commissioning", "EQ_action": "ADD"}, ["01"]),
    ({"GE_eventTime": "2024-05-05T00:00:00Z", "LT_eventTime": "2024-05-08T09:30:00+08:00"},
     ["04", "05", "06", "11"]),
    ({"EQ_bizTransaction_po": "urn:epcglobal:cbv:bt:0614141073467:PO-1234"}, ["11"]),
    ({"EQ_bizTransaction_urn:cn:nmpa:btt:inbound-bill": "urn:cn:nmpa:bill:RK20240503000017"},
     ["02"]),
    ({"MATCH_epc": "urn:epc:idpat:sgtin:0614141.107346.*"}, ["11", "21"]),
    ({"MATCH_anyEPC": "urn:epc:id:sscc:0614141.1234567890"}, ["22"]),
    ({"MATCH_epcClass": "urn:epc:class:lgtin:4012345.011111.4444"}, ["04", "05", "22"]),
])
def test_the_standard_query_finds_events_of_every_kind(
        stored: Ledger, params: dict[str, str], ids: list[str]) -> None:
    """The standard query parameters find records and modelled events alike."""
    page = epcis_query.query_events(stored, None, params, 0, "")
    assert (_ids(page), page.next_token) == (ids, "")


def test_a_query_pages_by_token(stored: Ledger) -> None:
    """Pages of two events each follow one another by their token, to the end."""
    seen: list[str] = []
    token = ""
    while True:
        page = epcis_query.query_events(stored, None, {"EQ_action": "ADD|OBSERVE"}, 2, token)
        assert len(page.events) <= 2
        seen += _ids(page)
        token = page.next_token
        if not token:
            break
    assert seen == ["01", "02", "04", "05", "06", "11", "21", "22"]


def test_an_unknown_query_parameter_is_refused_by_name(stored: Ledger) -> None:
    """A parameter pharmatrace does not support is named in the refusal."""
    with pytest.raises(InvalidArgument) as refused:
        epcis_query.query_events(stored, None, {"EQ_colour": "red"}, 0, "")
    assert refused.value.field == "EQ_colour"


def test_records_come_only_in_epcis_documents(site: _Site) -> None:
    """CaptureEvents refuses the record kind: a record is an EPCIS event kept as received."""
    with pytest.raises(grpc.RpcError) as refused:
        site.lifecycle.CaptureEvents(iter([lpb.CaptureEventsRequest(
            tenant=site.tenant, events=[lpb.LifecycleEvent(
                kind=lpb.EVENT_KIND_RECORD, codes=[parse(site.epcs[0]).code.text()])])]),
            timeout=RPC_TIMEOUT_S)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ImportEpcis" in str(refused.value.details())


@pytest.mark.parametrize("name", ["gs1-example-9.6.1-objectevent.jsonld",
                                  "gs1-example-9.6.1-objectevent.xml"])
def test_gs1s_own_example_with_another_companys_codes_is_recorded_whole(
        site: _Site, api: Api, name: str) -> None:
    """GS1's example 9.6.1, sent as published (codes and places of company 0614141, which this
    tenant never issued or registered): both events recorded (the shipping event names no
    destination, as the standard allows), the packs verify as known here but not signed here,
    the unregistered places become external parties, and the JSON-LD
    comes back out as it went in."""
    text = (DATA / name).read_text("utf-8")
    response = site.send(text)
    assert (response.events, response.recorded, list(response.failures)) == (2, 2, []), \
        response.failures
    for serial in ("2017", "2018"):
        answer = api.verification.Verify(vpb.VerifyRequest(
            tenant=site.tenant, code=f"(01)10614141073464(21){serial}"), timeout=RPC_TIMEOUT_S)
        assert answer.verdict == vpb.VERDICT_KNOWN_FOREIGN, answer
    parties = api.admin.ListParties(apb.ListPartiesRequest(tenant=site.tenant),
                                    timeout=RPC_TIMEOUT_S).parties
    external = {p.identifier for p in parties if p.external}
    assert {"urn:epc:id:sgln:0614141.07346.1234", "urn:epc:id:sgln:0012345.11111.0"} <= external
    if name.endswith(".jsonld"):
        exported = _by_id(site.exported())
        for event in json.loads(text)["epcisBody"]["eventList"]:
            assert exported[event["eventID"]] == event
    assert site.send(text).recorded == 0
