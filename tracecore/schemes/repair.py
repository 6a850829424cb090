"""Scanner input as it really arrives, and what it most likely said.

A keyboard-wedge scanner types the code as key presses, so the host's keyboard state and layout
change what arrives: Caps Lock inverts the case of every letter, a German (QWERTZ) or French
(AZERTY) layout turns the US key positions the scanner sends into other characters, a person
typing through a Chinese input method gets full-width digits, letters and brackets, the group
separator (GS, which no key types) is lost or typed as something else, and a symbology
identifier (``]d2``, ``]C1``) may come along, itself scrambled. ``repair_candidates`` lists
what the text may have been, each with a note saying what was changed; ``repair`` keeps the one
candidate that parses and passes the caller's check (the tag verifying), and none when no
candidate or more than one distinct code does: a repair is made only where it is unambiguous.

Pure functions over text: every transport that reads codes gains them through the parser.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from tracecore.errors import ParseError
from tracecore.schemes.base import Scan

GS = "\x1d"

_LAYOUTS: tuple[tuple[str, dict[str, str]], ...] = (
    # What arrives under the layout -> what the US key position the scanner sent means.
    ("German keyboard layout (QWERTZ)", {
        "z": "y", "y": "z", "Z": "Y", "Y": "Z", ")": "(", "=": ")", "-": "/", "ß": "-",
        "Ö": ":", "ö": ";", "_": "?", "&": "^", "+": "]",
    }),
    ("French keyboard layout (AZERTY)", {
        "&": "1", "é": "2", '"': "3", "'": "4", "(": "5", "-": "6", "è": "7", "_": "8",
        "ç": "9", "à": "0", "a": "q", "q": "a", "A": "Q", "Q": "A", "z": "w", "w": "z",
        "Z": "W", "W": "Z", ",": "m", "?": "M", ";": ",", ":": ".", "!": "/", "M": ":",
        "$": "]",
    }),
)
_GS_STAND_INS = ("<GS>", "<gs>", "{GS}", "[GS]", "^]", "\\x1d", "\\x1D", "\\u001d", "<029>",
                 "@", "~", "|")
"""What scanners and their configuration tools type in place of the group separator."""
FULL_WIDTH = "full-width characters (a Chinese input method) read as ASCII"
SERIAL_AI = "21"
SERIAL_LENGTH = 20
"""Our serials' length: a lost separator before (21) is found by counting from the end."""


def repair_candidates(text: str) -> list[tuple[str, str]]:
    """What ``text`` may have been before the keyboard or the scanner scrambled it, each with a
    note of what was changed, the likeliest first; ``text`` itself is not among them."""
    out: list[tuple[str, str]] = []
    seen = {text}
    for typed, typed_note in _keyboard(text):
        for fixed, gs_note in _separators(typed):
            if fixed in seen:
                continue
            seen.add(fixed)
            out.append((fixed, "; ".join(n for n in (typed_note, gs_note) if n)))
    return out


@dataclass(frozen=True)
class Repaired:
    """The one reading of a scrambled scan that parses and verifies, and what was changed."""

    scan: Scan
    text: str
    note: str


def readings(text: str, check: Callable[[Scan], bool]) -> list[Repaired]:
    """Every candidate reading of ``text`` that parses and passes ``check``, one per distinct
    code, the likeliest first."""
    from tracecore.codes import parse

    found: dict[object, Repaired] = {}
    for candidate, note in repair_candidates(text):
        try:
            scan = parse(candidate)
        except ParseError:
            continue
        if scan.code not in found and check(scan):
            found[scan.code] = Repaired(scan, candidate, note)
    return list(found.values())


def repair(text: str, check: Callable[[Scan], bool]) -> Repaired | None:
    """The single candidate code that parses and passes ``check``; None when none does, or when
    candidates disagree on the code (ambiguous: better unrepaired than wrong)."""
    found = readings(text, check)
    return found[0] if len(found) == 1 else None


def hint(text: str, found: list[Repaired]) -> str:
    """What looks wrong with a scan that could not be repaired (``found``: its readings that
    verify, none or several); "" when nothing points at the scanner or the keyboard."""
    if len(found) > 1:
        return ("ambiguous scan: reads as " + " or ".join(r.scan.code.text() for r in found[:3])
                + "; scan it again")
    foreign = sorted({c for c in text if not c.isascii()})
    if foreign:
        return ("characters a US keyboard does not type (" + " ".join(foreign[:5])
                + "): a scanner typing through a non-US keyboard layout?")
    # Only the spelled-out stand-ins: "@", "~" and "|" are ordinary characters of many inputs.
    stand_ins = [s for s in _GS_STAND_INS if len(s) > 1 and s in text]
    if stand_ins:
        return f"{stand_ins[0]!r} where a group separator belongs"
    if text[:1] == "]" and text[1:3] not in ("d2", "C1", "Q3"):
        return f"unknown symbology identifier {text[:3]!r}"
    if text != text.strip():
        return "spaces or line ends around the code"
    if any(c.islower() for c in text) and text[:1] in "(]0" and "://" not in text:
        return "lower-case letters in an element string: Caps Lock?"
    return ""


def _keyboard(text: str) -> list[tuple[str, str]]:
    """The text as typed on a US layout: itself (full-width characters, as a Chinese input
    method types them, read as ASCII), with Caps Lock undone, and each other layout undone
    (with and without Caps Lock)."""
    folded = text if text.isascii() else unicodedata.normalize("NFKC", text)
    width = FULL_WIDTH if folded != text else ""
    if folded.lstrip()[:1] == "(" and any(c.isspace() for c in folded.strip()):
        # GS1 data has no spaces: those of an HRI copied as printed, "(01) 0950… (21) 01…".
        folded = "".join(folded.split())
        width = _joined(width, "spaces between the elements removed")
    text = folded
    out = [(text, width)]
    if any(c.isalpha() for c in text):
        out.append((text.swapcase(), _joined(width, "letter case inverted (Caps Lock)")))
    for name, table in _LAYOUTS:
        if any(c in table for c in text):
            undone = "".join(table.get(c, c) for c in text)
            out.append((undone, _joined(width, name)))
            out.append((undone.swapcase(), _joined(width, f"{name} with Caps Lock")))
    return out


def _joined(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _separators(text: str) -> list[tuple[str, str]]:
    """The text itself, with a stand-in for GS replaced, with a scrambled symbology identifier
    restored, and with a lost GS put back before the serial."""
    out = [(text, "")]
    for stand_in in _GS_STAND_INS:
        if stand_in in text:
            out.append((text.replace(stand_in, GS), f"{stand_in!r} read as group separator"))
    body, prefix = text, ""
    if text[:1] == "]" and len(text) > 3 and text[1:3].lower() in ("d2", "c1"):
        body, prefix = text[3:], text[:3]
        if prefix not in ("]d2", "]C1"):
            canonical = "]d2" if prefix[1] in "dD" else "]C1"
            out.append((canonical + body, f"symbology identifier {prefix!r} read as "
                        f"{canonical!r}"))
            prefix = canonical
    # An element string whose lot (variable length) runs into the serial: the serial AI and
    # its 20 characters close the string, so the separator's place is known.
    cut = len(body) - SERIAL_LENGTH - len(SERIAL_AI)
    if (cut > 0 and body[cut:cut + 2] == SERIAL_AI and GS not in body and body[:1].isdigit()
            and "10" in body[:cut]):
        out.append((f"{prefix or ']d2'}{body[:cut]}{GS}{body[cut:]}",
                    "group separator restored before (21)"))
    return out
