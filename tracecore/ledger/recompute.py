"""A code's status recomputed from the events of the journal, to compare with the status its
record stores: a file writer who edits a record (and the counters) cannot also make the sealed
journal tell the same story."""

from __future__ import annotations

import math
from collections.abc import Iterable

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.errors import TraceError
from tracecore.events import EventKind
from tracecore.ledger.env import Txn
from tracecore.ledger.history import events_of_pack
from tracecore.ledger.journal import Journal
from tracecore.schemes import SCHEMES, Scheme
from tracecore.status import Action, Status, transition

_ACTIONS = {
    EventKind.COMMISSION.value: Action.COMMISSION,
    EventKind.VOID.value: Action.VOID,
    EventKind.DECOMMISSION.value: Action.DECOMMISSION,
    EventKind.UNDO.value: Action.UNDO,
    EventKind.DESTROY.value: Action.DESTROY,
    EventKind.REPORT_STOLEN.value: Action.REPORT_STOLEN,
}
#: The ledger key letter of an SSCC, which has no commissioning of its own.
_LOGISTIC_UNIT = SCHEMES[Scheme.SSCC].key_letter
#: Kinds whose event on a container changes what it holds too.
_WHOLE_CONTAINER = frozenset({EventKind.DECOMMISSION.value, EventKind.UNDO.value,
                              EventKind.DESTROY.value, EventKind.REPORT_STOLEN.value})


def status_from_events(key: bytes, events: Iterable[tuple[lpb.EventRecord, bytes | None]]
                       ) -> Status:
    """The status the events about a pack (each with the container it came through, or None)
    leave it in, applied in journal order from ISSUED. An event a best-effort request refused
    for the pack, or one its status did not allow, changed nothing."""
    once: dict[int, tuple[lpb.EventRecord, bytes | None]] = {}
    for event, via in events:
        if event.seq not in once or via is None:
            once[event.seq] = (event, via)
    status = Status.ISSUED
    for seq in sorted(once):
        event, via = once[seq]
        subject = via if via is not None else key
        if subject in event.refused:
            continue
        if event.kind == EventKind.AGGREGATE.value and via is None and event.parent == key \
                and key[:1] == _LOGISTIC_UNIT and status is Status.ISSUED:
            status = Status.ACTIVE  # an SSCC becomes a logistic unit when it is first filled
            continue
        if event.kind == EventKind.REPLACE.value:
            if via is None and event.replacement == key:
                status = Status.ACTIVE      # the new label takes the ACTIVE pack's place
            elif via is None and event.codes and event.codes[0] == key:
                status = Status.VOIDED
            continue
        action = _ACTIONS.get(event.kind)
        if action is None or (via is not None and event.kind not in _WHOLE_CONTAINER):
            continue
        if via is None and key not in event.codes:
            continue        # names the pack as a container or a replacement only
        target = Status(event.target) if event.target else None
        try:
            status = transition(status, action, target)
        except TraceError:
            continue
    return status


def recomputed(journal: Journal, txn: Txn, key: bytes) -> Status:
    """The status of the pack ``key`` according to its events and its containers' events."""
    return status_from_events(
        key, ((event, via.key() if via is not None else None)
              for event, via in events_of_pack(journal, txn, key, 0, math.inf)))
