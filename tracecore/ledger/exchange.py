"""EPCIS 2.0 exchange against a tenant's ledger: journal events out, partners' events in."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pharmatrace.v1 import common_pb2 as pb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import epcis
from tracecore.codes import Code
from tracecore.epcis.identifiers import GLN_URI, gln_from
from tracecore.errors import InvalidArgument, NotFound, ParseError, TraceError
from tracecore.events import Document, Event, EventKind
from tracecore.ledger.env import Txn
from tracecore.ledger.history import EventFilter, list_events
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.store import Ledger
from tracecore.paging import page_start
from tracecore.status import Status

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_EXPORT_EVENTS = 100_000
#: Events a query page looks at at most, so that a sparse query cannot stall a reader.
MAX_QUERY_SCAN = 50_000
_QUERY_CHUNK = 500
#: Parties without a GLN are named by this URI plus their id.
PARTY_URI = "urn:pharmatrace:party:"
MAX_IDENTIFIER = 500
_PARTY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def event_of(record: lpb.EventRecord) -> Event:
    """The domain event a journal record holds."""
    return Event(
        kind=EventKind(record.kind),
        codes=tuple(Code.from_key(k) for k in record.codes),
        when_ms=record.when_ms,
        tz_offset=record.tz_offset or "+00:00",
        party_id=record.party_id,
        region=record.region,
        parent=Code.from_key(record.parent) if record.parent else None,
        lot=record.lot,
        level=record.level,
        destination=record.destination,
        target=Status(record.target) if record.target else None,
        reason=record.reason,
        event_id=record.event_id,
        who=record.who,
        seq=record.seq,
        replacement=Code.from_key(record.replacement) if record.replacement else None,
        product=record.product,
        epcis=record.epcis,
        epcis_context=record.epcis_context,
        documents=tuple(Document(d.type, d.id, d.counterparty) for d in record.documents),
    )


class _Parties:
    """Party ids to EPCIS location URIs and back: SGLN when the party has a GLN. A location or
    party a partner names that is not registered gets an external party id, kept in
    ``external`` to be recorded on first sight (never refused)."""

    def __init__(self, ledger: Ledger, txn: Txn, company_prefix_length: int) -> None:
        self._ledger = ledger
        self._txn = txn
        self._cpl = company_prefix_length
        self._by_gln: dict[str, str] | None = None
        self.external: dict[str, tuple[str, str]] = {}

    def uri(self, party_id: str) -> str:
        try:
            _, party = self._ledger.party_in(self._txn, party_id)
        except NotFound:
            return PARTY_URI + party_id
        return epcis.sgln_uri(party.gln, self._cpl) if party.gln else PARTY_URI + party_id

    def party_of(self, uri: str) -> str:
        if uri.startswith(PARTY_URI):
            party_id = uri.removeprefix(PARTY_URI)
            if self._known(party_id):
                return party_id
            return self._external(uri, "")
        try:
            gln = epcis.gln_of(uri)
        except ParseError:
            match = GLN_URI.fullmatch(uri)
            if match is None:  # a Chinese enterprise code, a partner's own URI, ...
                return self._external(uri, "")
            gln = gln_from(match[2], match[3])  # a PGLN: the party itself
        if self._by_gln is None:
            self._by_gln = {}
            for _, data in self._txn.cursor(db=self._ledger.db["parties"]):
                party = pb.Party.FromString(bytes(data))
                if party.gln:
                    self._by_gln[party.gln] = party.merged_into or party.party_id
        return self._by_gln.get(gln) or self._external(uri, gln)

    def _known(self, party_id: str) -> bool:
        return (_PARTY_ID.fullmatch(party_id) is not None
                and self._txn.get(party_id.encode(), db=self._ledger.db["party_ids"]) is not None)

    def _external(self, uri: str, gln: str) -> str:
        """The id an unregistered location or party gets: ``gln-`` and its GLN, else ``ext-``
        and a digest of the URI (ids are short and plain; the URI is kept on the party)."""
        party_id = (f"gln-{gln}" if gln
                    else "ext-" + hashlib.sha256(uri.encode()).hexdigest()[:24])
        self.external.setdefault(party_id, (uri[:MAX_IDENTIFIER], gln))
        return party_id


def export(
    ledger: Ledger,
    wanted: EventFilter,
    *,
    id_form: epcis.IdForm,
    company_prefix_length: int,
    host: str,
    max_events: int,
) -> tuple[str, int, bool]:
    """(EPCISDocument JSON, events in it, whether more matched than ``max_events``)."""
    records: list[lpb.EventRecord] = []
    token = ""
    with ledger.env.read() as txn:
        while len(records) <= max_events:
            page, token = list_events(ledger, txn, wanted, 1000, token)
            records.extend(page)
            if not token:
                break
        truncated = len(records) > max_events
        records = records[:max_events]
        document = _document(ledger, txn, records, id_form, company_prefix_length, host)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")), len(records), truncated


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of a standard query's answer."""

    context: list[Any]
    """The @context the events are written under."""
    events: list[dict[str, Any]]
    next_token: str
    """"" when nothing is left."""


def query(
    ledger: Ledger,
    asked: epcis.Query,
    wanted: EventFilter,
    page_size: int,
    page_token: str,
    *,
    id_form: epcis.IdForm,
    company_prefix_length: int,
    host: str,
) -> QueryPage:
    """Events (as EPCIS JSON) answering a standard query and ``wanted`` (a party-bound caller's
    own party), in ledger order; ``next_token`` resumes after the last one looked at."""
    wanted = replace(wanted, from_ms=max(wanted.from_ms, asked.from_ms),
                     to_ms=min(t for t in (wanted.to_ms, asked.to_ms, 2**63 - 1) if t))
    found: list[dict[str, Any]] = []
    context: list[Any] = []
    token = page_token
    with ledger.env.read() as txn:
        first = page_start(page_token, last=2**63 - 1)
        while len(found) < page_size:
            records, after = list_events(ledger, txn, wanted, _QUERY_CHUNK, token)
            document = _document(ledger, txn, records, id_form, company_prefix_length, host)
            context = document["@context"]
            for record, wire in zip(records, document["epcisBody"]["eventList"], strict=True):
                if asked.matches(wire, record.recorded_at_ms):
                    found.append(wire)
                    if len(found) == page_size:
                        if record is not records[-1] or after:
                            after = str(record.seq + 1)
                        break
            token = after
            if not token or int(token) - first >= MAX_QUERY_SCAN:
                break
    return QueryPage(context or [epcis.CONTEXT_URL], found, token)


def _document(ledger: Ledger, txn: Txn, records: list[lpb.EventRecord], id_form: epcis.IdForm,
              company_prefix_length: int, host: str) -> dict[str, Any]:
    parties = _Parties(ledger, txn, company_prefix_length)
    expiry: dict[tuple[str, str], str | None] = {}

    def expiry_of(product: str, lot: str) -> str | None:
        if (product, lot) not in expiry:
            try:
                expiry[(product, lot)] = ledger.batch_in(txn, product, lot)[1].expires_on
            except TraceError:
                expiry[(product, lot)] = None
        return expiry[(product, lot)]

    pools = SsccPools(ledger)
    prefixes: dict[str, int | None] = {}

    def sscc_prefix_length(code: str) -> int | None:
        if code not in prefixes:
            prefix = pools.allocated_in(txn, code)
            prefixes[code] = len(prefix) if prefix is not None else None
        return prefixes[code]

    return epcis.export_document(
        (event_of(r) for r in records), id_form=id_form, party_uri=parties.uri,
        company_prefix_length=company_prefix_length, host=host, batches=expiry_of,
        sscc_prefix_length=sscc_prefix_length, tenant=ledger.tenant,
    )


Imported = tuple[list[tuple[int, Event]], list[epcis.Refusal], dict[str, tuple[str, str]]]


def import_events(ledger: Ledger, text: str, max_bytes: int = MAX_DOCUMENT_BYTES, *,
                  custodian: str = "", credential: str = "") -> Imported:
    """A partner's EPCIS document (JSON-LD, or EPCIS 1.2 / 2.0 XML) read event by event:
    (index, event) for those that read, a Refusal with the JSON path for the others, and the
    parties it names that are not registered (id: URI as named, GLN or ""); InvalidArgument
    for a document that is not one at all. Each event carries the sender's ``custodian`` and
    ``credential``. CPU-bound: callers on an event loop run it elsewhere (``import_from``)."""
    check_size(text, max_bytes)
    try:
        return _read(ledger, text, custodian, credential)
    except RecursionError:
        # Nesting deeper than the interpreter's stack is a hostile document, not a fault.
        raise InvalidArgument("nested too deeply to be an EPCIS document",
                              field="document") from None


def _read(ledger: Ledger, text: str, custodian: str, credential: str) -> Imported:
    doc: Any
    refused: dict[int, tuple[str, str]] = {}
    # The byte order mark .NET and Windows tools put before UTF-8 text (RFC 8259 lets a JSON
    # reader ignore it; XML allows it).
    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("<"):
        doc, refused = epcis.document_of_xml(text)
    else:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"not JSON: {exc}", field="document") from None
    with ledger.env.read() as txn:
        parties = _Parties(ledger, txn, 7)
        read, refusals = epcis.read_document(doc, party_of=parties.party_of, refused=refused,
                                             custodian=custodian, credential=credential)
    return read, refusals, parties.external


def import_from(ledger_path: Path, tenant: str, text: str, max_bytes: int,
                custodian: str = "", credential: str = "") -> Imported:
    """``import_events`` in a process of its own: the tenant's ledger opened read-only for the
    parties the document names, and closed again."""
    ledger = Ledger(ledger_path, tenant=tenant, readonly=True)
    try:
        return import_events(ledger, text, max_bytes, custodian=custodian,
                             credential=credential)
    finally:
        ledger.close()


def check_size(text: str, max_bytes: int) -> None:
    """InvalidArgument naming the limit when a document is larger than ``max_bytes``."""
    if len(text) > max_bytes or len(text.encode()) > max_bytes:
        raise InvalidArgument(f"is larger than this server's limit of {max_bytes:,} bytes per "
                              "import (pharmatrace serve --max-import-mib): split it",
                              field="document")
