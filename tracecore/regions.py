"""GB/T 2260 administrative divisions: region codes, prefixes, roll-ups, labels, distances."""

from __future__ import annotations

import csv
import enum
import functools
import io
import math
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Final, NamedTuple

from tracecore.errors import InvalidArgument


class Division(NamedTuple):
    """One GB/T 2260 division: its six-digit code, names and a representative point."""

    code: str
    name_zh: str
    name_en: str
    latitude: float  # degrees north; a province's is its capital's
    longitude: float  # degrees east


class Retired(NamedTuple):
    """A code no longer in the national list, and the current code that took its place."""

    code: str
    now: str
    year: int  # 0 when only known as "no longer listed"
    change: str  # the kind of change, in the Ministry of Civil Affairs' words (撤县设区, ...)


@functools.cache
def _divisions() -> dict[str, Division]:
    """Six-digit code -> division, from the shipped table (``pharmatrace regions update``)."""
    return {row["code"]: Division(row["code"], row["name_zh"], row["name_en"],
                                  float(row["latitude"]), float(row["longitude"]))
            for row in _rows("divisions.csv")}


@functools.cache
def _retired() -> dict[str, Retired]:
    return {row["code"]: Retired(row["code"], row["now"], int(row["year"] or 0), row["change"])
            for row in _rows("retired.csv")}


@functools.cache
def _provinces() -> frozenset[str]:
    return frozenset(code[:2] for code in _divisions() if code.endswith("0000"))


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("tracecore.regions_data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


#: GB/T 2260's entries that group counties without being a city (a municipality's districts,
#: its counties, a province's directly governed counties); a label skips them as a parent.
_GROUPS: Final = frozenset({"市辖区", "县", "省直辖县级行政区划"})
_EARTH_RADIUS_KM: Final = 6371.0088
_UNSET: Final = "00"


class RegionLevel(enum.StrEnum):
    """A level reports roll up to; ``digits`` is the length of its prefix."""

    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"

    @property
    def digits(self) -> int:
        return {"province": 2, "city": 4, "county": 6}[self.value]


def parse_region(text: str, field: str = "region") -> str:
    """A six-digit GB/T 2260 code, such as "110105" or the province-wide "440000"."""
    if len(text) != 6:
        raise InvalidArgument("must be a six-digit GB/T 2260 region code", field=field)
    _check_digits(text, field)
    return text


def parse_region_prefix(text: str, field: str = "region_prefix") -> str:
    """A region prefix in canonical form: "11", "1101" or "110105".

    The zero-padded GB/T 2260 forms of a province or city ("110000", "110100", "1100") are
    accepted and shortened, so every prefix of one region has one spelling.
    """
    if len(text) not in (2, 4, 6):
        raise InvalidArgument(
            "must be a GB/T 2260 prefix of 2, 4 or 6 digits (province, city, county)",
            field=field,
        )
    _check_digits(text, field)
    return _canonical(text)


def in_region(region: str, prefixes: Iterable[str]) -> bool:
    """Whether ``region`` (a code or prefix) lies within any of ``prefixes``.

    Both sides are validated, so an empty or malformed prefix raises rather than matching
    everything. A region known only to a coarser level ("110000") is not inside a finer
    prefix ("1101").
    """
    place = parse_region_prefix(region, field="region")
    areas = [
        parse_region_prefix(prefix, field=f"region_prefixes[{i}]")
        for i, prefix in enumerate(prefixes)
    ]
    return any(place.startswith(area) for area in areas)


def rollup(region: str, level: RegionLevel) -> str:
    """The canonical prefix of ``region`` at ``level``, or coarser if the region is coarser.

    "440305" rolls up to "44" (province) and "4403" (city); a province-wide "440000" stays "44"
    at every level, because nothing finer is known about it.
    """
    return _canonical(parse_region_prefix(region, field="region")[: level.digits])


def division(prefix: str) -> Division | None:
    """The division a code or prefix names, if the national list has it ("4403" Shenzhen)."""
    return _divisions().get(_padded(parse_region_prefix(prefix, field="region")))


def retired(prefix: str) -> Retired | None:
    """Where a retired code went, if ``prefix`` is one (older events keep the old codes)."""
    return _retired().get(_padded(parse_region_prefix(prefix, field="region")))


def current(prefix: str) -> str:
    """The canonical prefix naming the same place today: a retired code maps to its successor."""
    canonical = parse_region_prefix(prefix, field="region")
    gone = _retired().get(_padded(canonical))
    return _canonical(gone.now) if gone else canonical


def children(prefix: str) -> list[Division]:
    """The divisions one level below a province ("44": its cities) or a city (its counties)."""
    canonical = parse_region_prefix(prefix, field="region")
    if len(canonical) == 6:
        return []
    below = len(canonical) + 2
    return [d for code, d in sorted(_divisions().items())
            if code.startswith(canonical) and _canonical(code) != canonical
            and len(_canonical(code)) == below]


def divisions_at(within: str, digits: int) -> list[Division]:
    """Every current division whose code has ``digits`` significant digits (2 provinces, 4
    cities, 6 counties) inside the prefix ``within`` ("" is all of China), in code order; the
    groups of counties that are not a city are left out."""
    return [d for code, d in sorted(_divisions().items())
            if code.startswith(within) and len(_canonical(code)) == digits
            and d.name_zh not in _GROUPS]


def display(prefix: str) -> str:
    """A readable label, finest level first with its parents in Chinese:
    "广东省 Guangdong", "深圳市 Shenzhen Shi · 广东省", "南山区 Nanshan Qu · 深圳市 · 广东省".

    A retired code is named by the place that took it over, with the old code beside it; a code
    the list does not have is named by its nearest known parent and shown as it is.
    """
    canonical = parse_region_prefix(prefix)
    gone = _retired().get(_padded(canonical))
    if gone is not None:
        return f"{display(gone.now)} (was {canonical})"
    found = _divisions().get(_padded(canonical))
    parents = [d.name_zh for d in _ancestors(canonical)]
    if found is None:
        return " · ".join([canonical, *parents])
    return " · ".join([f"{found.name_zh} {found.name_en}", *parents])


def distance_km(region_a: str, region_b: str) -> float:
    """Great-circle distance between the representative points of two regions.

    Each side uses the finest division the list knows for it (county, else city, else the
    province's capital); a retired code uses its successor's point. Coarse on purpose: it
    bounds how far a pack can plausibly travel between two scans.
    """
    a = _located(parse_region_prefix(region_a, field="region_a"))
    b = _located(parse_region_prefix(region_b, field="region_b"))
    if (a.latitude, a.longitude) == (b.latitude, b.longitude):
        return 0.0
    lat_a, lat_b = math.radians(a.latitude), math.radians(b.latitude)
    half_dlat = (lat_b - lat_a) / 2
    half_dlon = math.radians(b.longitude - a.longitude) / 2
    h = math.sin(half_dlat) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(half_dlon) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _located(canonical: str) -> Division:
    canonical = current(canonical)
    for size in (6, 4, 2):
        found = _divisions().get(_padded(canonical[:size])) if len(canonical) >= size else None
        if found is not None:
            return found
    raise InvalidArgument(f"unknown GB/T 2260 province {canonical[:2]}", field="region")


def _ancestors(canonical: str) -> Iterator[Division]:
    """The city (when a real one) and province above a prefix, nearest first."""
    for size in (4, 2):
        if len(canonical) > size:
            found = _divisions().get(_padded(canonical[:size]))
            if found is not None and found.name_zh not in _GROUPS:
                yield found


def _padded(canonical: str) -> str:
    return canonical.ljust(6, "0")


def _check_digits(text: str, field: str) -> None:
    """ASCII digits under a known province, with no county below an unset ("00") city."""
    # str.isdigit alone would accept full-width and other Unicode digits.
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument("must contain only the digits 0-9", field=field)
    if text[:2] not in _provinces():
        raise InvalidArgument(f"unknown GB/T 2260 province {text[:2]}", field=field)
    if len(text) == 6 and text[2:4] == _UNSET and text[4:] != _UNSET:
        raise InvalidArgument("has a county but no city (digits 3-4 are 00)", field=field)


def _canonical(prefix: str) -> str:
    """Drop the zero padding GB/T 2260 uses for a whole province or city."""
    while len(prefix) > 2 and prefix.endswith(_UNSET):
        prefix = prefix[:-2]
    return prefix
