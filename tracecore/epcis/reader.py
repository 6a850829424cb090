"""A partner's GS1 EPCIS 2.0 EPCISDocument in as ledger events."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tracecore import gs1, regions
from tracecore.codes import Code
from tracecore.epcis.event_hash import hash_id
from tracecore.epcis.identifiers import code_of_uri, codes_of_uris, transaction_number
from tracecore.epcis.schema import check_schema, conforms
from tracecore.epcis.vocabulary import (
    AGGREGATION,
    EXPIRY,
    EXTENSION_NAMESPACE,
    EXTENSION_PREFIX,
    EXTENSIONS,
    LEVELS,
    LOT,
    OBJECT,
    STANDARD_PREFIXES,
    Row,
    cbv_term,
    context_prefixes,
    epoch_ms,
    expand,
    inline_context,
    is_date,
    json_member,
    reading,
)
from tracecore.errors import InvalidArgument, ParseError
from tracecore.events import Document, Event, EventKind
from tracecore.status import Status


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event of a document left out, and why: the JSON path of the problem and a message."""

    index: int
    field: str
    reason: str


def import_document(doc: object, *, party_of: Callable[[str], str]) -> list[Event]:
    """The events of a partner's EPCISDocument (parsed JSON), validated first against the schema.

    Any problem raises InvalidArgument whose field is the JSON path of the first one, such as
    ``$.epcisBody.eventList[3].eventTime``. See ``read_document`` for how events are read.
    """
    events, refusals = read_document(doc, party_of=party_of)
    for refusal in refusals[:1]:
        raise InvalidArgument(refusal.reason, field=refusal.field)
    return [event for _, event in events]


def read_document(doc: object, *, party_of: Callable[[str], str],
                  refused: Mapping[int, tuple[str, str]] | None = None,
                  custodian: str = "", credential: str = ""
                  ) -> tuple[list[tuple[int, Event]], list[Refusal]]:
    """Each event of a partner's EPCISDocument read on its own: (index, event) for those that
    pass, a Refusal for the others. A problem of the document itself (not an EPCISDocument, a
    bad header) raises InvalidArgument.

    Every event keeps its JSON object as received (``Event.epcis``) and the document's inline
    @context entries, so that an export gives it back unchanged. An ObjectEvent or
    AggregationEvent of serialised packs whose type, action, bizStep and disposition pharmatrace
    models changes the packs; every other event (transactions, transformations, associations,
    class-level quantities, sensor readings, other business steps, error declarations) is an
    ``EventKind.RECORD`` that changes no pack. ``party_of`` maps a readPoint, bizLocation or
    destination URI to a party id (raising InvalidArgument for one it does not know); the
    bizLocation names the party when present, the readPoint otherwise. ``refused`` holds
    (JSON path, reason) of events already refused, by index (by the XSD of an XML document).
    ``event_id`` is the eventID or else the event hash ``export_document`` would give; an
    error declaration, which repeats the eventID of the event it declares erroneous, is kept
    under that id + ``#errorDeclaration``. A commissioning's ILMD expiry date, when present, is in
    ``extra["expiry"]`` for the caller to check against the batch. Every event carries
    ``custodian`` and ``credential``: the sender's, whose custody it is held to.
    """
    if not isinstance(doc, dict):
        raise InvalidArgument("must be a JSON object", field="$")
    if doc.get("type") != "EPCISDocument":
        raise InvalidArgument("must be EPCISDocument", field="$.type")
    body = doc.get("epcisBody")
    wires = body.get("eventList") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(wires, list):
        check_schema(doc)
        raise InvalidArgument("must be a list of events", field="$.epcisBody.eventList")
    # A document that conforms whole (the common case) is checked once; only one that does not
    # is checked event by event, to refuse each event that does not conform on its own.
    whole = not refused and conforms(doc)
    if not whole:
        check_schema({**doc, "epcisBody": {**body, "eventList": []}})
    prefixes = context_prefixes(doc.get("@context"), STANDARD_PREFIXES)
    context = json.dumps(inline_context(doc.get("@context")), ensure_ascii=False,
                         separators=(",", ":"))
    reader = _Reader(party_of, context, custodian, credential)
    events: list[tuple[int, Event]] = []
    refusals: list[Refusal] = []
    for i, wire in enumerate(wires):
        path = f"{_EVENTS}[{i}]"
        if refused and i in refused:
            refusals.append(Refusal(i, *refused[i]))
            continue
        try:
            try:
                if not whole:
                    check_schema({**doc, "epcisBody": {**body, "eventList": [wire]}})
            except InvalidArgument as exc:
                raise InvalidArgument(exc.message, field=path + (exc.field or "").removeprefix(
                    f"{_EVENTS}[0]")) from None
            event = reader.event(wire, path, context_prefixes(wire.get("@context"), prefixes))
        except InvalidArgument as exc:
            refusals.append(Refusal(i, exc.field or path, exc.message))
            continue
        events.append((i, event))
    return events, refusals


_EVENTS = "$.epcisBody.eventList"

_SERIALISED = {OBJECT: "epcList", AGGREGATION: "childEPCs"}

_NAMED_CODES = ("epcList", "childEPCs", "inputEPCList", "outputEPCList")


@dataclass(frozen=True, slots=True)
class _Reader:
    """Reads EPCIS events of a validated document as domain events, each with its JSON object
    as received, the document's inline @context entries and the sender it is held to."""

    party_of: Callable[[str], str]
    context: str
    custodian: str
    credential: str

    @staticmethod
    def _as_received(wire: Mapping[str, Any]) -> str:
        return json.dumps(wire, ensure_ascii=False, separators=(",", ":"))

    def event(self, wire: dict[str, Any], path: str, prefixes: Mapping[str, str]) -> Event:
        extensions = _extensions(wire, path, prefixes)
        event_id = wire.get("eventID") or hash_id(wire, prefixes)
        if "errorDeclaration" in wire:
            return self._record(wire, path, f"{event_id}#errorDeclaration")
        row = self._modelled(wire, path, extensions.get("status"))
        if row is None:
            return self._record(wire, path, event_id)
        if row.type == AGGREGATION:
            if "parentID" not in wire:
                raise InvalidArgument("is required: the container", field=f"{path}.parentID")
            parent: Code | None = code_of_uri(wire["parentID"], f"{path}.parentID")
            codes = codes_of_uris(wire.get("childEPCs", []), f"{path}.childEPCs")
        else:
            parent = None
            codes = codes_of_uris(wire["epcList"], f"{path}.epcList")
        lot, expiry = _ilmd(wire.get("ilmd", {}), f"{path}.ilmd", prefixes)
        place = "bizLocation" if "bizLocation" in wire else "readPoint"
        return Event(
            kind=row.kind,
            codes=codes,
            when_ms=epoch_ms(wire["eventTime"]),
            tz_offset=wire["eventTimeZoneOffset"],
            party_id=self._party(wire[place]["id"], f"{path}.{place}.id") if place in wire else "",
            region=extensions.get("region", ""),
            parent=parent,
            lot=lot,
            level=extensions.get("level", 0),
            destination=self._destination(wire.get("destinationList", []), path)
            if row.kind is EventKind.SHIP else "",
            target=row.target,
            reason=extensions.get("reason", ""),
            event_id=event_id,
            extra={name: value for name, value in (
                ("expiry", expiry),
                ("minted_by", extensions.get("mintedBy") or _company_prefix(
                    wire.get("epcList", []) + wire.get("childEPCs", [])))) if value},
            documents=tuple(Document(cbv_term(d["type"], "BTT-") if "type" in d else "",
                                     transaction_number(d["bizTransaction"]))
                            for d in wire.get("bizTransactionList", [])),
            epcis=self._as_received(wire),
            epcis_context=self.context,
            custodian=self.custodian,
            credential=self.credential,
        )

    def _modelled(self, wire: Mapping[str, Any], path: str, status: Status | None
                  ) -> Row | None:
        """The row of an event that changes packs; None for one kept as a record."""
        listed = _SERIALISED.get(wire["type"])
        if listed is None or "bizStep" not in wire:
            return None
        if wire["type"] == OBJECT and not wire.get(listed):
            return None  # class level only: quantities of a product or lot, no packs
        if wire["type"] == AGGREGATION and not wire.get(listed) and wire["action"] != "DELETE":
            return None
        biz_step = cbv_term(wire["bizStep"], "BizStep-")
        if reading(wire["type"], wire["action"], biz_step, None, None) is None:
            if status is not None:
                raise InvalidArgument(f"status {status.name.lower()} does not go with bizStep "
                                      f"{biz_step}",
                                      field=json_member(path, f"{EXTENSION_PREFIX}:status"))
            return None  # a business step pharmatrace does not model: inspecting, storing, ...
        return self._row(wire, path, status)

    def _record(self, wire: Mapping[str, Any], path: str, event_id: str) -> Event:
        """An event kept as received, indexed under the packs it names that parse."""
        codes: dict[Code, None] = {}
        for name in _NAMED_CODES:
            for uri in wire.get(name, []):
                code = _maybe_code(uri)
                if code is not None:
                    codes[code] = None
        parent = _maybe_code(wire["parentID"]) if "parentID" in wire else None
        party = ""
        for place in ("bizLocation", "readPoint"):
            if place in wire and not party:
                try:
                    party = self.party_of(wire[place]["id"])
                except (InvalidArgument, ParseError):
                    party = ""  # a record changes nothing: an unknown place is no reason to refuse
        return Event(kind=EventKind.RECORD, codes=tuple(codes), when_ms=epoch_ms(wire["eventTime"]),
                     tz_offset=wire["eventTimeZoneOffset"], party_id=party, parent=parent,
                     event_id=event_id, epcis=self._as_received(wire), epcis_context=self.context,
                     custodian=self.custodian, credential=self.credential)

    @staticmethod
    def _row(wire: Mapping[str, Any], path: str, status: Status | None) -> Row:
        if "bizStep" not in wire:
            raise InvalidArgument("is required to tell what happened", field=f"{path}.bizStep")
        biz_step = cbv_term(wire["bizStep"], "BizStep-")
        disposition = cbv_term(wire["disposition"], "Disp-") if "disposition" in wire else None
        row = reading(wire["type"], wire["action"], biz_step, disposition, status)
        if row is not None:
            return row
        if status is not None and reading(wire["type"], wire["action"], biz_step, disposition,
                                           None) is not None:
            raise InvalidArgument(
                f"status {status.name.lower()} does not go with bizStep {biz_step}",
                field=json_member(path, f"{EXTENSION_PREFIX}:status"))
        written = f" and disposition {disposition!r}" if disposition is not None else ""
        raise InvalidArgument(f"{wire['type']} {wire['action']} with bizStep {biz_step!r}"
                              f"{written} is not an event pharmatrace records",
                              field=f"{path}.bizStep")

    def _party(self, uri: str, path: str) -> str:
        try:
            return self.party_of(uri)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field=path) from exc

    def _destination(self, destinations: list[dict[str, str]], path: str) -> str:
        # Parties are sites: a location says best where packs go, an owner least.
        for wanted in ("location", "possessing_party", "owning_party"):
            for i, entry in enumerate(destinations):
                if cbv_term(entry["type"], "SDT-") == wanted:
                    return self._party(entry["destination"],
                                       f"{path}.destinationList[{i}].destination")
        return ""


#: EPC URIs whose first dotted part is the GS1 company prefix.
_EPC_URIS = ("urn:epc:id:sgtin:", "urn:epc:id:sscc:")
#: Longest ``pharmatrace:mintedBy`` kept (as ``codes register --minted-by``).
MAX_MINTED_BY = 200


def _maybe_code(uri: object) -> Code | None:
    """The pack or logistic unit (SSCC) a URI names, or None for anything else (a GRAI, a
    foreign scheme)."""
    if not isinstance(uri, str):
        return None
    try:
        return code_of_uri(uri, "")
    except InvalidArgument:
        return None


def _company_prefix(uris: list[Any]) -> str:
    """The GS1 company prefix of the SGTIN and SSCC EPC URIs an event names, when they all
    name one (the URI form says where the prefix ends; a Digital Link does not): the brand
    owner under whose prefix the codes were minted. "" otherwise."""
    prefixes = set()
    for uri in uris:
        if not isinstance(uri, str) or not uri.startswith(_EPC_URIS):
            return ""
        prefixes.add(uri.split(":", 4)[4].split(".", 1)[0])
    return prefixes.pop() if len(prefixes) == 1 else ""


def _extensions(wire: Mapping[str, Any], path: str,
                prefixes: Mapping[str, str]) -> dict[str, Any]:
    """pharmatrace's extension fields of an event, by local name, checked."""
    found: dict[str, Any] = {}
    for key, value in wire.items():
        iri = expand(key, prefixes)
        if not iri.startswith(EXTENSION_NAMESPACE):
            continue
        name, field = iri[len(EXTENSION_NAMESPACE):], json_member(path, key)
        if name == "status":
            status = Status.__members__.get(value.upper()) if isinstance(value, str) else None
            if status is None:
                raise InvalidArgument("must be a pharmatrace status such as free_sample",
                                      field=field)
            found[name] = status
        elif name in ("reason", "region", "replaces", "mintedBy"):
            if not isinstance(value, str) or (name == "mintedBy" and len(value) > MAX_MINTED_BY):
                raise InvalidArgument("must be a string" + (
                    f" of at most {MAX_MINTED_BY} characters" if name == "mintedBy" else ""),
                    field=field)
            found[name] = regions.parse_region(value, field=field) if name == "region" else value
        elif name == "level":
            if type(value) is not int or value not in LEVELS:
                raise InvalidArgument("must be a packaging level from 1 (unit) to 4 (pallet)",
                                      field=field)
            found[name] = value
        else:
            raise InvalidArgument("is not a pharmatrace field: those are "
                                  f"{', '.join(EXTENSIONS)}", field=field)
    return found


def _ilmd(ilmd: Mapping[str, Any], path: str, prefixes: Mapping[str, str]) -> tuple[str, str]:
    """(lot, expiry date) of an ILMD, each "" when absent."""
    found = {"lot": "", "expiry": ""}
    for key, value in ilmd.items():
        iri = expand(key, prefixes)
        if iri == expand(LOT, STANDARD_PREFIXES):
            try:
                gs1.check_value("10", value if isinstance(value, str) else "")
            except ParseError as exc:
                raise InvalidArgument(exc.reason, field=json_member(path, key)) from None
            found["lot"] = value
        elif iri == expand(EXPIRY, STANDARD_PREFIXES):
            if not isinstance(value, str) or not is_date(value):
                raise InvalidArgument("must be a date YYYY-MM-DD", field=json_member(path, key))
            found["expiry"] = value
    return found["lot"], found["expiry"]
