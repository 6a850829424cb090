"""Labels: what each symbol of a print job encodes, reads back as, and shows in plain text."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload
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
# Serials one a line, each 1 to 20 characters of set 82: the whole job checked in one pass.
_SERIALS = re.compile(r"(?:[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}\n)*")
_NMPA_SERIALS = re.compile(r"(?:[0-9]{13}\n)*")
# Serials that every form writes as they are (no percent-encoding, no HRI escape, no CSV or ZPL
# quoting): the ones pharmatrace mints always are.
_PLAIN_SERIALS = re.compile(r"(?:[0-9A-Za-z._-]{1,20}\n)*")
#: Stands for the serial in a template; no serial or form holds it.
_PLACEHOLDER = "\x00"
_FOR_SCHEME = {
    Scheme.GS1: frozenset({Symbology.GS1_DATAMATRIX, Symbology.DIGITAL_LINK_QR,
                           Symbology.GS1_QR}),
    Scheme.NMPA: frozenset({Symbology.CODE128}),
}


@dataclass(slots=True)
class Label:
    """One label of a job. Not frozen: a job makes hundreds of thousands a second, and a frozen
    dataclass's constructor costs several times a plain one's."""

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


class LabelRun(Sequence[Label]):
    """Labels of one job that differ only by their serial: each is made when it is asked for,
    and text outputs fill in a template instead (``template``)."""

    def __init__(self, make: Callable[[int, str], Label], serials: Sequence[str], start: int
                 ) -> None:
        self._make = make
        self.serials = serials
        self.start = start

    def __len__(self) -> int:
        return len(self.serials)

    @overload
    def __getitem__(self, index: int) -> Label: ...

    @overload
    def __getitem__(self, index: slice) -> list[Label]: ...

    def __getitem__(self, index: int | slice) -> Label | list[Label]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        return self._make(self.start + index, self.serials[index])

    def __iter__(self) -> Iterator[Label]:
        make, start = self._make, self.start
        for i, serial in enumerate(self.serials):
            yield make(start + i, serial)

    def template(self, render: Callable[[Label], str]) -> list[str] | None:
        """``render`` of a label split where the serial goes, so that ``serial.join(parts)`` is
        the rendering of that serial's label; None when a serial of the run needs escaping in
        some form (then each label is rendered on its own)."""
        if _PLAIN_SERIALS.fullmatch("\n".join(self.serials) + "\n") is None:
            return None
        return render(self._make(0, _PLACEHOLDER)).split(_PLACEHOLDER)


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
) -> LabelRun:
    """Labels for a pool's codes: GS1 codes carry (01) GTIN, (17) expiry, (10) lot, (21) serial
    in that order (fixed-length AIs first, as the GS1 General Specifications recommend, so only
    the lot needs a separator); NMPA codes are their 20 digits."""
    chosen = symbology or DEFAULT[scheme]
    if chosen not in _FOR_SCHEME[scheme]:
        raise InvalidArgument(f"a {scheme.name} code cannot be printed as {chosen.value}",
                              field="symbology")
    if scheme is Scheme.NMPA:
        if _NMPA_SERIALS.fullmatch("\n".join(serials) + "\n") is None:
            raise InvalidArgument("NMPA production identifiers are 13 digits", field="serials")
        return LabelRun(lambda position, serial: _nmpa(position, product + serial), serials,
                        start)
    head = {"01": product}
    if expiry is not None:
        head["17"] = expiry
    if lot is not None:
        head["10"] = lot
    for ai, value in head.items():
        gs1.check_value(ai, value)
    if _SERIALS.fullmatch("\n".join(serials) + "\n") is None:
        for serial in serials:
            gs1.check_value("21", serial)  # names the first serial that is not one
    # Everything but the serial is the same on every label of the job: written once here.
    fields = tuple(head.items())
    text_lines = (f"GTIN {product}", *(f"EXP {expiry}",) * (expiry is not None),
                  *(f"LOT {lot}",) * (lot is not None))
    code_head = f"(01){product}(21)"
    if chosen is Symbology.DIGITAL_LINK_QR:
        sample = render(Scan(Code(Scheme.GS1, product, "S"), lot, expiry), Form.DIGITAL_LINK,
                        host=host)
        before, after = sample.split("/21/S", 1)

        def link_label(position: int, serial: str) -> Label:
            encoded = serial if serial is _PLACEHOLDER else quote(serial, safe="")
            link = f"{before}/21/{encoded}{after}"
            return Label(position, code_head + gs1.escape_hri(serial), chosen, link,
                         f"]Q1{link}", (*text_lines, f"SN {serial}"), (*fields, ("21", serial)))

        return LabelRun(link_label, serials, start)
    element_head = gs1.render_element({**head, "21": "S"})[3:-len("21S")]
    data_head = "".join(f"[{ai}]{value}" for ai, value in fields) + "[21]"
    scanned_head = SYMBOLOGY_ID[chosen] + element_head + "21"

    def element_label(position: int, serial: str) -> Label:
        return Label(position, code_head + gs1.escape_hri(serial), chosen, data_head + serial,
                     scanned_head + serial, (*text_lines, f"SN {serial}"),
                     (*fields, ("21", serial)))

    return LabelRun(element_label, serials, start)


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
    return Label(position, digits, Symbology.CODE128, digits, f"]C0{digits}", (digits,),
                 (("nmpa", digits),))
