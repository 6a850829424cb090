"""Reports: stock, receipts, sales and returns per product and region, from the counters kept
on every event."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from tracecore import localday, masterdata, regions
from tracecore.errors import InvalidArgument
from tracecore.ledger import oversight, policy
from tracecore.ledger.store import Ledger
from tracecore.oversight import RegionRow
from tracecore.usecases.declare import ADMIN, REGULATOR, Scope, use_case

MAX_REPORT_PRODUCTS = 100
#: Longest report period, so one report reads a bounded number of counters.
MAX_REPORT_DAYS = 3660
#: The period when no start is given: 30 days up to ``end``.
DEFAULT_DAYS = 30
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """What a regional report covers; empty fields take their defaults."""

    products: Sequence[str] = ()
    """GTINs or NMPA ids; empty: every product."""
    start: str = ""
    """First day, YYYY-MM-DD (the tenant's local day); default 29 days before ``end``."""
    end: str = ""
    """Last day, inclusive; default the tenant's today."""
    level: regions.RegionLevel | None = regions.RegionLevel.PROVINCE
    """None: a level the caller named that does not exist."""
    region: str = ""
    """GB/T 2260 prefix the report is limited to."""


@dataclass(frozen=True, slots=True)
class Period:
    """The days a report covers, both included."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> tuple[int, int]:
        """First and last day as days since 1970 (counters are kept per day since then:
        nothing was counted before it)."""
        return max(0, (self.start - _EPOCH).days), max(-1, (self.end - _EPOCH).days)


@dataclass(frozen=True, slots=True)
class Report:
    rows: list[RegionRow]
    """By product (in the order asked, else registration order), then region."""
    period: Period
    time_zone: str = "UTC"
    """The IANA zone whose local days the period and the daily figures are cut in."""


def period(start: str, end: str, today: dt.date) -> Period:
    """The report's period from ISO dates ("" for the defaults); INVALID_ARGUMENT naming a bad
    field."""
    last = masterdata.iso_date(end, "end", required=False) or today
    first = (masterdata.iso_date(start, "start", required=False)
             or dt.date.fromordinal(max(1, last.toordinal() - (DEFAULT_DAYS - 1))))
    if last < first:
        raise InvalidArgument("is before start", field="end")
    if (last - first).days >= MAX_REPORT_DAYS:
        raise InvalidArgument(f"the period is longer than {MAX_REPORT_DAYS} days", field="end")
    return Period(first, last)


def check_query(query: ReportQuery) -> tuple[regions.RegionLevel, str]:
    """The level and region limit of a valid query; INVALID_ARGUMENT naming a bad field."""
    if len(query.products) > MAX_REPORT_PRODUCTS:
        raise InvalidArgument(f"at most {MAX_REPORT_PRODUCTS}", field="products")
    for i, product in enumerate(query.products):
        masterdata.product_identifier(product, f"products[{i}]")
    if query.level is None:
        raise InvalidArgument("must be province, city or county", field="level")
    limit = regions.parse_region_prefix(query.region, field="region") if query.region else ""
    return query.level, limit


@use_case(roles={ADMIN, REGULATOR}, writes=False, scope=Scope.TENANT)
def region_report(ledger: Ledger, query: ReportQuery, now_ms: int) -> Report:
    """Stock now and the flows of the period per product and region prefix at the level, in the
    tenant's local days."""
    level, limit = check_query(query)
    with ledger.env.read() as txn:
        zone = policy.day_zone(ledger, txn)
        today = dt.date.fromisoformat(localday.iso_date(localday.day_of(now_ms, zone)))
        covered = period(query.start, query.end, today)
        first_day, last_day = covered.days
        rows = oversight.region_report(ledger, txn, list(query.products), first_day, last_day,
                                       level, limit)
    return Report(rows, covered, zone)
