"""A tenant's own day: local midnight in its IANA time zone, as UTC milliseconds.

Daily counters and date filters cut here, so a day is 23, 24 or 25 hours long where the zone
keeps daylight saving time. Days are numbered like UTC days (days since 1970-01-01), but of the
local calendar.
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tracecore.errors import InvalidArgument

_EPOCH = _dt.date(1970, 1, 1)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; InvalidArgument when there is none."""
    if not name or len(name) > 64:
        raise InvalidArgument("time_zone: an IANA name such as Asia/Shanghai")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(f"time_zone: unknown IANA time zone {name!r}") from exc


def day_of(ms: int, tz: str) -> int:
    """The local day number an instant (UTC milliseconds) falls on."""
    local = _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).astimezone(zone(tz))
    return (local.date() - _EPOCH).days


def day_start(day: int, tz: str) -> int:
    """UTC milliseconds of the local midnight that opens day number ``day``."""
    date = _EPOCH + _dt.timedelta(days=day)
    local = _dt.datetime(date.year, date.month, date.day, tzinfo=zone(tz))
    return int(local.timestamp()) * 1000


def day_number(iso_date: str) -> int:
    """The day number of a YYYY-MM-DD date (a local day, whatever the zone)."""
    try:
        return (_dt.date.fromisoformat(iso_date) - _EPOCH).days
    except ValueError as exc:
        raise InvalidArgument(f"date: {iso_date!r} is not YYYY-MM-DD") from exc


def iso_date(day: int) -> str:
    """YYYY-MM-DD of a day number."""
    return (_EPOCH + _dt.timedelta(days=day)).isoformat()


def date_range_ms(first: str, last: str, tz: str) -> tuple[int, int]:
    """[start, end) in UTC milliseconds covering local days ``first`` to ``last`` inclusive."""
    return day_start(day_number(first), tz), day_start(day_number(last) + 1, tz)
