"""The GS1 pack code (EU FMD, US DSCSA): GTIN-14 and a serial in AI (21).

Our serial is 20 characters of Crockford base32 (``0-9A-Z`` without I, L, O, U): key id (2
characters, 1 to 1023), random part (12 characters, 60 bits), tag (6 characters, 30 bits): the
first 6 bytes of HMAC-SHA256 of the ledger key before the tag, each byte % 32.

Density limit, per product and key; EU FMD asks that a guess succeed with probability < 1e-4:
at most 1e-4 × 32^12 ≈ 1.15e14 codes, so at most one random part in 10,000 is taken, and a
20-character guess under a known GTIN and key id must also carry the 30-bit tag:
p ≤ 1e-4 × 32^-6 ≈ 9.3e-14, far below 1e-9.

The written forms (HRI, element string, Digital Link, EPC URI) are read and written by
``tracecore.gs1``; this module says which of them is a pack code and how ours are laid out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from hmac import compare_digest
from typing import TYPE_CHECKING, ClassVar

from tracecore import gs1
from tracecore._speedups import load
from tracecore.errors import InvalidArgument, ParseError
from tracecore.mac import Mac
from tracecore.schemes.base import Code, CodeScheme, Form, Reader, Scan, Scheme

if TYPE_CHECKING:
    from tracecore._speedups._hmac import HmacKey

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford base32, uppercase: the alphabet of our serials."""
SERIAL_LENGTH = 20
MAX_KEY_ID = 1023
"""Key ids run from 1 to 1023: two base32 characters, with 0 never minted."""

_RANDOM = 12
_TAG = 6
_GTIN_DIGITS = 14
# 256 % 32 == 0: byte % 32 picks each character with probability exactly 1/32.
_BASE32 = bytes(ALPHABET.encode("ascii")[b % 32] for b in range(256))
_SERIAL = re.compile(f"[{ALPHABET}]{{{SERIAL_LENGTH}}}")
# Reading an enum member off its class is a descriptor call on Python 3.11: functions use this.
_GS1 = Scheme.GS1
_tags = load("_tags")
_compiled_check_tags: Callable[[Sequence[Code], dict[int, HmacKey]], list[int | None]] | None = (
    _tags.gs1_check_tags if _tags is not None else None)


def _key_chars(key_id: int) -> str:
    return ALPHABET[key_id >> 5] + ALPHABET[key_id & 31]


# "00" is absent: key id 0 is never minted, so such a serial is not ours.
_KEY_IDS = {_key_chars(key_id): key_id for key_id in range(1, MAX_KEY_ID + 1)}


def _tag(digest: bytes) -> bytes:
    return digest[:_TAG].translate(_BASE32)


def _key_id(serial: str) -> int | None:
    return _KEY_IDS.get(serial[:2]) if _SERIAL.fullmatch(serial) else None


def _scan(elements: dict[str, str]) -> Scan:
    gtin = elements.get("01")
    if gtin is None:
        raise ParseError("no GTIN (01)")
    serial = elements.get("21")
    if serial is None:
        raise ParseError("no serial (21)")
    return Scan(Code(_GS1, gtin, serial), elements.get("10"), elements.get("17"))


def _canonical_reader(pattern: re.Pattern[str]) -> Reader:
    """A reader of one layout our labels print (``gs1.CANONICAL_LAYOUTS``): one regular
    expression, then the checks it leaves; None for any other text."""
    fullmatch, check = pattern.fullmatch, gs1.check_canonical

    def read(text: str) -> Scan | None:
        match = fullmatch(text)
        if match is None:
            return None
        gtin, expiry, lot, serial = match.group("gtin", "expiry", "lot", "serial")
        check(gtin, expiry)
        return Scan(Code(_GS1, gtin, serial), lot, expiry)

    return read


def _read_hri(text: str) -> Scan:
    return _scan(gs1.parse_hri(text))


def _read_element(text: str) -> Scan:
    return _scan(gs1.parse_element(text))


def _read_digital_link(text: str) -> Scan | None:
    if not text[:8].lower().startswith(("http://", "https://")):
        return None  # a word that merely starts with "h"
    return _scan(gs1.parse_digital_link(text))


def _read_epc_uri(text: str) -> Scan:
    gtin, serial = gs1.parse_epc_uri(text)
    return Scan(Code(_GS1, gtin, serial))


def _check_tag(code: Code, macs: Mapping[int, Mac]) -> int | None:
    key_id = _key_id(code.serial)
    mac = macs.get(key_id) if key_id is not None else None
    if mac is None:
        return None
    key = code.key()
    tag = _tag(mac.digest(key[:-_TAG]))
    return key_id if compare_digest(tag, key[-_TAG:]) else None


def check_tags(codes: Sequence[Code], macs: Mapping[int, Mac],
               native: dict[int, HmacKey] | None = None) -> list[int | None]:
    """``_check_tag`` of each GS1 code, in order: the loop of a pallet's worth of scans.

    Per code it costs one HMAC and a few dict and string operations. The serial's alphabet is
    checked only where the tag matched: a serial outside it was never minted, so its tag fails
    anyway, and the check after a match keeps the answer exactly that of ``_check_tag``.
    With the compiled extension the same loop runs in C (``tracecore._speedups._tags``);
    ``_check_tags`` is its reference. ``native``: the compiled keys of ``macs`` where the caller
    keeps them (``KeyRing.native_macs``), else they are gathered here.
    """
    if _compiled_check_tags is not None:
        if native is None:
            native = {key_id: mac.native for key_id, mac in macs.items()
                      if mac.native is not None}
        if len(native) == len(macs):
            return _compiled_check_tags(codes, native)
    return _check_tags(codes, macs)


def _check_tags(codes: Sequence[Code], macs: Mapping[int, Mac]) -> list[int | None]:
    states = {key_id: mac.states() for key_id, mac in macs.items()}
    state_of = states.get
    key_ids = _KEY_IDS.get
    fullmatch = _SERIAL.fullmatch
    out: list[int | None] = []
    append = out.append
    for code in codes:
        serial = code.serial
        key_id = (key_ids(serial[:2]) if len(serial) == SERIAL_LENGTH and serial.isascii()
                  else None)
        state = state_of(key_id) if key_id is not None else None
        if state is None:
            append(None)
            continue
        inner, outer = state[0].copy(), state[1].copy()
        inner.update(f"G{code.product}{serial[:-_TAG]}".encode("ascii"))
        outer.update(inner.digest())
        tag = outer.digest()[:_TAG].translate(_BASE32)
        append(key_id if compare_digest(tag, serial[-_TAG:].encode())
               and fullmatch(serial) else None)
    return out


class Gs1Scheme(CodeScheme):
    """GTIN-14 + AI (21) serial; ledger keys ``G`` + GTIN + serial."""

    scheme = Scheme.GS1
    key_letter = b"G"
    product_length = _GTIN_DIGITS
    readers: ClassVar[Mapping[str, Reader]] = {
        "(": _read_hri,
        gs1.GS: _read_element,
        "h": _read_digital_link,
        "H": _read_digital_link,
        "u": _read_epc_uri,
        "U": _read_epc_uri,
        # An element string may start without FNC1 or symbology identifier.
        **dict.fromkeys("0123456789", _read_element),
    }
    quick_readers: ClassVar[Mapping[str, Reader]] = {
        first: _canonical_reader(pattern) for first, pattern in gs1.CANONICAL_LAYOUTS.items()}
    symbologies: ClassVar[Mapping[str, Reader]] = dict.fromkeys(gs1.SYMBOLOGY_IDS, _read_element)
    capacity = 32**_RANDOM // 10_000
    random = (_RANDOM, _BASE32, b"")
    check_tag = staticmethod(_check_tag)
    tag = staticmethod(_tag)
    tag_layout = (_BASE32, _TAG)

    def split_key(self, body: str) -> tuple[str, str] | None:
        if len(body) > _GTIN_DIGITS:
            return body[:_GTIN_DIGITS], body[_GTIN_DIGITS:]
        return None

    def text(self, code: Code) -> str:
        return f"(01){code.product}(21){gs1.escape_hri(code.serial)}"

    def render(self, scan: Scan, form: Form, host: str,
               company_prefix_length: int | None) -> str:
        code = scan.code
        if form is Form.EPC_URI:
            if company_prefix_length is None:
                raise InvalidArgument("required for an EPC URI", field="company_prefix_length")
            return gs1.render_epc_uri(code.product, code.serial, company_prefix_length)
        elements = {"01": code.product}
        if scan.expiry is not None:
            elements["17"] = scan.expiry
        if scan.lot is not None:
            elements["10"] = scan.lot
        elements["21"] = code.serial
        if form is Form.HRI:
            return gs1.render_hri(elements)
        if form is Form.ELEMENT:
            return gs1.render_element(elements)
        if form is Form.DIGITAL_LINK:
            return gs1.render_digital_link(elements, host)
        raise InvalidArgument(f"a GS1 code has no {form} form", field="form")

    def check_product(self, product: str) -> None:
        try:
            gtin = gs1.normalize_gtin(product)
        except ParseError as error:
            raise InvalidArgument(error.reason, field="product") from None
        if gtin != product:
            raise InvalidArgument("must be the 14-digit GTIN", field="product")

    def key_part(self, key_id: int) -> str:
        return _key_chars(key_id)

    def key_id_of(self, serial: str) -> int | None:
        return _key_id(serial)


SCHEME = Gs1Scheme()
