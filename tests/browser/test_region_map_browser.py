"""The regional report's map in a real browser, as a regulator opens the file from a mail: every
province drawn, its figure readable in Chinese glyphs (not empty boxes), on screen and in print."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pharmatrace.v1 import trace_pb2 as pb

from pharmatrace_cli import region_page
from tracecore import regions

#: Where screenshots go besides the test's own directory, when set.
SCREENSHOTS = os.environ.get("PHARMATRACE_SCREENSHOTS", "")
STOCK = {"44": ("广东省", 17), "43": ("湖南省", 9), "11": ("北京市", 240),
         "65": ("新疆维吾尔自治区", 0)}


@pytest.fixture
def desk(browser: Any) -> Iterator[Any]:
    """A desktop browser tab with scripts off, as for a page opened from a mail."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                  java_script_enabled=False)
    page = context.new_page()
    yield page
    context.close()


def _report() -> pb.RegionReportResponse:
    rows = [pb.RegionRow(product="06901234567892", product_name="阿莫西林胶囊", region=code,
                         region_name=name, stock=stock)
            for code, (name, stock) in STOCK.items()]
    return pb.RegionReportResponse(rows=rows, start="2026-11-01", end="2026-11-30",
                                   level=pb.REGION_LEVEL_PROVINCE, time_zone="Asia/Shanghai")


def _fonts(page: Any, selector: str) -> list[str]:
    """The platform fonts chromium used to draw the text of ``selector``'s element."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    used = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return [font["familyName"] for font in used]


def test_the_report_map_draws_every_province_with_readable_chinese(desk: Any,
                                                                   tmp_path: Path) -> None:
    """The page opened from a file: all 34 provinces drawn (Macau too small for an outline, as a
    dot), 广东 17 and 湖南 9 as
    text drawn with a CJK font, the zone named, and the map still there when printed."""
    page_file = tmp_path / "report.html"
    page_file.write_text(region_page.render(_report(), "acme"), encoding="utf-8")
    desk.goto(page_file.as_uri())
    svg = desk.locator("svg.map")
    box = svg.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 300
    drawn = desk.eval_on_selector_all(
        "svg.map path:not([fill=none]), svg.map circle",
        "ps => ps.map(p => { const b = p.getBBox();"
        " return [p.querySelector('title').textContent, b.width * b.height] })")
    assert sorted(title.split()[0] for title, _ in drawn) == sorted(
        d.name_zh for d in regions.divisions_at("", 2))
    assert all(area > 0 for _, area in drawn)
    assert "澳门特别行政区 Macao: 0" in [title for title, _ in drawn]
    text = desk.locator("body").inner_text()
    assert "Asia/Shanghai" in text
    labels = desk.eval_on_selector_all("svg.map text", "ts => ts.map(t => t.textContent)")
    assert "广东 17" in labels and "湖南 9" in labels
    guangdong = labels.index("广东 17")
    fonts = _fonts(desk, f"svg.map text:nth-of-type({guangdong + 1})")
    assert any("CJK" in family for family in fonts), fonts
    for directory in filter(None, (str(tmp_path), SCREENSHOTS)):
        desk.screenshot(path=str(Path(directory) / "region-report-map.png"), full_page=True)
    desk.emulate_media(media="print")
    assert desk.locator("svg.map").is_visible()
    assert desk.pdf(format="A4")[:4] == b"%PDF"
