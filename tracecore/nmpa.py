"""China NMPA drug traceability codes (药品追溯码): 20 digits, drug then production identifier."""

from __future__ import annotations

import re

from tracecore.errors import InvalidArgument, ParseError

CODE_DIGITS = 20
DRUG_ID_DIGITS = 7
"""The 药品标识码 that opens every code."""
PRODUCTION_ID_DIGITS = 13
"""The rest: our key digit, 8 random and 4 HMAC check digits (real codes: 9-digit serial + 4)."""

# Digit groups separated by runs of spaces or dashes, as people type or print them.
_GROUPED = re.compile(r"[0-9]+(?:[ -]+[0-9]+)*")
_DIGITS = re.compile(r"[0-9]+")


def is_candidate(text: str) -> bool:
    """Whether text that starts with a digit is an NMPA code rather than a GS1 element string.

    It is when it holds only digits, spaces and dashes, and has exactly 20 digits or a space
    (GS1 data never has one). So a GS1 element string of exactly 20 digits, alone or grouped by
    dashes, is read as NMPA unless it carries a symbology identifier such as ``]d2``.
    """
    if len(text) == CODE_DIGITS and text.isdigit() and text.isascii():
        return True
    return _GROUPED.fullmatch(text) is not None and (
        " " in text or len(text) - text.count("-") == CODE_DIGITS
    )


def parse(text: str) -> tuple[str, str]:
    """(drug identifier, production identifier) of 20 digits, grouped by spaces or dashes or not."""
    if len(text) == CODE_DIGITS and text.isdigit() and text.isascii():
        return text[:DRUG_ID_DIGITS], text[DRUG_ID_DIGITS:]
    if not _GROUPED.fullmatch(text):
        raise ParseError("NMPA code must be 20 digits, optionally grouped by spaces or dashes")
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) != CODE_DIGITS:
        raise ParseError(f"NMPA code has {len(digits)} digits, expected {CODE_DIGITS}")
    return digits[:DRUG_ID_DIGITS], digits[DRUG_ID_DIGITS:]


def is_drug_id(text: str) -> bool:
    """Whether ``text`` is a 7-digit drug identifier."""
    return len(text) == DRUG_ID_DIGITS and _DIGITS.fullmatch(text) is not None


def render(drug_id: str, production_id: str) -> str:
    """The 20-digit code of a drug identifier and a production identifier."""
    if not is_drug_id(drug_id):
        raise InvalidArgument(f"must be {DRUG_ID_DIGITS} digits", field="product")
    if len(production_id) != PRODUCTION_ID_DIGITS or not _DIGITS.fullmatch(production_id):
        raise InvalidArgument(f"must be {PRODUCTION_ID_DIGITS} digits", field="serial")
    return drug_id + production_id
