"""The answer columns: a row's code text as the scheme writes it, however the row was kept."""

from __future__ import annotations

from tracecore.answers import Answers, CodeTexts, Verdict, append_row
from tracecore.codes import Code, Scheme, parse

GTIN = "09501101530003"


def test_a_row_kept_as_its_code_answers_the_code_s_text() -> None:
    """Rows kept as texts and rows kept as codes read alike: by row, by slice, in a loop, and
    equal to the list of their texts."""
    gs1 = Code(Scheme.GS1, GTIN, "AB(CD")
    nmpa = parse("81234560000000000011").code
    texts = CodeTexts(["", "typed"])
    texts.append(gs1)
    texts.append(nmpa)
    expected = ["", "typed", "(01)09501101530003(21)AB\\(CD", nmpa.text()]
    assert [texts[i] for i in range(len(texts))] == expected
    assert texts[1:] == expected[1:]
    assert list(texts) == expected
    assert texts == expected
    assert texts == CodeTexts(expected)
    assert texts != expected[:3]


def test_a_row_s_text_can_be_replaced_and_answers_compare_by_text() -> None:
    """A repaired row's text replaces the code kept; answers with the same texts are equal."""
    kept, written = Answers(), Answers()
    append_row(kept, Verdict.GENUINE, "", "")
    append_row(written, Verdict.GENUINE, "", "")
    kept.codes[0] = "(01)09501101530003(21)X"
    kept.codes.append(Code(Scheme.GS1, GTIN, "Y"))
    written.codes[0] = "(01)09501101530003(21)X"
    written.codes.append("(01)09501101530003(21)Y")
    assert kept == written
    assert kept.codes[-1] == "(01)09501101530003(21)Y"
