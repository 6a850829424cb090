"""A tenant's credentials and its audit trail, kept in the tenant's own ledger."""

from __future__ import annotations

import hashlib

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import masterdata
from tracecore.credentials import (
    OPERATOR,
    CertificateId,
    Principal,
    Role,
    Token,
    new_token,
    secret_matches,
)
from tracecore.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from tracecore.ledger.chain import audit_trail
from tracecore.ledger.env import Txn
from tracecore.ledger.store import Ledger

MAX_LABEL = 200
MAX_SUMMARY = 500
MAX_CN = 64
#: "cert-" and a certificate CN, or 12 hex digits.
MAX_CREDENTIAL_ID = 5 + MAX_CN
#: Roles that act for a party, and so may be bound to one.
_PARTY_ROLES = frozenset({Role.LINE, Role.DISTRIBUTOR, Role.PHARMACY})


class Access:
    """Credentials (tokens, certificate bindings) and the hash-chained audit trail."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        # The operator store's records name no codes; a tenant's are sealed like its events.
        self.audit = audit_trail(ledger.db, None if ledger.tenant == OPERATOR else ledger.codes)

    # -- credentials -----------------------------------------------------------------------------

    def create_token(self, role: Role, party_id: str, label: str, expires_at_ms: int,
                     now_ms: int) -> tuple[lpb.CredentialRecord, str]:
        """A new API token; returns its record (without the secret's hash) and the token text,
        shown once."""
        public = self._credential(role, party_id, label, expires_at_ms, now_ms)
        token, credential_id, secret_hash = new_token(self.ledger.tenant)
        public.credential.credential_id = credential_id

        def fn(txn: Txn) -> None:
            self._check_party(txn, public)
            record = lpb.CredentialRecord(credential=public.credential, secret_hash=secret_hash)
            txn.put(credential_id.encode(), record.SerializeToString(),
                    db=self.ledger.db["credentials"], overwrite=False)

        self.ledger.env.write(fn)
        return public, token

    def bind_certificate(self, certificate: CertificateId, role: Role, party_id: str, label: str,
                         now_ms: int, san_uri: str = "") -> lpb.CredentialRecord:
        """Exactly this certificate, from its issuer, acts as a credential of this tenant; with
        ``san_uri``, any certificate from its issuer (name and key identifier) that names that
        URI does."""
        record = self._credential(role, party_id, label, 0, now_ms)
        credential = record.credential
        credential.certificate_cn = certificate.subject
        credential.certificate_sha256 = certificate.sha256
        credential.certificate_issuer = certificate.issuer
        if san_uri:
            key = _uri_binding_key(certificate, san_uri)
            credential.credential_id = "cert-uri-" + hashlib.sha256(key).hexdigest()[:16]
            credential.certificate_san_uri = san_uri
            credential.certificate_issuer_key_id = certificate.issuer_key_id
            what = f"{san_uri} from {certificate.issuer}"
        else:
            key = _binding_key(certificate.sha256)
            credential.credential_id = "cert-" + certificate.sha256[:16]
            what = f"certificate {certificate.sha256}"

        def fn(txn: Txn) -> None:
            self._check_party(txn, record)
            bound = txn.get(key, db=self.ledger.db["cert_bindings"])
            if bound is not None and not self._record(
                    txn, bytes(bound).decode()).credential.revoked:
                raise AlreadyExists(f"{what} is already bound",
                                    field="san_uri" if san_uri else "certificate_pem")
            txn.put(credential.credential_id.encode(), record.SerializeToString(),
                    db=self.ledger.db["credentials"])
            txn.put(key, credential.credential_id.encode(), db=self.ledger.db["cert_bindings"])

        self.ledger.env.write(fn)
        return record

    def cn_only_bindings(self) -> list[lpb.CredentialRecord]:
        """Certificate bindings made by subject CN alone, not revoked: they no longer
        authenticate, and each needs binding again by its certificate."""
        return [r for r in self.credentials()
                if r.credential.certificate_cn and not r.credential.certificate_sha256
                and not r.credential.revoked]

    def revoke(self, credential_id: str) -> lpb.CredentialRecord:
        """The credential, revoked; its record returned without the secret's hash."""

        def fn(txn: Txn) -> lpb.CredentialRecord:
            record = self._record(txn, credential_id)
            record.credential.revoked = True
            txn.put(credential_id.encode(), record.SerializeToString(),
                    db=self.ledger.db["credentials"])
            return lpb.CredentialRecord(credential=record.credential)

        return self.ledger.env.write(fn)

    def credentials(self) -> list[lpb.CredentialRecord]:
        """Every credential's record, without the secrets' hashes."""
        with self.ledger.env.read() as txn:
            return [lpb.CredentialRecord(credential=lpb.CredentialRecord.FromString(bytes(v))
                                         .credential)
                    for _, v in txn.cursor(db=self.ledger.db["credentials"])]

    def authenticate_token(self, token: Token, now_ms: int, peer: str) -> Principal:
        """The principal of a token; Unauthenticated for unknown, wrong, revoked or expired."""
        with self.ledger.env.read() as txn:
            data = txn.get(token.credential_id.encode(), db=self.ledger.db["credentials"])
            record = lpb.CredentialRecord.FromString(bytes(data)) if data is not None else None
        if record is None or not record.secret_hash or not secret_matches(token.secret,
                                                                          record.secret_hash):
            raise Unauthenticated("unknown API token")
        return self._principal(record, now_ms, peer)

    def current(self, credential_id: str, now_ms: int) -> Principal:
        """The principal of a credential authenticated earlier, as it stands now: work queued
        under it (a capture job) is refused once it is revoked or expired."""
        with self.ledger.env.read() as txn:
            data = txn.get(credential_id.encode(), db=self.ledger.db["credentials"])
        if data is None:
            raise Unauthenticated("credential no longer exists")
        return self._principal(lpb.CredentialRecord.FromString(bytes(data)), now_ms, "")

    def authenticate_certificate(self, certificate: CertificateId, now_ms: int, peer: str
                                 ) -> Principal:
        """The credential of exactly this certificate from this issuer, else the one bound to
        a URI among its subject alternative names together with this issuer (the first, in
        the certificate's order, that is bound and not revoked)."""
        db = self.ledger.db["cert_bindings"]
        with self.ledger.env.read() as txn:
            credential_id = txn.get(_binding_key(certificate.sha256), db=db)
            if credential_id is not None:
                record = self._record(txn, bytes(credential_id).decode())
                if record.credential.certificate_issuer == certificate.issuer:
                    return self._principal(record, now_ms, peer)
            for uri in certificate.san_uris:
                credential_id = txn.get(_uri_binding_key(certificate, uri), db=db)
                if credential_id is None:
                    continue
                record = self._record(txn, bytes(credential_id).decode())
                bound = record.credential
                if (bound.certificate_issuer, bound.certificate_issuer_key_id,
                        bound.certificate_san_uri) == (certificate.issuer,
                                                       certificate.issuer_key_id, uri):
                    return self._principal(record, now_ms, peer)
        raise Unauthenticated("client certificate is not bound to this tenant")

    # -- audit -----------------------------------------------------------------------------------

    def record_audit(self, entries: list[lpb.AuditRecord]) -> None:
        """Appends audit records, in order, in one transaction."""

        for entry in entries:
            entry.summary = entry.summary[:MAX_SUMMARY]

        def fn(txn: Txn) -> None:
            self.audit.append_many(txn, entries)

        self.ledger.env.write(fn)

    def verify_audit(self) -> tuple[int, int | None]:
        with self.ledger.env.read() as txn:
            return self.audit.verify(txn)

    def audit_records(self, start: int = 1) -> list[lpb.AuditRecord]:
        with self.ledger.env.read() as txn:
            return list(self.audit.scan(txn, start))

    # -- helpers ---------------------------------------------------------------------------------

    def _credential(self, role: Role, party_id: str, label: str, expires_at_ms: int,
                    now_ms: int) -> lpb.CredentialRecord:
        if role not in Role or (role is Role.OPERATOR and self.ledger.tenant != "_operator"):
            raise InvalidArgument("unknown or unavailable role", field="role")
        if party_id:
            masterdata.party_id(party_id)
            if role not in _PARTY_ROLES:
                raise InvalidArgument(f"a {role.name.lower()} credential does not act for a party",
                                      field="party_id")
        if len(label) > MAX_LABEL:
            raise InvalidArgument(f"at most {MAX_LABEL} characters", field="label")
        if expires_at_ms and expires_at_ms <= now_ms:
            raise InvalidArgument("is in the past", field="expires_at_ms")
        record = lpb.CredentialRecord()
        credential = record.credential
        credential.role = int(role)  # type: ignore[assignment]
        credential.party_id = party_id
        credential.label = label
        credential.created_at_ms = now_ms
        credential.expires_at_ms = expires_at_ms
        return record

    def _check_party(self, txn: Txn, record: lpb.CredentialRecord) -> None:
        if record.credential.party_id:
            self.ledger.party_in(txn, record.credential.party_id)

    def _record(self, txn: Txn, credential_id: str) -> lpb.CredentialRecord:
        if not credential_id or len(credential_id) > MAX_CREDENTIAL_ID:
            raise InvalidArgument(f"must be 1 to {MAX_CREDENTIAL_ID} characters",
                                  field="credential_id")
        data = txn.get(credential_id.encode(), db=self.ledger.db["credentials"])
        if data is None:
            raise NotFound(f"no credential {credential_id}", field="credential_id")
        return lpb.CredentialRecord.FromString(bytes(data))

    def _principal(self, record: lpb.CredentialRecord, now_ms: int, peer: str) -> Principal:
        credential = record.credential
        if credential.revoked:
            raise Unauthenticated("credential revoked")
        if credential.expires_at_ms and credential.expires_at_ms <= now_ms:
            raise Unauthenticated("credential expired")
        return Principal(self.ledger.tenant, Role(credential.role), credential.credential_id,
                         credential.party_id, peer)


def _binding_key(sha256: str) -> bytes:
    # Apart from the CN keys older bindings used, which no certificate can now match.
    return b"sha256:" + sha256.encode()


def _uri_binding_key(certificate: CertificateId, uri: str) -> bytes:
    # The issuer (name and key) first: the same URI from another CA is another identity.
    return b"\0".join((b"uri:" + certificate.issuer.encode(),
                       certificate.issuer_key_id.encode(), uri.encode()))
