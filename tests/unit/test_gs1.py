"""GS1 syntax: GTIN check digits, AI values, dates; HRI, element, Digital Link and EPC forms."""

from __future__ import annotations

import datetime
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import any_gtins, expiries, gtins, lots
from tracecore import gs1
from tracecore.errors import InvalidArgument, ParseError

GTIN = "09501101530003"


def test_check_digit_weights_three_and_one_from_the_right() -> None:
    """The GS1 example body 1234567890123 has check digit 1."""
    assert gs1.check_digit("1234567890123") == 1
    assert gs1.normalize_gtin("12345678901231") == "12345678901231"


def test_wrong_check_digit_names_the_expected_one() -> None:
    """12345678901234 is refused with the digit it has and the one it needs."""
    with pytest.raises(ParseError, match="GTIN check digit is 4, expected 1"):
        gs1.normalize_gtin("12345678901234")


@pytest.mark.parametrize(
    ("text", "gtin14"),
    [("96385074", "00000096385074"), ("036000291452", "00036000291452"),
     ("9501101530003", GTIN), (GTIN, GTIN)],
    ids=["gtin-8", "gtin-12", "gtin-13", "gtin-14"],
)
def test_short_gtins_are_left_padded_to_14_digits(text: str, gtin14: str) -> None:
    """GTIN-8, -12 and -13 become the GTIN-14 with leading zeros."""
    assert gs1.normalize_gtin(text) == gtin14


@pytest.mark.parametrize(
    "text",
    ["", "1234567", "123456789", "12345678901", "123456789012345", "1234567890123a",
     "１２３４５６７８９０１２３１", "١٢٣٤٥٦٧٨٩٠١٢٣١", " 12345678901231"],
    ids=["empty", "7-digits", "9-digits", "11-digits", "15-digits", "letter", "fullwidth",
         "arabic-indic", "space"],
)
def test_gtins_of_other_lengths_or_characters_are_refused(text: str) -> None:
    """Only 8, 12, 13 or 14 ASCII digits make a GTIN."""
    with pytest.raises(ParseError, match="GTIN"):
        gs1.normalize_gtin(text)


@given(any_gtins())
def test_every_valid_gtin_normalizes_to_its_padded_self(gtin: str) -> None:
    """Normalizing keeps the digits and pads to 14."""
    assert gs1.normalize_gtin(gtin) == gtin.zfill(14)


@given(gtins(), st.integers(0, 13), st.integers(1, 9))
def test_any_single_digit_error_in_a_gtin_is_caught(gtin: str, position: int, delta: int) -> None:
    """Weights 3 and 1 are prime to 10, so changing one digit always breaks the check digit."""
    wrong = str((int(gtin[position]) + delta) % 10)
    with pytest.raises(ParseError, match="check digit"):
        gs1.normalize_gtin(gtin[:position] + wrong + gtin[position + 1:])


def test_character_set_82_is_exactly_82_characters_all_accepted() -> None:
    """Every character of set 82 is a valid one-character serial."""
    assert len(gs1.CSET82) == len(set(gs1.CSET82)) == 82
    for char in gs1.CSET82:
        gs1.check_value("21", char)


@pytest.mark.parametrize("char", [" ", "#", "$", "@", "[", "\\", "]", "^", "`", "{", "|", "}",
                                  "~", "é", "\x1d", "\x00", "\n"])
def test_characters_outside_set_82_are_named_in_the_reason(char: str) -> None:
    """A lot with a character outside set 82 is refused, naming that character."""
    with pytest.raises(ParseError, match="not in GS1 character set 82") as raised:
        gs1.check_value("10", f"LOT{char}1")
    assert repr(char) in raised.value.reason


def test_text_values_are_1_to_20_characters() -> None:
    """Serials and lots may not be empty nor longer than 20 characters."""
    gs1.check_value("21", "S" * 20)
    with pytest.raises(ParseError, match=r"serial \(21\) longer than 20 characters"):
        gs1.check_value("21", "S" * 21)
    with pytest.raises(ParseError, match=r"batch/lot \(10\) is empty"):
        gs1.check_value("10", "")


def test_unsupported_ais_are_refused() -> None:
    """An AI outside the table, such as (00) SSCC, is a parse error."""
    with pytest.raises(ParseError, match=r"unsupported AI \(00\)"):
        gs1.check_value("00", "123456789012345675")


@pytest.mark.parametrize("yymmdd", ["261231", "261200", "240229", "000229", "260430", "260228",
                                    "260100", "991231"])
def test_valid_dates_are_accepted(yymmdd: str) -> None:
    """Real dates, and day 00 for any month, are valid expiry dates."""
    gs1.check_value("17", yymmdd)


@pytest.mark.parametrize(
    ("yymmdd", "reason"),
    [("261301", "month 13"), ("260001", "month 00"), ("260431", "day 31"),
     ("250229", "day 29, which February 2025"), ("260232", "day 32"), ("26123", "6 digits"),
     ("2612311", "6 digits"), ("26123a", "6 digits"), ("２６１２３１", "6 digits")],
)
def test_impossible_dates_are_refused_with_a_reason(yymmdd: str, reason: str) -> None:
    """Months outside 01..12, days a month lacks and malformed values are refused."""
    with pytest.raises(ParseError, match=reason):
        gs1.check_value("17", yymmdd)


@pytest.mark.parametrize(
    ("yymmdd", "date"),
    [("261231", datetime.date(2026, 12, 31)), ("261200", datetime.date(2026, 12, 31)),
     ("240200", datetime.date(2024, 2, 29)), ("230200", datetime.date(2023, 2, 28)),
     ("260400", datetime.date(2026, 4, 30))],
)
def test_expiry_date_reads_day_00_as_the_last_day_of_the_month(
    yymmdd: str, date: datetime.date
) -> None:
    """Day 00 is the month's last day, leap years included."""
    assert gs1.expiry_date(yymmdd, today=datetime.date(2025, 6, 1)) == date


@pytest.mark.parametrize(
    ("today", "yymmdd", "year"),
    [(2025, "491231", 2049), (2025, "751231", 2075), (2025, "761231", 1976),
     (2025, "991231", 1999), (2080, "291231", 2129), (2080, "301231", 2130),
     (2080, "311231", 2031)],
)
def test_expiry_century_follows_the_gs1_sliding_window(today: int, yymmdd: str, year: int) -> None:
    """YY resolves to within 49 years before and 50 years after the current year."""
    assert gs1.expiry_date(yymmdd, today=datetime.date(today, 1, 1)).year == year


@given(expiries())
def test_expiry_date_keeps_month_and_day(yymmdd: str) -> None:
    """Every valid YYMMDD gives a date in its own month, on its own day unless 00."""
    date = gs1.expiry_date(yymmdd)
    assert date.strftime("%m") == yymmdd[2:4]
    assert yymmdd[4:] in ("00", date.strftime("%d"))


def test_hri_is_read_in_any_ai_order() -> None:
    """The bracketed HRI gives the same values whatever order its AIs come in."""
    expected = {"01": GTIN, "17": "261231", "10": "LOT42", "21": "SERIAL"}
    assert gs1.parse_hri("(01)09501101530003(17)261231(10)LOT42(21)SERIAL") == expected
    assert gs1.parse_hri("(21)SERIAL(10)LOT42(01)09501101530003(17)261231") == expected


def test_hri_parenthesis_in_data_is_escaped_or_not_an_ai() -> None:
    """An escaped "\\(" is a literal "(", and so is a "(" that does not open "(digits)"."""
    assert gs1.parse_hri("(01)09501101530003(10)A\\(21)B(21)C(D)") == {
        "01": GTIN, "10": "A(21)B", "21": "C(D)"}
    assert gs1.render_hri({"01": GTIN, "10": "A(21)B"}) == "(01)09501101530003(10)A\\(21)B"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("(00)123456789012345675", r"unsupported AI \(00\)"),
     ("(01)09501101530003(01)09501101530003", r"\(01\) appears twice"),
     ("x(01)09501101530003", "HRI must be"), ("(01)09501101530003\\", "HRI must be"),
     ("(", "HRI must be"), ("(01)0950110153000", "must be 14 digits")],
)
def test_malformed_hri_is_refused(text: str, reason: str) -> None:
    """Unknown or repeated AIs, stray text and bad values are refused with a reason."""
    with pytest.raises(ParseError, match=reason):
        gs1.parse_hri(text)


def test_element_string_known_vector() -> None:
    """]d2, fixed-length (01) and (17) without GS, then (10) ended by GS before (21)."""
    text = "]d2010950110153000317261231" + "10LOT42\x1d21SER"
    assert gs1.parse_element(text) == {"01": GTIN, "17": "261231", "10": "LOT42", "21": "SER"}


@pytest.mark.parametrize("prefix", ["]d2", "]C1", "]Q3", "]e0", "]J1", "", "\x1d", "]d2\x1d"])
def test_element_string_takes_gs1_symbology_identifiers_and_a_leading_gs(prefix: str) -> None:
    """Any GS1 symbology identifier, or none, and a leading GS (FNC1) are accepted."""
    assert gs1.parse_element(prefix + "0109501101530003" + "21ABC") == {"01": GTIN, "21": "ABC"}


def test_element_string_tolerates_gs_after_a_fixed_length_field() -> None:
    """A needless GS after (01) or (17), as some printers send, is skipped."""
    text = "]d2" + "0109501101530003\x1d" + "17261231\x1d" + "21ABC"
    assert gs1.parse_element(text) == {"01": GTIN, "17": "261231", "21": "ABC"}


def test_element_string_renders_gs_only_after_variable_fields_not_last() -> None:
    """GS follows a variable-length value only when another element follows it."""
    assert gs1.render_element({"01": GTIN, "17": "261231", "10": "LOT42", "21": "SER"}) == (
        "]d2010950110153000317261231" + "10LOT42\x1d21SER")
    assert gs1.render_element({"01": GTIN, "21": "SER", "17": "261231", "10": "LOT42"}) == (
        "]d20109501101530003" + "21SER\x1d17261231" + "10LOT42")


@pytest.mark.parametrize(
    ("text", "reason"),
    [("]d10109501101530003", "does not mark GS1 data"), ("]d2", "no data"),
    ("]d20009501101530003", "unsupported AI"), ("]d2010950110153000", "must be 14 digits"),
    ("]d20109501101530003" + "21A\x1d21B", r"\(21\) appears twice"),
    ("]d20109501101530003" + "10" + "L" * 21, "longer than 20")],
)
def test_malformed_element_strings_are_refused(text: str, reason: str) -> None:
    """Non-GS1 identifiers, unknown AIs, short fixed fields and repeats are refused."""
    with pytest.raises(ParseError, match=reason):
        gs1.parse_element(text)


def test_digital_link_known_vector() -> None:
    """Path qualifiers are percent-decoded and the expiry comes from the query."""
    uri = "https://id.example.com/01/09501101530003/10/LOT%2F42/21/ABC?17=261200"
    assert gs1.parse_digital_link(uri) == {
        "01": GTIN, "10": "LOT/42", "21": "ABC", "17": "261200"}


@pytest.mark.parametrize(
    "uri",
    ["http://example.com/01/09501101530003/21/ABC",
     "HTTPS://ID.GS1.ORG/01/09501101530003/21/ABC",
     "https://example.com:8443/shop/01/x/01/09501101530003/21/ABC",
     "https://example.com/01/09501101530003/21/ABC/",
     "https://example.com/01/9501101530003/21/ABC",
     "https://example.com/01/09501101530003/21/ABC?linkType=gs1:pip&lang=zh",
     "https://example.com/01/09501101530003/21/ABC#top",
     "https://example.com/01/09501101530003/21/%41BC"],
    ids=["http", "uppercase", "port-and-prefix", "trailing-slash", "gtin-13", "other-query",
         "fragment", "escaped-letter"],
)
def test_digital_link_variants_give_the_same_code(uri: str) -> None:
    """Any host, http or https, path prefix, trailing slash, GTIN-13, foreign query keys."""
    assert gs1.parse_digital_link(uri) == {"01": GTIN, "21": "ABC"}


def test_digital_link_reads_supported_query_ais() -> None:
    """Query keys that are supported AIs are read and validated, others ignored."""
    uri = "https://example.com/01/09501101530003/22/V1/21/ABC?11=250101&15=271231&99=X"
    assert gs1.parse_digital_link(uri) == {
        "01": GTIN, "22": "V1", "21": "ABC", "11": "250101", "15": "271231"}


@pytest.mark.parametrize(
    ("uri", "reason"),
    [("https://example.com/01/09501101530003/21/ABC/10/L", "order"),
     ("https://example.com/01/09501101530003/21/A/21/B", "order"),
     ("https://example.com/01/09501101530003/21/ABC?10=L", "belongs in the Digital Link path"),
     ("https://example.com/01/09501101530003/17/261231", "where 01, 22, 10 or 21"),
     ("https://example.com/gtin/09501101530003", "'gtin' where"),
     ("https://example.com/abc", "no /01/"),
     ("https://example.com/01/09501101530003/21/AB%4", "%XX escape"),
     ("https://example.com/01/09501101530004/21/ABC", "check digit is 4, expected 3"),
     ("https://example.com/01/09501101530003/21/ABC?17=261301", "month 13"),
     ("https://example.com/01/09501101530003/21/ABC?17=261231&17=261231", "twice"),
     ("ftp://example.com/01/09501101530003/21/ABC", "not a Digital Link"),
     ("https:///01/09501101530003/21/ABC", "not a Digital Link")],
)
def test_malformed_digital_links_are_refused(uri: str, reason: str) -> None:
    """Qualifiers out of order or in the query, bad escapes and bad values are refused."""
    with pytest.raises(ParseError, match=reason):
        gs1.parse_digital_link(uri)


def test_digital_link_render_percent_encodes_and_keeps_the_host_path() -> None:
    """Reserved characters are escaped; a host path prefix and trailing slash are kept tidy."""
    uri = gs1.render_digital_link(
        {"01": GTIN, "17": "261200", "10": "LOT/42", "21": "A&B?"}, "https://id.example.com/p/")
    assert uri == "https://id.example.com/p/01/09501101530003/10/LOT%2F42/21/A%26B%3F?17=261200"


@pytest.mark.parametrize("host", ["id.gs1.org", "ftp://x.org", "https://", "https://a b.org"])
def test_digital_link_render_needs_an_http_host(host: str) -> None:
    """The host must be http(s)://host with an optional path."""
    with pytest.raises(InvalidArgument):
        gs1.render_digital_link({"01": GTIN, "21": "ABC"}, host)


def test_epc_uri_known_vector() -> None:
    """The TDS example SGTIN urn:epc:id:sgtin:0614141.812345.6789 is (01)80614141123458(21)6789."""
    assert gs1.parse_epc_uri("urn:epc:id:sgtin:0614141.812345.6789") == ("80614141123458", "6789")
    assert gs1.render_epc_uri("80614141123458", "6789", 7) == "urn:epc:id:sgtin:0614141.812345.6789"


def test_epc_uri_escapes_the_serial_characters_tds_reserves() -> None:
    """The serial's " % & / < > ? are percent-escaped, the rest of set 82 written as is."""
    reserved, plain = "A\"%&/<>?", "B!'()*+,-.:;=_z"
    assert gs1.render_epc_uri(GTIN, reserved, 7).endswith(".A%22%25%26%2F%3C%3E%3F")
    assert gs1.render_epc_uri(GTIN, plain, 7).endswith("." + plain)
    for serial in (reserved, plain):
        assert gs1.parse_epc_uri(gs1.render_epc_uri(GTIN, serial, 7)) == (GTIN, serial)


@given(gtins(), lots(), st.integers(6, 12))
def test_epc_uri_round_trips_for_every_company_prefix_length(
    gtin: str, serial: str, length: int
) -> None:
    """Render then parse gives back the GTIN and serial, whatever the prefix length."""
    assert gs1.parse_epc_uri(gs1.render_epc_uri(gtin, serial, length)) == (gtin, serial)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [("urn:epc:id:sscc:0614141.1234567890", "only urn:epc:id:sgtin"),
     ("urn:epc:id:sgtin:0614141.812345", "expected"),
     ("urn:epc:id:sgtin:06141.8123456.1", "6 to 12 digits"),
     ("urn:epc:id:sgtin:0614141.81234.1", "13 digits together"),
     ("urn:epc:id:sgtin:0614141.812345.A/B", "must be %-escaped"),
     ("urn:epc:id:sgtin:0614141.812345.", "serial is empty"),
     ("urn:epc:id:sgtin:0614141.812345.%C3%A9", "character set 82")],
)
def test_malformed_epc_uris_are_refused(uri: str, reason: str) -> None:
    """Other EPC schemes, wrong digit counts and unescaped reserved characters are refused."""
    with pytest.raises(ParseError, match=reason):
        gs1.parse_epc_uri(uri)


@pytest.mark.parametrize("length", [5, 13])
def test_epc_uri_render_needs_a_prefix_length_of_6_to_12(length: int) -> None:
    """GS1 company prefixes have 6 to 12 digits."""
    with pytest.raises(InvalidArgument, match="6 to 12"):
        gs1.render_epc_uri(GTIN, "ABC", length)


@st.composite
def _elements(draw: st.DrawFn) -> dict[str, str]:
    """A GTIN, a serial and any other supported AIs, in random order."""
    elements = {"01": draw(gtins()), "21": draw(lots())}
    for ai in draw(st.lists(st.sampled_from(["10", "11", "15", "17", "22", "710", "714"]),
                            unique=True)):
        elements[ai] = draw(expiries() if gs1.AIS[ai].kind is gs1.AiKind.DATE else lots())
    order = draw(st.permutations(list(elements)))
    return {ai: elements[ai] for ai in order}


@given(_elements())
def test_every_ai_survives_each_renderer(elements: dict[str, str]) -> None:
    """HRI, element string and Digital Link render then parse to the same AI values."""
    assert gs1.parse_hri(gs1.render_hri(elements)) == elements
    assert gs1.parse_element(gs1.render_element(elements)) == elements
    assert gs1.parse_digital_link(gs1.render_digital_link(elements, "https://a.example")) == (
        elements)


@given(gtins(), st.none() | expiries(), st.none() | lots(), lots())
def test_canonical_fast_path_agrees_with_the_general_parsers(
    gtin: str, expiry: str | None, lot: str | None, serial: str
) -> None:
    """Where the one-regex reading of render's layout applies, it gives what the parsers give."""
    elements = {"01": gtin}
    if expiry is not None:
        elements["17"] = expiry
    if lot is not None:
        elements["10"] = lot
    elements["21"] = serial
    for text, parse in ((gs1.render_hri(elements), gs1.parse_hri),
                        (gs1.render_element(elements), gs1.parse_element),
                        (gs1.render_digital_link(elements, "https://x.example/p"),
                         gs1.parse_digital_link)):
        canonical = gs1.parse_canonical(text)
        if canonical is not None:
            parsed = parse(text)
            assert canonical == (parsed["01"], parsed.get("17"), parsed.get("10"), parsed["21"])


def test_canonical_fast_path_covers_plain_values_in_every_form() -> None:
    """Our own labels (base32 serials, plain lots) are read by the fast path in all three forms."""
    elements = {"01": GTIN, "17": "261231", "10": "LOT-42.A", "21": "07WASCH6Q7VHQGYT0H37"}
    expected = (GTIN, "261231", "LOT-42.A", "07WASCH6Q7VHQGYT0H37")
    assert gs1.parse_canonical(gs1.render_hri(elements)) == expected
    assert gs1.parse_canonical(gs1.render_element(elements)) == expected
    assert gs1.parse_canonical(gs1.render_digital_link(elements, "https://id.gs1.org")) == expected


@given(st.text(max_size=40))
def test_percent_encoding_is_urllibs(text: str) -> None:
    """Digital Links and the links to the check page percent-encode a value exactly as
    ``urllib.parse.quote(value, safe="")`` does."""
    assert gs1.percent_encoded(text) == urllib.parse.quote(text, safe="")
