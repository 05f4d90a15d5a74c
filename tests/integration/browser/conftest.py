"""Debian's chromium, driven headless by Playwright for Python (never ``playwright install``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own sessionStorage) that records console errors and outside requests."""
    # bypass_csp: Playwright's own wait_for_function needs eval, which the pages' CSP (rightly) forbids.
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="vi-VN",
                                  timezone_id="Asia/Ho_Chi_Minh", bypass_csp=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)  # a deadline, not a measurement: the machine is shared
    pg.errors = []
    pg.outside = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.on("request", lambda req: None if req.url.startswith(("http://127.0.0.1", "data:", "blob:"))
          else pg.outside.append(req.url))
    yield pg
    context.close()
