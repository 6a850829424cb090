"""VerifyBatch's and Verify's answers written in C (tracecore._speedups._wire through
``verify_svc.verification.batch_answer_bytes`` and ``single_answer_bytes``) are, byte for
byte, protobuf's encoding of the message the Python path builds (``batch_answer``,
``single_answer``), for any answer: every value range of every column, empty columns,
summaries and sparse rows in any text. A value protobuf refuses is refused alike."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import verification_pb2 as pb

from tracecore.answers import Answers, Verdict, append_row
from tracecore.status import Status
from verify_svc.verification import (
    _Summaries,
    _wire,
    batch_answer,
    batch_answer_bytes,
    single_answer,
    single_answer_bytes,
)

pytestmark = pytest.mark.skipif(_wire is None, reason="the compiled extension is not built or "
                                "PHARMATRACE_PURE is set: the answer is the reference's")

INT32 = st.integers(-2**31, 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
INT64 = st.integers(-2**63, 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)
# Most rows of a real answer are small values and -1 indexes; the bounds are drawn too.
INDEX = st.one_of(st.just(-1), st.integers(0, 3), INT32)
TEXT = st.text(max_size=30)


@st.composite
def _answers(draw: st.DrawFn, min_rows: int = 0) -> Answers:
    rows = draw(st.integers(min_rows, 40))

    def column(values: st.SearchStrategy[int]) -> list[int]:
        return draw(st.lists(values, min_size=rows, max_size=rows))

    out = Answers()
    out.verdicts = column(st.one_of(st.sampled_from(list(Verdict)), INT32))
    out.statuses = column(st.one_of(st.sampled_from(list(Status)), INT32))
    out.alert_masks = column(st.one_of(st.integers(0, 1 << 13), UINT32))
    out.scan_counts = column(st.one_of(st.integers(0, 200), UINT64))
    out.first_verified_ms = column(st.one_of(st.just(0), st.integers(1_700_000_000_000,
                                                                     1_900_000_000_000), INT64))
    out.batch_indexes = column(INDEX)
    out.product_indexes = column(INDEX)
    for text in draw(st.lists(TEXT, min_size=rows, max_size=rows)):
        out.codes.append(text)
    out.batches = draw(st.lists(st.builds(cpb.Batch, product=TEXT, lot=TEXT,
                                          manufactured_on=TEXT, expires_on=TEXT), max_size=3))
    out.products = draw(st.lists(st.builds(cpb.Product, gtin=TEXT, nmpa_id=TEXT, name=TEXT,
                                           form=TEXT, strength=TEXT, pack_size=UINT32),
                                 max_size=3))
    if rows:
        row = st.integers(0, rows - 1)
        out.repairs = draw(st.dictionaries(row, TEXT, max_size=3))
        out.hints = draw(st.dictionaries(row, TEXT, max_size=3))
        out.minted_by = draw(st.dictionaries(row, TEXT, max_size=3))
    return out


def _same(answers: Answers) -> None:
    reference = batch_answer(answers)
    written = batch_answer_bytes(answers)
    assert written == reference.SerializeToString()
    assert pb.VerifyBatchResponse.FromString(written) == reference


@settings(max_examples=300, deadline=None)
@given(_answers())
def test_the_written_answer_is_the_reference_message(answers: Answers) -> None:
    _same(answers)


def test_an_answer_of_no_rows_is_empty() -> None:
    assert batch_answer_bytes(Answers()) == b""
    _same(Answers())


def test_the_extremes_of_every_column_are_written_as_protobuf_writes_them() -> None:
    """Negative int32 and int64 values are ten-byte varints; uint64 reaches 2**64 - 1."""
    out = Answers()
    for _ in range(3):
        append_row(out, Verdict.GENUINE, "", "")
    out.verdicts[:] = [-2**31, 0, 2**31 - 1]
    out.statuses[:] = [-1, 0, 2**31 - 1]
    out.alert_masks[:] = [0, 1, 2**32 - 1]
    out.scan_counts[:] = [0, 2**63, 2**64 - 1]
    out.first_verified_ms[:] = [-2**63, -1, 2**63 - 1]
    out.batch_indexes[:] = [-1, 0, 2**31 - 1]
    out.product_indexes[:] = [-1, -2**31, 127]
    _same(out)
    written = batch_answer_bytes(out)
    # Field 6 (batch_indexes): -1 in ten bytes, 0, 2**31 - 1 in five.
    assert b"\x32\x10" + b"\xff" * 9 + b"\x01\x00\xff\xff\xff\xff\x07" in written


def _outcome(make: Any, answers: Answers) -> object:
    try:
        return make(answers)
    except (ValueError, TypeError) as error:
        return type(error), str(error) if isinstance(error, ValueError) else ""


@pytest.mark.parametrize(("column", "value"), [
    ("verdicts", 2**31), ("statuses", -2**31 - 1), ("alert_masks", -1), ("alert_masks", 2**32),
    ("scan_counts", -1), ("scan_counts", 2**64), ("first_verified_ms", 2**63),
    ("first_verified_ms", -2**63 - 1), ("batch_indexes", 2**31), ("product_indexes", 2**40),
    ("scan_counts", True), ("alert_masks", 1.0), ("first_verified_ms", None),
])
def test_a_value_protobuf_refuses_is_refused_alike(column: str, value: object) -> None:
    out = Answers()
    append_row(out, Verdict.GENUINE, "", "")
    append_row(out, Verdict.GENUINE, "", "")
    getattr(out, column)[1] = value
    reference = _outcome(lambda a: batch_answer(a).SerializeToString(), out)
    assert isinstance(reference, tuple)
    assert _outcome(batch_answer_bytes, out) == reference


@settings(max_examples=300, deadline=None)
@given(_answers(min_rows=1), INT32, TEXT, TEXT)
def test_the_written_single_answer_is_the_reference_message(answers: Answers, level: int,
                                                           reason: str, replaced_by: str
                                                           ) -> None:
    # Row 0 is the answer; its product and batch indexes point into the tables or nowhere.
    answers.levels[:] = [level]
    answers.reasons[:] = [reason]
    answers.product_indexes[0] = min(answers.product_indexes[0], len(answers.products) - 1)
    answers.batch_indexes[0] = min(answers.batch_indexes[0], len(answers.batches) - 1)
    summaries = _Summaries()
    reference = single_answer(answers, replaced_by)
    for _ in range(2):  # the second time, with the summaries kept from the first
        written = single_answer_bytes(answers, replaced_by, summaries)
        assert written == reference.SerializeToString()
        assert pb.VerifyResponse.FromString(written) == reference


def test_a_genuine_single_answer_reads_back_with_its_summaries() -> None:
    out = Answers()
    append_row(out, Verdict.GENUINE, "(01)09501101530003(21)ABC", "")
    out.statuses[0] = Status.DISPENSED
    out.scan_counts[0] = 2
    out.products.append(cpb.Product(gtin="09501101530003", name="阿莫西林胶囊", pack_size=24))
    out.batches.append(cpb.Batch(lot="L1", expires_on="2030-12-31"))
    out.product_indexes[0] = 0
    out.batch_indexes[0] = 0
    answer = pb.VerifyResponse.FromString(single_answer_bytes(out, "", _Summaries()))
    assert answer.verdict == pb.VERDICT_GENUINE
    assert answer.status == cpb.CODE_STATUS_DISPENSED
    assert answer.code == "(01)09501101530003(21)ABC"
    assert answer.product.name == "阿莫西林胶囊"
    assert answer.batch.expires_on == "2030-12-31"
    assert answer.scan_count == 2


@pytest.mark.parametrize(("column", "value"), [
    ("verdicts", 2**31), ("statuses", -2**31 - 1), ("scan_counts", -1), ("scan_counts", 2**64),
    ("first_verified_ms", 2**63), ("levels", 2**31), ("scan_counts", True),
    ("first_verified_ms", 1.0), ("levels", 1.5),
])
def test_a_single_value_protobuf_refuses_is_refused_alike(column: str, value: object) -> None:
    out = Answers()
    append_row(out, Verdict.GENUINE, "", "")
    getattr(out, column)[0] = value
    reference = _outcome(lambda a: single_answer(a, "").SerializeToString(), out)
    assert isinstance(reference, tuple)
    assert _outcome(lambda a: single_answer_bytes(a, "", _Summaries()), out) == reference
