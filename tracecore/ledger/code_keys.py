"""Codes as the live ledger stores them: the serial encrypted, the scheme letter and product in
clear.

A code's ledger key (``Code.key()``: scheme letter, product, serial) is its identity in memory;
``CodeKeys`` turns it into the key LMDB holds and back, at the one place each database is
written or read. The serial is encrypted with AES-256-SIV (RFC 5297) without associated data:
deterministic, so one code always has one stored key and a lookup stays one ``get``; the letter
and product stay in clear, so every product's codes still sort together and prefix scans by
product keep working. A serial carries its HMAC tag: in clear, a copy of ``data.mdb`` would be a
list of valid codes. Stored keys are 16 bytes longer than the plain ones.

Event and audit records and alerts name codes too: ``seal`` and ``open`` encrypt a whole
record's bytes with AES-256-GCM (a random 12-byte nonce each), one call per record rather than
per code; ``digest`` is a keyed hash (BLAKE2b, 16 bytes) for keys that are only compared.

The key is per tenant, derived from the key-encryption key (``KeySource.derived_key`` for
``PURPOSE``, then HKDF-SHA256 with the tenant's name as info) and never stored; replicas, which
share the key source, derive the same.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tracecore.errors import FailedPrecondition, LedgerCorrupt
from tracecore.schemes import SCHEMES

if TYPE_CHECKING:
    from tracecore.ledger.env import Env, Txn

#: The ledger format from which codes, events and audit records are stored this way.
SINCE_FORMAT = 3
#: What the secret is derived for (``KeySource.derived_key``).
PURPOSE = "ledger codes at rest"
_SIV_KEY_BYTES = 64  # AES-256-SIV: two 256-bit keys
_GCM_KEY_BYTES = 32
_DIGEST_KEY_BYTES = 32
_NONCE_BYTES = 12
#: Scheme letter -> length of the clear prefix (letter and product identifier).
_PREFIX = {s.key_letter: 1 + s.product_length for s in SCHEMES.values()}


#: In a store's ``meta`` once everything it holds is sealed.
_SEALED = b"sealed"


def seal_once(env: Env, rewrite: Callable[[Txn], None], mark: bytes = _SEALED) -> None:
    """Runs ``rewrite`` (sealing what an earlier release stored in clear) in one transaction,
    once per store: its ``meta`` database records that it ran, under ``mark`` (a store that
    seals several things at different times gives each a mark of its own)."""
    meta = env.dbs["meta"]
    with env.read() as txn:
        if txn.get(mark, db=meta) is not None:
            return

    def fn(txn: Txn) -> None:
        if txn.get(mark, db=meta) is None:
            rewrite(txn)
            txn.put(mark, b"1", db=meta)

    env.write(fn)


class KeySourceLike(Protocol):
    def derived_key(self, purpose: str) -> bytes: ...


class CodeKeys:
    """One tenant's conversion between codes' ledger keys and their stored form."""

    __slots__ = ("_digest_key", "_gcm", "_siv")

    def __init__(self, secret: bytes, tenant: str) -> None:
        material = HKDF(algorithm=hashes.SHA256(),
                        length=_SIV_KEY_BYTES + _GCM_KEY_BYTES + _DIGEST_KEY_BYTES,
                        salt=None, info=b"pharmatrace codes at rest\x00" + tenant.encode()
                        ).derive(secret)
        gcm_end = _SIV_KEY_BYTES + _GCM_KEY_BYTES
        self._siv = AESSIV(material[:_SIV_KEY_BYTES])
        self._gcm = AESGCM(material[_SIV_KEY_BYTES:gcm_end])
        self._digest_key = material[gcm_end:]

    @classmethod
    def of(cls, source: KeySourceLike, tenant: str) -> CodeKeys:
        """The tenant's keys from the key source (scrypt: callers keep the result)."""
        return cls(source.derived_key(PURPOSE), tenant)

    def stored(self, key: bytes) -> bytes:
        """The key LMDB holds for a code's ledger key."""
        cut = _PREFIX.get(key[:1])
        if cut is None:
            raise LedgerCorrupt("not a code key")
        return key[:cut] + self._siv.encrypt(key[cut:], None)

    def stored_many(self, keys: Iterable[bytes]) -> list[bytes]:
        encrypt = self._siv.encrypt
        prefix = _PREFIX
        try:
            # One comprehension: about a third of the cost per code of a loop of ``stored``.
            return [key[:cut] + encrypt(key[cut:], None)
                    for key in keys for cut in (prefix[key[:1]],)]
        except KeyError as exc:  # no scheme's letter
            raise LedgerCorrupt("not a code key") from exc

    def plain(self, stored: bytes) -> bytes:
        """The code's ledger key from the key LMDB holds; LedgerCorrupt when it does not
        decrypt (another tenant's, altered, or stored in clear)."""
        cut = _PREFIX.get(stored[:1])
        if cut is None:
            raise LedgerCorrupt("a stored code key is of no known scheme")
        try:
            return stored[:cut] + self._siv.decrypt(stored[cut:], None)
        except (InvalidTag, ValueError) as exc:
            raise LedgerCorrupt("a stored code key does not decrypt under this tenant's "
                                "key") from exc

    def plain_many(self, stored: Iterable[bytes | memoryview]) -> list[bytes]:
        return [self.plain(bytes(s)) for s in stored]

    def digest(self, data: bytes) -> bytes:
        """A keyed hash of ``data`` (which names a code), for a key that is only looked up."""
        return hashlib.blake2b(data, digest_size=16, key=self._digest_key).digest()

    def seal(self, record: bytes) -> bytes:
        """A record's bytes encrypted for storage: nonce, then ciphertext and tag."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._gcm.encrypt(nonce, record, None)

    def open(self, sealed: bytes) -> bytes:
        """``seal``'s input back; LedgerCorrupt when altered or sealed under another key."""
        try:
            return self._gcm.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], None)
        except (InvalidTag, ValueError) as exc:
            raise LedgerCorrupt("a stored record does not decrypt under this tenant's "
                                "key") from exc


class NoCodeKeys(CodeKeys):
    """A ledger opened without the key-encryption key: anything that would store or read a
    code fails, never falls back to clear text."""

    __slots__ = ("_why",)

    def __init__(self, why: str) -> None:
        self._why = why

    def _refuse(self) -> FailedPrecondition:
        return FailedPrecondition(f"codes in the ledger cannot be read or written: {self._why}")

    def stored(self, key: bytes) -> bytes:
        raise self._refuse()

    def stored_many(self, keys: Iterable[bytes]) -> list[bytes]:
        raise self._refuse()

    def plain(self, stored: bytes) -> bytes:
        raise self._refuse()

    def plain_many(self, stored: Iterable[bytes | memoryview]) -> list[bytes]:
        raise self._refuse()

    def digest(self, data: bytes) -> bytes:
        raise self._refuse()

    def seal(self, record: bytes) -> bytes:
        raise self._refuse()

    def open(self, sealed: bytes) -> bytes:
        raise self._refuse()
