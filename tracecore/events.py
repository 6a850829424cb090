"""Lifecycle events: what happened to which packs, when, where, why and by whom (GS1 CBV 2.0)."""

from __future__ import annotations

import enum
import json
import operator
from dataclasses import dataclass, field, fields
from typing import Any

from tracecore.codes import Code
from tracecore.status import Status


class EventKind(enum.StrEnum):
    """Every kind of change the ledger records."""

    COMMISSION = "commission"      # ISSUED -> ACTIVE, bound to a batch
    VOID = "void"                  # ISSUED -> VOIDED (returned or scrapped unused)
    AGGREGATE = "aggregate"        # children packed into a parent container
    DISAGGREGATE = "disaggregate"  # children taken out of a parent
    SHIP = "ship"                  # custody leaves a party, in transit to another
    RECEIVE = "receive"            # custody arrives at a party
    DECOMMISSION = "decommission"  # ACTIVE -> a decommissioned status (dispensed, exported, ...)
    UNDO = "undo"                  # a decommissioning reverted (EU FMD Art. 13)
    DESTROY = "destroy"
    REPORT_STOLEN = "report_stolen"
    RECALL = "recall"
    WITHDRAW = "withdraw"
    REPLACE = "replace"            # a damaged label replaced by a new code
    # An imported EPCIS event kept as received that changes no pack: a transaction, a
    # transformation, an association, class-level quantities, sensor readings, an error
    # declaration, or a business step pharmatrace does not model (inspecting, storing, ...).
    RECORD = "record"


#: GS1 CBV 2.0 business step and disposition of each kind (decommissioning depends on the target).
CBV: dict[EventKind, tuple[str, str]] = {
    EventKind.COMMISSION: ("commissioning", "active"),
    EventKind.VOID: ("decommissioning", "inactive"),
    EventKind.AGGREGATE: ("packing", "in_progress"),
    EventKind.DISAGGREGATE: ("unpacking", "in_progress"),
    EventKind.SHIP: ("shipping", "in_transit"),
    EventKind.RECEIVE: ("receiving", "in_progress"),
    EventKind.UNDO: ("receiving", "active"),
    EventKind.DESTROY: ("destroying", "destroyed"),
    EventKind.REPORT_STOLEN: ("holding", "stolen"),
    EventKind.RECALL: ("holding", "recalled"),
    EventKind.WITHDRAW: ("holding", "non_sellable_other"),
    # The new code is commissioned onto the pack the old label was on.
    EventKind.REPLACE: ("commissioning", "active"),
}

#: CBV business step and disposition of each decommissioned status.
DECOMMISSION_CBV: dict[Status, tuple[str, str]] = {
    Status.DISPENSED: ("dispensing", "dispensed"),
    Status.EXPORTED: ("departing", "in_transit"),
    Status.SAMPLE: ("sampling", "non_sellable_other"),
    Status.FREE_SAMPLE: ("dispensing", "dispensed"),
    Status.CHECKED_OUT: ("decommissioning", "inactive"),
    Status.LOCKED: ("holding", "non_sellable_other"),
}


@dataclass(frozen=True, slots=True)
class Document:
    """A business document an event is part of (EPCIS bizTransaction): a bill, despatch advice,
    purchase order, invoice, or a user-defined type such as China's 出入库单."""

    type: str
    id: str
    counterparty: str = ""

    def key(self) -> bytes:
        """The ledger's index key: type, NUL, id (counterparty aside: one bill, both sides)."""
        return self.type.encode() + b"\0" + self.id.encode()


@dataclass(frozen=True, slots=True)
class Event:
    """One lifecycle event. ``codes`` are the packs it is about (for aggregation, the children);
    an event on a container applies to everything packed inside it."""

    kind: EventKind
    codes: tuple[Code, ...]
    when_ms: int
    tz_offset: str = "+00:00"           # the time-zone offset where it happened, "+08:00"
    party_id: str = ""                  # where: the party at which it happened (read point)
    region: str = ""                    # GB/T 2260 code of where it happened
    parent: Code | None = None          # AGGREGATE / DISAGGREGATE: the container
    lot: str = ""                       # COMMISSION: the batch the packs belong to
    level: int = 0                      # COMMISSION: packaging level (1 unit ... 4 pallet)
    destination: str = ""               # SHIP: the party the packs go to
    target: Status | None = None        # DECOMMISSION: which decommissioned status
    reason: str = ""                    # free text: recall reason, destruction note
    event_id: str = ""                  # EPCIS eventID; assigned by the ledger when empty
    who: str = ""                       # credential or caller that recorded it
    custodian: str = ""                 # a party-bound credential's party: custody applies
    credential: str = ""                # the sending credential when not the tenant's admin
    seq: int = 0                        # ledger sequence number; 0 before it is stored
    replacement: Code | None = None     # REPLACE: the code replacing the damaged label
    partial: bool = False               # AGGREGATE: the container is short of its ratio on purpose
    product: str = ""                   # RECALL / WITHDRAW: the product's GTIN or NMPA id
    # Imported: the EPCIS event's JSON object as received and the inline JSON-LD @context entries
    # it came under; data carried along, not part of what the event is.
    epcis: str = field(default="", compare=False)
    epcis_context: str = field(default="", compare=False)
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    documents: tuple[Document, ...] = ()   # SHIP / RECEIVE / any: bills, despatch advices

    def __reduce__(self) -> tuple[type[Event], tuple[Any, ...]]:
        # Pickled by value, as ``Code`` is: events come back from the document reader processes
        # by the hundred.
        return Event, _EVENT_FIELDS(self)

    @property
    def cbv(self) -> tuple[str, str]:
        """(bizStep, disposition) from GS1 CBV 2.0; for a record, those it was received with."""
        if self.kind is EventKind.RECORD:
            wire = json.loads(self.epcis) if self.epcis else {}
            return str(wire.get("bizStep", "")), str(wire.get("disposition", ""))
        if self.kind is EventKind.DECOMMISSION and self.target is not None:
            return DECOMMISSION_CBV[self.target]
        return CBV[self.kind]


_EVENT_FIELDS = operator.attrgetter(*(f.name for f in fields(Event)))
