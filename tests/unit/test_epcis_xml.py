"""EPCIS 1.2 and 2.0 XML read as the EPCIS 2.0 JSON-LD they stand for, and EPCIS events that
pharmatrace does not model read as records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tracecore import epcis
from tracecore.epcis.vocabulary import epoch_ms
from tracecore.errors import InvalidArgument
from tracecore.events import EventKind

DATA = Path(__file__).parent.parent / "data" / "epcis"


def _party_of(uri: str) -> str:
    if uri == "urn:pharmatrace:party:plant-1":
        return "plant-1"
    raise InvalidArgument(f"unknown party {uri}", field="party")


def _json(name: str) -> dict[str, Any]:
    text = (DATA / name).read_text("utf-8").replace(
        "__EPC_1__", "urn:epc:id:sgtin:0614141.107346.2017").replace(
        "__EPC_2__", "urn:epc:id:sgtin:0614141.107346.2018")
    document: dict[str, Any] = json.loads(text)
    return document


@pytest.mark.parametrize("name", ["epcis-1.2-object-transformation",
                                  "epcis-2.0-sensor-aggregation"])
def test_xml_reads_as_its_expected_json(name: str) -> None:
    """Wrappers of 1.2 dropped, CBV URNs as bare terms, lists and sensor attributes as JSON."""
    document, refused = epcis.document_of_xml((DATA / f"{name}.xml").read_text("utf-8"))
    assert refused == {}
    assert document == json.loads((DATA / f"{name}.expected.jsonld").read_text("utf-8"))


@pytest.mark.parametrize(("text", "reason"), [
    ("not xml at all <", "not XML"),
    ("<?xml version='1.0'?><order xmlns='urn:example'/>", "EPCIS 1.2 or 2.0"),
    ("<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]>"
     "<epcis:EPCISDocument xmlns:epcis='urn:epcglobal:epcis:xsd:2'>&b;</epcis:EPCISDocument>",
     "not XML"),
])
def test_documents_that_are_not_epcis_xml_are_refused_whole(text: str, reason: str) -> None:
    """Anything but an EPCIS XML document, entity declarations included, is refused."""
    with pytest.raises(InvalidArgument, match=reason):
        epcis.document_of_xml(text)


def test_a_header_problem_refuses_the_whole_xml_document() -> None:
    """A problem outside the events (no creationDate) is the document's, not an event's."""
    text = (DATA / "epcis-2.0-sensor-aggregation.xml").read_text("utf-8").replace(
        'creationDate="2024-05-09T08:00:00Z"', "")
    with pytest.raises(InvalidArgument, match="XSD"):
        epcis.document_of_xml(text)


@pytest.mark.parametrize(("name", "types"), [
    ("transaction-bills.jsonld", ["TransactionEvent"]),
    ("transformation.jsonld", ["TransformationEvent"]),
    ("association.jsonld", ["AssociationEvent", "AggregationEvent"]),
    ("sensor.jsonld", ["ObjectEvent"]),
    ("error-declaration.jsonld", ["ObjectEvent"]),
])
def test_events_that_change_no_pack_are_records_kept_as_received(
        name: str, types: list[str]) -> None:
    """Transactions, transformations, class level, sensors and error declarations are records."""
    document = _json(name)
    events, refusals = epcis.read_document(document, party_of=_party_of)
    assert refusals == []
    assert [e.kind for _, e in events] == [EventKind.RECORD] * len(types)
    assert [json.loads(e.epcis) for _, e in events] == document["epcisBody"]["eventList"]


def test_an_error_declaration_is_kept_apart_from_the_event_it_declares() -> None:
    """The declaration repeats the eventID; it is recorded under its own id, not a duplicate."""
    (_, original), = epcis.read_document(_json("object-commissioning-extensions.jsonld"),
                                         party_of=_party_of)[0]
    (_, declared), = epcis.read_document(_json("error-declaration.jsonld"),
                                         party_of=_party_of)[0]
    assert original.kind is EventKind.COMMISSION
    assert declared.event_id == original.event_id + "#errorDeclaration"
    assert declared.codes == original.codes


def test_a_record_at_an_unknown_place_is_kept_without_a_party() -> None:
    """A record changes nothing: an unregistered read point is no reason to refuse it."""
    (_, event), = epcis.read_document(_json("transformation.jsonld"), party_of=_party_of)[0]
    assert (event.kind, event.party_id) == (EventKind.RECORD, "")


def test_one_bad_event_is_refused_alone_with_its_json_path() -> None:
    """read_document refuses each bad event by its path; import_document refuses the whole."""
    document = _json("association.jsonld")
    document["epcisBody"]["eventList"][1]["action"] = "LOOK"
    events, refusals = epcis.read_document(document, party_of=_party_of)
    assert [i for i, _ in events] == [0]
    assert [(r.index, r.field) for r in refusals] == [(1, "$.epcisBody.eventList[1].action")]
    with pytest.raises(InvalidArgument) as raised:
        epcis.import_document(document, party_of=_party_of)
    assert raised.value.field == "$.epcisBody.eventList[1].action"


def test_gs1_example_xml_reads_as_gs1s_json_of_it() -> None:
    """GS1's example 9.6.1 in XML reads as GS1's JSON-LD of it (eventIDs and time forms aside)."""
    document, _ = epcis.document_of_xml(
        (DATA / "gs1-example-9.6.1-objectevent.xml").read_text("utf-8"))
    expected = json.loads((DATA / "gs1-example-9.6.1-objectevent.jsonld").read_text("utf-8"))

    def same_form(event: dict[str, Any]) -> dict[str, Any]:
        return {key: epoch_ms(value) if key == "eventTime" else value
                for key, value in event.items() if key != "eventID"}

    assert [same_form(e) for e in document["epcisBody"]["eventList"]] == \
        [same_form(e) for e in expected["epcisBody"]["eventList"]]
