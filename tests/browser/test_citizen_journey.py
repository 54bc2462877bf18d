"""The citizen's whole journey on the chat page, in a real Chromium against a real server.

From the start screen (the service's state before anything is typed) through the questions,
identification at the real development provider, the queue and the chat with a professional
(a websocket client of the test), to the feedback and the transcript; the emergency; the bot;
a reload, a dropped connection and messages written offline; a phone, 320 px at 200 % zoom
and the widget's frame; a change of language mid-chat; the client ending the chat. axe-core
checks every step against the WCAG 2.1 A and AA rules (see axe.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe import check as axe_check
from browser_testing import (
    Pages,
    PageServer,
    answer,
    answer_something_else,
    drop_sockets,
    question,
    start_page_server,
)
from idp import provider_for_kanava
from kanava_testing import Chat, ProPeer
from playwright.async_api import Browser, Page, Route, expect

from protocol import Role
from protocol.messages import (
    ConversationClose,
    ConversationStateChanged,
    MessageNew,
    QueueTake,
    ReadMark,
    TypingSet,
)

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)

I18N = Path(__file__).resolve().parents[2] / "static_client" / "i18n"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1000, "height": 800}


# --- servers ------------------------------------------------------------------------------


@pytest.fixture
def web_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PageServer]:
    """The intake without identification; ``parametrize("web_server", ["plain"],
    indirect=True)`` gives the plain name-and-topic form instead (quicker to a nurse)."""
    intake = getattr(request, "param", "intake") == "intake"
    server = start_page_server(
        tmp_path / "kanava.sqlite3", intake=intake, always_open=True, oidc_issuer=""
    )
    yield server
    server.stop()


PLAIN = pytest.mark.parametrize("web_server", ["plain"], indirect=True)


@pytest.fixture
def identifying_server(tmp_path: Path) -> Iterator[PageServer]:
    """The intake with identification at the real development provider."""
    with provider_for_kanava(tmp_path, "kanava-journey") as (port, identification):
        server = start_page_server(tmp_path / "kanava.sqlite3", port, **identification)
        yield server
        server.stop()


# --- the browser --------------------------------------------------------------------------


async def open_page(
    pages: Pages,
    path: str,
    viewport: dict[str, int] = PHONE,
    *,
    axe: bool = False,
    **options: Any,
) -> Page:
    """A page in a browser context of its own (``pages.new``), downloads allowed.

    ``axe``: the context ignores the page's Content-Security-Policy, so that axe-core can be
    injected as an inline script (only for the contexts whose pages axe checks).
    """
    return await pages.new(
        path,
        viewport["width"],
        viewport["height"],
        bypass_csp=axe,
        accept_downloads=True,
        **options,
    )


async def no_sideways_scrolling(page: Page) -> None:
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width[0]} > {width[1]} px"


async def watch_states(page: Page) -> None:
    """Record every state an own message goes through (sending → delivered → read)."""
    await page.evaluate(
        """() => {
            window.__states = [];
            new MutationObserver((records) => {
                for (const r of records) {
                    if (r.type === "childList") {
                        for (const n of r.addedNodes) {
                            if (n.dataset && n.dataset.own === "1") {
                                window.__states.push(n.dataset.state);
                            }
                        }
                    } else if (r.target.dataset.own === "1") {
                        window.__states.push(r.target.dataset.state);
                    }
                }
            }).observe(document.getElementById("messages"), {
                childList: true, subtree: true, attributes: true, attributeFilter: ["data-state"],
            });
        }"""
    )


async def states_seen(page: Page) -> list[str]:
    states: list[str] = await page.evaluate("window.__states")
    # Consecutive repeats are one state (a message is re-marked when nothing changed).
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


# --- what a resident does -----------------------------------------------------------------


async def citizen_says(page: Page, text: str) -> None:
    await page.get_by_label("Viesti", exact=True).fill(text)
    await page.get_by_role("button", name="Lähetä").click()


async def open_plain_chat(page: Page, name: str, topic: str) -> None:
    await page.get_by_label("Nimesi").fill(name)
    await page.get_by_label("Mitä asiasi koskee?").fill(topic)
    await page.get_by_role("button", name="Aloita keskustelu").click()
    await expect(page.locator("#chat-status")).to_contain_text("jonossa")


async def nurse_takes(chat: Chat, username: str = "hoitaja1") -> tuple[ProPeer, str]:
    pro = await chat.open_pro(username)
    await pro.send(QueueTake())
    taken = await pro.expect(ConversationStateChanged, lambda m: m.conversation.state == "assigned")
    return pro, taken.conversation.conversation_id


def shown_texts(page: Page) -> Any:
    return page.locator("#messages .msg .msg-text")


async def stored(server: PageServer, cid: str) -> list[str]:
    async def read() -> list[str]:
        return [m.text for m in await server.storage.history(cid, 0, 1000)]

    return await server.acall(read)


# --- the translations -----------------------------------------------------------------------


def test_the_three_languages_have_the_same_words() -> None:
    """fi, sv and en have the same keys, none empty, and the same placeholders."""
    files = {lang: json.loads((I18N / f"{lang}.json").read_text()) for lang in ("fi", "sv", "en")}
    keys = {lang: set(words) for lang, words in files.items()}
    assert keys["fi"] == keys["sv"] == keys["en"], {
        lang: sorted(keys["fi"] ^ k) for lang, k in keys.items()
    }
    for lang, words in files.items():
        for key, value in words.items():
            assert isinstance(value, str) and value.strip(), f"{lang}.json: {key} is empty"
            fi_slots = set(re.findall(r"\{(\w+)\}", files["fi"][key]))
            assert set(re.findall(r"\{(\w+)\}", value)) == fi_slots, f"{lang}.json: {key}"


# --- the tests ------------------------------------------------------------------------------


async def test_the_whole_journey_with_identification_a_nurse_feedback_and_transcript(
    browser: Browser, identifying_server: PageServer, tmp_path: Path
) -> None:
    """Start → red flags → the provider's pop-up → the other questions → review → queue →
    chat → ended by the nurse → feedback stored → transcript downloaded; axe finds nothing
    serious on any step."""
    server = identifying_server
    pages = Pages(browser, server, tmp_path)
    chat = Chat(server)
    try:
        page = await open_page(pages, "/client?embed=1&lang=fi&team=kallio&topic=other", axe=True)

        # The start: the state of the service before anything is typed, then the choice.
        service = page.locator("#service")
        await expect(service).to_contain_text("Avoinna nyt.")
        await expect(service).to_contain_text("Jonossa ei ole nyt ketään.")
        await expect(page.get_by_role("heading", name="Oma terveysasia")).to_be_visible()
        await expect(page.get_by_role("heading", name="Yleinen kysymys")).to_be_visible()
        # ?topic=other: that topic only (the others one press away).
        await expect(page.locator("#topic-list .topic-title")).to_have_text(["Jokin muu vaiva"])
        await expect(page.get_by_role("button", name="Näytä muut aiheet")).to_be_visible()
        await axe_check(page, "the start")
        await no_sideways_scrolling(page)
        await pages.screenshot(page, "widget-start-phone.png")

        await page.get_by_role("button", name=re.compile("^Jokin muu vaiva")).click()
        red_flags = question(page, "red_flags")
        await red_flags.get_by_label("Ei mitään näistä").check()
        await axe_check(page, "a question")
        await pages.screenshot(page, "widget-question-phone.png")
        await answer(page, "red_flags")

        # Identification right after the red flags, in a pop-up at the development provider;
        # back in the same page.
        pro = await chat.open_pro("hoitaja1")  # online: the wait can be estimated
        await expect(page.get_by_role("heading", name="Tunnistautuminen")).to_be_visible()
        async with page.context.expect_page() as popup_info:
            await page.get_by_role("button", name="Tunnistaudu").click()
        popup = await popup_info.value
        async with popup.expect_event("close"):
            await popup.get_by_role("button", name=re.compile("^Aino")).click()

        # A required answer left empty: the server's reason, next to the question.
        description = question(page, "description")
        await description.get_by_role("button", name="Seuraava").click()
        error = description.locator(".question-error")
        await expect(error).not_to_be_empty()
        await expect(description.get_by_role("textbox")).to_have_attribute("aria-invalid", "true")
        await axe_check(page, "a validation error")
        await answer_something_else(page, "Ihottuma kyynärvarressa viikon ajan.")

        # The review: every answer, her station from her address; sent.
        await expect(page.get_by_role("heading", name="Tarkista vastauksesi")).to_be_visible()
        await page.get_by_role("button", name="Lähetä ja siirry jonoon").click()

        # The queue: the position and the estimated wait.
        await expect(page.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")
        await expect(page.locator("#chat-wait")).to_have_text(
            re.compile(r"^Arvioitu odotus \d+–\d+ min$")
        )
        await expect(page.get_by_role("button", name="Lopeta keskustelu")).to_be_visible()
        await axe_check(page, "the queue")
        await no_sideways_scrolling(page)
        await pages.screenshot(page, "widget-queue-phone.png")
        # The next resident of the station sees her in the queue before typing anything.
        other_resident = await open_page(pages, "/client?team=kallio")
        await expect(other_resident.locator("#service")).to_have_text(
            "Avoinna nyt. Jonossa on nyt 1 henkilö."
        )
        await other_resident.close()

        # A message written while waiting: sending, then delivered; read once the nurse reads.
        await watch_states(page)
        await citizen_says(page, "Ihottuma kutisee iltaisin.")
        own_state = page.locator("#messages .msg-own .msg-state")
        await expect(own_state).to_have_text("Toimitettu")
        await pro.send(QueueTake())
        taken = await pro.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "assigned"
        )
        cid = taken.conversation.conversation_id
        await expect(page.locator("#chat-with")).to_have_text(
            "Keskustelet: Hanna Hoitaja, sairaanhoitaja"
        )
        history = await pro.history(cid)
        await pro.send(ReadMark(cid, history[-1].seq))
        await expect(own_state).to_have_text("Luettu")
        assert await states_seen(page) == ["sending", "delivered", "read"]

        # The nurse types, then answers; the page says who is typing and who wrote.
        await pro.send(TypingSet(cid, True))
        await expect(page.locator("#typing")).to_have_text("Hanna Hoitaja kirjoittaa…")
        await pro.say(cid, "Hei Aino, onko ihottuma levinnyt?")
        await expect(page.locator("#typing")).to_have_text("")
        other = page.locator("#messages .msg-other").last
        await expect(other.locator(".msg-sender")).to_have_text("Hanna Hoitaja")
        await expect(other.locator(".msg-text")).to_have_text("Hei Aino, onko ihottuma levinnyt?")
        await citizen_says(page, "Ei ole levinnyt.")
        assert (await pro.expect(MessageNew)).message.text == "Ei ole levinnyt."
        await pro.say(cid, "Hyvä. Varaan sinulle ajan huomiselle.")
        await expect(shown_texts(page)).to_have_count(4)
        await axe_check(page, "the chat")
        await no_sideways_scrolling(page)
        await pages.screenshot(page, "widget-chat-phone.png")

        # The nurse ends the chat: feedback and the transcript are offered.
        await pro.send(ConversationClose(cid))
        closed_by = "Hanna Hoitaja lopetti keskustelun."
        await expect(page.locator("#chat-status")).to_have_text(closed_by)
        await expect(page.get_by_label("Viesti", exact=True)).to_be_hidden()
        feedback = page.locator("#feedback")
        await expect(feedback.get_by_role("heading", name="Anna palautetta")).to_be_visible()
        await axe_check(page, "the feedback")
        # Neither a rating nor a comment: said so, nothing sent.
        await feedback.get_by_role("button", name="Lähetä palaute").click()
        await expect(page.locator("#feedback-error")).to_have_text(
            "Valitse arvio tai kirjoita kommentti."
        )
        await feedback.get_by_label("4", exact=True).check()
        await feedback.get_by_label("Kommentti (vapaaehtoinen)").fill("Nopea ja ystävällinen apu.")
        await feedback.scroll_into_view_if_needed()
        await pages.screenshot(page, "widget-feedback-phone.png")
        await feedback.get_by_role("button", name="Lähetä palaute").click()
        await expect(page.locator("#feedback-status")).to_have_text("Kiitos palautteestasi!")
        await expect(feedback).to_be_hidden()
        saved = await server.acall(lambda: server.storage.feedback())
        assert [(f["conversation_id"], f["rating"], f["comment"]) for f in saved] == [
            (cid, 4, "Nopea ja ystävällinen apu.")
        ]

        # The transcript: a text file of what is on the screen, with the date, names, times.
        async with page.expect_download() as download_info:
            await page.get_by_role("button", name="Lataa keskustelu tekstitiedostona").click()
        download = await download_info.value
        assert re.fullmatch(r"kanava-keskustelu-\d{4}-\d\d-\d\d\.txt", download.suggested_filename)
        text = Path(await download.path()).read_text(encoding="utf-8")
        lines = text.splitlines()
        assert lines[0] == "Kanava – keskustelu terveysaseman kanssa"
        assert re.fullmatch(r"Päivämäärä: \d{1,2}\.\d{1,2}\.\d{4}", lines[1])
        assert lines[2] == "Osapuolet: Aino Testinen; Hanna Hoitaja, sairaanhoitaja"
        said = [line for line in lines if line.startswith("[")]
        assert [re.sub(r"^\[\d\d:\d\d\] ", "", line) for line in said] == [
            "Aino Testinen: Ihottuma kutisee iltaisin.",
            "Hanna Hoitaja, sairaanhoitaja: Hei Aino, onko ihottuma levinnyt?",
            "Aino Testinen: Ei ole levinnyt.",
            "Hanna Hoitaja, sairaanhoitaja: Hyvä. Varaan sinulle ajan huomiselle.",
        ]
        assert lines[-1] == "Hanna Hoitaja lopetti keskustelun."

        # A reload keeps the end: the thanks stay, the feedback is not asked again.
        await page.reload()
        await expect(page.locator("#feedback-status")).to_have_text("Kiitos palautteestasi!")
        await expect(shown_texts(page)).to_have_count(4)
    finally:
        await chat.close_all()
        await pages.close()
    assert not pages.errors, pages.errors


async def test_chest_pain_is_an_unmistakable_call_to_112(pages: Pages) -> None:
    """The emergency fills the first screen of a phone: the heading and the call button."""
    page = await open_page(pages, "/client", axe=True)
    await page.get_by_role("button", name=re.compile("^Hengitystieinfektio")).click()
    await answer(page, "red_flags", choose=("Rintakipu tai puristava tunne rinnassa",))
    emergency = page.locator("#intake")
    await expect(emergency).to_have_attribute("role", "alert")
    heading = emergency.get_by_role("heading", name="Soita heti 112")
    call = emergency.get_by_role("link", name="Soita 112")
    for seen in (heading, call):
        await expect(seen).to_be_in_viewport()
    await expect(call).to_have_attribute("href", "tel:112")
    await expect(page.locator("main button:visible, main form:visible")).to_have_count(0)
    await axe_check(page, "the emergency")
    await no_sideways_scrolling(page)
    await pages.screenshot(page, "widget-emergency-phone.png")


async def test_the_bot_is_labelled_as_a_bot_and_offers_quick_replies(pages: Pages) -> None:
    """A general question: the bot says it is a bot, and its buttons answer for the client."""
    page = await open_page(pages, "/client", axe=True)
    general = page.locator(".path-general")
    await expect(general.get_by_role("heading", name="Yleinen kysymys")).to_be_visible()
    await general.get_by_role("button", name="Keskustele neuvontabotin kanssa").click()
    await expect(page.locator("#chat-with")).to_have_text(
        "Keskustelet neuvontabotin kanssa. Se on botti, ei ihminen."
    )
    greeting = page.locator("#messages .msg").first
    await expect(greeting).to_have_class(re.compile(r"\bmsg-from-bot\b"))
    await expect(greeting.locator(".msg-sender")).to_have_text("Neuvontabotti (botti)")
    replies = greeting.locator(".quick-reply")
    await expect(replies.first).to_be_visible()
    await axe_check(page, "the bot's greeting")
    await greeting.get_by_role("button", name="Reseptin uusiminen").click()
    await expect(page.locator("#messages .msg-own .msg-text")).to_have_text(["Reseptin uusiminen"])
    answer_ = page.locator("#messages .msg-other").last
    await expect(answer_.locator(".msg-text")).to_contain_text("OmaKannassa")
    await expect(answer_.locator(".msg-sender")).to_have_text("Neuvontabotti (botti)")
    await axe_check(page, "the bot's answer")
    await no_sideways_scrolling(page)


async def tab_to(page: Page, target: Any, most: int = 40) -> None:
    """Press Tab until ``target`` has the focus (as a keyboard user would)."""
    for _ in range(most):
        if await target.evaluate("el => el === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target}")


async def test_the_keyboard_alone_reaches_the_bot_and_chats(pages: Pages) -> None:
    """Tab and Enter only: the start's choice, a quick reply, a message; focus is visible."""
    page = await open_page(pages, "/client")
    await expect(page.locator("#service")).to_contain_text("Avoinna nyt.")
    await tab_to(page, page.get_by_role("button", name="Keskustele neuvontabotin kanssa"))
    await page.keyboard.press("Enter")
    await expect(page.locator("#chat-title")).to_be_focused()
    reply = page.locator(".quick-reply").first
    await expect(reply).to_be_visible()
    label = await reply.text_content()
    await tab_to(page, reply)
    ring = await reply.evaluate("el => getComputedStyle(el).outlineStyle")
    assert ring == "solid", "the focused button shows no outline"
    await page.keyboard.press("Enter")
    await expect(page.locator("#messages .msg-own .msg-text")).to_have_text([label or ""])
    await expect(page.locator("#messages .msg-other")).to_have_count(2)
    await tab_to(page, page.get_by_label("Viesti", exact=True))
    await page.keyboard.type("Kiitos vastauksesta")
    await page.keyboard.press("Enter")
    await expect(page.locator("#messages .msg-own .msg-text")).to_have_text(
        [label or "", "Kiitos vastauksesta"]
    )


@PLAIN
async def test_a_reload_mid_chat_continues_the_same_conversation(
    pages: Pages, web_server: PageServer
) -> None:
    chat = Chat(web_server)
    try:
        page = await open_page(pages, "/client?team=kallio")
        await open_plain_chat(page, "Liisa Laine", "Selkäkipu")
        await citizen_says(page, "Selkä on kipeä.")
        pro, cid = await nurse_takes(chat)
        await pro.say(cid, "Mistä lähtien?")
        await citizen_says(page, "Eilisestä.")
        before = ["Selkä on kipeä.", "Mistä lähtien?", "Eilisestä."]
        await expect(shown_texts(page)).to_have_text(before)
        token = await page.evaluate("sessionStorage.getItem('kanava.client.token')")

        await page.reload()
        await expect(page.locator("#chat-with")).to_have_text(
            "Keskustelet: Hanna Hoitaja, sairaanhoitaja"
        )
        await expect(shown_texts(page)).to_have_text(before)
        assert await page.evaluate("sessionStorage.getItem('kanava.client.token')") == token
        await citizen_says(page, "Ei ole kuumetta.")
        got = await pro.expect(MessageNew, lambda m: m.message.text == "Ei ole kuumetta.")
        assert got.message.conversation_id == cid
        await expect(shown_texts(page)).to_have_text([*before, "Ei ole kuumetta."])
        assert await stored(web_server, cid) == [*before, "Ei ole kuumetta."]
    finally:
        await chat.close_all()


@PLAIN
async def test_a_dropped_connection_and_messages_written_offline(
    pages: Pages, web_server: PageServer
) -> None:
    """The server loses the socket while the network is down: a quiet notice; what either
    side wrote meanwhile arrives once; nothing is lost or shown twice."""
    pages.expected_console = ("WebSocket connection to",)
    chat = Chat(web_server)
    try:
        page = await open_page(pages, "/client?team=kallio")
        await open_plain_chat(page, "Pekka Puro", "Rokotus")
        await citizen_says(page, "Ensimmäinen viesti")
        pro, cid = await nurse_takes(chat)
        await pro.say(cid, "Hei Pekka")
        await expect(shown_texts(page)).to_have_text(["Ensimmäinen viesti", "Hei Pekka"])

        await page.context.set_offline(True)
        assert await drop_sockets(web_server, Role.CLIENT) == 1
        notice = page.locator("#conn-notice")
        await expect(notice).to_contain_text("Yhteys katkesi. Yhdistetään uudelleen…")
        await expect(notice).to_have_attribute("role", "status")  # quiet: not an alert
        await pro.say(cid, "Oletko siellä?")
        await citizen_says(page, "Kirjoitettu ilman verkkoa 1")
        await citizen_says(page, "Kirjoitettu ilman verkkoa 2")
        pending = page.locator("#messages .msg-own .msg-state")
        await expect(pending.last).to_have_text("Lähetetään…")
        await page.context.set_offline(False)

        await expect(notice).to_be_hidden(timeout=30_000)
        await expect(pending).to_have_text(["Toimitettu", "Toimitettu", "Toimitettu"])
        expected = [
            "Ensimmäinen viesti",
            "Hei Pekka",
            "Oletko siellä?",
            "Kirjoitettu ilman verkkoa 1",
            "Kirjoitettu ilman verkkoa 2",
        ]
        await expect(shown_texts(page)).to_have_text(expected)
        assert await stored(web_server, cid) == expected
        for text in expected[3:]:
            got = await pro.expect(MessageNew, lambda m, text=text: m.message.text == text)
            assert got.message.conversation_id == cid
        await pro.nothing_more(0.5, MessageNew)
    finally:
        await chat.close_all()


async def test_a_phone_320_px_at_200_percent_zoom_and_the_widgets_frame(pages: Pages) -> None:
    """No sideways scrolling and nothing serious for axe, however narrow.

    Browser zoom makes CSS pixels bigger: a window 640 device pixels wide at 200 % is 320 CSS
    pixels wide, and media queries, layout and wrapping see those 320 px. A viewport of
    320 × 370 CSS px with ``device_scale_factor=2`` is exactly that window (640 × 740 device
    pixels at 200 %), the reflow case of WCAG 1.4.10, so that is how it is tested here.
    """
    sizes: list[tuple[str, dict[str, int], dict[str, Any]]] = [
        ("a phone", PHONE, {}),
        ("320 px at 200 %", {"width": 320, "height": 370}, {"device_scale_factor": 2}),
        ("the widget's frame", {"width": 380, "height": 600}, {}),
    ]
    for where, viewport, options in sizes:
        path = "/client?embed=1&lang=fi" if "widget" in where else "/client"
        page = await open_page(pages, path, viewport, axe=True, **options)
        await expect(page.locator("#service")).to_contain_text("Avoinna nyt.")
        await no_sideways_scrolling(page)
        await axe_check(page, f"the start, {where}")
        await page.get_by_role("button", name=re.compile("^Hengitystieinfektio")).click()
        await expect(question(page, "red_flags")).to_be_visible()
        await no_sideways_scrolling(page)
        await axe_check(page, f"a question, {where}")
        await page.get_by_role("button", name="Seuraava").click()  # nothing chosen: refused
        await expect(page.locator(".question-error")).not_to_be_empty()
        await no_sideways_scrolling(page)
        await page.close()

        page = await open_page(pages, path, viewport, axe=True, **options)
        await page.locator(".path-general").get_by_role("button").click()
        await expect(page.locator("#messages .msg").first).to_be_visible()
        await citizen_says(page, "Miten uusin reseptin? " + "pitkä sana" * 20)
        await expect(page.locator("#messages .msg-other")).to_have_count(2)
        await no_sideways_scrolling(page)
        await axe_check(page, f"the chat, {where}")
        await expect(page.get_by_label("Viesti", exact=True)).to_be_visible()
        await expect(page.get_by_role("button", name="Lopeta keskustelu")).to_be_visible()


@PLAIN
async def test_switching_language_mid_chat(pages: Pages, web_server: PageServer) -> None:
    """fi → sv → en: the page's own words change at once; the messages stay as written."""
    chat = Chat(web_server)
    try:
        page = await open_page(pages, "/client?team=kallio")
        await open_plain_chat(page, "Aino Aalto", "Resepti")
        await citizen_says(page, "Hei, tarvitsen reseptin.")
        pro, cid = await nurse_takes(chat)
        history = await pro.history(cid)
        await pro.send(ReadMark(cid, history[-1].seq))
        await pro.say(cid, "Hej, jag hjälper gärna.")
        texts = ["Hei, tarvitsen reseptin.", "Hej, jag hjälper gärna."]
        await expect(shown_texts(page)).to_have_text(texts)
        await expect(page.locator("#messages .msg-own .msg-state")).to_have_text("Luettu")

        words = {
            "sv": (
                "Du chattar med Hanna Hoitaja, sjukskötare",
                "Meddelande",
                "Skicka",
                "Läst",
                "Du",
                "Avsluta chatten",
            ),
            "en": (
                "You are chatting with Hanna Hoitaja, nurse",
                "Message",
                "Send",
                "Read",
                "You",
                "End chat",
            ),
        }
        for lang, (with_, label, send, read, you, end) in words.items():
            await page.locator("#ui-language").select_option(lang)
            await expect(page.locator("html")).to_have_attribute("lang", lang)
            await expect(page.locator("#chat-with")).to_have_text(with_)
            await expect(page.get_by_label(label, exact=True)).to_be_visible()
            await expect(page.get_by_role("button", name=send, exact=True)).to_be_visible()
            await expect(page.locator("#messages .msg-own .msg-state")).to_have_text(read)
            await expect(page.locator("#messages .msg-own .msg-sender")).to_have_text(you)
            await expect(page.get_by_role("button", name=end, exact=True)).to_be_visible()
            await expect(shown_texts(page)).to_have_text(texts)
        # Still the same chat, in English now.
        await page.get_by_label("Message", exact=True).fill("Thank you")
        await page.get_by_role("button", name="Send", exact=True).click()
        assert (await pro.expect(MessageNew)).message.text == "Thank you"
        await pro.send(TypingSet(cid, True))
        await expect(page.locator("#typing")).to_have_text("Hanna Hoitaja is typing…")
        # The choice stays for this tab.
        await page.reload()
        await expect(page.locator("#chat-with")).to_have_text(words["en"][0])
    finally:
        await chat.close_all()


@PLAIN
async def test_the_client_ends_the_chat_and_leaves_only_a_comment(
    pages: Pages, web_server: PageServer
) -> None:
    """ "End chat" asks first (cancel keeps the chat); the nurse is told; a comment alone is
    feedback too. On a desktop."""
    chat = Chat(web_server)
    try:
        page = await open_page(pages, "/client?team=kallio", DESKTOP, axe=True)
        await open_plain_chat(page, "Matti Meikäläinen", "Kuume")
        await citizen_says(page, "Minulla on ollut kuumetta kaksi päivää.")
        pro, cid = await nurse_takes(chat)
        await pro.say(cid, "Hei Matti, kuinka korkea kuume on?")
        await citizen_says(page, "39 astetta.")
        got = await pro.expect(MessageNew)
        await pro.send(ReadMark(cid, got.message.seq))
        await pro.say(cid, "Juo runsaasti ja lepää. Jos kuume jatkuu, ota yhteyttä uudelleen.")
        await expect(shown_texts(page)).to_have_count(4)
        await expect(page.locator("#messages .msg-own .msg-state").last).to_have_text("Luettu")
        await axe_check(page, "the chat on a desktop")
        await pages.screenshot(page, "widget-chat-desktop.png")

        end = page.get_by_role("button", name="Lopeta keskustelu")
        await end.click()
        confirm = page.get_by_role("group", name=re.compile("^Lopetetaanko keskustelu"))
        await expect(confirm).to_be_visible()
        await axe_check(page, "the confirmation")
        await page.keyboard.press("Escape")
        await expect(confirm).to_be_hidden()
        await expect(end).to_be_focused()
        await end.click()
        await confirm.get_by_role("button", name="Peruuta").click()
        await expect(page.get_by_label("Viesti", exact=True)).to_be_visible()
        await end.click()
        await confirm.get_by_role("button", name="Kyllä, lopeta").click()

        await expect(page.locator("#chat-status")).to_have_text("Lopetit keskustelun.")
        closed = await pro.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "closed"
        )
        assert closed.conversation.closed_by == "client"
        await expect(page.get_by_role("heading", name="Keskustelu on päättynyt.")).to_be_focused()
        # Feedback after a reload: the token resumes the closed chat, which takes it too.
        await page.reload()
        await expect(page.locator("#chat-status")).to_have_text("Lopetit keskustelun.")
        await expect(page.locator("#chat-with")).to_have_text("Hanna Hoitaja, sairaanhoitaja")
        await expect(shown_texts(page)).to_have_count(4)
        await page.get_by_label("Kommentti (vapaaehtoinen)").fill("Kiitos!")
        await axe_check(page, "the feedback on a desktop")
        await pages.screenshot(page, "widget-feedback-desktop.png")
        await page.get_by_role("button", name="Lähetä palaute").click()
        await expect(page.locator("#feedback-status")).to_have_text("Kiitos palautteestasi!")
        saved = await web_server.acall(lambda: web_server.storage.feedback())
        assert [(f["rating"], f["comment"]) for f in saved] == [(None, "Kiitos!")]
        await page.get_by_role("button", name="Aloita uusi keskustelu").click()
        await expect(page.get_by_label("Nimesi")).to_be_visible()
    finally:
        await chat.close_all()


async def played_service(page: Page, changes: dict[str, Any]) -> None:
    """Answer /api/service with the server's own answer, changed as ``changes`` says now
    (a state at a fixed time of day)."""

    async def handle(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        body.update(changes)
        await route.fulfill(response=response, json=body)

    await page.route("**/api/service?*", handle)


async def test_the_start_says_closing_soon_and_closed(pages: Pages) -> None:
    """Closing soon: until when new chats start, and who waits; closed: the next opening."""
    page = await open_page(pages, "/client?team=kallio", axe=True)
    await expect(page.locator("#service")).to_contain_text("Avoinna nyt.")
    changes: dict[str, Any] = {"state": "closing_soon", "last_intake_at": "15:30"}
    changes["queue_length"] = 3
    await played_service(page, changes)
    await page.reload()
    service = page.locator("#service")
    await expect(service).to_have_text(
        "Sulkeutuu pian: uusia keskusteluja aloitetaan vain klo 15.30 asti. "
        "Jonossa on nyt 3 henkilöä."
    )
    await axe_check(page, "the start, closing soon")
    await page.locator("#ui-language").select_option("en")
    await expect(service).to_have_text(
        "Closing soon: new chats start only until 15:30. 3 people are waiting in the queue now."
    )
    await page.locator("#ui-language").select_option("fi")

    closed = {
        "lang": "fi",
        "open": False,
        "accepting": False,
        "reason": "after_closing",
        "text": "Chat on suljettu tältä päivältä. Chat avataan huomenna klo 8.00.",
        "advice": "Kiireellisissä terveysasioissa soita Päivystysapuun, puh. 116117.",
        "next_opening": "2026-11-25T08:00:00+02:00",
        "holiday": None,
        "bot": True,
        "numbers": [{"number": "116117", "tel": "tel:116117", "name": "Päivystysapu"}],
    }
    changes.update(state="closed", accepting=False, closed=closed, queue_length=0)
    await page.reload()
    await expect(service).to_have_text("Suljettu nyt.")
    await expect(page.get_by_role("heading", name="Chat on nyt suljettu")).to_be_visible()
    await expect(page.locator("#closed-text")).to_have_text(closed["text"])
    await expect(page.locator("#topics")).to_be_hidden()
    await expect(page.get_by_role("button", name="Keskustele neuvontabotin kanssa")).to_be_visible()
    await axe_check(page, "the start, closed")


async def test_from_the_demo_pages_launcher_through_identification_to_a_nurse_and_feedback(
    browser: Browser, identifying_server: PageServer, tmp_path: Path
) -> None:
    """The resident's way in: the city's page, its chat button, the chat in the widget's
    frame; the red flags, the provider's pop-up, the other questions and the review, the
    queue, the nurse, the feedback."""
    server = identifying_server
    pages = Pages(browser, server, tmp_path)
    chat = Chat(server)
    try:
        page = await open_page(pages, "/demo", {"width": 1000, "height": 800})
        await page.get_by_role("button", name="Chat – kysy hoitajalta").click()
        frame = None
        for _ in range(50):
            frame = next((f for f in page.frames if "/client?" in f.url), None)
            if frame is not None:
                break
            await page.wait_for_timeout(100)
        assert frame is not None, [f.url for f in page.frames]
        await expect(frame.locator("#service")).to_contain_text("Avoinna nyt.")
        await frame.get_by_role("button", name=re.compile("^Jokin muu vaiva")).click()
        await answer(frame, "red_flags", choose=("Ei mitään näistä",))
        pro = await chat.open_pro("hoitaja1")
        async with page.context.expect_page() as popup_info:
            await frame.get_by_role("button", name="Tunnistaudu").click()
        popup = await popup_info.value
        async with popup.expect_event("close"):
            await popup.get_by_role("button", name=re.compile("^Aino")).click()
        await answer_something_else(frame, "Ihottuma kyynärvarressa.")
        await frame.get_by_role("button", name="Lähetä ja siirry jonoon").click()
        await expect(frame.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")

        await pro.send(QueueTake())
        taken = await pro.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "assigned"
        )
        cid = taken.conversation.conversation_id
        assert taken.conversation.client_name == "Aino Testinen"
        await pro.history(cid)
        await pro.say(cid, "Hei Aino, kerro lisää ihottumasta.")
        await expect(frame.locator("#messages .msg-other .msg-text")).to_have_text(
            ["Hei Aino, kerro lisää ihottumasta."]
        )
        await citizen_says(frame, "Se kutisee.")  # type: ignore[arg-type]
        assert (await pro.expect(MessageNew)).message.text == "Se kutisee."
        await pro.send(ConversationClose(cid))
        await expect(frame.locator("#chat-status")).to_have_text(
            "Hanna Hoitaja lopetti keskustelun."
        )
        feedback = frame.locator("#feedback")
        await expect(feedback.get_by_role("heading", name="Anna palautetta")).to_be_visible()
        await feedback.get_by_label("4", exact=True).check()
        await feedback.get_by_role("button", name="Lähetä palaute").click()
        await expect(frame.locator("#feedback-status")).to_have_text("Kiitos palautteestasi!")
        saved = await server.acall(lambda: server.storage.feedback())
        assert [(f["conversation_id"], f["rating"]) for f in saved] == [(cid, 4)]
        await pages.screenshot(page, "widget-done-desktop.png")
    finally:
        await chat.close_all()
        await pages.close()
    assert not pages.errors, pages.errors
