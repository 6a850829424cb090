"""A tenant's time zone over real gRPC: set at creation or later, the server's default
otherwise, an unknown IANA name refused naming it, and the daily counters recounted on demand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Gs1Product

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


def test_event_listing_and_export_days_are_the_tenants_local_days(
        api: Api, gs1: Gs1Product, issue_channel: grpc.Channel,
        verify_channel: grpc.Channel) -> None:
    """ListEvents and ExportEpcis since/until are local days of the tenant's zone: in a zone
    whose date differs from UTC's, an event falls on the local day, not on the UTC one."""
    lifecycle = lifecycle_pb2_grpc.LifecycleStub(issue_channel)
    trace = trace_pb2_grpc.TraceStub(verify_channel)
    (code,) = api.codes(gs1.tenant, gs1.gtin, 1, lot=gs1.lot)
    assert lifecycle.Commission(lpb.CommissionRequest(tenant=gs1.tenant, codes=[code]),
                                timeout=RPC_TIMEOUT_S).applied

    def listed(since: str = "", until: str = "") -> int:
        return len(trace.ListEvents(tpb.ListEventsRequest(
            tenant=gs1.tenant, since=since, until=until), timeout=RPC_TIMEOUT_S).events)

    def exported(since: str = "", until: str = "") -> int:
        return trace.ExportEpcis(tpb.ExportEpcisRequest(
            tenant=gs1.tenant, since=since, until=until), timeout=RPC_TIMEOUT_S).event_count

    (event,) = trace.ListEvents(tpb.ListEventsRequest(tenant=gs1.tenant),
                                timeout=RPC_TIMEOUT_S).events
    when = dt.datetime.fromtimestamp(event.when_ms / 1000, dt.UTC)
    # UTC-12 is on the day before UTC's in the morning (UTC), UTC+14 on the day after later on.
    zone = "Etc/GMT+12" if when.hour < 12 else "Pacific/Kiritimati"
    assert _zone(api, gs1.tenant, zone) == zone
    local = when.astimezone(ZoneInfo(zone)).date()
    assert local != when.date()
    day, after = local.isoformat(), (local + dt.timedelta(days=1)).isoformat()
    for count in (listed, exported):
        assert count(since=day) == 1 and count(until=after) == 1
        assert count(since=after) == 0 and count(until=day) == 0
