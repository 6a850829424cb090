"""The read side's rules without a database: who traces what, which events and alerts a
filter wants, a regional report's period, a scan's context; a fake catalogue stands in for the
ledger's products and batches."""

from __future__ import annotations

import datetime as dt

import pytest
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.credentials import Principal, Role
from tracecore.errors import InvalidArgument, NotFound, PermissionDenied
from tracecore.oversight import AlertFilter, AlertKind, AlertRecord
from tracecore.regions import RegionLevel
from tracecore.usecases import oversight, reports, trace, verification
from tracecore.verification import Verifier

GTIN = "09501101530010"
TODAY = dt.date(2026, 3, 31)


class FakeCatalogue:
    """One product with one batch, lot L1."""

    def product(self, identifier: str) -> tuple[int, cpb.Product]:
        if identifier != GTIN:
            raise NotFound(f"no product {identifier}", field="product")
        return 7, cpb.Product(gtin=GTIN)

    def batch(self, product: str, lot: str) -> tuple[int, cpb.Batch]:
        if (product, lot) != (GTIN, "L1"):
            raise NotFound(f"no batch {lot}", field="lot")
        return 9, cpb.Batch(product=GTIN, lot="L1")


def _distributor(party: str = "D1") -> Principal:
    return Principal("t", Role.DISTRIBUTOR, "cred", party_id=party)


def _event(party: str = "", destination: str = "") -> trace.Step:
    return lpb.EventRecord(party_id=party, destination=destination), None


def test_only_a_party_bound_distributor_is_limited_to_its_custody() -> None:
    """A distributor's credential bound to a party reads that party's custody; a regulator, an
    admin and an unbound distributor read everything."""
    assert trace.custody_party(_distributor()) == "D1"
    assert trace.custody_party(_distributor("")) == ""
    assert trace.custody_party(Principal("t", Role.REGULATOR, "c", party_id="R1")) == ""
    assert trace.custody_party(None) == ""


def test_a_distributor_traces_packs_it_held_shipped_or_received_only() -> None:
    """Holding the pack, or an event naming the party as actor or destination, lets it trace;
    a pack that never passed through it is refused."""
    trace.check_custody("D1", "D1", [])
    trace.check_custody("D1", "P9", [_event(party="D1")])
    trace.check_custody("D1", "P9", [_event(destination="D1")])
    trace.check_custody("", "P9", [])
    with pytest.raises(PermissionDenied):
        trace.check_custody("D1", "P9", [_event(party="D2", destination="P9")])


def test_a_distributor_lists_its_own_events_and_no_other_partys() -> None:
    """No party asked: its own; its own asked: its own; another party: PERMISSION_DENIED on
    party_id. Other callers get what they ask."""
    assert trace.party_filter("D1", "") == "D1"
    assert trace.party_filter("D1", "D1") == "D1"
    assert trace.party_filter("", "P2") == "P2"
    with pytest.raises(PermissionDenied) as refused:
        trace.party_filter("D1", "P2")
    assert refused.value.field == "party_id"


def test_an_event_filter_resolves_the_batch_or_product_and_checks_the_window() -> None:
    """A lot is looked up with its product, a product alone by its ref; a lot without its
    product, an empty window and an unknown batch name the field at fault."""
    catalogue = FakeCatalogue()
    wanted = trace.event_filter(catalogue, trace.EventQuery(product=GTIN, lot="L1"), "")
    assert (wanted.batch_ref, wanted.product_ref) == (9, 0)
    wanted = trace.event_filter(catalogue, trace.EventQuery(product=GTIN, from_ms=5), "D1")
    assert (wanted.batch_ref, wanted.product_ref, wanted.party_id, wanted.from_ms) == (
        0, 7, "D1", 5)
    for query, field in [(trace.EventQuery(lot="L1"), "product"),
                         (trace.EventQuery(from_ms=10, to_ms=10), "to_ms")]:
        with pytest.raises(InvalidArgument) as bad:
            trace.event_filter(catalogue, query, "")
        assert bad.value.field == field
    with pytest.raises(NotFound):
        trace.event_filter(catalogue, trace.EventQuery(product=GTIN, lot="L2"), "")


def test_an_alert_filter_checks_kind_product_lot_and_region() -> None:
    """Known kinds only; a lot needs its product and names the batch's product; an unregistered
    product is NOT_FOUND; a region is a GB/T 2260 prefix."""
    catalogue = FakeCatalogue()
    wanted = oversight.alert_filter(catalogue, oversight.AlertQuery(
        kind=AlertKind.DIVERSION, product=GTIN, lot="L1", region="44"))
    assert wanted == AlertFilter(kind=AlertKind.DIVERSION, product=GTIN, lot="L1", region="44")
    for query, field in [(oversight.AlertQuery(kind=99), "kind"),
                         (oversight.AlertQuery(lot="L1"), "product"),
                         (oversight.AlertQuery(region="4x"), "region")]:
        with pytest.raises(InvalidArgument) as bad:
            oversight.alert_filter(catalogue, query)
        assert bad.value.field == field
    with pytest.raises(NotFound):
        oversight.alert_filter(catalogue, oversight.AlertQuery(product="09501101530027"))


def test_an_alert_filter_matches_kind_product_lot_region_and_window() -> None:
    """Every field set must match; a region matches by prefix; the window is [from, to)."""
    alert = AlertRecord(kind=AlertKind.DIVERSION, source=3, raised_at_ms=100, code="c",
                        product=GTIN, lot="L1", region="440305")
    assert AlertFilter().matches(alert)
    assert AlertFilter(kind=AlertKind.DIVERSION, product=GTIN, lot="L1", region="4403",
                       from_ms=100, to_ms=101).matches(alert)
    for other in [AlertFilter(kind=AlertKind.CLONE_SUSPECTED), AlertFilter(lot="L2"),
                  AlertFilter(region="11"), AlertFilter(from_ms=101), AlertFilter(to_ms=100)]:
        assert not other.matches(alert)


def test_a_report_covers_thirty_days_up_to_today_by_default() -> None:
    """No dates: the 30 days ending today; an end alone: the 30 days ending then."""
    assert reports.period("", "", TODAY) == reports.Period(dt.date(2026, 3, 2), TODAY)
    assert reports.period("", "2026-01-30", TODAY) == reports.Period(
        dt.date(2026, 1, 1), dt.date(2026, 1, 30))
    assert reports.period("2026-03-31", "", TODAY).days == (20543, 20543)


@pytest.mark.parametrize(("start", "end", "field"), [
    ("2026-03-02", "2026-03-01", "end"), ("2000-01-01", "2026-03-01", "end"),
    ("2026-02-30", "", "start"), ("", "31.03.2026", "end")])
def test_a_report_period_must_be_real_dates_in_order_and_bounded(start: str, end: str,
                                                                 field: str) -> None:
    """An end before its start, more than ten years, or a date that is not YYYY-MM-DD is
    INVALID_ARGUMENT naming the field."""
    with pytest.raises(InvalidArgument) as bad:
        reports.period(start, end, TODAY)
    assert bad.value.field == field


@pytest.mark.parametrize(("query", "field"), [
    (reports.ReportQuery(products=[GTIN] * 101), "products"),
    (reports.ReportQuery(products=[GTIN, "0950110153001"]), "products[1]"),
    (reports.ReportQuery(level=None), "level"),
    (reports.ReportQuery(region="4"), "region")])
def test_a_report_query_is_checked_before_any_counter_is_read(query: reports.ReportQuery,
                                                              field: str) -> None:
    """Over 100 products, a malformed product, an unknown level or a bad region prefix name
    the field at fault."""
    with pytest.raises(InvalidArgument) as bad:
        reports.check_query(query)
    assert bad.value.field == field


def test_a_report_query_gives_its_level_and_canonical_region_limit() -> None:
    """A valid query's level, and its region prefix as the counters key it."""
    assert reports.check_query(reports.ReportQuery(level=RegionLevel.CITY, region="4403")) == (
        RegionLevel.CITY, "4403")


def test_a_scan_context_is_bounded_and_its_region_a_gb_t_2260_code() -> None:
    """A party id over 64 characters or a region that is not a six-digit code is refused,
    naming the field; a valid region becomes its number."""
    context = verification.scan_context(verification.Scan("P1", "440305", 2))
    assert (context.party_id, context.region, context.purpose) == ("P1", 440305, 2)
    assert verification.scan_context(verification.Scan()).region == 0
    for scan, field in [(verification.Scan(party_id="x" * 65), "context.party_id"),
                        (verification.Scan(region="44"), "context.region")]:
        with pytest.raises(InvalidArgument) as bad:
            verification.scan_context(scan)
        assert bad.value.field == field


class _NoVerifiers:
    def get(self, tenant_name: str) -> Verifier:
        raise AssertionError("a refused request reached the verifier")

    def client_key(self) -> bytes:
        raise AssertionError("a refused request reached the verifier")


def test_oversized_verification_requests_are_refused_before_any_lookup() -> None:
    """A code over 4,096 characters and a batch over 100,000 codes are INVALID_ARGUMENT, and
    no verifier is asked."""
    with pytest.raises(InvalidArgument) as bad:
        verification.verify(_NoVerifiers(), "t", "x" * 4097, verification.Scan(), 0)
    assert bad.value.field == "code"
    with pytest.raises(InvalidArgument) as bad:
        verification.verify_batch(_NoVerifiers(), "t", ["x"] * 100_001, verification.Scan(), 0)
    assert bad.value.field == "codes"


def test_a_public_caller_cannot_name_the_party_or_place_of_its_scan() -> None:
    """An anonymous Verify naming DIST-1 in Beijing is counted as a consumer scan from nowhere:
    only a credential's party is trusted, so no diversion can be planted against DIST-1."""
    scan = verification.Scan(party_id="DIST-1", region="110101", purpose=3)
    public = Principal("acme", Role.PUBLIC, peer="ipv4:198.51.100.7:5000")
    pharmacy = Principal("acme", Role.PHARMACY, credential_id="c1", party_id="DIST-1")
    anonymous = verification.scan_context(scan, public)
    assert (anonymous.party_id, anonymous.region, anonymous.purpose) == ("", 0, 3)
    trusted = verification.scan_context(scan, pharmacy)
    assert (trusted.party_id, trusted.region) == ("DIST-1", 110101)
