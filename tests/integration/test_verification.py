"""Verification over real gRPC: one pack in any written form, forgeries, alerts, scan counts."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import grpc
import pytest
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import verification_pb2 as vpb

from tracecore.codes import Scheme
from tracecore.ledger.observations import Observations
from tracecore.minting import ALPHABET
from verify_svc.workers import FLUSH_INTERVAL_S

pytestmark = pytest.mark.timeout(120)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
GENUINE = vpb.VERDICT_GENUINE
#: How long a test waits for a worker to notice a changed key ring (it looks about once a second).
KEY_RING_NOTICE_S = 20.0


def _serial(code: str) -> str:
    return code.rsplit("(21)", 1)[1]


def _one_character_changed(code: str, position: int) -> str:
    """The GS1 code with serial character ``position`` replaced by another of its alphabet."""
    head, serial = code.rsplit("(21)", 1)
    old = serial[position]
    new = ALPHABET[(ALPHABET.index(old) + 1) % len(ALPHABET)]
    return f"{head}(21){serial[:position]}{new}{serial[position + 1:]}"


# -- verdicts ----------------------------------------------------------------------------------


def test_every_written_form_of_a_gs1_code_is_the_same_genuine_pack(api, gs1) -> None:
    """HRI, element strings and Digital Links on any host all verify GENUINE as one code."""
    code = api.codes(gs1.tenant, gs1.gtin, 1, lot=gs1.lot)[0]
    serial, gtin, lot, expiry = _serial(code), gs1.gtin, gs1.lot, gs1.expiry
    escaped = f"{serial[:4]}%{ord(serial[4]):02X}{serial[5:]}"
    forms = [
        code,
        f"(01){gtin}(17){expiry}(10){lot}(21){serial}",
        f"]d201{gtin}17{expiry}10{lot}\x1d21{serial}",
        f"]d201{gtin}21{serial}\x1d10{lot}\x1d17{expiry}\r\n",
        f"https://pharma.example.com/01/{gtin}/10/{lot}/21/{serial}?17={expiry}",
        f"http://scan.example.org/app/01/{gtin}/21/{escaped}",
    ]
    answers = [api.verify(gs1.tenant, form) for form in forms]
    assert [a.verdict for a in answers] == [GENUINE] * len(forms)
    assert {a.code for a in answers} == {code}
    assert {(a.product.gtin, a.product.name, a.batch.lot, a.batch.expires_on) for a in answers} == {
        (gtin, "Amoxicillin 500 mg capsules", lot, gs1.expires_on)}


def test_an_nmpa_code_with_or_without_spaces_is_the_same_genuine_pack(api, nmpa) -> None:
    """The 20 NMPA digits verify GENUINE as typed, grouped by spaces, or with scanner CR LF."""
    code = api.codes(nmpa.tenant, nmpa.nmpa_id, 1)[0]
    forms = [code, f"{code[:7]} {code[7:14]} {code[14:]}", f"{code[:7]} {code[7:]}", code + "\r\n"]
    answers = [api.verify(nmpa.tenant, form) for form in forms]
    assert [a.verdict for a in answers] == [GENUINE] * len(forms)
    assert {a.code for a in answers} == {code}
    assert {(a.product.nmpa_id, a.product.name) for a in answers} == {
        (nmpa.nmpa_id, "阿莫西林胶囊")}


@pytest.mark.parametrize("position", [2, 9, 19], ids=["random-part", "middle", "last"])
def test_a_code_with_one_character_changed_has_a_bad_signature(api, gs1, position: int) -> None:
    """A mistyped or forged GS1 serial is BAD_SIGNATURE with a reason, and tells nothing more."""
    code = api.codes(gs1.tenant, gs1.gtin, 1, lot=gs1.lot)[0]
    answer = api.verify(gs1.tenant, _one_character_changed(code, position))
    assert answer.verdict == vpb.VERDICT_BAD_SIGNATURE
    assert answer.reason
    assert (answer.status, answer.product.name, answer.batch.lot, answer.scan_count) == (
        cpb.CODE_STATUS_UNSPECIFIED, "", "", 0)


@pytest.mark.parametrize("scheme", [Scheme.GS1, Scheme.NMPA], ids=["gs1", "nmpa"])
def test_a_signed_code_that_was_never_issued_is_unknown(api, make, tenant: str, forge,
                                                        scheme: Scheme) -> None:
    """A code signed with the tenant's key but never issued (not in the ledger) is UNKNOWN."""
    product = make.gs1(tenant).gtin if scheme is Scheme.GS1 else make.nmpa(tenant).nmpa_id
    api.codes(tenant, product, 5)
    code = forge(tenant, scheme, product, 1)[0]
    answer = api.verify(tenant, code)
    assert (answer.verdict, answer.code, answer.status) == (
        vpb.VERDICT_UNKNOWN, code, cpb.CODE_STATUS_UNSPECIFIED)
    assert answer.reason


@pytest.mark.parametrize("text", [
    "hello",
    "",
    "(01)09501101530003",
    "(01)09501101530004(21)0123456789ABCDEFGHJK",
    "https://example.com/products/42",
    "]d2",
    "12345 678",
    "\x00\x01\x02",
    "x" * 4096,
], ids=["word", "empty", "gtin-only", "bad-gtin-check-digit", "plain-url", "symbology-only",
        "too-few-digits", "control-characters", "4096-characters"])
def test_text_that_is_not_a_code_is_invalid_format_with_a_reason(api, gs1, text: str) -> None:
    """Garbage is INVALID_FORMAT with a reason saying why, never an error."""
    answer = api.verify(gs1.tenant, text)
    assert answer.verdict == vpb.VERDICT_INVALID_FORMAT
    assert answer.reason
    assert (answer.code, answer.scan_count) == ("", 0)


# -- alerts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scanned", "mismatch"), [
    ("same", False),
    ("other-lot", True),
    ("other-expiry", True),
    ("expiry-day-00-same-month", False),
    ("expiry-day-00-other-month", True),
])
def test_scanned_lot_and_expiry_are_checked_against_the_batch(api, gs1, scanned: str,
                                                              mismatch: bool) -> None:
    """A lot or expiry on the pack that differs from the batch record raises DATA_MISMATCH."""
    serial = _serial(api.codes(gs1.tenant, gs1.gtin, 1, lot=gs1.lot)[0])
    expires = dt.date.fromisoformat(gs1.expires_on)
    other_month = (expires.replace(day=1) + dt.timedelta(days=40)).strftime("%y%m00")
    lot, expiry = {
        "same": (gs1.lot, gs1.expiry),
        "other-lot": ("LOT-Z9", gs1.expiry),
        "other-expiry": (gs1.lot, (expires + dt.timedelta(days=1)).strftime("%y%m%d")),
        "expiry-day-00-same-month": (gs1.lot, gs1.expiry[:4] + "00"),
        "expiry-day-00-other-month": (gs1.lot, other_month),
    }[scanned]
    answer = api.verify(gs1.tenant, f"(01){gs1.gtin}(17){expiry}(10){lot}(21){serial}")
    assert answer.verdict == GENUINE
    assert (vpb.ALERT_KIND_DATA_MISMATCH in answer.alerts) is mismatch, answer.alerts


def test_a_pack_of_an_expired_batch_is_flagged_expired(api, make, tenant: str) -> None:
    """A genuine code whose batch expired yesterday carries the EXPIRED alert."""
    product = make.gs1(tenant, expires_on=dt.date.today() - dt.timedelta(days=1))
    answer = api.verify(tenant, api.codes(tenant, product.gtin, 1, lot=product.lot)[0])
    assert answer.verdict == GENUINE
    assert vpb.ALERT_KIND_EXPIRED in answer.alerts


def test_a_code_minted_under_a_revoked_key_is_flagged(api, servers, gs1) -> None:
    """Once a tenant revokes a key, its codes verify BAD_SIGNATURE with the KEY_REVOKED alert;
    codes minted after that, under the new key, are GENUINE."""
    code = api.codes(gs1.tenant, gs1.gtin, 1, lot=gs1.lot)[0]
    assert api.verify(gs1.tenant, code).verdict == GENUINE
    tenant = servers.codegen.data.get(gs1.tenant)
    tenant.keys.revoke(1)
    servers.codegen.data.save_keys(tenant)
    deadline = time.monotonic() + KEY_RING_NOTICE_S
    while (answer := api.verify(gs1.tenant, code)).verdict == GENUINE:
        assert time.monotonic() < deadline, "the verifier never noticed the revoked key"
        time.sleep(0.1)
    assert answer.verdict == vpb.VERDICT_BAD_SIGNATURE
    assert vpb.ALERT_KIND_KEY_REVOKED in answer.alerts
    assert answer.reason
    fresh = api.codes(gs1.tenant, gs1.gtin, 1, lot=gs1.lot)[0]
    assert api.verify(gs1.tenant, fresh).verdict == GENUINE


# -- scan statistics ---------------------------------------------------------------------------


def test_scan_count_rises_and_first_verified_time_stays(api, gs1) -> None:
    """Each scan adds one to the count; the first-verified time is that of the first scan."""
    code, other = api.codes(gs1.tenant, gs1.gtin, 2, lot=gs1.lot)
    before = int(time.time() * 1000)
    answers = [api.verify(gs1.tenant, code)]
    after = int(time.time() * 1000)
    for _ in range(2):
        # One scan per flush of the worker's buffered statistics, so that every answer after
        # the first reads stored totals (scans racing a flush are the xfail test below).
        time.sleep(3 * FLUSH_INTERVAL_S)
        answers.append(api.verify(gs1.tenant, code))
    time.sleep(3 * FLUSH_INTERVAL_S)
    last = api.verify_batch(gs1.tenant, [code, other, code])
    assert [a.scan_count for a in answers] == [1, 2, 3]
    assert before <= answers[0].first_verified_at_ms <= after
    assert {a.first_verified_at_ms for a in answers} == {answers[0].first_verified_at_ms}
    assert list(last.scan_counts) == [4, 1, 5]
    assert last.first_verified_at_ms[0] == answers[0].first_verified_at_ms
    assert last.first_verified_at_ms[2] == answers[0].first_verified_at_ms


def test_only_genuine_codes_are_counted(api, gs1) -> None:
    """Forged and malformed scans are not counted against any code."""
    code = api.codes(gs1.tenant, gs1.gtin, 1, lot=gs1.lot)[0]
    api.verify_batch(gs1.tenant, [_one_character_changed(code, 9), "garbage"])
    assert api.verify(gs1.tenant, code).scan_count == 1


def test_a_scan_during_a_flush_of_scan_statistics_keeps_the_earlier_scans(tmp_path: Path
                                                                           ) -> None:
    """A consumer scanning while the worker writes its statistics still sees the earlier scan:
    count 2, and the first scan's time."""
    observations = Observations(tmp_path / "observations", tenant="t",
                                code_key=b"scan-statistics-test-key")
    key = b"G09501101530003" + b"0123456789ABCDEFGHJK"
    assert observations.record([key], 1_000, 0) == [(1, 1_000)]
    during: list[list[tuple[int, int]]] = []
    write = observations.env.write

    def write_after_a_scan(fn):  # a scan arrives while the flush is writing
        during.append(observations.record([key], 2_000, 0))
        return write(fn)

    observations.env.write = write_after_a_scan  # type: ignore[method-assign]
    try:
        observations.flush()
    finally:
        observations.env.write = write  # type: ignore[method-assign]
        observations.close()
    assert during == [[(2, 1_000)]]


# -- batches and streams -----------------------------------------------------------------------


def test_verify_batch_answers_each_code_in_order_in_consistent_columns(api, gs1, nmpa,
                                                                       forge) -> None:
    """Every column answers codes[i]; products and batches are tables the codes index into."""
    a, b = api.codes(gs1.tenant, gs1.gtin, 2, lot=gs1.lot)
    n = api.codes(nmpa.tenant, nmpa.nmpa_id, 1)[0]
    unknown = forge(gs1.tenant, Scheme.GS1, gs1.gtin, 1)[0]
    codes = [a, _one_character_changed(a, 9), "garbage", n, b, unknown]
    r = api.verify_batch(gs1.tenant, codes)
    columns = [r.verdicts, r.statuses, r.alert_masks, r.scan_counts, r.first_verified_at_ms,
               r.batch_indexes, r.product_indexes]
    assert {len(column) for column in columns} == {len(codes)}
    assert list(r.verdicts) == [GENUINE, vpb.VERDICT_BAD_SIGNATURE, vpb.VERDICT_INVALID_FORMAT,
                                GENUINE, GENUINE, vpb.VERDICT_UNKNOWN]
    issued, none = cpb.CODE_STATUS_ISSUED, cpb.CODE_STATUS_UNSPECIFIED
    assert list(r.statuses) == [issued, none, none, issued, issued, none]
    assert list(r.scan_counts) == [1, 0, 0, 1, 1, 0]
    assert [m != 0 for m in r.alert_masks] == [True, False, False, True, True, False]
    assert [i >= 0 for i in r.product_indexes] == [True, False, False, True, True, False]
    assert [r.products[i].gtin or r.products[i].nmpa_id for i in r.product_indexes if i >= 0] == [
        gs1.gtin, nmpa.nmpa_id, gs1.gtin]
    assert len(r.products) == 2
    assert list(r.batch_indexes) == [0, -1, -1, -1, 0, -1]
    assert [(x.lot, x.expires_on) for x in r.batches] == [(gs1.lot, gs1.expires_on)]


def test_a_batch_verified_off_the_event_loop_answers_like_a_small_one(api, gs1, nmpa) -> None:
    """A pallet larger than what a worker verifies on its event loop (verify_svc INLINE_CODES,
    beyond which a thread does it): every column is in order, a code repeated later in the
    batch counts the earlier scan, and each product and batch is in its table once."""
    from verify_svc.verification import INLINE_CODES

    units = api.codes(gs1.tenant, gs1.gtin, INLINE_CODES + 300, lot=gs1.lot)
    drugs = api.codes(nmpa.tenant, nmpa.nmpa_id, 400)
    codes = [*units[:INLINE_CODES - 1], "garbage", *drugs, units[0], *units[INLINE_CODES:],
             drugs[0]]
    r = api.verify_batch(gs1.tenant, codes)
    assert len(r.verdicts) == len(codes) == len(r.scan_counts) == len(r.product_indexes)
    invalid = INLINE_CODES - 1
    assert [i for i, v in enumerate(r.verdicts) if v != GENUINE] == [invalid]
    names = [r.products[i].gtin or r.products[i].nmpa_id if i >= 0 else None
             for i in r.product_indexes]
    expected = [gs1.gtin] * invalid + [None] + [nmpa.nmpa_id] * 400 + [gs1.gtin] * 301 + [
        nmpa.nmpa_id]
    assert names == expected
    assert sorted(p.gtin or p.nmpa_id for p in r.products) == sorted([gs1.gtin, nmpa.nmpa_id])
    assert [(b.lot, b.expires_on) for b in r.batches] == [(gs1.lot, gs1.expires_on)]
    assert {r.batches[i].lot for i, v in zip(r.batch_indexes, names, strict=True)
            if v == gs1.gtin} == {gs1.lot}
    repeated = codes.index(units[0], 1)
    assert (r.scan_counts[0], r.scan_counts[repeated], r.scan_counts[-1]) == (1, 2, 2)


def test_verify_stream_answers_every_message_in_order(api, gs1) -> None:
    """Each message on the stream gets one answer, in order, as long as the message."""
    codes = api.codes(gs1.tenant, gs1.gtin, 3, lot=gs1.lot)
    messages = [codes[:2], ["garbage"], [codes[2], "(01)1", codes[2]]]
    answers = list(api.verification.VerifyStream(
        iter([vpb.VerifyBatchRequest(tenant=gs1.tenant, codes=m) for m in messages]),
        timeout=30))
    assert [list(r.verdicts) for r in answers] == [
        [GENUINE] * 2, [vpb.VERDICT_INVALID_FORMAT],
        [GENUINE, vpb.VERDICT_INVALID_FORMAT, GENUINE]]
    assert list(answers[2].scan_counts) == [1, 0, 2]


# -- refusals ----------------------------------------------------------------------------------


def test_more_than_100000_codes_in_one_batch_are_refused(api, gs1, refused) -> None:
    """VerifyBatch takes at most 100,000 codes; more is INVALID_ARGUMENT naming codes."""
    refused(INVALID, "codes", lambda: api.verify_batch(gs1.tenant, ["x"] * 100_001))


def test_more_than_100000_codes_in_one_stream_message_are_refused(api, gs1, refused) -> None:
    """A VerifyStream message of more than 100,000 codes ends the stream with INVALID_ARGUMENT."""
    request = vpb.VerifyBatchRequest(tenant=gs1.tenant, codes=["x"] * 100_001)
    refused(INVALID, "codes", lambda: api.verification.VerifyStream(iter([request]), timeout=30))


def test_a_code_longer_than_4096_characters_is_refused(api, gs1, refused) -> None:
    """Verify of more than 4,096 characters is INVALID_ARGUMENT naming code."""
    refused(INVALID, "code", lambda: api.verify(gs1.tenant, "1" * 4097))


def test_a_tenant_cannot_verify_another_tenants_codes(api, make) -> None:
    """Tenant A's codes checked under tenant B are not GENUINE and reveal nothing about them."""
    a, b = make.tenant(), make.tenant()
    gtin = make.gs1(a).gtin
    nmpa_id = make.nmpa(a).nmpa_id
    make.gs1(b)
    make.nmpa(b)
    codes = api.codes(a, gtin, 20) + api.codes(a, nmpa_id, 20)
    r = api.verify_batch(b, codes)
    assert GENUINE not in r.verdicts
    assert set(r.product_indexes) == {-1}
    assert (list(r.products), list(r.batches), set(r.scan_counts)) == ([], [], {0})


@pytest.mark.parametrize(("tenant_id", "status"), [
    ("no-such-tenant", NOT_FOUND),
    ("Not A Tenant", INVALID),
])
def test_verification_for_a_missing_or_malformed_tenant_is_refused(api, refused, tenant_id: str,
                                                                  status: grpc.StatusCode) -> None:
    """Verify and VerifyBatch under an unknown tenant are NOT_FOUND, a malformed one
    INVALID_ARGUMENT, naming tenant."""
    refused(status, "tenant", lambda: api.verify(tenant_id, "(01)09501101530003(21)ABC"))
    refused(status, "tenant", lambda: api.verify_batch(tenant_id, ["(01)09501101530003(21)ABC"]))


@pytest.mark.parametrize("region", ["999999", "4403", "44030x", "４４０３０５"])
def test_a_bad_scan_region_is_refused(api, gs1, refused, region: str) -> None:
    """A scan context region that is not a GB/T 2260 six-digit code is INVALID_ARGUMENT naming
    context.region."""
    code = api.codes(gs1.tenant, gs1.gtin, 1)[0]
    refused(INVALID, "context.region", lambda: api.verify(gs1.tenant, code, region=region))


def test_a_scan_with_a_region_and_party_is_answered(api, gs1) -> None:
    """A valid scan context (region 440305, a party id) does not change the verdict."""
    code = api.codes(gs1.tenant, gs1.gtin, 1)[0]
    answer = api.verify(gs1.tenant, code, region="440305", party_id="pharmacy-17")
    assert answer.verdict == GENUINE


def test_a_scan_party_id_longer_than_64_characters_is_refused(api, gs1, refused) -> None:
    """A scan context party id of more than 64 characters is INVALID_ARGUMENT naming
    context.party_id."""
    refused(INVALID, "context.party_id",
            lambda: api.verify(gs1.tenant, "(01)09501101530003(21)ABC", party_id="p" * 65))
