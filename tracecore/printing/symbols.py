"""One label's symbol, encoded by zxing-cpp and drawn as SVG or PNG.

zxing-cpp (its writer is zint) does the encoding: data modes, error correction, symbol size.
What is drawn here is only its module matrix, as vector paths or a bitmap.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from typing import Any, cast

import zxingcpp
from PIL import Image

from tracecore.printing.labels import Label, Symbology

_FORMAT = {
    Symbology.GS1_DATAMATRIX: zxingcpp.BarcodeFormat.DataMatrix,
    Symbology.DIGITAL_LINK_QR: zxingcpp.BarcodeFormat.QRCode,
    Symbology.GS1_QR: zxingcpp.BarcodeFormat.QRCode,
    Symbology.CODE128: zxingcpp.BarcodeFormat.Code128,
    Symbology.GS1_128: zxingcpp.BarcodeFormat.Code128,
}
_GS1 = frozenset({Symbology.GS1_DATAMATRIX, Symbology.GS1_QR, Symbology.GS1_128})
LINEAR = frozenset({Symbology.CODE128, Symbology.GS1_128})
#: Light margin around each symbol, in modules: DataMatrix 1, QR Code 4, Code 128 10 (the
#: minimum quiet zones of ISO/IEC 16022, 18004 and 15417).
QUIET_ZONE = {
    Symbology.GS1_DATAMATRIX: 1,
    Symbology.DIGITAL_LINK_QR: 4,
    Symbology.GS1_QR: 4,
    Symbology.CODE128: 10,
    Symbology.GS1_128: 10,
}
#: Bar height of linear symbols, in modules, and the room for the text line under them.
BAR_HEIGHT = 50
_TEXT_HEIGHT = 12
_DARK_RUN = re.compile(rb"\x00+")
_CHUNK = 8


@dataclass(frozen=True, slots=True)
class Modules:
    """A symbol's module matrix without quiet zone: ``dark[y * width + x]`` is 0 where dark.

    A linear symbol has one row: its bars run the full bar height."""

    width: int
    height: int
    dark: bytes


def encode(label: Label) -> zxingcpp.Barcode:
    """The label's symbol. GS1 symbologies get FNC1 first; DataMatrix is kept square (some
    verifiers and printers do not read the rectangular extension sizes)."""
    symbology = label.symbology
    if symbology is Symbology.GS1_DATAMATRIX:
        return zxingcpp.create_barcode(label.data, _FORMAT[symbology], gs1=True,
                                       force_square=True)
    if symbology in _GS1:
        return zxingcpp.create_barcode(label.data, _FORMAT[symbology], gs1=True)
    return zxingcpp.create_barcode(label.data, _FORMAT[symbology])


def modules(label: Label) -> Modules:
    """The module matrix of the label's symbol."""
    width, height, data = _pixels(encode(label).to_image(scale=1, add_quiet_zones=False))
    if label.symbology in LINEAR:
        return Modules(width, 1, data[:width])
    return Modules(width, height, data)


def svg(label: Label) -> str:
    """An SVG document of the symbol with its quiet zone, one user unit a module (the label
    template scales it); linear symbols carry their human-readable line."""
    m = modules(label)
    quiet = QUIET_ZONE[label.symbology]
    linear = m.height == 1
    width = m.width + 2 * quiet
    height = (BAR_HEIGHT + _TEXT_HEIGHT if linear else m.height) + 2 * quiet
    parts: list[str] = []
    append = parts.append
    row_path = _bar_path if linear else _row_path
    for y in range(m.height):
        append(row_path(m.dark[y * m.width:(y + 1) * m.width], quiet, y + quiet))
    text = ""
    if linear:
        text = (f'<text x="{width / 2:g}" y="{quiet + BAR_HEIGHT + _TEXT_HEIGHT - 2}" '
                f'font-family="monospace" font-size="{_TEXT_HEIGHT - 2}" text-anchor="middle">'
                f"{escape(label.lines[0])}</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'shape-rendering="crispEdges"><rect width="{width}" height="{height}" fill="#fff"/>'
            f'<path d="{"".join(parts)}"/>{text}</svg>\n')


def png(label: Label, *, scale: int = 4) -> bytes:
    """A grey-scale PNG of the symbol, ``scale`` pixels a module, with its quiet zone; linear
    symbols carry their human-readable line."""
    barcode = encode(label)
    linear = label.symbology in LINEAR
    width, height, pixels = _pixels(barcode.to_image(scale=scale, add_quiet_zones=True,
                                                     add_hrt=linear))
    out = io.BytesIO()
    Image.frombuffer("L", (width, height), pixels, "raw", "L", 0, 1).save(
        out, "PNG", compress_level=1)
    return out.getvalue()


def _pixels(image: zxingcpp.Image) -> tuple[int, int, bytes]:
    """Width, height and 8-bit grey pixels (0 dark, 255 light) of a zxing-cpp image."""
    view = memoryview(cast(Any, image))
    height, width = cast(tuple[int, int], view.shape)
    return width, height, view.tobytes()


def _row_path(row: bytes, x0: int, y: int) -> str:
    """Path commands for one row of a matrix symbol: each dark run a 1-module-high box."""
    parts = []
    for start in range(0, len(row), _CHUNK):
        relative = _chunk_path(row[start:start + _CHUNK])
        if relative:
            parts.append(f"M{x0 + start} {y}{relative}")
    return "".join(parts)


@lru_cache(maxsize=1024)
def _chunk_path(chunk: bytes) -> str:
    """Relative path commands for the dark runs of up to 8 modules, from the chunk's start.

    Rows repeat chunks endlessly across a job, so each of the 510 possible chunks is worked out
    once; a run split at a chunk edge is drawn as two adjoining boxes."""
    parts = []
    at = 0
    for run in _DARK_RUN.finditer(chunk):
        n = run.end() - run.start()
        parts.append(f"m{run.start() - at} 0h{n}v1h-{n}z")
        at = run.start()
    return "".join(parts)


def _bar_path(row: bytes, x0: int, y: int) -> str:
    return "".join(f"M{x0 + run.start()} {y}h{run.end() - run.start()}v{BAR_HEIGHT}"
                   f"h-{run.end() - run.start()}z" for run in _DARK_RUN.finditer(row))
