"""ZPL II for thermal label printers: one ^XA…^XZ format per label.

The printer's own firmware encodes the symbol (^BX DataMatrix, ^BQ QR Code, ^BC Code 128); this
module only writes the commands and the field data, with FNC1 where GS1 needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from tracecore.errors import InvalidArgument
from tracecore.gs1 import GS
from tracecore.printing.labels import Label, LabelRun, Symbology

#: The ^BX escape character: "#1" in DataMatrix field data is FNC1 (first: GS1 mode; later: a
#: separator). "#" is outside GS1 character set 82, so no lot or serial contains it.
_ESCAPE = "#"
_SPECIAL = re.compile(r"[\^~\\]")
_LINE_DOTS = 24


def formats(labels: Iterable[Label], *, module_dots: int = 4) -> Iterator[str]:
    """The ZPL of each label; ``module_dots`` is the DataMatrix / QR module size in printer dots
    (4 dots at 203 dpi is 0.5 mm)."""
    # Most text lines (GTIN, lot, expiry) are the same on every label: each is written once.
    lines: dict[tuple[int, int, str], str] = {}
    parts = labels.template(lambda label: _format(label, module_dots, lines)) if isinstance(
        labels, LabelRun) else None
    if parts is not None:
        assert isinstance(labels, LabelRun)
        for serial in labels.serials:
            yield serial.join(parts)
        return
    for label in labels:
        yield _format(label, module_dots, lines)


def _format(label: Label, dots: int, cache: dict[tuple[int, int, str], str]) -> str:
    symbology = label.symbology
    if symbology is Symbology.GS1_DATAMATRIX:
        element = label.scanned[3:].replace(GS, "#1")
        symbol = f"^FO20,20^BXN,{dots},200,0,0,1,{_ESCAPE}^FD#1{element}^FS"
        top = 0
        left = 40 + 30 * dots
    elif symbology is Symbology.DIGITAL_LINK_QR:
        symbol = f"^FO20,20^BQN,2,{dots}{_field('MA,' + label.data)}^FS"
        top = 0
        left = 40 + 50 * dots
    elif symbology is Symbology.CODE128:
        # ">;" starts subset C: the 20 digits as 10 symbol characters; "Y" prints them under.
        return f"^XA^FO20,20^BCN,100,Y,N,N^FD>;{label.data}^FS^XZ\n"
    elif symbology is Symbology.GS1_128:
        # ">;>8": subset C, then FNC1 in first position: GS1-128.
        symbol = f"^FO40,20^BY3^BCN,200,N,N,N^FD>;>800{label.data[4:]}^FS"
        top = 240
        left = 40
    else:
        raise InvalidArgument(f"{symbology.value} has no ZPL output; use datamatrix or qr",
                              field="symbology")
    parts = []
    for i, line in enumerate(label.lines):
        key = (left, top + i, line)
        text = cache.get(key)
        if text is None:
            if len(cache) > 4096:
                cache.clear()
            text = cache[key] = (f"^FO{left},{20 + top + i * (_LINE_DOTS + 6)}^A0N,{_LINE_DOTS},"
                                 f"{_LINE_DOTS}{_field(line)}^FS")
        parts.append(text)
    return f"^XA{symbol}{''.join(parts)}^XZ\n"


def _field(data: str) -> str:
    """^FD and the data; with ^FH and hex escapes when it holds a ZPL command character."""
    if _SPECIAL.search(data) is None:
        return f"^FD{data}"
    return "^FH\\^FD" + _SPECIAL.sub(lambda m: f"\\{ord(m[0]):02X}", data)
