"""Codes and scans: one parse entry point for every form, rendering, ledger keys and reasons."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.strategies import codes, gs1_codes, gs1_scans, nmpa_scans, scans
from tracecore import gs1
from tracecore.codes import (
    MAX_INPUT_LENGTH,
    Code,
    Form,
    Scan,
    Scheme,
    parse,
    parse_many,
    parse_one,
    parsed_codes,
    parsed_codes_reference,
    product_key,
    render,
)
from tracecore.errors import InvalidArgument, ParseError

GTIN = "09501101530003"
NMPA = Code(Scheme.NMPA, "8123456", "7890123456789")


@given(picks=st.lists(st.tuples(gs1_scans(), st.sampled_from([Form.HRI, Form.ELEMENT,
                                                               Form.DIGITAL_LINK]),
                                 st.booleans()), min_size=1, max_size=8))
def test_parse_one_answers_as_parse_whatever_was_read_before(
        picks: list[tuple[Scan, Form, bool]]) -> None:
    """The one-code read that remembers its last text answers every text, read again right
    after or not, as ``parse`` reads it."""
    for scan, form, twice in picks:
        text = render(scan, form)
        for _ in range(2 if twice else 1):
            assert parse_one(text) == parse(text) == scan


@pytest.mark.parametrize("form", [Form.HRI, Form.ELEMENT, Form.DIGITAL_LINK])
@given(scan=gs1_scans())
def test_gs1_scans_round_trip_through_every_form_with_lot_and_expiry(
    form: Form, scan: Scan
) -> None:
    """HRI, element string and Digital Link keep the code, lot and expiry exactly."""
    assert parse(render(scan, form)) == scan


@given(scan=gs1_scans(), host=st.sampled_from(
    ["https://id.gs1.org", "http://example.com/", "https://example.com:8443/a/01/b/"]))
def test_digital_links_round_trip_on_any_host_and_path_prefix(scan: Scan, host: str) -> None:
    """The host and its path prefix do not change what the Digital Link says."""
    assert parse(render(scan, Form.DIGITAL_LINK, host=host)) == scan


@given(code=gs1_codes(), length=st.integers(6, 12))
def test_gs1_codes_round_trip_through_the_epc_uri(code: Code, length: int) -> None:
    """The SGTIN EPC URI keeps the code, whatever the company prefix length."""
    assert parse(render(code, Form.EPC_URI, company_prefix_length=length)) == Scan(code)


@given(scan=nmpa_scans())
def test_nmpa_scans_round_trip_through_the_20_digits(scan: Scan) -> None:
    """The NMPA form keeps the code."""
    assert parse(render(scan, Form.NMPA20)) == scan


@given(code=codes())
def test_canonical_text_parses_back_to_the_code(code: Code) -> None:
    """Code.text() is a form parse() reads back to the same code."""
    assert parse(code.text()).code == code


def test_canonical_text_is_hri_for_gs1_and_the_digits_for_nmpa() -> None:
    """GS1 text is (01)gtin(21)serial; NMPA text is the 20 digits."""
    assert Code(Scheme.GS1, GTIN, "ABC").text() == "(01)09501101530003(21)ABC"
    assert NMPA.text() == "81234567890123456789"


@given(code=codes())
def test_ledger_keys_round_trip_and_start_with_the_product_key(code: Code) -> None:
    """key() is scheme letter + product + serial, and from_key() reads it back."""
    key = code.key()
    assert Code.from_key(key) == code
    assert key.startswith(product_key(code.scheme, code.product))
    assert key[len(product_key(code.scheme, code.product)):] == code.serial.encode()


def test_ledger_keys_known_values() -> None:
    """GS1 keys are b"G" + GTIN-14 + serial; NMPA keys b"N" + the 20 digits."""
    assert Code(Scheme.GS1, GTIN, "ABC").key() == b"G09501101530003ABC"
    assert NMPA.key() == b"N81234567890123456789"


@pytest.mark.parametrize("key", [b"", b"X123", b"G09501101530003", b"N8123456", b"G\xff" * 9,
                                 b"N8123456789012345678\xe9"])
def test_from_key_refuses_what_is_not_a_code_key(key: bytes) -> None:
    """Short keys, unknown scheme letters and non-ASCII bytes are refused."""
    with pytest.raises(InvalidArgument, match="not a code key"):
        Code.from_key(key)


@pytest.mark.parametrize(
    ("text", "scan"),
    [("(01)09501101530003(17)261231(10)LOT42(21)SERIAL",
      Scan(Code(Scheme.GS1, GTIN, "SERIAL"), "LOT42", "261231")),
     ("]d2010950110153000317261231" + "10LOT42\x1d21SER",
      Scan(Code(Scheme.GS1, GTIN, "SER"), "LOT42", "261231")),
     ("https://id.example.com/01/09501101530003/10/LOT%2F42/21/ABC?17=261200",
      Scan(Code(Scheme.GS1, GTIN, "ABC"), "LOT/42", "261200")),
     ("urn:epc:id:sgtin:0614141.812345.6789", Scan(Code(Scheme.GS1, "80614141123458", "6789"))),
     ("81234567890123456789", Scan(NMPA)),
     ("8123456 7890123456789", Scan(NMPA))],
    ids=["hri", "element", "digital-link", "epc-uri", "nmpa", "nmpa-grouped"],
)
def test_known_vectors_of_every_form(text: str, scan: Scan) -> None:
    """Each form of the design's examples parses to the expected scan."""
    assert parse(text) == scan
    assert parse(text.encode()) == scan


def test_twenty_bare_digits_are_nmpa_even_when_they_spell_an_element_string() -> None:
    """An all-digit GS1 element string of exactly 20 digits needs its symbology identifier."""
    element = "01" + GTIN + "2112"
    assert parse(element) == Scan(Code(Scheme.NMPA, element[:7], element[7:]))
    assert parse("]d2" + element) == Scan(Code(Scheme.GS1, GTIN, "12"))
    assert parse(element + "3") == Scan(Code(Scheme.GS1, GTIN, "123"))


def test_non_gs1_symbology_identifiers_are_dropped() -> None:
    """]Q1 before a Digital Link or ]C0 before NMPA digits is what a scanner sends for them."""
    assert parse("]Q1https://id.gs1.org/01/09501101530003/21/ABC") == Scan(
        Code(Scheme.GS1, GTIN, "ABC"))
    assert parse("]C081234567890123456789") == Scan(NMPA)


@pytest.mark.parametrize("text", ["\r\n81234567890123456789\r\n", "  (01)09501101530003(21)ABC\t",
                                  "\x1d0109501101530003" + "21ABC\n"])
def test_surrounding_blanks_from_scanners_are_ignored(text: str) -> None:
    """Spaces, tabs, CR and LF around the code do not matter; GS is data."""
    parse(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("(01)12345678901234(21)ABC", "GTIN check digit is 4, expected 1"),
     ("(01)09501101530003(21)" + "S" * 21, r"serial \(21\) longer than 20 characters"),
     ("(01)09501101530003(10)LOT", r"no serial \(21\)"),
     ("(21)ABC", r"no GTIN \(01\)"),
     ("", "empty"), ("  \r\n", "empty"),
     (b"(01)\xff", "not UTF-8"),
     ("(01)09501101530003(21)A\x00B", "'\\\\x00', which is not in GS1 character set 82"),
     ("(" * (MAX_INPUT_LENGTH + 1), "longer than 4096"),
     (b"1" * (MAX_INPUT_LENGTH + 1), "longer than 4096"),
     ("ABC", "not a code"), ("\x00", "not a code"),
     ("]x", "symbology identifier"), ("]d1]d181234567890123456789", "no code after"),
     ("8123456 789012345678", "19 digits"),
     ("https://id.gs1.org/01/09501101530003", r"no serial \(21\)")],
)
def test_parse_errors_carry_a_human_reason(text: str | bytes, reason: str) -> None:
    """Every failure is a ParseError whose reason says what is wrong."""
    with pytest.raises(ParseError, match=reason):
        parse(text)


_MESSY = st.text(alphabet=gs1.CSET82 + "()]\x1d/?=%:. -\\\x00é")


@given(st.one_of(st.text(), st.binary(), _MESSY, _MESSY.map(lambda t: "(01)" + t),
                 _MESSY.map(lambda t: "]d201" + t), _MESSY.map(lambda t: "https://x.org/01/" + t),
                 _MESSY.map(lambda t: "urn:epc:id:sgtin:" + t)))
@example("]d1" * 2000)
@example("(" * 4096)
def test_any_input_gives_a_scan_or_a_parse_error_and_nothing_else(text: str | bytes) -> None:
    """Arbitrary text and bytes never raise anything but ParseError."""
    try:
        assert isinstance(parse(text), Scan)
    except ParseError as error:
        assert error.reason


@given(scan=scans(), position=st.integers(0, 200), char=st.characters())
def test_mutated_codes_give_a_scan_or_a_parse_error(scan: Scan, position: int, char: str) -> None:
    """A valid code with one character replaced still parses or fails cleanly."""
    text = render(scan, Form.NMPA20 if scan.code.scheme is Scheme.NMPA else Form.ELEMENT)
    position %= len(text)
    with contextlib.suppress(ParseError):
        parse(text[:position] + char + text[position + 1:])


def test_parse_many_keeps_order_and_puts_errors_in_place() -> None:
    """A batch gives one Scan or ParseError per input, without raising."""
    results = parse_many(["81234567890123456789", "nonsense", b"\xff", "(01)09501101530003(21)X"])
    assert results[0] == Scan(NMPA)
    assert isinstance(results[1], ParseError) and isinstance(results[2], ParseError)
    assert results[1].__traceback__ is None
    assert results[3] == Scan(Code(Scheme.GS1, GTIN, "X"))


_OUR_SERIAL = st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=20, max_size=20)
# Our alphabet, and characters that end a lot, start a query, escape or are blanks.
_TAIL_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZILOUabz()/?%&\x1d \r\n-._\\"


def _reference(texts: list[str | bytes]) -> list[Scan | str]:
    out: list[Scan | str] = []
    for text in texts:
        try:
            out.append(parse(text))
        except ParseError as error:
            out.append(error.reason)
    return out


@given(scan=gs1_scans(), serials=st.lists(_OUR_SERIAL, min_size=1, max_size=3),
       tails=st.lists(st.text(alphabet=_TAIL_CHARS, min_size=15, max_size=25), max_size=6),
       form=st.sampled_from([Form.HRI, Form.ELEMENT, Form.DIGITAL_LINK]),
       prefix=st.sampled_from(["", "]d2", "\x1d", "]C1", " ", "]Q3\x1d"]))
def test_parse_many_reads_a_pallet_as_parse_reads_each_pack(
    scan: Scan, serials: list[str], tails: list[str], form: Form, prefix: str
) -> None:
    """Packs sharing everything before the serial, and near-misses of that layout, read in a
    batch exactly as one by one."""
    heads = [prefix + render(Scan(Code(Scheme.GS1, scan.code.product, serial), scan.lot,
                                  scan.expiry), form) for serial in serials]
    head = heads[0][:-20]
    texts: list[str | bytes] = [*heads, *(head + tail for tail in tails),
                                (head + serials[0]).encode(), head[:-1] + serials[0]]
    results = parse_many(texts)
    assert [r.reason if isinstance(r, ParseError) else r for r in results] == _reference(texts)


def test_parse_many_reads_shared_heads_of_every_layout_as_parse_does() -> None:
    """Genuine-looking packs after a first one, forged tails, foreign serials, typos, a trailing
    CR and NMPA codes among them read in a batch exactly as one by one."""
    serial = "015W0TZK2FYSPNVW05KJ"
    heads = ["]d201095011015300031730123110LOT-1\x1d21", "(01)09501101530003(17)301231(10)A(21)",
             "https://id.gs1.org/01/09501101530003/10/A/21/", "0109501101530003" + "21",
             "(01)09501101530003(21)"]
    texts: list[str | bytes] = []
    for head in heads:
        texts += [head + serial, head + serial[::-1], head + serial.lower(), head + serial + "\r",
                  head + serial[:-1], head + serial + "X", head + "I" * 20,
                  head + "(21)" + "A" * 16,
                  head + "1" * 20, head + serial.replace("5", "?"), "81234567890123456789"]
    texts.append(heads[2] + serial + "?17=301231")
    results = parse_many(texts)
    assert [r.reason if isinstance(r, ParseError) else r for r in results] == _reference(texts)
    assert sum(isinstance(r, Scan) for r in results) > len(heads) * 5


def test_render_of_a_code_is_render_of_its_bare_scan() -> None:
    """A Code renders as a Scan without lot or expiry."""
    code = Code(Scheme.GS1, GTIN, "ABC")
    for form in (Form.HRI, Form.ELEMENT, Form.DIGITAL_LINK):
        assert render(code, form) == render(Scan(code), form)


def test_element_rendering_carries_the_symbology_identifier_and_separators() -> None:
    """]d2, fixed-length fields first, GS after the lot only."""
    scan = Scan(Code(Scheme.GS1, GTIN, "SER"), "LOT42", "261231")
    assert render(scan, Form.ELEMENT) == "]d2010950110153000317261231" + "10LOT42\x1d21SER"
    assert render(scan, Form.HRI) == "(01)09501101530003(17)261231(10)LOT42(21)SER"
    assert render(scan, Form.DIGITAL_LINK) == (
        "https://id.gs1.org/01/09501101530003/10/LOT42/21/SER?17=261231")


@pytest.mark.parametrize(
    ("scan", "form", "field"),
    [(Scan(NMPA), Form.HRI, "form"), (Scan(NMPA), Form.EPC_URI, "form"),
     (Scan(Code(Scheme.GS1, GTIN, "A")), Form.NMPA20, "form"),
     (Scan(Code(Scheme.GS1, GTIN, "A")), Form.EPC_URI, "company_prefix_length"),
     (Scan(Code(Scheme.NMPA, "8123456", "123")), Form.NMPA20, "serial")],
)
def test_render_refuses_forms_a_code_cannot_take(scan: Scan, form: Form, field: str) -> None:
    """NMPA codes have only the 20 digits, GS1 codes no NMPA form, EPC needs a prefix length."""
    with pytest.raises(InvalidArgument) as raised:
        render(scan, form)
    assert raised.value.field == field


@pytest.mark.parametrize(
    "scan",
    [Scan(Code(Scheme.GS1, GTIN, "A B")), Scan(Code(Scheme.GS1, "09501101530004", "A")),
     Scan(Code(Scheme.GS1, GTIN, "A"), lot=""), Scan(Code(Scheme.GS1, GTIN, "A"), expiry="261301")],
)
def test_render_refuses_invalid_values(scan: Scan) -> None:
    """What render writes always parses: invalid serials, GTINs, lots and dates are refused."""
    for form in (Form.HRI, Form.ELEMENT, Form.DIGITAL_LINK):
        with pytest.raises(InvalidArgument):
            render(scan, form)


def test_a_batch_s_parsed_codes_and_keys_are_those_of_each_code() -> None:
    """``parsed_codes`` of a batch with failures among the codes: the scans that parsed, their
    codes and each code's ledger key, in order, as ``Code.key`` makes them one by one, with or
    without the compiled loop."""
    texts: list[str | bytes] = ["(01)09501101530003(21)015W0TZK2FYSPNVW05KJ", "nonsense",
                                "81234567890123456789", b"\xff",
                                "(01)09501101530003(17)301231(10)A(21)015W0TZK2FYSPNVW05KK",
                                "(01)09501101530003(21)" + "ABC"]
    scans = parse_many(texts)
    expected = [s for s in scans if not isinstance(s, ParseError)]
    assert len(expected) == 4
    for split in (parsed_codes, parsed_codes_reference):
        parsed, codes, keys = split(scans)
        assert parsed == expected
        assert codes == [s.code for s in expected]
        assert keys == [s.code.key() for s in expected]
    assert parsed_codes([]) == ([], [], [])
