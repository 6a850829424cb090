"""The compiled minting loops give exactly what their pure-Python references give."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import digit_strings, gtins
from tracecore._speedups import load
from tracecore.codes import Scheme
from tracecore.mac import Mac
from tracecore.minting import Minter
from tracecore.schemes import SCHEMES

compiled = load("minting")
pytestmark = pytest.mark.skipif(
    compiled is None, reason="the compiled extension is not built, or PHARMATRACE_PURE is set")

secrets = st.binary(min_size=0, max_size=100)


def _random_parts(scheme: Scheme, count: int) -> st.SearchStrategy[bytes]:
    """``count`` random parts of the scheme's width, in its alphabet, as one string."""
    width, table, dropped = SCHEMES[scheme].random
    alphabet = sorted(set(table.translate(None, dropped)))
    return st.lists(st.sampled_from(alphabet), min_size=count * width,
                    max_size=count * width).map(bytes)


@given(secret=secrets, message=st.binary(max_size=300))
def test_the_compiled_hmac_is_hmac_sha256(secret: bytes, message: bytes) -> None:
    """Any key length (longer than a block is hashed first) and any message length."""
    mac = Mac(secret).native
    assert mac is not None
    assert mac.digest(message) == hmac.digest(secret, message, "sha256")


@given(secret=secrets, product=gtins(), key_id=st.integers(1, 1023), data=st.data())
def test_gs1_keys_minted_in_one_call_equal_the_reference(
        secret: bytes, product: str, key_id: int, data: st.DataObject) -> None:
    """Same random parts, same keys: head, random part, base32 tag of the HMAC."""
    minter = Minter(Scheme.GS1, product, key_id, Mac(secret))
    chars = data.draw(_random_parts(Scheme.GS1, data.draw(st.integers(0, 40))))
    assert minter.tagged(chars) == minter.tagged_reference(chars)


@given(secret=secrets, product=digit_strings(7), key_id=st.integers(1, 1023),
       data=st.data())
def test_nmpa_keys_minted_in_one_call_equal_the_reference(
        secret: bytes, product: str, key_id: int, data: st.DataObject) -> None:
    """Same random digits, same keys: head, random part, 4 check digits of the HMAC."""
    minter = Minter(Scheme.NMPA, product, key_id, Mac(secret))
    chars = data.draw(_random_parts(Scheme.NMPA, data.draw(st.integers(0, 40))))
    assert minter.tagged(chars) == minter.tagged_reference(chars)


@pytest.mark.parametrize("scheme", [Scheme.GS1, Scheme.NMPA])
@given(data=st.data())
def test_a_random_part_drawn_twice_is_minted_once(scheme: Scheme, data: st.DataObject) -> None:
    """Parts repeated within one call: each first occurrence, in order, as the reference."""
    product = {Scheme.GS1: "09501101530003", Scheme.NMPA: "8123456"}[scheme]
    minter = Minter(scheme, product, 9, Mac(b"\x09" * 32))
    parts = data.draw(_random_parts(scheme, 3))
    width = SCHEMES[scheme].random[0]
    picks = data.draw(st.lists(st.integers(0, 2), max_size=20))
    chars = b"".join(parts[i * width:(i + 1) * width] for i in picks)
    keys = minter.tagged(chars)
    assert keys == minter.tagged_reference(chars)
    assert len(keys) == len(set(keys)) == len({parts[i * width:(i + 1) * width] for i in picks})


@given(secret=secrets, product=gtins(), count=st.integers(0, 30))
def test_serials_are_the_keys_past_the_product(secret: bytes, product: str, count: int) -> None:
    """``Minter.serials`` is the key after the product part, as text."""
    minter = Minter(Scheme.GS1, product, 1, Mac(secret))
    keys = minter.mint_keys(count)
    assert compiled.serials(keys, minter.cut) == [k[minter.cut:].decode() for k in keys]
