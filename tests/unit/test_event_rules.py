"""Rules applied to a whole event at once do exactly what the same rule does one code after
another: the same codes changed, refused for the same reasons, the same records written."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TypeVar

from hypothesis import example, given, settings

from tests.strategies import commissionings, decommissionings, record_changes, shipments
from tests.unit.test_lifecycle_rules import NOW, FakePacks, code
from tracecore.errors import TraceError
from tracecore.events import Event, EventKind
from tracecore.ledger.pack_session import Overlay
from tracecore.ledger.records import CodeRecord
from tracecore.lifecycle_request import Refused, Result
from tracecore.lifecycle_rules import EVENT_RULES, RULES, counted
from tracecore.status import Status

K = TypeVar("K")
Outcome = tuple[list[bytes], list[tuple[int, str]]] | str


def _packs(stored: dict[str, tuple[int, int]]) -> FakePacks:
    packs = FakePacks(parties={"PLANT": (1, 110105)}, batches={(1, "L1"): 1, (1, "L2"): 2},
                      holds={2: Status.RECALLED})
    for serial, (status, batch) in stored.items():
        packs.add(serial, Status(status), batch=batch)
    return packs


def _one_by_one(packs: FakePacks, kind: EventKind, event: Event, keys: list[bytes]) -> Outcome:
    touched: list[bytes] = []
    refused: list[tuple[int, str]] = []
    try:
        for position, key in enumerate(keys):
            try:
                touched += RULES[kind](packs, event, key, Result())
            except Refused as refusal:
                refused.append((position, refusal.reason))
    except TraceError as exc:
        return f"{type(exc).__name__}: {exc.message}"
    return touched, refused


def _whole(packs: FakePacks, kind: EventKind, event: Event, keys: list[bytes]) -> Outcome:
    try:
        return EVENT_RULES[kind](packs, event, keys, Result())
    except TraceError as exc:
        return f"{type(exc).__name__}: {exc.message}"


@given(commissionings())
def test_commissioning_a_whole_event_is_commissioning_its_codes_one_after_another(
        case: tuple[dict[str, tuple[int, int]], list[str], dict[str, object]]) -> None:
    """Unknown, voided, recalled, batchless and twice-named codes, unregistered lots, an
    unknown party or a bad level: the whole event and code by code agree on every one."""
    stored, named, given_event = case
    event = Event(EventKind.COMMISSION, tuple(code(s) for s in named), NOW,
                  **given_event)  # type: ignore[arg-type]
    keys = [code(s).key() for s in named]
    alone, together = _packs(stored), _packs(stored)
    expected = _one_by_one(alone, EventKind.COMMISSION, event, keys)
    got = _whole(together, EventKind.COMMISSION, event, keys)
    assert got == expected
    if not isinstance(expected, str):
        assert together.records == alone.records
        assert together.commissions == alone.commissions


def test_a_code_named_twice_is_commissioned_once_and_refused_the_second_time() -> None:
    """The second naming sees what the first did."""
    packs = _packs({"A": (Status.ISSUED, 1), "B": (Status.ISSUED, 1)})
    before = copy.deepcopy(packs.records)
    keys = [code("A").key(), code("B").key(), code("A").key()]
    event = Event(EventKind.COMMISSION, tuple(map(code, "ABA")), NOW, party_id="PLANT")
    touched, refused = EVENT_RULES[EventKind.COMMISSION](packs, event, keys, Result())
    assert touched == keys[:2]
    assert refused == [(2, "cannot commission a code that is ACTIVE")]
    assert all(packs.records[k].status is Status.ACTIVE for k in keys)
    assert all(before[k].status is Status.ISSUED for k in keys)


def _in_cases(stored: dict[str, tuple[int, int, int, str, int]]) -> FakePacks:
    packs = _packs({})
    packs.parties.update({"DIST": (2, 440305), "PHARM": (3, 310101)})
    # Cases first, so that what they hold can name them.
    for serial, (status, batch, level, inside, holder) in sorted(
            stored.items(), key=lambda item: item[1][2] == 1):
        packs.add(serial, Status(status), batch=batch, level=level, inside=inside,
                  holder=holder)
    return packs


def _agree(kind: EventKind, case: tuple[dict[str, tuple[int, int, int, str, int]], list[str],
                                       dict[str, object]]) -> None:
    stored, named, given_event = case
    event = Event(kind, tuple(code(s) for s in named), NOW,
                  **given_event)  # type: ignore[arg-type]
    keys = [code(s).key() for s in named]
    alone, together = _in_cases(stored), _in_cases(stored)
    expected = _one_by_one(alone, kind, event, keys)
    got = _whole(together, kind, event, keys)
    assert got == expected
    if not isinstance(expected, str):
        assert together.records == alone.records
        assert together.parents == alone.parents
        assert together.flows == alone.flows
        assert together.shipments == alone.shipments
        assert len(together.alerts) == len(alone.alerts)


@settings(max_examples=400)
@given(decommissionings())
@example(({"S0": (2, 1, 2, "", 0), "S1": (2, 1, 1, "S0", 0)}, ["S0", "S1"],
          {"target": Status.DISPENSED, "party_id": "PHARM"}))
def test_decommissioning_a_whole_event_is_decommissioning_its_codes_one_after_another(
        case: tuple[dict[str, tuple[int, int, int, str, int]], list[str],
                    dict[str, object]]) -> None:
    """Units and the cases holding them, named in any order and some twice, unknown, recalled
    or already dispensed, to a bad target or by an unknown party: the whole event and code by
    code agree on what changed, what left its case, what was sold and what was refused."""
    _agree(EventKind.DECOMMISSION, case)


@settings(max_examples=400)
@given(shipments())
@example(({"S0": (2, 1, 1, "", 1), "S1": (2, 1, 1, "", 1)}, ["S0", "S1", "S0"],
          {"party_id": "PLANT", "destination": "DIST"}))
def test_shipping_a_whole_event_is_shipping_its_codes_one_after_another(
        case: tuple[dict[str, tuple[int, int, int, str, int]], list[str],
                    dict[str, object]]) -> None:
    """Units and cases held by the sender, another party or nobody, some inside a case, named
    in any order and some twice, to the destination that holds them, to nobody or to an unknown
    party: the whole event and code by code agree on what went in transit and what was
    refused."""
    _agree(EventKind.SHIP, case)


@given(record_changes())
def test_counters_moved_per_kind_of_change_are_those_moved_code_by_code(
        changes: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
    """The units by batch, holder, status and region that a request's puts move, counted
    together when its overlay is merged, are what moving them one code at a time gives."""
    one_by_one, together = Overlay(None), Overlay(None)
    for before_fields, after_fields in changes:
        before = CodeRecord(Status(before_fields[0]), *before_fields[1:])
        after = CodeRecord(Status(after_fields[0]), *after_fields[1:])
        was = before if counted(before) else None
        if counted(after):
            one_by_one.tally.move(was, after)
        one_by_one.regions.move(was, after)
        together.moves.append((before, after))
    together.count()
    assert _nonzero(together.tally.units) == _nonzero(one_by_one.tally.units)
    assert _nonzero(together.regions.units) == _nonzero(one_by_one.regions.units)


def _nonzero(units: Mapping[K, int]) -> dict[K, int]:
    return {k: n for k, n in units.items() if n}
