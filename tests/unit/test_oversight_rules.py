"""The oversight rules on their own: effective status under a recall, authorised regions, travel
speed, the partition of a batch's picture, report rows, thresholds, and the report page."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import trace_pb2 as tpb

from pharmatrace_cli import region_page
from tracecore.errors import InvalidArgument
from tracecore.oversight import (
    Checks,
    Holding,
    Location,
    RegionFigures,
    RegionRule,
    Travel,
    authorised,
    effective_status,
    report_rows,
)
from tracecore.status import DECOMMISSIONED, Status
from tracerpc.locations import batch_location

HOUR_MS = 3_600_000


@pytest.mark.parametrize("status", list(Status))
def test_a_recall_covers_packs_on_the_market_and_decommissioned_ones_only(status: Status
                                                                          ) -> None:
    """ACTIVE and decommissioned packs read RECALLED (or WITHDRAWN); the rest keep their
    status; a recall wins over a withdrawal."""
    covered = status is Status.ACTIVE or status in DECOMMISSIONED
    assert effective_status(status, True, False) is (Status.RECALLED if covered else status)
    assert effective_status(status, False, True) is (Status.WITHDRAWN if covered else status)
    assert effective_status(status, True, True) is (Status.RECALLED if covered else status)
    assert effective_status(status, False, False) is status


@pytest.mark.parametrize(("region", "prefixes", "expected"), [
    (440305, ["44"], True),
    (440305, ["4403"], True),
    (440305, ["4401"], False),
    (430102, ["44", "43"], True),
    (110105, ["44"], False),
    (440000, ["4403"], False),      # known only as "somewhere in Guangdong"
    (0, ["44"], True),              # unknown place: no diversion can be claimed
    (650102, [], True),             # no authorisation: sold anywhere
])
def test_authorised_regions_are_prefixes(region: int, prefixes: list[str],
                                         expected: bool) -> None:
    """A region is authorised when a prefix (province, city or county) covers it."""
    assert authorised(region, prefixes) is expected
    assert RegionRule(prefixes, "batch").allows(region) is expected


def test_travel_compares_distance_with_the_time_between_scans() -> None:
    """Beijing-Guangzhou is about 1,890 km: impossible in an hour at 1,000 km/h, possible in
    two; Guangzhou-Shenzhen (about 90 km) impossible in a minute; neighbouring districts always
    possible."""
    travel = Travel(1000.0)
    assert 1850 < travel.distance_km(110105, 440106) < 1950
    assert travel.impossible(110105, 0, 440106, HOUR_MS)
    assert not travel.impossible(110105, 0, 440106, 2 * HOUR_MS)
    assert travel.impossible(440106, 0, 440305, 60_000)
    assert not travel.impossible(440106, 0, 440305, HOUR_MS)
    assert not travel.impossible(440305, 0, 440304, 0)   # Nanshan and Futian, Shenzhen
    assert travel.impossible(110105, 5 * HOUR_MS, 440106, 0)    # out of order: no time at all


_PARTIES = [None, *(cpb.Party(party_id=f"P{i}", kind=kind, region=region)
                    for i, (kind, region) in enumerate([
                        (cpb.PARTY_KIND_PLANT, "110105"), (cpb.PARTY_KIND_DISTRIBUTOR, "440305"),
                        (cpb.PARTY_KIND_PHARMACY, "430102"), (cpb.PARTY_KIND_HOSPITAL, "")]))]
_holdings = st.lists(st.builds(
    Holding, st.sampled_from(_PARTIES),
    # Statuses the counters hold: ISSUED codes are not counted, recalls are never written.
    st.sampled_from([s for s in Status
                     if s not in (Status.ISSUED, Status.RECALLED, Status.WITHDRAWN)]),
    st.booleans(),
    st.integers(1, 10_000)), max_size=20)


@given(_holdings)
def test_a_batch_picture_partitions_its_units(holdings: list[Holding]) -> None:
    """Plant, stock, transit, dispensed, other decommissioned, destroyed and voided add up to
    the units; holder rows add up to them too; provinces never count more than the holders."""
    location = batch_location(Location(cpb.Product(name="x"), cpb.Batch(product="p", lot="l"),
                                       holdings=holdings))
    parts = (location.at_plant + location.in_stock + location.in_transit + location.dispensed
             + location.other_decommissioned + location.destroyed + location.voided)
    assert location.units == parts == sum(h.units for h in holdings)
    assert sum(h.units for h in location.holders) == location.units
    assert sum(r.in_stock + r.in_transit for r in location.regions) == (
        location.at_plant + location.in_stock + location.in_transit)
    assert sum(r.dispensed for r in location.regions) == location.dispensed


def test_report_rows_keep_product_order_sort_regions_and_skip_empty_ones() -> None:
    """Rows follow the products as asked, regions sorted with the unknown one last."""
    a, b = cpb.Product(gtin="A", name="a"), cpb.Product(nmpa_id="1234567", name="b")
    rows = report_rows([
        (b, {"44": RegionFigures(stock=1), "": RegionFigures(sold=2), "11": RegionFigures()}),
        (a, {"43": RegionFigures(received=3)}),
    ])
    assert [(r.product, r.region, r.region_name) for r in rows] == [
        ("1234567", "44", "广东省 Guangdong"), ("1234567", "", "unknown"),
        ("A", "43", "湖南省 Hunan")]


def test_clone_thresholds_come_from_the_environment() -> None:
    """PHARMATRACE_CLONE_MAX_SCANS and _MAX_SPEED_KMH set the thresholds; nonsense is refused."""
    assert Checks.from_env({}) == Checks()
    checks = Checks.from_env({"PHARMATRACE_CLONE_MAX_SCANS": "5",
                              "PHARMATRACE_CLONE_MAX_SPEED_KMH": "800"})
    assert (checks.max_scans, checks.max_speed_kmh) == (5, 800.0)
    for bad in ({"PHARMATRACE_CLONE_MAX_SCANS": "many"},
                {"PHARMATRACE_CLONE_MAX_SCANS": "0"},
                {"PHARMATRACE_CLONE_MAX_SPEED_KMH": "-1"}):
        with pytest.raises(InvalidArgument):
            Checks.from_env(bad)


def test_the_report_page_is_self_contained_and_escapes_what_it_shows() -> None:
    """One HTML page with an inline SVG map and an inline SVG bar per figure, names escaped,
    nothing fetched."""
    report = tpb.RegionReportResponse(
        start="2026-03-01", end="2026-03-31", level=tpb.REGION_LEVEL_CITY,
        rows=[tpb.RegionRow(product="A", product_name="<b>Amox</b>", region="4403",
                            region_name="广东省 Guangdong / 4403", stock=120, sold=30),
              tpb.RegionRow(product="A", product_name="<b>Amox</b>", region="4301",
                            region_name="湖南省 Hunan / 4301", stock=5, received=7)])
    page = region_page.render(report, "acme")
    assert page.count("<svg") == 2 and "<title>Stock: 120</title>" in page
    assert "<title>广东省 Guangdong: 120</title>" in page
    assert "&lt;b&gt;Amox&lt;/b&gt;" in page and "<b>Amox" not in page
    assert "<td>125</td>" in page           # stock total
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    empty = region_page.render(tpb.RegionReportResponse(start="2026-03-01", end="2026-03-31"),
                               "acme")
    assert "No stock or movement" in empty
