"""Waiting safely, and the end, in a real Chromium against a real server.

After the questions and identification at the development provider: who the citizen identified
as ("Identified: Aino Testinen · Kallio health station", never the identity code) on the
waiting screen and in the chat's header; the place and the wait, always both, updated live
(and "cannot be estimated" said plainly); for an urgent matter whom to call if it gets worse
(116 117, 112, as tel: links), for a routine one a calm word; and at the end the outcome the
nurse chose, in the citizen's language, on the screen and in the transcript. On a phone
(390 × 844) and a desktop, in Swedish, English and Finnish; axe-core checks every new state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe import check as axe_check
from browser_testing import Pages, PageServer, sign_in, start_page_server, take
from console_testing import Browser as ConsoleHttp
from idp import provider_for_kanava
from kanava_testing import Chat
from playwright.async_api import Browser, Page, expect

from protocol.messages import ConversationStateChanged, MessageNew, QueueTake

pytestmark = pytest.mark.browser
expect.set_options(timeout=15_000)

I18N = Path(__file__).resolve().parents[2] / "static_client" / "i18n"
WORDS = {lang: json.loads((I18N / f"{lang}.json").read_text()) for lang in ("fi", "sv", "en")}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}

# How the citizen answers: option ids for choices, typed text for numbers and texts.
ROUTINE: dict[str, Any] = {
    "red_flags": ["none"],
    "symptoms": ["cough"],
    "duration_days": "3",
    "coughing_blood": "false",
    "condition": "good",
    "age": "41",
    "sex": "female",
    "pregnant": "no",
    "notes": "",
}
URGENT: dict[str, Any] = {
    **ROUTINE,
    "symptoms": ["cough", "breathlessness"],
    "breathing": "walking",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PageServer]:
    """The intake with identification at the real development provider."""
    with provider_for_kanava(tmp_path, "kanava-waiting") as (port, identification):
        server = start_page_server(tmp_path / "kanava.sqlite3", port, **identification)
        yield server
        server.stop()


@pytest.fixture
async def pages(browser: Browser, server: PageServer, tmp_path: Path) -> Any:
    helper = Pages(browser, server, tmp_path)
    yield helper
    await helper.close()
    assert not helper.errors, f"errors in the pages: {helper.errors}"


async def citizen(pages: Pages, lang: str, viewport: dict[str, int]) -> Page:
    return await pages.new(
        f"/client?lang={lang}&team=kallio",
        viewport["width"],
        viewport["height"],
        bypass_csp=True,  # axe-core is injected as an inline script
        accept_downloads=True,
        locale={"fi": "fi-FI", "sv": "sv-FI", "en": "en-GB"}[lang],
    )


async def answer_the_questions(page: Page, answers: dict[str, Any]) -> None:
    """Answer each question of the intake as ``answers`` says (the first option, or "No",
    where it says nothing), in whatever language the page is, until identification."""
    asked: list[str] = []
    while True:
        await page.wait_for_function(
            """() => {
                const box = document.getElementById("intake");
                if (box.hidden || box.dataset.step !== "question") return !box.hidden;
                const form = box.querySelector("form.question");
                return form && !form.hasAttribute("aria-busy");
            }"""
        )
        if await page.locator("#intake").get_attribute("data-step") != "question":
            return
        form = page.locator("#intake form.question")
        qid = await form.get_attribute("data-question") or ""
        assert qid not in asked, f"asked again (refused?): {qid}, after {asked}"
        asked.append(qid)
        wanted = answers.get(qid)
        choices = form.locator("input[type=radio], input[type=checkbox]")
        if await choices.count():
            values = [await c.get_attribute("value") for c in await choices.all()]
            if wanted is None:
                wanted = "false" if "false" in values else "none" if "none" in values else values[0]
            for value in [wanted] if isinstance(wanted, str) else wanted:
                await form.locator(f'input[value="{value}"]').check()
        else:
            await form.locator("input, textarea").fill("Yskää." if wanted is None else wanted)
        await form.locator("button[type=submit]").click()


async def identify_as_aino(page: Page) -> None:
    await expect(page.locator("#intake")).to_have_attribute("data-step", "identify")
    async with page.context.expect_page() as popup_info:
        await page.locator("#intake form.identify button.primary").click()
    popup = await popup_info.value
    async with popup.expect_event("close"):
        await popup.get_by_role("button", name=re.compile("^Aino")).click()


async def into_the_queue(pages: Pages, lang: str, viewport: dict[str, int], urgent: bool) -> Page:
    page = await citizen(pages, lang, viewport)
    await page.locator('#topic-list button[data-topic="respiratory"]').click()
    answers = URGENT if urgent else ROUTINE
    await answer_the_questions(page, answers)  # the red flags
    await identify_as_aino(page)
    await answer_the_questions(page, answers)  # the rest
    # The review: her station from her address; sent.
    await expect(page.locator("#intake")).to_have_attribute("data-step", "review")
    await page.locator("#intake form.review button[type=submit]").click()
    await expect(page.locator("#chat")).to_be_visible()
    return page


async def calls(page: Page) -> list[tuple[str, str | None]]:
    links = page.locator("#chat-advice a")
    return [(await a.inner_text(), await a.get_attribute("href")) for a in await links.all()]


async def no_sideways_scrolling(page: Page) -> None:
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width[0]} > {width[1]} px"


async def test_waiting_urgent_then_the_chat_and_the_outcome_on_a_phone_in_swedish(
    pages: Pages, server: PageServer
) -> None:
    """Urgent: whom to call if it gets worse. No nurse online yet: the wait cannot be
    estimated, said so; a nurse signs in and the estimate appears by itself. The chat's header
    says who she identified as; the end says the outcome the nurse chose, and so does the
    transcript."""
    chat = Chat(server)
    try:
        page = await into_the_queue(pages, "sv", PHONE, urgent=True)
        identified = page.locator("#chat-identified")
        await expect(identified).to_have_text(
            "Identifierad: Aino Testinen · Berghälls hälsostation"
        )
        await expect(page.locator("#chat-status")).to_have_text("Du är nummer 1 i kön.")
        await expect(page.locator("#chat-wait")).to_have_text(
            "Väntetiden kan inte uppskattas just nu. Du behåller din plats i kön."
        )
        safety = page.locator("#chat-advice .safety-net")
        await expect(safety).to_have_text(
            "Om du mår sämre medan du väntar, ring Jourhjälpen 116 117. "
            "I en nödsituation, ring 112."
        )
        assert await calls(page) == [("116 117", "tel:116117"), ("112", "tel:112")]
        await expect(page.locator("body")).not_to_contain_text("150385")  # her identity code
        await axe_check(page, "waiting, urgent, on a phone")
        await no_sideways_scrolling(page)
        await pages.screenshot(page, "widget-wait-unknown-phone.png")

        # A nurse of her station signs in: the wait appears, nothing reloaded.
        nurse = await chat.open_pro("hoitaja1")
        await expect(page.locator("#chat-wait")).to_have_text(
            re.compile(r"^Beräknad väntetid \d+–\d+ min$")
        )
        await expect(safety).to_be_visible()
        await axe_check(page, "waiting, urgent, with an estimate")
        await pages.screenshot(page, "widget-wait-urgent-phone.png")

        await nurse.send(QueueTake())
        taken = await nurse.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "assigned"
        )
        cid = taken.conversation.conversation_id
        await nurse.history(cid)
        await expect(page.locator("#chat-with")).to_have_text(
            "Du chattar med Hanna Hoitaja, sjukskötare"
        )
        await expect(identified).to_have_text(
            "Identifierad: Aino Testinen · Berghälls hälsostation"
        )
        await expect(page.locator("#chat-advice")).to_be_empty()  # the chat has begun
        await expect(page.locator("#chat-wait")).to_be_empty()
        await nurse.say(cid, "Hej Aino, hur andas du nu när du sitter?")
        await page.get_by_label("Meddelande", exact=True).fill("Bättre när jag vilar.")
        await page.get_by_role("button", name="Skicka", exact=True).click()
        assert (await nurse.expect(MessageNew)).message.text == "Bättre när jag vilar."
        await axe_check(page, "the chat with the identified banner, on a phone")
        await pages.screenshot(page, "widget-identified-chat-phone.png")

        # The nurse saves the record entry, "Appointment booked", and ends the chat with it.
        console = ConsoleHttp(server)
        try:
            await console.sign_in("hoitaja1")
            path = f"/api/conversations/{cid}/record"
            _, body = await console.get(path)
            entry = {**body["draft"], "outcome": "booked_appointment", "close": True}
            entry["follow_up"] = "Mottagning i morgon kl. 10."  # for the record, not for her
            status, body = await console.post(path, entry)
            assert status == 200, body
        finally:
            await console.close()
        outcome = page.locator("#ended-outcome")
        await expect(outcome).to_have_text("Resultat En mottagningstid bokades åt dig.")
        await expect(page.locator("#chat-status")).to_have_text("Hanna Hoitaja avslutade chatten.")
        await expect(page.locator("body")).not_to_contain_text("Mottagning i morgon")
        await expect(page.locator("#feedback")).to_be_visible()
        await axe_check(page, "ended with the outcome, on a phone")
        await outcome.scroll_into_view_if_needed()
        await pages.screenshot(page, "widget-outcome-phone.png")

        async with page.expect_download() as download_info:
            await page.locator("#transcript").click()
        text = Path(await (await download_info.value).path()).read_text(encoding="utf-8")
        assert text.splitlines()[-1] == "Resultat: En mottagningstid bokades åt dig."
        # A reload tells the outcome again.
        await page.reload()
        await expect(outcome).to_have_text("Resultat En mottagningstid bokades åt dig.")
    finally:
        await chat.close_all()


async def test_waiting_routine_and_the_console_ends_with_an_outcome_on_a_desktop_in_english(
    pages: Pages, server: PageServer
) -> None:
    """Routine: a calm word, the place and the wait. The nurse ends the chat in the console
    with the outcome "Appointment booked"; the citizen reads it in English."""
    chat = Chat(server)
    try:
        await chat.open_pro("hoitaja2")  # a nurse of Kallio online: the wait can be estimated
        page = await into_the_queue(pages, "en", DESKTOP, urgent=False)
        await expect(page.locator("#chat-identified")).to_have_text(
            "Identified: Aino Testinen · Kallio health station"
        )
        await expect(page.locator("#chat-status")).to_have_text("You are number 1 in the queue.")
        await expect(page.locator("#chat-wait")).to_have_text(
            re.compile(r"^Estimated wait \d+–\d+ min$")
        )
        await expect(page.locator("#chat-advice")).to_have_text(
            "From your answers, your matter can wait for its turn. You can already write your "
            "message – the nurse reads it when it is your turn."
        )
        assert await calls(page) == []  # no numbers to call for a routine matter
        await axe_check(page, "waiting, routine, on a desktop")
        await pages.screenshot(page, "widget-wait-routine-desktop.png")

        console = await sign_in(pages, "hoitaja1")
        chat_pane = await take(console, "Aino Testinen")
        await expect(page.locator("#chat-with")).to_have_text(
            "You are chatting with Hanna Hoitaja, nurse"
        )
        await chat_pane.locator(".composer textarea").fill("Hello Aino, how long have you coughed?")
        await chat_pane.get_by_role("button", name="Send to").click()
        await expect(page.locator("#messages .msg-other .msg-text")).to_have_text(
            ["Hello Aino, how long have you coughed?"]
        )
        await expect(page.locator("#chat-identified")).to_have_text(
            "Identified: Aino Testinen · Kallio health station"
        )
        await axe_check(page, "the chat with the identified banner, on a desktop")
        await pages.screenshot(page, "widget-identified-chat-desktop.png")

        await chat_pane.get_by_role("button", name="End chat with Aino Testinen…").click()
        await chat_pane.get_by_label("Outcome").select_option("booked_appointment")
        await chat_pane.get_by_role("button", name="Save entry and end chat").click()
        await expect(chat_pane.locator(".record-saved")).to_have_text(
            "Record entry saved (version 1)"
        )
        outcome = page.locator("#ended-outcome")
        await expect(outcome).to_have_text("Outcome An appointment was booked for you.")
        await expect(page.locator("#ended-title")).to_have_text("The chat has ended.")
        await axe_check(page, "ended with the outcome, on a desktop")
        await pages.screenshot(page, "widget-outcome-desktop.png")
        # In another language the same outcome, in that language's words.
        await page.locator("#ui-language").select_option("fi")
        await expect(outcome).to_have_text("Lopputulos Sinulle varattiin vastaanottoaika.")
    finally:
        await chat.close_all()


async def test_the_place_and_the_wait_stay_after_a_reload_in_finnish(
    pages: Pages, server: PageServer
) -> None:
    """Routine on a phone, urgent on a desktop: each with its own word; after a reload the
    place and the wait are shown again at once."""
    chat = Chat(server)
    try:
        await chat.open_pro("hoitaja2")
        phone = await into_the_queue(pages, "fi", PHONE, urgent=False)
        await expect(phone.locator("#chat-identified")).to_have_text(
            "Tunnistettu: Aino Testinen · Kallion terveysasema"
        )
        await expect(phone.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")
        await expect(phone.locator("#chat-advice")).to_have_text(
            "Vastaustesi perusteella asiasi voi odottaa vuoroaan. Voit jo kirjoittaa viestisi – "
            "hoitaja lukee sen, kun on sinun vuorosi."
        )
        await axe_check(phone, "waiting, routine, on a phone")
        await no_sideways_scrolling(phone)
        await pages.screenshot(phone, "widget-wait-routine-phone.png")
        await phone.reload()
        await expect(phone.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")
        await expect(phone.locator("#chat-wait")).to_have_text(
            re.compile(r"^Arvioitu odotus \d+–\d+ min$")
        )
        await expect(phone.locator("#chat-identified")).to_have_text(
            "Tunnistettu: Aino Testinen · Kallion terveysasema"
        )

        desktop = await into_the_queue(pages, "fi", DESKTOP, urgent=True)
        # Urgent goes first in line: she is first, the routine chat of the phone second.
        await expect(desktop.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")
        await expect(phone.locator("#chat-status")).to_have_text("Olet jonossa sijalla 2.")
        await expect(desktop.locator("#chat-advice .safety-net")).to_have_text(
            "Jos vointisi huononee odottaessasi, soita Päivystysapuun 116 117. "
            "Hätätilanteessa soita 112."
        )
        assert await calls(desktop) == [("116 117", "tel:116117"), ("112", "tel:112")]
        await axe_check(desktop, "waiting, urgent, on a desktop")
        await pages.screenshot(desktop, "widget-wait-urgent-desktop.png")
    finally:
        await chat.close_all()
