"""The status state machine: every status against every action, allowed or refused with a reason."""

from __future__ import annotations

import itertools

import pytest

from tracecore.errors import FailedPrecondition
from tracecore.status import DECOMMISSIONED, TERMINAL, Action, Status, transition

S = Status
_OFF_MARKET = (S.DISPENSED, S.EXPORTED, S.SAMPLE, S.FREE_SAMPLE, S.CHECKED_OUT, S.LOCKED)
_ON_OR_OFF_MARKET = (S.ACTIVE, *_OFF_MARKET)

#: The specification, written out by hand from DESIGN.md "Statuses": (status, action, target) ->
#: status after. Every combination not listed here must be refused.
ALLOWED: dict[tuple[Status, Action, Status | None], Status] = {
    (S.ISSUED, Action.COMMISSION, None): S.ACTIVE,
    (S.ISSUED, Action.VOID, None): S.VOIDED,
    **{(S.ACTIVE, Action.DECOMMISSION, t): t for t in _OFF_MARKET},
    **{(s, Action.DESTROY, None): S.DESTROYED for s in _ON_OR_OFF_MARKET},
    **{(s, Action.REPORT_STOLEN, None): S.STOLEN for s in _ON_OR_OFF_MARKET},
    **{(s, Action.UNDO, None): S.ACTIVE for s in _OFF_MARKET},
    **{(s, Action.RECALL, None): S.RECALLED for s in _ON_OR_OFF_MARKET},
    **{(s, Action.WITHDRAW, None): S.WITHDRAWN for s in _ON_OR_OFF_MARKET},
}


def _cases() -> list[tuple[Status, Action, Status | None]]:
    cases: list[tuple[Status, Action, Status | None]] = []
    for status, action in itertools.product(Status, Action):
        if action is Action.DECOMMISSION:
            cases.extend((status, action, target) for target in [*Status, None])
        else:
            cases.append((status, action, None))
    return cases


_ALL = _cases()
_REFUSED = [case for case in _ALL if case not in ALLOWED]


def _id(case: tuple[Status, Action, Status | None]) -> str:
    status, action, target = case
    return f"{status.name}-{action.value}" + (f"-{target.name}" if target is not None else "")


@pytest.mark.parametrize("case", list(ALLOWED), ids=_id)
def test_allowed_transitions_give_the_specified_status(
    case: tuple[Status, Action, Status | None],
) -> None:
    """An allowed change lands the code in exactly the status the design names."""
    status, action, target = case
    assert transition(status, action, target) is ALLOWED[case]


@pytest.mark.parametrize("case", _REFUSED, ids=_id)
def test_every_other_transition_is_refused_naming_action_and_status(
    case: tuple[Status, Action, Status | None],
) -> None:
    """A change the state machine does not allow is refused, naming the action and the status."""
    status, action, target = case
    with pytest.raises(FailedPrecondition) as refused:
        transition(status, action, target)
    message = refused.value.message
    assert action.value in message
    assert status.name in message
    if target is not None:
        assert target.name in message


@pytest.mark.parametrize("status", sorted(TERMINAL), ids=lambda s: s.name)
def test_nothing_leaves_a_terminal_status(status: Status) -> None:
    """VOIDED, DESTROYED, STOLEN, RECALLED and WITHDRAWN refuse every action."""
    for action in Action:
        for target in [*Status, None] if action is Action.DECOMMISSION else [None]:
            with pytest.raises(FailedPrecondition):
                transition(status, action, target)


def test_decommissioned_statuses_are_the_eu_fmd_ones() -> None:
    """Dispensed, exported, sample, free sample, checked out and locked are the off-market set."""
    assert frozenset(_OFF_MARKET) == DECOMMISSIONED
    assert not DECOMMISSIONED & TERMINAL


def test_decommissioning_to_a_status_that_is_not_off_market_is_refused() -> None:
    """ACTIVE cannot be 'decommissioned' into DESTROYED, VOIDED, ACTIVE or no target at all."""
    for target in [S.ACTIVE, S.ISSUED, S.VOIDED, S.DESTROYED, S.STOLEN, S.RECALLED, None]:
        with pytest.raises(FailedPrecondition):
            transition(S.ACTIVE, Action.DECOMMISSION, target)


def test_status_numbers_match_the_api_enum() -> None:
    """The numbers stored in the ledger are pharmatrace.v1.CodeStatus values of the same name."""
    from pharmatrace.v1 import common_pb2 as cpb

    for status in Status:
        assert cpb.CodeStatus.Value(f"CODE_STATUS_{status.name}") == status.value
