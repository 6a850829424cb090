"""The rules of a pack's life, run against an in-memory set of packs (no ledger, no LMDB)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import trace_pb2 as tpb

from tracecore.codes import Code, Scheme
from tracecore.custody_policy import CUSTODY, HANDLERS, Custody
from tracecore.errors import InvalidArgument, NotFound
from tracecore.events import Event, EventKind
from tracecore.ledger import store
from tracecore.ledger.contents import Row, inheriting, row_of
from tracecore.ledger.counters import Flow
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord
from tracecore.lifecycle_request import Refused, Result
from tracecore.lifecycle_rules import (
    ALERT_SOURCE_DISPENSE,
    ALERT_SOURCE_RECEIPT,
    UNDO_WINDOW_MS,
    check_event_time,
)
from tracecore.oversight import Raised, RegionRule
from tracecore.packs import Packs
from tracecore.status import Status

GTIN = "09501101530003"
NOW = 1_790_000_000_000
DAY = 86_400_000
BEIJING, SHANGHAI = 110105, 310101


def code(serial: str) -> Code:
    return Code(Scheme.GS1, GTIN, serial)


@dataclass
class FakePacks:
    """Packs, containers, parties, batches and holds in dictionaries."""

    now_ms: int = NOW
    records: dict[bytes, CodeRecord] = field(default_factory=dict)
    parents: dict[bytes, bytes] = field(default_factory=dict)
    parties: dict[str, tuple[int, int]] = field(default_factory=dict)
    batches: dict[tuple[int, str], int] = field(default_factory=dict)
    holds: dict[int, Status] = field(default_factory=dict)
    regions: dict[int, tuple[str, ...]] = field(default_factory=dict)
    expiry: dict[int, dt.date] = field(default_factory=dict)
    shipments: dict[bytes, int] = field(default_factory=dict)
    flows: list[tuple[bytes, Flow]] = field(default_factory=list)
    alerts: list[Raised] = field(default_factory=list)
    commissions: list[tuple[int, bytes]] = field(default_factory=list)
    returns: list[int] = field(default_factory=list)

    def add(self, serial: str, status: Status = Status.ACTIVE, *, level: int = 1,
            holder: int = 0, batch: int = 1, inside: str = "", updated: int = NOW) -> bytes:
        key = code(serial).key()
        self.records[key] = CodeRecord(status, level, 1, 1, batch_ref=batch, pool_ref=1,
                                       holder_ref=holder, updated_at_ms=updated)
        if inside:
            self.parents[key] = code(inside).key()
        return key

    def record(self, key: bytes) -> CodeRecord | None:
        return self.records.get(key)

    def records_many(self, keys: list[bytes]) -> list[tuple[bytes, CodeRecord | None]]:
        return [(k, self.records.get(k)) for k in keys]

    def parent(self, key: bytes) -> bytes | None:
        return self.parents.get(key)

    def children(self, key: bytes) -> list[bytes]:
        return sorted(k for k, p in self.parents.items() if p == key)

    def tree(self, key: bytes) -> list[tuple[bytes, CodeRecord]]:
        keys = [key, *self.descendants(key)]
        if any(k not in self.records for k in keys):
            raise Refused("not issued by this tenant")
        return [(k, self.records[k]) for k in keys]

    def descendants(self, key: bytes) -> Iterator[bytes]:
        for child in self.children(key):
            yield child
            yield from self.descendants(child)

    def party(self, party_id: str, field: str) -> tuple[int, int]:
        if party_id not in self.parties:
            raise NotFound(f"party {party_id} is not registered", field=field)
        return self.parties[party_id]

    def party_id(self, ref: int) -> str:
        return next(p for p, (r, _) in self.parties.items() if r == ref)

    def batch_ref(self, product_ref: int, lot: str) -> int:
        if (product_ref, lot) not in self.batches:
            raise Refused(f"batch {lot} is not registered for this code's product")
        return self.batches[(product_ref, lot)]

    def hold_status(self, batch_ref: int, product_ref: int) -> Status | None:
        return self.holds.get(batch_ref)

    def batch_rule(self, batch_ref: int) -> tuple[cpb.Batch, RegionRule]:
        batch = cpb.Batch(product=GTIN, lot=f"L{batch_ref}")
        return batch, RegionRule(self.regions.get(batch_ref, ()), "batch")

    def party_rule(self, party_ref: int) -> RegionRule | None:
        return None

    def dispense_elsewhere(self) -> bool:
        return False

    def pool_requester(self, pool_ref: int) -> tuple[str, str]:
        return "", ""

    def shipped_by(self, key: bytes) -> int:
        return self.shipments.get(key, 0)

    def expires_on(self, batch_ref: int) -> dt.date | None:
        return self.expiry.get(batch_ref)

    def put(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        self.records[key] = after

    def put_many(self, keys: Sequence[bytes], before: Sequence[CodeRecord],
                 after: Sequence[CodeRecord]) -> None:
        self.records.update(zip(keys, after, strict=True))

    def custody(self, key: bytes, record: CodeRecord) -> CodeRecord:
        top = None
        while key in self.parents:
            top = key = self.parents[key]
        return record if top is None else inheriting(record, self.records[top])

    def contents(self, key: bytes) -> dict[Row, int]:
        return dict(Counter(row_of(self.records[k]) for k in self.descendants(key)))

    def link(self, parent: bytes, child: bytes) -> None:
        self.parents[child] = parent

    def unlink(self, parent: bytes, child: bytes) -> None:
        self.records[child] = self.custody(child, self.records[child])
        del self.parents[child]

    def carry(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        """Nothing to do: the fake keeps no counters."""

    def restated(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        """Nothing to do: the fake keeps no tallies."""

    def commissioned(self, batch_ref: int, key: bytes) -> None:
        self.commissions.append((batch_ref, key))

    def returned(self, pool_ref: int) -> None:
        self.returns.append(pool_ref)

    def shipped(self, key: bytes, shipper: int | None) -> None:
        if shipper is None:
            self.shipments.pop(key, None)
        else:
            self.shipments[key] = shipper

    def flow(self, record: CodeRecord, flow: Flow, at_ms: int) -> None:
        self.flows.append((record.pack(), flow))

    def flow_many(self, records: Sequence[CodeRecord], flow: Flow, at_ms: int) -> None:
        self.flows.extend((r.pack(), flow) for r in records)

    def flow_rows(self, rows: dict[Row, int], region: int, flow: Flow, at_ms: int) -> None:
        self.flows.extend((repr((row, region, n)).encode(), flow) for row, n in rows.items())

    def raise_alert(self, raised: Raised) -> int:
        self.alerts.append(raised)
        return len(self.alerts) - 1


def run(packs: Packs, kind: EventKind, serial: str, **event: object) -> tuple[list[bytes], Result]:
    result = Result()
    touched = HANDLERS[kind](packs, Event(kind, (code(serial),), NOW, **event),  # type: ignore[arg-type]
                             code(serial).key(), result)
    return touched, result


def refusal(packs: Packs, kind: EventKind, serial: str, **event: object) -> str:
    with pytest.raises(Refused) as refused:
        run(packs, kind, serial, **event)
    return refused.value.reason


@pytest.fixture
def packs() -> FakePacks:
    return FakePacks(parties={"PLANT": (1, BEIJING), "DIST": (2, BEIJING),
                              "PHARM": (3, SHANGHAI)},
                     batches={(1, "L1"): 1, (1, "L2"): 2})


def test_every_per_pack_event_kind_has_a_handler_and_recalls_are_refused_here() -> None:
    """Each per-pack event kind is handled; recalls and withdrawals go through their own calls,
    and an imported EPCIS record changes no pack."""
    assert set(HANDLERS) == set(EventKind) - {EventKind.RECALL, EventKind.WITHDRAW,
                                              EventKind.RECORD}
    assert all(callable(handler) for handler in HANDLERS.values())
    with pytest.raises(InvalidArgument, match="not a per-pack event"):
        check_event_time(Event(EventKind.RECALL, (), NOW))
    with pytest.raises(InvalidArgument, match="between 2000 and 3000"):
        check_event_time(Event(EventKind.SHIP, (), 1))


def test_a_party_cannot_ship_a_pack_another_party_holds(packs: FakePacks) -> None:
    """Shipping a pack the sender does not hold is refused, naming who holds it."""
    packs.add("A1", holder=1)
    assert refusal(packs, EventKind.SHIP, "A1", party_id="DIST",
                   destination="PHARM") == "is held by PLANT, not DIST"


def test_shipping_a_case_takes_its_contents_in_transit_to_the_destination(
        packs: FakePacks) -> None:
    """A shipped case and every unit in it are in transit, held by the destination: the
    case's record says so, and the units inside inherit it."""
    packs.add("CASE", level=3, holder=1)
    packs.add("U1", holder=1, inside="CASE")
    packs.add("U2", holder=1, inside="CASE")
    touched, result = run(packs, EventKind.SHIP, "CASE", party_id="PLANT", destination="DIST")
    assert touched == [code("CASE").key()] and result.changed == 2
    for serial in ("CASE", "U1", "U2"):
        key = code(serial).key()
        record = packs.custody(key, packs.records[key])
        assert record.flags & FLAG_IN_TRANSIT and record.holder_ref == 2


def test_a_unit_inside_a_case_cannot_be_shipped_alone(packs: FakePacks) -> None:
    """A packed unit travels with its case: shipping it alone is refused."""
    packs.add("CASE", level=3, holder=1)
    packs.add("U1", holder=1, inside="CASE")
    assert refusal(packs, EventKind.SHIP, "U1", destination="DIST").startswith(
        "is inside a container")


def test_a_container_cannot_go_into_a_pack_it_contains(packs: FakePacks) -> None:
    """Aggregation never makes a cycle, whatever the levels say: a pallet cannot go into a
    container that is on it."""
    packs.add("PALLET", level=4)
    packs.add("CASE", level=3, inside="PALLET")
    packs.add("ODD", level=9, inside="CASE")
    assert refusal(packs, EventKind.AGGREGATE, "PALLET",
                   parent=code("ODD")) == "the parent is inside this pack"
    assert refusal(packs, EventKind.AGGREGATE, "CASE",
                   parent=code("PALLET")) == "already in a container: disaggregate it first"


def test_an_undo_after_ten_days_is_refused_but_a_locked_pack_is_undone_any_time(
        packs: FakePacks) -> None:
    """EU FMD Art. 13: ten days to revert a decommissioning; LOCKED has no limit."""
    late = NOW - UNDO_WINDOW_MS - 1
    packs.add("D1", Status.DISPENSED, holder=3, updated=late)
    packs.add("K1", Status.LOCKED, holder=3, updated=late)
    assert refusal(packs, EventKind.UNDO, "D1",
                   party_id="PHARM") == "more than 10 days since it was decommissioned"
    run(packs, EventKind.UNDO, "K1", party_id="PHARM")
    assert packs.records[code("K1").key()].status is Status.ACTIVE


def test_only_the_decommissioning_party_can_undo(packs: FakePacks) -> None:
    """Another party's undo is refused."""
    packs.add("D1", Status.DISPENSED, holder=3)
    assert refusal(packs, EventKind.UNDO, "D1",
                   party_id="DIST") == "only the party that decommissioned it can undo it"


def test_an_expired_pack_cannot_be_undone(packs: FakePacks) -> None:
    """A dispensed pack whose batch has expired stays dispensed."""
    packs.add("D1", Status.DISPENSED, holder=3)
    packs.expiry[1] = dt.date(2020, 1, 1)
    assert refusal(packs, EventKind.UNDO, "D1", party_id="PHARM") == "the pack has expired"


def test_destroying_a_case_destroys_its_contents_but_not_recalled_ones(packs: FakePacks) -> None:
    """A destroyed case takes its units with it; a recalled unit inside stays recalled."""
    packs.add("CASE", level=3)
    packs.add("U1", inside="CASE")
    packs.add("U2", Status.RECALLED, inside="CASE")
    run(packs, EventKind.DESTROY, "CASE")
    statuses = {s: packs.records[code(s).key()].status for s in ("CASE", "U1", "U2")}
    assert statuses == {"CASE": Status.DESTROYED, "U1": Status.DESTROYED,
                        "U2": Status.RECALLED}


def test_nothing_leaves_a_recalled_batch(packs: FakePacks) -> None:
    """A pack of a recalled batch cannot be shipped, dispensed or destroyed."""
    packs.add("A1", holder=2)
    packs.holds[1] = Status.RECALLED
    for kind, extra in ((EventKind.SHIP, {"destination": "PHARM"}),
                        (EventKind.DECOMMISSION, {"target": Status.DISPENSED}),
                        (EventKind.DESTROY, {})):
        assert refusal(packs, kind, "A1", **extra) == "is RECALLED: its batch was recalled"


def test_commissioning_into_a_recalled_batch_is_refused(packs: FakePacks) -> None:
    """A code cannot be put on a pack of a recalled batch."""
    packs.add("N1", Status.ISSUED, batch=0)
    packs.holds[2] = Status.RECALLED
    assert refusal(packs, EventKind.COMMISSION, "N1", lot="L2") == "its batch is recalled"
    run(packs, EventKind.COMMISSION, "N1", lot="L1", party_id="PLANT")
    assert packs.records[code("N1").key()].status is Status.ACTIVE
    assert packs.commissions == [(1, code("N1").key())]


def test_a_receipt_outside_the_batch_regions_raises_a_diversion_alert(packs: FakePacks) -> None:
    """Units received where their batch may not be sold raise one diversion alert, noted."""
    packs.regions[1] = ("11",)   # Beijing only
    key = packs.add("A1", holder=3)
    packs.records[key] = packs.records[key].evolve(flags=FLAG_IN_TRANSIT)
    _, result = run(packs, EventKind.RECEIVE, "A1", party_id="PHARM")
    assert [a.alert.source for a in packs.alerts] == [ALERT_SOURCE_RECEIPT]
    assert result.notes and result.notes[0].startswith("DIVERSION:")
    assert packs.flows and packs.flows[0][1] is Flow.RECEIVED


def test_a_receipt_by_someone_other_than_the_addressee_is_noted(packs: FakePacks) -> None:
    """A pack shipped to one party and received by another is applied with a note."""
    key = packs.add("A1", holder=2)
    packs.records[key] = packs.records[key].evolve(flags=FLAG_IN_TRANSIT)
    _, result = run(packs, EventKind.RECEIVE, "A1", party_id="PLANT")
    assert result.notes == [f"{code('A1').text()} was shipped to DIST but received by PLANT"]


def test_the_alert_sources_and_pool_states_are_the_api_s_numbers() -> None:
    """The numbers the domain stores are those the API defines for them."""
    assert (ALERT_SOURCE_RECEIPT, ALERT_SOURCE_DISPENSE) == (
        tpb.ALERT_SOURCE_RECEIPT, tpb.ALERT_SOURCE_DISPENSE)
    assert (store.POOL_STATE_OPEN, store.POOL_STATE_COMPLETE) == (
        ipb.POOL_STATE_OPEN, ipb.POOL_STATE_COMPLETE)


def test_a_pharmacy_credential_cannot_report_stolen_or_destroy_what_others_hold(
        packs: FakePacks) -> None:
    """A pharmacy's credential marking a distributor's pack STOLEN or a plant's DESTROYED is
    refused and both packs stay ACTIVE."""
    packs.add("D1", holder=2)
    packs.add("P1", holder=1)
    assert "held by DIST, not PHARM" in refusal(packs, EventKind.REPORT_STOLEN, "D1",
                                                 custodian="PHARM")
    assert "held by PLANT, not PHARM" in refusal(packs, EventKind.DESTROY, "P1",
                                                  custodian="PHARM")
    assert "held by PLANT, not DIST" in refusal(packs, EventKind.DESTROY, "P1",
                                                 custodian="DIST")
    assert {packs.records[code(s).key()].status for s in ("D1", "P1")} == {Status.ACTIVE}


def test_a_holder_credential_destroys_its_own_pack(packs: FakePacks) -> None:
    """The party holding a pack may destroy it with its own credential."""
    packs.add("D1", holder=2)
    run(packs, EventKind.DESTROY, "D1", custodian="DIST")
    assert packs.records[code("D1").key()].status is Status.DESTROYED


def test_a_line_credential_cannot_disaggregate_a_distributors_case(packs: FakePacks) -> None:
    """Taking units out of a case a distributor holds is refused to the plant's credential."""
    packs.add("CASE", level=3, holder=2)
    packs.add("U1", holder=2, inside="CASE")
    assert "held by DIST, not PLANT" in refusal(packs, EventKind.DISAGGREGATE, "U1",
                                                 parent=code("CASE"), custodian="PLANT")
    assert packs.parents[code("U1").key()] == code("CASE").key()


def test_a_pharmacy_cannot_dispense_a_pack_inside_a_distributors_case(
        packs: FakePacks) -> None:
    """Dispensing a unit still in the distributor's case is refused to the pharmacy."""
    packs.add("CASE", level=3, holder=2)
    packs.add("U1", holder=2, inside="CASE")
    assert "held by DIST, not PHARM" in refusal(packs, EventKind.DECOMMISSION, "U1",
                                                 target=Status.DISPENSED, custodian="PHARM")
    assert packs.records[code("U1").key()].status is Status.ACTIVE


def test_a_pack_in_transit_is_not_yet_its_destinations(packs: FakePacks) -> None:
    """The destination of a shipment cannot destroy or dispense a pack before receiving it."""
    packs.add("A1", holder=3)
    packs.records[code("A1").key()] = packs.records[code("A1").key()].evolve(
        flags=FLAG_IN_TRANSIT)
    assert "in transit" in refusal(packs, EventKind.DESTROY, "A1", custodian="PHARM")


def test_credentials_bound_to_no_party_and_free_kinds_skip_custody(packs: FakePacks) -> None:
    """The tenant's own credentials act on any pack; commissioning and voiding need no
    custody."""
    packs.add("P1", holder=1)
    run(packs, EventKind.DESTROY, "P1")
    assert packs.records[code("P1").key()].status is Status.DESTROYED
    assert CUSTODY[EventKind.COMMISSION] is Custody.FREE
    assert set(CUSTODY) == set(HANDLERS)


def test_only_the_admin_returns_codes_of_a_pool_that_names_no_requester(
        packs: FakePacks) -> None:
    """Codes of a pool issued before requesters were kept go back only by the tenant's admin:
    a line credential is refused and the code stays ISSUED."""
    packs.add("U1", Status.ISSUED)
    assert "only the tenant's admin" in refusal(packs, EventKind.VOID, "U1", credential="line-7",
                                                custodian="PLANT")
    assert packs.records[code("U1").key()].status is Status.ISSUED
    run(packs, EventKind.VOID, "U1")
    assert packs.records[code("U1").key()].status is Status.VOIDED
