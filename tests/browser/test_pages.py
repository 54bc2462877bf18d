"""The citizen page and the professional console in a real Chromium, against a real server.

Each test checks what a person at the screen would notice: the other party's messages and
name appear, every chat stays in its own pane, a reload or a dropped connection loses and
doubles nothing, and text that looks like HTML is shown as text.
"""

from __future__ import annotations

import pytest
from browser_testing import Pages, PageServer, composer, pane, sign_in, take
from kanava_testing import Chat
from playwright.async_api import Locator, Page, expect

from protocol.messages import ConversationStateChanged, MessageNew, QueueTake

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)


# --- what a user does -----------------------------------------------------------------------


async def open_citizen(pages: Pages, name: str, topic: str, team: str = "kallio") -> Page:
    page = await pages.new(f"/client?team={team}")
    await page.get_by_label("Nimesi").fill(name)
    await page.get_by_label("Mitä asiasi koskee?").fill(topic)
    await page.get_by_role("button", name="Aloita keskustelu").click()
    await expect(page.locator("#chat-status")).to_contain_text("jonossa")
    return page


async def citizen_says(page: Page, text: str) -> None:
    await page.get_by_label("Viesti", exact=True).fill(text)
    await page.get_by_role("button", name="Lähetä").click()


def citizen_messages(page: Page) -> Locator:
    return page.locator("#messages .msg .msg-text")


async def pro_says(chat_pane: Locator, text: str) -> None:
    await composer(chat_pane).fill(text)
    await chat_pane.get_by_role("button", name="Send").click()


# --- the tests ------------------------------------------------------------------------------


async def test_citizen_and_professional_chat_in_two_browsers(pages: Pages) -> None:
    """The pro takes the chat from the queue; both see each other's messages and state."""
    citizen = await open_citizen(pages, "Matti Meikäläinen", "Kuume")
    await citizen_says(citizen, "Minulla on ollut kuumetta kaksi päivää.")
    own = citizen.locator("#messages .msg-own")
    await expect(own.locator(".msg-state")).to_have_text("Toimitettu")

    pro = await sign_in(pages, "hoitaja1")
    entry = pro.locator(".queue-entry", has_text="Matti Meikäläinen")
    await expect(entry).to_contain_text("Kuume")
    chat_pane = await take(pro, "Matti Meikäläinen")
    await expect(entry).to_have_count(0)
    await expect(chat_pane.locator(".pane-topic")).to_contain_text("Kuume")

    # The citizen sees who answers, and that the message written while waiting was read.
    await expect(citizen.locator("#chat-with")).to_have_text(
        "Keskustelet: Hanna Hoitaja, sairaanhoitaja"
    )
    await expect(chat_pane.locator(".msg-text")).to_have_text(
        ["Minulla on ollut kuumetta kaksi päivää."]
    )
    await expect(own.locator(".msg-state")).to_have_text("Luettu")

    # The professional types: the citizen sees it, then the answer.
    await composer(chat_pane).press_sequentially("Hei Matti")
    await expect(citizen.locator("#typing")).to_have_text("Hanna Hoitaja kirjoittaa…")
    await pro_says(chat_pane, "Hei Matti, kuinka korkea kuume on?")
    await expect(citizen_messages(citizen)).to_have_text(
        ["Minulla on ollut kuumetta kaksi päivää.", "Hei Matti, kuinka korkea kuume on?"]
    )
    await expect(citizen.locator("#typing")).to_have_text("")
    other = citizen.locator("#messages .msg-other")
    await expect(other.locator(".msg-sender")).to_have_text("Hanna Hoitaja")
    await expect(chat_pane.locator(".msg-own .msg-state")).to_have_text("Read")

    await citizen_says(citizen, "39 astetta")
    await expect(chat_pane.locator(".msg-text")).to_have_text(
        [
            "Minulla on ollut kuumetta kaksi päivää.",
            "Hei Matti, kuinka korkea kuume on?",
            "39 astetta",
        ]
    )
    await pages.screenshot(citizen, "client.png")

    # The professional ends the chat; the citizen is told and can start anew.
    await chat_pane.get_by_role("button", name="End chat with Matti Meikäläinen…").click()
    await expect(chat_pane.get_by_label("Outcome")).to_have_value("resolved")
    await chat_pane.get_by_role("button", name="Save entry and end chat").click()
    await expect(citizen.locator("#chat-status")).to_have_text("Hanna Hoitaja lopetti keskustelun.")
    await expect(citizen.get_by_role("button", name="Aloita uusi keskustelu")).to_be_visible()
    await expect(citizen.get_by_label("Viesti", exact=True)).to_be_hidden()
    await expect(chat_pane.locator(".pane-state")).to_contain_text("You ended the chat")


async def test_three_chats_each_in_its_own_pane(pages: Pages, web_server: PageServer) -> None:
    """Messages of three clients appear only in their own pane, and replies reach only one."""
    chat = Chat(web_server)
    try:
        clients = {
            "Aino Aaltonen": await chat.open_client("Aino Aaltonen", team="kallio", topic="Kuume"),
            "Aino Aalto": await chat.open_client(
                "Aino Aalto", team="kallio", topic="Reseptin uusiminen", language="sv"
            ),
            "Cecilia Carlsson": await chat.open_client(
                "Cecilia Carlsson", team="kallio", topic="Rokotusaika", language="en"
            ),
        }
        pro = await sign_in(pages, "hoitaja2")
        panes = {name: await take(pro, name) for name in clients}
        await expect(pro.locator(".pane")).to_have_count(3)
        await expect(pro.locator("#load")).to_have_text("3 of 4 chats")

        said = {}
        for name, client in clients.items():
            said[name] = f"Viesti henkilöltä {name}"
            await client.say(said[name])
        for name, chat_pane in panes.items():
            await expect(chat_pane.locator(".msg-text")).to_have_text([said[name]])
            await expect(chat_pane.locator(".msg-sender")).to_have_text([name])
            for other, text in said.items():
                if other != name:
                    await expect(chat_pane.get_by_text(text, exact=True)).to_have_count(0)

        # A reply typed in one pane reaches that client only.
        await pro_says(panes["Aino Aalto"], "Resepti on uusittu.")
        got = await clients["Aino Aalto"].expect(MessageNew)
        assert got.message.text == "Resepti on uusittu."
        assert got.message.conversation_id == clients["Aino Aalto"].conversation_id
        for name in ("Aino Aaltonen", "Cecilia Carlsson"):
            await clients[name].nothing_more(0.5, MessageNew)
        await expect(panes["Aino Aalto"].locator(".msg-own .msg-text")).to_have_text(
            ["Resepti on uusittu."]
        )
        for name in ("Aino Aaltonen", "Cecilia Carlsson"):
            await expect(panes[name].locator(".msg-own")).to_have_count(0)

        # After a reload of the console every chat is back in its own pane, nothing doubled.
        await pro.reload()
        await expect(pro.locator(".pane")).to_have_count(3)
        for name, chat_pane in panes.items():
            mine = [said[name], "Resepti on uusittu."] if name == "Aino Aalto" else [said[name]]
            await expect(chat_pane.locator(".msg-text")).to_have_text(mine)

        await composer(panes["Cecilia Carlsson"]).fill("Hello Cecilia, one moment")
        await pages.screenshot(pro, "pro.png", full_page=True)
    finally:
        await chat.close_all()


async def test_reload_continues_the_same_conversation(pages: Pages, web_server: PageServer) -> None:
    """After a reload the whole history is there once, and the chat goes on."""
    chat = Chat(web_server)
    try:
        citizen = await open_citizen(pages, "Liisa Laine", "Selkäkipu")
        await citizen_says(citizen, "Selkä on kipeä.")
        await expect(citizen.locator("#messages .msg-own .msg-state")).to_have_text("Toimitettu")
        pro = await chat.open_pro("hoitaja1")
        await pro.send(QueueTake())
        state = await pro.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "assigned"
        )
        cid = state.conversation.conversation_id
        assert [m.text for m in await pro.history(cid)] == ["Selkä on kipeä."]
        await pro.say(cid, "Mistä lähtien?")
        await citizen_says(citizen, "Eilisestä.")
        assert (await pro.expect(MessageNew)).message.text == "Eilisestä."
        await pro.say(cid, "Onko kuumetta?")
        before = ["Selkä on kipeä.", "Mistä lähtien?", "Eilisestä.", "Onko kuumetta?"]
        await expect(citizen_messages(citizen)).to_have_text(before)

        await citizen.reload()
        await expect(citizen.locator("#chat-with")).to_have_text(
            "Keskustelet: Hanna Hoitaja, sairaanhoitaja"
        )
        await expect(citizen_messages(citizen)).to_have_text(before)
        await expect(citizen.locator("#start")).to_be_hidden()

        await citizen_says(citizen, "Ei ole kuumetta.")
        got = await pro.expect(MessageNew)
        assert (got.message.conversation_id, got.message.text) == (cid, "Ei ole kuumetta.")
        await pro.nothing_more(0.5, MessageNew)
        await expect(citizen_messages(citizen)).to_have_text([*before, "Ei ole kuumetta."])
        await expect(citizen.locator("#messages .msg")).to_have_count(5)

        # The citizen ends the chat (after confirming); the professional hears of it.
        await citizen.get_by_role("button", name="Lopeta keskustelu").click()
        await citizen.get_by_role("button", name="Kyllä, lopeta").click()
        await expect(citizen.locator("#chat-status")).to_have_text("Lopetit keskustelun.")
        closed = await pro.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "closed"
        )
        assert closed.conversation.closed_by == "client"
        await citizen.get_by_role("button", name="Aloita uusi keskustelu").click()
        await expect(citizen.get_by_label("Nimesi")).to_be_visible()
        await citizen.reload()
        await expect(citizen.get_by_label("Nimesi")).to_be_visible()
    finally:
        await chat.close_all()


async def test_message_written_during_an_outage_arrives_once(
    pages: Pages, web_server: PageServer
) -> None:
    """The server restarts mid-chat: the page says it reconnects, then delivers exactly once."""
    pages.expected_console = ("WebSocket connection to",)
    citizen = await open_citizen(pages, "Pekka Puro", "Rokotus")
    await citizen_says(citizen, "Ensimmäinen viesti")
    await expect(citizen.locator("#messages .msg-own .msg-state")).to_have_text("Toimitettu")

    web_server.stop()
    await expect(citizen.locator("#conn-notice")).to_contain_text("Yhdistetään uudelleen")
    await citizen_says(citizen, "Kirjoitettu katkon aikana")
    await expect(citizen.locator("#messages .msg-own .msg-state").last).to_have_text("Lähetetään…")
    web_server.start()

    await expect(citizen.locator("#conn-notice")).to_be_hidden(timeout=20_000)
    await expect(citizen.locator("#messages .msg-own .msg-state")).to_have_text(
        ["Toimitettu", "Toimitettu"]
    )
    chat = Chat(web_server)
    try:
        pro = await chat.open_pro("hoitaja1")
        await pro.send(QueueTake())
        state = await pro.expect(ConversationStateChanged)
        history = await pro.history(state.conversation.conversation_id)
        assert [m.text for m in history] == ["Ensimmäinen viesti", "Kirjoitettu katkon aikana"]
    finally:
        await chat.close_all()
    await expect(citizen_messages(citizen)).to_have_text(
        ["Ensimmäinen viesti", "Kirjoitettu katkon aikana"]
    )


async def test_transfer_to_a_colleague(pages: Pages) -> None:
    """The chat moves with its history to the colleague's console; the citizen is told."""
    citizen = await open_citizen(pages, "Teemu Tähti", "Ihottuma")
    await citizen_says(citizen, "Iholla on punaisia läiskiä.")
    first = await sign_in(pages, "hoitaja2")
    second = await sign_in(pages, "hoitaja1")
    chat_pane = await take(first, "Teemu Tähti")
    await pro_says(chat_pane, "Siirrän sinut kollegalleni.")
    await expect(chat_pane.locator(".msg-own .msg-state")).to_have_text("Read")

    await chat_pane.get_by_role("button", name="Transfer the chat with Teemu Tähti…").click()
    await chat_pane.get_by_label("Transfer to").select_option("p:p_hoitaja1")
    await chat_pane.get_by_role("button", name="Transfer", exact=True).click()
    await expect(chat_pane.locator(".pane-state")).to_have_text("Transferred to Hanna Hoitaja")
    await expect(composer(chat_pane)).to_be_hidden()
    await expect(citizen.locator("#chat-status")).to_have_text(
        "Keskustelu siirrettiin: Hanna Hoitaja"
    )
    await expect(citizen.locator("#chat-with")).to_have_text(
        "Keskustelet: Hanna Hoitaja, sairaanhoitaja"
    )

    taken_over = pane(second, "Teemu Tähti")
    await expect(taken_over.locator(".msg-text")).to_have_text(
        ["Iholla on punaisia läiskiä.", "Siirrän sinut kollegalleni."]
    )
    # The first nurse's message is not shown as the second nurse's own.
    await expect(taken_over.locator(".msg-own")).to_have_count(0)
    await expect(taken_over.locator(".msg-sender").last).to_have_text("Ville Virtanen (colleague)")
    await pro_says(taken_over, "Hei, olen Hanna.")
    await expect(citizen_messages(citizen).last).to_have_text("Hei, olen Hanna.")
    await expect(chat_pane.get_by_text("Hei, olen Hanna.")).to_have_count(0)

    # A colleague who is not signed in cannot be chosen.
    await taken_over.get_by_role("button", name="Transfer the chat with Teemu Tähti…").click()
    offline = taken_over.get_by_label("Transfer to").locator("option[value='p:p_laakari1']")
    await expect(offline).to_be_disabled()
    await expect(offline).to_contain_text("offline")


async def test_moving_a_chat_to_another_teams_queue(pages: Pages) -> None:
    """The nurse moves the chat to the doctors' team; the doctor's console gets it."""
    citizen = await open_citizen(pages, "Eeva Esimerkki", "Lääkärin arvio")
    nurse = await sign_in(pages, "hoitaja1")
    chat_pane = await take(nurse, "Eeva Esimerkki")
    await pro_says(chat_pane, "Ohjaan sinut lääkärille.")
    await chat_pane.get_by_role("button", name="Transfer the chat with Eeva Esimerkki…").click()
    await chat_pane.get_by_label("Transfer to").select_option(
        label="Queue of Vuosaari health station"
    )
    await chat_pane.get_by_label("Note for the receiver").fill("Lääkärin arvio tarvitaan.")
    await chat_pane.get_by_role("button", name="Transfer", exact=True).click()
    await expect(chat_pane.locator(".pane-state")).to_have_text(
        "Sent to the queue of Vuosaari health station"
    )
    await expect(composer(chat_pane)).to_be_hidden()
    # Back in a queue: why, the place, and (nobody of Vuosaari online yet) no estimate, said so.
    await expect(citizen.locator("#chat-status")).to_have_text(
        "Keskustelusi siirrettiin toiseen jonoon. Olet jonossa sijalla 1."
    )
    await expect(citizen.locator("#chat-wait")).to_have_text(
        "Odotusaikaa ei voi arvioida juuri nyt. Paikkasi jonossa säilyy."
    )
    doctor = await sign_in(pages, "laakari1")  # vuosaari assigns automatically
    doctors_pane = pane(doctor, "Eeva Esimerkki")
    await expect(doctors_pane.locator(".msg-text")).to_have_text(["Ohjaan sinut lääkärille."])


async def test_html_in_names_and_messages_is_shown_as_text(pages: Pages) -> None:
    """Markup typed by either party is displayed literally and never runs."""
    name = "<b>Eve</b>"
    topic = "<script>window.__xss = 'topic'</script>"
    attack = "<img src=x onerror=\"window.__xss = 'citizen'; alert(1)\">"
    reply = "<script>window.__xss = 'pro'</script><i>kursiivi</i>"
    citizen = await open_citizen(pages, name, topic)
    await citizen_says(citizen, attack)

    pro = await sign_in(pages, "hoitaja1")
    await expect(pro.locator(".queue-entry .queue-name")).to_have_text([name])
    chat_pane = await take(pro, name)
    await expect(chat_pane.locator(".pane-topic")).to_contain_text(topic)
    await expect(chat_pane.locator(".msg-text")).to_have_text([attack])
    await pro_says(chat_pane, reply)
    await expect(citizen_messages(citizen)).to_have_text([attack, reply])

    for page in (citizen, pro):
        assert await page.locator(".messages img, .messages script, .messages i").count() == 0
        assert await page.locator(".pane-name b, .queue-name b").count() == 0
        assert await page.evaluate("window.__xss") is None


async def test_index_and_demo_pages_lead_to_the_chat(pages: Pages) -> None:
    """The front page links every page; the demo station's button opens the citizen chat."""
    index = await pages.new("/")
    for name in ("Citizen chat page", "Professional console", "Demo:"):
        await expect(index.get_by_role("link", name=name).first).to_be_visible()
    demo = await pages.new("/demo")
    await expect(demo.get_by_role("heading", name="Kallion terveysasema")).to_be_visible()
    async with demo.context.expect_page() as popup:
        await demo.get_by_role("link", name="Avaa chat hoitajan kanssa").click()
    chat_page = await popup.value
    await expect(chat_page.get_by_role("heading", name="Aloita keskustelu")).to_be_visible()
