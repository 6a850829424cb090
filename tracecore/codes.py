"""Pack codes as pharmatrace sees them: one canonical Code per pack, read from any written form.

Each scheme (GS1, NMPA, and SSCC for logistic units) is one module of ``tracecore.schemes``
behind the ``CodeScheme`` interface; this module reads and writes through their registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from tracecore._speedups import load
from tracecore.errors import ParseError
from tracecore.schemes import (
    QUICK_READERS,
    READERS,
    SCHEMES,
    SYMBOLOGY_READERS,
    Code,
    Form,
    Scan,
    Scheme,
)
from tracecore.schemes.base import _KEY_PREFIX
from tracecore.schemes.gs1 import ALPHABET, SERIAL_LENGTH

__all__ = [
    "MAX_INPUT_LENGTH",
    "Code",
    "Form",
    "Scan",
    "Scheme",
    "parse",
    "parse_many",
    "parsed_codes",
    "product_key",
    "render",
]

_GS1 = Scheme.GS1
_ALPHABET = ALPHABET
_SERIAL_LENGTH = SERIAL_LENGTH

MAX_INPUT_LENGTH = 4096
"""Longer input is refused before it is looked at; every valid code is far shorter."""

# Scanners end their output with CR or LF; people paste with spaces. GS is data, so no str.strip().
_BLANKS = " \t\r\n"
# An AIM symbology identifier: "]", the symbology, a modifier.
_SYMBOLOGY_ID = re.compile(r"\][A-Za-z][0-9A-Za-z]")
# The registry's lookups, bound once: CPython compiles a method call on an imported name as an
# attribute load, which would build a bound method for every code read.
_quick_reader = QUICK_READERS.get
_reader = READERS.get
_symbology_reader = SYMBOLOGY_READERS.get
_codes = load("_codes")
_compiled_parse_many: Callable[..., list[Scan | ParseError]] | None = (
    _codes.parse_many if _codes is not None else None)
_compiled_parsed_codes: Callable[..., tuple[list[Scan], list[Code], list[bytes]]] | None = (
    _codes.parsed_codes if _codes is not None else None)


def product_key(scheme: Scheme, product: str) -> bytes:
    """The ledger key prefix shared by every code of one product: scheme letter + identifier."""
    return SCHEMES[scheme].key_letter + product.encode("ascii")


def parse(text: str | bytes) -> Scan:
    """Read a code in any form; anything else raises ParseError with a reason, and nothing else.

    The first character tells the form: ``(`` HRI; ``]`` a symbology identifier (a GS1 one
    before an element string; any other is dropped and the rest read on); GS an element string;
    ``h`` a Digital Link; ``u`` an EPC URI. Text starting with a digit is an SSCC when it is 18
    digits with a valid check digit, an NMPA code when it is digits, spaces and dashes only, with
    20 digits or a space (``nmpa.is_candidate``), else an element string: so a GS1 element
    string of exactly 20 digits (an SSCC's ``00`` + 18 digits too) needs its symbology
    identifier. ``(00)``, ``/00/`` and ``urn:epc:id:sscc:`` name an SSCC.
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


def parse_one(text: str | bytes) -> Scan:
    """``parse`` of a code checked on its own (a check page, a unary Verify), remembering the
    last text read and its (immutable) scan: the check page reads the code typed in to find
    its tenant, then its verification reads the same text again, which is then a comparison.
    Loops over many codes call ``parse``, which pays nothing for this."""
    last = _last_read
    if last is not None and text == last[0]:
        return last[1]
    scan = parse(text)
    _remember(text, scan)
    return scan


_last_read: tuple[str | bytes, Scan] | None = None


def _remember(text: str | bytes, scan: Scan) -> None:
    global _last_read
    _last_read = (text, scan)


def parse_many(texts: Iterable[str | bytes]) -> list[Scan | ParseError]:
    """``parse`` of each text, the ParseError in place of the Scan where it fails; never raises.

    The packs of one pallet differ only in their serials, which end each text as our labels lay
    it out. Once a text of our GS1 layout (serial of 20 characters of our alphabet, last in the
    text) has been read, the text before its serial is known: a later text with the same head
    and a tail of 20 characters of our alphabet reads as that head's product, lot and expiry
    with the tail as its serial, exactly as ``parse`` would read it (no other split of such a
    text fits a reader: no serial is longer than 20 characters, and the tail holds none of the
    characters that end a lot or start a query). Any other text is read by ``parse``.
    With the compiled extension this loop runs in C (``tracecore._speedups._codes``);
    ``_parse_many`` is its reference.
    """
    if type(texts) is list and len(texts) == 1:
        # One code verified: no head to share, and ``parse`` alone costs less than the loop's
        # set-up (2.2 against 3.0 µs).
        return [_parse_or_error(texts[0], parse_one)]
    if _compiled_parse_many is not None:
        return _compiled_parse_many(texts, parse, ParseError, Code, Scan, _GS1)
    return _parse_many(texts)


def parsed_codes(scans: list[Scan | ParseError]
                 ) -> tuple[list[Scan], list[Code], list[bytes]]:
    """Of ``parse_many``'s answers, the scans that parsed, their codes and each code's ledger key
    (``Code.key``), in order: one loop over a batch instead of one per list (in C with the
    compiled extension; ``parsed_codes_reference`` is the reference)."""
    if _compiled_parsed_codes is not None:
        return _compiled_parsed_codes(scans, ParseError, _KEY_PREFIX)
    return parsed_codes_reference(scans)


def parsed_codes_reference(scans: list[Scan | ParseError]
                           ) -> tuple[list[Scan], list[Code], list[bytes]]:
    parsed = [s for s in scans if not isinstance(s, ParseError)]
    codes = [s.code for s in parsed]
    return parsed, codes, Code.keys_of(codes)


def _parse_or_error(text: str | bytes, read: Callable[[str | bytes], Scan] = parse
                    ) -> Scan | ParseError:
    try:
        return read(text)
    except ParseError as error:
        # Keeping the traceback would keep the failed call's frames alive with the answers.
        return error.with_traceback(None)


def _parse_many(texts: Iterable[str | bytes]) -> list[Scan | ParseError]:
    out: list[Scan | ParseError] = []
    append = out.append
    heads: dict[str, Scan] = {}
    head_of = heads.get
    for text in texts:
        if type(text) is str:
            head = text[:-_SERIAL_LENGTH]
            known = head_of(head) if head else None
            if known is not None:
                serial = text[-_SERIAL_LENGTH:]
                if not serial.strip(_ALPHABET):
                    append(Scan(Code(_GS1, known.code.product, serial), known.lot, known.expiry))
                    continue
        scan = _parse_or_error(text)
        append(scan)
        if isinstance(scan, ParseError):
            continue
        serial = scan.code.serial
        if (scan.code.scheme is _GS1 and type(text) is str and len(serial) == _SERIAL_LENGTH
                and text.endswith(serial) and not serial.strip(_ALPHABET)):
            heads[text[:-_SERIAL_LENGTH]] = scan
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
    GS1 company prefix length. The element string starts with ``]d2``. A form the code's scheme
    does not have raises InvalidArgument.
    """
    if isinstance(scan, Code):
        scan = Scan(scan)
    return SCHEMES[scan.code.scheme].render(scan, form, host, company_prefix_length)


_NOT_A_CODE = ("not a code: expected GS1 HRI, element string or Digital Link, an EPC URI, an "
               "NMPA code or an SSCC")


def _read(text: str) -> Scan:
    first = text[0]
    quick = _quick_reader(first)
    if quick is not None:
        scan = quick(text)
        if scan is not None:
            return scan
    if first == "]":
        return _read_symbology(text)
    reader = _reader(first)
    scan = reader(text) if reader is not None else None
    if scan is None:
        raise ParseError(_NOT_A_CODE)
    return scan


def _read_symbology(text: str) -> Scan:
    identifier = text[:3]
    reader = _symbology_reader(identifier)
    if reader is not None:
        scan = reader(text)
        if scan is None:
            raise ParseError(_NOT_A_CODE)
        return scan
    if not _SYMBOLOGY_ID.fullmatch(identifier):
        raise ParseError("']' must start a symbology identifier such as ]d2")
    rest = text[3:]
    # One identifier per input, which also bounds the recursion.
    if not rest or rest.startswith("]"):
        raise ParseError(f"no code after symbology identifier {identifier!r}")
    return _read(rest)
