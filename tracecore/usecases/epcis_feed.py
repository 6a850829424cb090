"""The events a standing EPCIS query (a subscription to a named query) has not seen yet: what a
webhook subscription delivers, in ledger order, resumed from a cursor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracecore.credentials import Principal
from tracecore.epcis.vocabulary import epoch_ms
from tracecore.errors import InvalidArgument
from tracecore.ledger.journal import Journal
from tracecore.ledger.store import Ledger
from tracecore.usecases.declare import ADMIN, DISTRIBUTOR, REGULATOR, Scope, use_case
from tracecore.usecases.epcis_query import query_events

#: Events one look gathers at most; the rest wait for the next look.
MAX_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class Fresh:
    """Events answering the query since the cursor, and where the next look starts."""

    context: list[Any]
    events: list[dict[str, Any]]
    cursor: int


def initial_cursor(initial_record_time: str) -> int:
    """Where a subscription's first look starts: at the journal's start when it asks for
    events from an ``initialRecordTime`` (InvalidArgument unless an RFC 3339 date-time),
    else after the last event recorded when it is made (0: ask ``head``)."""
    if not initial_record_time:
        return 0
    try:
        epoch_ms(initial_record_time)
    except ValueError:
        raise InvalidArgument("must be an RFC 3339 date-time such as 2024-05-01T00:00:00Z",
                              field="initialRecordTime") from None
    return 1


def _later(given: str | Sequence[str] | None, initial: str) -> str:
    times = [given] if isinstance(given, str) else list(given or [])
    try:
        return max([*times, initial], key=epoch_ms)
    except ValueError:
        # The query's own time does not read: it is refused as it would be without this.
        return times[0] if times else initial


@use_case(roles={ADMIN, DISTRIBUTOR, REGULATOR}, writes=False, scope=Scope.PARTY)
def head(ledger: Ledger, caller: Principal | None) -> int:
    """Where a new subscription's first look starts: after the last event recorded now."""
    with ledger.env.read() as txn:
        return Journal(ledger).head(txn)[0] + 1


@use_case(roles={ADMIN, DISTRIBUTOR, REGULATOR}, writes=False, scope=Scope.PARTY)
def events_since(ledger: Ledger, caller: Principal | None,
                 params: Mapping[str, str | Sequence[str]], cursor: int,
                 initial_record_time: str = "") -> Fresh:
    """The events recorded from ``cursor`` on that answer the standard query ``params`` (as
    the caller may see them), and the cursor of the next look. An event recorded while this
    look runs may be seen again by the next: deliveries are at least once. A subscription's
    ``initial_record_time`` keeps out what was recorded before it (as GE_recordTime does)."""
    if initial_record_time:
        params = {**params, "GE_recordTime": _later(params.get("GE_recordTime"),
                                                    initial_record_time)}
    # The journal's end is read before the query, so that no event is skipped.
    end = head(ledger, caller)
    found: list[dict[str, Any]] = []
    context: list[Any] = []
    token = str(max(1, cursor))
    while len(found) < MAX_EVENTS:
        page = query_events(ledger, caller, params, MAX_EVENTS - len(found), token)
        found.extend(page.events)
        context = page.context
        if not page.next_token:
            return Fresh(context, found, max(cursor, end))
        token = page.next_token
    return Fresh(context, found, int(token))
