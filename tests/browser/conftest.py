"""Fixtures for the browser tests: a server that accepts its own pages, and Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from browser_testing import CHROMIUM, CHROMIUM_ARGS, Pages, PageServer, free_port
from playwright.async_api import Browser, async_playwright


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[PageServer]:
    server = PageServer(tmp_path / "kanava.sqlite3", client_rate_burst=1000, pro_rate_burst=1000)
    server.port = free_port()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def pages(browser: Browser, web_server: PageServer, tmp_path: Path) -> AsyncIterator[Pages]:
    helper = Pages(browser, web_server, tmp_path)
    yield helper
    await helper.close()
    assert not helper.errors, f"errors in the pages: {helper.errors}"
    assert not helper.dialogs, f"unexpected dialogs: {helper.dialogs}"


# The citizen page starts in the browser's language (fi, sv or en). These tests are written for
# a Finnish-speaking resident, so a browser context is Finnish unless a test asks otherwise.
_new_context = Browser.new_context


async def _finnish_context(self: Browser, **options: object) -> object:
    options.setdefault("locale", "fi-FI")
    return await _new_context(self, **options)


@pytest.fixture(autouse=True)
def finnish_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Browser, "new_context", _finnish_context)
