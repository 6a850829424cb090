"""Wall-clock time as the ledger records it: integer milliseconds since the Unix epoch."""

from __future__ import annotations

import datetime as dt
import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def utc_date(ms: int) -> dt.date:
    """The UTC calendar date of epoch milliseconds."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()
