"""A real browser (Debian's chromium, headless, driven by Playwright) against the front door
served for real, as in tests/integration/frontdoor."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

# The served front door and its shop of packs: the integration tests' fixtures.
from tests.integration.frontdoor.conftest import door, shop  # noqa: F401

CHROMIUM = os.environ.get("PHARMATRACE_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module: Playwright's sync API keeps an event loop running in the
    thread while it is open, which other modules' ``asyncio.run`` must not find."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium fonts-noto-cjk)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()
