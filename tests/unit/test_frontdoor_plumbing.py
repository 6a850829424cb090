"""The front door's plumbing: plain views read a query string as Starlette reads it, and
every request is counted under the name of its route, its time in the latency histogram."""

from __future__ import annotations

import datetime as dt
import json
import math
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from frontdoor import lvms
from frontdoor.asgi import query
from frontdoor.lvms import _timestamp
from frontdoor.middleware import RequestLog, route_of
from tracecore.usecases import partner_verification as partner
from tracerpc.metrics import Metrics

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


@given(st.lists(st.integers(-2_000_000_000_000, 32_503_680_000_000), min_size=1, max_size=6))
def test_an_lvms_timestamp_is_the_time_in_utc_to_the_millisecond(moments: list[int]) -> None:
    """Each answer's time as ISO 8601 in UTC with milliseconds, however many answers share a
    second and in whatever order seconds come."""
    for at_ms in [*moments, *(m + 1 for m in moments), *moments]:
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=at_ms)
        assert _timestamp(at_ms) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + \
            f"{moment.microsecond // 1000:03d}Z"


def test_requests_are_counted_under_their_route() -> None:
    """Metrics and access-log lines name the route, the longer of two paths starting alike
    included (LVMS's connectivity check is not a check page)."""
    assert [route_of(p) for p in (
        "/01/09501101530027/21/ABC", "/00/095011010000000012", "/check", "/checkConnectivity",
        "/verify/gtin/09501101530027/lot/L/ser/S", "/epcis/events/x", "/epcis/capture",
        "/epcis", "/healthz", "/.well-known/gs1resolver", "/elsewhere")] == [
        "resolver", "resolver", "check", "lvms_connectivity", "lvms_verify", "epcis_events",
        "epcis_capture", "epcis", "healthz", "resolver_description", "other"]


def _latency_samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                          float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect() if metric.name == "pharmatrace_http_request_seconds"
            for s in metric.samples if not s.name.endswith("_created")}


@given(st.lists(st.tuples(st.sampled_from(["/check", "/01/09501101530027/21/A", "/x"]),
                          st.sampled_from([0.0, 0.0005, 0.0007, 0.001, 0.02, 0.3, 30.0, 31.0])
                          | st.floats(0, 60)), max_size=40))
def test_request_times_land_in_the_histogram_as_observed_one_by_one(
        requests: list[tuple[str, float]]) -> None:
    """The latency histogram a flush writes holds, route by route, the same buckets, count and
    sum as observing each request's time on its own would (a time on a bucket's bound in that
    bucket, one past the last bound in +Inf)."""
    registry, reference = CollectorRegistry(), CollectorRegistry()
    log = RequestLog(Metrics(registry))
    expected = Metrics(reference).http_latency
    for path, seconds in requests:
        log.add(route_of(path), "GET", 200, seconds, "10.0.0.1")
        expected.labels(route_of(path)).observe(seconds)
    log.flush()
    got, want = _latency_samples(registry), _latency_samples(reference)
    # The flush's histogram has every route, those without a request at zero.
    assert want.keys() <= got.keys()
    assert all(math.isclose(value, want.get(key, 0.0), abs_tol=1e-9)
               for key, value in got.items())


@given(st.booleans(), st.sampled_from([None, *partner.FailureReason]),
       st.sampled_from([None, *partner.AdditionalInfo]), st.text(max_size=20),
       st.text(max_size=40), st.integers(0, 4_102_444_800_000))
def test_an_lvms_answer_is_the_json_json_dumps_writes(
        verified: bool, reason: partner.FailureReason | None,
        info: partner.AdditionalInfo | None, gln: str, corr_uuid: str, at_ms: int) -> None:
    """An LVMS answer's body is, byte for byte, the compact UTF-8 JSON ``json.dumps`` makes of
    it, whatever text its fields hold (quotes, backslashes, control and non-ASCII characters)."""
    answer = partner.PartnerAnswer(corr_uuid, verified, reason, info, gln, at_ms)
    data: dict[str, object] = {"verified": verified}
    if reason is not None:
        data["verificationFailureReason"] = reason.value
    if info is not None:
        data["additionalInfo"] = info.value
    expected = json.dumps({"verificationTimestamp": _timestamp(at_ms), "responderGLN": gln,
                           "corrUUID": corr_uuid, "data": data},
                          ensure_ascii=False, separators=(",", ":")).encode()
    assert lvms.body(answer) == expected
    assert json.loads(lvms.body(answer))["data"]["verified"] is verified
