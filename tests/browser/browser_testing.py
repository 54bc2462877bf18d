"""Helpers of the browser tests: a server that accepts its own pages, and browser pages.

A page served from ``http://127.0.0.1:<port>`` opens its websockets with that origin, port
included, so the server must list it in ``allowed_origins``. The port is chosen before the
server starts (bind to port 0, read it, release it), because settings are fixed at start.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

from kanava_testing import PASSWORD, KanavaServer
from playwright.async_api import Browser, BrowserContext, Frame, Locator, Page, expect

from protocol import Role
from protocol.errors import CloseCode
from server.settings import Settings
from server.ws.endpoint import CONNECTIONS

CHROMIUM = os.environ.get("KANAVA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Set KANAVA_SCREENSHOTS=docs/screenshots to refresh the screenshots kept in the repository.
SCREENSHOTS = os.environ.get("KANAVA_SCREENSHOTS")


class PageServer(KanavaServer):
    """A test server whose allowed origins are its own address, port included."""

    @property
    def settings(self) -> Settings:
        base = super().settings
        return base.replace(
            allowed_origins=(f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}")
        )


def start_page_server(
    database: Path, port: int | None = None, *, intake: bool = True, **settings: Any
) -> PageServer:
    """A started server with generous rate limits; by default as the service runs: the
    intake required and (so that tests pass at any hour) always open."""
    if intake:
        settings = {"intake_required": True, "always_open": True, **settings}
    server = PageServer(database, client_rate_burst=1000, pro_rate_burst=1000, **settings)
    server.port = port or free_port()
    server.start()
    return server


async def drop_sockets(server: KanavaServer, role: Role) -> int:
    """The server loses every websocket of ``role`` (as in a proxy restart)."""

    async def drop() -> int:
        assert server.app is not None
        dropped = 0
        for conn in list(server.app[CONNECTIONS]):
            if conn.role is role:
                await conn.close(CloseCode.GOING_AWAY, "server restarting: reconnect shortly")
                dropped += 1
        return dropped

    return await server.acall(drop)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Pages:
    """Opens each user in their own browser context (own sessionStorage, own cookies)."""

    def __init__(self, browser: Browser, server: PageServer, tmp_path: Path) -> None:
        self.browser = browser
        self.server = server
        self.tmp_path = tmp_path
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.expected_console: tuple[str, ...] = ()  # console errors a test causes on purpose

    async def new(
        self, path: str, width: int = 1000, height: int = 800, **context_options: Any
    ) -> Page:
        """A page in a browser context of its own, its errors and dialogs recorded."""
        context = await self.browser.new_context(
            viewport={"width": width, "height": height}, **context_options
        )
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{path}: {exc}"))

        def on_console(msg: Any) -> None:
            if msg.type == "error" and not any(e in msg.text for e in self.expected_console):
                self.errors.append(f"{path}: console {msg.text}")

        page.on("console", on_console)

        async def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        await page.goto(self.server.base + path)
        return page

    async def screenshot(self, page: Page, name: str, full_page: bool = False) -> Path:
        path = self.tmp_path / name
        await page.screenshot(path=str(path), full_page=full_page)
        if SCREENSHOTS:
            target = Path(SCREENSHOTS)
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / name)
        return path

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


# --- the professional console ---------------------------------------------------------------


async def sign_in(pages: Pages, username: str = "hoitaja1") -> Page:
    page = await pages.new("/pro", width=1400, height=900)
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#me")).not_to_be_empty()
    return page


def pane(page: Page, client_name: str) -> Locator:
    """The pane whose heading is exactly the client's name."""
    return page.locator(".pane").filter(
        has=page.get_by_role("heading", name=client_name, exact=True)
    )


def composer(chat_pane: Locator) -> Locator:
    """The pane's message field (the record and transfer forms have text areas too)."""
    return chat_pane.locator(".composer textarea")


async def take(page: Page, client_name: str) -> Locator:
    await page.get_by_role("button", name=f"Take chat with {client_name}", exact=True).click()
    chat_pane = pane(page, client_name)
    await expect(chat_pane).to_have_count(1)
    return chat_pane


# --- the citizen's intake -------------------------------------------------------------------


def question(page: Page | Frame, question_id: str) -> Locator:
    """The form of the question ``question_id`` on the intake's screen."""
    return page.locator(f'#intake form.question[data-question="{question_id}"]')


async def answer(
    page: Page | Frame,
    question_id: str,
    *,
    choose: tuple[str, ...] = (),
    fill: str | None = None,
    next_: str = "Seuraava",
) -> None:
    """Answer the question shown now (labels to check, a text to fill; none: its earlier
    answer as it stands) and wait until the page has moved on from it."""
    form = question(page, question_id)
    await expect(form).to_be_visible()
    for label in choose:
        await form.get_by_label(label, exact=True).check()
    if fill is not None:
        await form.get_by_role("textbox").fill(fill)
    await form.get_by_role("button", name=next_, exact=True).click()
    await expect(form).to_have_count(0)


async def answer_something_else(
    page: Page | Frame,
    description: str,
    *,
    duration: str = "1–6 päivää",
    age: str = "41",
    sex: str = "Nainen",
    pregnant: str = "En ole",
) -> None:
    """The questions of "Jokin muu vaiva" after who may chat is settled, in Finnish, none
    alarming (the severity 2 on the 0–10 row of buttons)."""
    await answer(page, "description", fill=description)
    await answer(page, "duration", choose=(duration,))
    await answer(page, "severity", choose=("2",))
    await answer(page, "worsening", choose=("Ei",))
    await answer(page, "age", fill=age)
    await answer(page, "sex", choose=(sex,))
    if pregnant and sex != "Mies":
        await answer(page, "pregnant", choose=(pregnant,))
    for yes_no in ("chronic", "medication", "allergies"):
        await answer(page, yes_no, choose=("Ei",))
