"""The check page in a real browser on a phone-sized screen: what a person sees for a
genuine, a recalled and a forged code, in Chinese and in English."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.frontdoor.conftest import Door, Shop

PHONE = {"width": 390, "height": 844}
#: Where screenshots go besides the test's own directory, when set.
SCREENSHOTS = os.environ.get("PHARMATRACE_SCREENSHOTS", "")


@pytest.fixture
def phone(browser: Any, door: Door) -> Iterator[Any]:
    """A Chinese phone's browser tab, with an address of its own for the rate limit."""
    address = f"10.9.{random.randrange(256)}.{random.randrange(1, 255)}"
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
        locale="zh-CN", extra_http_headers={"X-Forwarded-For": address}, base_url=door.url,
        java_script_enabled=False)
    page = context.new_page()
    yield page
    context.close()


def seen(page: Any, tmp_path: Path, name: str) -> dict[str, Any]:
    """What the page shows: the verdict's words and colour, every visible text, whether the
    page fits the screen's width; and a screenshot."""
    verdict = page.locator(".verdict")
    state = {
        "verdict": verdict.inner_text(),
        "colour": verdict.evaluate("e => getComputedStyle(e).backgroundColor"),
        "text": page.locator("body").inner_text(),
        "fits": page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"),
    }
    for directory in filter(None, (str(tmp_path), SCREENSHOTS)):
        page.screenshot(path=str(Path(directory) / f"check-page-{name}.png"), full_page=True)
    return state


def test_genuine_pack_on_a_phone(phone: Any, shop: Shop, tmp_path: Path) -> None:
    """A genuine pack: 正品 on green, the product's fields in Chinese labels, the page as wide
    as the phone; the language switch shows the same in English."""
    pack = shop.pack()
    phone.goto(f"/check?code={pack.codes[0]}")
    state = seen(phone, tmp_path, "genuine")
    assert "正品" in state["verdict"]
    assert state["colour"] == "rgb(20, 108, 46)"
    for text in ("药品名称", "Amoxicillin Capsules", "包装规格", "24 capsules / box",
                 "上市许可持有人", "Door Pharma Holding Ltd", "批准文号", "国药准字H20240001",
                 pack.lot, pack.expires_on.isoformat()):
        assert text in state["text"], text
    assert state["fits"]
    phone.click("text=English")
    english = seen(phone, tmp_path, "genuine-en")
    assert "Genuine" in english["verdict"] and "Marketing authorisation holder" in english["text"]


def test_recalled_pack_on_a_phone(phone: Any, shop: Shop, tmp_path: Path) -> None:
    """A recalled pack: 请勿使用 on red, and the recall warning in words."""
    pack = shop.pack()
    shop.recall(pack)
    phone.goto(f"/check?code={pack.codes[0]}")
    state = seen(phone, tmp_path, "recalled")
    assert "请勿使用" in state["verdict"]
    assert state["colour"] == "rgb(179, 38, 30)"
    assert "此批药品已被召回" in state["text"]
    assert state["fits"]


def test_forged_code_typed_into_the_form(phone: Any, shop: Shop, tmp_path: Path) -> None:
    """A forged code typed into the form and sent: 非正品追溯码 on red, telling the person not
    to use the pack."""
    pack = shop.pack()
    phone.goto("/check")
    phone.fill("#code", shop.forged(pack))
    phone.click("button[type=submit]")
    state = seen(phone, tmp_path, "forged")
    assert "非正品追溯码" in state["verdict"]
    assert state["colour"] == "rgb(179, 38, 30)"
    assert "请勿使用" in state["text"]
    assert state["fits"]


def test_a_scrambled_scan_read_as_its_code_fits_the_phone(phone: Any, shop: Shop,
                                                          tmp_path: Path) -> None:
    """A code typed in lower case (Caps Lock) is read as the pack's code, and the verdict that
    names the code read wraps it within the phone's width."""
    pack = shop.pack()
    phone.goto("/check")
    phone.fill("#code", pack.codes[0].lower())
    phone.click("button[type=submit]")
    state = seen(phone, tmp_path, "scrambled")
    assert "正品" in state["verdict"]
    assert pack.codes[0] in state["verdict"].replace("\n", "")
    # A phone's browser widens its layout to hold what overflows, so the box is asked itself.
    assert phone.locator(".verdict").evaluate("e => e.scrollWidth <= e.clientWidth")
