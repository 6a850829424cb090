"""EPCIS 2.0 exchange against a tenant's ledger: journal events out, partners' events in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pharmatrace.v1 import common_pb2 as pb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import epcis
from tracecore.codes import Code
from tracecore.errors import InvalidArgument, NotFound, TraceError
from tracecore.events import Event, EventKind
from tracecore.ledger.env import Txn
from tracecore.ledger.history import EventFilter, list_events
from tracecore.ledger.store import Ledger
from tracecore.status import Status

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_EXPORT_EVENTS = 100_000
#: Parties without a GLN are named by this URI plus their id.
PARTY_URI = "urn:pharmatrace:party:"


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
    )


class _Parties:
    """Party ids to EPCIS location URIs and back: SGLN when the party has a GLN."""

    def __init__(self, ledger: Ledger, txn: Txn, company_prefix_length: int) -> None:
        self._ledger = ledger
        self._txn = txn
        self._cpl = company_prefix_length
        self._by_gln: dict[str, str] | None = None

    def uri(self, party_id: str) -> str:
        try:
            _, party = self._ledger.party_in(self._txn, party_id)
        except NotFound:
            return PARTY_URI + party_id
        return epcis.sgln_uri(party.gln, self._cpl) if party.gln else PARTY_URI + party_id

    def party_of(self, uri: str) -> str:
        if uri.startswith(PARTY_URI):
            party_id = uri.removeprefix(PARTY_URI)
            self._ledger.party_in(self._txn, party_id, "party")
            return party_id
        gln = epcis.gln_of(uri)
        if self._by_gln is None:
            self._by_gln = {}
            for _, data in self._txn.cursor(db=self._ledger.db["parties"]):
                party = pb.Party.FromString(bytes(data))
                if party.gln:
                    self._by_gln[party.gln] = party.party_id
        by_gln = self._by_gln.get(gln)
        if by_gln is None:
            raise InvalidArgument(f"no party with GLN {gln} is registered", field="party")
        return by_gln


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
        parties = _Parties(ledger, txn, company_prefix_length)
        expiry: dict[tuple[str, str], str | None] = {}

        def expiry_of(product: str, lot: str) -> str | None:
            if (product, lot) not in expiry:
                try:
                    expiry[(product, lot)] = ledger.batch_in(txn, product, lot)[1].expires_on
                except TraceError:
                    expiry[(product, lot)] = None
            return expiry[(product, lot)]

        document = epcis.export_document(
            (event_of(r) for r in records), id_form=id_form, party_uri=parties.uri,
            company_prefix_length=company_prefix_length, host=host, batches=expiry_of,
        )
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")), len(records), truncated


def import_events(ledger: Ledger, text: str, max_bytes: int = MAX_DOCUMENT_BYTES
                  ) -> list[Event]:
    """A partner's EPCISDocument as domain events; InvalidArgument with the JSON path of the
    first problem. CPU-bound: callers on an event loop run it elsewhere (``import_from``)."""
    check_size(text, max_bytes)
    try:
        doc: Any = json.loads(text)
        with ledger.env.read() as txn:
            return epcis.import_document(doc, party_of=_Parties(ledger, txn, 7).party_of)
    except ValueError as exc:
        raise InvalidArgument(f"not JSON: {exc}", field="document") from None
    except RecursionError:
        # Nesting deeper than the interpreter's stack is a hostile document, not a fault.
        raise InvalidArgument("nested too deeply to be an EPCIS document",
                              field="document") from None


def import_from(ledger_path: Path, tenant: str, text: str, max_bytes: int) -> list[Event]:
    """``import_events`` in a process of its own: the tenant's ledger opened read-only for the
    parties the document names, and closed again."""
    ledger = Ledger(ledger_path, tenant=tenant, readonly=True)
    try:
        return import_events(ledger, text, max_bytes)
    finally:
        ledger.close()


def check_size(text: str, max_bytes: int) -> None:
    """InvalidArgument naming the limit when a document is larger than ``max_bytes``."""
    if len(text) > max_bytes or len(text.encode()) > max_bytes:
        raise InvalidArgument(f"is larger than this server's limit of {max_bytes:,} bytes per "
                              "import (pharmatrace serve --max-import-mib): split it",
                              field="document")
