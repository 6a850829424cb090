"""The SSCC as a code scheme: every written form reads to one code, and bare digits keep their
precedence over NMPA codes."""

from __future__ import annotations

import pytest

from tracecore import sscc
from tracecore.codes import Code, Form, Scheme, parse, render
from tracecore.errors import InvalidArgument, ParseError
from tracecore.mac import Mac
from tracecore.minting import check_tag
from tracecore.schemes import SCHEMES

SSCC = sscc.mint("0614141", 3, 1234567)
CODE = Code(Scheme.SSCC, "", SSCC)


@pytest.mark.parametrize("text", [
    SSCC, f"(00){SSCC}", f"(00) {SSCC}", f"]C100{SSCC}", f"]d200{SSCC}", f"\x1d00{SSCC}",
    f"https://example.com/00/{SSCC}", f"HTTPS://id.example.com/shop/00/{SSCC}?x=1",
    "urn:epc:id:sscc:0614141.3001234567", f" (00){SSCC}\r\n",
])
def test_every_written_form_of_an_sscc_reads_as_the_logistic_unit(text: str) -> None:
    """Digits, (00) HRI, element strings, Digital Link /00/ and EPC URI all name one SSCC."""
    assert parse(text).code == CODE


def test_an_sscc_survives_its_ledger_key_and_its_text() -> None:
    """Keyed S + 18 digits, written (00)…, an SSCC reads back from both."""
    assert CODE.key() == b"S" + SSCC.encode()
    assert Code.from_key(CODE.key()) == CODE
    assert CODE.text() == f"(00){SSCC}"
    assert parse(CODE.text()).code == CODE


@pytest.mark.parametrize(("form", "written"), [
    (Form.HRI, f"(00){SSCC}"), (Form.ELEMENT, f"]C100{SSCC}"),
    (Form.DIGITAL_LINK, f"https://id.gs1.org/00/{SSCC}"),
    (Form.EPC_URI, "urn:epc:id:sscc:0614141.3001234567"),
])
def test_an_sscc_renders_in_every_form_it_has(form: Form, written: str) -> None:
    """HRI, element string, Digital Link and EPC URI; each reads back to the SSCC."""
    assert render(CODE, form, company_prefix_length=7) == written
    assert parse(written).code == CODE


def test_an_sscc_has_no_nmpa_form_and_nothing_is_minted_under_it() -> None:
    """No 20-digit NMPA form, no product to mint under, and no tag any key could check."""
    with pytest.raises(InvalidArgument):
        render(CODE, Form.NMPA20)
    with pytest.raises(InvalidArgument):
        SCHEMES[Scheme.SSCC].check_product("")
    assert check_tag(CODE, {1: Mac(b"\x01" * 32)}) is None


def test_a_wrong_check_digit_in_an_explicit_sscc_form_is_refused_with_the_reason() -> None:
    """(00) with a wrong check digit is a malformed SSCC, not some other code."""
    wrong = SSCC[:17] + str((int(SSCC[17]) + 1) % 10)
    with pytest.raises(ParseError, match="check digit"):
        parse(f"(00){wrong}")
    with pytest.raises(ParseError, match="check digit"):
        parse(f"https://example.com/00/{wrong}")


def test_twenty_bare_digits_stay_an_nmpa_code_even_when_they_spell_00_and_an_sscc() -> None:
    """An NMPA drug identifier may start with 00: bare 20 digits are NMPA, ]C1 makes an SSCC."""
    assert parse(f"00{SSCC}").code == Code(Scheme.NMPA, f"00{SSCC}"[:7], f"00{SSCC}"[7:])
    assert parse(f"]C100{SSCC}").code == CODE
    assert parse(f"\x1d00{SSCC}").code == CODE


def test_eighteen_bare_digits_are_an_sscc_only_with_a_valid_check_digit() -> None:
    """18 digits read as an SSCC when the check digit fits, and as nothing otherwise."""
    assert parse(SSCC).code == CODE
    with pytest.raises(ParseError):
        parse(SSCC[:17] + str((int(SSCC[17]) + 1) % 10))


def test_gs1_pack_codes_still_read_after_a_gs1_symbology_identifier() -> None:
    """]d2 followed by (01)…(21)… is still a GS1 pack code, not an SSCC."""
    scan = parse("]d2010950110153000321ABC")
    assert scan.code == Code(Scheme.GS1, "09501101530003", "ABC")
