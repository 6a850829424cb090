"""Who is calling: roles, API tokens (kept only as hashes) and the principal a request acts as."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tracecore.errors import InvalidArgument, Unauthenticated

#: Tokens look like ``pt1.<tenant>.<credential id>.<secret>``; the tenant part says where the
#: credential is kept, the secret is 256 random bits.
_TOKEN = re.compile(
    r"pt1\.([a-z0-9][a-z0-9-]{0,31}|_operator)\.([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")
OPERATOR = "_operator"


class Role(enum.IntEnum):
    """``pharmatrace.v1.Role``."""

    ADMIN = 1
    LINE = 2
    DISTRIBUTOR = 3
    PHARMACY = 4
    REGULATOR = 5
    PUBLIC = 6
    OPERATOR = 7


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one RPC."""

    tenant: str               # the tenant whose credential it is; OPERATOR for the platform
    role: Role
    credential_id: str = ""
    party_id: str = ""
    peer: str = ""


@dataclass(frozen=True, slots=True)
class Token:
    """A token's parts; ``secret`` never leaves the process that checks it."""

    tenant: str
    credential_id: str
    secret: str

    def __repr__(self) -> str:
        return f"Token({self.tenant}.{self.credential_id}.<secret>)"


def new_token(tenant: str) -> tuple[str, str, bytes]:
    """(token text to show once, credential id, hash to store)."""
    credential_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"pt1.{tenant}.{credential_id}.{secret}", credential_id, secret_hash(secret)


def parse_token(text: str) -> Token:
    match = _TOKEN.fullmatch(text)
    if match is None:
        raise Unauthenticated("malformed API token")
    return Token(*match.groups())


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)


#: Largest client certificate (PEM) accepted for a binding.
MAX_CERTIFICATE_PEM = 16 * 1024


@dataclass(frozen=True, slots=True)
class CertificateId:
    """What pins one client certificate: the SHA-256 of its DER encoding (hex) and its issuer
    (RFC 4514); ``subject`` (its CN, or the whole subject) is for people only."""

    sha256: str
    issuer: str
    subject: str = ""
    san_uris: tuple[str, ...] = ()
    """The URIs among its subject alternative names (workload identities such as
    spiffe://...), which a binding by URI matches together with the issuer."""
    issuer_key_id: str = ""
    """Its authority key identifier (hex; "" if it has none): which key of the issuer."""


#: SAN URIs of a presented certificate looked up for a binding; a certificate naming more
#: identities than this is not a workload's.
MAX_SAN_URIS = 8
MAX_SAN_URI = 2048


def certificate_id(pem: str | bytes, field: str = "certificate_pem") -> CertificateId:
    """The pins of a PEM certificate; InvalidArgument naming ``field`` when it is not one."""
    data = pem.encode() if isinstance(pem, str) else pem
    if not data or len(data) > MAX_CERTIFICATE_PEM:
        raise InvalidArgument(f"must be one PEM certificate of at most {MAX_CERTIFICATE_PEM:,} "
                              "bytes", field=field)
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise InvalidArgument("is not a PEM X.509 certificate", field=field) from None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else certificate.subject.rfc4514_string()
    try:
        alternative = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        uris = tuple(alternative.get_values_for_type(x509.UniformResourceIdentifier))
    except (x509.ExtensionNotFound, ValueError):  # none, or one that does not parse
        uris = ()
    try:
        authority = certificate.extensions.get_extension_for_class(
            x509.AuthorityKeyIdentifier).value.key_identifier
    except (x509.ExtensionNotFound, ValueError):
        authority = None
    return CertificateId(
        certificate.fingerprint(hashes.SHA256()).hex(),
        certificate.issuer.rfc4514_string(),
        subject[:64],
        uris[:MAX_SAN_URIS],
        authority.hex() if authority else "")


def der_certificate_id(der: bytes) -> CertificateId:
    """The pins of a DER certificate (as a TLS peer presents it)."""
    certificate = x509.load_der_x509_certificate(der)
    return certificate_id(certificate.public_bytes(serialization.Encoding.PEM))
