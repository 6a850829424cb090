"""Pack statuses and the one state machine every code follows (OPEN-SCS, EU FMD, GS1 CBV)."""

from __future__ import annotations

import enum

from tracecore.errors import FailedPrecondition


class Status(enum.IntEnum):
    """A code's status; the numbers are ``pharmatrace.v1.CodeStatus``."""

    ISSUED = 1
    ACTIVE = 2
    VOIDED = 3
    DISPENSED = 4
    EXPORTED = 5
    SAMPLE = 6
    FREE_SAMPLE = 7
    CHECKED_OUT = 8
    LOCKED = 9
    DESTROYED = 10
    STOLEN = 11
    RECALLED = 12
    WITHDRAWN = 13


#: Decommissioned statuses (EU FMD Art. 25 and 26): off the market, undoable under Art. 13.
DECOMMISSIONED = frozenset(
    {
        Status.DISPENSED,
        Status.EXPORTED,
        Status.SAMPLE,
        Status.FREE_SAMPLE,
        Status.CHECKED_OUT,
        Status.LOCKED,
    }
)

#: Nothing leaves these.
TERMINAL = frozenset(
    {Status.VOIDED, Status.DESTROYED, Status.STOLEN, Status.RECALLED, Status.WITHDRAWN}
)


class Action(enum.StrEnum):
    """What a lifecycle event does to a code's status."""

    COMMISSION = "commission"
    VOID = "void"
    DECOMMISSION = "decommission"
    DESTROY = "destroy"
    REPORT_STOLEN = "report_stolen"
    UNDO = "undo"
    RECALL = "recall"
    WITHDRAW = "withdraw"


def transition(status: Status, action: Action, target: Status | None = None) -> Status:
    """The status after ``action``; FailedPrecondition naming both when it is not allowed.

    ``target`` is the decommissioned status for DECOMMISSION.
    """
    match action:
        case Action.COMMISSION if status is Status.ISSUED:
            return Status.ACTIVE
        case Action.VOID if status is Status.ISSUED:
            return Status.VOIDED
        case Action.DECOMMISSION if status is Status.ACTIVE and target in DECOMMISSIONED:
            return target
        case Action.DESTROY if status is Status.ACTIVE or status in DECOMMISSIONED:
            return Status.DESTROYED
        case Action.REPORT_STOLEN if status is Status.ACTIVE or status in DECOMMISSIONED:
            return Status.STOLEN
        case Action.UNDO if status in DECOMMISSIONED:
            return Status.ACTIVE
        case Action.RECALL if status is Status.ACTIVE or status in DECOMMISSIONED:
            return Status.RECALLED
        case Action.WITHDRAW if status is Status.ACTIVE or status in DECOMMISSIONED:
            return Status.WITHDRAWN
    wanted = f" to {target.name}" if target is not None else ""
    raise FailedPrecondition(f"cannot {action.value}{wanted} a code that is {status.name}")
