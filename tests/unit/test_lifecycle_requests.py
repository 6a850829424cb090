"""Lifecycle requests applied to a real ledger: atomic and best-effort requests, group commit,
idempotency, and the counters they move."""

from __future__ import annotations

from tests.lifecycle_world import (
    CASE,
    DAY,
    GTIN,
    PALLET,
    PARTIES,
    SHORT_LOT,
    T0,
    K,
    S,
    World,
    dispensed_at_pharmacy,
)
from tracecore.codes import Code, Scheme
from tracecore.errors import NotFound
from tracecore.events import Event
from tracecore.ledger.counters import Flow
from tracecore.ledger.lifecycle import Request

# -- atomic, best effort, group commit ---------------------------------------------------------


def test_one_bad_code_leaves_the_whole_request_unapplied(_world: World) -> None:
    """Without best effort, one unknown code means no code changes and no event is journalled."""
    good = _world.issued(3)
    bad = Code(Scheme.GS1, GTIN, "NEVERISSUED1")
    before, length = _world.raw(*good), _world.journal_length()
    result = _world.do(K.COMMISSION, [good[0], bad, *good[1:]], party_id="PLANT")
    assert (result.applied, result.changed, result.seqs) == (False, 0, [])
    assert [f.code for f in result.failures] == [bad.text()]
    assert _world.raw(*good) == before
    assert _world.journal_length() == length


def test_best_effort_applies_the_good_codes_and_reports_the_bad_one(_world: World) -> None:
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


def test_a_request_is_whole_across_its_events(_world: World) -> None:
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


def test_in_a_group_a_failing_request_does_not_affect_the_others(_world: World) -> None:
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
    _world: World,
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


def test_in_a_group_each_request_sees_the_effects_of_the_ones_before(_world: World) -> None:
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


def test_a_group_request_builds_on_a_disaggregation_earlier_in_the_group(_world: World) -> None:
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


def test_an_event_id_seen_before_is_a_duplicate_that_changes_nothing(_world: World) -> None:
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


def test_the_same_event_id_twice_in_one_group_is_applied_once(_world: World) -> None:
    """Two requests carrying the same event id in one commit: the second is a duplicate."""
    units = _world.issued(2)

    def commission() -> Request:
        return Request([Event(K.COMMISSION, tuple(units), T0, party_id="PLANT",
                              event_id="line-7:42")])

    results = _world.apply(commission(), commission())
    assert [(r.applied, r.changed, r.duplicates) for r in results] == [(True, 2, 0), (True, 0, 1)]
    assert [e.event_id for e in _world.journal()] == ["line-7:42"]


def test_an_event_id_of_a_refused_event_can_be_used_again(_world: World) -> None:
    """A request that was refused recorded nothing, so its retry under the same id applies."""
    units = _world.issued(1)
    refused = _world.do(K.COMMISSION, units, party_id="PLANT", lot=SHORT_LOT, event_id="e-1")
    assert not refused.applied
    retried = _world.ok(K.COMMISSION, units, party_id="PLANT", event_id="e-1")
    assert retried.duplicates == 0
    assert _world.status(units[0]) is S.ACTIVE


# -- counters ----------------------------------------------------------------------------------


def test_counters_follow_commission_ship_receive_and_dispense_of_units(_world: World) -> None:
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


def test_an_undone_dispense_is_counted_back_as_stock_and_as_returned(_world: World) -> None:
    """Undoing a dispense moves the unit back to ACTIVE stock and counts one return."""
    code = dispensed_at_pharmacy(_world)
    _world.ok(K.UNDO, [code], party_id="PHARM", when_ms=T0 + DAY)
    pharm = PARTIES["PHARM"]
    assert _world.product_counts() == {(pharm, S.ACTIVE): 1}
    day = T0 // DAY
    assert _world.flow_counts()[(day + 1, pharm, Flow.RETURNED)] == 1
    assert _world.flow_counts()[(day, pharm, Flow.SOLD)] == 1


def test_a_refused_request_leaves_the_counters_unchanged(_world: World) -> None:
    """Counters move only with applied changes."""
    units = _world.active(2)
    before = (_world.batch_counts(), _world.product_counts())
    result = _world.do(K.SHIP, [*units, Code(Scheme.GS1, GTIN, "NEVERISSUED1")],
                       party_id="PLANT", destination="DIST")
    assert not result.applied
    assert (_world.batch_counts(), _world.product_counts()) == before


def test_voiding_unused_codes_does_not_count_them_as_packs(_world: World) -> None:
    """Codes returned unused were never on a pack: the batch and product counters ignore them."""
    codes = _world.issued(3)
    _world.ok(K.VOID, codes, reason="unused")
    assert _world.batch_counts() == {}
    assert _world.product_counts() == {}
