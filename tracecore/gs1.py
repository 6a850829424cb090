"""GS1 syntax: GTINs, application identifiers, and the HRI, element string, Digital Link and EPC forms."""

from __future__ import annotations

import calendar
import datetime
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import quote

from tracecore.errors import InvalidArgument, ParseError

GS = "\x1d"
"""Group separator: how a scanner transmits an FNC1 that ends a variable-length field."""

CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""GS1 AI encodable character set 82: the characters allowed in lots and serials."""

SYMBOLOGY_IDS = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})
"""Symbology identifiers of GS1 data: GS1-128, GS1 DataMatrix, GS1 QR, GS1 DataBar, GS1 DotCode."""

GTIN_LENGTHS = (8, 12, 13, 14)


class AiKind(enum.Enum):
    """What an application identifier's value is."""

    GTIN = "N14 with a check digit"
    DATE = "N6 YYMMDD"
    TEXT = "up to n characters of set 82"


@dataclass(frozen=True, slots=True)
class AiSpec:
    """One application identifier: its digits, a name for messages, its kind and (maximum) length."""

    ai: str
    title: str
    kind: AiKind
    length: int

    @property
    def fixed(self) -> bool:
        """Whether the value has a predefined length, so no separator follows it."""
        return self.kind is not AiKind.TEXT

    @property
    def label(self) -> str:
        return f"{self.title} ({self.ai})"


AIS: Mapping[str, AiSpec] = MappingProxyType({spec.ai: spec for spec in (
    AiSpec("01", "GTIN", AiKind.GTIN, 14),
    AiSpec("10", "batch/lot", AiKind.TEXT, 20),
    AiSpec("11", "production date", AiKind.DATE, 6),
    AiSpec("15", "best before date", AiKind.DATE, 6),
    AiSpec("17", "expiry date", AiKind.DATE, 6),
    AiSpec("21", "serial", AiKind.TEXT, 20),
    AiSpec("22", "consumer product variant", AiKind.TEXT, 20),
    # National healthcare reimbursement numbers, printed on many EU FMD packs beside (21).
    *(AiSpec(f"71{n}", "national reimbursement number", AiKind.TEXT, 20) for n in range(6)),
)})
"""The application identifiers this module reads and writes; any other AI is a ParseError."""

# Digital Link key qualifiers of (01), in the order the path must give them.
_DL_QUALIFIERS = {"22": 0, "10": 1, "21": 2}
_DL_PATH_AIS = frozenset({"01", *_DL_QUALIFIERS})

_DIGITS = re.compile(r"[0-9]+")
_CSET82_TEXT = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+")
_CSET82_CHARS = frozenset(CSET82)
# Index 2 is 29: February 29 is settled by the year, in _check_date.
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# A bracketed element: "(" AI ")" then the value up to the next "(" that opens an AI. A "(" in
# data is written "\(" (the GS1 Barcode Syntax Engine's escape); a bare "(" not followed by
# digits and ")" is taken as data too, since printed HRI shows no escapes.
_HRI_ELEMENT = re.compile(r"\(([0-9]{2,4})\)((?:[^(\\]++|\\\(|\((?![0-9]{2,4}\)))*+)")
_HRI_ESCAPES = str.maketrans({"(": "\\("})

_DL_URI = re.compile(r"(?i:https?)://[^/?#\s]+(/[^?#\s]*)(?:\?([^#\s]*))?(?:#\S*)?")
_DL_HOST = re.compile(r"(?i:https?)://[^/?#\s]+(?:/[^?#\s]*)?")
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PERCENT_TEXT = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*+")

_EPC_PREFIX = "urn:epc:id:sgtin:"
# TDS: in an EPC URI serial these characters of set 82 must be percent-escaped.
_EPC_ESCAPES = {ord(c): f"%{ord(c):02X}" for c in "\"%&/<>?"}
_EPC_SERIAL = re.compile(r"(?:[!'()*+,\-.0-9:;=A-Z_a-z]|%[0-9A-Fa-f]{2})+")


def check_digit(body: str) -> int:
    """The GS1 check digit for the ASCII digits ``body``: weights 3, 1, 3, … from the right."""
    digits = body.encode("ascii")
    by_three, by_one = digits[-1::-2], digits[-2::-2]
    total = 3 * (sum(by_three) - 48 * len(by_three)) + sum(by_one) - 48 * len(by_one)
    return -total % 10


def normalize_gtin(text: str) -> str:
    """The GTIN-14 of a GTIN-8, -12, -13 or -14, left-padded with zeros; its check digit validated."""
    if len(text) not in GTIN_LENGTHS or not _DIGITS.fullmatch(text):
        raise ParseError("GTIN must have 8, 12, 13 or 14 digits")
    expected = check_digit(text[:-1])
    if ord(text[-1]) - 48 != expected:
        raise ParseError(f"GTIN check digit is {text[-1]}, expected {expected}")
    return text.zfill(14)


def check_value(ai: str, value: str) -> None:
    """Raise ParseError unless ``value`` is valid for the application identifier ``ai``."""
    spec = AIS.get(ai)
    if spec is None:
        raise ParseError(f"unsupported AI ({ai})")
    _check(spec, value)


def expiry_date(yymmdd: str, *, today: datetime.date | None = None) -> datetime.date:
    """The calendar date of a YYMMDD value; day 00 is the last day of the month.

    The century follows the GS1 General Specifications (7.12): YY lands within 49 years before
    and 50 years after the current year, so in 2025 "00".."75" are 2000..2075 and "76".."99"
    are 1976..1999.
    """
    _check(AIS["17"], yymmdd)
    year = _year(int(yymmdd[:2]), today or datetime.date.today())
    month, day = int(yymmdd[2:4]), int(yymmdd[4:])
    return datetime.date(year, month, day or calendar.monthrange(year, month)[1])


def parse_hri(text: str) -> dict[str, str]:
    """The AI values of bracketed HRI text such as ``(01)09501101530003(21)ABC``, in any AI order."""
    elements: dict[str, str] = {}
    pos, end = 0, len(text)
    while pos < end:
        match = _HRI_ELEMENT.match(text, pos)
        if match is None:
            raise ParseError(f"HRI: expected '(' and an AI at position {pos}")
        ai, value = match.groups()
        if "\\" in value:
            value = value.replace("\\(", "(")
        _add(elements, ai, value)
        pos = match.end()
    if not elements:
        raise ParseError("HRI has no AI")
    return elements


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
    while pos < end:
        spec = AIS.get(text[pos:pos + 2]) or AIS.get(text[pos:pos + 3])
        if spec is None:
            raise ParseError(f"element string: unsupported AI at {text[pos:pos + 4]!r}")
        pos += len(spec.ai)
        if spec.fixed:
            stop = pos + spec.length
            # A separator after a fixed-length field is not needed, but some printers send one.
            following = stop + 1 if text.startswith(GS, stop) else stop
        else:
            stop = text.find(GS, pos)
            if stop < 0:
                stop = end
            following = stop + 1
        _add(elements, spec.ai, text[pos:stop])
        pos = following
    return elements


def parse_digital_link(text: str) -> dict[str, str]:
    """The AI values of a GS1 Digital Link URI on any http(s) host, under any path prefix.

    The path ends in ``/01/{gtin}`` and the qualifiers ``/22/``, ``/10/``, ``/21/`` in that order;
    query parameters that are supported AIs are read too (other parameters are ignored).
    """
    match = _DL_URI.fullmatch(text)
    if match is None:
        raise ParseError("not a Digital Link URI: expected http(s)://host/…/01/{gtin}")
    path, query = match.groups()
    segments = path.split("/")
    if len(segments) > 2 and not segments[-1]:
        segments.pop()
    elements: dict[str, str] = {}
    # Read pairs from the end, so a path prefix (even one holding "01") stays out of the way.
    last_rank, pos = len(_DL_QUALIFIERS), len(segments)
    while True:
        if pos < 3:
            raise ParseError("Digital Link path has no /01/{gtin}")
        key, value = segments[pos - 2], segments[pos - 1]
        pos -= 2
        if key == "01":
            break
        rank = _DL_QUALIFIERS.get(key)
        if rank is None:
            raise ParseError(f"Digital Link path has {key!r} where 22, 10 or 21 was expected")
        if rank >= last_rank:
            raise ParseError("Digital Link qualifiers must come in the order /22/, /10/, /21/")
        last_rank = rank
        elements[key] = value = _unpercent(value, key)
        _check(AIS[key], value)
    try:
        elements["01"] = normalize_gtin(value)
    except ParseError as error:
        raise ParseError(f"Digital Link (01): {error.reason}") from None
    for parameter in query.split("&") if query else ():
        key, _, value = parameter.partition("=")
        if key not in AIS:
            continue
        if key in _DL_PATH_AIS:
            raise ParseError(f"AI ({key}) belongs in the Digital Link path, not the query")
        _add(elements, key, _unpercent(value, key))
    return elements


def parse_epc_uri(text: str) -> tuple[str, str]:
    """(GTIN-14, serial) of an SGTIN pure identity URI ``urn:epc:id:sgtin:{prefix}.{ref}.{serial}``."""
    if text[:len(_EPC_PREFIX)].lower() != _EPC_PREFIX:
        raise ParseError("EPC URI: only urn:epc:id:sgtin: is supported")
    parts = text[len(_EPC_PREFIX):].split(".", 2)
    if len(parts) != 3:
        raise ParseError("EPC URI: expected {company prefix}.{indicator and item reference}.{serial}")
    prefix, reference, serial = parts
    if not (6 <= len(prefix) <= 12 and _DIGITS.fullmatch(prefix)):
        raise ParseError("EPC URI: company prefix must have 6 to 12 digits")
    if len(prefix) + len(reference) != 13 or not _DIGITS.fullmatch(reference):
        raise ParseError("EPC URI: company prefix and item reference must have 13 digits together")
    if not _EPC_SERIAL.fullmatch(serial):
        raise ParseError("EPC URI: serial is empty or has a character that must be %-escaped")
    body = reference[0] + prefix + reference[1:]
    serial = _PERCENT_ESCAPE.sub(_percent_char, serial)
    _check(AIS["21"], serial)
    return body + str(check_digit(body)), serial


def render_hri(elements: Mapping[str, str]) -> str:
    """Bracketed HRI of the elements in their order; a "(" in a value is written "\\("."""
    for ai, value in elements.items():
        check_value(ai, value)
    return "".join(f"({ai}){value.translate(_HRI_ESCAPES)}" for ai, value in elements.items())


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
        if i < last and not AIS[ai].fixed:
            parts.append(GS)
    return "".join(parts)


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
            path += (ai, quote(elements[ai], safe=""))
    query = "&".join(f"{ai}={quote(value, safe='')}" for ai, value in elements.items()
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


def _add(elements: dict[str, str], ai: str, value: str) -> None:
    spec = AIS.get(ai)
    if spec is None:
        raise ParseError(f"unsupported AI ({ai})")
    if ai in elements:
        raise ParseError(f"AI ({ai}) appears twice")
    _check(spec, value)
    elements[ai] = value


def _check(spec: AiSpec, value: str) -> None:
    if spec.kind is AiKind.TEXT:
        if len(value) <= spec.length and _CSET82_TEXT.fullmatch(value):
            return
        if not value:
            raise ParseError(f"{spec.label} is empty")
        if len(value) > spec.length:
            raise ParseError(f"{spec.label} longer than {spec.length} characters")
        bad = next(c for c in value if c not in _CSET82_CHARS)
        raise ParseError(f"{spec.label} has {bad!r}, which is not in GS1 character set 82")
    if len(value) != spec.length or not _DIGITS.fullmatch(value):
        raise ParseError(f"{spec.label} must be {spec.length} digits")
    if spec.kind is AiKind.DATE:
        _check_date(spec, value)
    else:
        expected = check_digit(value[:13])
        if ord(value[13]) - 48 != expected:
            raise ParseError(f"GTIN check digit is {value[13]}, expected {expected}")


def _check_date(spec: AiSpec, yymmdd: str) -> None:
    month, day = int(yymmdd[2:4]), int(yymmdd[4:])
    if not 1 <= month <= 12:
        raise ParseError(f"{spec.label} has month {yymmdd[2:4]}, not 01 to 12")
    if day > _MONTH_DAYS[month] or (
        month == 2 and day == 29
        and not calendar.isleap(_year(int(yymmdd[:2]), datetime.date.today()))
    ):
        raise ParseError(f"{spec.label} has day {yymmdd[4:]}, which month {yymmdd[2:4]} of "
                         f"year {yymmdd[:2]} does not have")


def _year(yy: int, today: datetime.date) -> int:
    century = today.year - today.year % 100
    difference = yy - today.year % 100
    if difference > 50:
        return century - 100 + yy
    if difference < -49:
        return century + 100 + yy
    return century + yy


def _unpercent(value: str, ai: str) -> str:
    if "%" not in value:
        return value
    if not _PERCENT_TEXT.fullmatch(value):
        raise ParseError(f"Digital Link ({ai}): '%' must start a %XX escape")
    return _PERCENT_ESCAPE.sub(_percent_char, value)


def _percent_char(match: re.Match[str]) -> str:
    return chr(int(match[1], 16))
