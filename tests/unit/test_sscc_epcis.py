"""SSCCs in EPCIS 2.0 documents: a logistic unit as parentID and in epcList, written in either id
form, valid under the shipped schema, and read back to the same events."""

from __future__ import annotations

import json

import pytest

from tracecore import epcis, sscc
from tracecore.codes import Code, Scheme
from tracecore.epcis.event_hash import hash_id
from tracecore.epcis.schema import check_schema
from tracecore.events import Event, EventKind

PARTY = "https://pharmatrace.example/acme/party/"
PREFIX = "0614141"
PALLET = Code(Scheme.SSCC, "", sscc.mint(PREFIX, 1, 42))
CASE = Code(Scheme.SSCC, "", sscc.mint(PREFIX, 1, 41))
PACK = Code(Scheme.GS1, "10614141073464", "2017")
ID_FORMS: list[epcis.IdForm] = ["epc", "digital-link"]


def _party_of(uri: str) -> str:
    return uri.removeprefix(PARTY)


def _events() -> list[Event]:
    return [
        Event(EventKind.AGGREGATE, (CASE, PACK), 1_700_000_000_000, "+08:00", party_id="plant",
              parent=PALLET),
        Event(EventKind.SHIP, (PALLET,), 1_700_000_100_000, "+08:00", party_id="plant",
              destination="dc-9"),
    ]


def _export(id_form: epcis.IdForm) -> dict[str, object]:
    document = epcis.export_document(_events(), id_form=id_form, party_uri=lambda p: PARTY + p,
                                     company_prefix_length=len(PREFIX), created_ms=0)
    return json.loads(json.dumps(document))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("id_form", "written"), [
    ("epc", "urn:epc:id:sscc:0614141.1000000042"),
    ("digital-link", f"https://id.gs1.org/00/{PALLET.serial}"),
])
def test_an_sscc_parent_and_an_shipped_sscc_are_written_in_the_chosen_id_form(
    id_form: epcis.IdForm, written: str,
) -> None:
    """The pallet is the aggregation's parentID and the shipment's EPC, as an SSCC URI."""
    events = _export(id_form)["epcisBody"]["eventList"]  # type: ignore[index]
    assert events[0]["parentID"] == written
    assert events[1]["epcList"] == [written]


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_documents_with_ssccs_pass_the_schema_and_read_back_to_the_same_events(
    id_form: epcis.IdForm,
) -> None:
    """Valid under the shipped EPCIS 2.0 schema, and the import gives the events back."""
    document = _export(id_form)
    check_schema(document)
    read = epcis.import_document(document, party_of=_party_of)
    assert [(e.kind, e.codes, e.parent) for e in read] == [
        (e.kind, e.codes, e.parent) for e in _events()]


def test_an_sscc_hashes_alike_in_either_id_form() -> None:
    """The event hash reads an SSCC EPC URI and its Digital Link as one identifier."""
    prefixes: dict[str, str] = {}
    by_form = [_export(form)["epcisBody"]["eventList"][0]  # type: ignore[index]
               for form in ID_FORMS]
    for wire in by_form:
        del wire["eventID"]
    assert hash_id(by_form[0], prefixes) == hash_id(by_form[1], prefixes)


def test_an_sscc_epc_uri_splits_at_its_own_prefix_where_the_ledger_knows_it() -> None:
    """An SSCC allocated under a 9-digit prefix is written with that split, other EPCs with
    the document's company prefix length."""
    unit = Code(Scheme.SSCC, "", sscc.mint("061414112", 1, 7))
    document = epcis.export_document(
        [Event(EventKind.AGGREGATE, (PACK,), 1_700_000_000_000, "+08:00", parent=unit)],
        id_form="epc", party_uri=lambda p: PARTY + p, company_prefix_length=len(PREFIX),
        created_ms=0, sscc_prefix_length=lambda code: 9 if code == unit.serial else None)
    (wire,) = document["epcisBody"]["eventList"]
    assert wire["parentID"] == sscc.render_epc_uri(unit.serial, 9)
    assert wire["childEPCs"] == ["urn:epc:id:sgtin:0614141.107346.2017"]
