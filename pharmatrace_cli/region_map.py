"""A choropleth of one figure of the regional report as inline SVG: China's provinces, or the
cities or counties of one province or city. Outlines come simplified from the shipped
``tracecore/regions_data/shapes.json.gz`` (天地图 boundaries, ``pharmatrace regions update``).

Readable without colour: each shaded area carries its value as text, the legend gives each
shade's range, and areas without a figure are hatched rather than merely pale.
"""

from __future__ import annotations

import functools
import gzip
import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from tracecore import regions

#: Sequential shades, light to dark (ColorBrewer Blues), distinct in greyscale print too.
SHADES = ("#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c")
_WIDTH = 760
_MARGIN = 8
_LEVEL_OF = {2: "province", 4: "city", 6: "district"}


@dataclass(frozen=True)
class MapView:
    """What a map shows: areas of ``digits`` length inside ``within`` ("" is all of China)."""

    within: str
    digits: int


def view_for(region: str, level_digits: int) -> MapView:
    """The map for a report filtered to ``region`` at a level: all provinces without a filter,
    else the level's areas inside the region, at least one level below it."""
    if not region:
        return MapView("", 2)
    within = regions.parse_region_prefix(region, field="region")
    return MapView(within, min(6, max(level_digits, len(within) + 2)))


def values_for(view: MapView, figures: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """Figures summed per map area; the second value counts units the map cannot place
    (known only at a coarser level than the map draws)."""
    out: dict[str, int] = {}
    unplaced = 0
    for region, value in figures.items():
        place = regions.current(region) if region else ""
        if len(place) < view.digits or not place.startswith(view.within):
            unplaced += value if place.startswith(view.within) or not view.within else 0
            continue
        key = place[: view.digits]
        out[key] = out.get(key, 0) + value
    return out, unplaced


def render(view: MapView, values: Mapping[str, int], figure: str) -> str:
    """The SVG element, or "" when the shipped outlines have nothing for this view."""
    areas = {code[:view.digits]: rings for code, rings in _outlines(_LEVEL_OF[view.digits]).items()
             if not code.startswith("line") and code.startswith(view.within)
             and code.endswith("0" * (6 - view.digits))}
    if not areas:
        return ""
    lines = ([r for code, rs in _outlines("province").items() if code.startswith("line")
              for r in rs] if not view.within else [])
    every = [p for rings in areas.values() for ring in rings for p in ring]
    lat0 = (min(p[1] for p in every) + max(p[1] for p in every)) / 2
    squeeze = math.cos(math.radians(lat0))  # equal-ish distances across, at the map's middle
    xs = [p[0] * squeeze for p in every]
    ys = [-p[1] for p in every]
    scale = (_WIDTH - 2 * _MARGIN) / ((max(xs) - min(xs)) or 1)
    height = round((max(ys) - min(ys)) * scale + 2 * _MARGIN)
    x0, y0 = min(xs), min(ys)

    def project(lon: float, lat: float) -> tuple[float, float]:
        return (_MARGIN + (lon * squeeze - x0) * scale, _MARGIN + (-lat - y0) * scale)

    top = max(values.values(), default=0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class=map width="100%" '
             f'viewBox="0 0 {_WIDTH} {height}" aria-label="{_e(figure)} by area">',
             '<defs><pattern id="none" width="6" height="6" patternUnits="userSpaceOnUse" '
             'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
             '<line x1="0" y1="0" x2="0" y2="6" stroke="#bbb" stroke-width="1.5"/>'
             '</pattern></defs>']
    for code, rings in sorted(areas.items()):
        value = values.get(code, 0)
        fill = _shade(value, top) if value else "url(#none)"
        path = " ".join("M" + " ".join(f"{x:.1f},{y:.1f}" for x, y in
                                       (project(lon, lat) for lon, lat in ring)) + "Z"
                        for ring in rings)
        name = _name(code)
        parts.append(f'<path d="{path}" fill="{fill}" stroke="#555" stroke-width=".6">'
                     f"<title>{_e(name)}: {value:,}</title></path>")
    for small in regions.divisions_at(view.within, view.digits):
        # An area too small for the simplified outlines (Macau, some city districts) is a dot.
        code = small.code[:view.digits]
        if code in areas:
            continue
        value = values.get(code, 0)
        fill = _shade(value, top) if value else "url(#none)"
        x, y = project(small.longitude, small.latitude)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" stroke="#555" '
                     f'stroke-width=".6"><title>{_e(_name(code))}: {value:,}</title></circle>')
        areas[code] = []
    for ring in lines:
        path = "M" + " ".join(f"{x:.1f},{y:.1f}" for x, y in
                              (project(lon, lat) for lon, lat in ring))
        parts.append(f'<path d="{path}" fill="none" stroke="#555" stroke-width=".8"/>')
    for code in sorted(areas):
        value = values.get(code, 0)
        place = regions.division(code)
        if not value or place is None:
            continue
        x, y = project(place.longitude, place.latitude)
        dark = "on-dark" if _shade(value, top) in SHADES[3:] else ""
        parts.append(f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="middle" class="{dark}">'
                     f"{_e(_short(place.name_zh))} {value:,}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def legend(values: Mapping[str, int], figure: str) -> str:
    """The shades' ranges and the hatching for no figure, as HTML."""
    top = max(values.values(), default=0)
    items = []
    for i, colour in enumerate(SHADES):
        low, high = _bounds(i, top)
        if high < low:
            continue
        items.append(f'<span><i style="background:{colour}"></i>{low:,}–{high:,}</span>')
    items.append('<span><i class=none></i>none</span>')
    return f'<p class=legend>{_e(figure)}: {"".join(items)}</p>'


def _shade(value: int, top: int) -> str:
    """Five equal steps from 1 to the largest value."""
    step = max(1, math.ceil(top / len(SHADES)))
    return SHADES[min(len(SHADES) - 1, (value - 1) // step)]


def _bounds(i: int, top: int) -> tuple[int, int]:
    step = max(1, math.ceil(top / len(SHADES)))
    return i * step + 1, min(top, (i + 1) * step)


def _name(code: str) -> str:
    place = regions.division(code)
    return f"{place.name_zh} {place.name_en}" if place else code


def _short(name: str) -> str:
    """A province's name without its generic ending, as Chinese maps label them (广东, 新疆)."""
    for end in ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市"):
        if name.endswith(end) and len(name) > len(end) + 1:
            return name[: -len(end)]
    return name


@functools.cache
def _outlines(level: str) -> dict[str, list[list[tuple[float, float]]]]:
    """Code -> rings of (lon, lat), undoing the shipped file's delta coding."""
    raw = gzip.decompress(resources.files("tracecore.regions_data")
                          .joinpath("shapes.json.gz").read_bytes())
    out: dict[str, list[list[tuple[float, float]]]] = {}
    for code, rings in json.loads(raw)[level].items():
        decoded = []
        for ring in rings:
            x = y = 0
            points = []
            for i in range(0, len(ring), 2):
                x, y = x + ring[i], y + ring[i + 1]
                points.append((x / 100, y / 100))
            decoded.append(points)
        out[code] = decoded
    return out


def _e(text: str) -> str:
    return html.escape(text, quote=True)
