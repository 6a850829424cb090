"""Labels: what each symbol of a print job encodes, reads back as, and shows in plain text."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from tracecore import gs1, sscc
from tracecore.codes import Code, Form, Scan, Scheme, render
from tracecore.errors import InvalidArgument


class Symbology(enum.StrEnum):
    """The symbol printed for a code."""

    GS1_DATAMATRIX = "datamatrix"
    """GS1 DataMatrix (ECC 200, FNC1 first, square): the EU FMD / DSCSA pack symbol; ]d2."""
    DIGITAL_LINK_QR = "qr"
    """QR Code holding a GS1 Digital Link URI (plain text, as GS1 Digital Link specifies); ]Q1."""
    GS1_QR = "gs1-qr"
    """GS1 QR Code: the element string with FNC1 first; ]Q3."""
    CODE128 = "code128"
    """Code 128 of the 20 NMPA digits, with the digits printed under the bars; ]C0."""
    GS1_128 = "gs1-128"
    """GS1-128 of an SSCC (AI 00), the logistic label's symbol; ]C1."""


#: The symbology identifier a scanner sends before each symbology's data.
SYMBOLOGY_ID = {
    Symbology.GS1_DATAMATRIX: "]d2",
    Symbology.DIGITAL_LINK_QR: "]Q1",
    Symbology.GS1_QR: "]Q3",
    Symbology.CODE128: "]C0",
    Symbology.GS1_128: "]C1",
}
#: What each kind of code is printed as unless the job says otherwise.
DEFAULT = {Scheme.GS1: Symbology.GS1_DATAMATRIX, Scheme.NMPA: Symbology.CODE128}
_FOR_SCHEME = {
    Scheme.GS1: frozenset({Symbology.GS1_DATAMATRIX, Symbology.DIGITAL_LINK_QR,
                           Symbology.GS1_QR}),
    Scheme.NMPA: frozenset({Symbology.CODE128}),
}


@dataclass(frozen=True, slots=True)
class Label:
    """One label of a job."""

    position: int
    """Position of the code in its pool."""
    code: str
    """The code's canonical text: ``(01)…(21)…``, 20 NMPA digits, or ``(00)`` and the SSCC."""
    symbology: Symbology
    data: str
    """What the encoder is given: GS1 element strings as ``[AI]value`` (square brackets are
    outside GS1 character set 82, so no value can be mistaken for an AI), other data as is."""
    scanned: str
    """What a scanner reads back: symbology identifier, then the data with GS between
    variable-length fields (no FNC1 shown)."""
    lines: tuple[str, ...]
    """The human-readable text under the symbol, one line each."""
    fields: tuple[tuple[str, str], ...]
    """The variable data by AI (``01``, ``17``, ``10``, ``21``, ``00``) or ``nmpa``."""


def for_codes(
    scheme: Scheme,
    product: str,
    serials: Sequence[str],
    *,
    lot: str | None = None,
    expiry: str | None = None,
    symbology: Symbology | None = None,
    host: str = "https://id.gs1.org",
    start: int = 0,
) -> list[Label]:
    """Labels for a pool's codes: GS1 codes carry (01) GTIN, (17) expiry, (10) lot, (21) serial
    in that order (fixed-length AIs first, as the GS1 General Specifications recommend, so only
    the lot needs a separator); NMPA codes are their 20 digits."""
    chosen = symbology or DEFAULT[scheme]
    if chosen not in _FOR_SCHEME[scheme]:
        raise InvalidArgument(f"a {scheme.name} code cannot be printed as {chosen.value}",
                              field="symbology")
    if scheme is Scheme.NMPA:
        return [_nmpa(start + i, product + serial) for i, serial in enumerate(serials)]
    head = {"01": product}
    if expiry is not None:
        head["17"] = expiry
    if lot is not None:
        head["10"] = lot
    for ai, value in head.items():
        gs1.check_value(ai, value)
    for serial in serials:
        gs1.check_value("21", serial)
    # Everything but the serial is the same on every label of the job: written once here.
    fields = tuple(head.items())
    text_lines = (f"GTIN {product}", *(f"EXP {expiry}",) * (expiry is not None),
                  *(f"LOT {lot}",) * (lot is not None))
    code_head = f"(01){product}(21)"
    if chosen is Symbology.DIGITAL_LINK_QR:
        sample = render(Scan(Code(Scheme.GS1, product, "S"), lot, expiry), Form.DIGITAL_LINK,
                        host=host)
        before, after = sample.split("/21/S", 1)
        return [Label(start + i, code_head + gs1.escape_hri(serial), chosen,
                      link := f"{before}/21/{quote(serial, safe='')}{after}", f"]Q1{link}",
                      (*text_lines, f"SN {serial}"), (*fields, ("21", serial)))
                for i, serial in enumerate(serials)]
    element_head = gs1.render_element({**head, "21": "S"})[3:-len("21S")]
    data_head = "".join(f"[{ai}]{value}" for ai, value in fields) + "[21]"
    scanned_head = SYMBOLOGY_ID[chosen] + element_head + "21"
    return [Label(start + i, code_head + gs1.escape_hri(serial), chosen, data_head + serial,
                  scanned_head + serial, (*text_lines, f"SN {serial}"), (*fields, ("21", serial)))
            for i, serial in enumerate(serials)]


def for_ssccs(ssccs: Iterable[str], *, start: int = 0) -> list[Label]:
    """GS1-128 logistic labels for SSCCs."""
    out: list[Label] = []
    for i, code in enumerate(ssccs):
        sscc.check(code)
        hri = sscc.render_hri(code)
        out.append(Label(start + i, hri, Symbology.GS1_128, f"[00]{code}", f"]C100{code}",
                         (f"(00) {code[0]} {code[1:17]} {code[17]}", "SSCC"), (("00", code),)))
    return out


def _nmpa(position: int, digits: str) -> Label:
    return Label(position, digits, Symbology.CODE128, digits, f"]C0{digits}",
                 (" ".join(digits[i:i + 4] for i in range(0, 20, 4)),), (("nmpa", digits),))
