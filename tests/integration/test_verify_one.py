"""One code verified on its own answers exactly as the same code does in a batch: every field
of the answer, the scan statistics and the alerts raised, on a real ledger holding genuine,
recalled, withdrawn, dispensed, revoked-key, foreign and SSCC codes, for forged, unknown,
malformed and scrambled input too."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pharmatrace.v1 import common_pb2 as cpb

from tests.ledgers import dev_codes
from tracecore import sscc, verification_rows
from tracecore._speedups import load
from tracecore.codes import Code, Form, Scan, Scheme, parse, render
from tracecore.events import Event, EventKind
from tracecore.keys import KeySource
from tracecore.ledger import foreign, lifecycle
from tracecore.ledger.alerts import AlertBook, AlertFilter
from tracecore.ledger.observations import Observations
from tracecore.ledger.oversight import Order, recall_batch, withdraw_product
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.store import PoolRequest
from tracecore.ledger.tenants import DataDir, Tenant
from tracecore.minting import ALPHABET, Minter
from tracecore.oversight import Checks
from tracecore.scan_clients import client_tag
from tracecore.status import Status
from tracecore.verification import Alert, Answers, ScanContext, Verifier

T0 = 1_772_352_000_000  # 2026-03-01 08:00 UTC
MINUTE = 60_000
SOLD, WITHDRAWN_GTIN, FOREIGN_GTIN = "09501101530010", "09501101530027", "09501101530034"
PREFIX = "0950110"
GUANGZHOU, BEIJING = 440106, 110105


@dataclass(frozen=True)
class Input:
    """A text to verify, and the code it stands for (two texts of one code share it)."""

    text: str
    code: str
    kind: str


def _forged(serial: str) -> str:
    """The serial with its last (tag) character changed."""
    return serial[:-1] + ALPHABET[(ALPHABET.index(serial[-1]) + 1) % len(ALPHABET)]


def _texts(kind: str, code: Code, lot: str, expiry: str) -> list[Input]:
    """The code as a scanner reads it, with the wrong lot, as HRI, and typed with Caps Lock on
    (repaired), plus the code with a forged tag."""
    scan = Scan(code, lot, expiry)
    hri = render(scan, Form.HRI)
    return [Input(render(scan, Form.ELEMENT), code.text(), kind),
            Input(render(Scan(code, "WRONG", expiry), Form.HRI), code.text(), kind + "+lot"),
            Input(hri.swapcase(), code.text(), kind + "+capslock"),
            Input(render(Scan(Code(code.scheme, code.product, _forged(code.serial)), lot, expiry),
                         Form.HRI), "forged " + code.text(), "bad tag")]


def _mint(tenant: Tenant, gtin: str, lot: str, n: int, request: str) -> list[Code]:
    key = tenant.keys.active
    serials = Minter(Scheme.GS1, gtin, key.key_id, key.mac).mint(n)
    tenant.ledger.open_pool(PoolRequest(request, gtin, lot, 1, n), key.key_id, T0)
    tenant.ledger.append_pool_codes(request, 0, serials, key.key_id, T0, lambda _: [])
    return [Code(Scheme.GS1, gtin, s) for s in serials]


def _apply(tenant: Tenant, event: Event) -> None:
    (result,) = lifecycle.apply(tenant.ledger, [lifecycle.Request([event])], T0)
    assert result.applied, result


@dataclass
class _Ledger:
    tenant: Tenant
    inputs: list[Input]
    path: Path


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Ledger]:
    """A tenant whose codes are in every state a verification tells apart."""
    path = tmp_path_factory.mktemp("verify-one")
    data = DataDir(path / "data", KeySource.dev())
    tenant = data.create("t", "Test", T0)
    store = tenant.ledger
    store.register_product(cpb.Product(gtin=SOLD, name="Amoxicillin"), T0)
    store.register_product(cpb.Product(gtin=WITHDRAWN_GTIN, name="Withdrawn"), T0)
    for lot in ("L1", "L2"):
        store.add_batch(cpb.Batch(product=SOLD, lot=lot, expires_on="2031-01-31",
                                  authorised_regions=["44"]), T0)
    store.add_batch(cpb.Batch(product=SOLD, lot="ANY", expires_on="2031-01-31"), T0)
    store.add_batch(cpb.Batch(product=SOLD, lot="OLD", expires_on="2025-01-31"), T0)
    store.add_batch(cpb.Batch(product=WITHDRAWN_GTIN, lot="W1", expires_on="2031-01-31"), T0)
    store.add_party(cpb.Party(party_id="PHARM", name="Pharmacy", region=str(GUANGZHOU),
                              kind=cpb.PARTY_KIND_PHARMACY), T0)
    store.add_party(cpb.Party(party_id="BJ", name="Beijing pharmacy", region=str(BEIJING),
                              kind=cpb.PARTY_KIND_PHARMACY), T0)
    revoked = _mint(tenant, SOLD, "L1", 2, "pool-revoked")
    tenant.keys.rotate()
    sold = _mint(tenant, SOLD, "L1", 6, "pool-sold")
    recalled = _mint(tenant, SOLD, "L2", 2, "pool-recalled")
    expired = _mint(tenant, SOLD, "OLD", 1, "pool-expired")
    withdrawn = _mint(tenant, WITHDRAWN_GTIN, "W1", 2, "pool-withdrawn")
    anywhere = _mint(tenant, SOLD, "ANY", 3, "pool-anywhere")
    # Packs of the Guangdong-only lot received in Beijing: one on its own, one in a case.
    diverted = _mint(tenant, SOLD, "L1", 3, "pool-diverted")
    active = revoked + sold[:4] + recalled + expired + withdrawn + anywhere[:2] + diverted[:2]
    _apply(tenant, Event(EventKind.COMMISSION, tuple(active), T0, party_id="PHARM"))
    _apply(tenant, Event(EventKind.DECOMMISSION, (*sold[2:4], anywhere[1]), T0,
                         party_id="PHARM", target=Status.DISPENSED))
    case = diverted[2]
    _apply(tenant, Event(EventKind.COMMISSION, (case,), T0, party_id="PHARM", lot="L1", level=2))
    _apply(tenant, Event(EventKind.AGGREGATE, (diverted[1],), T0, parent=case, partial=True))
    for moved in (diverted[0], case):
        _apply(tenant, Event(EventKind.SHIP, (moved,), T0, party_id="PHARM", destination="BJ"))
        _apply(tenant, Event(EventKind.RECEIVE, (moved,), T0, party_id="BJ"))
    recall_batch(store, SOLD, "L2", Order("contaminated", T0), T0)
    withdraw_product(store, WITHDRAWN_GTIN, Order("withdrawn", T0), T0)
    tenant.keys.revoke(1)  # the key of the first pool: its codes are flagged from now on
    key = tenant.keys.active
    unknown = Minter(Scheme.GS1, SOLD, key.key_id, key.mac).mint(1)
    outsider = Code(Scheme.GS1, FOREIGN_GTIN, "OTHERCO0001")
    foreign.register(store, [outsider], foreign.Provenance(minted_by="Other Co"),
                     Status.ACTIVE, T0)
    pools = SsccPools(store)
    pools.register_prefix(PREFIX, T0)
    pools.allocate("ssccs", PREFIX, 0, 3, T0)

    inputs: list[Input] = []
    for kind, codes, lot, expiry in (
            ("genuine", sold[:2], "L1", "310131"), ("dispensed", sold[2:4], "L1", "310131"),
            ("issued", sold[4:], "L1", "310131"), ("recalled", recalled, "L2", "310131"),
            ("expired", expired, "OLD", "250131"), ("withdrawn", withdrawn, "W1", "310131"),
            ("revoked key", revoked, "L1", "310131"),
            ("received elsewhere", diverted[:1], "L1", "310131"),
            ("in a case received elsewhere", diverted[1:2], "L1", "310131"),
            ("sold anywhere", anywhere[:1], "ANY", "310131"),
            ("dispensed, sold anywhere", anywhere[1:2], "ANY", "310131"),
            ("issued, sold anywhere", anywhere[2:], "ANY", "310100")):
        for code in codes:
            inputs.extend(_texts(kind, code, lot, expiry))
    inputs.append(Input(render(Scan(Code(Scheme.GS1, SOLD, unknown[0])), Form.HRI),
                        "unknown", "unknown"))
    inputs.append(Input(outsider.text(), outsider.text(), "foreign"))
    for reference, kind in ((1, "sscc allocated"), (2_000, "sscc not allocated")):
        number = sscc.mint(PREFIX, 0, reference)
        inputs.append(Input(sscc.render_hri(number), number, kind))
    for i, text in enumerate(("hello world", "(01)09501101530010(21)", "", "\u00e9\u00e9")):
        inputs.append(Input(text, f"malformed {i}", "malformed"))
    yield _Ledger(tenant, inputs, path)
    data.close()


_CONTEXTS = {
    "public": (ScanContext(purpose=1), True),
    "public, no client": (ScanContext(purpose=1), False),
    "pharmacy": (ScanContext("PHARM", GUANGZHOU, 2), False),
    "elsewhere": (ScanContext("", BEIJING, 2), False),
    "no context": (ScanContext(), False),
}


@dataclass
class _Pair:
    """Two verifiers of one tenant with statistics and alerts of their own: the batch's and the
    one-at-a-time's; fed the same scans, they hold the same statistics."""

    batch: Verifier
    single: Verifier
    books: tuple[AlertBook, AlertBook]


@pytest.fixture(scope="module")
def pair(ledger: _Ledger) -> Iterator[_Pair]:
    made = []
    for side in ("batch", "single"):
        book = AlertBook(ledger.path / f"alerts-{side}", tenant="t", codes=dev_codes("t"))
        observations = Observations(ledger.path / f"observations-{side}", tenant="t",
                                    code_key=b"verify-one-test-key")
        made.append((Verifier(ledger.tenant, observations, book, Checks(max_scans=4)), book,
                     observations))
    yield _Pair(made[0][0], made[1][0], (made[0][1], made[1][1]))
    for _, book, observations in made:
        observations.close()
        book.close()


def _row(answers: Answers, row: int) -> dict[str, object]:
    """Every field of one row, the batch and product by value."""
    b, p = answers.batch_indexes[row], answers.product_indexes[row]
    return {
        "verdict": answers.verdicts[row], "status": answers.statuses[row],
        "alerts": answers.alert_masks[row], "scan_count": answers.scan_counts[row],
        "first_ms": answers.first_verified_ms[row],
        "first_region": answers.first_regions.get(row),
        "level": answers.levels[row], "code": answers.codes[row],
        "reason": answers.reasons[row], "minted_by": answers.minted_by.get(row),
        "repair": answers.repairs.get(row), "hint": answers.hints.get(row),
        "batch": answers.batches[b].SerializeToString() if b >= 0 else None,
        "product": answers.products[p].SerializeToString() if p >= 0 else None,
    }


def _alerts(book: AlertBook) -> list[tuple[object, ...]]:
    book.flush()
    stored, _ = book.after(0, AlertFilter())
    return sorted(dataclasses.astuple(dataclasses.replace(a, alert_id=0)) for a in stored)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), context=st.sampled_from(sorted(_CONTEXTS)),
       minutes=st.integers(0, 3))
def test_one_code_answers_as_it_does_in_a_batch(ledger: _Ledger, pair: _Pair, data: st.DataObject,
                                                context: str, minutes: int) -> None:
    """A list of distinct codes verified as one batch and one code at a time (``verify_one``,
    as a unary Verify and a check page do), in order, by
    verifiers fed the same scans before: the same answer row for row (verdict, status, alerts,
    scan count and first scan, batch and product, reason, repair, hint), and the same alerts
    stored. Time moves on between examples, so codes are scanned again, past the clone
    threshold and from far away."""
    inputs = data.draw(st.lists(st.sampled_from(ledger.inputs), min_size=1, max_size=6,
                                unique_by=lambda i: i.code))
    scan_context, public = _CONTEXTS[context]
    now_ms = T0 + minutes * MINUTE
    client = client_tag(b"k" * 32, "t", "203.0.113.9", now_ms) if public else b""
    texts = [i.text for i in inputs]
    together = pair.batch.verify(texts, scan_context, now_ms, client=client)
    alone = [pair.single.verify_one(t, scan_context, now_ms, client=client) for t in texts]
    for row, (item, answers) in enumerate(zip(inputs, alone, strict=True)):
        assert _row(answers, 0) == _row(together, row), (item, context)
    assert _alerts(pair.books[1]) == _alerts(pair.books[0])


def test_the_ledger_holds_every_kind_of_input(ledger: _Ledger) -> None:
    """The inputs the property draws from cover every verdict and the alerts that set codes
    apart (recalled, withdrawn, expired, dispensed, revoked key, data mismatch, not
    commissioned, received outside the batch's regions, alone or in a case), and a scrambled
    scan that is repaired."""
    observations = Observations(ledger.path / "observations-cover", tenant="t",
                                code_key=b"verify-one-test-key")
    try:
        answers = Verifier(ledger.tenant, observations).verify(
            [i.text for i in ledger.inputs], ScanContext(), T0)
    finally:
        observations.close()
    kinds = {(i.kind, answers.verdicts[row], answers.statuses[row])
             for row, i in enumerate(ledger.inputs)}
    verdicts = {verdict for _, verdict, _ in kinds}
    assert verdicts == {1, 2, 3, 4, 5}
    statuses = {status for _, _, status in kinds}
    assert {Status.ACTIVE, Status.ISSUED, Status.RECALLED, Status.WITHDRAWN,
            Status.DISPENSED} <= statuses
    assert any("Caps Lock" in note for note in answers.repairs.values())
    assert any(reason.startswith("minted under a revoked") for reason in answers.reasons)
    diverted = {i.kind for row, i in enumerate(ledger.inputs)
                if answers.alert_masks[row] & Alert.DIVERSION.bit}
    assert {"received elsewhere", "in a case received elsewhere"} <= diverted


_answers = load("_answers")


def _twins(ledger: _Ledger, prefix: str) -> Iterator[_Pair]:
    """Two verifiers of one tenant with statistics and alerts of their own: one answering its
    rows in the compiled loop, one through ``answer_rows_reference``."""
    made = []
    for side, reference in ((f"{prefix}compiled", False), (f"{prefix}reference", True)):
        book = AlertBook(ledger.path / f"alerts-{side}", tenant="t", codes=dev_codes("t"))
        observations = Observations(ledger.path / f"observations-{side}", tenant="t",
                                    code_key=b"verify-one-test-key")
        made.append((Verifier(ledger.tenant, observations, book, Checks(max_scans=4),
                              reference=reference), book, observations))
    yield _Pair(made[0][0], made[1][0], (made[0][1], made[1][1]))
    for _, book, observations in made:
        observations.close()
        book.close()


@pytest.fixture(scope="module")
def twins(ledger: _Ledger) -> Iterator[_Pair]:
    """The compiled loop and its reference, for calls of any size."""
    yield from _twins(ledger, "")


@pytest.mark.skipif(_answers is None, reason="the compiled extension is not built or "
                                              "PHARMATRACE_PURE")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), context=st.sampled_from(sorted(_CONTEXTS)),
       minutes=st.integers(0, 3))
def test_the_compiled_row_loop_answers_as_its_reference(
        ledger: _Ledger, twins: _Pair, data: st.DataObject, context: str, minutes: int) -> None:
    """Any inputs, a code repeated in a call included, verified by the compiled row loop and by
    its Python reference, fed the same scans before: the same answer row for row, and the same
    alerts stored."""
    inputs = data.draw(st.lists(st.sampled_from(ledger.inputs), min_size=1, max_size=12))
    scan_context, public = _CONTEXTS[context]
    now_ms = T0 + minutes * MINUTE
    client = client_tag(b"k" * 32, "t", "203.0.113.9", now_ms) if public else b""
    texts = [i.text for i in inputs]
    compiled = twins.batch.verify(texts, scan_context, now_ms, client=client)
    reference = twins.single.verify(texts, scan_context, now_ms, client=client)
    for row, item in enumerate(inputs):
        assert _row(compiled, row) == _row(reference, row), (item, context)
    assert _alerts(twins.books[0]) == _alerts(twins.books[1])


@pytest.fixture(scope="module")
def single_twins(ledger: _Ledger) -> Iterator[_Pair]:
    """The compiled loop and its reference, with statistics and alerts of their own, for one
    code a call."""
    yield from _twins(ledger, "one-")


@pytest.mark.skipif(_answers is None, reason="the compiled extension is not built or "
                                              "PHARMATRACE_PURE")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), context=st.sampled_from(sorted(_CONTEXTS)),
       minutes=st.integers(0, 3), flush_after=st.integers(0, 8))
def test_one_code_in_the_compiled_loop_answers_as_its_reference(
        ledger: _Ledger, single_twins: _Pair, data: st.DataObject, context: str, minutes: int,
        flush_after: int) -> None:
    """Codes verified one call each (the compiled loop answering the first row of its call,
    the scan counted for one key), any code again, by the compiled loop and by its Python
    reference, fed the same scans before, their statistics flushed at the same point: the same
    answer, and the same alerts stored."""
    inputs = data.draw(st.lists(st.sampled_from(ledger.inputs), min_size=1, max_size=8))
    _one_call_each(single_twins, inputs, context, minutes, flush_after,
                   lambda side, text, scan, now_ms, client: side.verify(
                       [text], scan, now_ms, client=client))


def _one_call_each(twins: _Pair, inputs: list[Input], context: str, minutes: int,
                   flush_after: int,
                   verify: Callable[[Verifier, str, ScanContext, int, bytes], Answers]) -> None:
    """Each input verified in a call of its own (``verify``) by both verifiers of ``twins``, in
    order, their statistics flushed after ``flush_after`` inputs: the same answer each time,
    and the same alerts stored."""
    scan_context, public = _CONTEXTS[context]
    now_ms = T0 + minutes * MINUTE
    client = client_tag(b"k" * 32, "t", "203.0.113.9", now_ms) if public else b""
    sides = (twins.batch, twins.single)
    for i, item in enumerate(inputs):
        if i == flush_after:
            for side in sides:
                side._observations.flush()
        first, second = (verify(side, item.text, scan_context, now_ms, client)
                         for side in sides)
        assert _row(first, 0) == _row(second, 0), (item, context)
        assert len(first.batches) == len(second.batches)
        assert len(first.products) == len(second.products)
    assert _alerts(twins.books[0]) == _alerts(twins.books[1])


@pytest.fixture(scope="module")
def usual_twins(ledger: _Ledger) -> Iterator[_Pair]:
    """``verify_one`` with its usual scan's way and through ``verify``'s reference, with
    statistics and alerts of their own."""
    yield from _twins(ledger, "usual-")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), context=st.sampled_from(sorted(_CONTEXTS)),
       minutes=st.integers(0, 3), flush_after=st.integers(0, 8))
def test_the_usual_scan_answers_as_the_reference(
        ledger: _Ledger, usual_twins: _Pair, data: st.DataObject, context: str, minutes: int,
        flush_after: int) -> None:
    """Codes verified one call each by ``verify_one``, any code again: answered the usual way
    where they can be (``Verifier._usual``), and through ``verify``'s reference, fed the same
    scans before, statistics flushed at the same point: the same answer, and the same alerts
    stored."""
    inputs = data.draw(st.lists(st.sampled_from(ledger.inputs), min_size=1, max_size=8))
    _one_call_each(usual_twins, inputs, context, minutes, flush_after,
                   lambda side, text, scan, now_ms, client: side.verify_one(
                       text, scan, now_ms, client=client))


def test_the_inputs_hold_usual_scans_and_others(ledger: _Ledger, usual_twins: _Pair) -> None:
    """The inputs above hold usual scans (signed codes of ours, of batches sold anywhere or in
    some regions, in every status, with a wrong lot, for a consumer's purpose) and scans that
    are not (a revoked key, a foreign or unknown code, an SSCC, a forgery, a malformed or
    scrambled scan, a pharmacy's scan)."""
    verifier = usual_twins.batch
    usual = {i.kind for i in ledger.inputs
             if verifier._usual(i.text, ScanContext(purpose=1), T0) is not None}
    assert usual == {"genuine", "genuine+lot", "dispensed", "dispensed+lot", "issued",
                     "issued+lot", "recalled", "recalled+lot", "received elsewhere",
                     "received elsewhere+lot", "in a case received elsewhere",
                     "in a case received elsewhere+lot", "sold anywhere",
                     "sold anywhere+lot", "dispensed, sold anywhere",
                     "dispensed, sold anywhere+lot", "issued, sold anywhere",
                     "issued, sold anywhere+lot", "expired", "expired+lot", "withdrawn",
                     "withdrawn+lot"}
    pharmacy = ScanContext("PHARM", GUANGZHOU, 2)
    assert all(verifier._usual(i.text, pharmacy, T0) is None for i in ledger.inputs)


def test_scans_with_ever_new_lots_keep_a_bounded_number_of_comparisons(
        ledger: _Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A genuine code scanned with 30 made-up lots, one call each and then in one batch: each
    answer flags the data mismatch, and the verifier keeps at most its limit of lot and expiry
    comparisons (scans may carry any lot text)."""
    monkeypatch.setattr(verification_rows, "_MISMATCHES_KEPT", 8)
    (anywhere,) = (i for i in ledger.inputs if i.kind == "sold anywhere")
    code = parse(anywhere.text).code
    texts = [render(Scan(code, f"MADEUP{n}", "310131"), Form.HRI) for n in range(30)]
    observations = Observations(ledger.path / "observations-lots", tenant="t",
                                code_key=b"verify-one-test-key")
    try:
        verifier = Verifier(ledger.tenant, observations)
        for text in texts:
            answers = verifier.verify_one(text, ScanContext(), T0)
            assert answers.alert_masks[0] & Alert.DATA_MISMATCH.bit, text
            assert len(verifier._kept.mismatches) <= 8
        batch = verifier.verify(texts, ScanContext(), T0)
        assert all(mask & Alert.DATA_MISMATCH.bit for mask in batch.alert_masks)
        assert len(verifier._kept.mismatches) <= 8
    finally:
        observations.close()
