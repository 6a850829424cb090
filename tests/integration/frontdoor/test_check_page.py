"""The consumer check page over real HTTP: what a patient sees for genuine, recalled,
expired, dispensed, forged and unreadable codes, in Chinese and English, and its rate limit."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import verification_pb2 as vpb
from pharmatrace.v1.verification_pb2_grpc import VerificationStub

from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.frontdoor.conftest import PLANT_NAME, PUBLIC_RATE, Door, Shop
from tracecore import codes

_OUTCOME = re.compile(r'data-outcome="([a-z_]+)"')


def outcome(html: str) -> str:
    match = _OUTCOME.search(html)
    assert match is not None, html[-2000:]
    return match.group(1)


def warnings(html: str) -> set[str]:
    return set(re.findall(r'data-warning="([a-z_]+)"', html))


def test_a_genuine_pack_shows_every_public_field_and_nothing_else(door: Door, shop: Shop
                                                                  ) -> None:
    """A genuine pack: "Genuine", the product as printed (names, strength, pack, form, MAH,
    manufacturer, approval number), lot and expiry, and never its holder."""
    pack = shop.pack()
    with door.client() as http:
        page = http.get("/check", params={"code": pack.codes[0]},
                        headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert outcome(page.text) == "genuine"
    assert ">Genuine<" in page.text
    for text in ("Amoxicillin Capsules", "amoxicillin", "500 mg", "24 capsules / box",
                 "capsule", "Door Pharma Holding Ltd", "Door Pharma Plant No. 1",
                 "国药准字H20240001", pack.lot, pack.expires_on.isoformat()):
        assert text in page.text, text
    assert PLANT_NAME not in page.text and "PLANT-1" not in page.text
    assert warnings(page.text) == set()


def test_chinese_by_accept_language_and_a_switch_to_english(door: Door, shop: Shop) -> None:
    """A Chinese browser gets the page in Chinese with 包装规格, 上市许可持有人 and 批准文号;
    the switch link gives the same answer in English."""
    pack = shop.pack()
    with door.client() as http:
        chinese = http.get("/check", params={"code": pack.codes[0]},
                           headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
        switch = re.search(r'<a href="([^"]+)" hreflang="en"', chinese.text)
        assert switch is not None
        english = http.get(switch.group(1).replace("&amp;", "&"),
                           headers={"Accept-Language": "zh-CN"})
    assert 'lang="zh-CN"' in chinese.text
    for text in ("正品", "包装规格", "上市许可持有人", "批准文号", "生产企业", "通用名"):
        assert text in chinese.text, text
    assert 'lang="en"' in english.text and ">Genuine<" in english.text


def test_every_printed_form_is_checked(door: Door, shop: Shop) -> None:
    """HRI, the DataMatrix element string, the Digital Link and a pasted code with spaces
    around it all check as the same genuine pack."""
    pack = shop.pack()
    scan = codes.parse(pack.codes[0])
    forms = [codes.render(scan, codes.Form.ELEMENT),
             codes.render(scan, codes.Form.DIGITAL_LINK, host="https://id.example.com"),
             f"  {pack.codes[0]} \n"]
    with door.client() as http:
        for text in forms:
            page = http.get("/check", params={"code": text})
            assert outcome(page.text) == "genuine", text


def test_an_nmpa_20_digit_code_is_checked(door: Door, shop: Shop) -> None:
    """A 20-digit Chinese drug traceability code checks as genuine."""
    tenant = shop.tenant()
    drug_id = f"86{uuid.uuid4().int % 10**5:05d}"
    door.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
        nmpa_id=drug_id, name="阿莫西林胶囊", generic_name="阿莫西林", strength="0.25 g",
        pack_spec="0.25g×24粒/盒")), timeout=RPC_TIMEOUT_S)
    door.admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
        product=drug_id, lot="B2401", expires_on="2030-01-31")), timeout=RPC_TIMEOUT_S)
    chunks = list(door.issuance.RequestCodes(ipb.RequestCodesRequest(
        tenant=tenant, product=drug_id, count=1, lot="B2401",
        request_id=f"r-{uuid.uuid4().hex}"),
        timeout=RPC_TIMEOUT_S))
    code = chunks[0].product + chunks[0].serials[0]
    door.lifecycle.Commission(lpb.CommissionRequest(tenant=tenant, codes=[code]),
                              timeout=RPC_TIMEOUT_S)
    with door.client() as http:
        page = http.get("/check", params={"code": code}, headers={"Accept-Language": "zh"})
    assert outcome(page.text) == "genuine", warnings(page.text)
    assert "阿莫西林胶囊" in page.text and "0.25g×24粒/盒" in page.text


def test_a_recalled_pack_says_do_not_use(door: Door, shop: Shop) -> None:
    """A pack of a recalled batch: "Do not use" and the recall warning."""
    pack = shop.pack()
    shop.recall(pack)
    with door.client() as http:
        page = http.get("/check", params={"code": pack.codes[0]})
    assert outcome(page.text) == "do_not_use"
    assert "recalled" in warnings(page.text)
    assert "has been recalled" in page.text


def test_an_expired_pack_says_do_not_use(door: Door, shop: Shop) -> None:
    """A pack past its expiry date: "Do not use" and the expiry warning."""
    pack = shop.pack(expires_on=dt.date.today() - dt.timedelta(days=3))
    with door.client() as http:
        page = http.get("/check", params={"code": pack.codes[0]})
    assert outcome(page.text) == "do_not_use"
    assert "expired" in warnings(page.text)


def test_an_already_dispensed_pack_asks_for_care(door: Door, shop: Shop) -> None:
    """A pack recorded as dispensed: "Take care" and the already-dispensed warning."""
    pack = shop.pack()
    shop.dispense(pack)
    with door.client() as http:
        page = http.get("/check", params={"code": pack.codes[0]})
    assert outcome(page.text) == "caution"
    assert "already_dispensed" in warnings(page.text)


def test_scans_are_counted_and_the_second_check_says_so(door: Door, shop: Shop) -> None:
    """The first check says it is the first; a second client's check says the code was
    checked 2 times and since when; the first client checking again the same day is not a
    third consumer."""
    pack = shop.pack()
    with door.client() as http, door.client() as other:
        first = http.get("/check", params={"code": pack.codes[1]})
        second = other.get("/check", params={"code": pack.codes[1]})
        again = http.get("/check", params={"code": pack.codes[1]})
    assert "first check of this code" in first.text
    assert "checked_before" in warnings(second.text)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert f"checked 2 times, first on {today}" in second.text
    assert f"checked 2 times, first on {today}" in again.text


def test_the_clone_warning_names_the_province_of_the_first_check(door: Door, shop: Shop
                                                                ) -> None:
    """A code first verified by a pharmacy in Shenzhen and then checked by two consumers says,
    in English and in Chinese, that it was first checked in Guangdong."""
    pack = shop.pack()
    with grpc.insecure_channel(door.verify_address) as channel:
        VerificationStub(channel).Verify(vpb.VerifyRequest(
            tenant=pack.tenant, code=pack.codes[2],
            context=vpb.ScanContext(party_id="PHARMACY-SZ", region="440305")),
            timeout=RPC_TIMEOUT_S)
    with door.client() as first, door.client() as second:
        english = first.get("/check", params={"code": pack.codes[2], "lang": "en"})
        chinese = second.get("/check", params={"code": pack.codes[2], "lang": "zh"})
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert f"checked 2 times, first on {today} in Guangdong" in english.text
    assert f"已被查询 3 次，首次查询于 {today}，地点：广东省" in chinese.text


def test_a_place_the_visitor_names_is_not_trusted(door: Door, shop: Shop) -> None:
    """A `region` sent with an anonymous check is not where the code was checked: the first
    check's province is never what a visitor said it was."""
    pack = shop.pack()
    with door.client() as first, door.client() as second:
        first.get("/check", params={"code": pack.codes[0], "region": "310101"})
        page = second.get("/check", params={"code": pack.codes[0], "lang": "en"})
    assert "checked 2 times" in page.text
    assert "Shanghai" not in page.text and "上海" not in page.text


def test_forged_and_made_up_codes_are_not_genuine(door: Door, shop: Shop) -> None:
    """A code signed but never issued, and one whose check characters are wrong, both say
    "Not a genuine code"."""
    pack = shop.pack()
    serial = pack.serial()
    typo = pack.codes[0][:-1] + ("A" if serial[-1] != "A" else "B")
    with door.client() as http:
        for code in (shop.forged(pack), typo):
            page = http.get("/check", params={"code": code})
            assert page.status_code == 200
            assert outcome(page.text) == "not_genuine", code
            assert "Not a genuine code" in page.text or "非正品" in page.text


def test_a_code_no_manufacturer_issued_asks_first_whether_it_was_typed_as_printed(
        door: Door, shop: Shop) -> None:
    """A code with one character typed wrong reads like a forgery, so before calling the pack
    counterfeit the page asks the person to compare what they typed with the pack, in Chinese
    and in English."""
    pack = shop.pack()
    typo = pack.codes[0][:-1] + ("A" if pack.serial()[-1] != "A" else "B")
    with door.client() as http:
        chinese = http.get("/check", params={"code": typo}, headers={"Accept-Language": "zh"})
        english = http.get("/check", params={"code": typo}, headers={"Accept-Language": "en"})
    assert outcome(chinese.text) == outcome(english.text) == "not_genuine"
    assert "请核对输入的追溯码是否与药盒上印刷的完全一致" in chinese.text
    assert "Check that the code was typed exactly as printed on the pack" in english.text


def test_unreadable_input_is_400_with_the_form_and_the_reason(door: Door) -> None:
    """Text that is no code answers 400 with a page that says why and offers the form again."""
    with door.client() as http:
        page = http.get("/check", params={"code": "(01)12345"},
                        headers={"Accept-Language": "en"})
    assert page.status_code == 400
    assert outcome(page.text) == "unreadable"
    assert "GTIN" in page.text and '<form method="get" action="/check">' in page.text


def test_the_chinese_page_says_the_readers_english_reason_is_english(door: Door) -> None:
    """On the Chinese page the code reader's reason (in English) comes after a Chinese label
    saying so, marked as English for screen readers."""
    with door.client() as http:
        page = http.get("/check", params={"code": "(01)12345"},
                        headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 400 and outcome(page.text) == "unreadable"
    reason = re.search(r'<p class="reason">(.*?)</p>', page.text)
    assert reason is not None, page.text
    assert reason.group(1).startswith('说明（英文）：<span lang="en">')
    assert "GTIN" in reason.group(1)


def test_the_form_without_a_code(door: Door) -> None:
    """/check alone is the form to type or paste a code."""
    with door.client() as http:
        page = http.get("/check", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200
    assert 'name="code"' in page.text and "查验" in page.text
    assert "<script" not in page.text and "http" not in page.text.split("<body>")[1].split(
        'action="/check"')[0].replace('href="/check', "")


def test_checks_are_rate_limited_per_client_with_retry_after(door: Door, shop: Shop) -> None:
    """One address checking faster than the public rate gets 429 with Retry-After; another
    address is served meanwhile."""
    pack = shop.pack()
    with door.client() as busy, door.client() as other:
        answers = [busy.get("/check", params={"code": pack.codes[0]})
                   for _ in range(int(PUBLIC_RATE * 2) + 5)]
        statuses = [a.status_code for a in answers]
        served = other.get("/check", params={"code": pack.codes[0]})
    assert 429 in statuses
    limited = answers[statuses.index(429)]
    assert int(limited.headers["retry-after"]) >= 1
    assert served.status_code == 200


def test_a_caps_lock_scan_is_read_as_its_code_and_the_page_says_so(door: Door, shop: Shop
                                                                   ) -> None:
    """A code pasted with Caps Lock on (letters of lot and serial inverted) is checked as the
    pack it stands for: "Genuine", and a line saying the scan was read as the canonical code."""
    pack = shop.pack()
    code = next(c for c in pack.codes if any(ch.isalpha() for ch in c.rsplit("(21)", 1)[1]))
    with door.client() as http:
        page = http.get("/check", params={"code": code.swapcase()},
                        headers={"Accept-Language": "en"})
        plain = http.get("/check", params={"code": pack.codes[0]},
                         headers={"Accept-Language": "en"})
    assert page.status_code == 200 and outcome(page.text) == "genuine"
    assert 'data-repaired="' in page.text and "Caps Lock" in page.text
    assert f"it was read as {code}" in page.text
    assert "data-repaired" not in plain.text


def test_a_code_typed_in_full_width_is_read_as_its_code(door: Door, shop: Shop) -> None:
    """A code typed through a Chinese input method in full-width mode (（０１）０９…) is
    checked as the pack it stands for, and the page says how it was read."""
    pack = shop.pack()
    typed = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in pack.codes[0])
    with door.client() as http:
        page = http.get("/check", params={"code": typed}, headers={"Accept-Language": "zh"})
    assert page.status_code == 200 and outcome(page.text) == "genuine"
    assert "full-width" in page.text and pack.codes[0] in page.text
