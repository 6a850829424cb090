"""Every RPC of both servers against the one RPC x role table, and tokens: revoked, expired,
wrong, malformed."""

from __future__ import annotations

import secrets

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.authz import rig
from tests.integration.authz.rig import (
    GHOST,
    OK,
    PERMISSION_DENIED,
    RPCS,
    UNAUTHENTICATED,
    Secured,
    World,
    create_token,
    invoke,
    listed_services,
    request_for,
    tenant_state,
)
from tracecore.clock import now_ms
from tracecore.credentials import Role
from tracerpc import authz
from tracerpc.authz import TABLE

# The servers and tenants of rig.py, started for this module.
secured, served, world = rig.secured, rig.served, rig.world


# -- the table walk ----------------------------------------------------------------------------

PATHS = sorted(RPCS)


def test_both_servers_serve_every_described_service_and_nothing_else(served: Secured) -> None:
    """Reflection, asked with no credential, lists each described service on one server only."""
    issue, verify = listed_services(served.issue), listed_services(served.verify)
    described = {rpc.service for rpc in RPCS.values()}
    standard = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert (issue | verify) - standard == described
    assert issue & verify == standard


@pytest.mark.parametrize("path", PATHS)
def test_every_rpc_refuses_a_caller_without_credential(served: Secured, world: World,
                                                       path: str) -> None:
    """No token and no client certificate: UNAUTHENTICATED, before anything is read."""
    outcome = served.call(path, request_for(path, world, harmless=False))
    assert outcome.code is UNAUTHENTICATED, outcome
    assert "credential" in outcome.details


@pytest.mark.parametrize("path", PATHS)
def test_every_role_may_call_exactly_what_the_table_allows(served: Secured, world: World,
                                                           path: str) -> None:
    """Each role's token (and the operator's) passes where TABLE allows, else PERMISSION_DENIED."""
    assert path in TABLE, f"{path} has no entry in tracerpc.authz.TABLE"
    for role, token in world.tokens.items():
        outcome = served.call(path, request_for(path, world, harmless=True), token)
        if role in TABLE[path].roles:
            assert outcome.code not in (UNAUTHENTICATED, PERMISSION_DENIED), (role, outcome)
        else:
            assert outcome.code is PERMISSION_DENIED, (role, outcome)
            assert f"{role.name.lower()} role may not" in outcome.details


@pytest.mark.parametrize("path", PATHS)
def test_another_tenants_admin_reads_and_changes_nothing(served: Secured, world: World,
                                                         path: str) -> None:
    """B's admin on A's request: PERMISSION_DENIED as for no tenant; A's state is unchanged."""
    before = tenant_state(served, world.a)
    outcome = served.call(path, request_for(path, world, harmless=False), world.b_admin)
    assert outcome.code is PERMISSION_DENIED, outcome
    assert tenant_state(served, world.a) == before
    ghost = served.call(path, request_for(path, world, harmless=False, tenant=GHOST),
                        world.b_admin)
    assert (ghost.code, ghost.details) == (outcome.code, outcome.details)


# -- tokens ------------------------------------------------------------------------------------


def test_a_revoked_token_is_unauthenticated_on_both_servers(served: Secured,
                                                            world: World) -> None:
    """Once revoked, a token that worked is UNAUTHENTICATED on both servers at once."""
    token, credential = create_token(served, world.a, world.admin, Role.LINE)
    list_products = apb.ListProductsRequest(tenant=world.a)
    verify_batch = vpb.VerifyBatchRequest(tenant=world.a, codes=world.active[:1])
    served.ok("/pharmatrace.v1.Admin/ListProducts", list_products, token)
    served.ok("/pharmatrace.v1.Verification/VerifyBatch", verify_batch, token)
    served.ok("/pharmatrace.v1.Admin/RevokeToken", apb.RevokeTokenRequest(
        tenant=world.a, credential_id=credential), world.admin)
    for path, request in (("/pharmatrace.v1.Admin/ListProducts", list_products),
                          ("/pharmatrace.v1.Verification/VerifyBatch", verify_batch)):
        outcome = served.call(path, request, token)
        assert (outcome.code, outcome.details) == (UNAUTHENTICATED, "credential revoked")


def test_an_expired_token_is_unauthenticated(served: Secured, world: World,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A token past its expiry is UNAUTHENTICATED; one cannot be made already expired."""
    in_an_hour = now_ms() + 3_600_000
    token, _ = create_token(served, world.a, world.admin, Role.PHARMACY,
                            expires_at_ms=in_an_hour)
    request = apb.ListProductsRequest(tenant=world.a)
    served.ok("/pharmatrace.v1.Admin/ListProducts", request, token)
    monkeypatch.setattr(authz, "now_ms", lambda: in_an_hour + 1)
    outcome = served.call("/pharmatrace.v1.Admin/ListProducts", request, token)
    assert (outcome.code, outcome.details) == (UNAUTHENTICATED, "credential expired")
    monkeypatch.undo()
    past = served.call("/pharmatrace.v1.Admin/CreateToken", apb.CreateTokenRequest(
        tenant=world.a, role=apb.ROLE_PHARMACY, expires_at_ms=now_ms() - 1), world.admin)
    assert past.code is grpc.StatusCode.INVALID_ARGUMENT and "expires_at_ms" in past.details


def _forged(tenant: str, credential_id: str | None = None) -> str:
    return f"pt1.{tenant}.{credential_id or secrets.token_hex(6)}.{secrets.token_urlsafe(32)}"


def test_a_wrong_token_is_refused_alike_whether_or_not_its_tenant_exists(
        served: Secured, world: World) -> None:
    """Wrong secret, credential or tenant: one same UNAUTHENTICATED answer, no token echoed."""
    real_id = world.credential_ids[Role.LINE]
    wrong = [_forged(world.a, world.credential_ids[Role.REGULATOR]), _forged(world.a),
             _forged(GHOST), _forged(world.b, real_id)]
    answers = set()
    for token in wrong:
        for path, request in (
                ("/pharmatrace.v1.Admin/ListProducts", apb.ListProductsRequest(tenant=world.a)),
                ("/pharmatrace.v1.Trace/ListEvents", tpb.ListEventsRequest(tenant=world.a))):
            outcome = served.call(path, request, token)
            assert outcome.code is UNAUTHENTICATED, outcome
            assert token.rsplit(".", 1)[1] not in outcome.details
            answers.add(outcome.details)
    assert answers == {"unknown API token"}


@pytest.mark.parametrize("header", [
    "Bearer garbage", "Bearer pt1.", "Bearer pt1.walk-a.0123456789ab", "Basic dXNlcjpwYXNz",
    "Bearer", "bearer pt1.WALK-A.0123456789ab.0123456789012345678901234567890123456789012",
    "Bearer pt1.walk-a.0123456789ab.0123456789012345678901234567890123456789012x",
    "Bearer pt1.walk-a.0123456789ab.0123456789012345678901234567890123456789012 extra",
])
def test_a_malformed_authorization_header_is_unauthenticated(served: Secured, world: World,
                                                             header: str) -> None:
    """Anything but 'Bearer pt1.<tenant>.<id>.<secret>' is UNAUTHENTICATED and is not echoed."""
    for path, request in (
            ("/pharmatrace.v1.Admin/ListProducts", apb.ListProductsRequest(tenant=world.a)),
            ("/pharmatrace.v1.Verification/Verify", vpb.VerifyRequest(tenant=world.a,
                                                                      code=world.active[0]))):
        rpc = RPCS[path]
        outcome = invoke(served.served[rpc.service], rpc, request,
                         metadata=(("authorization", header),))
        assert outcome.code is UNAUTHENTICATED, outcome
        token = header.partition(" ")[2]
        assert not token or token not in outcome.details


def test_a_token_is_accepted_with_any_case_of_bearer(served: Secured, world: World) -> None:
    """The scheme is case-insensitive, as HTTP says: 'bearer' and 'BEARER' work too."""
    for scheme in ("bearer", "BEARER"):
        rpc = RPCS["/pharmatrace.v1.Admin/ListProducts"]
        outcome = invoke(served.issue, rpc, apb.ListProductsRequest(tenant=world.a),
                         metadata=(("authorization", f"{scheme} {world.admin}"),))
        assert outcome.code is OK, outcome
