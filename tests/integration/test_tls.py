"""The development PKI over real gRPC: TLS, mutual TLS, and the checks on the files it writes."""

from __future__ import annotations

import datetime
import stat
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tracecore.errors import AlreadyExists, InvalidArgument
from tracerpc.certs import (
    CA_NAME,
    DevPki,
    client_credentials,
    init_dev_pki,
    load_tls_files,
    peer_identity,
)
from tracerpc.server import Tls

CLIENT = "line-1"
TIMEOUT_S = 5.0


class _RecordingHealth(health.HealthServicer):  # type: ignore[misc]
    """A health service that remembers who each Check came from."""

    def __init__(self) -> None:
        super().__init__()
        self.callers: list[str | None] = []

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.callers.append(peer_identity(context.auth_context()))
        return super().Check(request, context)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return init_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A second, unrelated PKI: its CA and client certificates mean nothing to `pki`'s server."""
    return init_dev_pki(tmp_path_factory.mktemp("other"))


@pytest.fixture(scope="module")
def tls_port(pki: DevPki) -> Iterator[int]:
    with _serving(load_tls_files(pki.server, pki.server_key, None), _RecordingHealth()) as port:
        yield port


@pytest.fixture(scope="module")
def mtls(pki: DevPki) -> Iterator[tuple[int, _RecordingHealth]]:
    servicer = _RecordingHealth()
    with _serving(load_tls_files(pki.server, pki.server_key, pki.ca), servicer) as port:
        yield port, servicer


@contextmanager
def _serving(tls: Tls, servicer: _RecordingHealth) -> Iterator[int]:
    """A started server on 127.0.0.1 answering with ``servicer`` over ``tls``; yields its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", tls.credentials())
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def _check(channel: grpc.Channel) -> int:
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S)
        return int(response.status)


def _secure(port: int, credentials: grpc.ChannelCredentials) -> grpc.Channel:
    """A channel to 127.0.0.1 that expects the certificate of "localhost"."""
    return grpc.secure_channel(
        f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
    )


def _refused(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        _check(channel)
    code: grpc.StatusCode = caught.value.code()
    return code


def test_client_trusting_the_dev_ca_gets_serving(pki: DevPki, tls_port: int) -> None:
    """A client that trusts the development CA completes the handshake and sees SERVING."""
    credentials = client_credentials(pki.ca, None, None)
    assert _check(_secure(tls_port, credentials)) == health_pb2.HealthCheckResponse.SERVING


def test_server_certificate_names_the_loopback_address(pki: DevPki, tls_port: int) -> None:
    """Without a name override the client checks 127.0.0.1 against the IP subjectAltName."""
    channel = grpc.secure_channel(f"127.0.0.1:{tls_port}", client_credentials(pki.ca, None, None))
    assert _check(channel) == health_pb2.HealthCheckResponse.SERVING


def test_client_trusting_another_ca_is_refused(other_pki: DevPki, tls_port: int) -> None:
    """A client whose trusted CA did not sign the server certificate fails with UNAVAILABLE."""
    credentials = client_credentials(other_pki.ca, None, None)
    assert _refused(_secure(tls_port, credentials)) == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_refused(tls_port: int) -> None:
    """A plaintext client cannot talk to the TLS port."""
    channel = grpc.insecure_channel(f"127.0.0.1:{tls_port}")
    assert _refused(channel) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_server_sees_the_client_common_name(
    pki: DevPki, mtls: tuple[int, _RecordingHealth]
) -> None:
    """With client_ca set, a client presenting its dev certificate is served and named by CN."""
    port, servicer = mtls
    client = pki.clients[0]
    credentials = client_credentials(pki.ca, client.certificate, client.key)
    assert _check(_secure(port, credentials)) == health_pb2.HealthCheckResponse.SERVING
    assert servicer.callers[-1] == CLIENT


def test_mutual_tls_refuses_a_client_without_certificate(
    pki: DevPki, mtls: tuple[int, _RecordingHealth]
) -> None:
    """With client_ca set, a client that presents no certificate is refused."""
    port, servicer = mtls
    calls = len(servicer.callers)
    credentials = client_credentials(pki.ca, None, None)
    assert _refused(_secure(port, credentials)) == grpc.StatusCode.UNAVAILABLE
    assert len(servicer.callers) == calls


def test_mutual_tls_refuses_a_certificate_from_another_ca(
    pki: DevPki, other_pki: DevPki, mtls: tuple[int, _RecordingHealth]
) -> None:
    """A client certificate with the right CN but signed by another CA is refused."""
    port, servicer = mtls
    calls = len(servicer.callers)
    stranger = other_pki.clients[0]
    credentials = client_credentials(pki.ca, stranger.certificate, stranger.key)
    assert _refused(_secure(port, credentials)) == grpc.StatusCode.UNAVAILABLE
    assert len(servicer.callers) == calls


def test_certificates_carry_the_promised_extensions(pki: DevPki) -> None:
    """The CA may sign leaves only; the server is for serverAuth on its hosts, the client for
    clientAuth under its CN."""
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert ca.subject.rfc4514_string() == f"CN={CA_NAME}"

    server, chained_ca = x509.load_pem_x509_certificates(pki.server.read_bytes())
    assert chained_ca == ca
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

    client = x509.load_pem_x509_certificate(pki.clients[0].certificate.read_bytes())
    client.verify_directly_issued_by(ca)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CLIENT
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_key_files_are_private_and_certificates_readable(pki: DevPki) -> None:
    """Private keys are written with mode 0600, certificates with 0644, and no temp file stays."""
    keys = [pki.ca_key, pki.server_key, *(client.key for client in pki.clients)]
    certificates = [pki.ca, pki.server, *(client.certificate for client in pki.clients)]
    assert {stat.S_IMODE(path.stat().st_mode) for path in keys} == {0o600}
    assert {stat.S_IMODE(path.stat().st_mode) for path in certificates} == {0o644}
    assert sorted(p.name for p in pki.ca.parent.iterdir()) == sorted(
        p.name for p in keys + certificates
    )


def test_init_refuses_to_overwrite_naming_only_the_file(tmp_path: Path) -> None:
    """A second init into the same directory fails, names the file but not its directory,
    and changes nothing; overwrite=True replaces every file."""
    first = init_dev_pki(tmp_path, clients=())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(AlreadyExists) as caught:
        init_dev_pki(tmp_path, clients=())
    assert "ca-key.pem" in str(caught.value)
    assert str(tmp_path) not in str(caught.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    second = init_dev_pki(tmp_path, clients=(), overwrite=True)
    assert second == first
    assert all(before[p.name] != p.read_bytes() for p in tmp_path.iterdir())
    assert stat.S_IMODE(second.server_key.stat().st_mode) == 0o600


def test_init_refuses_a_client_name_that_is_not_a_plain_file_name(tmp_path: Path) -> None:
    """Client names become file names, so a path separator or a leading dot is refused."""
    for name in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(InvalidArgument):
            init_dev_pki(tmp_path, clients=(name,))
    assert list(tmp_path.iterdir()) == []


def test_load_tls_files_names_a_key_that_does_not_match(pki: DevPki, other_pki: DevPki) -> None:
    """A key that belongs to another certificate is refused, naming the file but no directory."""
    with pytest.raises(InvalidArgument) as caught:
        load_tls_files(pki.server, other_pki.server_key, None)
    message = str(caught.value)
    assert "server-key.pem" in message
    assert str(other_pki.server_key.parent) not in message


def test_load_tls_files_names_a_file_that_is_not_pem(pki: DevPki, tmp_path: Path) -> None:
    """A certificate, key or client CA file that does not parse is named in the error."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a PEM file\n")
    for cert, key, client_ca in (
        (garbage, pki.server_key, None),
        (pki.server, garbage, None),
        (pki.server, pki.server_key, garbage),
    ):
        with pytest.raises(InvalidArgument, match=r"garbage\.pem"):
            load_tls_files(cert, key, client_ca)


def test_load_tls_files_refuses_an_expired_certificate(tmp_path: Path) -> None:
    """A certificate past its notAfter is refused before any client sees it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "old.pem", tmp_path / "old-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(InvalidArgument, match=r"old\.pem holds a certificate that expired"):
        load_tls_files(cert_path, key_path, None)


def test_client_credentials_need_certificate_and_key_together(pki: DevPki) -> None:
    """Half a client identity (a certificate without its key) is refused."""
    with pytest.raises(InvalidArgument):
        client_credentials(pki.ca, pki.clients[0].certificate, None)


def test_peer_identity_prefers_common_name_then_first_alt_name() -> None:
    """The CN wins; without one the first subjectAltName is used; without either, None."""
    assert (
        peer_identity(
            {"x509_common_name": [b"line-1"], "x509_subject_alternative_name": [b"a", b"b"]}
        )
        == "line-1"
    )
    assert peer_identity({"x509_subject_alternative_name": [b"a", b"b"]}) == "a"
    assert peer_identity({"transport_security_type": [b"ssl"]}) is None


def test_mutual_tls_refuses_the_server_certificate_as_a_client(
    pki: DevPki, mtls: tuple[int, _RecordingHealth]
) -> None:
    """The server certificate lacks clientAuth, so its key cannot pose as a client."""
    port, servicer = mtls
    calls = len(servicer.callers)
    credentials = client_credentials(pki.ca, pki.server, pki.server_key)
    assert _refused(_secure(port, credentials)) == grpc.StatusCode.UNAVAILABLE
    assert len(servicer.callers) == calls
