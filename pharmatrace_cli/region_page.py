"""The regional report as one self-contained HTML page: a map of one figure over all products,
then a bar chart per product (inline SVG) and the table under it. No scripts, fonts or images
from elsewhere: it opens from a mail attachment and prints."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from pharmatrace.v1 import trace_pb2 as pb

from pharmatrace_cli import region_map
from tracecore import regions

#: What each bar shows, its label and colour (colour-blind safe: Okabe-Ito).
SERIES = (
    ("stock", "Stock", "#0072B2"),
    ("sold", "Sold", "#E69F00"),
    ("received", "Received", "#009E73"),
    ("returned", "Returned", "#CC79A7"),
    ("recalled", "Recalled", "#D55E00"),
)
_DIGITS = {pb.REGION_LEVEL_UNSPECIFIED: 2, pb.REGION_LEVEL_PROVINCE: 2, pb.REGION_LEVEL_CITY: 4,
           pb.REGION_LEVEL_COUNTY: 6}
_BAR = 12
_GAP = 10
_LABEL = 220
_PLOT = 520


@dataclass(frozen=True)
class _Product:
    identifier: str
    name: str
    rows: list[pb.RegionRow]


def render(report: pb.RegionReportResponse, tenant: str, region: str = "",
           figure: str = "stock") -> str:
    """The page for one RegionReport answer (asked for ``region``, "" for all), its map shaded
    by ``figure`` (one of SERIES)."""
    level = pb.RegionLevel.Name(report.level).removeprefix("REGION_LEVEL_").lower()
    products: dict[str, _Product] = {}
    for row in report.rows:
        products.setdefault(row.product, _Product(row.product, row.product_name, [])).rows.append(
            row)
    sections = "\n".join(_section(p) for p in products.values()) or (
        "<p class=empty>No stock or movement in this period.</p>")
    title = f"Sales and stock by {level}, {report.start} to {report.end}"
    chart = _map(report, region, figure)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei",
       sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; padding: 0 1rem; }}
h1 {{ font-size: 1.4rem; margin-bottom: .2rem; }}
h2 {{ font-size: 1.1rem; margin-top: 2.5rem; }}
.meta, .empty {{ color: #666; }}
table {{ border-collapse: collapse; width: 100%; margin-top: 1rem; }}
th, td {{ padding: .3rem .6rem; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tfoot td {{ font-weight: 600; border-top: 2px solid #999; }}
.legend span {{ display: inline-block; margin-right: 1rem; }}
.legend i {{ display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem;
             vertical-align: -1px; }}
svg text {{ font-size: 12px; fill: #222; }}
svg.map text {{ font-size: 11px; paint-order: stroke; stroke: #fff; stroke-width: 3px; }}
svg.map text.on-dark {{ fill: #fff; stroke: #08306b; }}
.legend i.none {{ background: repeating-linear-gradient(45deg, #fff 0 2px, #bbb 2px 4px);
                  border: 1px solid #999; }}
@media print {{ body {{ margin: 0; max-width: none; }} * {{ print-color-adjust: exact;
               -webkit-print-color-adjust: exact; }} }}
</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class=meta>Tenant {_e(tenant)}. Stock is now; received, sold and returned are over the
period, in days from midnight to midnight in {_e(report.time_zone or 'UTC')}. Packs in
transit count as stock where they left until received. Units are sales packs.</p>
{chart}
<p class=legend>{"".join(f'<span><i style="background:{c}"></i>{_e(n)}</span>'
                         for _, n, c in SERIES)}</p>
{sections}
</body>
</html>
"""


def _map(report: pb.RegionReportResponse, region: str, figure: str) -> str:
    """The map section: one figure summed over every product, per area."""
    names = {key: name for key, name, _ in SERIES}
    figures: dict[str, int] = {}
    for row in report.rows:
        figures[row.region] = figures.get(row.region, 0) + getattr(row, figure)
    view = region_map.view_for(region, _DIGITS[report.level])
    values, unplaced = region_map.values_for(view, figures)
    svg = region_map.render(view, values, names[figure])
    if not svg:
        return ""
    where = regions.display(view.within) if view.within else "China"
    kind = {2: "province", 4: "city", 6: "county"}[view.digits]
    note = (f"<p class=meta>{unplaced:,} units are known only at a coarser level than this map "
            "and are in the tables below but not on the map.</p>" if unplaced else "")
    return f"""<h2>{_e(names[figure])} by {kind}, {_e(where)}, all products</h2>
{region_map.legend(values, names[figure])}
{svg}
{note}"""


def _section(product: _Product) -> str:
    totals = {key: sum(getattr(r, key) for r in product.rows) for key, _, _ in SERIES}
    body = "\n".join(
        "<tr><td>" + _e(r.region_name) + "</td>"
        + "".join(f"<td>{getattr(r, key):,}</td>" for key, _, _ in SERIES) + "</tr>"
        for r in product.rows)
    return f"""<h2>{_e(product.name)} <span class=meta>{_e(product.identifier)}</span></h2>
{_chart(product.rows)}
<table>
<thead><tr><th>Region</th>{"".join(f"<th>{_e(n)}</th>" for _, n, _ in SERIES)}</tr></thead>
<tbody>
{body}
</tbody>
<tfoot><tr><td>Total</td>{"".join(f"<td>{totals[k]:,}</td>" for k, _, _ in SERIES)}</tr></tfoot>
</table>"""


def _chart(rows: Sequence[pb.RegionRow]) -> str:
    """Grouped horizontal bars: one group per region, one bar per series that is not all zero."""
    shown = [(key, name, colour) for key, name, colour in SERIES
             if any(getattr(r, key) for r in rows)]
    top = max((getattr(r, key) for r in rows for key, _, _ in shown), default=0) or 1
    group = len(shown) * _BAR + _GAP
    height = len(rows) * group + _GAP
    width = _LABEL + _PLOT + 80
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="100%" '
             f'viewBox="0 0 {width} {height}" aria-label="units by region">']
    for i, row in enumerate(rows):
        y = _GAP + i * group
        middle = y + len(shown) * _BAR / 2 + 4
        parts.append(f'<text x="{_LABEL - 8}" y="{middle:.0f}" text-anchor="end">'
                     f"{_e(row.region_name)}</text>")
        for j, (key, name, colour) in enumerate(shown):
            value = getattr(row, key)
            length = _PLOT * value / top
            by = y + j * _BAR
            parts.append(f'<rect x="{_LABEL}" y="{by}" width="{length:.1f}" height="{_BAR - 2}" '
                         f'fill="{colour}"><title>{_e(name)}: {value:,}</title></rect>')
            if value:
                parts.append(f'<text x="{_LABEL + length + 4:.1f}" y="{by + _BAR - 3}">'
                             f"{value:,}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def _e(text: str) -> str:
    return html.escape(text, quote=True)
