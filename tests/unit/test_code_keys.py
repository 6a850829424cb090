"""Codes as the live ledger stores them: serial encrypted, letter and product in clear."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import codes, digit_strings, gs1_codes
from tracecore.codes import Code, Scheme
from tracecore.errors import FailedPrecondition, LedgerCorrupt
from tracecore.ledger.code_keys import CodeKeys, NoCodeKeys, Xaes256Gcm

KEYS = CodeKeys(bytes(range(32)), "acme")


def sscc_codes() -> st.SearchStrategy[Code]:
    return st.builds(Code, st.just(Scheme.SSCC), st.just(""), digit_strings(18))


any_code = st.one_of(codes(), sscc_codes())


@given(any_code)
def test_a_stored_key_reads_back_as_the_code(code: Code) -> None:
    """Every scheme's codes, ours and codes minted elsewhere, come back from their stored key."""
    stored = KEYS.stored(code.key())
    assert KEYS.plain(stored) == code.key()
    assert Code.from_key(KEYS.plain(stored)) == code


@given(any_code)
def test_the_serial_is_not_in_the_stored_key(code: Code) -> None:
    """The stored key keeps the letter and the product, and not the serial; 16 bytes longer."""
    key, stored = code.key(), KEYS.stored(code.key())
    prefix = key[:len(key) - len(code.serial)]
    assert stored.startswith(prefix)
    assert len(stored) == len(key) + 16
    assert code.serial.encode() not in stored[len(prefix):] or len(code.serial) < 4


@given(any_code)
def test_one_code_has_one_stored_key(code: Code) -> None:
    """Deterministic: a lookup by stored key finds what was stored under it, with new objects
    built from the same secret too."""
    again = CodeKeys(bytes(range(32)), "acme")
    assert again.stored(code.key()) == KEYS.stored(code.key())
    assert KEYS.stored_many([code.key(), code.key()]) == [KEYS.stored(code.key())] * 2


@given(st.lists(gs1_codes(), min_size=2, max_size=30))
def test_stored_keys_sort_by_product(many: list[Code]) -> None:
    """Sorted stored keys keep every product's codes together, in product order."""
    stored = sorted(KEYS.stored_many([c.key() for c in many]))
    products = [Code.from_key(KEYS.plain(s)).product for s in stored]
    assert products == sorted(products)


@given(any_code)
def test_another_tenant_or_secret_cannot_read_a_stored_key(code: Code) -> None:
    """The key is per tenant and per key-encryption key: anything else fails loudly."""
    stored = KEYS.stored(code.key())
    for other in (CodeKeys(bytes(range(32)), "other"), CodeKeys(os.urandom(32), "acme")):
        assert other.stored(code.key()) != stored
        with pytest.raises(LedgerCorrupt):
            other.plain(stored)


def test_a_plain_key_is_not_taken_for_a_stored_one() -> None:
    """A key stored in clear (a ledger of an earlier format) does not decrypt."""
    with pytest.raises(LedgerCorrupt):
        KEYS.plain(Code(Scheme.GS1, "09506000134352", "ABCDEFGHIJKLMNOPQRST").key())


def test_sealed_records_open_only_under_their_key() -> None:
    """Event records are sealed whole: random nonce, authenticated."""
    record = b"\x0a\x14G09506000134352ABC"
    sealed = KEYS.seal(record)
    assert b"ABC" not in sealed and KEYS.seal(record) != sealed
    assert KEYS.open(sealed) == record
    with pytest.raises(LedgerCorrupt):
        CodeKeys(bytes(range(32)), "other").open(sealed)
    with pytest.raises(LedgerCorrupt):
        KEYS.open(sealed[:-1] + bytes([sealed[-1] ^ 1]))


def test_without_the_key_nothing_is_stored_in_clear() -> None:
    """A ledger opened without the key-encryption key refuses to store or read a code."""
    none = NoCodeKeys("no key")
    key = Code(Scheme.NMPA, "8123456", "1234567890123").key()
    for call in (lambda: none.stored(key), lambda: none.stored_many([key]),
                 lambda: none.plain(key), lambda: none.seal(b"x"), lambda: none.open(b"x")):
        with pytest.raises(FailedPrecondition):
            call()


def _material(length: int) -> bytes:
    """KEYS' key material as derived for ``length`` bytes (HKDF-SHA256, per tenant)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"pharmatrace codes at rest\x00acme").derive(bytes(range(32)))


@pytest.mark.parametrize("first", [0x00, 0x01, 0xA7])
def test_a_record_sealed_under_aes_gcm_before_xaes_still_opens(first: int) -> None:
    """Seals written before XAES-256-GCM (nonce, then AES-GCM under the key derived then; no
    version byte) open, even one whose random nonce starts with XAES's version byte."""
    record = b"\x0a\x14G09506000134352ABC"
    nonce = bytes([first]) + os.urandom(11)
    old = nonce + AESGCM(_material(128)[64:96]).encrypt(nonce, record, None)
    assert KEYS.open(old) == record
    with pytest.raises(LedgerCorrupt):
        KEYS.open(old[:-1] + bytes([old[-1] ^ 1]))


@pytest.mark.parametrize(("key", "associated", "sealed"), [
    (bytes([1]) * 32, None, "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"),
    (bytes([3]) * 32, b"c2sp.org/XAES-256-GCM",
     "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d"),
])
def test_xaes_256_gcm_gives_the_specification_s_test_vectors(
        key: bytes, associated: bytes | None, sealed: str) -> None:
    """c2sp.org/XAES-256-GCM's two test vectors, both ways."""
    xaes = Xaes256Gcm(key)
    nonce = b"ABCDEFGHIJKLMNOPQRSTUVWX"
    assert xaes.encrypt(nonce, b"XAES-256-GCM", associated).hex() == sealed
    assert xaes.decrypt(nonce, bytes.fromhex(sealed), associated) == b"XAES-256-GCM"


def test_a_seal_is_xaes_under_a_key_of_its_own_and_the_other_keys_did_not_change() -> None:
    """A seal is version byte 1, a 24-byte nonce, XAES-256-GCM; adding its key changed neither
    the code keys' AES-SIV key nor the keyed hash's, so ledgers written before still read."""
    material = _material(160)
    record = b"\x0a\x14G09506000134352ABC"
    sealed = KEYS.seal(record)
    assert sealed[:1] == b"\x01" and len(sealed) == 1 + 24 + len(record) + 16
    assert Xaes256Gcm(material[128:]).decrypt(sealed[1:25], sealed[25:], None) == record
    key = Code(Scheme.GS1, "09506000134352", "ABCDEFGHIJKLMNOPQRST").key()
    assert KEYS.stored(key) == key[:15] + AESSIV(material[:64]).encrypt(key[15:], None)
    assert KEYS.digest(b"x") == hashlib.blake2b(b"x", digest_size=16,
                                                key=material[96:128]).digest()


def test_a_seal_cut_short_does_not_open() -> None:
    """A seal missing its end (nonce included) fails as altered, never as something else."""
    sealed = KEYS.seal(b"\x0a\x14G09506000134352ABC")
    for cut in (1, 10, 25, 30):
        with pytest.raises(LedgerCorrupt):
            KEYS.open(sealed[:cut])


def test_records_sealed_together_are_xaes_seals_each_with_a_nonce_of_its_own() -> None:
    """Records sealed in one batch share one derived key (their nonces' first 12 bytes) yet
    each is a whole XAES-256-GCM seal: it opens on its own, under the specification's
    decryption, and no two GCM nonces are alike."""
    material = _material(160)
    records = [b"record %d" % i for i in range(50)]
    sealed = KEYS.seal_many(records)
    assert [KEYS.open(s) for s in sealed] == records
    xaes = Xaes256Gcm(material[128:])
    assert [xaes.decrypt(s[1:25], s[25:], None) for s in sealed] == records
    assert {s[:1] for s in sealed} == {b"\x01"} and len({s[1:13] for s in sealed}) == 1
    assert len({s[13:25] for s in sealed}) == len(records)
    assert KEYS.seal_many(records[:1])[0][1:13] != sealed[0][1:13]
    with pytest.raises(FailedPrecondition):
        NoCodeKeys("no key").seal_many(records)
