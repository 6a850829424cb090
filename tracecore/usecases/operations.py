"""Running the platform: tenants created and listed, taken offline and back, and the size a
tenant's ledger may grow to. The operator's work, across tenants."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tracecore import localday, masterdata
from tracecore.credentials import Principal, Role
from tracecore.errors import InvalidArgument
from tracecore.ledger import policy
from tracecore.usecases.declare import ADMIN, OPERATOR, Scope, use_case
from tracecore.usecases.writeside import WriteSide

#: How long taking a tenant offline waits for the other processes to close its files.
RELEASE_WAIT_S = 5.0
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class NewTenant:
    tenant: str
    active_key_id: int
    admin_token: str
    """The first admin token of the tenant, shown this once."""


@dataclass(frozen=True, slots=True)
class LedgerLimit:
    map_size: int
    max_map_size: int
    used_bytes: int


@use_case(roles={OPERATOR}, writes=True, scope=Scope.PLATFORM)
async def create_tenant(side: WriteSide, caller: Principal, tenant: str, name: str,
                        time_zone: str = "") -> NewTenant:
    """A new tenant with its own ledger and signing key, and its first admin token; its days
    cut at ``time_zone``'s midnight ("": the server's default zone)."""
    masterdata.tenant_id(tenant)
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"at most {MAX_NAME} characters", field="name")
    zone = time_zone or side.default_time_zone
    localday.zone(zone)
    created = await side.writer.run(tenant, side.data.create, tenant, name, side.clock())
    await side.writer.run(tenant, policy.write, created.ledger, None, None, zone)
    _, token = await side.writer.run(tenant, created.access.create_token, Role.ADMIN, "",
                                     "created with the tenant", 0, side.clock())
    return NewTenant(created.name, created.keys.active.key_id, token)


@use_case(roles={OPERATOR}, writes=False, scope=Scope.PLATFORM)
def list_tenants(side: WriteSide, caller: Principal) -> list[str]:
    return side.data.names()


@use_case(roles={OPERATOR}, writes=True, scope=Scope.PLATFORM)
async def set_tenant_online(side: WriteSide, caller: Principal, tenant: str, online: bool,
                            reason: str) -> bool:
    """Takes a tenant offline (or back); True once every process has closed an offline
    tenant's files, False when some had not within ``RELEASE_WAIT_S``."""
    # On the tenant's writer lane: its writes in progress end before its files close.
    await side.writer.run(tenant, side.data.set_online, tenant, online, reason)
    return online or await _released(side, tenant)


@use_case(roles={OPERATOR}, writes=True, scope=Scope.PLATFORM)
async def set_ledger_limit(side: WriteSide, caller: Principal, tenant: str, max_map_size: int
                           ) -> LedgerLimit:
    """The size a tenant's ledger may grow to."""
    return LedgerLimit(*await side.writer.run(tenant, side.data.set_ledger_limit, tenant,
                                              max_map_size))


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def set_tenant_policy(side: WriteSide, caller: Principal, tenant: str,
                            label_replacement: bool | None,
                            dispense_elsewhere: bool | None = None,
                            time_zone: str | None = None) -> policy.Policy:
    """Which rules of its market a tenant follows and the zone of its day (None keeps one as it
    is); the policy in force. A new zone recounts the daily counters in it."""
    if time_zone is not None:
        localday.zone(time_zone)
    ledger = side.data.get(tenant).ledger
    return await side.writer.run(tenant, policy.write, ledger, label_replacement,
                                 dispense_elsewhere, time_zone)


@dataclass(frozen=True, slots=True)
class Recount:
    time_zone: str
    daily_counters: int


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def recount_daily(side: WriteSide, caller: Principal, tenant: str) -> Recount:
    """Rebuilds the tenant's daily counters from its flows by instant, cut in its zone."""
    ledger = side.data.get(tenant).ledger
    return Recount(*await side.writer.run(tenant, policy.recount, ledger))


async def _released(side: WriteSide, tenant: str) -> bool:
    """Waits (a little) for the verification workers to close the tenant's files."""
    deadline = time.monotonic() + RELEASE_WAIT_S
    while not await asyncio.to_thread(side.data.released, tenant):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
