"""Client certificates over mutual TLS; public verification and its rate limit; health and
reflection open to anyone."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.authz import rig
from tests.integration.authz.rig import (
    GTIN,
    OK,
    PERMISSION_DENIED,
    RPCS,
    UNAUTHENTICATED,
    MutualTls,
    Secured,
    World,
    bearer,
    invoke,
)
from tests.integration.conftest import RPC_TIMEOUT_S
from tracecore.credentials import Role

# The servers and tenants of rig.py, started for this module.
secured, served, world, mtls = rig.secured, rig.served, rig.world, rig.mtls


# -- client certificates -----------------------------------------------------------------------


def test_a_bound_client_certificate_authenticates_with_its_role_and_party(
        mtls: MutualTls) -> None:
    """A bound certificate acts with its role and party, is unknown elsewhere, dies when revoked."""
    secured = mtls.secured
    secured.ok("/pharmatrace.v1.Admin/AddParty", apb.AddPartyRequest(tenant="m1", party=cpb.Party(
        party_id="PLANT-M", name="Plant", kind=cpb.PARTY_KIND_PLANT)), mtls.admin)
    files = next(c for c in mtls.pki.clients if c.name == "line-1")
    bound = secured.ok("/pharmatrace.v1.Admin/BindCertificate", apb.BindCertificateRequest(
        tenant="m1", certificate_pem=files.certificate.read_text(), role=apb.ROLE_LINE,
        party_id="PLANT-M"), mtls.admin)
    assert isinstance(bound, apb.BindCertificateResponse)
    credential_id = bound.credential.credential_id
    assert credential_id == "cert-" + bound.credential.certificate_sha256[:16]
    assert bound.credential.certificate_cn == "line-1"
    assert bound.credential.certificate_issuer == "CN=pharmatrace development CA"

    line = mtls.channel("line-1")
    list_products = RPCS["/pharmatrace.v1.Admin/ListProducts"]
    assert invoke(line, list_products, apb.ListProductsRequest(tenant="m1")).code is OK
    register = invoke(line, RPCS["/pharmatrace.v1.Admin/RegisterProduct"],
                      apb.RegisterProductRequest(tenant="m1", product=cpb.Product(gtin=GTIN)))
    assert register.code is PERMISSION_DENIED and "line role" in register.details
    commission = invoke(line, RPCS["/pharmatrace.v1.Lifecycle/Commission"],
                        lpb.CommissionRequest(tenant="m1", codes=["x"],
                                              context=lpb.EventContext(party_id="OTHER")))
    assert commission.code is PERMISSION_DENIED and "PLANT-M" in commission.details
    elsewhere = invoke(line, list_products, apb.ListProductsRequest(tenant="m2"))
    assert elsewhere.code is UNAUTHENTICATED
    unbound = invoke(mtls.channel("pharm-1"), list_products, apb.ListProductsRequest(tenant="m1"))
    assert unbound.code is UNAUTHENTICATED

    audit = secured.codegen.data.get("m1").access.audit_records()
    assert [(r.credential_id, r.role, r.method.rsplit("/", 1)[1], r.status)
            for r in audit[-3:]] == [
        (credential_id, apb.ROLE_LINE, "RegisterProduct", "PERMISSION_DENIED"),
        (credential_id, apb.ROLE_LINE, "Commission", "PERMISSION_DENIED"),
        ("certificate pharm-1", apb.ROLE_UNSPECIFIED, "ListProducts", "UNAUTHENTICATED")]

    secured.ok("/pharmatrace.v1.Admin/RevokeToken", apb.RevokeTokenRequest(
        tenant="m1", credential_id=credential_id), mtls.admin)
    revoked = invoke(line, list_products, apb.ListProductsRequest(tenant="m1"))
    assert (revoked.code, revoked.details) == (UNAUTHENTICATED, "credential revoked")
    line.close()


# -- public verification, health, reflection ---------------------------------------------------


def test_public_verification_is_anonymous_only_when_enabled_and_rate_limited(
        served: Secured, world: World) -> None:
    """Only Verify is anonymous, only with --public-verify, and rate-limited with retry-after."""
    verify = RPCS["/pharmatrace.v1.Verification/Verify"]
    request = vpb.VerifyRequest(tenant=world.a, code=world.active[-1])
    assert invoke(served.verify, verify, request).code is UNAUTHENTICATED

    counted = served.rate_limited_total()
    first = invoke(served.public, verify, request)
    assert first.code is OK, first
    assert first.responses[0].verdict == vpb.VERDICT_GENUINE  # type: ignore[attr-defined]
    limited = invoke(served.public, verify, request)
    assert limited.code is grpc.StatusCode.RESOURCE_EXHAUSTED, limited
    assert int(limited.trailing["retry-after-ms"]) > 0
    assert served.rate_limited_total() == counted + 1

    batch = invoke(served.public, RPCS["/pharmatrace.v1.Verification/VerifyBatch"],
                   vpb.VerifyBatchRequest(tenant=world.a, codes=[world.active[-1]]))
    assert batch.code is UNAUTHENTICATED
    public = bearer(world.tokens[Role.PUBLIC])
    assert invoke(served.public, verify, request, metadata=public).code is OK
    assert invoke(served.public, verify, request, metadata=public).code \
        is grpc.StatusCode.RESOURCE_EXHAUSTED
    pharmacy = bearer(world.tokens[Role.PHARMACY])
    assert [invoke(served.public, verify, request, metadata=pharmacy).code
            for _ in range(3)] == [OK] * 3


@pytest.mark.parametrize("header", [None, "Bearer garbage"])
def test_health_and_reflection_answer_anyone(served: Secured, header: str | None) -> None:
    """Health checks and reflection need no credential, and a bad one does not stop them."""
    metadata = (("authorization", header),) if header else ()
    for channel in (served.issue, served.verify, served.public):
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), metadata=metadata, timeout=RPC_TIMEOUT_S)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = list(stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            metadata=metadata, timeout=RPC_TIMEOUT_S))
        assert any(s.name.startswith("pharmatrace.v1.")
                   for s in answers[0].list_services_response.service)
