"""Scrambled scans: Caps Lock, German and French layouts, a lost or replaced group separator,
scrambled symbology identifiers are read as the code they were, and only when that is sure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tracecore.codes import Code, Form, Scan, Scheme, parse, render
from tracecore.mac import Mac
from tracecore.minting import Minter, check_tag
from tracecore.schemes.repair import GS, repair, repair_candidates

GTIN = "09501101530003"
MAC = Mac(b"\x07" * 32)
SERIALS = Minter(Scheme.GS1, GTIN, 3, MAC).mint(64)
LOTS = st.text(alphabet="ABCDEFGHJKMNPRSTVWXYZ0123456789", min_size=1, max_size=12)


def _tag_verifies(scan: Scan) -> bool:
    return check_tag(scan.code, {3: MAC}) is not None


def _text(serial: str, lot: str, form: Form) -> str:
    return render(Scan(Code(Scheme.GS1, GTIN, serial), lot, "300131"), form)


US_TO_DE = {"y": "z", "z": "y", "Y": "Z", "Z": "Y", "(": ")", ")": "=", "/": "-", "-": "ß",
            ":": "Ö", ";": "ö", "?": "_", "^": "&", "]": "+"}
US_TO_FR = {"1": "&", "2": "é", "3": '"', "4": "'", "5": "(", "6": "-", "7": "è", "8": "_",
            "9": "ç", "0": "à", "q": "a", "a": "q", "Q": "A", "A": "Q", "w": "z", "z": "w",
            "W": "Z", "Z": "W", "m": ",", "M": "?", ",": ";", ".": ":", "/": "!", ":": "M"}


def _typed(text: str, layout: dict[str, str]) -> str:
    return "".join(layout.get(c, c) for c in text)


@settings(max_examples=60, deadline=None)
@given(serial=st.sampled_from(SERIALS), lot=LOTS,
       form=st.sampled_from([Form.HRI, Form.ELEMENT, Form.DIGITAL_LINK]))
def test_caps_lock_inverted_case_is_repaired_and_said(serial: str, lot: str, form: Form) -> None:
    """A code typed with Caps Lock on reads as the code, with a note naming Caps Lock."""
    text = _text(serial, lot, form)
    repaired = repair(text.swapcase(), _tag_verifies)
    assert repaired is not None
    assert repaired.scan.code == parse(text).code
    assert "Caps Lock" in repaired.note


@settings(max_examples=60, deadline=None)
@given(serial=st.sampled_from(SERIALS), lot=LOTS,
       case=st.sampled_from([("German", US_TO_DE, Form.HRI), ("German", US_TO_DE, Form.ELEMENT),
                             ("French", US_TO_FR, Form.ELEMENT)]))
def test_a_non_us_keyboard_layout_is_undone(serial: str, lot: str,
                                            case: tuple[str, dict[str, str], Form]) -> None:
    """A code typed through a German layout (HRI or element string) or a French one (element
    string: its parentheses come out as digits, which no repair can tell apart) reads as the
    code, naming the layout."""
    name, table, form = case
    text = _text(serial, lot, form)
    scrambled = _typed(text, table)
    repaired = repair(scrambled, _tag_verifies)
    if scrambled == text:
        return
    assert repaired is not None, scrambled
    assert repaired.scan.code == parse(text).code
    assert name in repaired.note


@settings(max_examples=60, deadline=None)
@given(serial=st.sampled_from(SERIALS), lot=LOTS,
       stand_in=st.sampled_from(["", "<GS>", "^]", "@", "~", "|", "{GS}"]))
def test_a_lost_or_replaced_group_separator_is_put_back(serial: str, lot: str,
                                                        stand_in: str) -> None:
    """An element string whose GS was dropped or typed as another character reads as the code,
    with the lot intact and a note about the separator."""
    text = _text(serial, lot, Form.ELEMENT)
    assert GS in text
    repaired = repair(text.replace(GS, stand_in), _tag_verifies)
    assert repaired is not None
    assert (repaired.scan.code, repaired.scan.lot) == (parse(text).code, lot)
    assert "separator" in repaired.note


@given(serial=st.sampled_from(SERIALS), lot=LOTS)
def test_a_scrambled_symbology_identifier_is_restored(serial: str, lot: str) -> None:
    """]D2 (Caps Lock on the identifier only) reads as ]d2."""
    text = _text(serial, lot, Form.ELEMENT)
    repaired = repair("]D2" + text[3:], _tag_verifies)
    assert repaired is not None and repaired.scan.code == parse(text).code


@settings(max_examples=60, deadline=None)
@given(serial=st.sampled_from(SERIALS), lot=LOTS)
def test_a_code_whose_tag_fails_after_every_repair_is_not_repaired(serial: str,
                                                                   lot: str) -> None:
    """A forged code (tag changed), however scrambled, is never 'repaired' into a genuine one."""
    forged = serial[:-1] + ("A" if serial[-1] != "A" else "B")
    text = _text(forged, lot, Form.HRI)
    assert repair(text.swapcase(), _tag_verifies) is None
    assert repair(_typed(text, US_TO_DE), _tag_verifies) is None


def _full_width(text: str) -> str:
    """``text`` as a Chinese input method in full-width mode types it."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


NMPA_ID = "8612345"
NMPA_SERIALS = Minter(Scheme.NMPA, NMPA_ID, 3, MAC).mint(16)


@settings(max_examples=40, deadline=None)
@given(serial=st.sampled_from(SERIALS), nmpa=st.sampled_from(NMPA_SERIALS), lot=LOTS,
       caps=st.booleans())
def test_full_width_characters_of_a_chinese_input_method_are_read_as_ascii(
        serial: str, nmpa: str, lot: str, caps: bool) -> None:
    """A 20-digit NMPA code or a GS1 HRI typed in full width (８６１２…, （０１）…), with Caps
    Lock or not, reads as the code, naming the input method."""
    for text in (NMPA_ID + nmpa, _text(serial, lot, Form.HRI)):
        typed = _full_width(text.swapcase() if caps else text)
        repaired = repair(typed, _tag_verifies)
        assert repaired is not None, typed
        assert repaired.scan.code == parse(text).code
        assert "full-width" in repaired.note


@settings(max_examples=40, deadline=None)
@given(serial=st.sampled_from(SERIALS), lot=LOTS, caps=st.booleans())
def test_an_hri_copied_with_spaces_between_its_elements_is_read_as_the_code(
        serial: str, lot: str, caps: bool) -> None:
    """GS1 HRI as printed under a barcode, "(01) 0950… (17) 300131 (10) LOT (21) 01…", reads
    as the code (GS1 data has no spaces), with Caps Lock or not."""
    text = _text(serial, lot, Form.HRI)
    spaced = text.replace("(", " (").replace(")", ") ").strip()
    repaired = repair(spaced.swapcase() if caps else spaced, _tag_verifies)
    assert repaired is not None, spaced
    assert repaired.scan.code == parse(text).code
    assert "spaces" in repaired.note


@given(st.text(max_size=60))
def test_candidates_are_never_the_input_and_always_say_what_changed(text: str) -> None:
    """Every candidate differs from the input and carries a note."""
    for candidate, note in repair_candidates(text):
        assert candidate != text
        assert note


def test_ambiguous_repairs_are_refused() -> None:
    """When two readings are different codes that both pass the check, no repair is made; the
    tag check keeps the one that is genuine."""
    serial = next(s for s in SERIALS if "Z" in s[2:] or "Y" in s[2:])
    text = _text(serial, "L1", Form.ELEMENT).swapcase()  # Caps Lock, or German Y/Z too?
    assert repair(text, lambda scan: True) is None
    repaired = repair(text, _tag_verifies)
    assert repaired is not None and repaired.scan.code.serial == serial


def test_a_scan_that_cannot_be_repaired_gets_a_hint_of_what_looks_wrong() -> None:
    """Characters no US keyboard types, a spelled-out separator, an unknown symbology
    identifier or lower case in an element string each get their hint; a plain typo none."""
    from tracecore.schemes.repair import hint

    assert "keyboard layout" in hint("(01)0950110153000ä", [])
    assert "'<GS>' where a group separator belongs" in hint("]d2010950<GS>21ab", [])
    assert "symbology identifier" in hint("]x2010950", [])
    assert "Caps Lock" in hint("(01)09501101530003(21)abc", [])
    assert hint("(01)09501101530003(21)ABC", []) == ""
