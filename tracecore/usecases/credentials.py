"""Who may call a tenant's ledger: API tokens, client-certificate bindings, and the signing keys
its codes are minted and checked with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.credentials import MAX_SAN_URI, CertificateId, Principal, Role, certificate_id
from tracecore.errors import InvalidArgument, TraceError
from tracecore.keys import SigningKey
from tracecore.ledger.tenants import DataDir, Tenant
from tracecore.usecases.declare import ADMIN, REGULATOR, Scope, use_case
from tracecore.usecases.writeside import WriteSide


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token's record and its text, shown this once."""

    credential: lpb.CredentialRecord
    token: str


@dataclass(frozen=True, slots=True)
class KeyChange:
    """The key a rotation, retirement or revocation changed, and the key now minting."""

    changed: SigningKey
    active_key_id: int


def role(value: int) -> Role:
    """A role by its number; InvalidArgument when there is none."""
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument("unknown role", field="role") from None


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def create_token(side: WriteSide, caller: Principal, tenant: str, role_number: int,
                       party_id: str, label: str, expires_at_ms: int) -> NewToken:
    """A new API token for a role (and the party it acts for, if any)."""
    access = side.data.get(tenant).access
    record, token = await side.writer.run(tenant, access.create_token, role(role_number), party_id,
                                          label, expires_at_ms, side.clock())
    return NewToken(record, token)


@use_case(roles={ADMIN}, writes=False, scope=Scope.TENANT)
def list_tokens(side: WriteSide, caller: Principal, tenant: str) -> list[lpb.CredentialRecord]:
    return side.data.get(tenant).access.credentials()


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def revoke_token(side: WriteSide, caller: Principal, tenant: str, credential_id: str
                       ) -> lpb.CredentialRecord:
    access = side.data.get(tenant).access
    return await side.writer.run(tenant, access.revoke, credential_id)


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def bind_certificate(side: WriteSide, caller: Principal, tenant: str, certificate_pem: str,
                           role_number: int, party_id: str, label: str, san_uri: str = ""
                           ) -> lpb.CredentialRecord:
    """A client certificate acts as a credential of the tenant: exactly that certificate
    (its SHA-256) from its issuer, not any certificate that shares its subject name. With
    ``san_uri`` (a workload identity such as spiffe://trust-domain/workload), any
    certificate from the same issuer that names the URI among its subject alternative names
    does, so that renewing the certificate needs no new binding; the certificate given must
    name it, which shows the URI is one that issuer gives out."""
    if not certificate_pem:
        raise InvalidArgument("is required: the client certificate (PEM); a subject name alone "
                              "does not identify a certificate", field="certificate_pem")
    certificate = certificate_id(certificate_pem)
    if san_uri:
        _check_san_uri(san_uri, certificate)
    access = side.data.get(tenant).access
    return await side.writer.run(tenant, access.bind_certificate, certificate, role(role_number),
                                 party_id, label, side.clock(), san_uri)


def _check_san_uri(uri: str, certificate: CertificateId) -> None:
    """INVALID_ARGUMENT unless ``uri`` is an absolute URI that ``certificate`` names."""
    scheme, colon, rest = uri.partition(":")
    if (len(uri) > MAX_SAN_URI or not colon or not rest or not scheme.isascii()
            or not scheme[:1].isalpha() or any(c.isspace() for c in uri)):
        raise InvalidArgument(f"must be an absolute URI (such as spiffe://domain/workload) of "
                              f"at most {MAX_SAN_URI} characters", field="san_uri")
    if not certificate.issuer_key_id:
        raise InvalidArgument("the certificate has no authority key identifier, so which CA "
                              "issued it cannot be pinned: bind it without san_uri",
                              field="san_uri")
    if uri not in certificate.san_uris:
        named = ", ".join(certificate.san_uris) or "none"
        raise InvalidArgument(f"the certificate does not name {uri} among its subject "
                              f"alternative names (it names: {named})", field="san_uri")


def cn_only_bindings(data: DataDir) -> list[str]:
    """Each tenant's certificate bindings made by subject CN alone (which no longer
    authenticate), as "tenant: credential (CN)"."""
    found = []
    for name in data.names():
        try:
            access = data.get(name).access
        except TraceError:
            continue        # offline or damaged: its own start-up message says so
        found += [f"{name}: {r.credential.credential_id} (CN {r.credential.certificate_cn})"
                  for r in access.cn_only_bindings()]
    return found


@use_case(roles={ADMIN, REGULATOR}, writes=False, scope=Scope.TENANT)
def list_keys(side: WriteSide, caller: Principal, tenant: str) -> list[SigningKey]:
    return list(side.data.get(tenant).keys)


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def rotate_key(side: WriteSide, caller: Principal, tenant: str) -> KeyChange:
    """A new signing key mints from now on; the old one still verifies."""
    found = side.data.get(tenant)
    return await side.writer.run(tenant, _change_keys, side, found, lambda: found.keys.rotate())


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def retire_key(side: WriteSide, caller: Principal, tenant: str, key_id: int) -> KeyChange:
    found = side.data.get(tenant)
    return await side.writer.run(tenant, _change_keys, side, found,
                                 lambda: found.keys.retire(key_id))


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def revoke_key(side: WriteSide, caller: Principal, tenant: str, key_id: int) -> KeyChange:
    found = side.data.get(tenant)
    return await side.writer.run(tenant, _change_keys, side, found,
                                 lambda: found.keys.revoke(key_id))


def _change_keys(side: WriteSide, tenant: Tenant, change: Callable[[], SigningKey]) -> KeyChange:
    changed = change()
    side.data.save_keys(tenant)
    return KeyChange(changed, tenant.keys.active.key_id)
