"""The compiled AES-256-SIV of code keys (tracecore._speedups._siv) stores and reads back
exactly as its reference, ``cryptography``'s AESSIV, for every scheme's codes."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import codes, digit_strings
from tracecore._speedups import PURE_ENV, load
from tracecore.codes import Code, Scheme
from tracecore.errors import LedgerCorrupt
from tracecore.ledger.code_keys import _CLEAR, CodeKeys

if TYPE_CHECKING:
    from tracecore._speedups._siv import SivKey

_siv = load("_siv")
pytestmark = pytest.mark.skipif(_siv is None, reason="the compiled extension is not built or "
                                                     "PHARMATRACE_PURE")

SECRET = bytes(range(64))
REFERENCE = AESSIV(SECRET)
GS1_HEAD = Code(Scheme.GS1, "09506000134352", "X").key()[:-1]

any_code = st.one_of(codes(), st.builds(Code, st.just(Scheme.SSCC), st.just(""),
                                        digit_strings(18)))
# Serials of any bytes and length: under a block, exactly one, several, and longer than the
# 16 counter blocks a CTR run takes.
any_serial = st.one_of(st.binary(min_size=1, max_size=40), st.binary(min_size=200, max_size=600))


def _reference(key: bytes, cut: int) -> bytes:
    return key[:cut] + REFERENCE.encrypt(key[cut:], None)


def _siv_key() -> SivKey:
    assert _siv is not None
    return _siv.SivKey(SECRET, _CLEAR)


@given(st.lists(any_code, min_size=1, max_size=20))
def test_code_keys_of_every_scheme_store_as_the_reference(many: list[Code]) -> None:
    """GS1 (ours and foreign serials), NMPA and SSCC keys: the same stored bytes one at a time
    and as a batch, and the reference's stored bytes read back to the key."""
    siv = _siv_key()
    keys = [c.key() for c in many]
    expected = [_reference(k, len(k) - len(c.serial)) for k, c in zip(keys, many, strict=True)]
    assert siv.stored_many(keys) == expected
    assert [siv.stored(k) for k in keys] == expected
    assert siv.plain_many(expected) == keys
    assert [siv.plain(memoryview(s)) for s in expected] == keys


@given(st.lists(any_serial, min_size=1, max_size=5))
def test_serials_of_any_length_encrypt_as_the_reference(serials: list[bytes]) -> None:
    """Serials shorter than a block, of whole blocks and of many blocks, both ways."""
    siv = _siv_key()
    keys = [GS1_HEAD + s for s in serials]
    expected = [_reference(k, len(GS1_HEAD)) for k in keys]
    assert siv.stored_many(keys) == expected
    assert siv.plain_many(map(memoryview, expected)) == keys


@given(any_serial, st.data())
def test_an_altered_stored_key_does_not_read_back(serial: bytes, data: st.DataObject) -> None:
    """Any changed bit of the encrypted part, or a cut one, is LedgerCorrupt, alone or in a
    batch, as it is for the reference."""
    siv = _siv_key()
    stored = bytearray(_reference(GS1_HEAD + serial, len(GS1_HEAD)))
    at = data.draw(st.integers(len(GS1_HEAD), len(stored) - 1))
    stored[at] ^= 1 << data.draw(st.integers(0, 7))
    for altered in (bytes(stored), bytes(stored[:len(GS1_HEAD) + 16])):
        with pytest.raises(LedgerCorrupt):
            siv.plain(altered)
        with pytest.raises(LedgerCorrupt):
            siv.plain_many([_reference(GS1_HEAD + b"1", len(GS1_HEAD)), altered])


def test_keys_of_no_scheme_are_refused() -> None:
    """A key whose first byte is no scheme's letter, or without a serial, is not encrypted."""
    siv = _siv_key()
    for key in (b"", b"?09506000134352ABC", GS1_HEAD):
        with pytest.raises(LedgerCorrupt):
            siv.stored(key)
        with pytest.raises(LedgerCorrupt):
            siv.stored_many([GS1_HEAD + b"1", key])


def test_code_keys_store_the_same_on_the_pure_path() -> None:
    """A tenant's stored keys with PHARMATRACE_PURE=1 (``AESSIV`` alone) are the compiled
    path's: a ledger written by one reads with the other."""
    keys = [Code(Scheme.GS1, "09506000134352", "ABCDEFGHIJKLMNOPQRST").key(),
            Code(Scheme.NMPA, "8123456", "7123456789012").key(),
            Code(Scheme.SSCC, "", "009506000100000017").key()]
    program = (
        "import sys\n"
        "from tracecore._speedups import load\n"
        "from tracecore.ledger.code_keys import CodeKeys\n"
        "assert load('_siv') is None\n"
        "keys = CodeKeys(b'secret', 'acme')\n"
        "stored = keys.stored_many(bytes.fromhex(a) for a in sys.argv[1:])\n"
        "print(' '.join(k.hex() for k in stored))\n"
    )
    result = subprocess.run([sys.executable, "-c", program, *(k.hex() for k in keys)],
                            env={**os.environ, PURE_ENV: "1"}, check=True, capture_output=True,
                            text=True)
    pure = [bytes.fromhex(h) for h in result.stdout.split()]
    compiled = CodeKeys(b"secret", "acme")
    assert compiled.stored_many(keys) == pure
    assert compiled.plain_many(pure) == keys
