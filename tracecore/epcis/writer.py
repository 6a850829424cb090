"""Ledger events out as a GS1 EPCIS 2.0 EPCISDocument (JSON-LD)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from tracecore import clock
from tracecore.codes import Code, Form, Scheme, render
from tracecore.epcis.event_hash import hash_id
from tracecore.epcis.identifiers import event_uri, transaction_uri
from tracecore.epcis.vocabulary import (
    AGGREGATION,
    CANONICAL_HOST,
    CONTEXT_URL,
    EXPIRY,
    EXPORT_PREFIXES,
    EXTENSION_NAMESPACE,
    EXTENSION_PREFIX,
    LOT,
    NMPA_CLASS_PREFIX,
    NMPA_URI_PREFIX,
    ROW_OF,
    TZ_OFFSET,
    IdForm,
    is_date,
    local_text,
    reading,
    utc_text,
)
from tracecore.errors import InvalidArgument
from tracecore.events import Event, EventKind


def export_document(
    events: Iterable[Event],
    *,
    id_form: IdForm,
    party_uri: Callable[[str], str],
    company_prefix_length: int = 7,
    host: str = CANONICAL_HOST,
    batches: Mapping[tuple[str, str], str] | Callable[[str, str], str | None] | None = None,
    sender: str | None = None,
    receiver: str | None = None,
    created_ms: int | None = None,
    sscc_prefix_length: Callable[[str], int | None] | None = None,
    tenant: str = "",
) -> dict[str, Any]:
    """The events as a GS1 EPCIS 2.0 EPCISDocument in JSON-LD, valid under the official schema.

    ``party_uri`` names a party for readPoint, bizLocation and a shipment's source and
    destination: its SGLN (see ``sgln_uri``) when it has a GLN, else a tenant-scoped URI;
    ``import_document`` takes its inverse. GS1 codes are SGTIN EPC URIs (with
    ``company_prefix_length``) or Digital Link URIs under ``host``; NMPA codes are
    ``urn:pharmatrace:nmpa:`` + 20 digits in either form. An SSCC's EPC URI splits it at the
    length ``sscc_prefix_length`` gives for it (its registered company prefix), else at
    ``company_prefix_length``. ``batches`` gives the expiry date
    (YYYY-MM-DD) of a (product, lot), for the ILMD of each commissioning. An event without an
    ``event_id`` gets its CBV 2.0 event hash ID; one whose ``event_id`` is not a URI gets the UUID
    URN ``event_uri`` names it by in ``tenant``.
    """
    if id_form not in ("epc", "digital-link"):
        raise InvalidArgument("must be 'epc' or 'digital-link'", field="id_form")
    if batches is None:
        expiry_of: Callable[[str, str], str | None] = _no_expiry
    elif isinstance(batches, Mapping):
        expiry_of = functools.partial(_expiry_in, batches)
    else:
        expiry_of = batches
    writer = _Writer(id_form, party_uri, company_prefix_length, host, expiry_of,
                     sscc_prefix_length or _no_prefix, tenant)
    events = list(events)
    context, own_context = _contexts(events)
    document: dict[str, Any] = {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": utc_text(clock.now_ms() if created_ms is None else created_ms),
    }
    if sender is not None:
        document["sender"] = sender
    if receiver is not None:
        document["receiver"] = receiver
    document["epcisBody"] = {
        "eventList": [_received(event, own_context) if event.epcis
                      else writer.event(event, f"events[{i}]") for i, event in enumerate(events)],
    }
    return document


def _contexts(events: list[Event]) -> tuple[list[Any], set[int]]:
    """The document's @context: the standard one, pharmatrace's prefix and the prefixes of the
    documents imported events came in; and the events whose prefixes clash with another
    document's, which carry their own @context instead."""
    defined: dict[str, Any] = {EXTENSION_PREFIX: EXTENSION_NAMESPACE}
    own: set[int] = set()
    for i, event in enumerate(events):
        if not event.epcis_context:
            continue
        entries = json.loads(event.epcis_context)
        terms = {term: value for entry in entries for term, value in entry.items()}
        if any(defined.get(term, value) != value for term, value in terms.items()):
            own.add(i)
        else:
            defined |= terms
    return [CONTEXT_URL, defined], {id(events[i]) for i in own}


def _received(event: Event, own_context: set[int]) -> dict[str, Any]:
    """An imported event exactly as it was received."""
    wire: dict[str, Any] = json.loads(event.epcis)
    if id(event) in own_context and "@context" not in wire:
        wire = {"@context": json.loads(event.epcis_context), **wire}
    return wire


@dataclass(frozen=True, slots=True)
class _Writer:
    """Writes domain events as EPCIS events, with one document's choices of identifiers."""

    id_form: IdForm
    party_uri: Callable[[str], str]
    company_prefix_length: int
    host: str
    expiry_of: Callable[[str, str], str | None]
    sscc_prefix_length: Callable[[str], int | None]
    tenant: str

    def event(self, event: Event, field: str) -> dict[str, Any]:
        if event.kind is EventKind.RECORD:
            raise InvalidArgument("an EPCIS record needs the event it keeps",
                                  field=f"{field}.epcis")
        if event.kind is EventKind.REPLACE:
            return self._replacement(event, field)
        target = event.target if event.kind is EventKind.DECOMMISSION else None
        row = ROW_OF.get((event.kind, target))
        if row is None:
            raise InvalidArgument("a decommissioning needs a decommissioned target status",
                                  field=f"{field}.target")
        if not TZ_OFFSET.fullmatch(event.tz_offset):
            raise InvalidArgument("must be an offset from -13:59 to +14:00 such as +08:00",
                                  field=f"{field}.tz_offset")
        wire: dict[str, Any] = {
            "type": row.type,
            "eventTime": local_text(event.when_ms, event.tz_offset),
            "eventTimeZoneOffset": event.tz_offset,
            # Or, once the event is complete, its hash ID.
            "eventID": event_uri(self.tenant, event.event_id) if event.event_id else "",
        }
        children = self._epcs(event.codes, f"{field}.codes")
        if row.type == AGGREGATION:
            if event.parent is None:
                raise InvalidArgument("an aggregation needs its container", field=f"{field}.parent")
            if not children and row.action == "ADD":
                raise InvalidArgument("packing needs at least one child", field=f"{field}.codes")
            wire["parentID"] = self._epc(event.parent)
            if children:
                wire["childEPCs"] = children
        else:
            wire["epcList"] = children
            if event.product:
                # A recall or withdrawal is of a lot or a product, not of listed packs.
                wire["quantityList"] = [{"epcClass": self._epc_class(event.product, event.lot)}]
        wire |= {"action": row.action, "bizStep": row.biz_step, "disposition": row.disposition}
        if event.documents:
            wire["bizTransactionList"] = [{"type": d.type, "bizTransaction": transaction_uri(d.id)}
                                          for d in event.documents]
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
        if reading(row.type, row.action, row.biz_step, row.disposition, None) is not row \
                and row.status is not None:
            wire[f"{EXTENSION_PREFIX}:status"] = row.status.name.lower()
        if event.reason:
            wire[f"{EXTENSION_PREFIX}:reason"] = event.reason
        if event.region:
            wire[f"{EXTENSION_PREFIX}:region"] = event.region
        if event.level:
            wire[f"{EXTENSION_PREFIX}:level"] = event.level
        if not event.event_id:
            wire["eventID"] = hash_id(wire, EXPORT_PREFIXES)
        return wire

    def _replacement(self, event: Event, field: str) -> dict[str, Any]:
        """EPCIS has no relabelling event: a damaged label's replacement is written as the
        commissioning of the new code, naming the code it replaces."""
        if event.replacement is None or len(event.codes) != 1:
            raise InvalidArgument("a replacement needs the old code and the new one",
                                  field=f"{field}.replacement")
        wire = self.event(replace(event, kind=EventKind.COMMISSION, codes=(event.replacement,),
                                  lot="", replacement=None), field)
        wire[f"{EXTENSION_PREFIX}:replaces"] = self._epc(event.codes[0])
        if not event.event_id:
            wire["eventID"] = ""
            wire["eventID"] = hash_id(wire, EXPORT_PREFIXES)
        return wire

    def _epcs(self, codes: tuple[Code, ...], field: str) -> list[str]:
        if len(set(codes)) != len(codes):
            raise InvalidArgument("lists a code twice", field=field)
        return [self._epc(code) for code in codes]

    def _epc(self, code: Code) -> str:
        if code.scheme is Scheme.NMPA:
            return NMPA_URI_PREFIX + code.text()
        if self.id_form == "epc":
            length = self.company_prefix_length
            if code.scheme is Scheme.SSCC:
                length = self.sscc_prefix_length(code.serial) or length
            return render(code, Form.EPC_URI, company_prefix_length=length)
        return render(code, Form.DIGITAL_LINK, host=self.host)

    def _epc_class(self, product: str, lot: str) -> str:
        """The class URI of a lot (LGTIN) or of a whole product, as the document names codes."""
        if len(product) != 14:
            return NMPA_CLASS_PREFIX + product + (f":{quote(lot, safe='')}" if lot else "")
        if self.id_form == "digital-link":
            return f"{self.host}/01/{product}" + (f"/10/{quote(lot, safe='')}" if lot else "")
        cpl = self.company_prefix_length
        prefix, reference = product[1:1 + cpl], product[0] + product[1 + cpl:13]
        if lot:
            return f"urn:epc:class:lgtin:{prefix}.{reference}.{quote(lot, safe='')}"
        return f"urn:epc:idpat:sgtin:{prefix}.{reference}.*"

    def _ilmd(self, event: Event, field: str) -> dict[str, str]:
        ilmd = {LOT: event.lot}
        # EPCIS has one ILMD per event: the codes' products must agree on the lot's expiry.
        expiries = {expiry for product in {code.product for code in event.codes}
                    if (expiry := self.expiry_of(product, event.lot)) is not None}
        if len(expiries) > 1:
            raise InvalidArgument(f"the codes' products give lot {event.lot} different expiry "
                                  "dates", field=f"{field}.lot")
        for expiry in expiries:
            if not is_date(expiry):
                raise InvalidArgument(f"expiry of lot {event.lot} must be YYYY-MM-DD",
                                      field="batches")
            ilmd[EXPIRY] = expiry
        return ilmd


def _no_prefix(sscc: str) -> None:
    return None


def _no_expiry(product: str, lot: str) -> None:
    return None


def _expiry_in(batches: Mapping[tuple[str, str], str], product: str, lot: str) -> str | None:
    return batches.get((product, lot))
