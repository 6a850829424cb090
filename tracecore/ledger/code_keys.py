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
record's bytes, one call per record rather than per code; ``digest`` is a keyed hash (BLAKE2b,
16 bytes) for keys that are only compared. A seal is a version byte (1), a random 24-byte nonce
and the record under XAES-256-GCM (C2SP): AES-256-GCM under a key derived from the tenant's key
and the nonce's first 12 bytes (two AES blocks), with its last 12 as GCM's nonce. AES-GCM with
random 12-byte nonces under one key per tenant stays within NIST's bound (SP 800-38D) only up
to 2^32 records per key, and a nonce drawn twice would give away the authentication key; with
24 random bytes, 2^80 records per key are safe, at AES-GCM's speed per byte (AES-GCM-SIV, the
other way out, runs about 18 times slower per byte through OpenSSL, and event records carry
every code of their event). Records sealed together (``seal_many``: an answer trail's flush,
a transaction's audit records) share their nonces' first 12 bytes, so one key is derived for
them, each with its own random GCM nonce under it: at most 2^16 records a derived key keep a
repeated GCM nonce about 2^-65 likely. Records sealed before (AES-256-GCM: nonce, then
ciphertext and tag, no version byte) still open: a seal that does not open as version 1 is
opened as one of those.

The key is per tenant, derived from the key-encryption key (``KeySource.derived_key`` for
``PURPOSE``, then HKDF-SHA256 with the tenant's name as info) and never stored; replicas, which
share the key source, derive the same.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tracecore._speedups import load
from tracecore.errors import FailedPrecondition, LedgerCorrupt
from tracecore.schemes import SCHEMES

if TYPE_CHECKING:
    from tracecore._speedups._siv import SivKey
    from tracecore.ledger.env import Database, Env, Txn

#: The ledger format from which codes, events and audit records are stored this way.
SINCE_FORMAT = 3
#: What the secret is derived for (``KeySource.derived_key``).
PURPOSE = "ledger codes at rest"
_SIV_KEY_BYTES = 64  # AES-256-SIV: two 256-bit keys
_GCM_KEY_BYTES = 32
_DIGEST_KEY_BYTES = 32
_XAES_KEY_BYTES = 32
_NONCE_BYTES = 12
_XAES_NONCE_BYTES = 24
#: Records sealed under one derived key at most (``seal_many``): their GCM nonces are drawn at
#: random, so two alike stay far less likely than NIST's bound of 2^-32 (SP 800-38D).
_SEALS_A_KEY = 1 << 16
#: The first byte of a seal under XAES-256-GCM (older seals, under AES-GCM, have none).
_XAES = b"\x01"
#: Scheme letter -> length of the clear prefix (letter and product identifier).
_PREFIX = {s.key_letter: 1 + s.product_length for s in SCHEMES.values()}
#: The compiled AES-256-SIV of serials, a batch a call (``cryptography``'s ``AESSIV``, below,
#: is the reference), and what it takes of ``_PREFIX``: each first byte's clear length.
_NATIVE = load("_siv")
_CLEAR = bytes(_PREFIX.get(bytes([first]), 0) for first in range(256))


#: Why nothing sealed opens, as said to an operator who gave a key.
OTHER_KEY = ("a key-encryption key (passphrase or key file) other than the one they were "
             "written under, or another tenant's files")

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


def seal_store_once(env: Env, rewrite: Callable[[Txn], None]) -> None:
    """``seal_once`` for a store opened on its own (alerts, answers, EPCIS REST): closed again
    if sealing fails, so that a store that cannot be sealed is never used."""
    try:
        seal_once(env, rewrite)
    except BaseException:
        env.close()
        raise


class Xaes256Gcm:
    """XAES-256-GCM (c2sp.org/XAES-256-GCM): AES-256-GCM with 24-byte nonces, safe to draw at
    random for 2^80 messages under one key. The key for each message is derived from the key
    and the nonce's first 12 bytes as the specification says (NIST SP 800-108r1 counter-mode
    KDF with AES-256-CMAC: two AES blocks); its last 12 bytes are GCM's nonce."""

    __slots__ = ("_ecb", "_lock", "_n_mask", "_prefixes")

    def __init__(self, key: bytes) -> None:
        # AES on single blocks, as the key derivation is specified (a PRF, not a mode for data).
        self._ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
        self._lock = threading.Lock()  # one ECB context, kept: building one costs ~5 µs
        # CMAC's subkey K1: L = AES(key, 0^128) doubled in GF(2^128).
        doubled = int.from_bytes(self._ecb.update(bytes(16))) << 1
        k1 = (doubled ^ (0x87 if doubled >> 128 else 0)) & ((1 << 128) - 1)
        k1_bytes = k1.to_bytes(16)
        # Each block, [counter, "X", 0] then the nonce's first 12 bytes, is XORed with K1.
        self._prefixes = tuple(bytes(a ^ b for a, b in zip(head, k1_bytes[:4], strict=True))
                               for head in (b"\x00\x01X\x00", b"\x00\x02X\x00"))
        self._n_mask = int.from_bytes(k1_bytes[4:])

    def _gcm(self, nonce: bytes) -> AESGCM:
        if len(nonce) != _XAES_NONCE_BYTES:
            raise ValueError("XAES-256-GCM takes a 24-byte nonce")
        return self.gcm(nonce[:12])

    def gcm(self, head: bytes) -> AESGCM:
        """AES-256-GCM under the key derived for nonces beginning with ``head`` (12 bytes):
        it encrypts under GCM nonces that are their last 12 bytes."""
        n = (int.from_bytes(head) ^ self._n_mask).to_bytes(12)
        first, second = self._prefixes
        with self._lock:
            key = self._ecb.update(first + n + second + n)
        return AESGCM(key)

    def encrypt(self, nonce: bytes, data: bytes, associated: bytes | None) -> bytes:
        return self._gcm(nonce).encrypt(nonce[12:], data, associated)

    def decrypt(self, nonce: bytes, data: bytes, associated: bytes | None) -> bytes:
        return self._gcm(nonce).decrypt(nonce[12:], data, associated)


class KeySourceLike(Protocol):
    def derived_key(self, purpose: str) -> bytes: ...


class CodeKeys:
    """One tenant's conversion between codes' ledger keys and their stored form."""

    __slots__ = ("_digest_key", "_gcm", "_native", "_siv", "_xaes")
    _native: SivKey | None

    def __init__(self, secret: bytes, tenant: str) -> None:
        # HKDF's output for a longer length starts with the shorter one's: the XAES key, added
        # last, leaves the keys derived before it as they were.
        material = HKDF(algorithm=hashes.SHA256(),
                        length=(_SIV_KEY_BYTES + _GCM_KEY_BYTES + _DIGEST_KEY_BYTES
                                + _XAES_KEY_BYTES),
                        salt=None, info=b"pharmatrace codes at rest\x00" + tenant.encode()
                        ).derive(secret)
        gcm_end = _SIV_KEY_BYTES + _GCM_KEY_BYTES
        digest_end = gcm_end + _DIGEST_KEY_BYTES
        self._siv = AESSIV(material[:_SIV_KEY_BYTES])
        self._native = (_NATIVE.SivKey(material[:_SIV_KEY_BYTES], _CLEAR)
                        if _NATIVE is not None else None)
        self._gcm = AESGCM(material[_SIV_KEY_BYTES:gcm_end])
        self._digest_key = material[gcm_end:digest_end]
        self._xaes = Xaes256Gcm(material[digest_end:])

    @classmethod
    def of(cls, source: KeySourceLike, tenant: str) -> CodeKeys:
        """The tenant's keys from the key source (scrypt: callers keep the result)."""
        return cls(source.derived_key(PURPOSE), tenant)

    def stored(self, key: bytes) -> bytes:
        """The key LMDB holds for a code's ledger key."""
        if self._native is not None:
            return self._native.stored(key)
        cut = _PREFIX.get(key[:1])
        if cut is None:
            raise LedgerCorrupt("not a code key")
        return key[:cut] + self._siv.encrypt(key[cut:], None)

    def stored_many(self, keys: Iterable[bytes]) -> list[bytes]:
        if self._native is not None:
            return self._native.stored_many(keys)
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
        if self._native is not None:
            return self._native.plain(stored)
        cut = _PREFIX.get(stored[:1])
        if cut is None:
            raise LedgerCorrupt("a stored code key is of no known scheme")
        try:
            return stored[:cut] + self._siv.decrypt(stored[cut:], None)
        except (InvalidTag, ValueError) as exc:
            raise LedgerCorrupt("a stored code key does not decrypt under this tenant's "
                                "key") from exc

    def plain_many(self, stored: Iterable[bytes | memoryview]) -> list[bytes]:
        if self._native is not None:
            return self._native.plain_many(stored)
        return [self.plain(bytes(s)) for s in stored]

    def digest(self, data: bytes) -> bytes:
        """A keyed hash of ``data`` (which names a code), for a key that is only looked up."""
        return hashlib.blake2b(data, digest_size=16, key=self._digest_key).digest()

    def seal(self, record: bytes) -> bytes:
        """A record's bytes encrypted for storage: version byte, nonce, then ciphertext and
        tag."""
        nonce = os.urandom(_XAES_NONCE_BYTES)
        return _XAES + nonce + self._xaes.encrypt(nonce, record, None)

    def seal_many(self, records: Sequence[bytes]) -> list[bytes]:
        """``seal`` of each record: their nonces share their first 12 bytes (so one key is
        derived for all of them, not one each) and differ in the last 12, drawn at random for
        each record as GCM's nonce under that key."""
        out: list[bytes] = []
        for start in range(0, len(records), _SEALS_A_KEY):
            some = records[start:start + _SEALS_A_KEY]
            drawn = os.urandom(_XAES_NONCE_BYTES - _NONCE_BYTES + _NONCE_BYTES * len(some))
            head = drawn[:_XAES_NONCE_BYTES - _NONCE_BYTES]
            encrypt = self._xaes.gcm(head).encrypt
            for i, record in enumerate(some, 1):
                tail = drawn[i * _NONCE_BYTES:(i + 1) * _NONCE_BYTES]
                out.append(_XAES + head + tail + encrypt(tail, record, None))
        return out

    def open(self, sealed: bytes) -> bytes:
        """``seal``'s input back (or that of a seal under AES-GCM, from before XAES);
        LedgerCorrupt when altered or sealed under another key."""
        if sealed[:1] == _XAES:
            end = 1 + _XAES_NONCE_BYTES
            try:
                return self._xaes.decrypt(sealed[1:end], sealed[end:], None)
            except (InvalidTag, ValueError):
                pass  # an AES-GCM seal whose random nonce starts with the version byte
        try:
            return self._gcm.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], None)
        except (InvalidTag, ValueError) as exc:
            raise LedgerCorrupt("a stored record does not decrypt under this tenant's "
                                "key") from exc

    def seal_values(self, txn: Txn, *dbs: Database) -> None:
        """Seals every value of ``dbs`` in place: what an earlier release wrote in clear."""
        for db in dbs:
            for key, value in [(bytes(k), bytes(v)) for k, v in txn.cursor(db=db)]:
                txn.put(key, self.seal(value), db=db)


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

    def seal_many(self, records: Sequence[bytes]) -> list[bytes]:
        raise self._refuse()

    def open(self, sealed: bytes) -> bytes:
        raise self._refuse()
