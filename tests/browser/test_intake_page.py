"""The citizen page's pre-chat intake in a real Chromium, against a server that requires it.

Without an identity provider the intake goes topic → red flags → own age and home municipality
→ the other questions → health station → review → queue. What is checked is what the resident
sees: the red-flag question comes first, a refused answer is explained and can be fixed, and an
emergency ends in a call to 112 with nothing queued. With the real development provider,
identification comes right after the red flags.
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
    composer,
    question,
    sign_in,
    start_page_server,
    take,
)
from idp import provider_for_kanava
from kanava_testing import Chat
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from protocol.messages import ConversationStateChanged, QueueTake

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)

RED_FLAGS = "Onko sinulla juuri nyt jokin näistä oireista?"


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[PageServer]:
    """The server of these tests: no identification."""
    server = start_page_server(tmp_path / "kanava.sqlite3", oidc_issuer="")
    yield server
    server.stop()


# --- what a resident does -------------------------------------------------------------------


async def choose_topic(page: Page, title: str) -> None:
    await page.get_by_role("button", name=re.compile(f"^{title}")).click()


async def no_red_flags(page: Page, topic: str = "Jokin muu vaiva") -> None:
    """Choose the topic and answer its red-flag question: none of them."""
    await choose_topic(page, topic)
    await answer(page, "red_flags", choose=("Ei mitään näistä",))


async def who_i_am(page: Page, age: str = "40", lives_here: str = "Kyllä") -> None:
    """Without identification: the own age and the home municipality, after the red flags."""
    await answer(page, "own_age", fill=age)
    await answer(page, "home_municipality", choose=(lives_here,))


async def send_review(page: Page) -> None:
    """The review: every answer shown; send them."""
    await expect(page.get_by_role("heading", name="Tarkista vastauksesi")).to_be_visible()
    await page.get_by_role("button", name="Lähetä ja siirry jonoon").click()


# --- the tests ------------------------------------------------------------------------------


async def test_questions_then_station_then_the_queue(pages: Pages, web_server: PageServer) -> None:
    """Red flags first, a refused temperature fixed, a station chosen: the chat is queued."""
    chat = Chat(web_server)
    try:
        page = await pages.new("/client")
        await expect(page.get_by_role("heading", name="Mitä asiasi koskee?")).to_be_visible()
        await expect(page.locator("#topic-list .topic-title")).to_have_text(
            ["Hengitystieinfektio", "Virtsatieoireet", "Jokin muu vaiva"]
        )
        await expect(page.get_by_role("link", name="112")).to_have_attribute("href", "tel:112")

        await choose_topic(page, "Hengitystieinfektio")
        red_flags = question(page, "red_flags")
        await expect(red_flags.locator("legend")).to_have_text(RED_FLAGS)
        # The progress counts sections, not a total of questions that keeps growing.
        await expect(page.locator(".progress-text")).to_have_text("Osio 1/5: Hätäoireet")
        await expect(red_flags.get_by_role("button", name="Takaisin")).to_have_count(0)
        # "None of these" and a symptom exclude each other.
        chest_pain = red_flags.get_by_label("Rintakipu tai puristava tunne rinnassa")
        await chest_pain.check()
        await red_flags.get_by_label("Ei mitään näistä").check()
        await expect(chest_pain).not_to_be_checked()
        await pages.screenshot(page, "intake-question.png")
        await answer(page, "red_flags")

        # Who may chat, before the symptoms (no identification on this server).
        await expect(page.locator(".progress-text")).to_have_text("Osio 2/5: Tietoja sinusta")
        await who_i_am(page)
        await expect(page.locator(".progress-text")).to_have_text("Osio 3/5: Oireet")
        await answer(page, "symptoms", choose=("Yskä", "Kuume tai kuumeinen olo"))
        # A reload in the middle goes on where the resident was.
        await page.reload()
        await expect(question(page, "duration_days")).to_be_visible()
        await answer(page, "duration_days", fill="3")

        # 50 °C is refused by the server, in Finnish, next to the question, which stays.
        temperature = question(page, "temperature")
        await expect(temperature.locator(".unit")).to_have_text("°C")
        await temperature.get_by_role("textbox").fill("50")
        await temperature.get_by_role("button", name="Seuraava").click()
        await expect(temperature.locator(".question-error")).to_have_text(
            "Anna arvo väliltä 34,0–43,0 °C."
        )
        await expect(temperature.get_by_role("textbox")).to_have_attribute("aria-invalid", "true")
        await answer(page, "temperature", fill="38,5")

        await answer(page, "fever_days", fill="2")
        await answer(page, "coughing_blood", choose=("Ei",))
        await answer(page, "condition", choose=("Hyvä: pystyn tekemään tavallisia asioita",))
        await answer(page, "age", fill="40")
        await answer(page, "sex", choose=("Mies",))
        for yes_no in ("chronic", "medication", "allergies"):
            await answer(page, yes_no, choose=("Ei",))
        await answer(page, "notes")  # optional: left empty

        # A nurse is online, so there is an estimate of the wait.
        pro = await chat.open_pro("hoitaja1")
        await expect(page.get_by_role("heading", name="Terveysasema")).to_be_visible()
        await page.get_by_role("button", name="Jatka").click()
        await expect(page.locator("#intake .form-error")).to_have_text(
            "Valitse terveysasema listasta."
        )
        await page.get_by_label("Valitse oma terveysasemasi.").select_option(
            label="Kallion terveysasema"
        )
        await page.get_by_role("button", name="Jatka").click()
        await send_review(page)

        await expect(page.locator("#chat")).to_be_visible()
        await expect(page.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")
        await expect(page.locator("#chat-wait")).to_have_text(
            re.compile(r"^Arvioitu odotus \d+–\d+ min$")
        )
        await expect(page.locator("#intake")).to_be_hidden()

        # The chat goes on as before: the nurse takes it and reads what was written.
        await page.get_by_label("Viesti", exact=True).fill("Yskä pahenee öisin.")
        await page.get_by_role("button", name="Lähetä").click()
        await expect(page.locator("#messages .msg-own .msg-state")).to_have_text("Toimitettu")
        await pro.send(QueueTake())
        taken = await pro.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "assigned"
        )
        assert taken.conversation.triage == "routine"
        assert taken.conversation.station == "kallio"
        assert [m.text for m in await pro.history(taken.conversation.conversation_id)] == [
            "Yskä pahenee öisin."
        ]
        await expect(page.locator("#chat-with")).to_have_text(
            "Keskustelet: Hanna Hoitaja, sairaanhoitaja"
        )
        await expect(page.locator("#chat-wait")).to_be_hidden()
    finally:
        await chat.close_all()


async def test_chest_pain_shows_the_emergency_screen(pages: Pages, web_server: PageServer) -> None:
    """A red flag ends the intake with a call-112 screen; nothing is queued."""
    page = await pages.new("/client")
    await choose_topic(page, "Hengitystieinfektio")
    await answer(page, "red_flags", choose=("Rintakipu tai puristava tunne rinnassa",))

    emergency = page.locator("#intake")
    await expect(emergency.get_by_role("heading", name="Soita heti 112")).to_be_visible()
    await expect(emergency).to_have_attribute("role", "alert")
    await expect(emergency).to_contain_text("Soita heti hätänumeroon 112")
    await expect(emergency.locator(".emergency-reasons li")).to_have_text(
        ["Rintakipu tai puristus rinnassa"]
    )
    call = emergency.get_by_role("link", name="Soita 112")
    await expect(call).to_have_attribute("href", "tel:112")
    # Nothing more to do here: no form, no button, no queue.
    await expect(page.locator("main button:visible, main form:visible")).to_have_count(0)
    await expect(page.locator("#chat")).to_be_hidden()
    await pages.screenshot(page, "intake-emergency.png")
    assert len(web_server.hub.queue("kallio")) == 0
    # A reload does not hide it: the server repeats the end to the resumed intake.
    await page.reload()
    await expect(emergency.get_by_role("link", name="Soita 112")).to_be_visible()
    await expect(page.locator("#topics")).to_be_hidden()
    assert len(web_server.hub.queue("kallio")) == 0


class PlayedServer:
    """Plays the server's side of /ws/client: the steps a server without an identity
    provider never sends (identify, bot). Records what the page sends."""

    def __init__(self, replies: dict[str, dict[str, Any]]) -> None:
        self.replies = replies  # message type received -> the intake.step to answer with
        self.received: list[dict[str, Any]] = []

    async def attach(self, page: Page) -> None:
        await page.route_web_socket("**/ws/client", self.handle)

    def handle(self, ws: WebSocketRoute) -> None:
        def on_message(raw: str | bytes) -> None:
            msg = json.loads(raw)
            self.received.append(msg)
            reply = self.replies.get(msg["type"])
            if reply is not None:
                ws.send(json.dumps({"type": "intake.step", "token": "t-played", **reply}))

        ws.on_message(on_message)

    def types(self) -> list[str]:
        return [m["type"] for m in self.received if m["type"] != "ping"]


IDENTIFY = {
    "step": "identify",
    "detail": {
        "text": "Tunnistaudu pankkitunnuksilla tai mobiilivarmenteella.",
        "url": "/identity/start?ticket=played&lang=fi",
        "anonymous_allowed": True,
    },
    "triage": "routine",
    "back": True,
}


async def test_identification_opens_a_pop_up_or_continues_anonymously(
    pages: Pages, web_server: PageServer
) -> None:
    """The identify step: the provider opens in a pop-up; not identifying offers only the
    bot, and identifying after all goes back to the identify step."""
    played = PlayedServer(
        {
            "intake.start": IDENTIFY,
            "intake.anonymous": {
                "step": "anonymous",
                "detail": {
                    "text": "Ilman tunnistautumista voit käyttää vain neuvontabottia.",
                    "numbers": [
                        {"number": "116117", "tel": "tel:116117", "name": "Päivystysapu"},
                        {"number": "112", "tel": "tel:112", "name": "Hätänumero"},
                    ],
                },
                "back": True,
            },
            "intake.back": IDENTIFY,
        }
    )
    page = await pages.new("/client")
    await played.attach(page)
    await choose_topic(page, "Jokin muu vaiva")
    await expect(page.get_by_role("heading", name="Tunnistautuminen")).to_be_visible()

    # The pop-up goes to the server's identification start (which, with no provider here,
    # says the link is not valid and tells the opener it did not succeed).
    async with page.context.expect_page() as popup_info:
        await page.get_by_role("button", name="Tunnistaudu").click()
    popup = await popup_info.value
    assert "/identity/start?ticket=played" in popup.url
    await expect(page.locator(".identify-status")).to_have_text(
        "Tunnistautuminen ei onnistunut. Voit yrittää uudelleen."
    )
    await popup.close()

    await page.get_by_role("button", name="Jatka tunnistautumatta (vain neuvontabotti)").click()
    await expect(page.get_by_role("heading", name="Vain neuvontabotti")).to_be_visible()
    await expect(page.get_by_role("button", name="Keskustele neuvontabotin kanssa")).to_be_visible()
    numbers = page.locator("#intake .numbers a")
    await expect(numbers).to_have_text(["Päivystysapu 116117", "Hätänumero 112"])
    await expect(numbers.first).to_have_attribute("href", "tel:116117")
    await expect(numbers.last).to_have_attribute("href", "tel:112")
    await page.get_by_role("button", name="Tunnistaudu sittenkin").click()
    await expect(page.get_by_role("heading", name="Tunnistautuminen")).to_be_visible()
    assert played.types() == ["intake.start", "intake.anonymous", "intake.back"]


async def test_an_urgent_matter_turned_away_is_shown_the_helpline_first(
    pages: Pages, web_server: PageServer
) -> None:
    """Not a resident, but the answers so far look urgent: "call 116117 now" comes first, as
    big as the call to 112 on the emergency screen."""
    played = PlayedServer(
        {
            "intake.start": {
                "step": "guidance",
                "detail": {
                    "text": "Hoitajan chat palvelee asukkaita, joiden kotikunta on Helsinki, "
                    "mutta asiasi on kiireellinen: soita nyt Päivystysapuun 116117.",
                    "reason": "not_resident",
                    "numbers": [
                        {"number": "116117", "tel": "tel:116117", "name": "Päivystysapu"},
                        {"number": "112", "tel": "tel:112", "name": "Hätänumero"},
                    ],
                },
                "triage": "urgent",
            }
        }
    )
    page = await pages.new("/client", width=390, height=844)
    await played.attach(page)
    await choose_topic(page, "Jokin muu vaiva")
    await expect(page.get_by_role("heading", name="Oman kuntasi palvelut")).to_be_visible()
    call = page.locator("#intake a.call-now")
    await expect(call).to_have_text("Soita 116117")
    await expect(call).to_have_attribute("href", "tel:116117")
    await expect(call).to_be_in_viewport()


async def test_the_advice_bot_answers_with_buttons_links_and_112_first(
    pages: Pages, web_server: PageServer
) -> None:
    """A general question from the start page: the bot, labelled as a bot, answers."""
    page = await pages.new("/client")
    await page.get_by_role("button", name="Keskustele neuvontabotin kanssa").click()
    await expect(page.locator("#chat-with")).to_have_text(
        "Keskustelet neuvontabotin kanssa. Se on botti, ei ihminen."
    )
    greeting = page.locator("#messages .msg").first
    await expect(greeting.locator(".msg-sender")).to_have_text("Neuvontabotti (botti)")
    await expect(greeting.locator(".msg-text")).to_contain_text("en ihminen")
    # A topic button sends its label and gets the answer with where to act.
    await greeting.get_by_role("button", name="Reseptin uusiminen").click()
    answer = page.locator("#messages .msg-other").last
    await expect(answer.locator(".msg-text")).to_contain_text("OmaKannassa")
    link = answer.locator(".msg-actions a").first
    await expect(link).to_have_attribute("href", re.compile(r"^https://www\.kanta\.fi"))
    await expect(page.locator(".quick-replies")).to_have_count(0)
    # Safety first: chest pain gets 112 at once.
    await page.get_by_label("Viesti", exact=True).fill("mulla on kova rintakipu")
    await page.get_by_role("button", name="Lähetä").click()
    urgent = page.locator("#messages .msg-other").last
    await expect(urgent.locator(".msg-text")).to_contain_text("Soita heti hätänumeroon 112")
    await expect(urgent.locator(".msg-actions a")).to_have_attribute("href", "tel:112")
    await pages.screenshot(page, "bot-chat.png")
    # A reload brings the chat back, links included.
    await page.reload()
    await expect(page.locator("#messages .msg-actions a[href='tel:112']")).to_have_count(1)


async def test_from_the_bot_to_a_nurse_in_the_same_chat(
    pages: Pages, web_server: PageServer
) -> None:
    """Asking the bot for a nurse runs the intake; the nurse gets the chat with its transcript."""
    page = await pages.new("/client")
    await page.get_by_role("button", name="Keskustele neuvontabotin kanssa").click()
    await expect(page.locator("#messages .msg-other")).to_have_count(1)  # the greeting
    await page.get_by_label("Viesti", exact=True).fill("haluan puhua hoitajan kanssa")
    await page.get_by_role("button", name="Lähetä").click()
    await page.get_by_role("button", name="Siirry hoitajan chattiin").click()
    await expect(page.get_by_role("alert")).to_contain_text("Hoitaja näkee myös")
    await no_red_flags(page)
    await who_i_am(page, "35")
    await answer_something_else(
        page, "Haluan kysyä rokotuksista.", duration="Alkoi tänään", age="35", sex="Mies"
    )
    await page.get_by_label("Valitse oma terveysasemasi.").select_option(
        label="Kallion terveysasema"
    )
    await page.get_by_role("button", name="Jatka").click()
    await send_review(page)

    # The same chat, now waiting for a nurse: the talk with the bot is still on the screen.
    await expect(page.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")
    await expect(page.locator("#messages .msg-text").nth(1)).to_have_text(
        "haluan puhua hoitajan kanssa"
    )
    console = await sign_in(pages, "hoitaja1")
    chat_pane = await take(console, "Anonymous")  # not identified (no provider here)
    await expect(chat_pane.locator(".msg-text").nth(1)).to_have_text("haluan puhua hoitajan kanssa")
    await expect(chat_pane.locator(".msg-sender").first).to_have_text("Neuvontabotti (bot)")
    # The client's buttons are the client's: the nurse sees what was offered, not buttons.
    await expect(chat_pane.locator(".quick-replies, .handoff")).to_have_count(0)
    await expect(chat_pane.locator(".msg-offered").first).to_contain_text("Reseptin uusiminen")
    await expect(chat_pane.locator(".pane-answers")).to_contain_text("Haluan kysyä rokotuksista.")
    await composer(chat_pane).fill("Hei, olen hoitaja.")
    await chat_pane.get_by_role("button", name="Send").click()
    await expect(page.locator("#messages .msg-other .msg-text").last).to_have_text(
        "Hei, olen hoitaja."
    )
    # Nobody is left waiting: the queue the nurse sees is empty again.
    await expect(console.locator(".queue[data-team='kallio'] .queue-count")).to_have_text(
        "0 waiting"
    )
    await pages.screenshot(console, "console-handover.png")
    await expect(page.locator("#chat-with")).to_have_text(
        "Keskustelet: Hanna Hoitaja, sairaanhoitaja"
    )


async def test_without_a_provider_only_anonymous_is_offered(
    pages: Pages, web_server: PageServer
) -> None:
    """An identify step without a URL says identification is unavailable."""
    played = PlayedServer(
        {"intake.start": {**IDENTIFY, "detail": {**IDENTIFY["detail"], "url": None}}}
    )
    page = await pages.new("/client")
    await played.attach(page)
    await choose_topic(page, "Jokin muu vaiva")
    await expect(page.locator(".identify-status")).to_have_text(
        "Tunnistautuminen ei ole nyt käytettävissä. Voit jatkaa nimettömänä."
    )
    await expect(page.get_by_role("button", name="Tunnistaudu")).to_have_count(0)
    await expect(
        page.get_by_role("button", name="Jatka tunnistautumatta (vain neuvontabotti)")
    ).to_be_visible()


async def test_a_swedish_browser_gets_the_intake_in_swedish(
    browser: Browser, web_server: PageServer
) -> None:
    """The language follows the browser; the server's questions come in that language too."""
    context = await browser.new_context(locale="sv-SE")
    try:
        page = await context.new_page()
        await page.goto(web_server.base + "/client")
        await expect(page.locator("#ui-language")).to_have_value("sv")
        await choose_topic(page, "Luftvägsinfektion")
        await expect(page.locator("#intake legend")).to_have_text(
            "Har du något av följande symtom just nu?"
        )
        await expect(page.get_by_role("button", name="Nästa")).to_be_visible()
    finally:
        await context.close()


@pytest.fixture
def identifying_server(tmp_path: Path) -> Iterator[PageServer]:
    """A server whose intake identifies residents at the real development provider."""
    with provider_for_kanava(tmp_path, "kanava-browser") as (port, identification):
        server = start_page_server(tmp_path / "kanava.sqlite3", port, **identification)
        yield server
        server.stop()


async def test_a_resident_identifies_in_a_pop_up_and_reaches_their_own_station(
    browser: Browser, identifying_server: PageServer, tmp_path: Path
) -> None:
    """The whole path with the real provider: questions, the provider's page in a pop-up,
    back to the chat queued at Kallio (Aino's postal code), her name shown to the nurse."""
    pages = Pages(browser, identifying_server, tmp_path)
    chat = Chat(identifying_server)
    try:
        page = await pages.new("/client")
        await no_red_flags(page)

        # Right after the red flags: who she is, before the rest of the questions.
        await expect(page.get_by_role("heading", name="Tunnistautuminen")).to_be_visible()
        await expect(page.locator(".progress-text")).to_have_text("Osio 2/5: Tunnistautuminen")
        console = await sign_in(pages, "hoitaja1")  # a nurse of team kallio
        async with page.context.expect_page() as popup_info:
            await page.get_by_role("button", name="Tunnistaudu").click()
        popup = await popup_info.value
        await expect(page.locator(".identify-status")).to_have_text(
            "Tunnistaudu avautuneessa ikkunassa. Sen jälkeen jatkat tässä."
        )
        await pages.screenshot(page, "intake-identify.png")
        # The provider's own page, in the pop-up: Aino presses her button.
        await expect(popup.get_by_text("test service, fictitious persons only")).to_be_visible()
        async with popup.expect_event("close"):
            await popup.get_by_role("button", name=re.compile("^Aino")).click()

        # Back in the chat page, without reloading: the rest of the questions, then the
        # review with her own station (from her address), and the queue there.
        await answer_something_else(
            page,
            "Ihottuma kyynärvarressa viikon ajan.",
            duration="1–6 päivää",
            age="41",
            sex="Nainen",
            pregnant="En ole",
        )
        await expect(page.locator(".review-station")).to_contain_text("Kallion terveysasema")
        await send_review(page)
        await expect(page.locator("#chat")).to_be_visible()
        await expect(page.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")
        await expect(page.locator("#intake")).to_be_hidden()
        # The nurse's console: who she is (identified, the code masked), the triage level at
        # the top, and the answers.
        chat_pane = await take(console, "Aino Testinen")
        await expect(chat_pane.locator(".pane-triage")).to_have_text("Routine")
        await expect(chat_pane.locator(".pane-facts")).to_have_text(
            "41 y · 150385-**** · strongly identified"
        )
        await expect(chat_pane.locator(".pane-unverified")).to_be_hidden()
        answers = chat_pane.locator(".pane-answers")
        await expect(answers.locator("dt").first).to_have_text("Hätäoireet nyt")
        await expect(answers).to_contain_text("Ihottuma kyynärvarressa viikon ajan.")
        await expect(chat_pane).not_to_contain_text("150385-9")  # never the whole code
        await pages.screenshot(console, "console-intake.png")
        await expect(page.locator("#chat-with")).to_have_text(
            "Keskustelet: Hanna Hoitaja, sairaanhoitaja"
        )
        (view,) = identifying_server.hub.open_conversations()
        assert (view.team_id, view.station_id) == ("kallio", "kallio")
    finally:
        await chat.close_all()
        await pages.close()
    assert not pages.errors, pages.errors


async def test_a_link_completed_in_another_browser_identifies_nobody(
    browser: Browser, identifying_server: PageServer, tmp_path: Path
) -> None:
    """The phishing case in real browsers: the attacker's chat page reaches its identify step
    and sends its link to Aino, who logs in with it in her own browser. Her browser is told to
    identify from the chat itself; the attacker's chat stays at the identify step, with no name
    and no queue place."""
    pages = Pages(browser, identifying_server, tmp_path)
    try:
        attacker = await pages.new("/client")
        await no_red_flags(attacker)
        await expect(attacker.get_by_role("heading", name="Tunnistautuminen")).to_be_visible()
        link = await attacker.locator("#intake").get_attribute("data-identify-url")
        assert link and "/identity/start?ticket=" in link

        # Browsers ask the provider's and the callback page's origins for a favicon they lack.
        pages.expected_console = ("status of 404",)
        # Aino's own browser, on the city's site (axe needs its script let in: bypass_csp).
        victim = await pages.new("/", bypass_csp=True)
        await victim.goto(link)
        await expect(victim.get_by_text("test service, fictitious persons only")).to_be_visible()
        await victim.get_by_role("button", name=re.compile("^Aino")).click()
        await expect(victim.get_by_role("status")).to_have_text(
            "Tätä ikkunaa ei avattu chatista, joten tunnistautumista ei käytetty. Palaa chattiin "
            "ja valitse siellä Tunnistaudu."
        )
        await pages.screenshot(victim, "identity-not-from-chat.png")
        await axe_check(victim, "identification result page")

        await attacker.wait_for_timeout(1000)
        await expect(attacker.get_by_role("heading", name="Tunnistautuminen")).to_be_visible()
        await expect(attacker.locator("#chat")).to_be_hidden()
        await expect(attacker.locator("body")).not_to_contain_text("Aino")
        assert not identifying_server.hub.open_conversations()  # nothing queued, nobody identified
        # The attacker's own next click gets a fresh link, not a used one.
        fresh = await attacker.locator("#intake").get_attribute("data-identify-url")
        assert fresh and fresh != link
    finally:
        await pages.close()
    assert not pages.errors, pages.errors


async def test_a_network_over_its_limit_is_told_when_to_try_again_and_about_112(
    browser: Browser, tmp_path: Path
) -> None:
    """A limit per address refuses a bot chat: the page goes back to the start and says, in
    the page's language, to try again later, and to call 112 in an emergency."""
    server = start_page_server(tmp_path / "kanava.sqlite3", bot_chats_burst=1, bot_chats_per_hour=2)
    pages = Pages(browser, server, tmp_path)
    try:
        first = await pages.new("/client?lang=fi", width=390, height=780)
        await first.locator("#topics .bot-offer button").click()
        await expect(first.locator("#chat")).to_be_visible()
        second = await pages.new("/client?lang=fi", width=390, height=780)
        await second.locator("#topics .bot-offer button").click()
        await expect(second.locator("#alert")).to_have_text(
            "Samasta verkosta on juuri nyt liian monta aloitusta. Yritä uudelleen noin 30 "
            "minuutin kuluttua. Hätätilanteessa soita 112."
        )
        await expect(second.locator("#topics")).to_be_visible()
        await expect(second.locator("#chat")).to_be_hidden()
        await pages.screenshot(second, "limit-refused-phone.png")
    finally:
        await pages.close()
        server.stop()
    assert not pages.errors, pages.errors


async def test_a_pop_up_cut_off_from_its_opener_still_reaches_its_own_chat(
    browser: Browser, identifying_server: PageServer, tmp_path: Path
) -> None:
    """A provider page with a Cross-Origin-Opener-Policy leaves the returning window without
    its opener: here the link is opened in a tab of its own in the same browser. The result
    page reaches the chat over this origin's channel, and the chat's own websocket redeems
    the code."""
    pages = Pages(browser, identifying_server, tmp_path)
    try:
        page = await pages.new("/client")
        await no_red_flags(page)
        await expect(page.get_by_role("heading", name="Tunnistautuminen")).to_be_visible()
        link = await page.locator("#intake").get_attribute("data-identify-url")
        assert link
        alone = await page.context.new_page()  # no window.opener
        await alone.goto(link)
        await alone.get_by_role("button", name=re.compile("^Aino")).click()
        await answer_something_else(
            page, "Ihottuma.", duration="1–6 päivää", age="41", sex="Nainen", pregnant="En ole"
        )
        await send_review(page)
        await expect(page.locator("#chat")).to_be_visible()
        # The result page says it worked (a tab the person opened is theirs to close).
        await alone.wait_for_timeout(2000)
        await expect(alone.get_by_role("status")).to_contain_text("Tunnistautuminen onnistui")
        await expect(page.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")
        (view,) = identifying_server.hub.open_conversations()
        assert view.identity is not None and "Aino" in view.identity.name
    finally:
        await pages.close()
    assert not pages.errors, pages.errors
