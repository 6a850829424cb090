"""GS1 EPCIS 2.0 JSON-LD: ledger events out as an EPCISDocument, a partner's one in as events."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import jsonschema  # type: ignore[import-untyped]  # jsonschema ships no type information

from tracecore import clock, gs1, regions
from tracecore.codes import Code, Form, Scheme, parse, render
from tracecore.errors import InvalidArgument, ParseError
from tracecore.events import Event, EventKind
from tracecore.status import Status

CONTEXT_URL = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
"""The standard EPCIS 2.0 JSON-LD context."""

EXTENSION_PREFIX = "pharmatrace"
EXTENSION_NAMESPACE = "urn:pharmatrace:epcis:"
"""Namespace of the few fields EPCIS has no place for: status, reason, region and level."""

NMPA_URI_PREFIX = "urn:pharmatrace:nmpa:"
"""An NMPA 20-digit code has no GS1 EPC form; EPCIS carries it as this prefix + the 20 digits."""

IdForm = Literal["epc", "digital-link"]
"""How GS1 codes are written: SGTIN EPC URIs, or GS1 Digital Link URIs."""

_OBJECT, _AGGREGATION = "ObjectEvent", "AggregationEvent"
_CBV = "https://ref.gs1.org/cbv/"
_CANONICAL_HOST = "https://id.gs1.org"
_STANDARD_PREFIXES: Mapping[str, str] = {
    "epcis": "https://ref.gs1.org/epcis/",
    "cbv": _CBV,
    "cbvmda": "urn:epcglobal:cbv:mda:",
    "gs1": "https://gs1.org/voc/",
}
_LOT = "cbvmda:lotNumber"
_EXPIRY = "cbvmda:itemExpirationDate"
_EXTENSIONS = ("status", "reason", "region", "level")
_LEVELS = range(1, 5)  # unit, bundle, case, pallet
_MAX_REASON = 200  # jsonschema messages quote the instance; a whole event is no reason

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TZ_OFFSET = re.compile(r"[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00)")  # the schema's own pattern
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                        r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:"  # RFC 3986: a scheme, then only URI characters
                  r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_NMPA_URI = re.compile(re.escape(NMPA_URI_PREFIX) + r"([0-9]{7})([0-9]{13})")
_GLN_URI = re.compile(r"urn:epc:id:(sgln|pgln):([0-9]{6,12})\.([0-9]{0,6})(?:\.(\S+))?",
                      re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# CBV 1.x URN vocabulary, as the event hash rewrites it to CBV 2.0 web URIs.
_CBV_URNS = {"bizstep": "BizStep-", "disp": "Disp-", "btt": "BTT-", "sdt": "SDT-", "er": "ER-"}


@dataclass(frozen=True, slots=True)
class _Row:
    """One kind of pharmatrace event as EPCIS writes it."""

    kind: EventKind
    target: Status | None
    type: str
    action: str
    biz_step: str
    disposition: str
    status: Status | None
    """The packs' status after the event; ``pharmatrace:status`` when CBV alone reads otherwise."""
    at_party: bool = False
    """The packs stay at the event's party, so it is the bizLocation as well as the readPoint."""


# bizStep and disposition follow events.CBV. The action follows EPCIS: ADD creates (commissioning,
# packing), DELETE ends an identifier for good (an unused code voided, a pack destroyed, a
# container unpacked), OBSERVE leaves the pack in existence, which is why decommissioned statuses
# (reversible under EU FMD Art. 13) are OBSERVE even where CBV's step is "decommissioning".
# Where two rows share type, action, bizStep and disposition, the first is how an import reads
# them and the others carry pharmatrace:status.
_ROWS = (
    _Row(EventKind.COMMISSION, None, _OBJECT, "ADD", "commissioning", "active", Status.ACTIVE,
         at_party=True),
    _Row(EventKind.VOID, None, _OBJECT, "DELETE", "decommissioning", "inactive", Status.VOIDED),
    _Row(EventKind.AGGREGATE, None, _AGGREGATION, "ADD", "packing", "in_progress", None,
         at_party=True),
    _Row(EventKind.DISAGGREGATE, None, _AGGREGATION, "DELETE", "unpacking", "in_progress", None,
         at_party=True),
    _Row(EventKind.SHIP, None, _OBJECT, "OBSERVE", "shipping", "in_transit", None),
    _Row(EventKind.RECEIVE, None, _OBJECT, "OBSERVE", "receiving", "in_progress", None,
         at_party=True),
    _Row(EventKind.UNDO, None, _OBJECT, "OBSERVE", "receiving", "active", Status.ACTIVE,
         at_party=True),
    _Row(EventKind.DECOMMISSION, Status.DISPENSED, _OBJECT, "OBSERVE", "dispensing", "dispensed",
         Status.DISPENSED),
    _Row(EventKind.DECOMMISSION, Status.FREE_SAMPLE, _OBJECT, "OBSERVE", "dispensing", "dispensed",
         Status.FREE_SAMPLE),
    _Row(EventKind.DECOMMISSION, Status.EXPORTED, _OBJECT, "OBSERVE", "departing", "in_transit",
         Status.EXPORTED),
    # CBV 2.0 has no "sampled" disposition: a sample is out of sale.
    _Row(EventKind.DECOMMISSION, Status.SAMPLE, _OBJECT, "OBSERVE", "sampling",
         "non_sellable_other", Status.SAMPLE),
    _Row(EventKind.DECOMMISSION, Status.CHECKED_OUT, _OBJECT, "OBSERVE", "decommissioning",
         "inactive", Status.CHECKED_OUT),
    _Row(EventKind.DECOMMISSION, Status.LOCKED, _OBJECT, "OBSERVE", "holding",
         "non_sellable_other", Status.LOCKED, at_party=True),
    _Row(EventKind.WITHDRAW, None, _OBJECT, "OBSERVE", "holding", "non_sellable_other",
         Status.WITHDRAWN),
    _Row(EventKind.DESTROY, None, _OBJECT, "DELETE", "destroying", "destroyed", Status.DESTROYED),
    _Row(EventKind.REPORT_STOLEN, None, _OBJECT, "OBSERVE", "holding", "stolen", Status.STOLEN),
    _Row(EventKind.RECALL, None, _OBJECT, "OBSERVE", "holding", "recalled", Status.RECALLED),
)
_ROW_OF = {(row.kind, row.target): row for row in _ROWS}
_EXPORT_PREFIXES = {**_STANDARD_PREFIXES, EXTENSION_PREFIX: EXTENSION_NAMESPACE}


def schema_path() -> Path:
    """The official EPCIS 2.0 JSON schema this module validates with, packaged beside it."""
    return Path(__file__).with_name("epcis_schema") / "EPCIS-JSON-Schema.json"


def sgln_uri(gln: str, company_prefix_length: int) -> str:
    """The SGLN EPC URI of a party's GLN-13 (check digit validated), without extension."""
    if not 6 <= company_prefix_length <= 12:
        raise InvalidArgument("must be 6 to 12", field="company_prefix_length")
    if len(gln) != 13 or not gln.isdigit() or not gln.isascii():
        raise InvalidArgument("must be 13 digits", field="gln")
    if gs1.check_digit(gln[:12]) != int(gln[12]):
        raise InvalidArgument(f"GLN check digit is {gln[12]}, expected "
                              f"{gs1.check_digit(gln[:12])}", field="gln")
    return f"urn:epc:id:sgln:{gln[:company_prefix_length]}.{gln[company_prefix_length:12]}.0"


def gln_of(uri: str) -> str:
    """The GLN-13 of an SGLN EPC URI; an extension (a place within the site) is dropped."""
    match = _GLN_URI.fullmatch(uri)
    if match is None or match[1].lower() != "sgln" or match[4] is None:
        raise ParseError("not an SGLN EPC URI: expected urn:epc:id:sgln:{prefix}.{ref}.{ext}")
    return _gln(match[2], match[3])


def export_document(
    events: Iterable[Event],
    *,
    id_form: IdForm,
    party_uri: Callable[[str], str],
    company_prefix_length: int = 7,
    host: str = _CANONICAL_HOST,
    batches: Mapping[tuple[str, str], str] | Callable[[str, str], str | None] | None = None,
    sender: str | None = None,
    receiver: str | None = None,
    created_ms: int | None = None,
) -> dict[str, Any]:
    """The events as a GS1 EPCIS 2.0 EPCISDocument in JSON-LD, valid under the official schema.

    ``party_uri`` names a party for readPoint, bizLocation and a shipment's source and
    destination: its SGLN (see ``sgln_uri``) when it has a GLN, else a tenant-scoped URI;
    ``import_document`` takes its inverse. GS1 codes are SGTIN EPC URIs (with
    ``company_prefix_length``) or Digital Link URIs under ``host``; NMPA codes are
    ``urn:pharmatrace:nmpa:`` + 20 digits in either form. ``batches`` gives the expiry date
    (YYYY-MM-DD) of a (product, lot), for the ILMD of each commissioning. An event without an
    ``event_id`` gets its CBV 2.0 event hash ID.
    """
    if id_form not in ("epc", "digital-link"):
        raise InvalidArgument("must be 'epc' or 'digital-link'", field="id_form")
    if batches is None:
        expiry_of: Callable[[str, str], str | None] = _no_expiry
    elif isinstance(batches, Mapping):
        expiry_of = functools.partial(_expiry_in, batches)
    else:
        expiry_of = batches
    writer = _Writer(id_form, party_uri, company_prefix_length, host, expiry_of)
    document: dict[str, Any] = {
        "@context": [CONTEXT_URL, {EXTENSION_PREFIX: EXTENSION_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _utc_text(clock.now_ms() if created_ms is None else created_ms),
    }
    if sender is not None:
        document["sender"] = sender
    if receiver is not None:
        document["receiver"] = receiver
    document["epcisBody"] = {
        "eventList": [writer.event(event, f"events[{i}]") for i, event in enumerate(events)],
    }
    return document


def import_document(doc: object, *, party_of: Callable[[str], str]) -> list[Event]:
    """The events of a partner's EPCISDocument (parsed JSON), validated first against the schema.

    Any problem raises InvalidArgument whose field is the JSON path of the first one, such as
    ``$.epcisBody.eventList[3].eventTime``. ``party_of`` maps a readPoint, bizLocation or
    destination URI to a party id (raising InvalidArgument for one it does not know); the
    bizLocation names the party when present, the readPoint otherwise. ``event_id`` is the
    document's eventID or else the event hash ``export_document`` would give, so importing the
    same event twice gives the same id. A commissioning's ILMD expiry date, when present, is in
    ``extra["expiry"]`` for the caller to check against the batch.
    """
    if not isinstance(doc, dict):
        raise InvalidArgument("must be a JSON object", field="$")
    if doc.get("type") != "EPCISDocument":
        raise InvalidArgument("must be EPCISDocument", field="$.type")
    _check_schema(doc)
    prefixes = _prefixes(doc.get("@context"), _STANDARD_PREFIXES)
    reader = _Reader(party_of)
    return [reader.event(wire, f"$.epcisBody.eventList[{i}]",
                         _prefixes(wire.get("@context"), prefixes))
            for i, wire in enumerate(doc["epcisBody"]["eventList"])]


@dataclass(frozen=True, slots=True)
class _Writer:
    """Writes domain events as EPCIS events, with one document's choices of identifiers."""

    id_form: IdForm
    party_uri: Callable[[str], str]
    company_prefix_length: int
    host: str
    expiry_of: Callable[[str, str], str | None]

    def event(self, event: Event, field: str) -> dict[str, Any]:
        target = event.target if event.kind is EventKind.DECOMMISSION else None
        row = _ROW_OF.get((event.kind, target))
        if row is None:
            raise InvalidArgument("a decommissioning needs a decommissioned target status",
                                  field=f"{field}.target")
        if not _TZ_OFFSET.fullmatch(event.tz_offset):
            raise InvalidArgument("must be an offset from -13:59 to +14:00 such as +08:00",
                                  field=f"{field}.tz_offset")
        wire: dict[str, Any] = {
            "type": row.type,
            "eventTime": _local_text(event.when_ms, event.tz_offset),
            "eventTimeZoneOffset": event.tz_offset,
            "eventID": event.event_id,  # or, once the event is complete, its hash ID
        }
        children = self._epcs(event.codes, f"{field}.codes")
        if row.type == _AGGREGATION:
            if event.parent is None:
                raise InvalidArgument("an aggregation needs its container", field=f"{field}.parent")
            if not children and row.action == "ADD":
                raise InvalidArgument("packing needs at least one child", field=f"{field}.codes")
            wire["parentID"] = self._epc(event.parent)
            if children:
                wire["childEPCs"] = children
        else:
            wire["epcList"] = children
        wire |= {"action": row.action, "bizStep": row.biz_step, "disposition": row.disposition}
        party = self.party_uri(event.party_id) if event.party_id else ""
        if party:
            wire["readPoint"] = {"id": party}
            if row.at_party:
                wire["bizLocation"] = {"id": party}
        if event.kind is EventKind.SHIP and event.destination:
            if party:
                wire["sourceList"] = [{"type": "location", "source": party}]
            wire["destinationList"] = [
                {"type": "location", "destination": self.party_uri(event.destination)}]
        if event.kind is EventKind.COMMISSION and event.lot:
            wire["ilmd"] = self._ilmd(event, field)
        if _reading(row.type, row.action, row.biz_step, row.disposition, None) is not row \
                and row.status is not None:
            wire[f"{EXTENSION_PREFIX}:status"] = row.status.name.lower()
        if event.reason:
            wire[f"{EXTENSION_PREFIX}:reason"] = event.reason
        if event.region:
            wire[f"{EXTENSION_PREFIX}:region"] = event.region
        if event.level:
            wire[f"{EXTENSION_PREFIX}:level"] = event.level
        if not event.event_id:
            wire["eventID"] = _hash_id(wire, _EXPORT_PREFIXES)
        return wire

    def _epcs(self, codes: tuple[Code, ...], field: str) -> list[str]:
        if len(set(codes)) != len(codes):
            raise InvalidArgument("lists a code twice", field=field)
        return [self._epc(code) for code in codes]

    def _epc(self, code: Code) -> str:
        if code.scheme is Scheme.NMPA:
            return NMPA_URI_PREFIX + code.text()
        if self.id_form == "epc":
            return render(code, Form.EPC_URI, company_prefix_length=self.company_prefix_length)
        return render(code, Form.DIGITAL_LINK, host=self.host)

    def _ilmd(self, event: Event, field: str) -> dict[str, str]:
        ilmd = {_LOT: event.lot}
        # EPCIS has one ILMD per event: the codes' products must agree on the lot's expiry.
        expiries = {expiry for product in {code.product for code in event.codes}
                    if (expiry := self.expiry_of(product, event.lot)) is not None}
        if len(expiries) > 1:
            raise InvalidArgument(f"the codes' products give lot {event.lot} different expiry "
                                  "dates", field=f"{field}.lot")
        for expiry in expiries:
            if not _is_date(expiry):
                raise InvalidArgument(f"expiry of lot {event.lot} must be YYYY-MM-DD",
                                      field="batches")
            ilmd[_EXPIRY] = expiry
        return ilmd


@dataclass(frozen=True, slots=True)
class _Reader:
    """Reads EPCIS events of a validated document as domain events."""

    party_of: Callable[[str], str]

    def event(self, wire: dict[str, Any], path: str, prefixes: Mapping[str, str]) -> Event:
        if wire["type"] not in (_OBJECT, _AGGREGATION):
            raise InvalidArgument(f"{wire['type']} is not supported: pharmatrace records "
                                  "ObjectEvents and AggregationEvents", field=f"{path}.type")
        for unsupported in ("quantityList", "childQuantityList", "sensorElementList"):
            if wire.get(unsupported):
                raise InvalidArgument("is not supported: pharmatrace records serialised packs",
                                      field=f"{path}.{unsupported}")
        if "errorDeclaration" in wire:
            raise InvalidArgument("is not supported: send the corrective events instead",
                                  field=f"{path}.errorDeclaration")
        extensions = _extensions(wire, path, prefixes)
        row = self._row(wire, path, extensions.get("status"))
        if row.type == _AGGREGATION:
            if "parentID" not in wire:
                raise InvalidArgument("is required: the container", field=f"{path}.parentID")
            parent: Code | None = _code(wire["parentID"], f"{path}.parentID")
            codes = _codes(wire.get("childEPCs", []), f"{path}.childEPCs")
        else:
            if "epcList" not in wire:
                raise InvalidArgument("is required: pharmatrace records serialised packs",
                                      field=f"{path}.epcList")
            parent = None
            codes = _codes(wire["epcList"], f"{path}.epcList")
        lot, expiry = _ilmd(wire.get("ilmd", {}), f"{path}.ilmd", prefixes)
        place = "bizLocation" if "bizLocation" in wire else "readPoint"
        return Event(
            kind=row.kind,
            codes=codes,
            when_ms=_epoch_ms(wire["eventTime"]),
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
            event_id=wire.get("eventID") or _hash_id(wire, prefixes),
            extra={"expiry": expiry} if expiry else {},
        )

    @staticmethod
    def _row(wire: Mapping[str, Any], path: str, status: Status | None) -> _Row:
        if "bizStep" not in wire:
            raise InvalidArgument("is required to tell what happened", field=f"{path}.bizStep")
        biz_step = _term(wire["bizStep"], "BizStep-")
        disposition = _term(wire["disposition"], "Disp-") if "disposition" in wire else None
        row = _reading(wire["type"], wire["action"], biz_step, disposition, status)
        if row is not None:
            return row
        if status is not None and _reading(wire["type"], wire["action"], biz_step, disposition,
                                           None) is not None:
            raise InvalidArgument(f"status {status.name.lower()} does not go with bizStep "
                                  f"{biz_step}", field=_member(path, f"{EXTENSION_PREFIX}:status"))
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
                if _term(entry["type"], "SDT-") == wanted:
                    return self._party(entry["destination"],
                                       f"{path}.destinationList[{i}].destination")
        return ""


def _check_schema(doc: object) -> None:
    errors = _validator().iter_errors(doc)
    first = next(errors, None)
    if first is None:
        return
    # The errors of one spot come together: an anyOf over an event, then what failed inside it.
    # The deepest of them says most precisely what is wrong.
    best, prefix = first, tuple(first.absolute_path)
    for error in errors:
        where = tuple(error.absolute_path)
        if where[:len(prefix)] != prefix:
            break
        if len(where) > len(best.absolute_path):
            best = error
    while best.context and isinstance(best.instance, dict | list):
        best = max(best.context, key=lambda error: len(error.absolute_path))
    reason = best.message
    if len(reason) > _MAX_REASON:
        reason = reason[:_MAX_REASON - 1] + "…"
    raise InvalidArgument(reason, field=_json_path(best.absolute_path))


@functools.cache
def _validator() -> Any:
    # jsonschema skips any format whose optional checker package is missing; these two are
    # what the EPCIS schema uses, checked here so that validation is the same everywhere.
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time")(_is_date_time)
    formats.checks("uri")(_is_uri)
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema, format_checker=formats)


def _is_date_time(value: object) -> bool:
    """Whether a string is an RFC 3339 date-time whose UTC instant, to the ms, a datetime holds."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.fullmatch(value):
        return False
    try:
        _utc_text(_epoch_ms(value))
    except (ValueError, OverflowError):
        return False
    return True


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or _URI.fullmatch(value) is not None


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _json_path(parts: Iterable[str | int]) -> str:
    path = "$"
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else _member(path, part)
    return path


def _member(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _no_expiry(product: str, lot: str) -> None:
    return None


def _expiry_in(batches: Mapping[tuple[str, str], str], product: str, lot: str) -> str | None:
    return batches.get((product, lot))


def _reading(type_: str, action: str, biz_step: str, disposition: str | None,
             status: Status | None) -> _Row | None:
    """The first row that writes an event this way, with this status if one is given.

    A partner may leave the disposition out; the table lists the most cautious reading of a
    bizStep first (receiving before undo, locked before withdrawn).
    """
    for row in _ROWS:
        if (row.type, row.action, row.biz_step) == (type_, action, biz_step) \
                and disposition in (None, row.disposition) and status in (None, row.status):
            return row
    return None


def _utc_text(ms: int) -> str:
    utc = _EPOCH + dt.timedelta(milliseconds=ms)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _local_text(ms: int, tz_offset: str) -> str:
    sign = -1 if tz_offset[0] == "-" else 1
    offset = dt.timedelta(hours=int(tz_offset[1:3]), minutes=int(tz_offset[4:6])) * sign
    local = _EPOCH + dt.timedelta(milliseconds=ms) + offset
    return f"{local:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}{tz_offset}"


def _epoch_ms(text: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 time, rounded half up as the event hash does."""
    since = dt.datetime.fromisoformat(text.upper()) - _EPOCH
    return (since.days * 86_400 + since.seconds) * 1000 + (since.microseconds + 500) // 1000


def _term(value: str, kind: str) -> str:
    """The bare CBV term of a bare, ``cbv:``-prefixed or web URI vocabulary value."""
    for prefix in (_CBV + kind, "cbv:" + kind):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def _prefixes(context: object, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the JSON-LD prefixes a @context defines inline."""
    prefixes = dict(base)
    for entry in context if isinstance(context, list) else [context]:
        if isinstance(entry, dict):
            for term, value in entry.items():
                iri = value.get("@id") if isinstance(value, dict) else value
                if isinstance(iri, str) and not term.startswith("@"):
                    prefixes[term] = iri
    return prefixes


def _expand(name: str, prefixes: Mapping[str, str]) -> str:
    prefix, colon, local = name.partition(":")
    return prefixes[prefix] + local if colon and prefix in prefixes else name


def _extensions(wire: Mapping[str, Any], path: str,
                prefixes: Mapping[str, str]) -> dict[str, Any]:
    """pharmatrace's extension fields of an event, by local name, checked."""
    found: dict[str, Any] = {}
    for key, value in wire.items():
        iri = _expand(key, prefixes)
        if not iri.startswith(EXTENSION_NAMESPACE):
            continue
        name, field = iri[len(EXTENSION_NAMESPACE):], _member(path, key)
        if name == "status":
            status = Status.__members__.get(value.upper()) if isinstance(value, str) else None
            if status is None:
                raise InvalidArgument("must be a pharmatrace status such as free_sample",
                                      field=field)
            found[name] = status
        elif name in ("reason", "region"):
            if not isinstance(value, str):
                raise InvalidArgument("must be a string", field=field)
            found[name] = regions.parse_region(value, field=field) if name == "region" else value
        elif name == "level":
            if type(value) is not int or value not in _LEVELS:
                raise InvalidArgument("must be a packaging level from 1 (unit) to 4 (pallet)",
                                      field=field)
            found[name] = value
        else:
            raise InvalidArgument("is not a pharmatrace field: those are "
                                  f"{', '.join(_EXTENSIONS)}", field=field)
    return found


def _ilmd(ilmd: Mapping[str, Any], path: str, prefixes: Mapping[str, str]) -> tuple[str, str]:
    """(lot, expiry date) of an ILMD, each "" when absent."""
    found = {"lot": "", "expiry": ""}
    for key, value in ilmd.items():
        iri = _expand(key, prefixes)
        if iri == _expand(_LOT, _STANDARD_PREFIXES):
            try:
                gs1.check_value("10", value if isinstance(value, str) else "")
            except ParseError as exc:
                raise InvalidArgument(exc.reason, field=_member(path, key)) from None
            found["lot"] = value
        elif iri == _expand(_EXPIRY, _STANDARD_PREFIXES):
            if not isinstance(value, str) or not _is_date(value):
                raise InvalidArgument("must be a date YYYY-MM-DD", field=_member(path, key))
            found["expiry"] = value
    return found["lot"], found["expiry"]


def _codes(uris: list[str], path: str) -> tuple[Code, ...]:
    codes = tuple(_code(uri, f"{path}[{i}]") for i, uri in enumerate(uris))
    if len(set(codes)) != len(codes):
        raise InvalidArgument("lists a code twice", field=path)
    return codes


def _code(uri: str, path: str) -> Code:
    """The code of an SGTIN EPC URI, a GS1 Digital Link URI or an NMPA URI."""
    nmpa = _NMPA_URI.fullmatch(uri)
    if nmpa is not None:
        return Code(Scheme.NMPA, nmpa[1], nmpa[2])
    if uri[:4].lower() not in ("urn:", "http"):
        raise InvalidArgument("must be an SGTIN EPC URI, a GS1 Digital Link URI or "
                              f"{NMPA_URI_PREFIX} and 20 digits", field=path)
    try:
        return parse(uri).code
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field=path) from None


def _gln(prefix: str, reference: str) -> str:
    if len(prefix) + len(reference) != 12:
        raise ParseError("GLN EPC URI: company prefix and location reference must have 12 digits")
    body = prefix + reference
    return body + str(gs1.check_digit(body))


_HASH_ORDER = (
    "eventTime", "eventTimeZoneOffset", "epcList", "parentID", "inputEPCList", "childEPCs",
    "outputEPCList", "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList",
    "destinationList", "ilmd",
)
_NOT_HASHED = frozenset({"@context", "type", "eventID", "recordTime"})
_EPC_LISTS = frozenset({"epcList", "inputEPCList", "childEPCs", "outputEPCList"})
_TYPED_LISTS = {
    "bizTransactionList": ("bizTransaction", "BTT-"),
    "sourceList": ("source", "SDT-"),
    "destinationList": ("destination", "SDT-"),
}


def _hash_id(wire: Mapping[str, Any], prefixes: Mapping[str, str]) -> str:
    """The CBV 2.0 event hash ID of an EPCIS event: ``ni:///sha-256;{hex}?ver=CBV2.0``.

    As GS1's reference "EPCIS Event Hash Generator" computes it (a test checks one of its
    published hashes): SHA-256 of a pre-hash string of the event's fields in the canonical order,
    each "name=value", a list as its name then its sorted entries; times in UTC to the
    millisecond with Z; CBV terms as https://ref.gs1.org/cbv/ URIs; SGTIN EPC URIs and Digital
    Links as canonical Digital Links on id.gs1.org (SGLN and PGLN as /414/ and /417/); CURIEs
    expanded; ILMD and extension fields as "{namespace}local=value", sorted; eventID and
    recordTime left out. Quantity lists and sensor data have no canonical form here:
    ``import_document`` refuses them before it hashes an event.
    """
    digest = hashlib.sha256(_prehash(wire, prefixes).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


def _prehash(wire: Mapping[str, Any], prefixes: Mapping[str, str]) -> str:
    parts = [f"eventType={wire['type']}"]
    for key in _HASH_ORDER:
        if key in wire:
            parts.append(_hashed_field(key, wire[key], prefixes))
    parts.extend(sorted(text for key, value in wire.items()
                        if key not in _NOT_HASHED and key not in _HASH_ORDER
                        for text in _hashed_extension(key, value, prefixes)))
    return "".join(parts)


def _hashed_field(key: str, value: Any, prefixes: Mapping[str, str]) -> str:
    if key == "eventTime":
        return f"eventTime={_utc_text(_epoch_ms(value))}"
    if key in _EPC_LISTS:
        return _hashed_list(key, (f"epc={_canonical(epc, prefixes)}" for epc in value))
    if key == "bizStep":
        return f"bizStep={_vocabulary(value, 'BizStep-', prefixes)}"
    if key == "disposition":
        return f"disposition={_vocabulary(value, 'Disp-', prefixes)}"
    if key == "persistentDisposition":
        return _hashed_list(key, (f"{which}={_vocabulary(term, 'Disp-', prefixes)}"
                                  for which in ("set", "unset") for term in value.get(which, ())))
    if key in ("readPoint", "bizLocation"):
        rest = sorted(text for name, item in value.items() if name != "id"
                      for text in _hashed_extension(name, item, prefixes))
        return f"{key}id={_canonical(value['id'], prefixes)}" + "".join(rest)
    if key in _TYPED_LISTS:
        name, kind = _TYPED_LISTS[key]
        return _hashed_list(key, (
            f"{name}={_canonical(entry[name], prefixes)}"
            + (f"type={_vocabulary(entry['type'], kind, prefixes)}" if "type" in entry else "")
            for entry in value))
    if key == "ilmd":
        return _hashed_list(key, (text for name, item in value.items()
                                  for text in _hashed_extension(name, item, prefixes)))
    return f"{key}={_scalar(value, prefixes)}"


def _hashed_list(key: str, entries: Iterable[str]) -> str:
    texts = sorted(entries)
    return key + "".join(texts) if texts else ""


def _hashed_extension(key: str, value: Any, prefixes: Mapping[str, str]) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _hashed_extension(key, item, prefixes)
        return
    iri = _expand(key, prefixes)
    # As XML names it: the namespace keeps a trailing "/" or "#" but not the ":" that only
    # JSON-LD needs to join a URN namespace to the local name.
    cut = max(iri.rfind("/"), iri.rfind("#"), iri.rfind(":"))
    namespace, local = iri[:cut + 1], iri[cut + 1:]
    name = f"{{{namespace.removesuffix(':')}}}{local}" if cut >= 0 else key
    if isinstance(value, dict):
        yield name + "".join(sorted(text for child, item in value.items() if child != "@context"
                                    for text in _hashed_extension(child, item, prefixes)))
    elif value is not None:
        text = _scalar(value, prefixes)
        yield f"{name}={text}" if text else name


def _scalar(value: Any, prefixes: Mapping[str, str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return _canonical(str(value), prefixes)


def _vocabulary(value: str, kind: str, prefixes: Mapping[str, str]) -> str:
    value = value.strip()
    if ":" not in value:
        return _CBV + kind + value
    return _canonical(value, prefixes)


def _canonical(value: str, prefixes: Mapping[str, str]) -> str:
    """A value as the event hash writes it: EPCs as canonical Digital Links, CURIEs expanded."""
    value = value.strip()
    lowered = value[:17].lower()
    if lowered.startswith(("urn:epc:id:sgtin:", "http://", "https://")):
        try:
            code = parse(value).code
        except ParseError:
            pass
        else:
            return render(code, Form.DIGITAL_LINK, host=_CANONICAL_HOST)
    if lowered.startswith(("urn:epc:id:sgln:", "urn:epc:id:pgln:")):
        match = _GLN_URI.fullmatch(value)
        if match is not None:
            try:
                gln = _gln(match[2], match[3])
            except ParseError:
                return value
            if match[1].lower() == "pgln":
                return f"{_CANONICAL_HOST}/417/{gln}"
            extension = unquote(match[4] or "0")
            return f"{_CANONICAL_HOST}/414/{gln}" + (
                f"/254/{quote(extension, safe='')}" if extension != "0" else "")
    if lowered.startswith("urn:epcglobal:cbv:"):
        vocabulary, _, term = value[len("urn:epcglobal:cbv:"):].partition(":")
        if vocabulary.lower() in _CBV_URNS:
            return _CBV + _CBV_URNS[vocabulary.lower()] + term
    return _expand(value, prefixes)
