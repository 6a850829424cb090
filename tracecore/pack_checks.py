"""What the lifecycle rules (``tracecore.lifecycle_rules``) ask of a pack's record before any
event changes it: whether it is ours and on the market or held by a recall or withdrawal,
whether it is at the top level, what the state machine makes of it, and whether the counters
hold it."""

from __future__ import annotations

from tracecore.errors import TraceError
from tracecore.ledger.records import CodeRecord
from tracecore.lifecycle_request import Refused
from tracecore.packs import Packs
from tracecore.status import DECOMMISSIONED, Action, Status, transition

#: Codes enter the counters when commissioned: unused ones were never on a pack.
UNCOUNTED = frozenset({Status.ISSUED, Status.VOIDED})


def counted(record: CodeRecord) -> bool:
    """Whether the counters hold this code (see ``UNCOUNTED``)."""
    return record.status not in UNCOUNTED


def held(packs: Packs, record: CodeRecord) -> Status | None:
    """RECALLED or WITHDRAWN when a recall or withdrawal covers this pack, else None: only
    packs on the market (active or decommissioned) are held."""
    if record.status is not Status.ACTIVE and record.status not in DECOMMISSIONED:
        return None
    return packs.hold_status(record.batch_ref, record.product_ref)


def existing(packs: Packs, key: bytes) -> CodeRecord:
    """The code's record; refused when it is not ours, or recalled or withdrawn (which nothing
    leaves)."""
    return on_market(packs, packs.record(key))


def on_market(packs: Packs, record: CodeRecord | None) -> CodeRecord:
    """``existing`` of a record already read."""
    if record is None:
        raise Refused("not issued by this tenant")
    hold = held(packs, record)
    if hold is not None:
        raise Refused("is RECALLED: its batch was recalled" if hold is Status.RECALLED
                      else "is WITHDRAWN: its product was withdrawn")
    return record


def market_refusal(packs: Packs, record: CodeRecord | None) -> str:
    """Why ``on_market`` refuses this record; "" when it does not."""
    try:
        on_market(packs, record)
    except Refused as refusal:
        return refusal.reason
    return ""


def top_level(packs: Packs, key: bytes, what: str) -> CodeRecord:
    """``existing``, and refused when the pack is inside a container (``what`` is done to the
    container)."""
    record = existing(packs, key)
    if packs.parent(key) is not None:
        raise Refused(f"is inside a container: {what} the container, or disaggregate first")
    return record


#: ``transition``'s answer for each (status, action, target) asked so far: the status after it,
#: or why the state machine refuses it; asked once, not once per pack.
_STEPS: dict[tuple[Status, Action, Status | None], Status | str] = {}


def step(record: CodeRecord, action: Action, target: Status | None = None) -> Status:
    """The status ``action`` takes the record to; Refused, with the state machine's reason,
    when it may not."""
    asked = (record.status, action, target)
    answer = _STEPS.get(asked)
    if answer is None:
        try:
            answer = transition(*asked)
        except TraceError as exc:
            answer = exc.message
        _STEPS[asked] = answer
    if isinstance(answer, Status):
        return answer
    raise Refused(answer)
