"""The steps that bring a ledger from one format to the next, one module each, forward only.

A step module has ``VERSION`` (the format it produces; it runs on a ledger of ``VERSION - 1``),
``SUMMARY`` (one line for people) and ``apply(ledger, now_ms)``. ``apply`` must be idempotent
and resumable after a kill: it either does its work in one transaction that also records
``VERSION``, or in several transactions that each record how far they got, the last one
recording ``VERSION``. Running it again on a ledger it has already brought forward does nothing.
"""

from __future__ import annotations

from types import ModuleType

from tracecore.ledger import format as ledger_format
from tracecore.ledger.migrations import to_2, to_3, to_4

#: Every step, in order; the last produces ``format.CURRENT``.
STEPS: tuple[ModuleType, ...] = (to_2, to_3, to_4)


def pending(version: int) -> list[ModuleType]:
    """The steps a ledger of format ``version`` needs, in order."""
    return [step for step in STEPS if version < step.VERSION]


assert STEPS[-1].VERSION == ledger_format.CURRENT, "the last step must produce the current format"
