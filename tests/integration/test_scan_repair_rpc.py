"""Scrambled scans over real gRPC: Verify and VerifyBatch answer for the code a Caps Lock or
German-layout scan stood for and say what was repaired; what cannot be repaired gets a hint."""

from __future__ import annotations

import pytest
from pharmatrace.v1 import verification_pb2 as vpb

pytestmark = pytest.mark.timeout(120)

GENUINE = vpb.VERDICT_GENUINE
DE = {"y": "z", "z": "y", "Y": "Z", "Z": "Y", "(": ")", ")": "=", "/": "-", "-": "ß"}


def _caps_lock(code: str) -> str:
    """The code as a scanner types it with Caps Lock on; its serial has letters to invert."""
    return code.swapcase()


def test_a_caps_lock_scan_verifies_as_its_code_and_says_so(api, gs1) -> None:
    """Verify of a Caps Lock scan answers GENUINE for the pack, with its canonical code and a
    note naming Caps Lock; a well-formed scan of it carries no note."""
    code = next(c for c in api.codes(gs1.tenant, gs1.gtin, 8, lot=gs1.lot)
                if any(ch.isalpha() for ch in c.rsplit("(21)", 1)[1]))
    answer = api.verify(gs1.tenant, _caps_lock(code))
    assert answer.verdict == GENUINE and answer.code == code
    assert "Caps Lock" in answer.repaired and not answer.hint
    plain = api.verify(gs1.tenant, code)
    assert plain.verdict == GENUINE and not plain.repaired


def test_a_batch_names_its_repaired_rows_and_hints_at_the_rest(api, gs1) -> None:
    """VerifyBatch repairs a German-layout scan in place (its row GENUINE, listed with the code
    and the layout), leaves well-formed rows alone and gives a hint for a hopeless scan."""
    codes = api.codes(gs1.tenant, gs1.gtin, 3, lot=gs1.lot)
    german = "".join(DE.get(c, c) for c in codes[1])
    answer = api.verify_batch(gs1.tenant, [codes[0], german, "(01)ÄÖÜ", codes[2]])
    assert list(answer.verdicts[:2]) == [GENUINE, GENUINE] and answer.verdicts[3] == GENUINE
    assert answer.verdicts[2] == vpb.VERDICT_INVALID_FORMAT
    assert list(answer.repaired_rows) == [1] and list(answer.repaired_codes) == [codes[1]]
    assert "German" in answer.repairs[0]
    assert list(answer.hint_rows) == [2] and "keyboard" in answer.hints[0]
    assert answer.product_indexes[1] >= 0 and answer.batch_indexes[1] >= 0
