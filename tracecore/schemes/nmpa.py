"""The China NMPA drug traceability code (药品追溯码): 20 digits, the 7-digit drug identifier and
the 13-digit production identifier.

Our production identifier: key digit (key id % 10), random part (8 digits), check digits (4):
the first 8 bytes of HMAC-SHA256 of the ledger key before them, big-endian, modulo 10,000.

Density limit, per product and key digit: at most 0.05 × 10^8 = 5,000,000 codes; a guess must
hit one of them among the 10^12 random-and-check values of its key digit:
p ≤ 5e6 / 1e12 = 5e-6 < 1e-5. Keys whose ids end in the same digit share that space, so their
counts add up (``density_slot``).

The written form is read and written by ``tracecore.nmpa``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from hmac import compare_digest
from typing import TYPE_CHECKING, ClassVar

from tracecore import nmpa
from tracecore._speedups import load
from tracecore.errors import InvalidArgument
from tracecore.mac import Mac
from tracecore.schemes.base import Code, CodeScheme, Form, Reader, Scan, Scheme

if TYPE_CHECKING:
    from tracecore._speedups._hmac import HmacKey

_RANDOM = 8
_CHECK_DIGITS = 4
_CHECK_MODULUS: int = 10**_CHECK_DIGITS
# Bytes 0..249 map 25 each to a digit; 250..255 would favour 0..5, so they are dropped.
_DECIMAL = bytes(48 + b % 10 for b in range(256))
_DECIMAL_DROPPED = bytes(range(250, 256))
_NMPA = Scheme.NMPA
_tags = load("_tags")
_compiled_check_tag: Callable[[Code, Iterable[tuple[int, HmacKey]]], int | None] | None = (
    _tags.nmpa_check_tag if _tags is not None else None)


def _check(digest: bytes) -> bytes:
    return b"%04d" % (int.from_bytes(digest[:8], "big") % _CHECK_MODULUS)


def _key_digit(serial: str) -> int | None:
    if len(serial) == nmpa.PRODUCTION_ID_DIGITS and serial.isdigit() and serial.isascii():
        return ord(serial[0]) - 48
    return None


def _read_digits(text: str) -> Scan | None:
    if not nmpa.is_candidate(text):
        return None  # digits that are not an NMPA code: a GS1 element string, say
    drug_id, production_id = nmpa.parse(text)
    return Scan(Code(_NMPA, drug_id, production_id))


def _check_tag(code: Code, macs: Mapping[int, Mac]) -> int | None:
    """Tried under every key whose id ends in the code's key digit: in C with the compiled
    extension, else by ``_check_tag_pure``, its reference."""
    if _compiled_check_tag is not None:
        native = [(key_id, mac.native) for key_id, mac in macs.items() if mac.native is not None]
        if len(native) == len(macs):
            return _compiled_check_tag(code, native)
    return _check_tag_pure(code, macs)


def _check_tag_pure(code: Code, macs: Mapping[int, Mac]) -> int | None:
    digit = _key_digit(code.serial)
    if digit is None:
        return None
    key = code.key()
    message, check = key[:-_CHECK_DIGITS], key[-_CHECK_DIGITS:]
    for key_id, mac in macs.items():
        if key_id % 10 == digit and compare_digest(_check(mac.digest(message)), check):
            return key_id
    return None


class NmpaScheme(CodeScheme):
    """Drug identifier + production identifier; ledger keys ``N`` + the 20 digits."""

    scheme = Scheme.NMPA
    key_letter = b"N"
    product_length = nmpa.DRUG_ID_DIGITS
    readers: ClassVar[Mapping[str, Reader]] = dict.fromkeys("0123456789", _read_digits)
    capacity = 10**_RANDOM // 20
    random = (_RANDOM, _DECIMAL, _DECIMAL_DROPPED)
    check_tag = staticmethod(_check_tag)
    tag = staticmethod(_check)
    tag_layout = (b"", _CHECK_DIGITS)

    def split_key(self, body: str) -> tuple[str, str] | None:
        if len(body) == nmpa.CODE_DIGITS:
            return body[:nmpa.DRUG_ID_DIGITS], body[nmpa.DRUG_ID_DIGITS:]
        return None

    def text(self, code: Code) -> str:
        return code.product + code.serial

    def render(self, scan: Scan, form: Form, host: str,
               company_prefix_length: int | None) -> str:
        if form is not Form.NMPA20:
            raise InvalidArgument(f"an NMPA code has no {form} form", field="form")
        return nmpa.render(scan.code.product, scan.code.serial)

    def check_product(self, product: str) -> None:
        if not nmpa.is_drug_id(product):
            raise InvalidArgument("must be the 7-digit NMPA drug identifier", field="product")

    def key_part(self, key_id: int) -> str:
        return str(key_id % 10)

    def key_id_of(self, serial: str) -> int | None:
        return _key_digit(serial)

    def density_slot(self, key_id: int) -> int:
        # The code carries only the key id's last digit.
        return key_id % 10


SCHEME = NmpaScheme()
