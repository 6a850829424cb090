"""Client certificates over real mutual TLS: a binding pins one certificate (its SHA-256 and
issuer), not a subject name; each tenant may have its own client CA; public verification
works beside mutual TLS."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import verification_pb2 as vpb
from prometheus_client import CollectorRegistry

from codegen_svc import app as codegen_app
from tests.integration.authz.rig import (
    OK,
    RPCS,
    UNAUTHENTICATED,
    Secured,
    create_tenant,
    invoke,
)
from tests.integration.conftest import RPC_TIMEOUT_S, _LoopThread
from tracecore.keys import KeySource
from tracerpc.certs import DevPki, Tls, client_credentials, init_dev_pki
from tracerpc.metrics import Metrics
from verify_svc.workers import WorkerConfig, WorkerPool

LIST_PRODUCTS = RPCS["/pharmatrace.v1.Admin/ListProducts"]


@dataclass
class TwoCas:
    """Servers whose client CA bundle holds two tenants' CAs, each of which issued a client
    certificate with the same subject CN ``line-1``."""

    first: DevPki
    second: DevPki
    issue_port: int
    verify_port: int
    public_port: int
    secured: Secured
    admins: dict[str, str]

    def channel(self, pki: DevPki, port: int | None = None) -> grpc.Channel:
        files = pki.clients[0]
        return grpc.secure_channel(f"127.0.0.1:{port or self.issue_port}", client_credentials(
            self.first.ca, files.certificate, files.key))

    def bind(self, tenant: str, pki: DevPki) -> apb.BindCertificateResponse:
        response = self.secured.ok("/pharmatrace.v1.Admin/BindCertificate",
                                   apb.BindCertificateRequest(
                                       tenant=tenant, role=apb.ROLE_REGULATOR,
                                       certificate_pem=pki.clients[0].certificate.read_text()),
                                   self.admins[tenant])
        assert isinstance(response, apb.BindCertificateResponse)
        return response


@pytest.fixture(scope="module")
def two_cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoCas]:
    first = init_dev_pki(tmp_path_factory.mktemp("ca-one"), clients=("line-1",))
    second = init_dev_pki(tmp_path_factory.mktemp("ca-two"), clients=("line-1",))
    tls = Tls(first.server.read_bytes(), first.server_key.read_bytes(),
              client_ca=first.ca.read_bytes() + second.ca.read_bytes())
    data = tmp_path_factory.mktemp("two-cas-data")
    loop = _LoopThread()
    codegen = loop.run(codegen_app.start(data, KeySource.dev(), "127.0.0.1:0",
                                         Metrics(CollectorRegistry()), tls=tls,
                                         authenticate=True))
    workers = WorkerPool(WorkerConfig(data, "127.0.0.1", 0, dev_keys=True, tls=tls,
                                      grace_s=1.0, authenticate=True, public_verify=True,
                                      public_rate=1000.0, public_port=0), workers=1)
    admin_channel = None
    try:
        verify_port = workers.start()
        files = first.clients[0]
        admin_channel = grpc.secure_channel(f"127.0.0.1:{codegen.port}", client_credentials(
            first.ca, files.certificate, files.key))
        secured = Secured.issuance(codegen, admin_channel)
        admins = {t: create_tenant(secured, t)
                  for t in ("ca-a", "ca-b", "ca-c", "ca-d", "ca-e")}
        assert workers.public_port is not None
        yield TwoCas(first, second, codegen.port, verify_port, workers.public_port, secured,
                     admins)
    finally:
        if admin_channel is not None:
            admin_channel.close()
        workers.stop(1.0)
        loop.run(codegen.stop(1.0))
        loop.close()


def test_a_binding_pins_one_certificate_not_its_subject_name(two_cas: TwoCas) -> None:
    """Tenant ca-a binds the first CA's line-1, tenant ca-b the second CA's line-1 (same CN):
    each certificate acts only in the tenant that bound it; bound in both explicitly, one
    certificate acts in both."""
    one, two = two_cas.first, two_cas.second
    bound = two_cas.bind("ca-a", one).credential
    assert bound.certificate_cn == "line-1" and len(bound.certificate_sha256) == 64
    assert bound.certificate_issuer == "CN=pharmatrace development CA"
    two_cas.bind("ca-b", two)
    first, second = two_cas.channel(one), two_cas.channel(two)
    try:
        def outcome(channel: grpc.Channel, tenant: str) -> grpc.StatusCode:
            return invoke(channel, LIST_PRODUCTS, apb.ListProductsRequest(tenant=tenant)).code

        assert [outcome(first, t) for t in ("ca-a", "ca-b", "ca-c")] == [
            OK, UNAUTHENTICATED, UNAUTHENTICATED]
        assert [outcome(second, t) for t in ("ca-a", "ca-b", "ca-c")] == [
            UNAUTHENTICATED, OK, UNAUTHENTICATED]
        two_cas.bind("ca-c", one)
        assert [outcome(first, t) for t in ("ca-a", "ca-b", "ca-c")] == [
            OK, UNAUTHENTICATED, OK]
    finally:
        first.close()
        second.close()


def test_a_subject_name_alone_no_longer_binds(two_cas: TwoCas) -> None:
    """BindCertificate with only a CN is INVALID_ARGUMENT asking for the certificate."""
    outcome = two_cas.secured.call("/pharmatrace.v1.Admin/BindCertificate",
                                   apb.BindCertificateRequest(
                                       tenant="ca-a", certificate_cn="line-1",
                                       role=apb.ROLE_LINE), two_cas.admins["ca-a"])
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "certificate_pem" in outcome.details and "PEM" in outcome.details


def test_public_verification_works_beside_mutual_tls(two_cas: TwoCas) -> None:
    """The verification port requires a client certificate; beside it, the public port takes
    callers without one over TLS: they may Verify, and nothing else. A bound certificate
    still authenticates on the mutual-TLS port."""
    refused = grpc.secure_channel(f"127.0.0.1:{two_cas.verify_port}",
                                  client_credentials(two_cas.first.ca, None, None))
    try:
        handshake = invoke(refused, RPCS["/pharmatrace.v1.Verification/Verify"],
                           vpb.VerifyRequest(tenant="ca-a", code="x"))
        assert handshake.code is grpc.StatusCode.UNAVAILABLE
    finally:
        refused.close()
    anonymous = grpc.secure_channel(f"127.0.0.1:{two_cas.public_port}",
                                    client_credentials(two_cas.first.ca, None, None))
    try:
        grpc.channel_ready_future(anonymous).result(timeout=RPC_TIMEOUT_S)
        verified = invoke(anonymous, RPCS["/pharmatrace.v1.Verification/Verify"],
                          vpb.VerifyRequest(tenant="ca-a", code="(01)09501101530003(21)X1"))
        assert verified.code is OK, verified
        batch = invoke(anonymous, RPCS["/pharmatrace.v1.Verification/VerifyBatch"],
                       vpb.VerifyBatchRequest(tenant="ca-a", codes=["x"]))
        assert batch.code is UNAUTHENTICATED
    finally:
        anonymous.close()
    two_cas.bind("ca-d", two_cas.second)
    bound = two_cas.channel(two_cas.second, two_cas.verify_port)
    try:
        batch = invoke(bound, RPCS["/pharmatrace.v1.Verification/VerifyBatch"],
                       vpb.VerifyBatchRequest(tenant="ca-d", codes=["x"]))
        assert batch.code is OK, batch
    finally:
        bound.close()


def workload_certificate(pki: DevPki, directory: Path, name: str, uri: str
                         ) -> tuple[Path, Path]:
    """(certificate, key) files of a client certificate that ``pki``'s CA issues to a
    workload named ``uri`` among its subject alternative names."""
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_a_binding_by_san_uri_follows_the_workload_across_renewals_from_its_ca_only(
        two_cas: TwoCas, tmp_path: Path) -> None:
    """A binding by spiffe://example.org/line-7 with the first CA: that certificate and a
    renewed one (new key, same URI) act in the tenant; the same URI from the second CA (same
    CA name, another key), another URI from the first CA, and a binding naming a URI the
    certificate does not carry are refused."""
    uri = "spiffe://example.org/line-7"
    first, _ = workload_certificate(two_cas.first, tmp_path, "line-7", uri)
    bound = two_cas.secured.ok("/pharmatrace.v1.Admin/BindCertificate",
                               apb.BindCertificateRequest(
                                   tenant="ca-e", role=apb.ROLE_REGULATOR,
                                   certificate_pem=first.read_text(), san_uri=uri),
                               two_cas.admins["ca-e"])
    assert isinstance(bound, apb.BindCertificateResponse)
    assert bound.credential.certificate_san_uri == uri
    assert len(bound.credential.certificate_issuer_key_id) == 40

    def outcome(files: tuple[Path, Path]) -> grpc.StatusCode:
        channel = grpc.secure_channel(f"127.0.0.1:{two_cas.issue_port}", client_credentials(
            two_cas.first.ca, *files))
        try:
            return invoke(channel, LIST_PRODUCTS, apb.ListProductsRequest(tenant="ca-e")).code
        finally:
            channel.close()

    renewed = workload_certificate(two_cas.first, tmp_path, "line-7-renewed", uri)
    other_ca = workload_certificate(two_cas.second, tmp_path, "line-7-other-ca", uri)
    other_uri = workload_certificate(two_cas.first, tmp_path, "line-8",
                                     "spiffe://example.org/line-8")
    assert outcome((first, tmp_path / "line-7-key.pem")) is OK
    assert outcome(renewed) is OK
    assert outcome(other_ca) is UNAUTHENTICATED
    assert outcome(other_uri) is UNAUTHENTICATED
    wrong = two_cas.secured.call("/pharmatrace.v1.Admin/BindCertificate",
                                 apb.BindCertificateRequest(
                                     tenant="ca-e", role=apb.ROLE_REGULATOR,
                                     certificate_pem=other_uri[0].read_text(), san_uri=uri),
                                 two_cas.admins["ca-e"])
    assert wrong.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "does not name spiffe://example.org/line-7" in wrong.details
