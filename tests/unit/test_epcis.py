"""EPCIS 2.0 export and import: schema validity, round trips, event hash IDs, partner documents."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import uuid
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # jsonschema ships no type information
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracecore import epcis
from tracecore.codes import Code, Scheme
from tracecore.epcis import identifiers as epcis_ids
from tracecore.errors import InvalidArgument
from tracecore.events import Event, EventKind
from tracecore.gs1 import CSET82
from tracecore.status import DECOMMISSIONED, Status

# SHA-256 of GS1's files (gs1/EPCIS at commit 2b888befbc071e1c2d388e027b30149b3f51dcef): the
# JSON schema and context of EPCIS 2.0, the XSDs of EPCIS 1.2 (xsd-1.2/) and 2.0 (xsd-2.0/).
OFFICIAL = {
    "EPCIS-JSON-Schema.json":
        "ed3228d7867198b4a5be9748fe77f473457c6ed98224fab28a950b4ce634a041",
    "epcis-context.jsonld":
        "14b10c9d3e92d35f577bfc610fe5ec15aa2941124987919389d7cd9998516861",
    "xsd-1.2/BasicTypes.xsd":
        "a237850bf809ed335f83a2b9f93e44e0ef923e44450c902bd01a1858d0b10876",
    "xsd-1.2/BusinessScope.xsd":
        "71c8bf023b0edccb2602f24fc0cbf4fcaae1260a4e9cf6ae48920ce9d8757cab",
    "xsd-1.2/DocumentIdentification.xsd":
        "1a46cbaff587344d8a6b2521d949ae188a4c3becca956edc2ae2ff154d0c3e8c",
    "xsd-1.2/EPCglobal-epcis-1_2.xsd":
        "24768ad6a378f42803ba3a054eb09c679d62617db0126cb091c209c0255ae901",
    "xsd-1.2/EPCglobal-epcis-masterdata-1_2.xsd":
        "5ba572e82f478ec8d17824e8ca7ec4ee0c25b7398fda6a44048905cd43ed72c3",
    "xsd-1.2/EPCglobal-epcis-query-1_2.xsd":
        "8da348cfa444039384767ac8b5595e953d51e476854d866c02386ff22b3f00c6",
    "xsd-1.2/EPCglobal.xsd":
        "54dd707213a23bb6e6ce4a6094caf4b35eba1024a5b03e052e06614dbafe32c8",
    "xsd-1.2/Manifest.xsd":
        "f3b7e2a2e4b92b3563285734c4d977288897c55643ff050a7b922c1a06c130aa",
    "xsd-1.2/Partner.xsd":
        "726b15ed27ac02addf1c8d041ec1c06a1b26f2fce16e5bdc3a9919485e92a0f3",
    "xsd-1.2/StandardBusinessDocumentHeader.xsd":
        "bf063d82663ad7f4d7e228484279a7974cd4a467ceef4679dfdcd4641fc33038",
    "xsd-2.0/BasicTypes.xsd":
        "a237850bf809ed335f83a2b9f93e44e0ef923e44450c902bd01a1858d0b10876",
    "xsd-2.0/BusinessScope.xsd":
        "71c8bf023b0edccb2602f24fc0cbf4fcaae1260a4e9cf6ae48920ce9d8757cab",
    "xsd-2.0/DocumentIdentification.xsd":
        "1a46cbaff587344d8a6b2521d949ae188a4c3becca956edc2ae2ff154d0c3e8c",
    "xsd-2.0/EPCglobal-epcis-2_0.xsd":
        "790fb5d7e21b6b3210589af7f7258a26e2c1ddfeb73a39fe5f2ef0911719dce2",
    "xsd-2.0/EPCglobal-epcis-masterdata-2_0.xsd":
        "97af6bc23a14aaed9655cbfc345d48f9a5a6522cd9222b0a9746f8c5a34b7870",
    "xsd-2.0/EPCglobal-epcis-query-2_0.xsd":
        "2f3ac09fffc1dba6083c7fef51d7d574f8cdf5d3d3e818ec589b92accb2d25db",
    "xsd-2.0/EPCglobal.xsd":
        "54dd707213a23bb6e6ce4a6094caf4b35eba1024a5b03e052e06614dbafe32c8",
    "xsd-2.0/Manifest.xsd":
        "f3b7e2a2e4b92b3563285734c4d977288897c55643ff050a7b922c1a06c130aa",
    "xsd-2.0/Partner.xsd":
        "726b15ed27ac02addf1c8d041ec1c06a1b26f2fce16e5bdc3a9919485e92a0f3",
    "xsd-2.0/StandardBusinessDocumentHeader.xsd":
        "bf063d82663ad7f4d7e228484279a7974cd4a467ceef4679dfdcd4641fc33038",
}
PARTY = "https://pharmatrace.example/acme/party/"
GTIN = "10614141073464"  # GS1 company prefix 0614141
CASE_GTIN = "30614141073468"
GLN = "0614141073467"
UUID_EVENT_ID = "urn:uuid:6b3c4f7e-0d2a-4b8e-9f1a-2c3d4e5f6a7b"
ID_FORMS: list[epcis.IdForm] = ["epc", "digital-link"]

# A label replacement is written as the new code's commissioning (test_label_replacement.py).
KINDS = [(kind, None) for kind in EventKind
         if kind not in (EventKind.DECOMMISSION, EventKind.REPLACE, EventKind.RECORD)] + [
    (EventKind.DECOMMISSION, status) for status in sorted(DECOMMISSIONED)]


def party_uri(party_id: str) -> str:
    return PARTY + party_id


def party_of(uri: str) -> str:
    if uri.startswith(PARTY):
        return uri[len(PARTY):]
    if uri.startswith("urn:epc:id:sgln:"):
        return "gln-" + epcis.gln_of(uri)
    raise InvalidArgument("unknown party")


def gs1(serial: str, gtin: str = GTIN) -> Code:
    return Code(Scheme.GS1, gtin, serial)


def nmpa(serial: str) -> Code:
    return Code(Scheme.NMPA, "8123456", serial)


def one_of_each() -> list[Event]:
    """One event of every kind and decommissioned target, with GS1 and NMPA codes."""
    units = (gs1("A/B%C&D"), gs1("0001"), nmpa("0000000000001"))
    events = []
    for i, (kind, target) in enumerate(KINDS):
        aggregation = kind in (EventKind.AGGREGATE, EventKind.DISAGGREGATE)
        events.append(Event(
            kind=kind,
            codes=units,
            when_ms=1_714_500_000_000 + i,
            tz_offset="+08:00",
            party_id="plant-1",
            region="110105",
            parent=gs1("CASE-1", CASE_GTIN) if aggregation else None,
            lot="LOT-24A" if kind is EventKind.COMMISSION else "",
            level=1 if kind is EventKind.COMMISSION else 0,
            destination="dc-9" if kind is EventKind.SHIP else "",
            target=target,
            reason="damaged in transit" if kind is EventKind.DESTROY else "",
        ))
    return events


def export(events: list[Event], id_form: epcis.IdForm = "epc", **options: Any) -> dict[str, Any]:
    options.setdefault("created_ms", 0)
    return epcis.export_document(events, id_form=id_form, party_uri=party_uri,
                                 batches={(GTIN, "LOT-24A"): "2027-05-31"}, **options)


def with_ids(events: list[Event], document: dict[str, Any]) -> list[Event]:
    ids = [wire["eventID"] for wire in document["epcisBody"]["eventList"]]
    return [dataclasses.replace(event, event_id=i) for event, i in zip(events, ids, strict=True)]


@pytest.fixture(scope="module")
def official_schema() -> jsonschema.Draft7Validator:
    schema = json.loads(epcis.schema_path().read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema,
                                      format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def partner_commissioning() -> dict[str, Any]:
    """What a contract manufacturer sends: two packs commissioned, lot and expiry in the ILMD."""
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-03-05T09:45:00Z",
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent",
            "eventTime": "2024-03-05T09:30:00.250+01:00",
            "eventTimeZoneOffset": "+01:00",
            "epcList": ["urn:epc:id:sgtin:0614141.107346.2017",
                        "urn:epc:id:sgtin:0614141.107346.2018"],
            "action": "ADD",
            "bizStep": "commissioning",
            "disposition": "active",
            "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.0"},
            "bizLocation": {"id": "urn:epc:id:sgln:0614141.07346.0"},
            "ilmd": {"cbvmda:lotNumber": "B2403", "cbvmda:itemExpirationDate": "2026-02-28"},
        }]},
    }


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_every_kind_exports_a_document_valid_under_the_official_schema(
    id_form: epcis.IdForm, official_schema: jsonschema.Draft7Validator
) -> None:
    """Every event kind and target, GS1 and NMPA codes, in either id form, is valid EPCIS 2.0."""
    document = export(one_of_each(), id_form, sender="urn:epc:id:pgln:0614141.00000")
    problems = official_schema.iter_errors(document)
    assert [f"{error.json_path}: {error.message}" for error in problems] == []
    assert document["@context"][0] == epcis.CONTEXT_URL
    assert document["schemaVersion"] == "2.0"
    assert len(document["epcisBody"]["eventList"]) == len(KINDS)


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_round_trip_gives_back_equal_events(id_form: epcis.IdForm) -> None:
    """Importing an export gives the same events, each with the eventID it was exported under."""
    events = one_of_each()
    document = export(events, id_form)
    assert epcis.import_document(json.loads(json.dumps(document)), party_of=party_of) == \
        with_ids(events, document)


def test_commissioning_carries_lot_and_expiry_in_ilmd() -> None:
    """A commissioning is an ObjectEvent ADD whose ILMD has the lot and the batch's expiry."""
    (commission,) = [e for e in one_of_each() if e.kind is EventKind.COMMISSION]
    (wire,) = export([commission])["epcisBody"]["eventList"]
    assert (wire["type"], wire["action"], wire["bizStep"], wire["disposition"]) == \
        ("ObjectEvent", "ADD", "commissioning", "active")
    assert wire["ilmd"] == {"cbvmda:lotNumber": "LOT-24A",
                            "cbvmda:itemExpirationDate": "2027-05-31"}
    assert wire["eventTime"] == "2024-05-01T02:00:00.000+08:00"
    imported = epcis.import_document(export([commission]), party_of=party_of)
    assert imported[0].extra == {"expiry": "2027-05-31"}


@pytest.mark.parametrize(("kind", "target", "expected"), [
    (EventKind.VOID, None, ("ObjectEvent", "DELETE", "decommissioning", "inactive")),
    (EventKind.DESTROY, None, ("ObjectEvent", "DELETE", "destroying", "destroyed")),
    (EventKind.AGGREGATE, None, ("AggregationEvent", "ADD", "packing", "in_progress")),
    (EventKind.DISAGGREGATE, None, ("AggregationEvent", "DELETE", "unpacking", "in_progress")),
    (EventKind.SHIP, None, ("ObjectEvent", "OBSERVE", "shipping", "in_transit")),
    (EventKind.RECEIVE, None, ("ObjectEvent", "OBSERVE", "receiving", "in_progress")),
    (EventKind.DECOMMISSION, Status.DISPENSED,
     ("ObjectEvent", "OBSERVE", "dispensing", "dispensed")),
    (EventKind.DECOMMISSION, Status.SAMPLE,
     ("ObjectEvent", "OBSERVE", "sampling", "non_sellable_other")),
    (EventKind.RECALL, None, ("ObjectEvent", "OBSERVE", "holding", "recalled")),
])
def test_each_kind_maps_to_its_cbv_business_step(
    kind: EventKind, target: Status | None, expected: tuple[str, str, str, str]
) -> None:
    """Voiding and destroying end an identifier (DELETE); decommissioned packs are observed."""
    (event,) = [e for e in one_of_each() if (e.kind, e.target) == (kind, target)]
    (wire,) = export([event])["epcisBody"]["eventList"]
    assert (wire["type"], wire["action"], wire["bizStep"], wire["disposition"]) == expected


def test_business_steps_are_the_domain_vocabulary_where_cbv_defines_it() -> None:
    """bizStep and disposition are events.CBV's own, except terms CBV 2.0 does not have."""
    definitions = json.loads(epcis.schema_path().read_text(encoding="utf-8"))["definitions"]
    cbv = {name: set(definitions[name]["anyOf"][1]["enum"]) for name in ("bizStep", "disposition")}
    events = one_of_each()
    for event, wire in zip(events, export(events)["epcisBody"]["eventList"], strict=True):
        for name, term in zip(("bizStep", "disposition"), event.cbv, strict=True):
            assert wire[name] in cbv[name]
            assert wire[name] == term or term not in cbv[name]


def test_shipping_names_source_and_destination_locations() -> None:
    """A shipment leaves its party for the destination: CBV location types, no bizLocation."""
    (ship,) = [e for e in one_of_each() if e.kind is EventKind.SHIP]
    (wire,) = export([ship])["epcisBody"]["eventList"]
    assert wire["readPoint"] == {"id": PARTY + "plant-1"}
    assert "bizLocation" not in wire
    assert wire["sourceList"] == [{"type": "location", "source": PARTY + "plant-1"}]
    assert wire["destinationList"] == [{"type": "location", "destination": PARTY + "dc-9"}]


def test_pharmatrace_status_appears_only_where_cbv_is_ambiguous() -> None:
    """A dispensing is plain CBV; a free sample, written the same way, says so in an extension."""
    dispensed, free_sample = (Event(EventKind.DECOMMISSION, (gs1("1"),), 0, target=target)
                              for target in (Status.DISPENSED, Status.FREE_SAMPLE))
    wires = export([dispensed, free_sample])["epcisBody"]["eventList"]
    assert "pharmatrace:status" not in wires[0]
    assert wires[1]["pharmatrace:status"] == "free_sample"
    assert wires[1]["bizStep"] == wires[0]["bizStep"] == "dispensing"


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_codes_are_written_in_the_chosen_id_form(id_form: epcis.IdForm) -> None:
    """GS1 codes are SGTIN EPC URIs or Digital Links; NMPA codes are pharmatrace URNs in both."""
    event = Event(EventKind.RECEIVE, (gs1("A/B"), nmpa("0000000000042")), 0)
    (wire,) = export([event], id_form, host="https://example.com/dl")["epcisBody"]["eventList"]
    first = {"epc": "urn:epc:id:sgtin:0614141.107346.A%2FB",
             "digital-link": f"https://example.com/dl/01/{GTIN}/21/A%2FB"}[id_form]
    assert wire["epcList"] == [first, "urn:pharmatrace:nmpa:81234560000000000042"]


def test_event_id_is_the_same_hash_for_the_same_event() -> None:
    """The hash ID depends on the event alone: not the document, the id form or the DL host."""
    event = one_of_each()[0]
    ids = {export([event], id_form, host=host, created_ms=created)["epcisBody"]["eventList"][0]
           ["eventID"]
           for id_form in ID_FORMS for host in ("https://id.gs1.org", "https://dl.example.com")
           for created in (0, 1_000)}
    assert len(ids) == 1
    (event_id,) = ids
    assert event_id.startswith("ni:///sha-256;") and event_id.endswith("?ver=CBV2.0")
    later = dataclasses.replace(event, when_ms=event.when_ms + 1)
    assert export([later])["epcisBody"]["eventList"][0]["eventID"] != event_id


def test_an_event_keeps_the_event_id_it_has() -> None:
    """An event that already has an eventID is exported under it, not under a hash."""
    event = dataclasses.replace(one_of_each()[0], event_id=UUID_EVENT_ID)
    assert export([event])["epcisBody"]["eventList"][0]["eventID"] == event.event_id


def test_an_event_id_that_is_not_a_uri_is_exported_as_a_uuid_urn_of_its_tenant(
        official_schema: jsonschema.Draft7Validator) -> None:
    """An id a gRPC client gave that is not a URI is exported as a version 5 UUID URN, valid
    under the official schema: the same for the same tenant and id, another for another
    tenant or id; an id that is a URI stays as it is."""
    event = dataclasses.replace(one_of_each()[0], event_id="line7-000123")

    def exported(tenant: str, e: Event = event) -> str:
        document = export([e], tenant=tenant)
        official_schema.validate(document)
        return str(document["epcisBody"]["eventList"][0]["eventID"])

    acme = exported("acme")
    assert acme.startswith("urn:uuid:")
    assert uuid.UUID(acme.removeprefix("urn:uuid:")).version == 5
    assert exported("acme") == acme and epcis_ids.may_be_event_uri(acme)
    assert exported("other") != acme
    assert exported("acme", dataclasses.replace(event, event_id="line7-000124")) != acme
    assert exported("acme", dataclasses.replace(event, event_id=UUID_EVENT_ID)) == UUID_EVENT_ID
    assert not epcis_ids.may_be_event_uri(UUID_EVENT_ID)


def test_event_hash_matches_the_gs1_reference_implementation() -> None:
    """The CBV 2.0 hash of GS1's example shipping event is the one the reference tool publishes."""
    # epcisDocWithSingleEvent.jsonld and its .hashes, from the EPCIS Event Hash Generator.
    document = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
                     {"gs1": "https://gs1.org/voc/"}],
        "id": "https://id.example.org/document1",
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2022-02-17T11:30:47.0Z",
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent",
            "action": "OBSERVE",
            "bizStep": "shipping",
            "disposition": "in_transit",
            "epcList": ["urn:epc:id:sgtin:0614141.107346.2017",
                        "urn:epc:id:sgtin:0614141.107346.2018"],
            "eventTime": "2022-02-16T20:33:31.116000-06:00",
            "eventTimeZoneOffset": "-06:00",
            "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"},
            "bizTransactionList": [{"type": "po",
                                    "bizTransaction": "http://transaction.acme.com/po/12345678"}],
        }]},
    }
    (event,) = epcis.import_document(document, party_of=party_of)
    assert event.event_id == ("ni:///sha-256;3e0f2437f4cb5e8a1b832b769c0eed1bf3e1421f14061132e98"
                              "00ded03f10182?ver=CBV2.0")
    assert (event.kind, event.party_id) == (EventKind.SHIP, "gln-" + GLN)


def test_import_without_event_ids_is_idempotent() -> None:
    """Events sent without eventID get the exporter's hash IDs, the same on every import."""
    events = one_of_each()
    document = export(events)
    bare = copy.deepcopy(document)
    for wire in bare["epcisBody"]["eventList"]:
        del wire["eventID"]
    first = epcis.import_document(bare, party_of=party_of)
    assert first == epcis.import_document(bare, party_of=party_of) == with_ids(events, document)


def test_partner_commissioning_document_imports_as_one_commission() -> None:
    """A contract manufacturer's commissioning of two SGTINs gives codes, lot, time and place."""
    (event,) = epcis.import_document(partner_commissioning(), party_of=party_of)
    assert event.kind is EventKind.COMMISSION
    assert event.codes == (gs1("2017"), gs1("2018"))
    assert event.lot == "B2403"
    assert event.extra == {"expiry": "2026-02-28", "minted_by": "0614141"}
    assert event.when_ms == 1_709_627_400_250  # 2024-03-05T08:30:00.250Z
    assert event.tz_offset == "+01:00"
    assert event.party_id == "gln-" + GLN
    assert event.event_id.startswith("ni:///sha-256;")


@pytest.mark.parametrize("biz_step", [
    "commissioning", "cbv:BizStep-commissioning", "https://ref.gs1.org/cbv/BizStep-commissioning",
])
def test_business_steps_may_be_bare_prefixed_or_full_uris(biz_step: str) -> None:
    """bizStep and disposition are read in any of the forms the JSON-LD context allows."""
    document = partner_commissioning()
    wire = document["epcisBody"]["eventList"][0]
    wire["bizStep"] = biz_step
    wire["disposition"] = "https://ref.gs1.org/cbv/Disp-active"
    (event,) = epcis.import_document(document, party_of=party_of)
    assert event.kind is EventKind.COMMISSION


def test_a_missing_disposition_takes_the_cautious_reading() -> None:
    """Without a disposition, holding reads as a reversible lock, never as a withdrawal."""
    document = partner_commissioning()
    wire = document["epcisBody"]["eventList"][0]
    wire |= {"action": "OBSERVE", "bizStep": "holding"}
    del wire["disposition"], wire["ilmd"]
    (event,) = epcis.import_document(document, party_of=party_of)
    assert (event.kind, event.target) == (EventKind.DECOMMISSION, Status.LOCKED)


@pytest.mark.parametrize(("change", "minted_by"), [
    ({"epcList": ["urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.1"]},
     "0614141"),
    ({"epcList": ["urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:061414.1107346.1"]},
     ""),
    ({"epcList": ["urn:epc:id:sgtin:0614141.107346.2017",
                  "https://id.gs1.org/01/10614141073464/21/1"]}, ""),
    ({"epcList": ["urn:epc:id:sgtin:0614141.107346.2017"],
      "pharmatrace:mintedBy": "Example Pharma GmbH"}, "Example Pharma GmbH"),
])
def test_an_event_says_who_minted_its_codes(change: dict[str, Any], minted_by: str) -> None:
    """Who minted an event's codes: what pharmatrace:mintedBy says, else the GS1 company prefix
    when every EPC URI names the same one; nothing when the event does not tell."""
    document = break_second_event(change)
    event = epcis.import_document(document, party_of=party_of)[1]
    assert event.extra.get("minted_by", "") == minted_by


def break_second_event(change: dict[str, Any], remove: str = "") -> dict[str, Any]:
    """The round-trip document with its second event changed."""
    document = export(one_of_each()[:3])
    wire = document["epcisBody"]["eventList"][1]
    wire.update(change)
    wire.pop(remove, None)
    return document


@pytest.mark.parametrize(("document", "path", "reason"), [
    (break_second_event({"eventTime": "2024-02-30T10:00:00+08:00"}),
     "$.epcisBody.eventList[1].eventTime", "date-time"),
    (break_second_event({"eventTime": "yesterday"}),
     "$.epcisBody.eventList[1].eventTime", "date-time"),
    (break_second_event({}, remove="epcList"),
     "$.epcisBody.eventList[1]", "epcList"),
    (break_second_event({"bizStep": "teleporting"}),
     "$.epcisBody.eventList[1].bizStep", "not valid"),
    (break_second_event({"epcList": [f"https://id.gs1.org/01/{GTIN[:-1]}5/21/2017"]}),
     "$.epcisBody.eventList[1].epcList[0]", "check digit"),
    (break_second_event({"epcList": ["urn:epc:id:sgtin:0614141.10734.2017"]}),
     "$.epcisBody.eventList[1].epcList[0]", "digits"),
    (break_second_event({"epcList": ["urn:epc:id:sscc:0614141.123456789"]}),
     "$.epcisBody.eventList[1].epcList[0]", "17 digits"),
    (break_second_event({"epcList": ["urn:epc:id:grai:0614141.12345.400"]}),
     "$.epcisBody.eventList[1].epcList[0]", "sgtin"),
    (break_second_event({"pharmatrace:status": "free_sample"}),
     "$.epcisBody.eventList[1][\"pharmatrace:status\"]", "does not go with"),
    (break_second_event({"pharmatrace:colour": "red"}),
     "$.epcisBody.eventList[1][\"pharmatrace:colour\"]", "not a pharmatrace field"),
    (break_second_event({"pharmatrace:mintedBy": "M" * 201}),
     "$.epcisBody.eventList[1][\"pharmatrace:mintedBy\"]", "at most 200"),
    (break_second_event({"readPoint": {"id": "https://elsewhere.example/site/1"}}),
     "$.epcisBody.eventList[1].readPoint.id", "unknown party"),
    ({**export([]), "type": "EPCISQueryDocument"}, "$.type", "EPCISDocument"),
    ([], "$", "JSON object"),
])
def test_invalid_documents_name_the_json_path_of_the_problem(
    document: object, path: str, reason: str
) -> None:
    """A bad time, a missing epcList, an unknown bizStep or a bad EPC is refused where it is."""
    with pytest.raises(InvalidArgument) as raised:
        epcis.import_document(document, party_of=party_of)
    assert raised.value.field == path
    assert str(raised.value).startswith(path + ": ")
    assert reason in raised.value.message


def test_export_refuses_events_it_cannot_write() -> None:
    """A decommissioning without target or a malformed time-zone offset is named by its field."""
    with pytest.raises(InvalidArgument, match=r"events\[0\]\.target"):
        export([Event(EventKind.DECOMMISSION, (gs1("1"),), 0)])
    with pytest.raises(InvalidArgument, match=r"events\[1\]\.tz_offset"):
        export([Event(EventKind.RECEIVE, (gs1("1"),), 0),
                Event(EventKind.RECEIVE, (gs1("1"),), 0, tz_offset="+8")])
    with pytest.raises(InvalidArgument, match="id_form"):
        epcis.export_document([], id_form="sgtin", party_uri=party_uri)  # type: ignore[arg-type]


def test_sgln_uris_of_party_glns() -> None:
    """A party's GLN is written as an SGLN without extension and read back, check digit checked."""
    assert epcis.sgln_uri(GLN, 7) == "urn:epc:id:sgln:0614141.07346.0"
    assert epcis.gln_of("urn:epc:id:sgln:0614141.07346.1234") == GLN
    with pytest.raises(InvalidArgument, match="check digit"):
        epcis.sgln_uri(GLN[:-1] + "0", 7)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_packaged_schema_is_the_official_one(name: str) -> None:
    """The schemas shipped in the package are byte for byte GS1's official files."""
    packaged = epcis.schema_path().parent / name
    assert hashlib.sha256(packaged.read_bytes()).hexdigest() == OFFICIAL[name]


_SERIALS = st.text(alphabet=CSET82, min_size=1, max_size=20)
_CODES = st.lists(
    st.one_of(st.builds(gs1, _SERIALS),
              st.builds(nmpa, st.text(alphabet="0123456789", min_size=13, max_size=13))),
    min_size=1, max_size=5, unique=True)


@st.composite
def _events(draw: st.DrawFn) -> Event:
    kind, target = draw(st.sampled_from(KINDS))
    aggregation = kind in (EventKind.AGGREGATE, EventKind.DISAGGREGATE)
    codes = tuple(draw(_CODES))
    return Event(
        kind=kind,
        codes=codes,
        when_ms=draw(st.integers(0, 4_102_444_800_000)),
        tz_offset=draw(st.sampled_from(["+00:00", "+08:00", "-05:00", "+05:45", "+14:00",
                                        "-13:59"])),
        party_id=draw(st.from_regex(r"[A-Za-z0-9._-]{0,64}", fullmatch=True)),
        region=draw(st.sampled_from(["", "110105", "440305"])),
        parent=gs1("CASE-" + draw(_SERIALS)[:15], CASE_GTIN) if aggregation else None,
        lot=draw(_SERIALS) if kind is EventKind.COMMISSION else "",
        level=draw(st.integers(0, 4)),
        destination=draw(st.sampled_from(["", "dc-9"])) if kind is EventKind.SHIP else "",
        target=target,
        reason=draw(st.text(max_size=40)),
        event_id=draw(st.sampled_from(["", UUID_EVENT_ID])),
    )


@settings(max_examples=100, deadline=None)
@given(events=st.lists(_events(), max_size=4), id_form=st.sampled_from(ID_FORMS))
def test_any_events_round_trip(events: list[Event], id_form: epcis.IdForm) -> None:
    """Any events, with any serials, offsets and free text, come back equal from an export."""
    document = json.loads(json.dumps(export(events, id_form)))
    assert epcis.import_document(document, party_of=party_of) == with_ids(events, document)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["urn:epc:id:sgtin:0614141.107346.1", "shipping", "ADD", "location",
                       "2024-01-01T00:00:00Z", "urn:epc:id:sgln:0614141.07346.0"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["id", "type", "set", "cbvmda:lotNumber", "pharmatrace:level", "x:y"]),
        inner, max_size=3),
    max_leaves=6)


def _spots(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in a JSON value, by its path of keys and indexes."""
    children: list[tuple[str | int, Any]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    return [path] + [spot for key, child in children for spot in _spots(child, (*path, key))]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_damaged_document_is_refused_never_crashes(data: st.DataObject) -> None:
    """Any value replaced or removed anywhere gives events or InvalidArgument, nothing else."""
    document = export(one_of_each()[:6])
    *parents, last = data.draw(st.sampled_from(_spots(document)[1:]))
    container: Any = document
    for key in parents:
        container = container[key]
    if data.draw(st.booleans()):
        del container[last]
    else:
        container[last] = data.draw(_JSON)
    try:
        epcis.import_document(document, party_of=party_of)
    except InvalidArgument as refused:
        assert refused.field is not None and refused.field.startswith("$")
