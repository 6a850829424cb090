"""Reading the journal back: one pack's history through its containers, and filtered listings."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from pharmatrace.v1 import common_pb2 as pb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.codes import Code
from tracecore.events import Document, EventKind
from tracecore.ledger import foreign
from tracecore.ledger.contents import resolved
from tracecore.ledger.env import Txn
from tracecore.ledger.journal import Journal
from tracecore.ledger.records import CodeRecord
from tracecore.ledger.store import Ledger
from tracecore.paging import page_start

MAX_CHILDREN_LISTED = 10_000
#: Events read per ListEvents page at most, so a sparse filter cannot stall a worker.
MAX_SCAN = 50_000
_PACKING = (EventKind.AGGREGATE.value, EventKind.DISAGGREGATE.value)


@dataclass(frozen=True, slots=True)
class Traced:
    """A pack's current picture and its history, oldest first."""

    code: Code
    record: CodeRecord
    product: pb.Product
    batch: pb.Batch | None
    holder: str
    parents: list[Code]
    children: list[Code]
    child_count: int
    history: list[tuple[lpb.EventRecord, Code | None]]   # (event, container it came through)
    replaced_by: Code | None = None     # the code that replaced this one's damaged label
    replaces: Code | None = None        # the code whose damaged label this one replaced


def trace(ledger: Ledger, txn: Txn, code: Code) -> Traced | None:
    """Everything the ledger knows about one pack; None when it is not in the ledger."""
    key = code.key()
    record = ledger.code_record(txn, key)
    if record is None:
        return None
    record = resolved(ledger, txn, key, record)
    journal = Journal(ledger)
    parents: list[Code] = []
    parent = ledger.parent_of(txn, key)
    while parent is not None and len(parents) < 16:
        parents.append(Code.from_key(parent))
        parent = ledger.parent_of(txn, parent)
    kids, child_count = ledger.children_of(txn, key, MAX_CHILDREN_LISTED)
    children = [Code.from_key(child) for child in kids]
    seen: dict[int, tuple[lpb.EventRecord, Code | None]] = {}
    for event, via in _history(journal, txn, key, 0, math.inf, None, depth=0):
        seen.setdefault(event.seq, (event, via))
    history = sorted(seen.values(), key=lambda item: (item[0].when_ms, item[0].seq))
    holder = ledger.party_by_ref(txn, record.holder_ref).party_id if record.holder_ref else ""
    batch = ledger.batch_by_ref(txn, record.batch_ref) if record.batch_ref else None
    product = (ledger.product_by_ref(txn, record.product_ref) if record.product_ref
               else foreign.unregistered_product(code))
    return Traced(code, record, product, batch, holder,
                  parents, children, child_count, history, *replacement(ledger, txn, key))


def replacement(ledger: Ledger, txn: Txn, key: bytes) -> tuple[Code | None, Code | None]:
    """(the code that replaced this one's label, the code whose label this one replaced)."""
    journal = Journal(ledger)
    replaced_by = replaces = None
    for seq in journal.seqs_of(txn, key):
        event = journal.get(txn, seq)
        if event.kind != EventKind.REPLACE.value or not event.codes:
            continue
        if event.replacement == key:
            replaces = Code.from_key(event.codes[0])
        elif event.codes[0] == key:
            replaced_by = Code.from_key(event.replacement)
    return replaced_by, replaces


def events_of_pack(journal: Journal, txn: Txn, key: bytes, start: float, end: float
                   ) -> Iterator[tuple[lpb.EventRecord, Code | None]]:
    """Every event about a pack with sequence in (start, end), each with the container it came
    through (None when it names the pack); an event may come more than once."""
    return _history(journal, txn, key, start, end, None, depth=0)


def _history(
    journal: Journal, txn: Txn, key: bytes, start: float, end: float, via: Code | None,
    depth: int,
) -> Iterator[tuple[lpb.EventRecord, Code | None]]:
    """Events about ``key`` with sequence in (start, end), then, for each stretch of time it
    spent inside a container, that container's events of the same stretch."""
    inside: dict[bytes, int] = {}
    stretches: list[tuple[bytes, int, float]] = []
    for seq in journal.seqs_of(txn, key):
        if not start < seq < end:
            continue
        event = journal.get(txn, seq)
        if via is not None and event.kind in _PACKING and event.parent == key:
            continue  # a container's packing of its other contents is not this pack's history
        yield event, via
        if event.kind == EventKind.AGGREGATE.value and event.parent != key:
            inside[event.parent] = seq
        elif event.kind == EventKind.DISAGGREGATE.value and event.parent in inside:
            stretches.append((event.parent, inside.pop(event.parent), seq))
        elif event.kind == EventKind.DECOMMISSION.value and key in event.codes:
            # A pack decommissioned from inside a container leaves it (lifecycle._decommission).
            stretches.extend((parent, since, seq) for parent, since in inside.items())
            inside.clear()
        elif (event.kind == EventKind.REPLACE.value and event.replacement == key
              and event.codes and depth < 8):
            # A replacement label continues the pack's history from the damaged one's.
            old = event.codes[0]
            yield from _history(journal, txn, old, start, seq, Code.from_key(old), depth + 1)
    stretches.extend((parent, since, end) for parent, since in inside.items())
    if depth >= 8:
        return
    for parent, since, until in stretches:
        yield from _history(journal, txn, parent, since, until, Code.from_key(parent),
                            depth + 1)


@dataclass(frozen=True, slots=True)
class EventFilter:
    batch_ref: int = 0
    product_ref: int = 0
    party_id: str = ""
    from_ms: int = 0
    to_ms: int = 0
    product: str = ""       # with product_ref: its GTIN or NMPA id, which recalls name
    lot: str = ""           # with batch_ref: its lot
    document: Document | None = None
    """Only the events that are part of this business document (read from its index)."""


def list_events(
    ledger: Ledger, txn: Txn, wanted: EventFilter, page_size: int, page_token: str
) -> tuple[list[lpb.EventRecord], str]:
    """One page of events matching the filter, in ledger order; the token resumes after it."""
    start = page_start(page_token, last=2**63 - 1)
    out: list[lpb.EventRecord] = []
    journal = Journal(ledger)
    events = (journal.scan(txn, start) if wanted.document is None
              else (journal.get(txn, seq) for seq in
                    foreign.events_of_document(ledger, txn, wanted.document) if seq >= start))
    for scanned, event in enumerate(events, 1):
        if _matches(ledger, txn, event, wanted):
            out.append(event)
            if len(out) == page_size:
                return out, str(event.seq + 1)
        if scanned >= MAX_SCAN:
            return out, str(event.seq + 1)
    return out, ""


def _matches(ledger: Ledger, txn: Txn, event: lpb.EventRecord, wanted: EventFilter) -> bool:
    if wanted.from_ms and event.when_ms < wanted.from_ms:
        return False
    if wanted.to_ms and event.when_ms >= wanted.to_ms:
        return False
    if wanted.party_id and wanted.party_id not in (event.party_id, event.destination):
        return False
    if wanted.batch_ref or wanted.product_ref:
        if event.product:
            # A recall names its lot, a withdrawal its product and so every lot.
            return event.product == wanted.product and event.lot in ("", wanted.lot or event.lot)
        for key in [*event.codes, *([event.parent] if event.parent else [])]:
            record = ledger.code_record(txn, key)
            if record is None:
                continue
            if wanted.batch_ref and record.batch_ref != wanted.batch_ref:
                continue
            if wanted.product_ref and record.product_ref != wanted.product_ref:
                continue
            return True
        return False
    return True
