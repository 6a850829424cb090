"""LogisticUnits over real gRPC: company prefixes and SSCC pools, idempotent, never reallocated."""

from __future__ import annotations

import grpc
import pytest
from pharmatrace.v1 import logistics_pb2 as pb
from pharmatrace.v1 import logistics_pb2_grpc

from tests.integration.conftest import RPC_TIMEOUT_S
from tracecore import sscc

PREFIX = "0614141"


@pytest.fixture(scope="module")
def units(issue_channel: grpc.Channel) -> logistics_pb2_grpc.LogisticUnitsStub:
    return logistics_pb2_grpc.LogisticUnitsStub(issue_channel)


def _request(units: logistics_pb2_grpc.LogisticUnitsStub, tenant: str, request_id: str,
             count: int, extension: int = 0, prefix: str = "") -> pb.SsccPool:
    return units.RequestSsccs(pb.RequestSsccsRequest(
        tenant=tenant, request_id=request_id, company_prefix=prefix, extension_digit=extension,
        count=count), timeout=RPC_TIMEOUT_S)


def test_pools_are_valid_ssccs_under_the_prefix_and_never_overlap(units, tenant: str) -> None:
    """Two pools give different SSCCs, each with a valid check digit, under the tenant's prefix."""
    units.RegisterCompanyPrefix(pb.RegisterCompanyPrefixRequest(
        tenant=tenant, company_prefix=PREFIX), timeout=RPC_TIMEOUT_S)
    first = _request(units, tenant, "pallets-1", 500, extension=3)
    second = _request(units, tenant, "pallets-2", 300, extension=3)
    together = list(first.ssccs) + list(second.ssccs)
    assert len(set(together)) == 800
    assert all(sscc.check(s)[:8] == "3" + PREFIX for s in together)
    assert first.company_prefix == PREFIX and first.count == 500


def test_a_retry_under_the_same_request_id_gets_the_same_ssccs(units, tenant: str) -> None:
    """Asking again (after a cut connection) answers the pool already allocated, and GetSsccPool
    shows it too."""
    units.RegisterCompanyPrefix(pb.RegisterCompanyPrefixRequest(
        tenant=tenant, company_prefix=PREFIX), timeout=RPC_TIMEOUT_S)
    first = _request(units, tenant, "cases-1", 50)
    again = _request(units, tenant, "cases-1", 50)
    shown = units.GetSsccPool(pb.GetSsccPoolRequest(tenant=tenant, request_id="cases-1"),
                              timeout=RPC_TIMEOUT_S)
    assert list(again.ssccs) == list(first.ssccs) == list(shown.ssccs)
    next_pool = _request(units, tenant, "cases-2", 1)
    assert next_pool.ssccs[0] not in first.ssccs


def test_a_request_id_reused_for_another_request_is_refused(units, tenant: str, refused) -> None:
    """The same request id with another count is FAILED_PRECONDITION naming request_id."""
    units.RegisterCompanyPrefix(pb.RegisterCompanyPrefixRequest(
        tenant=tenant, company_prefix=PREFIX), timeout=RPC_TIMEOUT_S)
    _request(units, tenant, "cases-x", 5)
    refused(grpc.StatusCode.FAILED_PRECONDITION, "request_id",
            lambda: _request(units, tenant, "cases-x", 6))


def test_an_unregistered_prefix_or_none_at_all_is_refused(units, tenant: str, refused) -> None:
    """SSCCs need a company prefix registered as master data first."""
    refused(grpc.StatusCode.FAILED_PRECONDITION, "company_prefix",
            lambda: _request(units, tenant, "p-1", 5))
    refused(grpc.StatusCode.NOT_FOUND, "company_prefix",
            lambda: _request(units, tenant, "p-1", 5, prefix="9999999"))
    refused(grpc.StatusCode.INVALID_ARGUMENT, "company_prefix",
            lambda: units.RegisterCompanyPrefix(pb.RegisterCompanyPrefixRequest(
                tenant=tenant, company_prefix="12a4567"), timeout=RPC_TIMEOUT_S))


def test_a_full_prefix_space_is_refused_not_wrapped(units, tenant: str, refused) -> None:
    """A 12-digit prefix has 10,000 SSCCs per extension digit; the 10,001st is refused."""
    prefix = "061414112345"
    units.RegisterCompanyPrefix(pb.RegisterCompanyPrefixRequest(
        tenant=tenant, company_prefix=prefix), timeout=RPC_TIMEOUT_S)
    pool = _request(units, tenant, "all", 10_000, prefix=prefix)
    assert len(set(pool.ssccs)) == 10_000
    message = refused(grpc.StatusCode.RESOURCE_EXHAUSTED, None,
                      lambda: _request(units, tenant, "one-more", 1, prefix=prefix))
    assert "0 SSCCs left" in message
    assert _request(units, tenant, "other-digit", 1, extension=1, prefix=prefix).ssccs
