"""GB/T 2260 administrative divisions: region codes, prefixes, roll-ups, labels, distances."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import Final, NamedTuple

from tracecore.errors import InvalidArgument


class _Province(NamedTuple):
    name_zh: str
    name_en: str
    latitude: float  # of the capital, degrees north
    longitude: float  # of the capital, degrees east


# All 34 provincial-level units, keyed by their two-digit GB/T 2260 prefix.
_PROVINCES: Final[dict[str, _Province]] = {
    "11": _Province("北京市", "Beijing", 39.904, 116.407),
    "12": _Province("天津市", "Tianjin", 39.084, 117.201),
    "13": _Province("河北省", "Hebei", 38.042, 114.515),  # Shijiazhuang
    "14": _Province("山西省", "Shanxi", 37.870, 112.549),  # Taiyuan
    "15": _Province("内蒙古自治区", "Inner Mongolia", 40.842, 111.749),  # Hohhot
    "21": _Province("辽宁省", "Liaoning", 41.806, 123.432),  # Shenyang
    "22": _Province("吉林省", "Jilin", 43.817, 125.324),  # Changchun
    "23": _Province("黑龙江省", "Heilongjiang", 45.803, 126.535),  # Harbin
    "31": _Province("上海市", "Shanghai", 31.230, 121.474),
    "32": _Province("江苏省", "Jiangsu", 32.060, 118.797),  # Nanjing
    "33": _Province("浙江省", "Zhejiang", 30.274, 120.155),  # Hangzhou
    "34": _Province("安徽省", "Anhui", 31.821, 117.227),  # Hefei
    "35": _Province("福建省", "Fujian", 26.074, 119.296),  # Fuzhou
    "36": _Province("江西省", "Jiangxi", 28.682, 115.858),  # Nanchang
    "37": _Province("山东省", "Shandong", 36.651, 117.120),  # Jinan
    "41": _Province("河南省", "Henan", 34.747, 113.625),  # Zhengzhou
    "42": _Province("湖北省", "Hubei", 30.593, 114.305),  # Wuhan
    "43": _Province("湖南省", "Hunan", 28.228, 112.939),  # Changsha
    "44": _Province("广东省", "Guangdong", 23.129, 113.264),  # Guangzhou
    "45": _Province("广西壮族自治区", "Guangxi", 22.817, 108.366),  # Nanning
    "46": _Province("海南省", "Hainan", 20.044, 110.199),  # Haikou
    "50": _Province("重庆市", "Chongqing", 29.563, 106.551),
    "51": _Province("四川省", "Sichuan", 30.573, 104.066),  # Chengdu
    "52": _Province("贵州省", "Guizhou", 26.647, 106.630),  # Guiyang
    "53": _Province("云南省", "Yunnan", 25.038, 102.718),  # Kunming
    "54": _Province("西藏自治区", "Xizang", 29.652, 91.172),  # Lhasa
    "61": _Province("陕西省", "Shaanxi", 34.341, 108.940),  # Xi'an
    "62": _Province("甘肃省", "Gansu", 36.061, 103.834),  # Lanzhou
    "63": _Province("青海省", "Qinghai", 36.617, 101.778),  # Xining
    "64": _Province("宁夏回族自治区", "Ningxia", 38.487, 106.231),  # Yinchuan
    "65": _Province("新疆维吾尔自治区", "Xinjiang", 43.825, 87.617),  # Ürümqi
    "71": _Province("台湾", "Taiwan", 25.033, 121.565),  # Taipei
    "81": _Province("香港", "Hong Kong", 22.320, 114.169),
    "82": _Province("澳门", "Macao", 22.199, 113.544),
}

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


def display(prefix: str) -> str:
    """A readable label: "广东省 Guangdong", or "广东省 Guangdong / 4403" for a city or county."""
    canonical = parse_region_prefix(prefix)
    province = _PROVINCES[canonical[:2]]
    label = f"{province.name_zh} {province.name_en}"
    return label if len(canonical) == 2 else f"{label} / {canonical}"


def distance_km(region_a: str, region_b: str) -> float:
    """Great-circle distance between the provincial capitals of two regions; 0.0 within one.

    Coarse on purpose: it bounds how far a pack can plausibly travel between two scans.
    """
    a = _PROVINCES[parse_region_prefix(region_a, field="region_a")[:2]]
    b = _PROVINCES[parse_region_prefix(region_b, field="region_b")[:2]]
    if a is b:
        return 0.0
    lat_a, lat_b = math.radians(a.latitude), math.radians(b.latitude)
    half_dlat = (lat_b - lat_a) / 2
    half_dlon = math.radians(b.longitude - a.longitude) / 2
    h = math.sin(half_dlat) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(half_dlon) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _check_digits(text: str, field: str) -> None:
    """ASCII digits under a known province, with no county below an unset ("00") city."""
    # str.isdigit alone would accept full-width and other Unicode digits.
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument("must contain only the digits 0-9", field=field)
    if text[:2] not in _PROVINCES:
        raise InvalidArgument(f"unknown GB/T 2260 province {text[:2]}", field=field)
    if len(text) == 6 and text[2:4] == _UNSET and text[4:] != _UNSET:
        raise InvalidArgument("has a county but no city (digits 3-4 are 00)", field=field)


def _canonical(prefix: str) -> str:
    """Drop the zero padding GB/T 2260 uses for a whole province or city."""
    while len(prefix) > 2 and prefix.endswith(_UNSET):
        prefix = prefix[:-2]
    return prefix
