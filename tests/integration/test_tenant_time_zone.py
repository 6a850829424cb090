"""A tenant's time zone over real gRPC: set at creation or later, the server's default
otherwise, an unknown IANA name refused naming it, and the daily counters recounted on demand."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from pharmatrace.v1 import admin_pb2 as apb

from tests.integration.conftest import RPC_TIMEOUT_S, Api

Refused = Callable[[grpc.StatusCode, str | None, Callable[[], object]], str]
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _zone(api: Api, tenant: str, zone: str | None = None) -> str:
    wanted = apb.TenantPolicy() if zone is None else apb.TenantPolicy(time_zone=zone)
    return api.admin.SetTenantPolicy(apb.SetTenantPolicyRequest(tenant=tenant, policy=wanted),
                                     timeout=RPC_TIMEOUT_S).policy.time_zone


def test_a_tenant_created_with_a_zone_keeps_it_and_one_without_gets_the_default(api: Api
                                                                                ) -> None:
    """CreateTenant with Asia/Shanghai cuts its day there; without a zone, the server's default
    (UTC here) applies; changing it later answers the new zone and keeps the market rules."""
    api.admin.CreateTenant(apb.CreateTenantRequest(tenant="sh-pharma", name="Shanghai Pharma",
                                                   time_zone="Asia/Shanghai"),
                           timeout=RPC_TIMEOUT_S)
    api.admin.CreateTenant(apb.CreateTenantRequest(tenant="plain-pharma", name="Plain"),
                           timeout=RPC_TIMEOUT_S)
    assert _zone(api, "sh-pharma") == "Asia/Shanghai"
    assert _zone(api, "plain-pharma") == "UTC"
    assert _zone(api, "plain-pharma", "America/New_York") == "America/New_York"
    recount = api.admin.RecountDaily(apb.RecountDailyRequest(tenant="plain-pharma"),
                                     timeout=RPC_TIMEOUT_S)
    assert (recount.time_zone, recount.daily_counters) == ("America/New_York", 0)


def test_an_unknown_zone_is_refused_naming_it(api: Api, tenant: str, refused: Refused) -> None:
    """An IANA name that does not exist is INVALID_ARGUMENT naming time_zone and the name, at
    creation and later, and the tenant's zone stays as it was."""
    message = refused(INVALID, "time_zone", lambda: api.admin.CreateTenant(
        apb.CreateTenantRequest(tenant="mars-pharma", name="Mars", time_zone="Mars/Olympus"),
        timeout=RPC_TIMEOUT_S))
    assert "Mars/Olympus" in message
    assert "mars-pharma" not in api.admin.ListTenants(apb.ListTenantsRequest(),
                                                      timeout=RPC_TIMEOUT_S).tenants
    before = _zone(api, tenant)
    message = refused(INVALID, "time_zone", lambda: _zone(api, tenant, "Europe/Atlantis"))
    assert "Europe/Atlantis" in message
    assert _zone(api, tenant) == before
