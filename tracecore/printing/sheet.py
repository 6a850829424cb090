"""PDF label sheets: labels in a grid on A4 pages, each symbol drawn as vector boxes with its
human-readable lines under it (fpdf2)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fpdf import FPDF

from tracecore.printing.labels import Label, Symbology
from tracecore.printing.symbols import BAR_HEIGHT, LINEAR, QUIET_ZONE, modules

PAGE_MM = (210.0, 297.0)
MARGIN_MM = 8.0
_FONT_PT = 6.5
_LINE_MM = 2.8
_DARK_RUN = re.compile(rb"\x00+")


@dataclass(frozen=True, slots=True)
class Layout:
    """One symbology's label cell and module size."""

    cell_mm: tuple[float, float]
    module_mm: float


#: DataMatrix at 0.5 mm a module and QR Code at 0.4 mm (GS1 healthcare ranges), linear symbols
#: at 0.33 mm (GS1-128 on logistic labels: 0.495 to 1.016 mm, so 0.5 mm there).
LAYOUTS = {
    Symbology.GS1_DATAMATRIX: Layout((48.0, 34.0), 0.5),
    Symbology.DIGITAL_LINK_QR: Layout((48.0, 50.0), 0.4),
    Symbology.GS1_QR: Layout((48.0, 40.0), 0.4),
    Symbology.CODE128: Layout((64.0, 30.0), 0.33),
    Symbology.GS1_128: Layout((97.0, 50.0), 0.5),
}


def pdf(labels: Sequence[Label]) -> bytes:
    """A4 pages of labels, left to right and top to bottom, in the order given."""
    document = FPDF(unit="mm", format="A4")
    document.set_auto_page_break(False)
    document.set_font("Helvetica", size=_FONT_PT)
    document.set_fill_color(0, 0, 0)
    if not labels:
        document.add_page()
        return bytes(document.output())
    layout = LAYOUTS[labels[0].symbology]
    cell_w, cell_h = layout.cell_mm
    columns = int((PAGE_MM[0] - 2 * MARGIN_MM) // cell_w)
    rows = int((PAGE_MM[1] - 2 * MARGIN_MM) // cell_h)
    for i, label in enumerate(labels):
        slot = i % (columns * rows)
        if slot == 0:
            document.add_page()
        x = MARGIN_MM + (slot % columns) * cell_w
        y = MARGIN_MM + (slot // columns) * cell_h
        _draw(document, label, x, y, LAYOUTS[label.symbology])
    return bytes(document.output())


def _draw(document: FPDF, label: Label, x: float, y: float, layout: Layout) -> None:
    m = modules(label)
    size = layout.module_mm
    left = x + QUIET_ZONE[label.symbology] * size
    top = y + 2.0
    rect = document.rect
    if label.symbology in LINEAR:
        height = BAR_HEIGHT * size / 2
        for run in _DARK_RUN.finditer(m.dark):
            rect(left + run.start() * size, top, (run.end() - run.start()) * size, height,
                 style="F")
        bottom = top + height
    else:
        for row in range(m.height):
            line = m.dark[row * m.width:(row + 1) * m.width]
            for run in _DARK_RUN.finditer(line):
                rect(left + run.start() * size, top + row * size,
                     (run.end() - run.start()) * size, size, style="F")
        bottom = top + m.height * size
    for n, text in enumerate(label.lines):
        document.text(left, bottom + (n + 1) * _LINE_MM, text)
