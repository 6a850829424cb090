"""GB/T 2260 region codes: parsing, prefixes, membership, roll-ups, labels and distances."""

from __future__ import annotations

import pytest

from tracecore.errors import InvalidArgument
from tracecore.regions import (
    RegionLevel,
    children,
    current,
    display,
    distance_km,
    division,
    in_region,
    parse_region,
    parse_region_prefix,
    retired,
    rollup,
)

ALL_PROVINCES = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82",
]


@pytest.mark.parametrize(
    "code", ["110105", "440305", "440300", "440000", "429004", "650102", "710000", "810000",
             "820000"],
)
def test_valid_region_codes_parse_unchanged(code: str) -> None:
    """Six-digit codes under a known province, county, city or province-wide, are accepted."""
    assert parse_region(code) == code


@pytest.mark.parametrize("province", ALL_PROVINCES)
def test_every_provincial_level_unit_is_known(province: str) -> None:
    """All 34 provincial-level prefixes parse, label and have a capital for distances."""
    assert parse_region(province + "0000") == province + "0000"
    assert display(province).split(" ", 1)[1]
    assert distance_km(province, "11") >= 0.0


@pytest.mark.parametrize(
    "text",
    ["", "11010", "1101050", "11010a", "990101", "000000", "160101", "720000", "110001",
     " 110105", "110105\n", "１１０１０５", "١١٠١٠٥", "+11010"],
    ids=["empty", "short", "long", "letter", "province-99", "zeros", "province-16",
         "province-72", "county-without-city", "space", "newline", "fullwidth", "arabic-indic",
         "sign"],
)
def test_invalid_region_codes_are_refused(text: str) -> None:
    """Wrong length, non-ASCII digits, unknown provinces and city 00 with a county fail."""
    with pytest.raises(InvalidArgument) as caught:
        parse_region(text)
    assert caught.value.field == "region"


def test_region_error_names_the_callers_field() -> None:
    """The field given by the caller is the one the error names."""
    with pytest.raises(InvalidArgument) as caught:
        parse_region("99", field="party.region")
    assert caught.value.field == "party.region"
    assert str(caught.value).startswith("party.region: ")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("11", "11"), ("1101", "1101"), ("110105", "110105"), ("110000", "11"), ("110100", "1101"),
     ("1100", "11"), ("440300", "4403"), ("429004", "429004")],
)
def test_prefixes_normalise_to_one_spelling(text: str, canonical: str) -> None:
    """Province, city and county prefixes, zero-padded or not, come out in canonical form."""
    assert parse_region_prefix(text) == canonical


@pytest.mark.parametrize("text", ["", "1", "111", "11010", "99", "00", "110001", "1x"])
def test_invalid_prefixes_are_refused(text: str) -> None:
    """Odd lengths, unknown provinces and a county under city 00 are not prefixes."""
    with pytest.raises(InvalidArgument) as caught:
        parse_region_prefix(text, field="batch.authorised_regions[0]")
    assert caught.value.field == "batch.authorised_regions[0]"


@pytest.mark.parametrize(
    ("region", "prefixes", "inside"),
    [
        ("110105", ["11"], True),
        ("110105", ["1101"], True),
        ("110105", ["110105"], True),
        ("110105", ["110000"], True),
        ("110105", ["110100"], True),
        ("110105", ["1102"], False),
        ("110105", ["12", "44"], False),
        ("110105", ["44", "1101"], True),
        ("110105", [], False),
        ("110000", ["11"], True),
        ("110000", ["1101"], False),
        ("1101", ["110105"], False),
    ],
)
def test_in_region(region: str, prefixes: list[str], inside: bool) -> None:
    """A region is inside when any prefix covers it; coarser regions are not in finer ones."""
    assert in_region(region, prefixes) is inside


@pytest.mark.parametrize("prefix", ["", "0", "99"])
def test_in_region_refuses_a_malformed_prefix_rather_than_matching_all(prefix: str) -> None:
    """An empty or bad prefix raises: it must never match every region."""
    with pytest.raises(InvalidArgument) as caught:
        in_region("110105", ["11", prefix])
    assert caught.value.field == "region_prefixes[1]"


@pytest.mark.parametrize(
    ("region", "level", "prefix"),
    [
        ("440305", RegionLevel.PROVINCE, "44"),
        ("440305", RegionLevel.CITY, "4403"),
        ("440305", RegionLevel.COUNTY, "440305"),
        ("440300", RegionLevel.COUNTY, "4403"),
        ("440000", RegionLevel.CITY, "44"),
        ("440000", RegionLevel.COUNTY, "44"),
        ("4403", RegionLevel.PROVINCE, "44"),
    ],
)
def test_rollup(region: str, level: RegionLevel, prefix: str) -> None:
    """Roll-up gives the canonical prefix at a level, never finer than what is known."""
    assert rollup(region, level) == prefix


def test_rollup_refuses_a_malformed_region() -> None:
    """Roll-up validates its input."""
    with pytest.raises(InvalidArgument):
        rollup("99", RegionLevel.PROVINCE)


def test_levels_and_their_prefix_lengths() -> None:
    """Levels are named strings with prefix lengths 2, 4, 6."""
    assert [(level.value, level.digits) for level in RegionLevel] == [
        ("province", 2), ("city", 4), ("county", 6)
    ]


@pytest.mark.parametrize(
    ("prefix", "label"),
    [
        ("11", "北京市 Beijing"),
        ("110000", "北京市 Beijing"),
        ("44", "广东省 Guangdong"),
        ("4403", "深圳市 Shenzhen Shi · 广东省"),
        ("440300", "深圳市 Shenzhen Shi · 广东省"),
        ("440305", "南山区 Nanshan Qu · 深圳市 · 广东省"),
        ("4401", "广州市 Guangzhou Shi · 广东省"),
        ("110105", "朝阳区 Chaoyang Qu · 北京市"),
        ("429004", "仙桃市 Xiantao Shi · 湖北省"),
        ("61", "陕西省 Shaanxi"),
        ("14", "山西省 Shanxi"),
        ("15", "内蒙古自治区 Inner Mongolia"),
        ("71", "台湾省 Taiwan"),
        ("81", "香港特别行政区 Hong Kong"),
        ("82", "澳门特别行政区 Macao"),
    ],
)
def test_display_labels(prefix: str, label: str) -> None:
    """Every division shows its Chinese and pinyin names, then its city and province."""
    assert display(prefix) == label


def test_a_retired_code_is_named_by_its_successor() -> None:
    """Zhabei (310108), merged into Jing'an in 2015, shows today's district and the old code;
    a current code maps to itself."""
    assert display("310108") == "静安区 Jingan Qu · 上海市 (was 310108)"
    gone = retired("310108")
    assert gone is not None and (gone.now, gone.year) == ("310106", 2015)
    assert current("310108") == "310106"
    assert current("440305") == "440305"


def test_a_code_not_in_the_list_is_named_by_its_parents() -> None:
    """An unknown county under a known city keeps its code and shows where it lies."""
    assert display("440399") == "440399 · 深圳市 · 广东省"


def test_every_current_county_has_a_name_and_a_point_inside_china() -> None:
    """Every division of the shipped list has both names and a coordinate within China."""
    cities = children("44")
    assert "广州市" in {c.name_zh for c in cities} and len(cities) == 21
    counties = children("4403")
    assert {c.code for c in counties} >= {"440303", "440304", "440305", "440306"}
    for code in ("110105", "650102", "540102", "460202", "230102", "810000", "710000"):
        found = division(code)
        assert found is not None and found.name_zh and found.name_en
        assert 3 < found.latitude < 54 and 73 < found.longitude < 136


def test_beijing_to_guangzhou_is_about_1900_km() -> None:
    """Beijing (Chaoyang) to Guangzhou (Tianhe) is roughly 1,890 km, either way round."""
    assert 1850 < distance_km("110105", "440106") < 1950
    assert distance_km("110105", "440106") == distance_km("440106", "110105")


def test_counties_of_one_province_are_apart() -> None:
    """County points are used where known: Shenzhen's Nanshan to Guangzhou's Tianhe is
    about 90-110 km; a province and its own capital city are 0 km apart."""
    assert 80 < distance_km("440305", "440106") < 120
    assert distance_km("44", "440000") == 0.0
    assert distance_km("44", "4401") == 0.0


def test_distance_spans_the_country() -> None:
    """Ürümqi to Harbin is over 3,000 km; Hong Kong to Macao under 100 km."""
    assert distance_km("650102", "230102") > 3000
    assert distance_km("810000", "820000") < 100


def test_distance_names_the_bad_argument() -> None:
    """A malformed region in a distance query names which argument was bad."""
    with pytest.raises(InvalidArgument) as caught:
        distance_km("110105", "990000")
    assert caught.value.field == "region_b"
