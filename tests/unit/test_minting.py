"""Minting: serial layouts, HMAC tags under rotating keys, typo rejection and the density limit."""

from __future__ import annotations

import collections
import os
import random

import pytest

from tracecore import gs1, minting
from tracecore.codes import Code, Form, Scheme, parse, render
from tracecore.errors import DensityLimitReached, InvalidArgument, ParseError
from tracecore.mac import Mac
from tracecore.minting import (
    ALPHABET,
    Minter,
    capacity,
    check_density,
    check_tag,
    check_tags,
    key_id_of,
    remaining,
)

GTIN = "09501101530003"
DRUG = "8123456"
MAC_7 = Mac(b"\x07" * 32)
MAC_17 = Mac(b"\x11" * 32)
OTHER = Mac(b"\xee" * 32)
PRODUCTS = {Scheme.GS1: GTIN, Scheme.NMPA: DRUG}


@pytest.fixture(autouse=True)
def _seeded_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    # NMPA's 4 check digits pass a wrong key 1 time in 10,000 by design: with the minting
    # randomness seeded, every run checks the same codes and gets the same answer.
    monkeypatch.setattr(minting, "urandom", random.Random(2024).randbytes)


def _mint(scheme: Scheme, n: int, key_id: int = 7, mac: Mac = MAC_7) -> list[Code]:
    product = PRODUCTS[scheme]
    return [Code(scheme, product, s) for s in Minter(scheme, product, key_id, mac).mint(n)]


def test_gs1_serials_are_20_base32_characters_led_by_the_key_id() -> None:
    """Key id 7 is "07", then 12 random and 6 tag characters, all in Crockford base32."""
    for code in _mint(Scheme.GS1, 500):
        assert len(code.serial) == 20
        assert set(code.serial) <= set(ALPHABET)
        assert code.serial[:2] == "07"
        assert key_id_of(code) == 7


def test_gs1_key_ids_use_both_base32_characters() -> None:
    """Key id 1023 is "ZZ" and key id 33 is "11"."""
    assert _mint(Scheme.GS1, 1, 1023)[0].serial[:2] == "ZZ"
    assert _mint(Scheme.GS1, 1, 33)[0].serial[:2] == "11"


def test_nmpa_production_identifiers_are_13_digits_led_by_the_key_digit() -> None:
    """Key id 17 gives key digit 7, then 8 random and 4 check digits."""
    for code in _mint(Scheme.NMPA, 500, 17, MAC_17):
        assert len(code.serial) == 13 and code.serial.isdigit() and code.serial.isascii()
        assert code.serial[0] == "7"
        assert key_id_of(code) == 7


@pytest.mark.parametrize("scheme", list(PRODUCTS))
def test_a_batch_has_n_distinct_serials_that_all_pass_under_their_key(scheme: Scheme) -> None:
    """Every minted code carries the tag of the key that minted it."""
    codes = _mint(scheme, 2000)
    assert len({code.serial for code in codes}) == 2000
    assert check_tags(codes, {7: MAC_7}) == [7] * 2000


@pytest.mark.parametrize("scheme", list(PRODUCTS))
def test_codes_fail_under_another_secret_with_the_same_key_id(scheme: Scheme) -> None:
    """A tag made with one secret does not pass under another."""
    assert check_tags(_mint(scheme, 200), {7: OTHER}) == [None] * 200


@pytest.mark.parametrize("scheme", list(PRODUCTS))
def test_unknown_or_revoked_key_ids_give_none(scheme: Scheme) -> None:
    """Without the minting key among the keys given, no code is recognised."""
    codes = _mint(scheme, 50)
    assert check_tags(codes, {}) == [None] * 50
    assert check_tags(codes, {8: MAC_7, 9: MAC_7}) == [None] * 50


def test_nmpa_tries_every_key_ending_in_the_key_digit() -> None:
    """Key ids 7 and 17 share key digit 7: each code is matched to the key that minted it."""
    macs = {7: MAC_7, 17: MAC_17, 27: OTHER}
    assert check_tags(_mint(Scheme.NMPA, 50, 17, MAC_17), macs) == [17] * 50
    assert check_tags(_mint(Scheme.NMPA, 50, 7, MAC_7), macs) == [7] * 50


@pytest.mark.parametrize(
    "code",
    [Code(Scheme.GS1, GTIN, "ABC"), Code(Scheme.GS1, GTIN, "07" + "a" * 18),
     Code(Scheme.GS1, GTIN, "07" + "I" * 18), Code(Scheme.GS1, GTIN, "07" + "A" * 19),
     Code(Scheme.GS1, GTIN, "00" + "A" * 18), Code(Scheme.NMPA, DRUG, "712345678901"),
     Code(Scheme.NMPA, DRUG, "71234567890１2")],
    ids=["short", "lowercase", "letter-i", "21-chars", "key-id-0", "nmpa-12-digits",
         "nmpa-fullwidth"],
)
def test_serials_outside_our_layout_are_foreign(code: Code) -> None:
    """Another issuer's serials have no key id and never pass the tag check."""
    assert key_id_of(code) is None
    assert check_tag(code, {0: MAC_7, 7: MAC_7}) is None


def test_check_tags_matches_check_tag_on_a_mixed_batch() -> None:
    """The batch check gives, in order, what each single check gives."""
    macs = {7: MAC_7, 17: MAC_17}
    codes = [*_mint(Scheme.GS1, 20), *_mint(Scheme.NMPA, 20, 17, MAC_17),
             *_mint(Scheme.GS1, 20, 9, OTHER), Code(Scheme.GS1, GTIN, "FOREIGN")]
    random.Random(3).shuffle(codes)
    assert check_tags(codes, macs) == [check_tag(code, macs) for code in codes]


def test_check_tags_matches_check_tag_on_forged_and_foreign_gs1_codes() -> None:
    """A batch of GS1 codes only (genuine, tag forged, key unknown, serial outside our layout,
    non-ASCII) gets, in order, what each single check gives."""
    macs = {7: MAC_7, 17: MAC_17}
    genuine = _mint(Scheme.GS1, 20) + _mint(Scheme.GS1, 5, 17, MAC_17)
    forged = [Code(Scheme.GS1, GTIN, c.serial[:-1] + ("0" if c.serial[-1] != "0" else "1"))
              for c in genuine[:5]]
    lowered = [Code(Scheme.GS1, GTIN, c.serial[:14] + c.serial[14:].lower()) for c in genuine[:3]]
    foreign = [Code(Scheme.GS1, GTIN, s) for s in
               ("ABC", "07" + "I" * 18, "07" + "A" * 19, "00" + "A" * 18, "07" + "\u00e9" * 18,
                "07" + "\udc80" * 18)]
    codes = genuine + forged + lowered + foreign + _mint(Scheme.GS1, 5, 9, OTHER)
    random.Random(5).shuffle(codes)
    answers = check_tags(codes, macs)
    assert answers == [check_tag(code, macs) for code in codes]
    assert answers.count(7) == 20 and answers.count(17) == 5


def test_single_character_substitutions_are_rejected() -> None:
    """Thousands of one-character typos of minted codes fail to parse or fail the tag check."""
    rng = random.Random(2025)
    macs = {7: MAC_7}
    passed = collections.Counter[Scheme]()
    for scheme, alphabet in ((Scheme.GS1, gs1.CSET82), (Scheme.NMPA, "0123456789")):
        for code in _mint(scheme, 200):
            text = code.text()
            for _ in range(15):
                position = rng.randrange(len(text))
                char = rng.choice(alphabet.replace(text[position], ""))
                try:
                    typo = parse(text[:position] + char + text[position + 1:]).code
                except ParseError:
                    continue
                if check_tag(typo, macs) is not None:
                    passed[scheme] += 1
    # A 30-bit tag lets no GS1 typo through. NMPA's 4 check digits let a typo in the drug
    # identifier or random digits through 1 time in 10,000 by design (the ledger then has no
    # such code).
    assert passed[Scheme.GS1] == 0
    assert passed[Scheme.NMPA] <= 2


def test_minted_codes_round_trip_through_their_forms() -> None:
    """What the minter makes, render and parse keep."""
    for code in _mint(Scheme.GS1, 20):
        for form in (Form.HRI, Form.ELEMENT, Form.DIGITAL_LINK):
            assert parse(render(code, form)).code == code
    for code in _mint(Scheme.NMPA, 20):
        assert parse(render(code, Form.NMPA20)).code == code


def test_a_gs1_batch_draws_its_randomness_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """One os.urandom call of 12 bytes per code serves the whole batch."""
    sizes: list[int] = []

    def counting(size: int) -> bytes:
        sizes.append(size)
        return os.urandom(size)

    monkeypatch.setattr(minting, "urandom", counting)
    Minter(Scheme.GS1, GTIN, 7, MAC_7).mint(1000)
    assert sizes == [12_000]


def test_every_base32_character_is_equally_likely(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fed each byte value equally often, the random parts use each character equally often."""
    values = list(range(256)) * 3
    random.Random(1).shuffle(values)
    monkeypatch.setattr(minting, "urandom", lambda size: bytes(values[:size]))
    serials = Minter(Scheme.GS1, GTIN, 7, MAC_7).mint(64)
    counts = collections.Counter("".join(serial[2:14] for serial in serials))
    assert set(counts.values()) == {24}
    assert len(counts) == 32


def test_nmpa_drops_bytes_250_to_255_and_draws_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that would bias the digits are dropped; the batch is topped up from a new draw."""
    draws = iter([bytes([250, 251, 252, 253, 254, 255]) * 100, bytes(range(250)) * 10])
    monkeypatch.setattr(minting, "urandom", lambda size: next(draws)[:size])
    codes = _mint(Scheme.NMPA, 3)
    assert [code.serial[1:9] for code in codes] == ["01234567", "89012345", "67890123"]
    assert check_tags(codes, {7: MAC_7}) == [7, 7, 7]


def test_repeated_random_draws_are_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch never holds one serial twice, even when the random source repeats itself."""
    sizes: list[int] = []

    def zeros_first(size: int) -> bytes:
        sizes.append(size)
        return bytes(size) if len(sizes) == 1 else os.urandom(size)

    monkeypatch.setattr(minting, "urandom", zeros_first)
    serials = Minter(Scheme.NMPA, DRUG, 7, MAC_7).mint(4)
    assert len(set(serials)) == 4
    assert len(sizes) > 1


def test_minting_nothing_gives_nothing() -> None:
    """A batch of 0 is empty; a negative count is refused."""
    assert Minter(Scheme.GS1, GTIN, 7, MAC_7).mint(0) == []
    with pytest.raises(InvalidArgument):
        Minter(Scheme.GS1, GTIN, 7, MAC_7).mint(-1)


@pytest.mark.parametrize("key_id", [0, -1, 1024])
@pytest.mark.parametrize("scheme", list(PRODUCTS))
def test_key_ids_outside_1_to_1023_are_refused(scheme: Scheme, key_id: int) -> None:
    """Key ids run from 1 to 1023 in both schemes."""
    with pytest.raises(InvalidArgument) as raised:
        Minter(scheme, PRODUCTS[scheme], key_id, MAC_7)
    assert raised.value.field == "key_id"


@pytest.mark.parametrize(
    ("scheme", "product"),
    [(Scheme.GS1, "9501101530003"), (Scheme.GS1, "09501101530004"), (Scheme.GS1, "0950110153000a"),
     (Scheme.NMPA, "812345"), (Scheme.NMPA, "81234567"), (Scheme.NMPA, GTIN)],
)
def test_products_must_be_canonical_identifiers(scheme: Scheme, product: str) -> None:
    """A minter takes a valid GTIN-14 or a 7-digit drug identifier, nothing else."""
    with pytest.raises(InvalidArgument) as raised:
        Minter(scheme, product, 7, MAC_7)
    assert raised.value.field == "product"


def test_capacities_keep_guesses_far_below_the_eu_fmd_bound() -> None:
    """The module docstring's arithmetic: density and guess probability per product and key."""
    gs1_capacity, nmpa_capacity = capacity(Scheme.GS1), capacity(Scheme.NMPA)
    assert gs1_capacity == 32**12 // 10_000 == 115_292_150_460_684
    assert gs1_capacity / 32**12 <= 1e-4
    assert gs1_capacity / 32**18 < 1e-9
    assert nmpa_capacity == 5_000_000
    assert nmpa_capacity / 10**12 < 1e-5


@pytest.mark.parametrize("scheme", list(PRODUCTS))
def test_density_check_refuses_past_capacity_and_says_to_rotate_the_key(scheme: Scheme) -> None:
    """Codes up to the capacity are allowed; one more asks for a new signing key."""
    limit = capacity(scheme)
    check_density(scheme, limit - 10, 10)
    assert remaining(scheme, limit - 10) == 10
    with pytest.raises(DensityLimitReached, match="rotate the signing key"):
        check_density(scheme, limit - 10, 11)
    assert remaining(scheme, limit + 5) == 0
