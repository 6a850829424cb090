"""Serial Shipping Container Codes (SSCC, AI (00)): the identity of a logistic unit.

An SSCC is 18 digits: the extension digit, the GS1 company prefix, the serial reference (as many
digits as the prefix leaves of 16) and a check digit (GS1 General Specifications 2.2.1, 7.9.1).
Pure functions: mint, render as bracketed HRI, element string, Digital Link ``/00/`` or EPC URI
``urn:epc:id:sscc:``, and parse every one of these forms back to the 18 digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracecore.errors import InvalidArgument, ParseError
from tracecore.gs1 import check_digit

DIGITS = 18
#: Digits shared by the company prefix and the serial reference.
_PREFIX_AND_REFERENCE = 16
#: GS1 company prefixes have 6 to 12 digits where an SSCC is concerned (GS1 General
#: Specifications 1.4.4; shorter U.P.C. prefixes appear in SSCCs zero-padded to 6 or more).
MIN_PREFIX, MAX_PREFIX = 6, 12
#: GS1 General Specifications 2.2.1: an SSCC shall not be reallocated within one year of its
#: shipment; pharmatrace never reallocates one at all (its counter only moves forward).
REALLOCATION_MIN_DAYS = 365

#: Packaging levels (``pharmatrace.v1.PackagingLevel``) a logistic unit can be.
CASE, PALLET = 3, 4

_SSCC = re.compile(r"[0-9]{18}")
_PREFIX = re.compile(r"[0-9]{6,12}")
_HRI = re.compile(r"\(00\) ?([0-9]{18})")
_ELEMENT = re.compile(r"(?:\]C1|\]d2|\]Q3|\]e0|\]J1)?\x1d?00([0-9]{18})")
_DIGITAL_LINK = re.compile(r"(?i:https?)://[^/?#\s]+(?:/[^/?#\s]*)*?/00/([0-9]{18})/?(?:[?#]\S*)?")
_EPC_PREFIX = "urn:epc:id:sscc:"
_EPC = re.compile(r"urn:epc:id:sscc:([0-9]{6,12})\.([0-9]{5,11})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Range:
    """The serial references ``[first, first + count)`` under one prefix and extension digit."""

    company_prefix: str
    extension_digit: int
    first: int
    count: int

    def ssccs(self) -> list[str]:
        """The SSCCs of the range, in allocation order."""
        return [mint(self.company_prefix, self.extension_digit, reference)
                for reference in range(self.first, self.first + self.count)]


def unit_level(stated: int, contents: list[int]) -> int:
    """The packaging level of a logistic unit first filled with packs of levels ``contents``:
    the level the event states, else a case, or a pallet once it holds cases (or pallets, which
    it then cannot take: the aggregation says so)."""
    if stated:
        return stated
    return min(max([CASE, *(level + 1 for level in contents)]), PALLET)


def company_prefix(text: str, field: str = "company_prefix") -> str:
    """A GS1 company prefix: 6 to 12 ASCII digits; InvalidArgument naming ``field`` otherwise."""
    if not _PREFIX.fullmatch(text):
        raise InvalidArgument(f"a GS1 company prefix has {MIN_PREFIX} to {MAX_PREFIX} digits",
                              field=field)
    return text


def extension_digit(value: int, field: str = "extension_digit") -> int:
    """The extension digit: 0 to 9, chosen by the company to widen its SSCC space."""
    if not 0 <= value <= 9:
        raise InvalidArgument("must be 0 to 9", field=field)
    return value


def capacity(prefix: str) -> int:
    """How many serial references one prefix has under one extension digit."""
    return int(10 ** (_PREFIX_AND_REFERENCE - len(company_prefix(prefix))))


def mint(prefix: str, extension: int, serial_reference: int) -> str:
    """The SSCC of a serial reference under a company prefix and extension digit."""
    extension_digit(extension)
    width = _PREFIX_AND_REFERENCE - len(company_prefix(prefix))
    if not 0 <= serial_reference < 10 ** width:
        raise InvalidArgument(f"must be 0 to {10 ** width - 1} under a {len(prefix)}-digit "
                              "company prefix", field="serial_reference")
    body = f"{extension}{prefix}{serial_reference:0{width}d}"
    return body + str(check_digit(body))


def check(sscc: str) -> str:
    """``sscc`` if it is 18 digits with the right check digit; ParseError saying why otherwise."""
    if not _SSCC.fullmatch(sscc):
        raise ParseError("SSCC (00) must be 18 digits")
    expected = check_digit(sscc[:17])
    if ord(sscc[17]) - 48 != expected:
        raise ParseError(f"SSCC check digit is {sscc[17]}, expected {expected}")
    return sscc


def serial_reference(sscc: str, prefix: str) -> int:
    """The serial reference of an SSCC minted under ``prefix``."""
    check(sscc)
    if sscc[1:1 + len(prefix)] != company_prefix(prefix):
        raise InvalidArgument(f"SSCC {sscc} is not under company prefix {prefix}", field="sscc")
    return int(sscc[1 + len(prefix):17])


def render_hri(sscc: str) -> str:
    """Bracketed HRI: ``(00)`` and the 18 digits."""
    return f"(00){check(sscc)}"


def render_element(sscc: str) -> str:
    """``]C1`` (GS1-128, the logistic label's symbology) and the element string ``00`` + digits."""
    return f"]C100{check(sscc)}"


def render_digital_link(sscc: str, host: str = "https://id.gs1.org") -> str:
    """A GS1 Digital Link URI ``{host}/00/{sscc}``."""
    base = host.rstrip("/")
    if not re.fullmatch(r"(?i:https?)://[^/?#\s]+(?:/[^?#\s]*)?", base):
        raise InvalidArgument("must be http(s)://host with an optional path", field="host")
    return f"{base}/00/{check(sscc)}"


def render_epc_uri(sscc: str, company_prefix_length: int) -> str:
    """The pure identity URI ``urn:epc:id:sscc:{prefix}.{extension digit}{serial reference}``."""
    if not MIN_PREFIX <= company_prefix_length <= MAX_PREFIX:
        raise InvalidArgument(f"must be {MIN_PREFIX} to {MAX_PREFIX}",
                              field="company_prefix_length")
    check(sscc)
    prefix = sscc[1:1 + company_prefix_length]
    return f"{_EPC_PREFIX}{prefix}.{sscc[0]}{sscc[1 + company_prefix_length:17]}"


def parse(text: str) -> str:
    """The 18 digits of an SSCC written in any form: bare digits, ``(00)`` HRI, an element
    string (with or without a GS1 symbology identifier), a Digital Link ``/00/`` URI or an EPC
    URI. ParseError with a reason for anything else or a wrong check digit."""
    text = text.strip(" \t\r\n")
    for pattern in (_SSCC, _HRI, _ELEMENT, _DIGITAL_LINK):
        match = pattern.fullmatch(text)
        if match is not None:
            return check(match[1] if pattern.groups else match[0])
    match = _EPC.fullmatch(text)
    if match is not None:
        prefix, reference = match.groups()
        if len(prefix) + len(reference) != 17:
            raise ParseError("EPC URI: company prefix and serial reference must have 17 digits "
                             "together")
        body = reference[0] + prefix + reference[1:]
        return body + str(check_digit(body))
    raise ParseError("not an SSCC: expected 18 digits, (00) HRI, an element string, a Digital "
                     "Link /00/ URI or urn:epc:id:sscc:")
