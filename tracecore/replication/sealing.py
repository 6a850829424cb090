"""Replication's messages and snapshots sealed with AES-256-GCM under a key of each tenant and
epoch derived from the key-encryption key: the JetStream store and the wire carry no serial in
clear, and a message altered, or moved to another tenant or another place in the stream, does
not open.

Each part of a change record is sealed on its own, with a fresh nonce: a part sent again after a
crash opens to the same bytes as the first, whichever of the two the stream kept. A snapshot, a
whole ledger of any size, is encrypted with age (as backups are) to an identity of the
installation, and names its tenant, epoch and stream position inside what is encrypted.

Every writer and replica of an installation holds the key-encryption key (they open the tenants'
key rings with it), so each works the same key out; the NATS servers never see it.
"""

from __future__ import annotations

import os
from functools import lru_cache

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tracecore.errors import LedgerCorrupt
from tracecore.ledger.backup_cipher import Derives, identity_of

PURPOSE = "replication"
"""The purpose the installation's replication secret is derived from the key-encryption key for."""
SNAPSHOT_PURPOSE = "replication snapshots"
_NONCE = 12


class Sealing:
    """Seals and opens one installation's replication messages, each tenant under its own key."""

    def __init__(self, secret: bytes, snapshot_secret: bytes) -> None:
        self._secret = secret
        self._cipher = lru_cache(maxsize=1024)(self._epoch_cipher)
        self._snapshots = identity_of(snapshot_secret)

    @classmethod
    def of(cls, source: Derives) -> Sealing:
        """The installation's sealing, worked out from its key-encryption key (slowly: scrypt)."""
        return cls(source.derived_key(PURPOSE), source.derived_key(SNAPSHOT_PURPOSE))

    def seal_snapshot(self, data: bytes) -> bytes:
        return pyrage.encrypt(data, [self._snapshots.to_public()])

    def open_snapshot(self, tenant: str, sealed: bytes) -> bytes:
        try:
            return pyrage.decrypt(sealed, [self._snapshots])
        except pyrage.DecryptError as exc:
            raise LedgerCorrupt(f"the snapshot of tenant {tenant} does not open ({exc}): "
                                "altered, or sealed under another key-encryption key") from None

    def _epoch_cipher(self, tenant: str, epoch: int) -> AESGCM:
        # A key per epoch keeps the random nonces under any one key far below GCM's bound.
        info = b"pharmatrace replication %s %d" % (tenant.encode(), epoch)
        return AESGCM(HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(self._secret))

    def seal(self, tenant: str, epoch: int, context: bytes, data: bytes) -> bytes:
        """``data`` encrypted and authenticated, bound to ``context`` (what and where it is)."""
        nonce = os.urandom(_NONCE)
        return nonce + self._cipher(tenant, epoch).encrypt(nonce, data, context)

    def open(self, tenant: str, epoch: int, context: bytes, sealed: bytes) -> bytes:
        """The data ``seal`` was given; LedgerCorrupt when it was altered, sealed for another
        tenant, epoch or context, or under another key-encryption key."""
        try:
            return self._cipher(tenant, epoch).decrypt(sealed[:_NONCE], sealed[_NONCE:],
                                                       context)
        except (InvalidTag, ValueError):
            raise LedgerCorrupt(
                f"a replication message of tenant {tenant} ({context.decode()}) does not open: "
                "altered, not of this place in the stream, or sealed under another "
                "key-encryption key") from None


def part_context(commit: int, part: int, parts: int) -> bytes:
    """What one part of a change record is bound to: its commit and its place among the parts."""
    return b"change %d part %d of %d" % (commit, part, parts)

