"""The regional report and the locate picture, over real gRPC and from the command line: stock,
receipts, sales and returns per region, in the tenant's days."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import trace_pb2 as tpb

from pharmatrace_cli.oversight import register
from tests.integration import oversight_chain
from tests.integration.conftest import RPC_TIMEOUT_S, Servers
from tests.integration.oversight_chain import (
    AMOX,
    IBU,
    SUPPLIER,
    SUPPLIER_LOT,
    Chain,
    story_of,
)

chain = oversight_chain.chain  # the fixture: a fresh tenant with the chain registered


# -- the regional report ----------------------------------------------------------------------


def test_the_regional_report_counts_stock_receipts_sales_and_returns_per_region(
        chain: Chain) -> None:
    """Provinces and cities: stock now (in-transit packs where they left), received, sold and
    returned over the period; a recall moves the batch's stock to `recalled`, flows stay."""
    story_of(chain)
    assert chain.report(products=[AMOX]) == [
        (AMOX, "11", 10, 0, 0, 0, 0),
        (AMOX, "43", 9, 0, 15, 1, 0),
        (AMOX, "44", 17, 0, 24, 3, 1),
    ]
    assert chain.report(products=[AMOX], level=tpb.REGION_LEVEL_CITY) == [
        (AMOX, "1101", 10, 0, 0, 0, 0),
        (AMOX, "4301", 9, 0, 15, 1, 0),
        (AMOX, "4401", 2, 0, 4, 3, 1),
        (AMOX, "4403", 15, 0, 20, 0, 0),
    ]
    assert chain.report(products=[AMOX], level=tpb.REGION_LEVEL_COUNTY, region="44") == [
        (AMOX, "440106", 2, 0, 4, 3, 1),
        (AMOX, "440305", 15, 0, 20, 0, 0),
    ]
    assert chain.report(products=[IBU, AMOX], region="11") == [
        (IBU, "11", 10, 0, 0, 0, 0), (AMOX, "11", 10, 0, 0, 0, 0)]
    chain.lifecycle.RecallMaterial(lpb.RecallMaterialRequest(
        tenant=chain.tenant, supplier=SUPPLIER, supplier_lot=SUPPLIER_LOT,
        reason="supplier lot contaminated"), timeout=RPC_TIMEOUT_S)
    assert chain.report() == [
        (AMOX, "11", 0, 10, 0, 0, 0),
        (AMOX, "43", 0, 9, 15, 1, 0),
        (AMOX, "44", 0, 17, 24, 3, 1),
        (IBU, "11", 4, 6, 0, 0, 0),
    ]


def test_flows_outside_the_period_are_left_out(chain: Chain) -> None:
    """A period that ended before today shows stock only."""
    story_of(chain)
    assert chain.report(products=[AMOX], start="2020-01-01", end="2020-01-31") == [
        (AMOX, "11", 10, 0, 0, 0, 0), (AMOX, "43", 9, 0, 0, 0, 0),
        (AMOX, "44", 17, 0, 0, 0, 0)]


def test_the_report_names_the_time_zone_its_days_are_cut_in(chain: Chain) -> None:
    """A tenant that never set a zone gets a report that says its days are UTC days."""
    response = chain.trace.RegionReport(tpb.RegionReportRequest(tenant=chain.tenant),
                                        timeout=RPC_TIMEOUT_S)
    assert response.time_zone == "UTC"


def test_the_report_command_prints_a_table_and_writes_a_self_contained_page(
        chain: Chain, servers: Servers, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`pharmatrace report region --level city --html FILE`: a table with totals, and a page with
    an inline SVG chart and no outside resources."""
    story_of(chain)
    page = tmp_path / "report.html"
    assert _cli(servers, chain.tenant, "report", "region", "--product", AMOX, "--level", "city",
                "--html", str(page)) == 0
    table = capsys.readouterr().out
    assert "深圳市 Shenzhen Shi · 广东省" in table
    total = [line for line in table.splitlines() if "total" in line]
    assert total and total[0].split()[1:] == ["36", "0", "39", "4", "1"]
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    assert "长沙市 Changsha Shi · 湖南省" in text and "<td>39</td>" in text
    assert "src=" not in text and "<link" not in text and "<script" not in text


def test_the_report_page_maps_the_chosen_figure(chain: Chain, servers: Servers,
                                                tmp_path: Path) -> None:
    """`report region --html` draws China's provinces shaded by stock with each value in text;
    with `--region 44 --level county --map sold` it draws Guangdong's counties by sales."""
    story_of(chain)
    page = tmp_path / "china.html"
    assert _cli(servers, chain.tenant, "report", "region", "--html", str(page)) == 0
    text = page.read_text(encoding="utf-8")
    assert "Stock by province, China, all products" in text
    assert text.count("<path") >= 34                      # every province drawn
    assert ">广东 17</text>" in text and ">湖南 9</text>" in text
    assert "<title>新疆维吾尔自治区 Xinjiang: 0</title>" in text   # no stock there, hatched
    page = tmp_path / "guangdong.html"
    assert _cli(servers, chain.tenant, "report", "region", "--region", "44", "--level",
                "county", "--map", "sold", "--html", str(page)) == 0
    text = page.read_text(encoding="utf-8")
    assert "Sold by county, 广东省 Guangdong, all products" in text
    assert ">天河区 3</text>" in text
    assert "<title>南山区 Nanshan Qu: 0</title>" in text and "湖南" not in text.split("<svg")[1]


def test_the_locate_command_prints_the_picture(chain: Chain, servers: Servers,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`pharmatrace locate` prints the totals, one line per holder and per province."""
    story_of(chain)
    assert _cli(servers, chain.tenant, "locate", "--product", AMOX, "--lot", "LOT-1") == 0
    out = capsys.readouterr().out
    assert ("42 units: at plant 10, in stock 23, in transit 3, dispensed 3, other "
            "decommissioned 0, destroyed or stolen 1, voided 2") in out
    assert any(line.split() == ["PHARM-SZ", "pharmacy", "440305", "ACTIVE", "in", "transit",
                                "to", "3"] for line in out.splitlines())
    # The holders' statuses are the packs' records, which a recall does not rewrite: said so.
    assert any(line.split() == ["holder", "kind", "region", "recorded", "status", "transit",
                                "units"] for line in out.splitlines())


def _cli(servers: Servers, tenant: str, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pharmatrace")
    register(parser.add_subparsers())
    args = parser.parse_args([*argv, "--tenant", tenant, "--issue-addr", servers.issue_address,
                              "--verify-addr", servers.verify_address])
    return int(args.run(args))
