"""SSCC (AI 00): check digits, minting, every written form and back, allocation ranges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import digit_strings
from tracecore import gs1, sscc
from tracecore.errors import InvalidArgument, ParseError

#: The EPC Tag Data Standard's SSCC example: extension 1, prefix 0614141, reference 234567890.
EXAMPLE = "106141412345678908"


@st.composite
def allocations(draw: st.DrawFn) -> tuple[str, int, int]:
    """A company prefix, an extension digit and a serial reference that fits under it."""
    prefix = draw(st.integers(sscc.MIN_PREFIX, sscc.MAX_PREFIX).flatmap(digit_strings))
    return prefix, draw(st.integers(0, 9)), draw(st.integers(0, sscc.capacity(prefix) - 1))


def test_the_tds_example_has_check_digit_eight() -> None:
    """Extension 1, prefix 0614141 and reference 234567890 make the standard's example."""
    assert sscc.mint("0614141", 1, 234567890) == EXAMPLE
    assert sscc.check(EXAMPLE) == EXAMPLE


def test_a_wrong_check_digit_names_the_expected_one() -> None:
    """A mistyped last digit is refused with the digit it needs."""
    with pytest.raises(ParseError, match="check digit is 3, expected 8"):
        sscc.check(EXAMPLE[:17] + "3")


@given(allocations())
def test_minted_sscc_is_18_digits_with_a_valid_check_digit(allocation: tuple[str, int, int]
                                                          ) -> None:
    """Every minted SSCC passes the GS1 check and keeps its prefix and reference."""
    prefix, extension, reference = allocation
    code = sscc.mint(prefix, extension, reference)
    assert len(code) == 18 and code.isdigit()
    assert int(code[17]) == gs1.check_digit(code[:17])
    assert code[0] == str(extension) and code[1:1 + len(prefix)] == prefix
    assert sscc.serial_reference(code, prefix) == reference


@given(allocations(), st.sampled_from(["hri", "element", "digital-link", "epc-uri", "bare"]))
def test_every_form_parses_back_to_the_same_sscc(allocation: tuple[str, int, int],
                                                 form: str) -> None:
    """HRI, element string, Digital Link, EPC URI and bare digits all read back as written."""
    prefix, extension, reference = allocation
    code = sscc.mint(prefix, extension, reference)
    text = {
        "hri": sscc.render_hri(code),
        "element": sscc.render_element(code),
        "digital-link": sscc.render_digital_link(code, "https://id.example.com/path"),
        "epc-uri": sscc.render_epc_uri(code, len(prefix)),
        "bare": code,
    }[form]
    assert sscc.parse(text) == code


def test_forms_are_written_as_gs1_and_tds_spell_them() -> None:
    """(00) HRI, ]C1 element string, /00/ Digital Link and urn:epc:id:sscc: with the prefix."""
    assert sscc.render_hri(EXAMPLE) == "(00)106141412345678908"
    assert sscc.render_element(EXAMPLE) == "]C100106141412345678908"
    assert sscc.render_digital_link(EXAMPLE) == "https://id.gs1.org/00/106141412345678908"
    assert sscc.render_epc_uri(EXAMPLE, 7) == "urn:epc:id:sscc:0614141.1234567890"


@given(allocations(), st.integers(1, 500))
def test_a_range_never_holds_the_same_sscc_twice(allocation: tuple[str, int, int],
                                                 count: int) -> None:
    """The SSCCs of one allocation are all different, in order of their serial references."""
    prefix, extension, first = allocation
    count = min(count, sscc.capacity(prefix) - first)
    ssccs = sscc.Range(prefix, extension, first, count).ssccs()
    assert len(set(ssccs)) == len(ssccs) == count
    assert [sscc.serial_reference(s, prefix) for s in ssccs] == list(range(first, first + count))


@pytest.mark.parametrize("text", [
    "", "10614141234567890", "1061414123456789080", "(00)106141412345678909", "]C100106141",
    "https://id.gs1.org/01/09501101530003", "urn:epc:id:sscc:0614141.123456789", "hello",
], ids=["empty", "17-digits", "19-digits", "bad-check", "short-element", "gtin-link",
        "epc-short", "word"])
def test_anything_else_is_a_parse_error(text: str) -> None:
    """Text that is not an SSCC in a known form is refused with a reason."""
    with pytest.raises(ParseError):
        sscc.parse(text)


def test_prefix_extension_and_reference_are_bounded() -> None:
    """A 5-digit prefix, extension digit 10 or a reference past the prefix's space is refused."""
    with pytest.raises(InvalidArgument, match="company_prefix"):
        sscc.mint("12345", 0, 1)
    with pytest.raises(InvalidArgument, match="extension_digit"):
        sscc.mint("0614141", 10, 1)
    with pytest.raises(InvalidArgument, match="serial_reference"):
        sscc.mint("061414112345", 0, sscc.capacity("061414112345"))
