"""The tenant's own day: local midnight cuts in IANA zones, daylight saving included."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracecore import localday
from tracecore.errors import InvalidArgument

_MS = 1000


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp()) * _MS


def test_shanghai_evening_utc_is_next_local_day() -> None:
    """For Asia/Shanghai an event at 2026-03-01T20:00Z is on 2026-03-02; under UTC on 2026-03-01."""
    ms = _ms("2026-03-01T20:00:00+00:00")
    assert localday.iso_date(localday.day_of(ms, "Asia/Shanghai")) == "2026-03-02"
    assert localday.iso_date(localday.day_of(ms, "UTC")) == "2026-03-01"


def test_new_york_days_are_23_and_25_hours_at_the_switches() -> None:
    """In America/New_York the spring-forward day has 23 hours and the fall-back day 25."""
    tz = "America/New_York"
    spring = localday.day_number("2026-03-08")
    fall = localday.day_number("2026-11-01")
    hours = lambda d: (localday.day_start(d + 1, tz) - localday.day_start(d, tz)) // 3_600_000  # noqa: E731
    assert (hours(spring), hours(fall), hours(spring + 1)) == (23, 25, 24)


def test_date_range_covers_whole_local_days() -> None:
    """--from/--to dates mean local days: Shanghai's 2026-03-02 opens at 2026-03-01T16:00Z."""
    start, end = localday.date_range_ms("2026-03-02", "2026-03-02", "Asia/Shanghai")
    assert (start, end) == (_ms("2026-03-01T16:00:00+00:00"), _ms("2026-03-02T16:00:00+00:00"))


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../etc/passwd", "x" * 100])
def test_unknown_zone_is_refused_by_name(name: str) -> None:
    """A time zone that is not an IANA name is an invalid argument naming the field."""
    with pytest.raises(InvalidArgument, match="time_zone"):
        localday.zone(name)


@given(
    ms=st.integers(min_value=0, max_value=4_102_444_800_000),
    tz=st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin",
                        "Australia/Lord_Howe", "Pacific/Chatham"]),
)
def test_instant_falls_inside_its_day(ms: int, tz: str) -> None:
    """Every instant lies between its local midnight and the next, on its calendar date."""
    day = localday.day_of(ms, tz)
    assert localday.day_start(day, tz) <= ms < localday.day_start(day + 1, tz)
    local = dt.datetime.fromtimestamp(ms / _MS, dt.UTC).astimezone(ZoneInfo(tz))
    assert localday.iso_date(day) == local.date().isoformat()
