"""GS1 syntax: GTINs, AI values, and the HRI, element string, Digital Link and EPC URI forms."""

from __future__ import annotations

import calendar
import datetime
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tracecore import gs1_compression
from tracecore.errors import InvalidArgument, ParseError

GS = "\x1d"
"""Group separator: how a scanner transmits an FNC1 that ends a variable-length field."""

CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""GS1 AI encodable character set 82: the characters allowed in lots and serials."""

SYMBOLOGY_IDS = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})
"""Symbology identifiers of GS1 data: GS1-128, GS1 DataMatrix, GS1 QR, GS1 DataBar, GS1 DotCode."""

GTIN_LENGTHS = (8, 12, 13, 14)

_CSET82_CLASS = r"!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z"
# YYMMDD with the days each month can have (00 is the month's last day); whether February 29
# exists depends on the year, which _check_leap_day settles.
_YYMMDD = (r"[0-9]{2}(?:(?:0[13578]|1[02])(?:[0-2][0-9]|3[01])"
           r"|(?:0[469]|11)(?:[0-2][0-9]|30)|02[0-2][0-9])")


class AiKind(enum.Enum):
    """What an application identifier's value is."""

    GTIN = "14 digits with a check digit"
    DATE = "YYMMDD"
    TEXT = "1 to n characters of set 82"


@dataclass(frozen=True, slots=True)
class AiSpec:
    """One application identifier: its digits, a title for messages, its kind and its length."""

    ai: str
    title: str
    kind: AiKind
    length: int
    """Of the value: exact for GTIN and DATE, the maximum for TEXT."""
    fixed: bool = field(init=False)
    """Whether the length is predefined, so that no separator follows the value."""
    pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pattern = {
            AiKind.GTIN: "[0-9]{14}",
            AiKind.DATE: _YYMMDD,
            AiKind.TEXT: f"[{_CSET82_CLASS}]{{1,{self.length}}}",
        }[self.kind]
        object.__setattr__(self, "fixed", self.kind is not AiKind.TEXT)
        object.__setattr__(self, "pattern", re.compile(pattern))

    @property
    def label(self) -> str:
        """How messages name the AI, e.g. "serial (21)"."""
        return f"{self.title} ({self.ai})"


_AIS = {spec.ai: spec for spec in (
    AiSpec("01", "GTIN", AiKind.GTIN, 14),
    AiSpec("10", "batch/lot", AiKind.TEXT, 20),
    AiSpec("11", "production date", AiKind.DATE, 6),
    AiSpec("15", "best before date", AiKind.DATE, 6),
    AiSpec("17", "expiry date", AiKind.DATE, 6),
    AiSpec("21", "serial", AiKind.TEXT, 20),
    AiSpec("22", "consumer product variant", AiKind.TEXT, 20),
    # National healthcare reimbursement numbers, printed on many EU FMD packs beside (21).
    *(AiSpec(f"71{n}", "national reimbursement number", AiKind.TEXT, 20) for n in range(6)),
)}
AIS: Mapping[str, AiSpec] = MappingProxyType(_AIS)
"""The application identifiers this module reads and writes; any other AI is a ParseError."""

# Digital Link key qualifiers of (01), in the order the path must give them.
_DL_QUALIFIERS = {"22": 0, "10": 1, "21": 2}
_DL_PATH_AIS = frozenset({"01", *_DL_QUALIFIERS})

_DIGITS = re.compile(r"[0-9]+")
_CSET82_CHARS = frozenset(CSET82)

# A bracketed element: "(" AI ")" then the value up to the next "(" that opens an AI. A "(" in
# data is written "\(" (the GS1 Barcode Syntax Engine's escape); a bare "(" not followed by
# digits and ")" is data too, since printed HRI shows no escapes.
_HRI_ELEMENT = re.compile(r"\(([0-9]{2,4})\)((?:[^(\\]++|\\\(|\((?![0-9]{2,4}\)))*+)")

_DL_URI = re.compile(r"(?i:https?)://[^/?#\s]+(/[^?#\s]*)(?:\?([^#\s]*))?(?:#\S*)?")
_DL_HOST = re.compile(r"(?i:https?)://[^/?#\s]+(?:/[^?#\s]*)?")
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PERCENT_TEXT = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*+")

# The layouts render_hri, render_element and render_digital_link write for (01)(17)(10)(21),
# which is what our own labels carry: one regular expression reads each. Each one matches only
# text the general parsers read the same way ("(" and percent escapes are left to them).
_HRI_VALUE = r"[!\"%&')*+,\-./0-9:;<=>?A-Z_a-z]{1,20}"
_URI_VALUE = r"[\-.0-9A-Z_a-z]{1,20}"
_ELEMENT_VALUE = f"[{_CSET82_CLASS}]{{1,20}}"
_CANONICAL_HRI = re.compile(
    rf"\(01\)(?P<gtin>[0-9]{{14}})(?:\(17\)(?P<expiry>{_YYMMDD}))?"
    rf"(?:\(10\)(?P<lot>{_HRI_VALUE}))?\(21\)(?P<serial>{_HRI_VALUE})"
)
_CANONICAL_ELEMENT = re.compile(
    rf"(?:\]C1|\]d2|\]Q3|\]e0|\]J1)?\x1d?01(?P<gtin>[0-9]{{14}})(?:17(?P<expiry>{_YYMMDD}))?"
    rf"(?:10(?P<lot>{_ELEMENT_VALUE})\x1d)?21(?P<serial>{_ELEMENT_VALUE})"
)
_CANONICAL_DIGITAL_LINK = re.compile(
    rf"(?i:https?)://[^/?#\s]+(?:/[^/?#\s]*)*?/01/(?P<gtin>[0-9]{{14}})"
    rf"(?:/10/(?P<lot>{_URI_VALUE}))?/21/(?P<serial>{_URI_VALUE})/?(?:\?17=(?P<expiry>{_YYMMDD}))?"
)
CANONICAL_LAYOUTS: Mapping[str, re.Pattern[str]] = {
    "(": _CANONICAL_HRI,
    "]": _CANONICAL_ELEMENT,
    GS: _CANONICAL_ELEMENT,
    "h": _CANONICAL_DIGITAL_LINK,
    "H": _CANONICAL_DIGITAL_LINK,
}
# GTINs repeat from pack to pack: remember those whose check digit passed, up to a bound.
_VALID_GTINS: set[str] = set()
_VALID_GTINS_MAX = 4096

_EPC_PREFIX = "urn:epc:id:sgtin:"
# TDS: in an EPC URI serial these characters of set 82 are percent-escaped, the others not.
_EPC_ESCAPES = {ord(c): f"%{ord(c):02X}" for c in "\"%&/<>?"}
_EPC_SERIAL = re.compile(r"(?:[!'()*+,\-.0-9:;=A-Z_a-z]|%[0-9A-Fa-f]{2})+")


def check_digit(body: str) -> int:
    """The GS1 check digit for the ASCII digits ``body``: weights 3, 1, 3, … from the right."""
    digits = body.encode("ascii")
    by_three, by_one = digits[-1::-2], digits[-2::-2]
    total = 3 * (sum(by_three) - 48 * len(by_three)) + sum(by_one) - 48 * len(by_one)
    return -total % 10


def normalize_gtin(text: str) -> str:
    """The GTIN-14 of a GTIN-8, -12, -13 or -14 (left-padded with zeros), check digit validated."""
    if len(text) not in GTIN_LENGTHS or not _DIGITS.fullmatch(text):
        raise ParseError("GTIN must have 8, 12, 13 or 14 digits")
    gtin = text.zfill(14)
    _check_gtin(gtin)
    return gtin


def check_value(ai: str, value: str) -> None:
    """Raise ParseError unless ``value`` is valid for the application identifier ``ai``."""
    spec = _AIS.get(ai)
    if spec is None:
        raise ParseError(f"unsupported AI ({ai})")
    _check(spec, value)


def expiry_date(yymmdd: str, *, today: datetime.date | None = None) -> datetime.date:
    """The calendar date of a YYMMDD value; day 00 is the last day of the month.

    The century follows the GS1 General Specifications (7.12): YY lands within 49 years before
    and 50 years after the current year, so in 2025 "00".."75" are 2000..2075 and "76".."99"
    are 1976..1999.
    """
    _check(_AIS["17"], yymmdd)
    year = _year(int(yymmdd[:2]), today or datetime.date.today())
    month, day = int(yymmdd[2:4]), int(yymmdd[4:])
    return datetime.date(year, month, day or calendar.monthrange(year, month)[1])


def parse_canonical(text: str) -> tuple[str, str | None, str | None, str] | None:
    """(GTIN, expiry, lot, serial) of text laid out exactly as the renderers write it, else None.

    The common case, read by one regular expression: None means "not that layout", and the
    text goes to the parse function of its form.
    """
    pattern = CANONICAL_LAYOUTS.get(text[:1])
    match = pattern.fullmatch(text) if pattern is not None else None
    if match is None:
        return None
    gtin, expiry, lot, serial = match.group("gtin", "expiry", "lot", "serial")
    check_canonical(gtin, expiry)
    return gtin, expiry, lot, serial


def check_canonical(gtin: str, expiry: str | None) -> None:
    """What a ``CANONICAL_LAYOUTS`` match leaves to check: the GTIN's check digit, and a 29
    February expiry's year."""
    if gtin not in _VALID_GTINS:
        _check_gtin(gtin)
    if expiry is not None and expiry[2:] == "0229":
        _check_leap_day(_AIS["17"], expiry)


def parse_hri(text: str) -> dict[str, str]:
    """The AI values of bracketed HRI such as ``(01)09501101530003(21)ABC``, in any AI order."""
    elements: dict[str, str] = {}
    read = 0
    for ai, value in _HRI_ELEMENT.findall(text):
        read += len(ai) + len(value) + 2
        if "\\" in value:
            value = value.replace("\\(", "(")
        spec = _AIS.get(ai)
        if spec is None:
            raise ParseError(f"unsupported AI ({ai})")
        if ai in elements:
            raise ParseError(f"AI ({ai}) appears twice")
        _check(spec, value)
        elements[ai] = value
    # findall skips what it cannot read: anything unread is text outside the (AI)value form.
    if read != len(text) or not elements:
        raise ParseError("HRI must be (AI)value elements, with '(' in a value written '\\('")
    return elements


def elements_of(text: str) -> dict[str, str]:
    """The AI values of bracketed HRI or of a GS1 Digital Link, whichever ``text`` is; {} when
    it is neither or does not parse (a product named without a pack, a routing look-up)."""
    text = text.strip()
    try:
        if text[:1] == "(":
            return parse_hri(text)
        if text[:4].lower() == "http":
            return parse_digital_link(text)
    except ParseError:
        pass
    return {}


def parse_element(text: str) -> dict[str, str]:
    """The AI values of an element string, after an optional GS1 symbology identifier and GS."""
    pos, end = 0, len(text)
    if text.startswith("]"):
        if text[:3] not in SYMBOLOGY_IDS:
            raise ParseError(f"symbology identifier {text[:3]!r} does not mark GS1 data")
        pos = 3
    if text.startswith(GS, pos):
        pos += 1
    if pos == end:
        raise ParseError("element string has no data")
    elements: dict[str, str] = {}
    spec_of = _AIS.get
    while pos < end:
        spec = spec_of(text[pos:pos + 2]) or spec_of(text[pos:pos + 3])
        if spec is None:
            raise ParseError(f"element string: unsupported AI at {text[pos:pos + 4]!r}")
        ai = spec.ai
        pos += len(ai)
        if spec.fixed:
            stop = pos + spec.length
            # No separator is needed after a fixed-length value, but some printers send one.
            following = stop + 1 if text.startswith(GS, stop) else stop
        else:
            stop = text.find(GS, pos)
            if stop < 0:
                stop = end
            following = stop + 1
        if ai in elements:
            raise ParseError(f"AI ({ai}) appears twice")
        value = text[pos:stop]
        _check(spec, value)
        elements[ai] = value
        pos = following
    return elements


def parse_digital_link(text: str) -> dict[str, str]:
    """The AI values of a GS1 Digital Link URI on any http(s) host, under any path prefix.

    The path ends in ``/01/{gtin}`` and the qualifiers ``/22/``, ``/10/``, ``/21/`` in that order;
    query parameters that are supported AIs are read too (other parameters are ignored). A
    compressed Digital Link is read as the uncompressed one it stands for.
    """
    try:
        return _parse_uncompressed(text)
    except ParseError:
        expanded = gs1_compression.expand(text)
        if expanded is None:
            raise
    return _parse_uncompressed(expanded)


def _parse_uncompressed(text: str) -> dict[str, str]:
    match = _DL_URI.fullmatch(text)
    if match is None:
        raise ParseError("not a Digital Link URI: expected http(s)://host/…/01/{gtin}")
    path, query = match.groups()
    segments = path.split("/")
    if len(segments) > 2 and not segments[-1]:
        segments.pop()
    elements: dict[str, str] = {}
    # Pairs are read from the end, so a path prefix (even one holding "01") stays out of the way.
    last_rank, pos = len(_DL_QUALIFIERS), len(segments)
    while True:
        if pos < 3:
            raise ParseError("Digital Link path has no /01/{gtin}")
        key, segment = segments[pos - 2], segments[pos - 1]
        pos -= 2
        if key == "01":
            break
        rank = _DL_QUALIFIERS.get(key)
        if rank is None:
            raise ParseError(f"Digital Link path has {key!r} where 01, 22, 10 or 21 was expected")
        if rank >= last_rank:
            raise ParseError("Digital Link qualifiers must come in the order /22/, /10/, /21/")
        last_rank = rank
        value = _unpercent(segment, key)
        _check(_AIS[key], value)
        elements[key] = value
    try:
        elements["01"] = normalize_gtin(segment)
    except ParseError as error:
        raise ParseError(f"Digital Link (01): {error.reason}") from None
    for parameter in query.split("&") if query else ():
        key, _, segment = parameter.partition("=")
        spec = _AIS.get(key)
        if spec is None:
            continue
        if key in _DL_PATH_AIS:
            raise ParseError(f"AI ({key}) belongs in the Digital Link path, not the query")
        if key in elements:
            raise ParseError(f"AI ({key}) appears twice")
        value = _unpercent(segment, key)
        _check(spec, value)
        elements[key] = value
    return elements


def parse_epc_uri(text: str) -> tuple[str, str]:
    """(GTIN-14, serial) of an SGTIN pure identity URI.

    That is ``urn:epc:id:sgtin:{company prefix}.{indicator digit and item reference}.{serial}``.
    """
    if text[:len(_EPC_PREFIX)].lower() != _EPC_PREFIX:
        raise ParseError("EPC URI: only urn:epc:id:sgtin: is supported")
    parts = text[len(_EPC_PREFIX):].split(".", 2)
    if len(parts) != 3:
        raise ParseError("EPC URI: expected {company prefix}.{item reference}.{serial}")
    prefix, reference, serial = parts
    if not (6 <= len(prefix) <= 12 and _DIGITS.fullmatch(prefix)):
        raise ParseError("EPC URI: company prefix must have 6 to 12 digits")
    if len(prefix) + len(reference) != 13 or not _DIGITS.fullmatch(reference):
        raise ParseError("EPC URI: company prefix and item reference must have 13 digits together")
    if not _EPC_SERIAL.fullmatch(serial):
        raise ParseError("EPC URI: serial is empty or has a character that must be %-escaped")
    body = reference[0] + prefix + reference[1:]
    serial = _PERCENT_ESCAPE.sub(_percent_char, serial)
    _check(_AIS["21"], serial)
    return body + str(check_digit(body)), serial


def render_hri(elements: Mapping[str, str]) -> str:
    """Bracketed HRI of the elements in their order; a "(" in a value is written "\\("."""
    for ai, value in elements.items():
        check_value(ai, value)
    return "".join(f"({ai}){escape_hri(value)}" for ai, value in elements.items())


def escape_hri(value: str) -> str:
    """``value`` as bracketed HRI writes it: each "(" as "\\(", so it cannot open an AI."""
    return value.replace("(", "\\(")


def render_element(elements: Mapping[str, str]) -> str:
    """``]d2`` and the element string, with GS only after variable-length values that are not last.

    The symbology identifier keeps the text self-describing (an all-digit element string would
    otherwise read as NMPA); a printer encodes it as the leading FNC1.
    """
    parts = ["]d2"]
    last = len(elements) - 1
    for i, (ai, value) in enumerate(elements.items()):
        check_value(ai, value)
        parts.append(ai + value)
        if i < last and not _AIS[ai].fixed:
            parts.append(GS)
    return "".join(parts)


_UNRESERVED = re.compile(rb"[^A-Za-z0-9_.~-]")
_PERCENT = {bytes([b]): b"%%%02X" % b for b in range(256)}


def percent_encoded(text: str) -> str:
    """``urllib.parse.quote(text, safe="")``: every byte of the UTF-8 text but RFC 3986's
    unreserved characters as %XX. A value in a Digital Link has a few such bytes at most, each
    found by one regular expression rather than by a Python step for every byte."""
    return _UNRESERVED.sub(lambda m: _PERCENT[m[0]], text.encode()).decode("ascii")


def render_digital_link(elements: Mapping[str, str], host: str) -> str:
    """A Digital Link URI under ``host`` (scheme, host and optional path prefix) for the elements.

    (01) and its qualifiers go in the path, other AIs in the query, all percent-encoded.
    """
    base = host.rstrip("/")
    if not _DL_HOST.fullmatch(base):
        raise InvalidArgument("must be http(s)://host with an optional path", field="host")
    if "01" not in elements:
        raise InvalidArgument("a Digital Link needs a GTIN (01)")
    for ai, value in elements.items():
        check_value(ai, value)
    path = [base, "01", elements["01"]]
    for ai in _DL_QUALIFIERS:
        if ai in elements:
            path += (ai, percent_encoded(elements[ai]))
    query = "&".join(f"{ai}={percent_encoded(value)}" for ai, value in elements.items()
                     if ai not in _DL_PATH_AIS)
    return "/".join(path) + (f"?{query}" if query else "")


def render_epc_uri(gtin: str, serial: str, company_prefix_length: int) -> str:
    """The SGTIN pure identity URI of a GTIN-14 and serial, given the GS1 company prefix length."""
    if not 6 <= company_prefix_length <= 12:
        raise InvalidArgument("must be 6 to 12", field="company_prefix_length")
    check_value("01", gtin)
    check_value("21", serial)
    prefix = gtin[1:1 + company_prefix_length]
    reference = gtin[0] + gtin[1 + company_prefix_length:13]
    return f"{_EPC_PREFIX}{prefix}.{reference}.{serial.translate(_EPC_ESCAPES)}"


def _check(spec: AiSpec, value: str) -> None:
    if spec.kind is AiKind.GTIN:
        _check_gtin(value)
    elif spec.pattern.fullmatch(value) is None:
        raise ParseError(_problem(spec, value))
    elif spec.kind is AiKind.DATE:
        _check_leap_day(spec, value)


def _check_gtin(gtin: str) -> None:
    if gtin in _VALID_GTINS:
        return
    spec = _AIS["01"]
    if spec.pattern.fullmatch(gtin) is None:
        raise ParseError(_problem(spec, gtin))
    expected = check_digit(gtin[:13])
    if ord(gtin[13]) - 48 != expected:
        raise ParseError(f"GTIN check digit is {gtin[13]}, expected {expected}")
    if len(_VALID_GTINS) >= _VALID_GTINS_MAX:
        _VALID_GTINS.clear()
    _VALID_GTINS.add(gtin)


def _check_leap_day(spec: AiSpec, yymmdd: str) -> None:
    if yymmdd[2:] == "0229":
        year = _year(int(yymmdd[:2]), datetime.date.today())
        if not calendar.isleap(year):
            raise ParseError(f"{spec.label} has day 29, which February {year} does not have")


def _problem(spec: AiSpec, value: str) -> str:
    """Why ``value`` does not match ``spec.pattern``."""
    if spec.kind is AiKind.TEXT:
        if not value:
            return f"{spec.label} is empty"
        if len(value) > spec.length:
            return f"{spec.label} longer than {spec.length} characters"
        bad = next(c for c in value if c not in _CSET82_CHARS)
        return f"{spec.label} has {bad!r}, which is not in GS1 character set 82"
    if len(value) != spec.length or not _DIGITS.fullmatch(value):
        return f"{spec.label} must be {spec.length} digits"
    month = value[2:4]
    if not "01" <= month <= "12":
        return f"{spec.label} has month {month}, not 01 to 12"
    return f"{spec.label} has day {value[4:]}, which month {month} does not have"


def _year(yy: int, today: datetime.date) -> int:
    century, current = divmod(today.year, 100)
    if yy - current > 50:
        century -= 1
    elif yy - current < -49:
        century += 1
    return century * 100 + yy


def _unpercent(value: str, ai: str) -> str:
    if "%" not in value:
        return value
    if not _PERCENT_TEXT.fullmatch(value):
        raise ParseError(f"Digital Link ({ai}): '%' must start a %XX escape")
    return _PERCENT_ESCAPE.sub(_percent_char, value)


def _percent_char(match: re.Match[str]) -> str:
    return chr(int(match[1], 16))
