"""The SSCC as a code scheme: a logistic unit (case, pallet) named by AI (00), readable wherever a
pack code is, so that it can be a parent in aggregation and be verified, traced and exported.

An SSCC carries no tag: its authenticity is that the tenant allocated it from one of its SSCC
pools (``tracecore.ledger.sscc_pools``), so ``check_tag`` never finds a key and nothing is ever
minted under this scheme. Ledger keys are ``S`` + the 18 digits; ``Code.product`` is empty (a
logistic unit is no trade item) and ``Code.serial`` holds the 18 digits.

Which reading wins: ``(00)`` HRI, an element string after a GS1 symbology identifier or FNC1,
a Digital Link ``/00/`` and ``urn:epc:id:sscc:`` are SSCCs whenever they say so. Bare digits are
shared with NMPA codes and GS1 element strings: 18 digits with a valid SSCC check digit are an
SSCC (no other code has 18 digits alone), but 20 digits stay an NMPA code even when they are
``00`` and a valid SSCC, since an NMPA drug identifier may start with ``00`` and one NMPA code in
ten would pass the check digit by chance: a scanner sends ``]C1`` (or FNC1) before a GS1-128
label's ``00``, which makes it unambiguous, as for every GS1 element string of 20 digits
(``tracecore.nmpa.is_candidate``). This scheme registers first so that its readers see such text
before the NMPA and GS1 ones; every reader here answers None for text that is not plainly an SSCC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from tracecore import gs1, sscc
from tracecore.errors import InvalidArgument, ParseError
from tracecore.mac import Mac
from tracecore.schemes.base import Code, CodeScheme, Form, Reader, Scan, Scheme

_SSCC = Scheme.SSCC
_AI = "00"


def _scan(digits: str) -> Scan:
    return Scan(Code(_SSCC, "", sscc.check(digits)))


def _valid(digits: str) -> bool:
    try:
        sscc.check(digits)
    except ParseError:
        return False
    return True


def _read_digits(text: str) -> Scan | None:
    if not (text.isdigit() and text.isascii()):
        return None
    return _scan(text) if len(text) == sscc.DIGITS and _valid(text) else None


def _read_hri(text: str) -> Scan | None:
    return Scan(Code(_SSCC, "", sscc.parse(text))) if text.startswith("(00)") else None


def _read_element(text: str) -> Scan | None:
    # After FNC1 (GS) or a GS1 symbology identifier, "00" opens the SSCC's element string.
    body = text[3:] if text[:3] in gs1.SYMBOLOGY_IDS else text
    body = body.removeprefix(gs1.GS)
    if body.startswith(_AI) and len(body) == sscc.DIGITS + 2:
        return _scan(body[2:])
    return None


def _read_digital_link(text: str) -> Scan | None:
    if "/00/" not in text or not text[:8].lower().startswith(("http://", "https://")):
        return None
    return Scan(Code(_SSCC, "", sscc.parse(text)))


def _read_epc_uri(text: str) -> Scan | None:
    if text[:16].lower() != "urn:epc:id:sscc:":
        return None
    return Scan(Code(_SSCC, "", sscc.parse(text)))


class SsccScheme(CodeScheme):
    """AI (00): 18 digits; ledger keys ``S`` + the 18 digits."""

    scheme = Scheme.SSCC
    key_letter = b"S"
    product_length = 0
    readers: ClassVar[Mapping[str, Reader]] = {
        "(": _read_hri,
        gs1.GS: _read_element,
        "h": _read_digital_link,
        "H": _read_digital_link,
        "u": _read_epc_uri,
        "U": _read_epc_uri,
        **dict.fromkeys("0123456789", _read_digits),
    }
    symbologies: ClassVar[Mapping[str, Reader]] = dict.fromkeys(gs1.SYMBOLOGY_IDS, _read_element)
    capacity = 0
    random = (0, b"", b"")

    def split_key(self, body: str) -> tuple[str, str] | None:
        return ("", body) if len(body) == sscc.DIGITS and body.isdigit() else None

    def text(self, code: Code) -> str:
        return f"(00){code.serial}"

    def render(self, scan: Scan, form: Form, host: str,
               company_prefix_length: int | None) -> str:
        digits = scan.code.serial
        if form is Form.HRI:
            return sscc.render_hri(digits)
        if form is Form.ELEMENT:
            return sscc.render_element(digits)
        if form is Form.DIGITAL_LINK:
            return sscc.render_digital_link(digits, host)
        if form is Form.EPC_URI:
            if company_prefix_length is None:
                raise InvalidArgument("required for an EPC URI", field="company_prefix_length")
            return sscc.render_epc_uri(digits, company_prefix_length)
        raise InvalidArgument(f"an SSCC has no {form} form", field="form")

    def check_product(self, product: str) -> None:
        raise InvalidArgument("SSCCs are not minted under a product: request an SSCC pool",
                              field="scheme")

    def key_part(self, key_id: int) -> str:
        raise InvalidArgument("SSCCs are not minted under a signing key", field="scheme")

    @staticmethod
    def tag(digest: bytes) -> bytes:
        return b""

    def key_id_of(self, serial: str) -> int | None:
        return None

    @staticmethod
    def check_tag(code: Code, macs: Mapping[int, Mac]) -> int | None:
        return None


SCHEME = SsccScheme()
