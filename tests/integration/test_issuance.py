"""CodeIssuance over real gRPC: pools stream in order, resume by request id, come back voided."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import verification_pb2 as vpb

import tracecore.minting
from tests.integration.conftest import Servers
from tracecore.codes import Scheme

pytestmark = pytest.mark.timeout(120)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
NOT_COMMISSIONED = 1 << vpb.ALERT_KIND_NOT_COMMISSIONED
UNREGISTERED_GTIN = "04006381333931"
_CSET82_SERIAL = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")


@dataclass(frozen=True)
class Target:
    """What a pool is requested for: a tenant's product, and its batch if it has one."""

    tenant: str
    product: str
    scheme: int
    lot: str


@pytest.fixture(params=["gs1", "nmpa"])
def target(request: pytest.FixtureRequest, make, tenant: str) -> Target:
    """A GS1 product with a batch, then an NMPA product without one."""
    if request.param == "gs1":
        product = make.gs1(tenant)
        return Target(tenant, product.gtin, cpb.SCHEME_GS1, product.lot)
    return Target(tenant, make.nmpa(tenant).nmpa_id, cpb.SCHEME_NMPA, "")


def _request(target: Target, count: int, **options) -> ipb.RequestCodesRequest:
    fields = {"tenant": target.tenant, "product": target.product, "lot": target.lot,
              "count": count, **options}
    return ipb.RequestCodesRequest(**fields)


class Randomness:
    """Stands in for the random source of the in-process issuance server, so a test can make it
    repeat itself: what it gave while recording, it gives again (once, in order) once replayed."""

    def __init__(self, real: Callable[[int], bytes]) -> None:
        self._real = real
        self._recording: list[bytes] | None = None
        self._replay: list[bytes] = []
        self._repeat_next = False

    def __call__(self, n: int) -> bytes:
        if self._replay and len(self._replay[0]) == n:
            return self._replay.pop(0)
        data = self._real(n)
        if self._recording is not None:
            self._recording.append(data)
        if self._repeat_next:
            self._replay.append(data)
            self._repeat_next = False
        return data

    def record(self) -> None:
        self._recording = []

    def replay(self) -> None:
        assert self._recording, "nothing was drawn while recording"
        self._replay, self._recording = self._recording, None

    def repeat_next_draw(self) -> None:
        """The next draw is given twice: once when asked, and again at the following draw."""
        self._repeat_next = True

    @property
    def replayed_all(self) -> bool:
        return not self._replay


@pytest.fixture
def randomness(monkeypatch: pytest.MonkeyPatch) -> Randomness:
    source = Randomness(tracecore.minting.urandom)
    monkeypatch.setattr(tracecore.minting, "urandom", source)
    return source


# -- streaming, order, totals ------------------------------------------------------------------


def test_a_pool_streams_in_order_with_running_totals(api, target: Target) -> None:
    """Chunks of chunk_size arrive in pool order: offsets follow on and totals run up to count."""
    request_id = api.new_request_id()
    chunks = api.request(target.tenant, target.product, 250, request_id=request_id,
                         lot=target.lot, chunk_size=100)
    assert [c.offset for c in chunks] == [0, 100, 200]
    assert [c.total for c in chunks] == [100, 200, 250]
    assert [len(c.serials) for c in chunks] == [100, 100, 50]
    assert {(c.request_id, c.scheme, c.product, c.count) for c in chunks} == {
        (request_id, target.scheme, target.product, 250)}


def test_every_code_of_a_pool_is_distinct_and_well_formed(api, target: Target) -> None:
    """A pool's codes are all different; GS1 serials fit AI (21), NMPA ones are 13 digits."""
    chunks = api.request(target.tenant, target.product, 2_000, lot=target.lot)
    serials = [s for c in chunks for s in c.serials]
    assert len(serials) == len(set(serials)) == 2_000
    if target.scheme == cpb.SCHEME_GS1:
        assert all(_CSET82_SERIAL.fullmatch(s) for s in serials)
    else:
        assert all(len(s) == 13 and s.isdigit() for s in serials)


def test_issued_codes_verify_genuine_issued_and_not_commissioned(api, target: Target) -> None:
    """Every code of a pool verifies GENUINE, ISSUED, with the NOT_COMMISSIONED alert alone."""
    codes = api.codes(target.tenant, target.product, 300, lot=target.lot)
    answers = api.verify_batch(target.tenant, codes)
    assert set(answers.verdicts) == {vpb.VERDICT_GENUINE}
    assert set(answers.statuses) == {cpb.CODE_STATUS_ISSUED}
    assert set(answers.alert_masks) == {NOT_COMMISSIONED}
    one = api.verify(target.tenant, codes[-1])
    assert (one.verdict, one.status, list(one.alerts), one.code) == (
        vpb.VERDICT_GENUINE, cpb.CODE_STATUS_ISSUED, [vpb.ALERT_KIND_NOT_COMMISSIONED], codes[-1])


# -- idempotency -------------------------------------------------------------------------------


def test_a_retry_returns_exactly_the_same_codes_in_the_same_order(api, target: Target) -> None:
    """Repeating a request id streams the same codes in the same chunks; nothing new is minted."""
    request_id = api.new_request_id()
    first = api.request(target.tenant, target.product, 120, request_id=request_id,
                        lot=target.lot, chunk_size=50)
    again = api.request(target.tenant, target.product, 120, request_id=request_id,
                        lot=target.lot, chunk_size=50)
    assert api.codes_of(again) == api.codes_of(first)
    assert [(c.offset, c.total) for c in again] == [(c.offset, c.total) for c in first]
    assert api.pool(target.tenant, request_id).issued == 120


def test_a_retry_may_spell_the_same_request_differently(api, gs1) -> None:
    """A retry with another chunk size, the GTIN-13 and an explicit UNIT level is the same
    request."""
    request_id = api.new_request_id()
    first = api.codes(gs1.tenant, gs1.gtin, 40, request_id=request_id, lot=gs1.lot)
    again = api.codes(gs1.tenant, gs1.gtin.removeprefix("0"), 40, request_id=request_id,
                      lot=gs1.lot, chunk_size=7, level=cpb.PACKAGING_LEVEL_UNIT)
    assert again == first


def test_a_retry_after_a_cut_stream_resumes_to_exactly_count_codes(api, target: Target) -> None:
    """A client that hangs up after one chunk retries and gets what it saw, then the rest."""
    request_id = api.new_request_id()
    count, size = 3_000, 10
    stream = api.issuance.RequestCodes(_request(target, count, request_id=request_id,
                                                chunk_size=size), timeout=30)
    seen = next(stream)
    stream.cancel()
    retried = api.request(target.tenant, target.product, count, request_id=request_id,
                          lot=target.lot, chunk_size=size)
    codes = api.codes_of(retried)
    assert codes[:size] == api.codes_of([seen])
    assert len(codes) == len(set(codes)) == count
    assert [c.offset for c in retried] == list(range(0, count, size))
    pool = api.pool(target.tenant, request_id)
    assert (pool.issued, pool.state) == (count, ipb.POOL_STATE_COMPLETE)
    assert set(api.verify_batch(target.tenant, codes).verdicts) == {vpb.VERDICT_GENUINE}


@pytest.mark.parametrize("change", ["count", "lot", "level", "product"])
def test_a_request_id_cannot_be_reused_for_another_request(api, make, gs1, refused,
                                                          change: str) -> None:
    """The same request id with other parameters is FAILED_PRECONDITION; the pool is unchanged."""
    request_id = api.new_request_id()
    original = api.codes(gs1.tenant, gs1.gtin, 10, request_id=request_id, lot=gs1.lot)
    product, count, lot, level = gs1.gtin, 10, gs1.lot, cpb.PACKAGING_LEVEL_UNIT
    if change == "count":
        count = 11
    elif change == "lot":
        lot = ""
    elif change == "level":
        level = cpb.PACKAGING_LEVEL_CASE
    else:
        product, lot = make.nmpa(gs1.tenant).nmpa_id, ""
    refused(grpc.StatusCode.FAILED_PRECONDITION, "request_id",
            lambda: api.request(gs1.tenant, product, count, request_id=request_id, lot=lot,
                                level=level))
    pool = api.pool(gs1.tenant, request_id)
    assert (pool.count, pool.issued, pool.lot, pool.level) == (10, 10, gs1.lot,
                                                               cpb.PACKAGING_LEVEL_UNIT)
    assert api.codes(gs1.tenant, gs1.gtin, 10, request_id=request_id, lot=gs1.lot) == original


def test_a_request_refused_for_a_missing_batch_works_once_the_batch_exists(api, gs1,
                                                                          refused) -> None:
    """Asking before the batch is registered leaves no pool, so the same request id works later."""
    request_id = api.new_request_id()
    refused(NOT_FOUND, "lot", lambda: api.request(gs1.tenant, gs1.gtin, 5,
                                                  request_id=request_id, lot="LOT-B2"))
    refused(NOT_FOUND, "request_id", lambda: api.pool(gs1.tenant, request_id))
    api.admin.AddBatch(apb.AddBatchRequest(tenant=gs1.tenant, batch=cpb.Batch(
        product=gs1.gtin, lot="LOT-B2", expires_on=gs1.expires_on)))
    assert len(api.codes(gs1.tenant, gs1.gtin, 5, request_id=request_id, lot="LOT-B2")) == 5


# -- pools -------------------------------------------------------------------------------------


def test_get_pool_reports_the_request_and_its_counts(api, gs1) -> None:
    """GetPool shows what was asked, how many were issued and returned, and that it is complete."""
    request_id = api.new_request_id()
    codes = api.codes(gs1.tenant, gs1.gtin, 30, request_id=request_id, lot=gs1.lot)
    api.give_back(gs1.tenant, codes[:3])
    pool = api.pool(gs1.tenant, request_id)
    assert (pool.request_id, pool.product, pool.lot, pool.level, pool.scheme) == (
        request_id, gs1.gtin, gs1.lot, cpb.PACKAGING_LEVEL_UNIT, cpb.SCHEME_GS1)
    assert (pool.count, pool.issued, pool.returned, pool.state) == (
        30, 30, 3, ipb.POOL_STATE_COMPLETE)
    assert pool.key_id == 1
    assert pool.created_at_ms > 0


# -- returns -----------------------------------------------------------------------------------


def test_returned_codes_are_voided(api, target: Target) -> None:
    """Returned codes verify VOIDED with the VOIDED alert; the pool's other codes stay ISSUED."""
    codes = api.codes(target.tenant, target.product, 10, lot=target.lot)
    response = api.give_back(target.tenant, codes[:4], ipb.RETURN_REASON_SCRAPPED)
    assert (response.voided, list(response.failures)) == (4, [])
    voided = api.verify(target.tenant, codes[0])
    assert (voided.verdict, voided.status, list(voided.alerts)) == (
        vpb.VERDICT_GENUINE, cpb.CODE_STATUS_VOIDED, [vpb.ALERT_KIND_VOIDED])
    assert api.verify(target.tenant, codes[4]).status == cpb.CODE_STATUS_ISSUED


def test_codes_can_be_returned_in_any_input_form(api, gs1, nmpa) -> None:
    """HRI with lot and expiry, element string, Digital Link and spaced NMPA digits all return."""
    serials = [s for c in api.request(gs1.tenant, gs1.gtin, 3, lot=gs1.lot) for s in c.serials]
    nmpa_code = api.codes(nmpa.tenant, nmpa.nmpa_id, 1)[0]
    forms = [
        f"(01){gs1.gtin}(17){gs1.expiry}(10){gs1.lot}(21){serials[0]}",
        f"]d201{gs1.gtin}17{gs1.expiry}10{gs1.lot}\x1d21{serials[1]}",
        f"https://scan.example.org/01/{gs1.gtin}/10/{gs1.lot}/21/{serials[2]}?17={gs1.expiry}",
        f"{nmpa_code[:7]} {nmpa_code[7:13]} {nmpa_code[13:]}",
    ]
    response = api.give_back(gs1.tenant, forms)
    assert (response.voided, list(response.failures)) == (4, [])
    statuses = api.verify_batch(gs1.tenant, forms).statuses
    assert set(statuses) == {cpb.CODE_STATUS_VOIDED}


def test_a_return_refuses_unknown_garbage_and_repeated_codes_one_by_one(api, gs1, forge) -> None:
    """Each code that cannot be voided is listed with its index, its text and its own reason;
    the others are voided."""
    codes = api.codes(gs1.tenant, gs1.gtin, 3)
    never_issued = forge(gs1.tenant, Scheme.GS1, gs1.gtin, 1)[0]
    api.give_back(gs1.tenant, [codes[2]])
    listed = [codes[0], never_issued, "not a code", codes[1], codes[0], codes[2]]
    response = api.give_back(gs1.tenant, listed)
    assert response.voided == 2
    assert [(f.index, f.code) for f in response.failures] == [
        (1, never_issued), (2, "not a code"), (4, codes[0]), (5, codes[2])]
    assert all(f.reason for f in response.failures), response.failures
    answers = api.verify_batch(gs1.tenant, [codes[0], codes[1], never_issued])
    assert list(answers.statuses) == [cpb.CODE_STATUS_VOIDED, cpb.CODE_STATUS_VOIDED,
                                      cpb.CODE_STATUS_UNSPECIFIED]


def test_each_refusal_points_at_the_position_it_is_about(api, gs1) -> None:
    """A code listed twice that cannot be voided is refused at both of its positions."""
    codes = api.codes(gs1.tenant, gs1.gtin, 2)
    api.give_back(gs1.tenant, [codes[0]])
    response = api.give_back(gs1.tenant, [codes[0], codes[1], codes[0]])
    assert response.voided == 1
    assert [f.index for f in response.failures] == [0, 2]


@pytest.mark.parametrize("returned", [False, True], ids=["issued", "returned"])
def test_no_code_is_issued_twice_even_when_the_random_source_repeats(
    api, target: Target, randomness: Randomness, returned: bool
) -> None:
    """A draw that repeats an earlier code, still issued or returned (voided), is drawn again."""
    randomness.record()
    first = api.codes(target.tenant, target.product, 50, lot=target.lot)
    if returned:
        api.give_back(target.tenant, first)
    randomness.replay()
    second = api.codes(target.tenant, target.product, 50, lot=target.lot)
    assert randomness.replayed_all, "the server did not draw the recorded bytes again"
    assert len(set(second)) == 50
    assert not set(first) & set(second)
    answers = api.verify_batch(target.tenant, first + second)
    assert set(answers.verdicts) == {vpb.VERDICT_GENUINE}
    old_status = cpb.CODE_STATUS_VOIDED if returned else cpb.CODE_STATUS_ISSUED
    assert list(answers.statuses) == [old_status] * 50 + [cpb.CODE_STATUS_ISSUED] * 50


def test_a_pool_never_holds_one_code_twice_even_within_one_millisecond(
    api, gs1, randomness: Randomness, monkeypatch: pytest.MonkeyPatch, servers: Servers
) -> None:
    """Two chunks of one pool minted in the same millisecond never share a code."""
    monkeypatch.setattr(servers.codegen.side, "clock", lambda: 1_790_000_000_000)
    randomness.repeat_next_draw()
    codes = api.codes(gs1.tenant, gs1.gtin, 2, chunk_size=1)
    assert randomness.replayed_all, "the server did not draw the repeated bytes"
    assert len(set(codes)) == 2, codes


# -- bad arguments -----------------------------------------------------------------------------


BAD_POOL_REQUESTS = [
    pytest.param({"request_id": ""}, INVALID, "request_id", id="no-request-id"),
    pytest.param({"request_id": "line 1"}, INVALID, "request_id", id="request-id-with-space"),
    pytest.param({"request_id": "r" * 65}, INVALID, "request_id", id="request-id-too-long"),
    pytest.param({"count": 0}, INVALID, "count", id="count-0"),
    pytest.param({"count": 10_000_001}, INVALID, "count", id="count-over-10-million"),
    pytest.param({"chunk_size": 65_537}, INVALID, "chunk_size", id="chunk-size-over-65536"),
    pytest.param({"level": 99}, INVALID, "level", id="unknown-level"),
    pytest.param({"product": ""}, INVALID, "product", id="no-product"),
    pytest.param({"product": "12345"}, INVALID, "product", id="malformed-product"),
    pytest.param({"product": UNREGISTERED_GTIN}, NOT_FOUND, "product", id="unknown-product"),
    pytest.param({"lot": "NO-SUCH-LOT"}, NOT_FOUND, "lot", id="unknown-lot"),
    pytest.param({"lot": "L" * 21}, INVALID, "lot", id="lot-too-long"),
    pytest.param({"tenant": "no-such-tenant"}, NOT_FOUND, "tenant", id="unknown-tenant"),
    pytest.param({"tenant": "Not A Tenant"}, INVALID, "tenant", id="malformed-tenant"),
]


@pytest.mark.parametrize(("change", "status", "field"), BAD_POOL_REQUESTS)
def test_a_bad_pool_request_is_refused_naming_the_field(
    api, gs1, refused, change: dict[str, object], status: grpc.StatusCode, field: str
) -> None:
    """RequestCodes refuses a bad argument before any code is minted, naming the field."""
    request = ipb.RequestCodesRequest(**{
        "tenant": gs1.tenant, "product": gs1.gtin, "lot": gs1.lot, "count": 5,
        "request_id": api.new_request_id(), **change})
    refused(status, field, lambda: api.issuance.RequestCodes(request, timeout=30))
    if request.request_id and change.keys().isdisjoint({"tenant", "request_id"}):
        refused(NOT_FOUND, "request_id", lambda: api.pool(gs1.tenant, request.request_id))


def test_a_return_without_codes_is_refused(api, gs1, refused) -> None:
    """ReturnCodes with an empty list is INVALID_ARGUMENT naming codes."""
    refused(INVALID, "codes", lambda: api.give_back(gs1.tenant, []))


def test_a_return_of_more_than_100000_codes_is_refused(api, gs1, refused) -> None:
    """ReturnCodes takes at most 100,000 codes; more is INVALID_ARGUMENT naming codes."""
    codes = api.codes(gs1.tenant, gs1.gtin, 1)
    refused(INVALID, "codes", lambda: api.give_back(gs1.tenant, codes * 100_001))
    assert api.verify(gs1.tenant, codes[0]).status == cpb.CODE_STATUS_ISSUED


def test_a_return_without_a_reason_is_refused(api, gs1, refused) -> None:
    """ReturnCodes must say UNUSED or SCRAPPED; leaving it out is INVALID_ARGUMENT naming reason."""
    codes = api.codes(gs1.tenant, gs1.gtin, 1)
    refused(INVALID, "reason",
            lambda: api.give_back(gs1.tenant, codes, ipb.RETURN_REASON_UNSPECIFIED))


def test_a_return_to_an_unknown_tenant_is_not_found(api, refused) -> None:
    """ReturnCodes for a tenant that does not exist is NOT_FOUND naming tenant."""
    refused(NOT_FOUND, "tenant", lambda: api.give_back("no-such-tenant", ["(01)x(21)y"]))


def test_an_unknown_pool_is_not_found(api, tenant: str, refused) -> None:
    """GetPool of a request id never used is NOT_FOUND naming request_id."""
    refused(NOT_FOUND, "request_id", lambda: api.pool(tenant, "never-used"))


def test_a_pool_of_an_unknown_tenant_is_not_found(api, refused) -> None:
    """GetPool for a tenant that does not exist is NOT_FOUND naming tenant."""
    refused(NOT_FOUND, "tenant", lambda: api.pool("no-such-tenant", "r1"))


def test_a_pool_without_a_request_id_is_refused(api, tenant: str, refused) -> None:
    """GetPool without a request id is INVALID_ARGUMENT naming request_id, not an internal error."""
    refused(INVALID, "request_id", lambda: api.pool(tenant, ""))
