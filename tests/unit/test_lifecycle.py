"""Lifecycle events applied to a real ledger: state machine, undo rules, aggregation, custody,
atomic and best-effort requests, group commit, idempotency and counters."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pharmatrace.v1 import common_pb2 as cpb

from tests.ledgers import dev_codes
from tracecore.codes import Code, Scheme
from tracecore.errors import InvalidArgument, NotFound
from tracecore.events import Event, EventKind
from tracecore.ledger.contents import resolved
from tracecore.ledger.counters import Flow, batch_counts, flow_counts, product_counts
from tracecore.ledger.journal import Journal
from tracecore.ledger.lifecycle import Request, Result, apply
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord
from tracecore.ledger.store import Ledger, PoolRequest
from tracecore.status import DECOMMISSIONED, Status

GTIN = "09501101530003"
LOT = "LOT-A1"
#: A batch that expires on 2026-03-05, a few days after T0.
SHORT_LOT = "LOT-SHORT"
DAY = 86_400_000
#: 2026-03-01 08:00 UTC: the time every test starts at.
T0 = int(dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC).timestamp() * 1000)
UNIT, BUNDLE, CASE, PALLET = 1, 2, 3, 4
PARTIES = {"PLANT": "110105", "DIST": "440305", "PHARM": "440106", "PHARM-2": "440106"}
K = EventKind
S = Status


class _World:
    """One tenant's ledger in a temporary directory, with a product, two batches and parties."""

    def __init__(self, path: Path) -> None:
        self.ledger = Ledger(path / "ledger", tenant="test", codes=dev_codes("test"))
        self._pools = itertools.count(1)
        ledger = self.ledger
        ledger.register_product(cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg"), T0)
        ledger.add_batch(cpb.Batch(product=GTIN, lot=LOT, expires_on="2030-12-31"), T0)
        ledger.add_batch(cpb.Batch(product=GTIN, lot=SHORT_LOT, expires_on="2026-03-05"), T0)
        for party_id, region in PARTIES.items():
            ledger.add_party(cpb.Party(party_id=party_id, name=party_id, region=region), T0)

    # -- making codes ---------------------------------------------------------------------------

    def issued(self, n: int, level: int = UNIT, lot: str = LOT) -> list[Code]:
        """``n`` new codes of one pool, ISSUED."""
        pool = next(self._pools)
        request_id = f"pool-{pool}"
        self.ledger.open_pool(PoolRequest(request_id, GTIN, lot, level, n), 1, T0)
        serials = [f"P{pool:03d}L{level}N{i:05d}" for i in range(n)]
        self.ledger.append_pool_codes(request_id, 0, serials, 1, T0, _no_redraw)
        return [Code(Scheme.GS1, GTIN, serial) for serial in serials]

    def active(self, n: int, level: int = UNIT, party: str = "PLANT", lot: str = LOT
               ) -> list[Code]:
        """``n`` new codes commissioned at ``party``."""
        codes = self.issued(n, level, lot)
        self.ok(K.COMMISSION, codes, party_id=party)
        return codes

    def in_status(self, status: Status, party: str = "PHARM") -> Code:
        """A new unit pack in ``status``, reached through the events that lead there."""
        (code,) = self.issued(1)
        if status is S.ISSUED:
            return code
        if status is S.VOIDED:
            self.ok(K.VOID, [code])
            return code
        self.ok(K.COMMISSION, [code], party_id=party)
        if status in DECOMMISSIONED:
            self.ok(K.DECOMMISSION, [code], party_id=party, target=status)
        elif status is S.DESTROYED:
            self.ok(K.DESTROY, [code], party_id=party)
        elif status is S.STOLEN:
            self.ok(K.REPORT_STOLEN, [code], party_id=party)
        elif status in (S.RECALLED, S.WITHDRAWN):
            self.force(code, status=status)
        return code

    def force(self, code: Code, **changes: Any) -> None:
        """Rewrites a code record directly: for states no event here can reach yet (recall)."""
        record = self.record(code).evolve(**changes)
        self.ledger.env.write(
            lambda txn: txn.put(self.ledger.codes.stored(code.key()), record.pack(),
                                db=self.ledger.db["codes"]))

    # -- applying events ------------------------------------------------------------------------

    def apply(self, *requests: Request, now_ms: int = T0) -> list[Result]:
        return apply(self.ledger, list(requests), now_ms)

    def do(self, kind: EventKind, codes: list[Code], *, when_ms: int = T0,
           best_effort: bool = False, now_ms: int | None = None, **fields: Any) -> Result:
        """One request of one event, recorded at ``now_ms`` (default: the event's own time)."""
        event = Event(kind, tuple(codes), when_ms, **fields)
        return self.apply(Request([event], best_effort),
                          now_ms=when_ms if now_ms is None else now_ms)[0]

    def ok(self, kind: EventKind, codes: list[Code], **fields: Any) -> Result:
        """``do``, expecting every code to be applied."""
        result = self.do(kind, codes, **fields)
        assert result.applied and not result.failures, result
        return result

    # -- reading the ledger ---------------------------------------------------------------------

    def record(self, code: Code) -> CodeRecord:
        """A pack's record as the ledger answers it: inside a container, with its top
        container's custody."""
        with self.ledger.env.read() as txn:
            record = self.ledger.code_record(txn, code.key())
            assert record is not None
            return resolved(self.ledger, txn, code.key(), record)

    def raw(self, *codes: Code) -> list[bytes]:
        with self.ledger.env.read() as txn:
            stored = [self.ledger.code_data(txn, c.key()) for c in codes]
        assert all(s is not None for s in stored)
        return [bytes(s) for s in stored if s is not None]

    def status(self, code: Code) -> Status:
        return self.record(code).status

    def holder(self, code: Code) -> str:
        ref = self.record(code).holder_ref
        with self.ledger.env.read() as txn:
            return self.ledger.party_by_ref(txn, ref).party_id if ref else ""

    def parent(self, code: Code) -> Code | None:
        with self.ledger.env.read() as txn:
            parent = self.ledger.parent_of(txn, code.key())
            return Code.from_key(parent) if parent is not None else None

    def children(self, code: Code) -> set[Code]:
        with self.ledger.env.read() as txn:
            return {Code.from_key(k) for k in self.ledger.children_of(txn, code.key())[0]}

    def journal_length(self) -> int:
        with self.ledger.env.read() as txn:
            return Journal(self.ledger).head(txn)[0]

    def journal(self) -> list[Any]:
        with self.ledger.env.read() as txn:
            return list(Journal(self.ledger).scan(txn))

    def batch_ref(self, lot: str = LOT) -> int:
        return self.ledger.batch(GTIN, lot)[0]

    def party_ref(self, party_id: str) -> int:
        return self.ledger.party(party_id)[0]

    def batch_counts(self, lot: str = LOT) -> dict[tuple[str, Status, bool], int]:
        """(holder, status, in transit) -> units of the batch, from the counters."""
        with self.ledger.env.read() as txn:
            rows = batch_counts(txn, self.ledger.db["counters"], self.batch_ref(lot))
            names = {ref: self.ledger.party_by_ref(txn, ref).party_id
                     for ref, *_ in rows if ref}
        return {(names.get(holder, ""), Status(status), bool(flags & FLAG_IN_TRANSIT)): n
                for holder, status, flags, n in rows}

    def product_counts(self) -> dict[tuple[str, Status], int]:
        """(region, status) -> units of the product, from the counters."""
        product_ref = self.ledger.product(GTIN)[0]
        with self.ledger.env.read() as txn:
            rows = product_counts(txn, self.ledger.db["counters"], product_ref)
        return {(f"{region:06d}" if region else "", Status(status)): n
                for region, status, n in rows}

    def flow_counts(self) -> dict[tuple[int, str, Flow], int]:
        """(day, region, flow) -> units, from the counters."""
        with self.ledger.env.read() as txn:
            rows = flow_counts(txn, self.ledger.db["counters"], 0, 2**32 - 1)
        return {(day, f"{region:06d}", Flow(flow)): n for day, _, region, flow, n in rows}


def _no_redraw(n: int) -> list[str]:
    raise AssertionError("test serials never collide")


@pytest.fixture
def _world(tmp_path: Path) -> Iterator[_World]:
    world = _World(tmp_path)
    yield world
    world.ledger.close()


def _reasons(result: Result) -> str:
    return " | ".join(f.reason for f in result.failures)


# -- every status against every event kind ------------------------------------------------------

_STATES = [*Status]
#: What each kind does to one unit pack held by PHARM, and the statuses it is allowed from.
_KIND_ALLOWED_FROM: dict[EventKind, frozenset[Status]] = {
    K.COMMISSION: frozenset({S.ISSUED}),
    K.VOID: frozenset({S.ISSUED}),
    K.DECOMMISSION: frozenset({S.ACTIVE}),
    K.UNDO: DECOMMISSIONED,
    K.DESTROY: frozenset({S.ACTIVE}) | DECOMMISSIONED,
    K.REPORT_STOLEN: frozenset({S.ACTIVE}) | DECOMMISSIONED,
    K.SHIP: frozenset({S.ACTIVE}),
    K.AGGREGATE: frozenset({S.ACTIVE}),
}
_STATUS_AFTER = {K.COMMISSION: S.ACTIVE, K.VOID: S.VOIDED, K.DECOMMISSION: S.DISPENSED,
                 K.UNDO: S.ACTIVE, K.DESTROY: S.DESTROYED, K.REPORT_STOLEN: S.STOLEN}


def _event_fields(world: _World, kind: EventKind) -> dict[str, Any]:
    fields: dict[str, Any] = {"party_id": "PHARM", "when_ms": T0 + DAY}
    if kind is K.COMMISSION:
        fields["lot"] = LOT
    elif kind is K.DECOMMISSION:
        fields["target"] = S.DISPENSED
    elif kind is K.SHIP:
        fields["destination"] = "DIST"
    elif kind is K.AGGREGATE:
        fields["parent"] = world.active(1, CASE, party="PHARM")[0]
    return fields


@pytest.mark.parametrize("kind", list(_KIND_ALLOWED_FROM), ids=str)
@pytest.mark.parametrize("status", _STATES, ids=lambda s: s.name)
def test_each_event_kind_applies_only_to_the_statuses_the_state_machine_allows(
    _world: _World, status: Status, kind: EventKind
) -> None:
    """An allowed event changes the pack and is journalled; any other leaves it byte-for-byte
    unchanged, records nothing, and says why naming the pack's status."""
    code = _world.in_status(status)
    fields = _event_fields(_world, kind)
    before, length = _world.raw(code), _world.journal_length()

    result = _world.do(kind, [code], **fields)

    if status in _KIND_ALLOWED_FROM[kind]:
        assert result.applied and not result.failures, result
        assert _world.journal_length() == length + 1
        after = _world.record(code)
        assert after.status is _STATUS_AFTER.get(kind, status)
        if kind is K.SHIP:
            assert after.in_transit and _world.holder(code) == "DIST"
        if kind is K.AGGREGATE:
            assert _world.parent(code) == fields["parent"]
    else:
        assert not result.applied
        assert [f.code for f in result.failures] == [code.text()]
        reason = _reasons(result).lower().replace("_", " ")
        assert status.name.lower().replace("_", " ") in reason
        assert _world.raw(code) == before
        assert _world.journal_length() == length


def test_an_unknown_code_is_refused_as_not_issued_by_this_tenant(_world: _World) -> None:
    """A code the ledger never issued cannot be commissioned; the reason says so."""
    stranger = Code(Scheme.GS1, GTIN, "NEVERISSUED1")
    result = _world.do(K.COMMISSION, [stranger], party_id="PLANT")
    assert not result.applied
    assert "not issued by this tenant" in _reasons(result)


def test_commission_binds_batch_level_holder_and_region(_world: _World) -> None:
    """Commissioned codes are ACTIVE, in the pool's batch, held by the plant, in its region."""
    (code,) = _world.active(1, party="PLANT")
    record = _world.record(code)
    assert (record.status, record.batch_ref, record.level) == (S.ACTIVE, _world.batch_ref(), UNIT)
    assert (_world.holder(code), f"{record.region:06d}") == ("PLANT", PARTIES["PLANT"])


def test_commission_into_a_batch_other_than_the_pools_is_refused(_world: _World) -> None:
    """A pool issued for one batch cannot be commissioned into another."""
    codes = _world.issued(1, lot=LOT)
    result = _world.do(K.COMMISSION, codes, lot=SHORT_LOT, party_id="PLANT")
    assert not result.applied
    assert "another batch" in _reasons(result)


def test_decommissioning_twice_is_refused_as_already_dispensed(_world: _World) -> None:
    """A second dispense of the same pack is refused with 'already dispensed'."""
    code = _world.in_status(S.DISPENSED)
    result = _world.do(K.DECOMMISSION, [code], party_id="PHARM", target=S.DISPENSED)
    assert not result.applied
    assert _reasons(result) == "already dispensed"


def test_decommission_to_a_status_that_is_not_off_market_refuses_the_request(
    _world: _World,
) -> None:
    """'Decommissioning' into DESTROYED is a malformed request naming the target field."""
    (code,) = _world.active(1)
    result = _world.do(K.DECOMMISSION, [code], target=S.DESTROYED)
    assert not result.applied
    assert isinstance(result.error, InvalidArgument) and result.error.field == "target"
    assert _world.status(code) is S.ACTIVE


def test_an_unregistered_party_refuses_the_request_naming_the_field(_world: _World) -> None:
    """An event at a party the tenant never registered is NOT_FOUND, and nothing changes."""
    codes = _world.issued(2)
    result = _world.do(K.COMMISSION, codes, party_id="NOBODY")
    assert not result.applied
    assert isinstance(result.error, NotFound) and result.error.field == "context.party_id"
    assert {_world.status(c) for c in codes} == {S.ISSUED}


def test_destroying_a_pallet_destroys_everything_inside(_world: _World) -> None:
    """Destroying a container destroys every pack packed in it, at any depth."""
    units = _world.active(4)
    (case,) = _world.active(1, CASE)
    (pallet,) = _world.active(1, PALLET)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.ok(K.AGGREGATE, [case], parent=pallet)

    result = _world.ok(K.DESTROY, [pallet], party_id="PLANT")

    assert result.changed == 6
    assert {_world.status(c) for c in [*units, case, pallet]} == {S.DESTROYED}


def test_a_recall_sent_as_a_per_pack_event_is_refused_alone_in_its_group(
    _world: _World,
) -> None:
    """Recall and withdrawal are batch and product decisions: as per-pack events they are
    refused as malformed naming `kind`, and the other requests committed with them apply."""
    (active,) = _world.active(1)
    units = _world.issued(1)
    results = _world.apply(
        Request([Event(K.RECALL, (active,), T0, reason="contamination")]),
        Request([Event(K.WITHDRAW, (active,), T0)]),
        Request([Event(K.COMMISSION, tuple(units), T0, party_id="PLANT")]),
    )
    assert [r.applied for r in results] == [False, False, True]
    assert all(isinstance(r.error, InvalidArgument) and r.error.field == "kind"
               for r in results[:2])
    assert (_world.status(active), _world.status(units[0])) == (S.ACTIVE, S.ACTIVE)


def test_a_commission_with_an_impossible_level_is_refused_alone_in_its_group(
    _world: _World,
) -> None:
    """A commission at packaging level 300 is refused; the request committed with it applies."""
    good, bad = _world.issued(1), _world.issued(1)
    results = _world.apply(
        Request([Event(K.COMMISSION, tuple(good), T0, party_id="PLANT")]),
        Request([Event(K.COMMISSION, tuple(bad), T0, party_id="PLANT", level=300)]),
    )
    assert [r.applied for r in results] == [True, False]
    assert _world.status(good[0]) is S.ACTIVE


# -- undo (EU FMD Art. 13) ---------------------------------------------------------------------


def _dispensed_at_pharmacy(world: _World, target: Status = S.DISPENSED, lot: str = LOT) -> Code:
    """A unit received by PHARM and decommissioned there at T0."""
    (code,) = world.active(1, party="PLANT", lot=lot)
    world.ok(K.SHIP, [code], party_id="PLANT", destination="PHARM", when_ms=T0 - 2 * DAY)
    world.ok(K.RECEIVE, [code], party_id="PHARM", when_ms=T0 - DAY)
    world.ok(K.DECOMMISSION, [code], party_id="PHARM", target=target, when_ms=T0)
    return code


def test_undo_by_the_decommissioning_party_makes_the_pack_active_again(_world: _World) -> None:
    """The pharmacy that dispensed a pack can put it back on the market the next day."""
    code = _dispensed_at_pharmacy(_world)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + DAY)
    assert _world.status(code) is S.ACTIVE
    assert _world.holder(code) == "PHARM"


def test_undo_by_another_party_is_refused(_world: _World) -> None:
    """Only the party that decommissioned a pack may undo it."""
    code = _dispensed_at_pharmacy(_world)
    result = _world.do(K.UNDO, [code], party_id="PHARM-2", when_ms=T0 + DAY)
    assert not result.applied
    assert "only the party that decommissioned it" in _reasons(result)
    assert _world.status(code) is S.DISPENSED


def test_undo_needs_the_party(_world: _World) -> None:
    """An undo that does not say who is undoing is refused."""
    code = _dispensed_at_pharmacy(_world)
    result = _world.do(K.UNDO, [code], when_ms=T0 + DAY)
    assert not result.applied
    assert "needs the party" in _reasons(result)


def test_undo_one_millisecond_inside_the_ten_day_window_is_applied(_world: _World) -> None:
    """Recorded 10 days minus 1 ms after the dispense was, the undo is still allowed."""
    code = _dispensed_at_pharmacy(_world)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 10 * DAY - 1)
    assert _world.status(code) is S.ACTIVE


def test_undo_one_millisecond_past_the_ten_day_window_is_refused(_world: _World) -> None:
    """Recorded 10 days plus 1 ms after the dispense was, the undo is refused."""
    code = _dispensed_at_pharmacy(_world)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 10 * DAY + 1)
    assert not result.applied
    assert "more than 10 days" in _reasons(result)
    assert _world.status(code) is S.DISPENSED


def test_a_locked_pack_can_be_unlocked_after_thirty_days(_world: _World) -> None:
    """LOCKED has no time limit: the holder can undo it a month later."""
    code = _dispensed_at_pharmacy(_world, target=S.LOCKED)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 30 * DAY)
    assert _world.status(code) is S.ACTIVE


def test_undo_of_an_expired_pack_is_refused(_world: _World) -> None:
    """A pack whose batch expired (2026-03-05) cannot be put back on the market on 03-06."""
    code = _dispensed_at_pharmacy(_world, lot=SHORT_LOT)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 5 * DAY)
    assert not result.applied
    assert "expired" in _reasons(result)
    assert _world.status(code) is S.DISPENSED


def test_undo_of_a_pack_of_the_short_batch_before_it_expires_is_applied(_world: _World) -> None:
    """The same short-dated pack can still be undone on its expiry day."""
    code = _dispensed_at_pharmacy(_world, lot=SHORT_LOT)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 4 * DAY)
    assert _world.status(code) is S.ACTIVE


@pytest.mark.parametrize("status", [S.RECALLED, S.WITHDRAWN, S.DESTROYED, S.STOLEN],
                         ids=lambda s: s.name)
def test_undo_of_a_recalled_withdrawn_destroyed_or_stolen_pack_is_refused(
    _world: _World, status: Status
) -> None:
    """Recalled, withdrawn, destroyed and stolen packs never come back to ACTIVE."""
    code = _dispensed_at_pharmacy(_world)
    if status in (S.RECALLED, S.WITHDRAWN):
        _world.force(code, status=status)
    else:
        kind = K.DESTROY if status is S.DESTROYED else K.REPORT_STOLEN
        _world.ok(kind, [code], party_id="PHARM", when_ms=T0 + DAY)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 2 * DAY)
    assert not result.applied
    assert status.name in _reasons(result)
    assert _world.status(code) is status


def test_an_undo_recorded_a_month_after_the_dispense_is_refused_whatever_time_it_claims(
    _world: _World,
) -> None:
    """The 10 days run on the ledger's clock: back-dating the undo's event time does not help."""
    code = _dispensed_at_pharmacy(_world)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + DAY,
                       now_ms=T0 + 30 * DAY)
    assert not result.applied
    assert "more than 10 days" in _reasons(result)


def test_an_undo_recorded_in_time_is_applied_whatever_time_it_claims(_world: _World) -> None:
    """An undo recorded the next day is within the window even if its event time is late."""
    code = _dispensed_at_pharmacy(_world)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 3 * DAY, now_ms=T0 + DAY)
    assert _world.status(code) is S.ACTIVE


def test_an_undo_of_an_expired_pack_is_refused_even_when_back_dated(_world: _World) -> None:
    """Recorded on 03-06, after the batch expired on 03-05, an undo claiming 03-02 is refused."""
    code = _dispensed_at_pharmacy(_world, lot=SHORT_LOT)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + DAY,
                       now_ms=T0 + 5 * DAY)
    assert not result.applied


def test_an_undo_with_an_impossible_event_time_is_refused_alone_in_its_group(
    _world: _World,
) -> None:
    """An undo dated in the year 146 million is refused; the request committed with it applies."""
    code = _dispensed_at_pharmacy(_world)
    units = _world.issued(1)
    results = _world.apply(
        Request([Event(K.UNDO, (code,), 2**62, party_id="PHARM")]),
        Request([Event(K.COMMISSION, tuple(units), T0, party_id="PLANT")]),
        now_ms=T0 + DAY,
    )
    assert [r.applied for r in results] == [False, True]


# -- aggregation -------------------------------------------------------------------------------


def test_units_bundles_cases_and_pallets_nest_four_levels_deep(_world: _World) -> None:
    """unit -> bundle -> case -> pallet: each pack records its container and each container its
    contents."""
    units = _world.active(2)
    (bundle,) = _world.active(1, BUNDLE)
    (case,) = _world.active(1, CASE)
    (pallet,) = _world.active(1, PALLET)
    _world.ok(K.AGGREGATE, units, parent=bundle)
    _world.ok(K.AGGREGATE, [bundle], parent=case)
    _world.ok(K.AGGREGATE, [case], parent=pallet)
    assert [_world.parent(c) for c in [*units, bundle, case, pallet]] == [
        bundle, bundle, case, pallet, None]
    assert _world.children(bundle) == set(units)
    assert _world.children(pallet) == {case}


@pytest.mark.parametrize(("child_level", "parent_level"),
                         [(CASE, CASE), (PALLET, CASE), (CASE, UNIT), (UNIT, UNIT)])
def test_a_pack_goes_only_into_a_container_of_a_higher_packaging_level(
    _world: _World, child_level: int, parent_level: int
) -> None:
    """A case cannot go into a case or a unit, a pallet not into a case."""
    (child,) = _world.active(1, child_level)
    (parent,) = _world.active(1, parent_level)
    result = _world.do(K.AGGREGATE, [child], parent=parent)
    assert not result.applied
    assert f"packaging level {child_level} cannot go into level {parent_level}" in _reasons(result)
    assert _world.parent(child) is None


def test_a_pack_in_one_container_cannot_be_packed_into_another(_world: _World) -> None:
    """A unit already in a case is refused by a second case until it is taken out."""
    (unit,) = _world.active(1)
    first, second = _world.active(2, CASE)
    _world.ok(K.AGGREGATE, [unit], parent=first)
    result = _world.do(K.AGGREGATE, [unit], parent=second)
    assert not result.applied
    assert "already in a container" in _reasons(result)
    assert _world.parent(unit) == first
    assert _world.children(second) == set()


@pytest.mark.parametrize("status", [S.ISSUED, S.DISPENSED, S.DESTROYED], ids=lambda s: s.name)
def test_only_active_containers_accept_packs(_world: _World, status: Status) -> None:
    """A container that is not ACTIVE (not commissioned, dispensed, destroyed) takes no packs."""
    (unit,) = _world.active(1)
    (case,) = _world.issued(1, CASE)
    if status is not S.ISSUED:
        _world.ok(K.COMMISSION, [case], party_id="PHARM")
        if status is S.DESTROYED:
            _world.ok(K.DESTROY, [case])
        else:
            _world.ok(K.DECOMMISSION, [case], target=status)
    result = _world.do(K.AGGREGATE, [unit], parent=case)
    assert not result.applied
    assert f"parent container is {status.name}" in _reasons(result)


def test_a_container_cannot_contain_itself_or_its_own_container(_world: _World) -> None:
    """No cycles: a case cannot go into itself, a pallet not into the case inside it."""
    (case,) = _world.active(1, CASE)
    (pallet,) = _world.active(1, PALLET)
    _world.ok(K.AGGREGATE, [case], parent=pallet)
    # Levels alone would refuse these; force levels so the cycle check itself is exercised.
    _world.force(pallet, level=2)
    assert "itself" in _reasons(_world.do(K.AGGREGATE, [case], parent=case))
    result = _world.do(K.AGGREGATE, [pallet], parent=case)
    assert not result.applied
    assert "the parent is inside this pack" in _reasons(result)


def test_disaggregating_named_children_takes_out_only_those(_world: _World) -> None:
    """Taking two units out of a case leaves the third inside."""
    units = _world.active(3)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.ok(K.DISAGGREGATE, units[:2], parent=case)
    assert _world.children(case) == {units[2]}
    assert [_world.parent(u) for u in units] == [None, None, case]


def test_disaggregating_with_no_children_named_empties_the_container(_world: _World) -> None:
    """A disaggregation naming no children takes everything out and journals each of them."""
    units = _world.active(3)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    result = _world.ok(K.DISAGGREGATE, [], parent=case)
    assert _world.children(case) == set()
    assert {_world.parent(u) for u in units} == {None}
    assert result.changed == 4
    recorded = _world.journal()[-1]
    assert sorted(recorded.codes) == sorted(u.key() for u in units)


def test_disaggregating_a_pack_from_a_container_it_is_not_in_is_refused(_world: _World) -> None:
    """Naming the wrong container refuses the disaggregation."""
    (unit,) = _world.active(1)
    first, second = _world.active(2, CASE)
    _world.ok(K.AGGREGATE, [unit], parent=first)
    result = _world.do(K.DISAGGREGATE, [unit], parent=second)
    assert not result.applied
    assert "not in that container" in _reasons(result)
    assert _world.parent(unit) == first


def test_a_pack_inside_a_container_cannot_be_shipped_alone(_world: _World) -> None:
    """Shipping a unit that is packed in a case is refused: ship the case or unpack first."""
    (unit,) = _world.active(1)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, [unit], parent=case)
    result = _world.do(K.SHIP, [unit], party_id="PLANT", destination="DIST")
    assert not result.applied
    assert "inside a container" in _reasons(result)
    assert not _world.record(unit).in_transit


def test_a_pack_in_transit_cannot_be_packed_into_a_container(_world: _World) -> None:
    """A unit shipped to the distributor cannot be aggregated into a case at the plant."""
    (unit,) = _world.active(1)
    (case,) = _world.active(1, CASE)
    _world.ok(K.SHIP, [unit], party_id="PLANT", destination="DIST")
    result = _world.do(K.AGGREGATE, [unit], parent=case, party_id="PLANT")
    assert not result.applied
    assert "in transit" in _reasons(result)
    assert _world.parent(unit) is None


def test_a_pack_dispensed_from_an_opened_case_leaves_the_case(_world: _World) -> None:
    """A unit sold from a case is no longer in it, so shipping the case does not move it."""
    units = _world.active(2)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.ok(K.DECOMMISSION, units[:1], party_id="PLANT", target=S.DISPENSED)
    assert (_world.parent(units[0]), _world.children(case)) == (None, {units[1]})
    _world.ok(K.SHIP, [case], party_id="PLANT", destination="DIST")
    assert not _world.record(units[0]).in_transit
    assert _world.record(units[1]).in_transit


def test_exporting_a_case_exports_every_pack_inside(_world: _World) -> None:
    """An export decommissions the case and all it holds; the packs stay packed in it."""
    units = _world.active(3)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    result = _world.ok(K.DECOMMISSION, [case], party_id="PLANT", target=S.EXPORTED)
    assert result.changed == 4
    assert {_world.status(c) for c in [*units, case]} == {S.EXPORTED}
    assert _world.children(case) == set(units)


def test_exporting_a_case_leaves_its_already_dispensed_packs_as_they_are(
    _world: _World,
) -> None:
    """Packs inside that are no longer ACTIVE keep their status when their case is exported."""
    units = _world.active(2)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.force(units[0], status=S.LOCKED)
    result = _world.ok(K.DECOMMISSION, [case], party_id="PLANT", target=S.EXPORTED)
    assert result.changed == 2
    assert [_world.status(u) for u in units] == [S.LOCKED, S.EXPORTED]


def test_undoing_the_export_of_a_case_puts_its_packs_back_on_the_market(
    _world: _World,
) -> None:
    """Undo of an exported case makes the case and the packs exported with it ACTIVE again."""
    units = _world.active(3)
    (case,) = _world.active(1, CASE)
    _world.ok(K.AGGREGATE, units, parent=case)
    _world.ok(K.DECOMMISSION, [case], party_id="PLANT", target=S.EXPORTED)
    _world.ok(K.UNDO, [case], party_id="PLANT", when_ms=T0 + DAY)
    assert {_world.status(c) for c in [*units, case]} == {S.ACTIVE}


# -- custody: ship and receive -----------------------------------------------------------------


def _pallet_of_two_cases(world: _World) -> tuple[Code, list[Code], list[Code]]:
    """A pallet at PLANT holding two cases of three units each."""
    units = world.active(6)
    cases = world.active(2, CASE)
    (pallet,) = world.active(1, PALLET)
    world.ok(K.AGGREGATE, units[:3], parent=cases[0])
    world.ok(K.AGGREGATE, units[3:], parent=cases[1])
    world.ok(K.AGGREGATE, cases, parent=pallet)
    return pallet, cases, units


def test_shipping_a_pallet_moves_every_pack_inside_it(_world: _World) -> None:
    """Each case and unit on a shipped pallet is in transit and addressed to the destination."""
    pallet, cases, units = _pallet_of_two_cases(_world)
    result = _world.ok(K.SHIP, [pallet], party_id="PLANT", destination="DIST")
    assert result.changed == 9
    for code in [pallet, *cases, *units]:
        assert _world.record(code).in_transit, code
        assert _world.holder(code) == "DIST", code
        assert _world.status(code) is S.ACTIVE


def test_receiving_a_pallet_lands_every_pack_inside_it_at_the_receiver(_world: _World) -> None:
    """On receipt each pack leaves transit, is held by the receiver and is in its region."""
    pallet, cases, units = _pallet_of_two_cases(_world)
    _world.ok(K.SHIP, [pallet], party_id="PLANT", destination="DIST")
    result = _world.ok(K.RECEIVE, [pallet], party_id="DIST")
    assert result.notes == []
    for code in [pallet, *cases, *units]:
        record = _world.record(code)
        assert not record.in_transit
        assert (_world.holder(code), f"{record.region:06d}") == ("DIST", PARTIES["DIST"])


def test_a_receipt_by_a_party_other_than_the_addressee_is_applied_with_a_note(
    _world: _World,
) -> None:
    """A pallet addressed to DIST but received by PHARM is PHARM's, and the answer says so."""
    pallet, _, units = _pallet_of_two_cases(_world)
    _world.ok(K.SHIP, [pallet], party_id="PLANT", destination="DIST")
    result = _world.ok(K.RECEIVE, [pallet], party_id="PHARM")
    assert result.notes == [f"{pallet.text()} was shipped to DIST but received by PHARM"]
    assert {_world.holder(c) for c in [pallet, *units]} == {"PHARM"}


def test_receiving_a_pack_that_is_not_in_transit_is_refused(_world: _World) -> None:
    """A receipt of something nobody shipped is refused and changes nothing."""
    (unit,) = _world.active(1)
    before = _world.raw(unit)
    result = _world.do(K.RECEIVE, [unit], party_id="DIST")
    assert not result.applied
    assert "not in transit" in _reasons(result)
    assert _world.raw(unit) == before


def test_a_pack_in_transit_cannot_be_shipped_again_or_dispensed(_world: _World) -> None:
    """While on its way, a unit can be neither re-shipped nor decommissioned."""
    (unit,) = _world.active(1)
    _world.ok(K.SHIP, [unit], party_id="PLANT", destination="DIST")
    assert "already in transit" in _reasons(
        _world.do(K.SHIP, [unit], party_id="DIST", destination="PHARM"))
    assert "in transit" in _reasons(
        _world.do(K.DECOMMISSION, [unit], party_id="DIST", target=S.DISPENSED))


def test_only_the_holder_can_ship_a_pack(_world: _World) -> None:
    """A pack held by the plant cannot be shipped by the distributor."""
    (unit,) = _world.active(1, party="PLANT")
    result = _world.do(K.SHIP, [unit], party_id="DIST", destination="PHARM")
    assert not result.applied
    assert "is held by PLANT, not DIST" in _reasons(result)


# -- atomic, best effort, group commit ---------------------------------------------------------


def test_one_bad_code_leaves_the_whole_request_unapplied(_world: _World) -> None:
    """Without best effort, one unknown code means no code changes and no event is journalled."""
    good = _world.issued(3)
    bad = Code(Scheme.GS1, GTIN, "NEVERISSUED1")
    before, length = _world.raw(*good), _world.journal_length()
    result = _world.do(K.COMMISSION, [good[0], bad, *good[1:]], party_id="PLANT")
    assert (result.applied, result.changed, result.seqs) == (False, 0, [])
    assert [f.code for f in result.failures] == [bad.text()]
    assert _world.raw(*good) == before
    assert _world.journal_length() == length


def test_best_effort_applies_the_good_codes_and_reports_the_bad_one(_world: _World) -> None:
    """With best effort, the three good codes are commissioned and the bad one is reported."""
    good = _world.issued(3)
    bad = Code(Scheme.GS1, GTIN, "NEVERISSUED1")
    length = _world.journal_length()
    result = _world.do(K.COMMISSION, [good[0], bad, *good[1:]], party_id="PLANT",
                       best_effort=True)
    assert (result.applied, result.changed) == (True, 3)
    assert [(f.event, f.code) for f in result.failures] == [(0, bad.text())]
    assert {_world.status(c) for c in good} == {S.ACTIVE}
    assert result.seqs == [length + 1]
    assert list(_world.journal()[-1].codes) == [c.key() for c in (good[0], bad, *good[1:])]


def test_a_request_is_whole_across_its_events(_world: _World) -> None:
    """A request of commission then a refused aggregation applies neither event."""
    units = _world.issued(2)
    (case,) = _world.active(1, CASE)
    (stranger,) = _world.active(1, PALLET)
    length = _world.journal_length()
    request = Request([
        Event(K.COMMISSION, tuple(units), T0, party_id="PLANT"),
        Event(K.AGGREGATE, (*units, stranger), T0, parent=case),
    ])
    (result,) = _world.apply(request)
    assert not result.applied
    assert [(f.event, f.code) for f in result.failures] == [(1, stranger.text())]
    assert {_world.status(u) for u in units} == {S.ISSUED}
    assert _world.journal_length() == length


def test_in_a_group_a_failing_request_does_not_affect_the_others(_world: _World) -> None:
    """Three requests committed together: the middle one fails, the first and last apply."""
    first, second, third = _world.issued(1), _world.issued(1), _world.issued(1)
    length = _world.journal_length()
    results = _world.apply(
        Request([Event(K.COMMISSION, tuple(first), T0, party_id="PLANT")]),
        Request([Event(K.COMMISSION, (*second, Code(Scheme.GS1, GTIN, "NEVERISSUED1")), T0,
                       party_id="PLANT")]),
        Request([Event(K.COMMISSION, tuple(third), T0, party_id="PLANT")]),
    )
    assert [r.applied for r in results] == [True, False, True]
    assert [r.seqs for r in results] == [[length + 1], [], [length + 2]]
    assert [_world.status(c[0]) for c in (first, second, third)] == [S.ACTIVE, S.ISSUED, S.ACTIVE]


def test_a_request_refused_as_malformed_does_not_affect_the_others_in_its_group(
    _world: _World,
) -> None:
    """An unknown party refuses only its own request in the group."""
    first, second = _world.issued(1), _world.issued(1)
    results = _world.apply(
        Request([Event(K.COMMISSION, tuple(first), T0, party_id="NOBODY")]),
        Request([Event(K.COMMISSION, tuple(second), T0, party_id="PLANT")]),
    )
    assert isinstance(results[0].error, NotFound)
    assert [r.applied for r in results] == [False, True]
    assert (_world.status(first[0]), _world.status(second[0])) == (S.ISSUED, S.ACTIVE)


def test_in_a_group_each_request_sees_the_effects_of_the_ones_before(_world: _World) -> None:
    """Commission, aggregate, ship and receive as four requests of one group all apply."""
    units = _world.issued(2)
    (case,) = _world.issued(1, CASE)
    results = _world.apply(
        Request([Event(K.COMMISSION, (*units, case), T0, party_id="PLANT")]),
        Request([Event(K.AGGREGATE, tuple(units), T0, parent=case)]),
        Request([Event(K.SHIP, (case,), T0, party_id="PLANT", destination="DIST")]),
        Request([Event(K.RECEIVE, (case,), T0, party_id="DIST")]),
    )
    assert [r.applied for r in results] == [True, True, True, True]
    assert {_world.holder(c) for c in [*units, case]} == {"DIST"}
    assert _world.children(case) == set(units)
    assert [e.kind for e in _world.journal()[-4:]] == ["commission", "aggregate", "ship",
                                                       "receive"]


def test_a_group_request_builds_on_a_disaggregation_earlier_in_the_group(_world: _World) -> None:
    """A unit taken out of one case by one request can be packed into another by the next."""
    (unit,) = _world.active(1)
    first, second = _world.active(2, CASE)
    _world.ok(K.AGGREGATE, [unit], parent=first)
    results = _world.apply(
        Request([Event(K.DISAGGREGATE, (unit,), T0, parent=first)]),
        Request([Event(K.AGGREGATE, (unit,), T0, parent=second)]),
    )
    assert [r.applied for r in results] == [True, True]
    assert (_world.children(first), _world.children(second)) == (set(), {unit})


# -- idempotency -------------------------------------------------------------------------------


def test_an_event_id_seen_before_is_a_duplicate_that_changes_nothing(_world: _World) -> None:
    """Replaying a dispense under the same event id (a retry) is counted, not applied again."""
    (unit,) = _world.active(1, party="PHARM")
    first = _world.ok(K.DECOMMISSION, [unit], party_id="PHARM", target=S.DISPENSED,
                      event_id="urn:uuid:dispense-1")
    length, before = _world.journal_length(), _world.raw(unit)
    again = _world.do(K.DECOMMISSION, [unit], party_id="PHARM", target=S.DISPENSED,
                      event_id="urn:uuid:dispense-1")
    assert (first.duplicates, again.duplicates) == (0, 1)
    assert (again.applied, again.changed, again.failures, again.seqs) == (True, 0, [], [])
    assert _world.journal_length() == length
    assert _world.raw(unit) == before


def test_the_same_event_id_twice_in_one_group_is_applied_once(_world: _World) -> None:
    """Two requests carrying the same event id in one commit: the second is a duplicate."""
    units = _world.issued(2)

    def commission() -> Request:
        return Request([Event(K.COMMISSION, tuple(units), T0, party_id="PLANT",
                              event_id="line-7:42")])

    results = _world.apply(commission(), commission())
    assert [(r.applied, r.changed, r.duplicates) for r in results] == [(True, 2, 0), (True, 0, 1)]
    assert [e.event_id for e in _world.journal()] == ["line-7:42"]


def test_an_event_id_of_a_refused_event_can_be_used_again(_world: _World) -> None:
    """A request that was refused recorded nothing, so its retry under the same id applies."""
    units = _world.issued(1)
    refused = _world.do(K.COMMISSION, units, party_id="PLANT", lot=SHORT_LOT, event_id="e-1")
    assert not refused.applied
    retried = _world.ok(K.COMMISSION, units, party_id="PLANT", event_id="e-1")
    assert retried.duplicates == 0
    assert _world.status(units[0]) is S.ACTIVE


# -- counters ----------------------------------------------------------------------------------


def test_counters_follow_commission_ship_receive_and_dispense_of_units(_world: _World) -> None:
    """Batch, product and daily flow counters give exactly the units moved; cases are not
    counted."""
    units = _world.active(10, party="PLANT")
    (case,) = _world.active(1, CASE, party="PLANT")
    _world.ok(K.AGGREGATE, units[:4], parent=case)
    _world.ok(K.SHIP, [case, *units[4:7]], party_id="PLANT", destination="DIST")
    _world.ok(K.RECEIVE, [case, units[4]], party_id="DIST", when_ms=T0 + DAY)
    _world.ok(K.DISAGGREGATE, [], parent=case, party_id="DIST")
    _world.ok(K.SHIP, units[:2], party_id="DIST", destination="PHARM")
    _world.ok(K.RECEIVE, units[:2], party_id="PHARM", when_ms=T0 + 2 * DAY)
    _world.ok(K.DECOMMISSION, units[:1], party_id="PHARM", target=S.DISPENSED,
              when_ms=T0 + 2 * DAY)

    assert _world.batch_counts() == {
        ("PLANT", S.ACTIVE, False): 3,        # units[7:]
        ("DIST", S.ACTIVE, True): 2,          # units[5:7], shipped, not received
        ("DIST", S.ACTIVE, False): 3,         # units[2:5]
        ("PHARM", S.ACTIVE, False): 1,        # units[1]
        ("PHARM", S.DISPENSED, False): 1,     # units[0]
    }
    plant, dist, pharm = PARTIES["PLANT"], PARTIES["DIST"], PARTIES["PHARM"]
    assert _world.product_counts() == {
        (plant, S.ACTIVE): 5, (dist, S.ACTIVE): 3, (pharm, S.ACTIVE): 1,
        (pharm, S.DISPENSED): 1,
    }
    day = T0 // DAY
    assert _world.flow_counts() == {
        (day + 1, dist, Flow.RECEIVED): 5,
        (day + 2, pharm, Flow.RECEIVED): 2,
        (day + 2, pharm, Flow.SOLD): 1,
    }


def test_an_undone_dispense_is_counted_back_as_stock_and_as_returned(_world: _World) -> None:
    """Undoing a dispense moves the unit back to ACTIVE stock and counts one return."""
    code = _dispensed_at_pharmacy(_world)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + DAY)
    pharm = PARTIES["PHARM"]
    assert _world.product_counts() == {(pharm, S.ACTIVE): 1}
    day = T0 // DAY
    assert _world.flow_counts()[(day + 1, pharm, Flow.RETURNED)] == 1
    assert _world.flow_counts()[(day, pharm, Flow.SOLD)] == 1


def test_a_refused_request_leaves_the_counters_unchanged(_world: _World) -> None:
    """Counters move only with applied changes."""
    units = _world.active(2)
    before = (_world.batch_counts(), _world.product_counts())
    result = _world.do(K.SHIP, [*units, Code(Scheme.GS1, GTIN, "NEVERISSUED1")],
                       party_id="PLANT", destination="DIST")
    assert not result.applied
    assert (_world.batch_counts(), _world.product_counts()) == before


def test_voiding_unused_codes_does_not_count_them_as_packs(_world: _World) -> None:
    """Codes returned unused were never on a pack: the batch and product counters ignore them."""
    codes = _world.issued(3)
    _world.ok(K.VOID, codes, reason="unused")
    assert _world.batch_counts() == {}
    assert _world.product_counts() == {}
