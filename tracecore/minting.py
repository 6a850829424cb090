"""Minting HMAC-tagged serials, checking their tags, and the density limit that keeps them safe.

The tag is HMAC-SHA256, under the signing key, of the code's ledger key up to the tag (scheme
letter, product, untagged part of the serial):

- GS1 serial, 20 characters of Crockford base32 (``0-9A-Z`` without I, L, O, U): key id (2
  characters, 1 to 1023), random part (12 characters, 60 bits), tag (6 characters, 30 bits).
- NMPA production identifier, 13 digits: key digit (key id % 10), random part (8 digits),
  check digits (4): the first 8 bytes of the HMAC, big-endian, modulo 10,000.

Density limit, per product and key; EU FMD asks that a guess succeed with probability < 1e-4:

- GS1: at most 1e-4 × 32^12 ≈ 1.15e14 codes, so at most one random part in 10,000 is taken,
  and a 20-character guess under a known GTIN and key id must also carry the 30-bit tag:
  p ≤ 1e-4 × 32^-6 ≈ 9.3e-14, far below 1e-9.
- NMPA: at most 0.05 × 10^8 = 5,000,000 codes; a guess must hit one of them among the 10^12
  random-and-check values of its key digit: p ≤ 5e6 / 1e12 = 5e-6 < 1e-5. Keys whose ids end in
  the same digit share that space, so their counts add up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from hmac import compare_digest
from os import urandom

from tracecore import gs1, nmpa
from tracecore.codes import Code, Scheme, product_key
from tracecore.errors import DensityLimitReached, InvalidArgument, ParseError
from tracecore.mac import Mac

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford base32, uppercase: the GS1 serial alphabet."""
GS1_SERIAL_LENGTH = 20
MAX_KEY_ID = 1023
"""Key ids run from 1 to 1023: two base32 characters, with 0 never minted."""

_GS1_RANDOM = 12
_GS1_TAG = 6
_NMPA_RANDOM = 8
_NMPA_CHECK_DIGITS = 4
_NMPA_CHECK_MODULUS: int = 10**_NMPA_CHECK_DIGITS

# 256 % 32 == 0: byte % 32 picks each character with probability exactly 1/32.
_BASE32 = bytes(ALPHABET.encode("ascii")[b % 32] for b in range(256))
# Bytes 0..249 map 25 each to a digit; 250..255 would favour 0..5, so they are dropped.
_DECIMAL = bytes(48 + b % 10 for b in range(256))
_DECIMAL_DROPPED = bytes(range(250, 256))
_GS1_SERIAL = re.compile(f"[{ALPHABET}]{{{GS1_SERIAL_LENGTH}}}")

# Reading an enum member off its class is a descriptor call on Python 3.11: functions use this.
_GS1 = Scheme.GS1
_CAPACITY: dict[Scheme, int] = {
    Scheme.GS1: 32**_GS1_RANDOM // 10_000,
    Scheme.NMPA: 10**_NMPA_RANDOM // 20,
}


def _key_chars(key_id: int) -> str:
    return ALPHABET[key_id >> 5] + ALPHABET[key_id & 31]


# "00" is absent: key id 0 is never minted, so such a serial is not ours.
_KEY_IDS = {_key_chars(key_id): key_id for key_id in range(1, MAX_KEY_ID + 1)}


class Minter:
    """Mints serials for one (scheme, product, signing key); the key's HMAC set-up is in ``mac``."""

    __slots__ = ("_cut", "_draw", "_head", "_mac", "_tag")

    def __init__(self, scheme: Scheme, product: str, key_id: int, mac: Mac) -> None:
        if not 1 <= key_id <= MAX_KEY_ID:
            raise InvalidArgument(f"must be 1 to {MAX_KEY_ID}", field="key_id")
        if scheme is _GS1:
            try:
                gtin = gs1.normalize_gtin(product)
            except ParseError as error:
                raise InvalidArgument(error.reason, field="product") from None
            if gtin != product:
                raise InvalidArgument("must be the 14-digit GTIN", field="product")
            key_part = _key_chars(key_id)
            self._draw = (_GS1_RANDOM, _BASE32, b"")
            self._tag = _gs1_tag
        else:
            if not nmpa.is_drug_id(product):
                raise InvalidArgument("must be the 7-digit NMPA drug identifier", field="product")
            key_part = str(key_id % 10)
            self._draw = (_NMPA_RANDOM, _DECIMAL, _DECIMAL_DROPPED)
            self._tag = _nmpa_check
        prefix = product_key(scheme, product)
        self._head = prefix + key_part.encode("ascii")
        self._cut = len(prefix)
        self._mac = mac

    def __repr__(self) -> str:
        return f"Minter({self._head.decode('ascii')!r})"

    def mint(self, n: int) -> list[str]:
        """``n`` distinct serials: GS1 AI (21) serials, or NMPA 13-digit production identifiers."""
        if n < 0:
            raise InvalidArgument("must not be negative", field="count")
        head, cut, tag = self._head, self._cut, self._tag
        messages = [head + part for part in _distinct_random(n, *self._draw)]
        return [
            (message[cut:] + tag(digest)).decode("ascii")
            for message, digest in zip(messages, self._mac.digests(messages), strict=True)
        ]


def density_slot(scheme: Scheme, key_id: int) -> int:
    """Which random space a key mints into: NMPA keys whose ids share a last digit share one
    (the code carries only that digit), so their codes count against one density limit."""
    return key_id if scheme is _GS1 else key_id % 10


def capacity(scheme: Scheme) -> int:
    """How many codes one product may have under one signing key: the density limit."""
    return _CAPACITY[scheme]


def remaining(scheme: Scheme, issued: int) -> int:
    """How many more codes fit under the density limit when ``issued`` are out already."""
    return max(_CAPACITY[scheme] - issued, 0)


def check_density(scheme: Scheme, issued: int, n: int) -> None:
    """Raise DensityLimitReached unless ``n`` more codes fit beside ``issued`` under one key."""
    if n > remaining(scheme, issued):
        raise DensityLimitReached(
            f"{n:,} more codes would pass the density limit of {_CAPACITY[scheme]:,} "
            f"{scheme.name} codes per product and signing key ({issued:,} issued): "
            "rotate the signing key",
            field="count",
        )


def key_id_of(code: Code) -> int | None:
    """The GS1 serial's key id, or the NMPA key digit; None if the serial is not in our layout."""
    if code.scheme is _GS1:
        return _gs1_key_id(code.serial)
    return _nmpa_key_digit(code.serial)


def check_tag(code: Code, macs: Mapping[int, Mac]) -> int | None:
    """The id of the key in ``macs`` whose tag the code carries, else None.

    None covers a forged or mistyped code, a serial not in our layout (another issuer's), and
    a key not in ``macs`` (unknown or revoked). An NMPA code is tried under every key in
    ``macs`` whose id ends in its key digit.
    """
    if code.scheme is _GS1:
        key_id = _gs1_key_id(code.serial)
        mac = macs.get(key_id) if key_id is not None else None
        if mac is None:
            return None
        key = code.key()
        tag = _gs1_tag(mac.digest(key[:-_GS1_TAG]))
        return key_id if compare_digest(tag, key[-_GS1_TAG:]) else None
    digit = _nmpa_key_digit(code.serial)
    if digit is None:
        return None
    key = code.key()
    message, check = key[:-_NMPA_CHECK_DIGITS], key[-_NMPA_CHECK_DIGITS:]
    for key_id, mac in macs.items():
        if key_id % 10 == digit and compare_digest(_nmpa_check(mac.digest(message)), check):
            return key_id
    return None


def check_tags(codes: Sequence[Code], macs: Mapping[int, Mac]) -> list[int | None]:
    """``check_tag`` of each code, in order."""
    return [check_tag(code, macs) for code in codes]


def _gs1_tag(digest: bytes) -> bytes:
    return digest[:_GS1_TAG].translate(_BASE32)


def _nmpa_check(digest: bytes) -> bytes:
    return b"%04d" % (int.from_bytes(digest[:8], "big") % _NMPA_CHECK_MODULUS)


def _gs1_key_id(serial: str) -> int | None:
    return _KEY_IDS.get(serial[:2]) if _GS1_SERIAL.fullmatch(serial) else None


def _nmpa_key_digit(serial: str) -> int | None:
    if len(serial) == nmpa.PRODUCTION_ID_DIGITS and serial.isdigit() and serial.isascii():
        return ord(serial[0]) - 48
    return None


def _distinct_random(n: int, width: int, table: bytes, dropped: bytes) -> list[bytes]:
    """``n`` distinct strings of ``width`` random characters, from ``_random_chars``."""
    found: dict[bytes, None] = {}
    while (missing := n - len(found)) > 0:
        chars = _random_chars(missing * width, table, dropped)
        found.update(dict.fromkeys(chars[i:i + width] for i in range(0, len(chars), width)))
    return list(found)


def _random_chars(size: int, table: bytes, dropped: bytes) -> bytes:
    """``size`` characters: CSPRNG bytes through ``table``, with the ``dropped`` bytes removed.

    With nothing dropped this is one ``urandom`` call; otherwise it draws a little more than the
    expected loss, so that a second call is rare.
    """
    chars = b""
    while (short := size - len(chars)) > 0:
        chars += urandom(short + (short * len(dropped) >> 7)).translate(table, dropped)
    return chars[:size]
