"""Pack ratios (包装比例): whether a container holds what its product's packaging hierarchy says
it holds after an aggregation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from pharmatrace.v1 import common_pb2 as cpb

from tracecore.ledger.counters import UNIT
from tracecore.ledger.records import CodeRecord
from tracecore.masterdata import LEVEL_NAMES


class Contents(Protocol):
    """What the pack-ratio check reads: records, a container's contents, products' hierarchies."""

    def record(self, key: bytes) -> CodeRecord | None: ...
    def children(self, key: bytes) -> Iterable[bytes]: ...
    def hierarchy(self, product_ref: int) -> Sequence[cpb.PackLevel]:
        """A product's packaging hierarchy, lowest level first; empty when it has none."""


def pack_ratio(packs: Contents, parent_key: bytes, partial: bool) -> str | None:
    """Which pack-ratio rule a container's contents break after an aggregation, or None.

    The hierarchy is the container's product's, else its contents' (a case labelled with its
    own code, or a logistic unit, carries the units' product). A container of a level the
    hierarchy does not list is not counted. Too many is refused always; too few unless the
    aggregation says the container is partial."""
    parent = packs.record(parent_key)
    if parent is None:
        return None
    kids = [r for r in (packs.record(k) for k in packs.children(parent_key)) if r is not None]
    levels: Sequence[cpb.PackLevel] = ()
    for ref in (parent.product_ref, *(r.product_ref for r in kids[:1])):
        levels = packs.hierarchy(ref) if ref else ()
        if levels:
            break
    below = UNIT
    for level in levels:
        if level.level == parent.level:
            break
        below = level.level
    else:
        return None
    name, inner = LEVEL_NAMES[parent.level], LEVEL_NAMES[below]
    holds = f"{name} holds {level.quantity} {inner}s"
    others = sum(1 for r in kids if r.level != below)
    if others:
        return f"{holds}; {others} of another packaging level given"
    if len(kids) > level.quantity:
        return f"{holds}; {len(kids)} given"
    if len(kids) < level.quantity and not partial:
        return f"{holds}; {len(kids)} given; mark it partial"
    return None
