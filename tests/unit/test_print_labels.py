"""Print-job labels, ZPL and the variable-data CSV: each carries exactly its code, in GS1 order."""

from __future__ import annotations

import csv
import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import digit_strings, expiries, gtins, lots
from tracecore import sscc
from tracecore.codes import Code, Scheme, parse
from tracecore.errors import InvalidArgument
from tracecore.gs1 import GS
from tracecore.printing import labels, vdp, zpl
from tracecore.printing.labels import Symbology

GTIN = "09501101530003"
SERIALS = ["0A1B2C3D4E5F6G7H8J9K", "ZZZZ00001111XXXX2222"]
_FIELD_DATA = re.compile(r"\^FD(.*?)\^FS")


def _scan_of(label: labels.Label) -> tuple[Code, str | None, str | None]:
    scan = parse(label.scanned)
    return scan.code, scan.lot, scan.expiry


@given(gtins(), st.lists(st.text("0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=1, max_size=20),
                         min_size=1, max_size=5),
       st.none() | lots(), st.none() | expiries(),
       st.sampled_from([Symbology.GS1_DATAMATRIX, Symbology.GS1_QR, Symbology.DIGITAL_LINK_QR]))
def test_what_a_scanner_reads_from_a_gs1_label_is_its_code_lot_and_expiry(
        gtin: str, serials: list[str], lot: str | None, expiry: str | None,
        symbology: Symbology) -> None:
    """The scanned text of every GS1 label parses back to its code, lot and expiry."""
    for serial, label in zip(serials, labels.for_codes(
            Scheme.GS1, gtin, serials, lot=lot, expiry=expiry, symbology=symbology), strict=True):
        assert _scan_of(label) == (Code(Scheme.GS1, gtin, serial), lot, expiry)
        assert label.scanned.startswith(labels.SYMBOLOGY_ID[symbology])
        assert parse(label.code).code == Code(Scheme.GS1, gtin, serial)


def test_gs1_element_strings_put_fixed_length_ais_first_and_a_gs_only_after_the_lot() -> None:
    """(01) GTIN, (17) expiry, (10) lot, GS, (21) serial: the order GS1 recommends."""
    label = labels.for_codes(Scheme.GS1, GTIN, SERIALS[:1], lot="L42", expiry="280630")[0]
    assert label.scanned == f"]d2{'01' + GTIN}17280630" f"10L42{GS}21{SERIALS[0]}"
    assert label.data == f"[01]{GTIN}[17]280630[10]L42[21]{SERIALS[0]}"
    assert label.lines == (f"GTIN {GTIN}", "EXP 280630", "LOT L42", f"SN {SERIALS[0]}")


@given(digit_strings(7), st.lists(digit_strings(13), min_size=1, max_size=5))
def test_nmpa_labels_are_code128_of_the_20_digits(drug_id: str, serials: list[str]) -> None:
    """An NMPA label encodes its 20 digits and shows them under the bars."""
    for serial, label in zip(serials, labels.for_codes(Scheme.NMPA, drug_id, serials),
                             strict=True):
        assert label.symbology is Symbology.CODE128
        assert label.data == drug_id + serial
        assert parse(label.scanned).code == Code(Scheme.NMPA, drug_id, serial)
        assert label.lines == (drug_id + serial,)


def test_sscc_labels_are_gs1_128_with_ai_00() -> None:
    """A logistic label encodes (00) and the SSCC, and reads back as ]C1 00…"""
    code = sscc.mint("0614141", 1, 234567890)
    label = labels.for_ssccs([code])[0]
    assert (label.symbology, label.data, label.scanned) == (
        Symbology.GS1_128, f"[00]{code}", f"]C100{code}")
    assert sscc.parse(label.scanned) == code


def test_a_symbology_the_scheme_cannot_use_is_refused() -> None:
    """NMPA digits are not printed as a GS1 DataMatrix, nor GS1 codes as bare Code 128."""
    with pytest.raises(InvalidArgument, match="symbology"):
        labels.for_codes(Scheme.NMPA, "8612345", ["1234567890123"],
                         symbology=Symbology.GS1_DATAMATRIX)
    with pytest.raises(InvalidArgument, match="symbology"):
        labels.for_codes(Scheme.GS1, GTIN, SERIALS, symbology=Symbology.CODE128)


def test_zpl_datamatrix_field_data_is_fnc1_then_the_element_string() -> None:
    """Each ZPL format's DataMatrix field, with #1 read as FNC1 / GS, is the label's code."""
    made = labels.for_codes(Scheme.GS1, GTIN, SERIALS, lot="L-7", expiry="300101")
    formats = list(zpl.formats(made))
    assert len(formats) == 2
    for label, text in zip(made, formats, strict=True):
        assert text.startswith("^XA") and text.endswith("^XZ\n")
        assert "^BXN,4,200,0,0,1,#" in text
        data = _FIELD_DATA.findall(text)
        assert data[0].startswith("#1")
        assert parse("]d2" + data[0][2:].replace("#1", GS)) == parse(label.scanned)
        assert [d for d in data[1:]] == list(label.lines)


def test_zpl_of_nmpa_and_sscc_labels_uses_code128_subset_c() -> None:
    """NMPA codes go in Code 128 subset C; SSCCs in GS1-128 with FNC1 (>8) first."""
    nmpa_zpl = next(zpl.formats(labels.for_codes(Scheme.NMPA, "8612345", ["1234567890123"])))
    assert "^BCN,100,Y,N,N^FD>;86123451234567890123^FS" in nmpa_zpl
    code = sscc.mint("0614141", 1, 234567890)
    sscc_zpl = next(zpl.formats(labels.for_ssccs([code])))
    assert f"^FD>;>800{code}^FS" in sscc_zpl


def test_zpl_escapes_command_characters_in_text() -> None:
    """A ^ or ~ in a Digital Link host cannot start a ZPL command: it is hex-escaped under ^FH."""
    made = labels.for_codes(Scheme.GS1, GTIN, SERIALS[:1], symbology=Symbology.DIGITAL_LINK_QR,
                            host="https://id.example.com/a~b")
    text = next(zpl.formats(made))
    assert "^FH\\^FDMA,https://id.example.com/a\\7Eb/01/" in text
    assert "~" not in text


def test_gs1_qr_has_no_zpl_output() -> None:
    """ZPL for GS1 QR is refused with the symbologies that have one."""
    made = labels.for_codes(Scheme.GS1, GTIN, SERIALS[:1], symbology=Symbology.GS1_QR)
    with pytest.raises(InvalidArgument, match="datamatrix or qr"):
        next(zpl.formats(made))


def test_csv_rows_hold_each_field_and_quote_what_needs_it() -> None:
    """One row per label with GTIN, expiry, lot and serial apart; a lot with a comma survives."""
    made = labels.for_codes(Scheme.GS1, GTIN, SERIALS, lot='L,"1"', expiry="280630")
    rows = list(csv.DictReader(io.StringIO(vdp.csv_text(made))))
    assert [r["serial"] for r in rows] == SERIALS
    assert {r["lot"] for r in rows} == {'L,"1"'}
    assert rows[1]["code"] == f"(01){GTIN}(21){SERIALS[1]}"
    assert rows[0]["data"] == f'[01]{GTIN}[17]280630[10]L,"1"[21]{SERIALS[0]}'
    assert vdp.csv_text(made, header=False).count("\n") == 2


@pytest.mark.parametrize("symbology", [Symbology.GS1_DATAMATRIX, Symbology.DIGITAL_LINK_QR,
                                       Symbology.CODE128])
def test_a_whole_run_writes_the_same_text_as_its_labels_one_by_one(symbology: Symbology) -> None:
    """ZPL and CSV of a run (filled-in templates) equal those of its labels rendered singly."""
    if symbology is Symbology.CODE128:
        run = labels.for_codes(Scheme.NMPA, "8612345", ["1234567890123", "0000000000007"],
                               start=40)
    else:
        run = labels.for_codes(Scheme.GS1, GTIN, SERIALS, lot="L-9", expiry="280600",
                               symbology=symbology, start=40)
    singly = [run[0], run[1]]
    assert list(zpl.formats(run)) == list(zpl.formats(singly))
    assert vdp.csv_text(run) == vdp.csv_text(singly)
    assert vdp.csv_text(run).splitlines()[1].startswith("40,")
