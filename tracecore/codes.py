"""Pack codes as pharmatrace sees them: one canonical Code per pack, read from any written form."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tracecore import gs1, nmpa
from tracecore.errors import InvalidArgument, ParseError

MAX_INPUT_LENGTH = 4096
"""Longer input is refused before it is looked at; every valid code is far shorter."""

# Scanners end their output with CR or LF; people paste with spaces. GS is data, so no str.strip().
_BLANKS = " \t\r\n"
# An AIM symbology identifier: "]", the symbology, a modifier.
_SYMBOLOGY_ID = re.compile(r"\][A-Za-z][0-9A-Za-z]")


class Scheme(enum.IntEnum):
    """The coding scheme of a pack code."""

    GS1 = 1
    NMPA = 2


_KEY_PREFIX = {Scheme.GS1: b"G", Scheme.NMPA: b"N"}
# Reading an enum member off its class is a descriptor call on Python 3.11: functions use these.
_GS1, _NMPA = Scheme.GS1, Scheme.NMPA


class Form(enum.StrEnum):
    """A written form of a code."""

    HRI = "hri"
    ELEMENT = "element"
    DIGITAL_LINK = "digital-link"
    NMPA20 = "nmpa20"
    EPC_URI = "epc-uri"


def product_key(scheme: Scheme, product: str) -> bytes:
    """The ledger key prefix shared by every code of one product: scheme letter + identifier."""
    return _KEY_PREFIX[scheme] + product.encode("ascii")


@dataclass(frozen=True, slots=True)
class Code:
    """The canonical identity of one pack.

    ``product`` is the GTIN-14 or the 7-digit NMPA drug identifier; ``serial`` the AI (21) serial
    or the 13-digit NMPA production identifier. The constructor trusts its arguments: codes come
    from ``parse``, ``Code.from_key`` or a ``Minter``'s serials.
    """

    scheme: Scheme
    product: str
    serial: str

    def key(self) -> bytes:
        """The ledger key: ``product_key(scheme, product)`` followed by the serial."""
        return _KEY_PREFIX[self.scheme] + (self.product + self.serial).encode("ascii")

    @classmethod
    def from_key(cls, key: bytes) -> Code:
        """The code whose ledger key is ``key``."""
        scheme, body = key[:1], key[1:]
        if body.isascii():
            text = body.decode("ascii")
            if scheme == b"G" and len(text) > 14:
                return cls(_GS1, text[:14], text[14:])
            if scheme == b"N" and len(text) == nmpa.CODE_DIGITS:
                return cls(_NMPA, text[:nmpa.DRUG_ID_DIGITS], text[nmpa.DRUG_ID_DIGITS:])
        raise InvalidArgument("not a code key", field="key")

    def text(self) -> str:
        """The canonical text: ``(01){gtin}(21){serial}``, or the 20 NMPA digits."""
        if self.scheme is _GS1:
            return f"(01){self.product}(21){gs1.escape_hri(self.serial)}"
        return self.product + self.serial


@dataclass(frozen=True, slots=True)
class Scan:
    """What one scanned or typed input said: the code, and the lot and expiry if it carried them."""

    code: Code
    lot: str | None = None
    expiry: str | None = None
    """YYMMDD exactly as written, day 00 included; see ``gs1.expiry_date``."""


def parse(text: str | bytes) -> Scan:
    """Read a code in any form; anything else raises ParseError with a reason, and nothing else.

    The first character tells the form: ``(`` HRI; ``]`` a symbology identifier (a GS1 one
    before an element string; any other is dropped and the rest read on); GS an element string;
    ``h`` a Digital Link; ``u`` an EPC URI. Text starting with a digit is an NMPA code when it is
    digits, spaces and dashes only, with 20 digits or a space (``nmpa.is_candidate``), else an
    element string: so a GS1 element string of exactly 20 digits needs its symbology identifier.
    Surrounding spaces, tabs, CR and LF are ignored.
    """
    if len(text) > MAX_INPUT_LENGTH:
        raise ParseError(f"input is longer than {MAX_INPUT_LENGTH} characters")
    if not isinstance(text, str):
        try:
            text = str(text, "utf-8")
        except UnicodeDecodeError:
            raise ParseError("input is not UTF-8 text") from None
    text = text.strip(_BLANKS)
    if not text:
        raise ParseError("input is empty")
    return _read(text)


def parse_many(texts: Iterable[str | bytes]) -> list[Scan | ParseError]:
    """``parse`` of each text, the ParseError in place of the Scan where it fails; never raises."""
    out: list[Scan | ParseError] = []
    append = out.append
    for text in texts:
        try:
            append(parse(text))
        except ParseError as error:
            # Keeping the traceback would keep every failed call's frames alive with the batch.
            append(error.with_traceback(None))
    return out


def render(
    scan: Scan | Code,
    form: Form,
    *,
    host: str = "https://id.gs1.org",
    company_prefix_length: int | None = None,
) -> str:
    """The code (with its lot and expiry, where the form carries them) written in ``form``.

    ``host`` is the Digital Link's scheme, host and optional path prefix; the EPC URI needs the
    GS1 company prefix length. The element string starts with ``]d2``.
    """
    if isinstance(scan, Code):
        scan = Scan(scan)
    code = scan.code
    if code.scheme is _NMPA:
        if form is not Form.NMPA20:
            raise InvalidArgument(f"an NMPA code has no {form} form", field="form")
        return nmpa.render(code.product, code.serial)
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


_NOT_A_CODE = ("not a code: expected GS1 HRI, element string or Digital Link, an EPC URI or an "
               "NMPA code")


def _read(text: str) -> Scan:
    canonical = gs1.parse_canonical(text)
    if canonical is not None:
        gtin, expiry, lot, serial = canonical
        return Scan(Code(_GS1, gtin, serial), lot, expiry)
    reader = _READERS.get(text[0])
    if reader is None:
        raise ParseError(_NOT_A_CODE)
    return reader(text)


def _gs1_scan(elements: dict[str, str]) -> Scan:
    gtin = elements.get("01")
    if gtin is None:
        raise ParseError("no GTIN (01)")
    serial = elements.get("21")
    if serial is None:
        raise ParseError("no serial (21)")
    return Scan(Code(_GS1, gtin, serial), elements.get("10"), elements.get("17"))


def _read_hri(text: str) -> Scan:
    return _gs1_scan(gs1.parse_hri(text))


def _read_element(text: str) -> Scan:
    return _gs1_scan(gs1.parse_element(text))


def _read_digital_link(text: str) -> Scan:
    if not text[:8].lower().startswith(("http://", "https://")):
        raise ParseError(_NOT_A_CODE)  # a word that merely starts with "h"
    return _gs1_scan(gs1.parse_digital_link(text))


def _read_epc_uri(text: str) -> Scan:
    gtin, serial = gs1.parse_epc_uri(text)
    return Scan(Code(_GS1, gtin, serial))


def _read_digits(text: str) -> Scan:
    if nmpa.is_candidate(text):
        drug_id, production_id = nmpa.parse(text)
        return Scan(Code(_NMPA, drug_id, production_id))
    return _gs1_scan(gs1.parse_element(text))


def _read_symbology(text: str) -> Scan:
    identifier = text[:3]
    if identifier in gs1.SYMBOLOGY_IDS:
        return _gs1_scan(gs1.parse_element(text))
    if not _SYMBOLOGY_ID.fullmatch(identifier):
        raise ParseError("']' must start a symbology identifier such as ]d2")
    rest = text[3:]
    # One identifier per input, which also bounds the recursion.
    if not rest or rest.startswith("]"):
        raise ParseError(f"no code after symbology identifier {identifier!r}")
    return _read(rest)


_READERS: dict[str, Callable[[str], Scan]] = {
    "(": _read_hri,
    "]": _read_symbology,
    gs1.GS: _read_element,
    "h": _read_digital_link,
    "H": _read_digital_link,
    "u": _read_epc_uri,
    "U": _read_epc_uri,
    **dict.fromkeys("0123456789", _read_digits),
}
