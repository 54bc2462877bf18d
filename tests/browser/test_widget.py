"""The chat widget (widget.js) on a health station's page, in a real Chromium.

The widget's one tag adds a button; the chat runs in a frame from the chat server's own origin,
so the host page cannot read it, and the server lets only the configured host pages frame it.
Host pages of other origins are served by a small aiohttp server in the test itself, with a
strict policy of their own: no inline styles or scripts, scripts and frames from the chat
server only. ``127.0.0.1:<host port>`` is another origin of the same site as the chat server;
``localhost:<host port>`` another site, where Chromium treats the chat's frame as a third party.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from axe import TAGS, axe_source
from browser_testing import Pages, PageServer, free_port, start_page_server
from playwright.async_api import Browser, Frame, Page, expect

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)

LAUNCHER = "#kanava-widget-launcher"
PANEL = "#kanava-widget-panel"
FRAME = "#kanava-widget-panel iframe"


# --- a city's page on another origin ------------------------------------------------------------

HOST_PAGE = """<!doctype html>
<html lang="fi">
<head><meta charset="utf-8"><title>Esimerkkikaupunki</title></head>
<body>
  <h1>Esimerkkikaupungin terveyspalvelut</h1>
  <p><a href="#palvelut">Palvelut</a></p>
  <script src="{chat}/widget.js" data-team-or-station="kallio" data-lang="fi" async></script>
</body>
</html>
"""


# Swedish by the page's own language; the options of position, colours, label and topic.
CUSTOM_PAGE = """<!doctype html>
<html lang="sv-FI">
<head><meta charset="utf-8"><title>Exempelstaden</title></head>
<body>
  <h1>Exempelstadens hälsotjänster</h1>
  <script src="{chat}/widget.js" data-team-or-station="kallio" data-position="bottom-left"
          data-color="#7a1f5c" data-text-color="not a colour" data-label="Fråga oss"
          data-topic="flunssa" async></script>
</body>
</html>
"""


@dataclass
class Site:
    """Where ``Pages.new`` opens pages: the city's site instead of the chat server."""

    base: str


@dataclass
class Embedding:
    chat: PageServer
    listed: str  # a host origin in widget_origins, of the chat server's own site
    other_site: str  # a host origin in widget_origins, of another site
    unlisted: str  # the same host page on an origin that is not listed
    listed_pages: Pages
    other_site_pages: Pages
    unlisted_pages: Pages


@pytest.fixture
async def embedding(browser: Browser, tmp_path: Path) -> AsyncIterator[Embedding]:
    host_port, other_port = free_port(), free_port()
    listed, unlisted = f"http://127.0.0.1:{host_port}", f"http://localhost:{host_port}"
    other_site = f"http://localhost:{other_port}"
    chat = start_page_server(
        tmp_path / "kanava.sqlite3", intake=False, widget_origins=(listed, other_site)
    )

    async def city_page(request: web.Request) -> web.Response:
        policy = (
            f"default-src 'none'; script-src {chat.base}; frame-src {chat.base}; "
            "style-src 'none'; img-src 'none'; base-uri 'none'; form-action 'none'"
        )
        return web.Response(
            text=HOST_PAGE.format(chat=chat.base),
            content_type="text/html",
            headers={"Content-Security-Policy": policy},
        )

    async def custom_page(request: web.Request) -> web.Response:
        response = await city_page(request)
        response.text = CUSTOM_PAGE.format(chat=chat.base)
        return response

    app = web.Application()
    app.router.add_get("/", city_page)
    app.router.add_get("/custom", custom_page)
    runner = web.AppRunner(app)
    await runner.setup()
    for port in (host_port, other_port):
        await web.TCPSite(runner, "127.0.0.1", port).start()
    helpers = [
        Pages(browser, Site(origin), tmp_path)  # type: ignore[arg-type]
        for origin in (listed, other_site, unlisted)
    ]
    try:
        yield Embedding(chat, listed, other_site, unlisted, *helpers)
    finally:
        for helper in helpers:
            await helper.close()
        await runner.cleanup()
        chat.stop()


# --- helpers --------------------------------------------------------------------------------


async def chat_frame(page: Page, base: str) -> Frame:
    """The widget's frame, once its document is the chat page of ``base``."""
    handle = await page.locator(FRAME).element_handle()
    assert handle is not None
    frame = await handle.content_frame()
    assert frame is not None
    wanted = re.compile(re.escape(base) + r"/client\?embed=1")
    for _ in range(100):
        if wanted.match(frame.url):
            return frame
        await page.wait_for_timeout(100)
    raise AssertionError(f"the widget's frame shows {frame.url}")


async def active(page: Page) -> str:
    """What has the keyboard focus in the host page: the element's id, or its tag."""
    result: str = await page.evaluate(
        "() => { const e = document.activeElement; return e ? e.id || e.tagName : ''; }"
    )
    return result


@pytest.fixture
async def service_pages(browser: Browser, tmp_path: Path) -> AsyncIterator[Pages]:
    """Pages of a server configured as the service runs: the intake first, always open (so
    that the screenshots show the start of a real journey at any hour)."""
    server = start_page_server(tmp_path / "service.sqlite3")
    helper = Pages(browser, server, tmp_path)
    try:
        yield helper
    finally:
        await helper.close()
        server.stop()
    assert not helper.errors, f"errors in the pages: {helper.errors}"


async def open_demo(pages: Pages, width: int = 1000, height: int = 800) -> Page:
    page = await pages.new("/demo", width=width, height=height)
    await expect(page.locator(LAUNCHER)).to_be_visible()
    await page.wait_for_function("() => window.Kanava !== undefined")
    return page


def launcher_named(page: Page, name: str) -> Any:
    return page.get_by_role("button", name=name)


# --- the demo station page ----------------------------------------------------------------------


async def test_the_demo_page_opens_the_chat_in_a_frame_of_the_chat_server(
    service_pages: Pages,
) -> None:
    pages, web_server = service_pages, service_pages.server
    page = await open_demo(pages)
    await expect(page.get_by_role("heading", name="Kallion terveysasema")).to_be_visible()
    launcher = launcher_named(page, "Chat – kysy hoitajalta")
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await expect(launcher).to_have_attribute("aria-controls", "kanava-widget-panel")
    box = await launcher.bounding_box()
    assert box is not None and box["width"] >= 44 and box["height"] >= 44
    assert box["x"] + box["width"] <= 1000 - 8 and box["y"] + box["height"] <= 800 - 8
    await expect(page.locator(FRAME)).to_have_count(0)  # nothing loads before it is asked for
    await pages.screenshot(page, "widget-launcher-desktop.png")

    await launcher.click()
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    panel = page.get_by_role("dialog", name="Chat – kysy hoitajalta")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_role("button", name="Sulje chat")).to_be_visible()
    iframe = page.locator(FRAME)
    await expect(iframe).to_have_attribute("title", "Chat hoitajan kanssa")
    await expect(iframe).to_have_attribute("referrerpolicy", "no-referrer")
    frame = await chat_frame(page, web_server.base)
    assert "lang=fi" in frame.url and "team=kallio" in frame.url
    in_frame = page.frame_locator(FRAME)
    await expect(in_frame.get_by_role("heading", level=1).first).to_be_visible()
    await expect(in_frame.locator("html")).to_have_attribute("lang", "fi")
    await expect(in_frame.locator("html")).to_have_class(re.compile(r"\bembedded\b"))

    panel_box = await page.locator(PANEL).bounding_box()
    assert panel_box is not None
    assert (round(panel_box["width"]), round(panel_box["height"])) == (380, 600)
    await pages.screenshot(page, "widget-open-desktop.png")

    # Without JavaScript the page still has its link to the chat; the footer its statement.
    await expect(page.get_by_role("link", name="Avaa chat hoitajan kanssa")).to_be_visible()
    await expect(page.get_by_role("link", name="Saavutettavuusseloste")).to_have_attribute(
        "href", "/accessibility"
    )


async def test_the_host_pages_api_language_close_esc_and_the_kept_conversation(
    pages: Pages, web_server: PageServer
) -> None:
    page = await open_demo(pages)
    await page.evaluate("Kanava.open()")
    assert await page.evaluate("Kanava.isOpen()") is True
    frame = await chat_frame(page, web_server.base)
    in_frame = page.frame_locator(FRAME)
    await expect(in_frame.get_by_role("heading", level=1).first).to_be_visible()
    await frame.evaluate("window.kanavaTestMarker = 42")  # the same document after close/open

    await page.evaluate("Kanava.setLanguage('sv')")
    await expect(in_frame.locator("html")).to_have_attribute("lang", "sv")
    await expect(launcher_named(page, "Chatt – fråga en skötare")).to_be_visible()
    await expect(page.locator(FRAME)).to_have_attribute("title", "Chatt med en skötare")
    await expect(page.get_by_role("button", name="Stäng chatten")).to_be_visible()

    await page.evaluate("Kanava.close()")
    await expect(page.locator(PANEL)).to_be_hidden()
    assert await page.evaluate("Kanava.isOpen()") is False
    # The focus was in the chat: it goes back to the button.
    assert await active(page) == "kanava-widget-launcher"

    await page.evaluate("Kanava.open()")
    await expect(page.locator(PANEL)).to_be_visible()
    await expect(page.locator(FRAME)).to_have_count(1)
    assert await frame.evaluate("window.kanavaTestMarker") == 42
    await expect(in_frame.locator("html")).to_have_attribute("lang", "sv")

    # Esc in the chat (the frame tells the widget) and Esc on the panel's own button.
    assert await active(page) == "IFRAME"
    await page.keyboard.press("Escape")
    await expect(page.locator(PANEL)).to_be_hidden()
    assert await active(page) == "kanava-widget-launcher"
    await page.keyboard.press("Enter")
    await expect(page.locator(PANEL)).to_be_visible()
    await page.locator("#kanava-widget-close").focus()
    await page.keyboard.press("Escape")
    await expect(page.locator(PANEL)).to_be_hidden()
    assert await active(page) == "kanava-widget-launcher"

    # The demo page's own buttons use the same API.
    await page.get_by_role("button", name="In English").click()
    await expect(page.locator(PANEL)).to_be_visible()
    await expect(in_frame.locator("html")).to_have_attribute("lang", "en")
    await expect(launcher_named(page, "Chat – ask a nurse")).to_be_visible()
    assert await frame.evaluate("window.kanavaTestMarker") == 42


async def test_only_the_frame_may_close_the_panel_or_count_unread_messages(
    pages: Pages, web_server: PageServer
) -> None:
    page = await open_demo(pages)
    await page.evaluate("Kanava.open()")
    frame = await chat_frame(page, web_server.base)
    in_frame = page.frame_locator(FRAME)
    await expect(in_frame.get_by_role("heading", level=1).first).to_be_visible()

    # The host page (or any other window) posing as the chat is ignored.
    await page.evaluate("window.postMessage({kanava: 'close'}, '*')")
    await page.evaluate("window.postMessage({kanava: 'unread', count: 5}, '*')")
    # The chat ignores anything but the exact messages.
    for bad in (
        "{kanava: 'set-language', lang: 'de'}",
        "{kanava: 'set-language', lang: 'sv', extra: 1}",
        "'set-language'",
    ):
        await page.evaluate(
            f"document.querySelector('{FRAME}').contentWindow.postMessage({bad}, '*')"
        )
    await page.wait_for_timeout(300)
    await expect(page.locator(PANEL)).to_be_visible()
    await expect(in_frame.locator("html")).to_have_attribute("lang", "fi")

    # A message from the station while the panel is closed: a count on the button.
    await page.evaluate("Kanava.close()")
    await page.wait_for_timeout(300)  # the frame hears of it (a posted message) first
    await frame.evaluate(
        """() => {
            const item = document.createElement("li");
            item.className = "msg";
            item.textContent = "Hei, tässä hoitaja.";
            document.getElementById("messages").append(item);
        }"""
    )
    await expect(page.locator(LAUNCHER)).to_have_accessible_name(
        re.compile(r"^Chat – kysy hoitajalta\W+1 uusi viesti$")
    )
    await expect(page.get_by_role("status")).to_have_text("Chat – kysy hoitajalta: 1 uusi viesti")
    await expect(page.locator(f"{LAUNCHER} span[aria-hidden='true']")).to_have_text("1")
    await page.locator(LAUNCHER).click()
    await expect(page.locator(LAUNCHER)).to_have_accessible_name(
        re.compile(r"^Chat – kysy hoitajalta\s*$")
    )


async def test_keyboard_only(pages: Pages, web_server: PageServer) -> None:
    page = await open_demo(pages)
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await active(page) == "kanava-widget-launcher":
            break
    assert await active(page) == "kanava-widget-launcher"
    outline = await page.locator(LAUNCHER).evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline == "solid"  # a visible focus ring

    await page.keyboard.press("Enter")
    await expect(page.locator(PANEL)).to_be_visible()
    assert await active(page) == "IFRAME"  # focus moved into the panel, into the chat
    await chat_frame(page, web_server.base)
    in_frame = page.frame_locator(FRAME)
    await expect(in_frame.get_by_role("heading", level=1).first).to_be_visible()
    # Backwards through the chat, then the panel's close button.
    for _ in range(20):
        await page.keyboard.press("Shift+Tab")
        if await active(page) != "IFRAME":
            break
    assert await active(page) == "kanava-widget-close"
    await expect(page.locator("#kanava-widget-close")).to_have_accessible_name("Sulje chat")
    await page.keyboard.press("Enter")
    await expect(page.locator(PANEL)).to_be_hidden()
    assert await active(page) == "kanava-widget-launcher"


async def test_on_a_phone_the_chat_fills_the_screen(service_pages: Pages) -> None:
    pages, web_server = service_pages, service_pages.server
    page = await open_demo(pages, width=375, height=740)
    box = await page.locator(LAUNCHER).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    await page.locator(LAUNCHER).click()
    await expect(page.locator(PANEL)).to_have_attribute("aria-modal", "true")
    panel_box = await page.locator(PANEL).bounding_box()
    assert panel_box is not None
    assert [round(panel_box[k]) for k in ("x", "y", "width", "height")] == [0, 0, 375, 740]
    await chat_frame(page, web_server.base)
    in_frame = page.frame_locator(FRAME)
    await expect(in_frame.get_by_role("heading", level=1).first).to_be_visible()
    await pages.screenshot(page, "widget-open-phone.png")

    # Tab stays in the panel while it covers the page.
    for _ in range(30):
        await page.keyboard.press("Tab")
        assert await active(page) in ("IFRAME", "") or await page.evaluate(
            f"document.querySelector('{PANEL}').contains(document.activeElement)"
        )
    await page.keyboard.press("Escape")
    await expect(page.locator(PANEL)).to_be_hidden()


async def test_320_pixels_wide_nothing_scrolls_sideways(pages: Pages) -> None:
    for path in ("/demo", "/accessibility"):
        page = await pages.new(path, width=320, height=640)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, (path, width)
    page = await open_demo(pages, width=320, height=640)
    box = await page.locator(LAUNCHER).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320


# --- other origins ----------------------------------------------------------------------------


async def shows_the_chat_unreadable(pages: Pages, chat: PageServer) -> None:
    page = await pages.new("/")
    await launcher_named(page, "Chat – kysy hoitajalta").click()
    frame = await chat_frame(page, chat.base)
    in_frame = page.frame_locator(FRAME)
    await expect(in_frame.get_by_role("heading", level=1).first).to_be_visible()
    assert frame.url.startswith(chat.base + "/client?")
    assert await page.evaluate(f"document.querySelector('{FRAME}').contentDocument") is None
    read = await page.evaluate(
        f"""() => {{
            try {{ return document.querySelector('{FRAME}').contentWindow.document.title; }}
            catch (err) {{ return "blocked"; }}
        }}"""
    )
    assert read == "blocked"

    # The API works across the origins too.
    await page.evaluate("Kanava.setLanguage('sv')")
    await expect(in_frame.locator("html")).to_have_attribute("lang", "sv")
    await page.evaluate("Kanava.close()")
    await expect(page.locator(PANEL)).to_be_hidden()
    assert not pages.errors, f"errors in the pages: {pages.errors}"


async def test_a_listed_host_page_shows_the_chat_but_cannot_read_it(
    embedding: Embedding,
) -> None:
    await shows_the_chat_unreadable(embedding.listed_pages, embedding.chat)


async def test_a_listed_host_page_of_another_site(embedding: Embedding) -> None:
    """The chat's frame is a third party there: the browser denies it storage (third-party
    cookies blocked), and the chat keeps its state in memory instead."""
    await shows_the_chat_unreadable(embedding.other_site_pages, embedding.chat)


async def test_unread_counts_reach_only_a_host_page_the_chat_page_names(
    embedding: Embedding,
) -> None:
    """The frame tells a host page of another origin about new messages only when the chat
    page lists that origin in <meta name="kanava-widget-origins">."""
    pages = embedding.listed_pages
    page = await pages.new("/")
    await page.evaluate(
        """() => { window.heard = [];
            window.addEventListener("message", (e) => window.heard.push(e.data)); }"""
    )
    await launcher_named(page, "Chat – kysy hoitajalta").click()
    frame = await chat_frame(page, embedding.chat.base)
    await expect(page.frame_locator(FRAME).get_by_role("heading", level=1).first).to_be_visible()
    named = await frame.evaluate(
        """origin => (document.querySelector('meta[name="kanava-widget-origins"]')
            ?.getAttribute("content") || "").split(/[\\s,]+/).includes(origin)""",
        embedding.listed,
    )
    await page.evaluate("Kanava.close()")
    await page.wait_for_timeout(300)
    await frame.evaluate(
        """() => {
            const item = document.createElement("li");
            item.className = "msg";
            document.getElementById("messages").append(item);
        }"""
    )
    if named:
        await expect(page.locator(f"{LAUNCHER} span[aria-hidden='true']")).to_have_text("1")
    else:
        await page.wait_for_timeout(500)
        assert await page.evaluate("window.heard") == []
        await expect(page.locator(LAUNCHER)).to_have_accessible_name(
            re.compile(r"^Chat – kysy hoitajalta\s*$")
        )
    assert not pages.errors, pages.errors


async def test_the_options_of_the_tag(embedding: Embedding) -> None:
    page = await embedding.listed_pages.new("/custom", width=1000, height=800)
    launcher = launcher_named(page, "Fråga oss")
    await expect(launcher).to_be_visible()
    box = await launcher.bounding_box()
    assert box is not None and box["x"] < 50  # bottom-left
    colours = await launcher.evaluate(
        "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]"
    )
    assert colours == ["rgb(122, 31, 92)", "rgb(255, 255, 255)"]  # the text colour was invalid
    await launcher.click()
    frame = await chat_frame(page, embedding.chat.base)
    assert "lang=sv" in frame.url and "team=kallio" in frame.url and "topic=flunssa" in frame.url
    await expect(page.locator(FRAME)).to_have_attribute("title", "Chatt med en skötare")
    await expect(page.get_by_role("button", name="Stäng chatten")).to_be_visible()
    panel_box = await page.locator(PANEL).bounding_box()
    assert panel_box is not None and panel_box["x"] < 50
    await page.evaluate("Kanava.setLanguage('en')")
    await expect(launcher_named(page, "Chat – ask a nurse")).to_be_visible()
    assert not embedding.listed_pages.errors, embedding.listed_pages.errors


async def test_a_host_page_that_is_not_listed_cannot_frame_the_chat(
    embedding: Embedding,
) -> None:
    pages = embedding.unlisted_pages
    pages.expected_console = ("frame-ancestors", "Refused to frame", "Refused to display")
    page = await pages.new("/")
    await launcher_named(page, "Chat – kysy hoitajalta").click()
    handle = await page.locator(FRAME).element_handle()
    assert handle is not None
    frame = await handle.content_frame()
    assert frame is not None
    await page.wait_for_timeout(1500)  # time to load the chat, if it were allowed
    assert not frame.url.startswith(embedding.chat.base + "/client")
    assert await page.frame_locator(FRAME).get_by_role("heading").count() == 0
    assert not pages.errors, f"errors in the pages: {pages.errors}"


async def test_security_headers(embedding: Embedding) -> None:
    chat, listed = embedding.chat, embedding.listed
    async with aiohttp.ClientSession() as session:
        for path in ("/client", "/accessibility"):
            async with session.get(chat.base + path) as response:
                assert response.status == 200
                policy = response.headers["Content-Security-Policy"]
                assert f"frame-ancestors 'self' {listed} {embedding.other_site}" in policy
                assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
                assert "script-src 'self'" in policy
                assert "X-Frame-Options" not in response.headers
        for path in ("/pro", "/demo", "/"):
            async with session.get(chat.base + path) as response:
                assert response.status == 200
                policy = response.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in policy
                assert "unsafe-inline" not in policy
                assert response.headers["X-Frame-Options"] == "DENY"
        async with session.get(chat.base + "/widget.js") as response:
            assert response.status == 200
            assert "javascript" in response.headers["Content-Type"]
            assert "window.Kanava" in await response.text()


# --- the accessibility statement -------------------------------------------------------------


async def test_the_accessibility_statement_in_three_languages(
    pages: Pages, web_server: PageServer
) -> None:
    page = await pages.new("/accessibility")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    for lang, title, link in (
        ("fi", "Saavutettavuusseloste", "Suomeksi"),
        ("sv", "Tillgänglighetsutlåtande", "På svenska"),
        ("en", "Accessibility statement", "In English"),
    ):
        section = page.locator(f"section#{lang}")
        await expect(section).to_have_attribute("lang", lang)
        await expect(section.get_by_role("heading", level=2, name=title)).to_be_visible()
        await expect(section).to_contain_text("WCAG 2.1")
        await expect(section).to_contain_text("saavutettavuus@kanava.example")
        await expect(section).to_contain_text("Traficom")
        await expect(section).to_contain_text("029 534 5000")
        await expect(page.get_by_role("link", name=link)).to_have_attribute("href", f"#{lang}")
    await page.get_by_role("link", name="In English").click()
    await expect(page).to_have_url(re.compile("#en$"))


# --- automated accessibility checks ----------------------------------------------------------


async def axe_violations(target: Page | Frame) -> list[str]:
    """axe-core's WCAG 2.1 A and AA violations of any impact in a page or a frame (its own
    document only). Injected through the DevTools protocol, so the pages keep their policy."""
    if not await target.evaluate("typeof window.axe !== 'undefined'"):
        await target.evaluate(axe_source())  # skips when axe-core is not installed
    results = await target.evaluate(
        """tags => axe.run(document, {
            runOnly: {type: "tag", values: tags}, iframes: false, resultTypes: ["violations"],
        })""",
        TAGS,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: {[' '.join(n['target']) for n in v['nodes']]}"
        for v in results["violations"]
    ]


@pytest.mark.parametrize("width, height", [(1000, 800), (375, 740)], ids=["desktop", "phone"])
async def test_axe_finds_no_wcag_aa_violations(
    pages: Pages, web_server: PageServer, width: int, height: int
) -> None:
    page = await open_demo(pages, width=width, height=height)
    assert await axe_violations(page) == []
    await page.locator(LAUNCHER).click()
    frame = await chat_frame(page, web_server.base)
    await expect(page.frame_locator(FRAME).get_by_role("heading", level=1).first).to_be_visible()
    assert await axe_violations(page) == []
    assert await axe_violations(frame) == []
    statement = await pages.new("/accessibility", width=width, height=height)
    assert await axe_violations(statement) == []
