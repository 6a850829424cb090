"""Minting HMAC-tagged serials, checking their tags, and the density limit that keeps them unguessable.

Layouts; the tag is HMAC-SHA256 under the signing key of scheme letter + product + untagged part:

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
from tracecore.codes import Code, Scheme
from tracecore.errors import DensityLimitReached, InvalidArgument, ParseError
from tracecore.mac import Mac

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford base32, uppercase: the GS1 serial alphabet."""
GS1_SERIAL_LENGTH = 20
MAX_KEY_ID = 1023
"""Key ids run from 1 to 1023: two base32 characters, with 0 never minted."""

_KEY_CHARS = 2
_GS1_RANDOM = 12
_GS1_TAG = 6
_NMPA_RANDOM = 8
_NMPA_CHECK = 10_000

# 256 % 32 == 0: byte % 32 picks each character with probability exactly 1/32.
_BASE32 = bytes(ALPHABET.encode("ascii")[b % 32] for b in range(256))
_BASE32_VALUES = {c: i for i, c in enumerate(ALPHABET)}
# Bytes 0..249 map 25 each to a digit; 250..255 would favour 0..5, so they are dropped.
_DECIMAL = bytes(48 + b % 10 for b in range(256))
_DECIMAL_DROPPED = bytes(range(250, 256))
_GS1_SERIAL = re.compile(f"[{ALPHABET}]{{{GS1_SERIAL_LENGTH}}}")

_CAPACITY = {
    Scheme.GS1: 32**_GS1_RANDOM // 10_000,
    Scheme.NMPA: 10**_NMPA_RANDOM // 20,
}


class Minter:
    """Mints serials for one (scheme, product, signing key); the key's HMAC set-up is in ``mac``."""

    __slots__ = ("_cut", "_head", "_mac", "_scheme")

    def __init__(self, scheme: Scheme, product: str, key_id: int, mac: Mac) -> None:
        if not 1 <= key_id <= MAX_KEY_ID:
            raise InvalidArgument(f"must be 1 to {MAX_KEY_ID}", field="key_id")
        if scheme is Scheme.GS1:
            try:
                gtin = gs1.normalize_gtin(product)
            except ParseError as error:
                raise InvalidArgument(error.reason, field="product") from None
            if gtin != product:
                raise InvalidArgument("must be the 14-digit GTIN", field="product")
            key_part = ALPHABET[key_id >> 5] + ALPHABET[key_id & 31]
        else:
            if not nmpa.is_drug_id(product):
                raise InvalidArgument("must be the 7-digit NMPA drug identifier", field="product")
            key_part = str(key_id % 10)
        prefix = (scheme.name[0] + product).encode("ascii")
        self._scheme = scheme
        self._mac = mac
        self._head = prefix + key_part.encode("ascii")
        self._cut = len(prefix)

    def __repr__(self) -> str:
        return f"Minter({self._scheme.name}, {self._head.decode('ascii')!r})"

    def mint(self, n: int) -> list[str]:
        """``n`` distinct serials: GS1 AI (21) serials, or NMPA 13-digit production identifiers."""
        if n < 0:
            raise InvalidArgument("must not be negative", field="count")
        head, cut = self._head, self._cut
        if self._scheme is Scheme.GS1:
            messages = [head + part for part in _distinct_random(n, _GS1_RANDOM, _BASE32, b"")]
            return [
                (message[cut:] + _gs1_tag(digest)).decode("ascii")
                for message, digest in zip(messages, self._mac.digests(messages), strict=True)
            ]
        parts = _distinct_random(n, _NMPA_RANDOM, _DECIMAL, _DECIMAL_DROPPED)
        messages = [head + part for part in parts]
        return [
            f"{message[cut:].decode('ascii')}{_nmpa_check(digest):04d}"
            for message, digest in zip(messages, self._mac.digests(messages), strict=True)
        ]


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
    if code.scheme is Scheme.GS1:
        return _gs1_key_id(code.serial)
    return _nmpa_key_digit(code.serial)


def check_tag(code: Code, macs: Mapping[int, Mac]) -> int | None:
    """The id of the key in ``macs`` that tagged this code, or None: forged, mistyped, foreign
    (not our layout), or tagged by a key not given (unknown or revoked)."""
    serial = code.serial
    if code.scheme is Scheme.GS1:
        key_id = _gs1_key_id(serial)
        mac = macs.get(key_id) if key_id is not None else None
        if mac is None:
            return None
        untagged = _KEY_CHARS + _GS1_RANDOM
        tag = _gs1_tag(mac.digest(b"G" + (code.product + serial[:untagged]).encode("ascii")))
        if compare_digest(tag, serial[untagged:].encode("ascii")):
            return key_id
        return None
    digit = _nmpa_key_digit(serial)
    if digit is None:
        return None
    untagged = 1 + _NMPA_RANDOM
    message = b"N" + (code.product + serial[:untagged]).encode("ascii")
    check = serial[untagged:].encode("ascii")
    for key_id, mac in macs.items():
        if key_id % 10 == digit:
            if compare_digest(b"%04d" % _nmpa_check(mac.digest(message)), check):
                return key_id
    return None


def check_tags(codes: Sequence[Code], macs: Mapping[int, Mac]) -> list[int | None]:
    """``check_tag`` of each code, in order."""
    return [check_tag(code, macs) for code in codes]


def _gs1_tag(digest: bytes) -> bytes:
    return digest[:_GS1_TAG].translate(_BASE32)


def _nmpa_check(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big") % _NMPA_CHECK


def _gs1_key_id(serial: str) -> int | None:
    if not _GS1_SERIAL.fullmatch(serial):
        return None
    return (_BASE32_VALUES[serial[0]] << 5 | _BASE32_VALUES[serial[1]]) or None


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
    """``size`` characters: CSPRNG bytes through ``table`` once ``dropped`` bytes are removed.

    With nothing dropped this is one ``urandom`` call; otherwise it draws a little more than the
    expected loss, so a second call is rare.
    """
    chars = b""
    while (short := size - len(chars)) > 0:
        chars += urandom(short + (short * len(dropped) >> 7)).translate(table, dropped)
    return chars[:size]
