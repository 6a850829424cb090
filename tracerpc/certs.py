"""A development PKI for TLS and mutual TLS, and loading and checking the files gRPC is given."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tracecore.credentials import CertificateId, certificate_id
from tracecore.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from tracecore.files import MAX_PEM_BYTES, fsync_directory, os_reason, read_bounded, write_atomic


@dataclass(frozen=True)
class Tls:
    """Server certificate and key (PEM); with ``client_ca`` set, clients must present a
    certificate signed by it (mutual TLS)."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    def credentials(self, *, anonymous: bool = False) -> grpc.ServerCredentials:
        """With ``anonymous``, no client certificate is asked for (callers authenticate with a
        token, or are the public)."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None and not anonymous,
        )



CA_NAME = "pharmatrace development CA"
SERVER_NAME = "pharmatrace development server"

#: Apple platforms refuse TLS server certificates valid for longer, so no longer is offered.
MAX_DAYS = 825

#: Client names become file names and CNs: no separators, no leading dot, at most the CN's 64.
_CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAX_DNS_NAME = 253

#: Backdating absorbs clock skew between the machine that makes the PKI and the ones that use it.
_BACKDATE = datetime.timedelta(minutes=5)

_KEY_MODE = 0o600
_CERT_MODE = 0o644

_Validity = tuple[datetime.datetime, datetime.datetime]


@dataclass(frozen=True)
class ClientFiles:
    """One client's certificate and key for mutual TLS; ``name`` is the certificate's CN."""

    name: str
    certificate: Path
    key: Path


@dataclass(frozen=True)
class DevPki:
    """The files `init_dev_pki` wrote; ``server`` holds the leaf followed by the CA."""

    ca: Path
    ca_key: Path
    server: Path
    server_key: Path
    clients: tuple[ClientFiles, ...]


@dataclass(frozen=True)
class _Output:
    path: Path
    content: bytes
    mode: int


def init_dev_pki(
    directory: Path,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    clients: Sequence[str] = ("line-1",),
    days: int = MAX_DAYS,
    overwrite: bool = False,
) -> DevPki:
    """Create a development CA, a server certificate for ``hosts`` and one client certificate
    per name in ``clients``, all valid for ``days``; keys are unencrypted PKCS8, mode 0600."""
    alt_names = _alt_names(hosts)
    _check_client_names(clients)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidArgument(f"must be between 1 and {MAX_DAYS}", field="days")
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - _BACKDATE, now + datetime.timedelta(days=days))

    ca_name = _common_name(CA_NAME)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _sign(
        _builder(ca_name, ca_key, validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True),
        ca_name,
        ca_key,
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_leaf = _leaf(SERVER_NAME, server_key, validity, ExtendedKeyUsageOID.SERVER_AUTH)
    server = _sign(server_leaf.add_extension(alt_names, critical=False), ca_name, ca_key)
    pki = DevPki(
        ca=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        server=directory / "server.pem",
        server_key=directory / "server-key.pem",
        clients=tuple(
            ClientFiles(
                name, directory / f"client-{name}.pem", directory / f"client-{name}-key.pem"
            )
            for name in clients
        ),
    )
    outputs = [
        _Output(pki.ca_key, _private_pem(ca_key), _KEY_MODE),
        _Output(pki.ca, _certificate_pem(ca), _CERT_MODE),
        _Output(pki.server_key, _private_pem(server_key), _KEY_MODE),
        _Output(pki.server, _certificate_pem(server) + _certificate_pem(ca), _CERT_MODE),
    ]
    for client in pki.clients:
        client_key = ec.generate_private_key(ec.SECP256R1())
        certificate = _sign(
            _leaf(client.name, client_key, validity, ExtendedKeyUsageOID.CLIENT_AUTH),
            ca_name,
            ca_key,
        )
        outputs.append(_Output(client.key, _private_pem(client_key), _KEY_MODE))
        outputs.append(_Output(client.certificate, _certificate_pem(certificate), _CERT_MODE))
    _publish(directory, outputs, overwrite=overwrite)
    return pki


def load_tls_files(cert: Path, key: Path, client_ca: Path | None) -> Tls:
    """The server's TLS material, refused with the offending file's name if a file does not
    parse, the key does not belong to the certificate, or a certificate is not valid now."""
    chain_pem, key_pem = _read_pem(cert), _read_pem(key)
    leaf = _certificates(cert.name, chain_pem)[0]
    private_key = _private_key(key.name, key_pem)
    if _spki(private_key.public_key()) != _spki(leaf.public_key()):
        raise InvalidArgument(f"{key.name} is not the key of the certificate in {cert.name}")
    ca_pem = None
    if client_ca is not None:
        ca_pem = _read_pem(client_ca)
        _certificates(client_ca.name, ca_pem)
    return Tls(certificate_chain=chain_pem, private_key=key_pem, client_ca=ca_pem)


def client_credentials(
    ca: Path | None, cert: Path | None, key: Path | None
) -> grpc.ChannelCredentials:
    """Channel credentials trusting ``ca`` (the system's roots if None) and presenting ``cert``
    with ``key`` for mutual TLS; those two are given together or not at all."""
    if (cert is None) != (key is None):
        raise InvalidArgument("a client certificate and its key must be given together")
    return grpc.ssl_channel_credentials(
        root_certificates=None if ca is None else _read_pem(ca),
        private_key=None if key is None else _read_pem(key),
        certificate_chain=None if cert is None else _read_pem(cert),
    )


def peer_certificate(auth_context: Mapping[str, Iterable[bytes]]) -> CertificateId | None:
    """The pins (SHA-256, issuer) of the certificate the peer presented; None for a peer that
    presented none."""
    for pem in auth_context.get("x509_pem_cert", ()):
        with contextlib.suppress(InvalidArgument):
            return certificate_id(pem)
    return None


def peer_identity(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The client certificate's CN, else its first subject alternative name, from a call's
    ``context.auth_context()``; None for a peer that presented no certificate.

    The name is only as trustworthy as the server's ``client_ca``: without one, no client
    certificate is asked for and this is always None.
    """
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for value in auth_context.get(key, ()):
            # A name that is not UTF-8 cannot equal any name an operator configured.
            with contextlib.suppress(UnicodeDecodeError):
                if name := value.decode("utf-8"):
                    return name
    return None


def _alt_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    # A lone str is a Sequence[str] too, and would become one name per character.
    if isinstance(hosts, str) or not hosts:
        raise InvalidArgument("give one or more host names or addresses", field="hosts")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            names.append(x509.DNSName(_dns_name(host)))
        else:
            names.append(x509.IPAddress(address))
    return x509.SubjectAlternativeName(names)


def _dns_name(host: str) -> str:
    labels = host.split(".")
    if len(host) > _MAX_DNS_NAME or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise InvalidArgument(f"{host!r} is neither a DNS name nor an IP address", field="hosts")
    return host


def _check_client_names(clients: Sequence[str]) -> None:
    if isinstance(clients, str):
        raise InvalidArgument("give a sequence of names, not one string", field="clients")
    for name in clients:
        if not _CLIENT_NAME.fullmatch(name):
            raise InvalidArgument(
                f"{name!r} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit",
                field="clients",
            )
    if len(set(clients)) != len(clients):
        raise InvalidArgument("names must be distinct", field="clients")


def _common_name(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _builder(
    subject: x509.Name, key: ec.EllipticCurvePrivateKey, validity: _Validity
) -> x509.CertificateBuilder:
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _leaf(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    validity: _Validity,
    purpose: x509.ObjectIdentifier,
) -> x509.CertificateBuilder:
    return (
        _builder(_common_name(common_name), key, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs only; an ECDSA leaf signs handshakes only."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _sign(
    builder: x509.CertificateBuilder, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
    return (
        builder.issuer_name(issuer)
        .add_extension(authority, critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _publish(directory: Path, outputs: Sequence[_Output], *, overwrite: bool) -> None:
    if not overwrite:
        # Checked before the first write, so a refusal leaves the directory as it was.
        for output in outputs:
            if os.path.lexists(output.path):
                raise AlreadyExists(f"{output.path.name} already exists; refusing to overwrite it")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise FailedPrecondition(f"PKI directory cannot be created: {os_reason(exc)}") from None
    for output in outputs:
        try:
            _write(output, overwrite=overwrite)
        except FileExistsError:
            raise AlreadyExists(
                f"{output.path.name} already exists; refusing to overwrite it"
            ) from None
        except OSError as exc:
            raise FailedPrecondition(
                f"{output.path.name} cannot be written: {os_reason(exc)}"
            ) from None
    try:
        fsync_directory(directory)
    except OSError as exc:
        raise FailedPrecondition(f"PKI directory cannot be synced: {os_reason(exc)}") from None


def _write(output: _Output, *, overwrite: bool) -> None:
    """Put ``output`` in place whole or not at all: a crash leaves the old file or the new one."""
    write_atomic(output.path, output.content, mode=output.mode, overwrite=overwrite)


def _read_pem(path: Path) -> bytes:
    return read_bounded(path, MAX_PEM_BYTES, path.name)


def _certificates(file_name: str, pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM file, refused unless it has one and each is valid now."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidArgument(f"{file_name} is not a PEM certificate file") from None
    now = datetime.datetime.now(datetime.UTC)
    for certificate in chain:
        if certificate.not_valid_after_utc < now:
            raise InvalidArgument(
                f"{file_name} holds a certificate that expired on "
                f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
            )
        if certificate.not_valid_before_utc > now:
            raise InvalidArgument(
                f"{file_name} holds a certificate not valid before "
                f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )
    return chain


def _private_key(file_name: str, pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        # gRPC takes the key as bytes and has no way to ask for a passphrase.
        raise InvalidArgument(f"{file_name} is encrypted; gRPC needs an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidArgument(f"{file_name} is not a PEM private key") from None


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
