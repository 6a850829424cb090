"""NMPA 20-digit drug traceability codes: splitting, grouping, the dispatch rule and rendering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import digit_strings
from tracecore import nmpa
from tracecore.errors import InvalidArgument, ParseError

CODE = "81234567890123456789"


def test_twenty_digits_split_into_drug_and_production_identifiers() -> None:
    """The first 7 digits are the drug identifier, the other 13 the production identifier."""
    assert nmpa.parse(CODE) == ("8123456", "7890123456789")


@pytest.mark.parametrize(
    "text",
    ["8123456 7890123456789", "8123456-7890123456789", "81234 56789 01234 56789",
     "8123-4567-8901-2345-6789", "8123456 - 7890 1234 5678 9"],
)
def test_digits_may_be_grouped_by_spaces_or_dashes(text: str) -> None:
    """Spaces and dashes between digit groups are ignored."""
    assert nmpa.parse(text) == ("8123456", "7890123456789")


@given(digit_strings(20),
       st.lists(st.tuples(st.integers(1, 19), st.sampled_from([" ", "-", " - "]))))
def test_any_grouping_reads_the_same_digits(digits: str, cuts: list[tuple[int, str]]) -> None:
    """Wherever separators fall between digits, the code is the same."""
    text = digits
    for position, separator in sorted(cuts, reverse=True):
        text = text[:position] + separator + text[position:]
    assert nmpa.parse(text) == (digits[:7], digits[7:])


@pytest.mark.parametrize(
    ("text", "count"),
    [("8123456789012345678", 19), ("812345678901234567890", 21), ("8123456 789012345678", 19)],
)
def test_wrong_digit_counts_are_refused_with_the_count(text: str, count: int) -> None:
    """19 or 21 digits are refused, saying how many there were."""
    with pytest.raises(ParseError, match=f"NMPA code has {count} digits, expected 20"):
        nmpa.parse(text)


@pytest.mark.parametrize(
    "text",
    ["8123456789012345678X", "-81234567890123456789", "81234567890123456789-",
     "８１２３４５６７８９０１２３４５６７８９", "٨١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩",
     "8123456_7890123456789", ""],
    ids=["letter", "leading-dash", "trailing-dash", "fullwidth", "arabic-indic", "underscore",
         "empty"],
)
def test_other_characters_are_refused(text: str) -> None:
    """Only ASCII digits, with spaces or dashes between them, make an NMPA code."""
    with pytest.raises(ParseError, match="NMPA code must be 20 digits"):
        nmpa.parse(text)


@pytest.mark.parametrize(
    ("text", "is_nmpa"),
    [(CODE, True), ("8123456 7890123456789", True), ("8123456-7890123456789", True),
     ("8123456 789012345678", True), ("0109501101530003" + "2112", True),
     ("0109501101530003" + "21123", False), ("0109501101530003" + "21AB", False),
     ("8123456-789012345678", False), ("8123456789012345678", False)],
    ids=["20-digits", "spaced", "dashed", "spaced-19", "element-of-20-digits",
         "element-of-21-digits", "element-with-letters", "dashed-19", "19-digits"],
)
def test_dispatch_rule_reads_20_digits_or_spaced_digits_as_nmpa(text: str, is_nmpa: bool) -> None:
    """20 digits (grouped or not) or spaced digits are NMPA; other digit text is GS1."""
    assert nmpa.is_candidate(text) is is_nmpa


def test_render_joins_the_two_identifiers() -> None:
    """Rendering is the 20 digits, drug identifier first."""
    assert nmpa.render("8123456", "7890123456789") == CODE


@pytest.mark.parametrize(
    ("drug_id", "production_id", "field"),
    [("812345", "7890123456789", "product"), ("812345a", "7890123456789", "product"),
     ("8123456", "789012345678", "serial"), ("8123456", "78901234567890", "serial"),
     ("8123456", "７890123456789", "serial")],
)
def test_render_refuses_identifiers_of_the_wrong_shape(
    drug_id: str, production_id: str, field: str
) -> None:
    """A drug identifier is 7 digits and a production identifier 13."""
    with pytest.raises(InvalidArgument) as raised:
        nmpa.render(drug_id, production_id)
    assert raised.value.field == field


@pytest.mark.parametrize(("text", "valid"), [("8123456", True), ("812345", False),
                                             ("81234567", False), ("812345a", False)])
def test_drug_identifiers_are_7_digits(text: str, valid: bool) -> None:
    """is_drug_id accepts exactly 7 ASCII digits."""
    assert nmpa.is_drug_id(text) is valid
