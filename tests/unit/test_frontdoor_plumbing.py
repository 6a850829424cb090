"""The front door's plumbing: plain views read a query string as Starlette reads it, and
every request is counted under the name of its route."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from frontdoor.asgi import query
from frontdoor.middleware import route_of

_PIECES = st.sampled_from(["code", "lang", "=", "&", "%28", "%2", "%e4%b8%ad", "%C3", "+", "a",
                           "%%", "%zz", ";", "é", "%00", "(01)", "%2B", " "])


@given(st.lists(_PIECES, max_size=14).map("".join))
def test_a_query_reads_as_parse_qsl_reads_it(text: str) -> None:
    """Every name and value, percent-escapes and plus signs decoded, blank ones kept, the last
    of a name winning, bad escapes and bad UTF-8 as parse_qsl leaves them: the same as
    ``dict(parse_qsl(...))`` for ASCII and for raw UTF-8 query strings."""
    raw = text.encode()
    expected = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    assert query({"query_string": raw}) == expected


def test_requests_are_counted_under_their_route() -> None:
    """Metrics and access-log lines name the route, the longer of two paths starting alike
    included (LVMS's connectivity check is not a check page)."""
    assert [route_of(p) for p in (
        "/01/09501101530027/21/ABC", "/00/095011010000000012", "/check", "/checkConnectivity",
        "/verify/gtin/09501101530027/lot/L/ser/S", "/epcis/events/x", "/epcis/capture",
        "/epcis", "/healthz", "/.well-known/gs1resolver", "/elsewhere")] == [
        "resolver", "resolver", "check", "lvms_connectivity", "lvms_verify", "epcis_events",
        "epcis_capture", "epcis", "healthz", "resolver_description", "other"]
