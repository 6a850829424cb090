"""Every symbol of a print job, in every image output (SVG, PNG, PDF), decodes with zxing-cpp
back to exactly its code, GS1 symbology identifier included (]d2, ]Q1, ]Q3, ]C0, ]C1)."""

from __future__ import annotations

import io
import random
from collections import Counter

import pypdfium2
import pytest
import resvg_py
import zxingcpp
from PIL import Image

from tracecore import sscc
from tracecore.codes import Scheme
from tracecore.printing import labels, sheet, symbols
from tracecore.printing.labels import Label, Symbology

pytestmark = pytest.mark.timeout(600)

GTIN = "09501101530003"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _job(seed: int) -> list[Label]:
    """2,000 labels: 1,200 GS1 DataMatrix, 300 Digital Link QR, 200 GS1 QR, 200 NMPA Code 128,
    100 SSCC GS1-128, with random serials and a lot holding GS1 punctuation."""
    rng = random.Random(seed)

    def serials(n: int, length: int = 20, alphabet: str = _ALPHABET) -> list[str]:
        return ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(n)]

    lot = "L/24-7(B)"
    out = list(labels.for_codes(Scheme.GS1, GTIN, serials(1200), lot=lot, expiry="290630"))
    out += labels.for_codes(Scheme.GS1, GTIN, serials(300), lot=lot, expiry="290630",
                            symbology=Symbology.DIGITAL_LINK_QR, host="https://id.example.com")
    out += labels.for_codes(Scheme.GS1, GTIN, serials(200), lot=lot, expiry="290600",
                            symbology=Symbology.GS1_QR)
    out += labels.for_codes(Scheme.NMPA, "8612345", serials(200, 13, "0123456789"))
    first = rng.randrange(10**8)
    out += labels.for_ssccs(sscc.Range("0614141", 7, first, 100).ssccs())
    return out


def _read(image: Image.Image) -> list[str]:
    """What a scanner sends for each symbol in the image: symbology identifier, then data."""
    found = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    return [f"{b.symbology_identifier}{b.text}" for b in found]


def test_every_png_symbol_decodes_to_its_code() -> None:
    """2,000 PNG files: each decodes to exactly its label's code and symbology identifier."""
    for label in _job(1):
        assert _read(Image.open(io.BytesIO(symbols.png(label)))) == [label.scanned], label


def test_every_svg_symbol_decodes_to_its_code() -> None:
    """2,000 SVG files, rasterized at 4 px a module: each decodes to exactly its code."""
    for label in _job(2):
        png = resvg_py.svg_to_bytes(svg_string=symbols.svg(label), zoom=4, background="#fff")
        assert _read(Image.open(io.BytesIO(bytes(png)))) == [label.scanned], label


def test_every_pdf_label_decodes_to_its_code() -> None:
    """2,000 labels on A4 sheets, rendered at 300 dpi: every symbol on every page decodes,
    and the page holds exactly the codes of its labels."""
    job = _job(3)
    decoded: Counter[str] = Counter()
    for symbology in Symbology:
        part = [label for label in job if label.symbology is symbology]
        document = pypdfium2.PdfDocument(sheet.pdf(part))
        for page in document:
            decoded.update(_read(page.render(scale=300 / 72).to_pil().convert("L")))
    assert decoded == Counter(label.scanned for label in job)
