"""Changes a lifecycle write session has made and not yet written (``Overlay``): one per
request, over its group's, merged into the group's when the request succeeds."""

from __future__ import annotations

from collections import Counter
from itertools import starmap
from operator import add, itemgetter
from typing import Any

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore._speedups import load
from tracecore.ledger.contents import ContentsDelta
from tracecore.ledger.counters import PROJECTED, Tally
from tracecore.ledger.oversight import RegionTally
from tracecore.ledger.records import CodeRecord
from tracecore.lifecycle_rules import UNCOUNTED
from tracecore.oversight import Raised

_P = len(PROJECTED)


def count_moves_reference(moves: list[tuple[CodeRecord, CodeRecord]], fields: tuple[int, ...]
                          ) -> dict[Any, int]:
    """{the ``fields`` of a change's record before, then after: how many changes}, for each
    (before, after) pair in ``moves``: what ``tracecore._speedups._moves`` does in C. Counted by
    change, the fields of the two records laid end to end are read in one C call and hashed
    once."""
    fields_of = itemgetter(*fields, *(len(CodeRecord._fields) + i for i in fields))
    return dict(Counter(map(fields_of, starmap(add, moves))))


_compiled = load("_moves")
_count_moves = _compiled.count_moves if _compiled is not None else count_moves_reference


class Overlay:
    """Changes not yet written: code records, aggregation links, counters, events."""

    def __init__(self, below: Overlay | None) -> None:
        self.below = below
        self.records: dict[bytes, CodeRecord] = {}
        self.parents: dict[bytes, bytes | None] = {}
        self.children_added: dict[bytes, set[bytes]] = {}
        self.children_removed: dict[bytes, set[bytes]] = {}
        self.batch_codes: list[tuple[int, bytes]] = []
        self.tally = Tally()
        # (before, after) of each code put, counted into the tallies together (``count``).
        self.moves: list[tuple[CodeRecord, CodeRecord]] = []
        self.events: list[tuple[lpb.EventRecord, list[bytes]]] = []
        self.event_ids: set[str] = set()
        self.pool_returns: dict[int, int] = {}
        self.regions = RegionTally()
        self.shipments: dict[bytes, int | None] = {}
        self.alerts: list[Raised] = []
        self.foreign: dict[bytes, bytes] = {}
        self.contents = ContentsDelta()

    def count(self) -> None:
        """Moves the counters of the codes put since the last count, once per kind of change
        (their ``project``ions before and after) instead of once per code."""
        if not self.moves:
            return
        changes = _count_moves(self.moves, PROJECTED)
        self.moves.clear()
        moves = [(was if was[3] not in UNCOUNTED else None, now, n) for was, now, n in
                 ((change[:_P], change[_P:], n) for change, n in changes.items())]
        self.tally.move_many(m for m in moves if m[1][3] not in UNCOUNTED)
        # Voided codes too: a batch's picture says how many of its codes were scrapped.
        self.regions.move_many(moves)

    def merge_into(self, target: Overlay) -> None:
        self.count()
        target.records.update(self.records)
        target.parents.update(self.parents)
        for parent, kids in self.children_added.items():
            target.children_added.setdefault(parent, set()).update(kids)
            target.children_removed.get(parent, set()).difference_update(kids)
        for parent, kids in self.children_removed.items():
            target.children_removed.setdefault(parent, set()).update(kids)
            target.children_added.get(parent, set()).difference_update(kids)
        target.batch_codes.extend(self.batch_codes)
        target.tally.merge(self.tally)
        target.events.extend(self.events)
        target.event_ids.update(self.event_ids)
        for pool_ref, n in self.pool_returns.items():
            target.pool_returns[pool_ref] = target.pool_returns.get(pool_ref, 0) + n
        target.regions.merge(self.regions)
        target.shipments.update(self.shipments)
        target.alerts.extend(self.alerts)
        target.foreign.update(self.foreign)
        self.contents.merge_into(target.contents)
