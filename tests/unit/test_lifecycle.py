"""Lifecycle events applied to a real ledger: the state machine (every status against every event
kind) and the undo rules (EU FMD Art. 13)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lifecycle_world import (
    CASE,
    DAY,
    GTIN,
    LOT,
    PALLET,
    PARTIES,
    SHORT_LOT,
    T0,
    UNIT,
    K,
    S,
    World,
    dispensed_at_pharmacy,
    reasons,
)
from tracecore.codes import Code, Scheme
from tracecore.errors import InvalidArgument, NotFound
from tracecore.events import Event, EventKind
from tracecore.ledger.lifecycle import Request
from tracecore.status import DECOMMISSIONED, Status

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


def _event_fields(world: World, kind: EventKind) -> dict[str, Any]:
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
    _world: World, status: Status, kind: EventKind
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
        reason = reasons(result).lower().replace("_", " ")
        assert status.name.lower().replace("_", " ") in reason
        assert _world.raw(code) == before
        assert _world.journal_length() == length


def test_an_unknown_code_is_refused_as_not_issued_by_this_tenant(_world: World) -> None:
    """A code the ledger never issued cannot be commissioned; the reason says so."""
    stranger = Code(Scheme.GS1, GTIN, "NEVERISSUED1")
    result = _world.do(K.COMMISSION, [stranger], party_id="PLANT")
    assert not result.applied
    assert "not issued by this tenant" in reasons(result)


def test_commission_binds_batch_level_holder_and_region(_world: World) -> None:
    """Commissioned codes are ACTIVE, in the pool's batch, held by the plant, in its region."""
    (code,) = _world.active(1, party="PLANT")
    record = _world.record(code)
    assert (record.status, record.batch_ref, record.level) == (S.ACTIVE, _world.batch_ref(), UNIT)
    assert (_world.holder(code), f"{record.region:06d}") == ("PLANT", PARTIES["PLANT"])


def test_commission_into_a_batch_other_than_the_pools_is_refused(_world: World) -> None:
    """A pool issued for one batch cannot be commissioned into another."""
    codes = _world.issued(1, lot=LOT)
    result = _world.do(K.COMMISSION, codes, lot=SHORT_LOT, party_id="PLANT")
    assert not result.applied
    assert "another batch" in reasons(result)


def test_decommissioning_twice_is_refused_as_already_dispensed(_world: World) -> None:
    """A second dispense of the same pack is refused with 'already dispensed'."""
    code = _world.in_status(S.DISPENSED)
    result = _world.do(K.DECOMMISSION, [code], party_id="PHARM", target=S.DISPENSED)
    assert not result.applied
    assert reasons(result) == "already dispensed"


def test_decommission_to_a_status_that_is_not_off_market_refuses_the_request(
    _world: World,
) -> None:
    """'Decommissioning' into DESTROYED is a malformed request naming the target field."""
    (code,) = _world.active(1)
    result = _world.do(K.DECOMMISSION, [code], target=S.DESTROYED)
    assert not result.applied
    assert isinstance(result.error, InvalidArgument) and result.error.field == "target"
    assert _world.status(code) is S.ACTIVE


def test_an_unregistered_party_refuses_the_request_naming_the_field(_world: World) -> None:
    """An event at a party the tenant never registered is NOT_FOUND, and nothing changes."""
    codes = _world.issued(2)
    result = _world.do(K.COMMISSION, codes, party_id="NOBODY")
    assert not result.applied
    assert isinstance(result.error, NotFound) and result.error.field == "context.party_id"
    assert {_world.status(c) for c in codes} == {S.ISSUED}


def test_destroying_a_pallet_destroys_everything_inside(_world: World) -> None:
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
    _world: World,
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
    _world: World,
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


def test_undo_by_the_decommissioning_party_makes_the_pack_active_again(_world: World) -> None:
    """The pharmacy that dispensed a pack can put it back on the market the next day."""
    code = dispensed_at_pharmacy(_world)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + DAY)
    assert _world.status(code) is S.ACTIVE
    assert _world.holder(code) == "PHARM"


def test_undo_by_another_party_is_refused(_world: World) -> None:
    """Only the party that decommissioned a pack may undo it."""
    code = dispensed_at_pharmacy(_world)
    result = _world.do(K.UNDO, [code], party_id="PHARM-2", when_ms=T0 + DAY)
    assert not result.applied
    assert "only the party that decommissioned it" in reasons(result)
    assert _world.status(code) is S.DISPENSED


def test_undo_needs_the_party(_world: World) -> None:
    """An undo that does not say who is undoing is refused."""
    code = dispensed_at_pharmacy(_world)
    result = _world.do(K.UNDO, [code], when_ms=T0 + DAY)
    assert not result.applied
    assert "needs the party" in reasons(result)


def test_undo_one_millisecond_inside_the_ten_day_window_is_applied(_world: World) -> None:
    """Recorded 10 days minus 1 ms after the dispense was, the undo is still allowed."""
    code = dispensed_at_pharmacy(_world)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 10 * DAY - 1)
    assert _world.status(code) is S.ACTIVE


def test_undo_one_millisecond_past_the_ten_day_window_is_refused(_world: World) -> None:
    """Recorded 10 days plus 1 ms after the dispense was, the undo is refused."""
    code = dispensed_at_pharmacy(_world)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 10 * DAY + 1)
    assert not result.applied
    assert "more than 10 days" in reasons(result)
    assert _world.status(code) is S.DISPENSED


def test_a_locked_pack_can_be_unlocked_after_thirty_days(_world: World) -> None:
    """LOCKED has no time limit: the holder can undo it a month later."""
    code = dispensed_at_pharmacy(_world, target=S.LOCKED)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 30 * DAY)
    assert _world.status(code) is S.ACTIVE


def test_undo_of_an_expired_pack_is_refused(_world: World) -> None:
    """A pack whose batch expired (2026-03-05) cannot be put back on the market on 03-06."""
    code = dispensed_at_pharmacy(_world, lot=SHORT_LOT)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 5 * DAY)
    assert not result.applied
    assert "expired" in reasons(result)
    assert _world.status(code) is S.DISPENSED


def test_undo_of_a_pack_of_the_short_batch_before_it_expires_is_applied(_world: World) -> None:
    """The same short-dated pack can still be undone on its expiry day."""
    code = dispensed_at_pharmacy(_world, lot=SHORT_LOT)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 4 * DAY)
    assert _world.status(code) is S.ACTIVE


@pytest.mark.parametrize("status", [S.RECALLED, S.WITHDRAWN, S.DESTROYED, S.STOLEN],
                         ids=lambda s: s.name)
def test_undo_of_a_recalled_withdrawn_destroyed_or_stolen_pack_is_refused(
    _world: World, status: Status
) -> None:
    """Recalled, withdrawn, destroyed and stolen packs never come back to ACTIVE."""
    code = dispensed_at_pharmacy(_world)
    if status in (S.RECALLED, S.WITHDRAWN):
        _world.force(code, status=status)
    else:
        kind = K.DESTROY if status is S.DESTROYED else K.REPORT_STOLEN
        _world.ok(kind, [code], party_id="PHARM", when_ms=T0 + DAY)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 2 * DAY)
    assert not result.applied
    assert status.name in reasons(result)
    assert _world.status(code) is status


def test_an_undo_recorded_a_month_after_the_dispense_is_refused_whatever_time_it_claims(
    _world: World,
) -> None:
    """The 10 days run on the ledger's clock: back-dating the undo's event time does not help."""
    code = dispensed_at_pharmacy(_world)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + DAY,
                       now_ms=T0 + 30 * DAY)
    assert not result.applied
    assert "more than 10 days" in reasons(result)


def test_an_undo_recorded_in_time_is_applied_whatever_time_it_claims(_world: World) -> None:
    """An undo recorded the next day is within the window even if its event time is late."""
    code = dispensed_at_pharmacy(_world)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + 3 * DAY, now_ms=T0 + DAY)
    assert _world.status(code) is S.ACTIVE


def test_an_undo_of_an_expired_pack_is_refused_even_when_back_dated(_world: World) -> None:
    """Recorded on 03-06, after the batch expired on 03-05, an undo claiming 03-02 is refused."""
    code = dispensed_at_pharmacy(_world, lot=SHORT_LOT)
    result = _world.do(K.UNDO, [code], party_id="PHARM", when_ms=T0 + DAY,
                       now_ms=T0 + 5 * DAY)
    assert not result.applied


def test_an_undo_with_an_impossible_event_time_is_refused_alone_in_its_group(
    _world: World,
) -> None:
    """An undo dated in the year 146 million is refused; the request committed with it applies."""
    code = dispensed_at_pharmacy(_world)
    units = _world.issued(1)
    results = _world.apply(
        Request([Event(K.UNDO, (code,), 2**62, party_id="PHARM")]),
        Request([Event(K.COMMISSION, tuple(units), T0, party_id="PLANT")]),
        now_ms=T0 + DAY,
    )
    assert [r.applied for r in results] == [False, True]
