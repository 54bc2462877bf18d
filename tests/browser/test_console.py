"""The professional console in a real Chromium: many chats at once, and nothing mixed up.

Clients are real websocket clients (``kanava_testing.Chat``); the nurse is the page. Each test
checks what the nurse and the clients would notice: every message in its own pane only, the
identity banners tell clients apart, a keyboard switch asks before sending, drafts and a
dropped connection lose and double nothing, and the record entry can be saved and downloaded.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from browser_testing import (
    Pages,
    PageServer,
    composer,
    drop_sockets,
    pane,
    sign_in,
    start_page_server,
    take,
)
from kanava_testing import PASSWORD, Chat, ClientPeer
from playwright.async_api import Browser, Locator, Page, expect

from protocol import Role
from protocol.messages import MessageNew
from server.core.documents import IdentityDocument, IntakeDocument, IntakeSummary

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)
TITLE = "Kanava – professional console"


# --- helpers --------------------------------------------------------------------------------


def chat_texts(chat_pane: Locator) -> Locator:
    """The texts of the chat itself (not of the advice bot's part above it)."""
    return chat_pane.locator("ol.messages:not(.bot-messages) .msg-text")


async def pro_says(chat_pane: Locator, text: str) -> None:
    """Write in the pane and press its Send button (a click: no confirmation)."""
    await composer(chat_pane).fill(text)
    await chat_pane.get_by_role("button", name="Send to").click()


async def identify(
    server: PageServer,
    cid: str,
    name: str,
    age: int,
    masked_code: str,
    triage: str = "routine",
    title: str = "Hengitystieinfektio",
) -> None:
    """Give a waiting chat what a finished intake with identification would have given."""

    async def change() -> None:
        conv = server.hub.conversation(cid)
        assert conv is not None
        conv.client_name = name
        conv.triage = triage
        conv.identity = IdentityDocument(
            name=name,
            masked_code=masked_code,
            protected_code="",
            birth_date="",
            municipality="091",
            postal_code="00530",
            age=age,
        )
        level_label = {"urgent": "Kiireellinen", "routine": "Kiireetön"}[triage]
        conv.intake = IntakeDocument(
            topic="respiratory",
            answers={},
            summary=IntakeSummary(
                topic="respiratory",
                title=title,
                level=triage,
                level_label=level_label,
                reasons=("Kuume yli 39 °C kolme päivää",) if triage == "urgent" else (),
                lines=(("Oireet", "Yskä, kuume"), ("Kesto", "4 päivää")),
                complete=True,
            ),
        )

    await server.acall(change)


async def stored_texts(server: PageServer, cid: str) -> list[tuple[int, str]]:
    async def read() -> list[tuple[int, str]]:
        return [(m.seq, m.text) for m in await server.storage.history(cid, 0, 1000)]

    return await server.acall(read)


async def pane_messages(chat_pane: Locator) -> list[tuple[int, str]]:
    items = chat_pane.locator("ol.messages:not(.bot-messages) .msg")
    script = (
        "els => els.map(e => [Number(e.dataset.seq || -1),"
        " e.querySelector('.msg-text').textContent])"
    )
    result: list[tuple[int, str]] = await items.evaluate_all(script)
    return [(seq, text) for seq, text in result]


async def press_alt(page: Page, key: str) -> None:
    await page.keyboard.press(f"Alt+{key}")


async def open_clients(chat: Chat, *specs: tuple[str, dict[str, Any]]) -> dict[str, ClientPeer]:
    clients = {}
    for name, fields in specs:
        clients[name] = await chat.open_client(name, team=fields.pop("team", "kallio"), **fields)
    return clients


# --- 1. three chats side by side --------------------------------------------------------------


async def test_three_chats_each_in_its_own_pane_with_unique_banners(
    pages: Pages, web_server: PageServer
) -> None:
    chat = Chat(web_server)
    try:
        aino = await chat.open_client("Aino Aalto", team="kallio", topic="Kuume", language="fi")
        await identify(web_server, aino.conversation_id, "Aino Aalto", 41, "150385-****", "urgent")
        antti = await chat.open_client("Antti Aho", team="kallio", topic="Resepti", language="sv")
        cecilia = await chat.open_client(
            "Cecilia Carlsson", team="kallio", topic="Rokotusaika", language="en"
        )
        clients = {"Aino Aalto": aino, "Antti Aho": antti, "Cecilia Carlsson": cecilia}

        pro = await sign_in(pages, "hoitaja2")
        # The queue: urgent first and marked, the waiting time and the language shown.
        kallio = pro.locator(".queue[data-team='kallio']")
        await expect(kallio.locator(".queue-count")).to_have_text("3 waiting")
        urgent = kallio.locator(".queue-entry.queue-urgent")
        await expect(urgent).to_have_count(1)
        await expect(urgent.locator(".queue-name")).to_have_text("Aino Aalto")
        await expect(urgent.locator(".queue-triage")).to_have_text("Urgent")
        swedish = kallio.locator(".queue-entry", has_text="Antti Aho")
        await expect(swedish.locator(".queue-facts")).to_have_text(
            re.compile(r"^waiting (under a minute|\d+ min) · Swedish$")
        )
        vuosaari = pro.locator(".queue[data-team='vuosaari']")
        await expect(vuosaari).to_contain_text("Chats are assigned automatically.")
        await pages.screenshot(pro, "console-queue.png")

        panes = {name: await take(pro, name) for name in clients}
        await expect(pro.locator(".pane")).to_have_count(3)
        await expect(pro.locator("#load")).to_have_text("3 of 4 chats")

        # The identity banners.
        aino_pane = panes["Aino Aalto"]
        await expect(aino_pane.locator(".pane-facts")).to_have_text(
            "41 y · 150385-**** · strongly identified"
        )
        await expect(aino_pane.locator(".pane-unverified")).to_be_hidden()
        await expect(aino_pane.locator(".pane-triage")).to_have_text("Urgent")
        await expect(aino_pane.locator(".pane-reasons")).to_contain_text("Kuume yli 39 °C")
        await expect(aino_pane.locator(".pane-answers")).to_contain_text("Yskä, kuume")
        await expect(panes["Antti Aho"].locator(".pane-unverified")).to_have_text("not verified")
        await expect(panes["Antti Aho"].locator(".pane-topic")).to_have_text(
            "Resepti · Swedish · Kallio health station"
        )
        initials = [await p.locator(".pane-badge").text_content() for p in panes.values()]
        assert initials[0] == "AA" and initials[2] == "CC", initials
        assert len(set(initials)) == 3, f"initials must differ: {initials}"
        colours = [
            await p.evaluate("e => getComputedStyle(e).borderTopColor") for p in panes.values()
        ]
        assert len(set(colours)) == 3, f"pane colours must differ: {colours}"
        for name, chat_pane in panes.items():
            await expect(chat_pane.get_by_label(f"Message to {name}")).to_have_attribute(
                "placeholder", f"Reply to {name}…"
            )

        # Every client's message appears in its own pane only.
        said = {}
        for name, client in clients.items():
            said[name] = f"Viesti henkilöltä {name}"
            await client.say(said[name])
        for name, chat_pane in panes.items():
            await expect(chat_texts(chat_pane)).to_have_text([said[name]])
            for other, text in said.items():
                if other != name:
                    await expect(chat_pane.get_by_text(text, exact=True)).to_have_count(0)

        # Every reply reaches its own client only.
        replies = {name: f"Vastaus: {name}" for name in clients}
        for name, chat_pane in panes.items():
            await pro_says(chat_pane, replies[name])
            got = await clients[name].expect(MessageNew)
            assert got.message.text == replies[name]
            assert got.message.conversation_id == clients[name].conversation_id
            for other, client in clients.items():
                if other != name:
                    await client.nothing_more(0.2, MessageNew)
        for name, chat_pane in panes.items():
            await expect(chat_texts(chat_pane)).to_have_text([said[name], replies[name]])
            await expect(chat_pane.locator(".msg-own .msg-text")).to_have_text([replies[name]])

        await clients["Antti Aho"].say("Kiitos, entä annostus?")
        await expect(panes["Antti Aho"].locator(".pane-head .unread-count")).to_have_text("1")
        await composer(panes["Cecilia Carlsson"]).fill("Hello Cecilia, one moment")
        assert pro.viewport_size == {"width": 1400, "height": 900}
        await pages.screenshot(pro, "console-three-chats.png")
    finally:
        await chat.close_all()


# --- 2. a message whose pane and conversation disagree ----------------------------------------


async def test_a_send_from_a_tampered_pane_is_refused(pages: Pages, web_server: PageServer) -> None:
    chat = Chat(web_server)
    try:
        first = await chat.open_client("Emma Esimerkki", team="kallio", topic="Kuume")
        second = await chat.open_client("Olli Oksanen", team="kallio", topic="Ihottuma")
        pro = await sign_in(pages, "hoitaja1")
        emma, olli = await take(pro, "Emma Esimerkki"), await take(pro, "Olli Oksanen")

        # Something in the page (a bug, an extension) re-labels Emma's pane as Olli's.
        await emma.evaluate(
            "(el, cid) => { el.dataset.conversationId = cid; }", second.conversation_id
        )
        await pro_says(emma, "Luottamuksellinen tieto Emmalle")
        failed = emma.locator(".msg-own")
        await expect(failed.locator(".msg-state")).to_have_text(re.compile(r"^Not sent: "))
        await expect(failed).to_have_attribute("data-state", "failed")
        for client in (first, second):
            await client.nothing_more(0.7, MessageNew)
        await expect(olli.get_by_text("Luottamuksellinen tieto Emmalle")).to_have_count(0)
        assert await stored_texts(web_server, first.conversation_id) == []
        assert await stored_texts(web_server, second.conversation_id) == []

        # Olli's own pane still sends to Olli.
        await pro_says(olli, "Hei Olli")
        assert (await second.expect(MessageNew)).message.text == "Hei Olli"
        await first.nothing_more(0.3, MessageNew)
    finally:
        await chat.close_all()


# --- 3. drafts ----------------------------------------------------------------------------------


async def test_drafts_survive_a_pane_switch_and_a_reload(
    pages: Pages, web_server: PageServer
) -> None:
    chat = Chat(web_server)
    try:
        await chat.open_client("Liisa Laine", team="kallio", topic="Selkäkipu")
        await chat.open_client("Mikko Mäki", team="kallio", topic="Korvakipu")
        pro = await sign_in(pages, "hoitaja1")
        liisa, mikko = await take(pro, "Liisa Laine"), await take(pro, "Mikko Mäki")

        await composer(liisa).click()
        await composer(liisa).press_sequentially("Kokeile lämpöä ja ")
        await composer(mikko).click()  # another pane: Liisa's draft is saved on the way out
        await composer(mikko).press_sequentially("Onko kuumetta?")
        await press_alt(pro, "1")
        await expect(composer(liisa)).to_be_focused()
        await expect(composer(liisa)).to_have_value("Kokeile lämpöä ja ")
        await expect(composer(mikko)).to_have_value("Onko kuumetta?")
        await asyncio.sleep(1.2)  # the draft goes 0.6 s after the typing stops

        await pro.reload()
        liisa, mikko = pane(pro, "Liisa Laine"), pane(pro, "Mikko Mäki")
        await expect(composer(liisa)).to_have_value("Kokeile lämpöä ja ")
        await expect(composer(mikko)).to_have_value("Onko kuumetta?")

        # A sent message is no longer a draft.
        await composer(mikko).click()
        await mikko.get_by_role("button", name="Send to").click()
        await expect(chat_texts(mikko)).to_have_text(["Onko kuumetta?"])
        await expect(composer(mikko)).to_have_value("")
        await asyncio.sleep(0.3)
        await pro.reload()
        await expect(chat_texts(pane(pro, "Mikko Mäki"))).to_have_text(["Onko kuumetta?"])
        await expect(composer(pane(pro, "Mikko Mäki"))).to_have_value("")
        await expect(composer(pane(pro, "Liisa Laine"))).to_have_value("Kokeile lämpöä ja ")
    finally:
        await chat.close_all()


# --- 4. the connection drops -----------------------------------------------------------------


async def test_after_a_dropped_connection_every_pane_has_exactly_the_servers_messages(
    pages: Pages, web_server: PageServer
) -> None:
    pages.expected_console = ("WebSocket connection to",)
    chat = Chat(web_server)
    try:
        one = await chat.open_client("Pia Pelto", team="kallio", topic="Flunssa")
        two = await chat.open_client("Risto Rinne", team="kallio", topic="Allergia")
        pro = await sign_in(pages, "hoitaja1")
        panes = {one.conversation_id: await take(pro, "Pia Pelto")}
        panes[two.conversation_id] = await take(pro, "Risto Rinne")
        await one.say("ensimmäinen")
        await pro_says(panes[one.conversation_id], "vastaus ennen katkoa")
        await expect(chat_texts(panes[one.conversation_id])).to_have_text(
            ["ensimmäinen", "vastaus ennen katkoa"]
        )

        # The network goes, and the server loses the console's socket; the clients go on.
        await pro.context.set_offline(True)
        assert await drop_sockets(web_server, Role.PROFESSIONAL) >= 1
        await expect(pro.locator("#conn-notice")).to_contain_text("Connection lost. Reconnecting…")
        for i in range(4):
            await one.say(f"Pia {i}")
            await two.say(f"Risto {i}")
        await pro_says(panes[two.conversation_id], "kirjoitettu katkon aikana")
        await expect(panes[two.conversation_id].locator(".msg-own .msg-state").last).to_have_text(
            "Sending…"
        )
        await pro.context.set_offline(False)
        await expect(pro.locator("#conn-notice")).to_be_hidden(timeout=30_000)

        for cid, chat_pane in panes.items():
            stored = await stored_texts(web_server, cid)
            await expect(chat_texts(chat_pane)).to_have_text([text for _, text in stored])
            assert await pane_messages(chat_pane) == stored
        assert [t for _, t in await stored_texts(web_server, two.conversation_id)][-1] == (
            "kirjoitettu katkon aikana"
        )
        await expect(panes[two.conversation_id].locator(".msg-own .msg-state")).to_have_text(
            ["Delivered"]
        )
    finally:
        await chat.close_all()


# --- 5. switching with the keyboard -----------------------------------------------------------


async def test_a_keyboard_switch_asks_before_the_first_send(
    pages: Pages, web_server: PageServer
) -> None:
    chat = Chat(web_server)
    try:
        aino = await chat.open_client("Aino Aalto", team="kallio", topic="Kuume")
        antti = await chat.open_client("Antti Aho", team="kallio", topic="Resepti")
        pro = await sign_in(pages, "hoitaja1")
        first, second = await take(pro, "Aino Aalto"), await take(pro, "Antti Aho")
        await composer(first).click()

        # Alt+2: the second pane's composer; Enter asks first, in the pane's colour.
        await press_alt(pro, "2")
        await expect(composer(second)).to_be_focused()
        await pro.keyboard.type("Hei Antti")
        await pro.keyboard.press("Enter")
        bar = second.locator(".confirm-bar")
        await expect(bar).to_be_visible()
        await expect(bar).to_contain_text(
            "Send to Antti Aho? Press Enter again to send, Esc to cancel."
        )
        await antti.nothing_more(0.3, MessageNew)
        await pages.screenshot(pro, "console-confirm.png")
        await pro.keyboard.press("Enter")
        await expect(bar).to_be_hidden()
        assert (await antti.expect(MessageNew)).message.text == "Hei Antti"

        # Alt+←: back to the first pane; Esc cancels, and nothing is sent.
        await press_alt(pro, "ArrowLeft")
        await expect(composer(first)).to_be_focused()
        await pro.keyboard.type("Tämä on Ainolle")
        await pro.keyboard.press("Enter")
        await expect(first.locator(".confirm-bar")).to_be_visible()
        await pro.keyboard.press("Escape")
        await expect(first.locator(".confirm-bar")).to_be_hidden()
        await expect(composer(first)).to_have_value("Tämä on Ainolle")
        await aino.nothing_more(0.3, MessageNew)

        # A click into the pane is deliberate: Enter sends at once.
        await composer(first).click()
        await pro.keyboard.press("Enter")
        assert (await aino.expect(MessageNew)).message.text == "Tämä on Ainolle"
        await expect(first.locator(".confirm-bar")).to_be_hidden()
        await antti.nothing_more(0.3, MessageNew)

        # After a few seconds in the pane the confirmation is not needed either.
        await press_alt(pro, "ArrowRight")
        await expect(composer(second)).to_be_focused()
        await asyncio.sleep(3.2)
        await pro.keyboard.type("Toinen viesti")
        await pro.keyboard.press("Enter")
        assert (await antti.expect(MessageNew)).message.text == "Toinen viesti"
        await expect(bar).to_be_hidden()

        # The shortcuts are written down in the top bar.
        await pro.locator(".shortcuts summary").click()
        await expect(pro.locator(".shortcuts-panel")).to_contain_text(
            "Take the next waiting client"
        )
        # Alt+N takes the next waiting client.
        await chat.open_client("Noora Nieminen", team="kallio", topic="Rokotus")
        await expect(pro.locator(".queue-entry")).to_have_count(1)
        await pro.keyboard.press("Escape")
        await press_alt(pro, "n")
        noora = pane(pro, "Noora Nieminen")
        await expect(composer(noora)).to_be_focused()
        await expect(pro.locator(".pane")).to_have_count(3)
    finally:
        await chat.close_all()


# --- ready replies -----------------------------------------------------------------------------


async def test_a_ready_reply_is_put_in_the_composer_in_the_clients_language(
    pages: Pages, web_server: PageServer
) -> None:
    chat = Chat(web_server)
    try:
        client = await chat.open_client("Aino Aalto", team="kallio", topic="Kuume", language="sv")
        pro = await sign_in(pages, "hoitaja1")
        chat_pane = await take(pro, "Aino Aalto")
        await composer(chat_pane).fill("Tack. ")
        ready = chat_pane.get_by_label("Ready reply")
        await expect(ready.locator("option", has_text="Hälsning")).to_have_count(1)
        await ready.select_option(label="Hälsning")
        await chat_pane.get_by_role("button", name="Insert").click()
        await expect(composer(chat_pane)).to_have_value(
            "Tack. Hej Aino, jag heter Hanna Hoitaja. Hur kan jag hjälpa dig?"
        )
        await expect(composer(chat_pane)).to_be_focused()
        await client.nothing_more(0.5, MessageNew)  # inserted, not sent
        await chat_pane.get_by_role("button", name="Send to").click()
        got = await client.expect(MessageNew)
        assert (
            got.message.text == "Tack. Hej Aino, jag heter Hanna Hoitaja. Hur kan jag hjälpa dig?"
        )
    finally:
        await chat.close_all()


# --- 6. transfer, escalation, the record entry ------------------------------------------------


async def test_transfer_escalation_and_the_record_entry(
    pages: Pages, web_server: PageServer, tmp_path: Path
) -> None:
    chat = Chat(web_server)
    try:
        client = await chat.open_client("Teemu Tähti", team="kallio", topic="Ihottuma")
        await client.say("Iholla on punaisia läiskiä.")
        ville = await sign_in(pages, "hoitaja2")
        hanna = await sign_in(pages, "hoitaja1")
        laura = await sign_in(pages, "laakari1")
        chat_pane = await take(ville, "Teemu Tähti")
        await pro_says(chat_pane, "Siirrän sinut kollegalleni.")
        await client.expect(MessageNew)

        # Ville transfers the chat to Hanna with a note; Hanna sees the note with the chat.
        await chat_pane.get_by_role("button", name="Transfer the chat with Teemu Tähti…").click()
        target = chat_pane.get_by_label("Transfer to")
        await expect(target.locator("option[value='p:p_hoitaja1']")).to_be_enabled()
        await target.select_option("p:p_hoitaja1")
        note = "Ihottuma leviää <b>nopeasti</b>"
        await chat_pane.get_by_label("Note for the receiver").fill(note)
        await chat_pane.get_by_role("button", name="Transfer", exact=True).click()
        await expect(chat_pane.locator(".pane-state")).to_have_text("Transferred to Hanna Hoitaja")
        await expect(composer(chat_pane)).to_be_hidden()
        hannas = pane(hanna, "Teemu Tähti")
        await expect(hannas.locator(".pane-handover")).to_contain_text(
            "Transferred by Ville Virtanen"
        )
        await expect(hannas.locator(".handover-note")).to_have_text(note)
        await expect(chat_texts(hannas)).to_have_text(
            ["Iholla on punaisia läiskiä.", "Siirrän sinut kollegalleni."]
        )

        # Hanna escalates to the doctor: only doctors are offered.
        await hannas.get_by_role(
            "button", name="Escalate the chat with Teemu Tähti to a doctor…"
        ).click()
        doctor = hannas.get_by_label("Doctor", exact=True)
        await expect(doctor.locator("option[value='p:p_laakari1']")).to_contain_text(
            "Laura Lääkäri (doctor) – online"
        )
        await expect(doctor.locator("option[value='p:p_hoitaja2']")).to_have_count(0)
        await doctor.select_option("p:p_laakari1")
        await hannas.get_by_label("Note for the doctor").fill("Tarvitaan lääkärin arvio.")
        await hannas.get_by_role("button", name="Escalate to doctor", exact=True).click()
        await expect(hannas.locator(".pane-state")).to_have_text("Escalated to Laura Lääkäri")
        lauras = pane(laura, "Teemu Tähti")
        await expect(lauras.locator(".pane-escalated")).to_have_text("Escalated to doctor")
        await expect(lauras.locator(".pane-handover")).to_have_text(
            re.compile(
                r"^Escalated to doctor by Hanna Hoitaja \(\d\d:\d\d\): Tarvitaan lääkärin arvio\.$"
            )
        )
        await pro_says(lauras, "Hei, olen lääkäri. Lähetä kuva ihottumasta.")
        assert (await client.expect(MessageNew)).message.text.startswith("Hei, olen lääkäri")

        # Laura ends the chat with a record entry, prefilled from the chat.
        await lauras.get_by_role("button", name="End chat with Teemu Tähti…").click()
        await expect(lauras.get_by_label("Reason for contact")).not_to_have_value("")
        await expect(lauras.get_by_label("Advice given")).to_have_value(
            re.compile("Lähetä kuva ihottumasta")
        )
        await lauras.get_by_label("Outcome").select_option("booked_appointment")
        await lauras.get_by_label("Symptoms").fill("Punaisia läiskiä käsivarsissa viikon ajan.")
        await lauras.get_by_label("Follow-up").fill("Vastaanotto huomenna klo 10.")
        await lauras.locator(".pane-drawer").evaluate("e => { e.scrollTop = 0; }")
        await pages.screenshot(laura, "console-record.png")
        await lauras.get_by_role("button", name="Save entry and end chat").click()
        await expect(lauras.locator(".record-saved")).to_have_text("Record entry saved (version 1)")
        await expect(lauras.locator(".pane-state")).to_contain_text("You ended the chat")
        await expect(composer(lauras)).to_be_hidden()

        async with laura.expect_download() as text_info:
            await lauras.get_by_role("link", name="Download as text").click()
        text_file = tmp_path / "record.txt"
        await (await text_info.value).save_as(text_file)
        text = text_file.read_text(encoding="utf-8")
        for heading in ("Reason for contact", "Symptoms", "Advice given", "Follow-up", "Outcome"):
            assert f"\n{heading}\n" in text, text
        assert "Vastaanotto huomenna klo 10." in text
        async with laura.expect_download() as fhir_info:
            await lauras.get_by_role("link", name="Download as FHIR JSON").click()
        fhir_file = tmp_path / "record.fhir.json"
        await (await fhir_info.value).save_as(fhir_file)
        bundle = json.loads(fhir_file.read_text(encoding="utf-8"))
        assert bundle["resourceType"] == "Bundle"
        assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"

        # The ended pane keeps the entry: it can be corrected and saved again.
        await lauras.get_by_label("Follow-up").fill("Vastaanotto huomenna klo 11.")
        await lauras.get_by_role("button", name="Save entry", exact=True).click()
        await expect(lauras.locator(".record-saved")).to_have_text("Record entry saved (version 2)")
        await lauras.get_by_role("button", name="Remove from screen").click()
        await expect(laura.locator(".pane")).to_have_count(0)
    finally:
        await chat.close_all()


# --- 7. the access log ------------------------------------------------------------------------


async def test_a_supervisor_reads_who_opened_a_chat(pages: Pages, web_server: PageServer) -> None:
    chat = Chat(web_server)
    try:
        client = await chat.open_client("Sanna Salo", team="kallio", topic="Kuume")
        nurse = await sign_in(pages, "hoitaja1")
        await take(nurse, "Sanna Salo")
        await expect(nurse.get_by_role("button", name="Access log")).to_have_count(0)

        boss = await sign_in(pages, "esihenkilo1")
        await boss.get_by_role("button", name="Access log").click()
        dialog = boss.get_by_role("dialog", name="Access log")
        await expect(dialog).to_be_visible()
        await dialog.get_by_label("Identity code or conversation id").fill(client.conversation_id)
        await dialog.get_by_role("button", name="Look up").click()
        rows = dialog.locator("tbody tr")
        await expect(rows.first).to_be_visible()
        await expect(rows.first.locator("td").nth(1)).to_have_text("Hanna Hoitaja")
        await expect(rows.first.locator("td").nth(2)).to_have_text("Sanna Salo")
        await expect(rows.first.locator("td").nth(3)).to_have_text(client.conversation_id)
        await expect(rows.first.locator("td").nth(0)).to_have_text(
            re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")
        )
        await pages.screenshot(boss, "console-access-log.png")
        await dialog.get_by_role("button", name="Close").click()
        await expect(dialog).to_be_hidden()
    finally:
        await chat.close_all()


async def test_a_chat_deleted_by_retention_ends_in_its_pane(
    pages: Pages, web_server: PageServer
) -> None:
    """An abandoned chat that retention deleted while the nurse still has it open: her pane
    says so, rather than that she ended it."""
    import sqlite3
    import subprocess
    import sys
    import time

    chat = Chat(web_server)
    try:
        client = await chat.open_client("Sanna Salo", team="kallio", topic="Kuume")
        nurse = await sign_in(pages, "hoitaja1")
        chat_pane = await take(nurse, "Sanna Salo")
        old = int(time.time() * 1000) - 40 * 86_400_000
        db = sqlite3.connect(web_server.database)
        with db:
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?",
                (old, client.conversation_id),
            )
        db.close()
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "retention"]
            + ["--database", str(web_server.database)],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(done.stdout)["deleted"]["never_closed"] == 1, done.stderr
        assert await web_server.acall(web_server.hub.drop_deleted) == [client.conversation_id]
        await expect(chat_pane.locator(".pane-state")).to_have_text(
            "Ended: deleted after no activity for its retention time"
        )
    finally:
        await chat.close_all()


# --- 8. markup is text ------------------------------------------------------------------------


async def test_markup_from_clients_is_shown_as_text(pages: Pages, web_server: PageServer) -> None:
    chat = Chat(web_server)
    try:
        name = "<img src=x onerror=\"window.__xss='name';alert(1)\">"
        topic = "<script>window.__xss='topic'</script>"
        attack = "<img src=x onerror=\"window.__xss='message';alert(2)\"><script>alert(3)</script>"
        client = await chat.open_client(name, team="kallio", topic=topic)
        await client.say(attack)
        pro = await sign_in(pages, "hoitaja1")
        await expect(pro.locator(".queue-name")).to_have_text([name])
        chat_pane = await take(pro, name)
        await expect(chat_texts(chat_pane)).to_have_text([attack])
        await expect(chat_pane.locator(".pane-topic")).to_contain_text(topic)
        await expect(chat_pane.locator(".pane-name")).to_have_text(name)
        await expect(chat_pane.get_by_label(f"Message to {name}")).to_be_visible()
        await pro_says(chat_pane, "<b>lihavoitu</b>")
        assert (await client.expect(MessageNew)).message.text == "<b>lihavoitu</b>"
        assert await pro.locator("img, script:not([type=module]), .pane b").count() == 0
        assert await pro.evaluate("window.__xss") is None
        assert await pro.title() == TITLE
    finally:
        await chat.close_all()


# --- 9. a narrow screen -----------------------------------------------------------------------


async def test_a_narrow_screen_shows_tabs_with_unread_counts(
    pages: Pages, web_server: PageServer
) -> None:
    chat = Chat(web_server)
    try:
        one = await chat.open_client("Ulla Uotila", team="kallio", topic="Kuume")
        two = await chat.open_client("Veikko Vainio", team="kallio", topic="Yskä")
        pro = await pages.new("/pro", width=600, height=900)
        await pro.get_by_label("Username").fill("hoitaja1")
        await pro.get_by_label("Password").fill("kanava-demo")
        await pro.get_by_role("button", name="Sign in", exact=True).click()
        ulla = await take(pro, "Ulla Uotila")
        veikko = await take(pro, "Veikko Vainio")

        tabs = pro.get_by_role("tab")
        await expect(tabs).to_have_count(2)
        veikko_tab = pro.get_by_role("tab", name="Veikko Vainio")
        ulla_tab = pro.get_by_role("tab", name="Ulla Uotila")
        await expect(veikko_tab).to_have_attribute("aria-selected", "true")
        await expect(veikko).to_be_visible()
        await expect(ulla).to_be_hidden()

        await one.say("Kuume nousi taas.")
        await one.say("Onko parasetamoli ok?")
        await expect(ulla_tab.locator(".unread-count")).to_have_text("2")
        await expect(pro).to_have_title(f"(2) {TITLE}")
        await two.say("Yskä jatkuu.")
        await expect(veikko_tab.locator(".unread-count")).to_be_hidden()
        await pages.screenshot(pro, "console-narrow.png", full_page=True)

        await ulla_tab.click()
        await expect(ulla).to_be_visible()
        await expect(veikko).to_be_hidden()
        await expect(ulla_tab.locator(".unread-count")).to_be_hidden()
        await expect(pro).to_have_title(TITLE)
        await expect(chat_texts(ulla)).to_have_text(["Kuume nousi taas.", "Onko parasetamoli ok?"])

        # Title notifications can be turned off (and the choice is remembered).
        await two.say("Ja nenä vuotaa.")
        await expect(pro).to_have_title(f"(1) {TITLE}")
        await pro.get_by_label("Title notifications").uncheck()
        await expect(pro).to_have_title(TITLE)
        await pro.reload()
        await expect(pro.get_by_label("Title notifications")).not_to_be_checked()
    finally:
        await chat.close_all()


# --- signing in and out -----------------------------------------------------------------------


async def test_signing_in_and_out(pages: Pages, web_server: PageServer) -> None:
    pages.expected_console = ("Failed to load resource",)  # the refused sign-ins (401)
    # Back from the organisation's sign-in with an error: shown, and gone from the address.
    page = await pages.new("/pro?login_error=not_linked")
    await expect(page.locator("#login-error")).to_have_text(
        "No Kanava account is linked to this identity. Ask an administrator."
    )
    assert page.url.endswith("/pro"), page.url
    # This server has no identity provider: no organisation sign-in is offered.
    await expect(
        page.get_by_role("button", name="Sign in with organisation account")
    ).to_be_hidden()

    await page.get_by_label("Username").fill("hoitaja1")
    for attempt in range(5):
        await page.get_by_label("Password").fill(f"wrong-{attempt}")
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
        await page.locator("#login-error").evaluate("e => { e.textContent = ''; }")
    # Five wrong passwords do not lock the account: the right one signs in, after the wait
    # that they earned (2 s), and the form stays disabled meanwhile.
    await page.get_by_label("Password").fill("kanava-demo")
    started = time.monotonic()
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_disabled()
    await expect(page.locator("#me")).to_have_text("Hanna Hoitaja (nurse)")
    assert time.monotonic() - started >= 2.0
    await expect(page.locator("#login-error")).to_have_text("")
    await page.reload()  # the session is a cookie: still signed in
    await expect(page.locator("#me")).to_have_text("Hanna Hoitaja (nurse)")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Username")).to_be_visible()
    await expect(page.locator("#login-error")).to_have_text("Signed out.")
    await page.reload()
    await expect(page.get_by_label("Username")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()


def served_in(lang: str) -> Any:
    """A route handler that serves the real page with ``<html lang>`` set to ``lang``."""

    async def handler(route: Any) -> None:
        response = await route.fetch()
        body = (await response.text()).replace('<html lang="en">', f'<html lang="{lang}">', 1)
        await route.fulfill(response=response, body=body)

    return handler


async def test_the_sign_in_page_shows_only_its_own_words_for_an_error(
    pages: Pages, web_server: PageServer
) -> None:
    """/pro?login_error= names a known reason by its code; markup, a script or a message of
    someone's own in the address is never shown: the page says its general words instead."""
    known = {
        "oidc_unavailable": "Sign-in with an organisation account is not available.",
        "other_browser": "This sign-in was started in another browser. Try again.",
    }
    for code, text in known.items():
        page = await pages.new(f"/pro?login_error={code}")
        await expect(page.locator("#login-error")).to_have_text(text)
    general = "Signing in did not succeed. Try again."
    for made_up in (
        "<script>alert(document.cookie)</script>",
        '<img src=x onerror="alert(1)">',
        "Your password has expired. Call 0700 123 456 and tell it to us.",
        "__proto__",
        "toString",
    ):
        page = await pages.new("/pro?login_error=" + quote(made_up))
        await expect(page.locator("#login-error")).to_have_text(general)
        assert made_up not in await page.content()
        assert await page.locator("#login-error img, #login-error script").count() == 0
    assert pages.dialogs == []  # no script of the address ran

    # In the page's language: the same page served as Finnish and as Swedish.
    for lang, unknown, linked in (
        (
            "fi",
            "Kirjautuminen ei onnistunut. Yritä uudelleen.",
            "Tähän tunnukseen ei ole liitetty Kanava-tiliä. Pyydä ylläpitäjää liittämään se.",
        ),
        (
            "sv",
            "Inloggningen lyckades inte. Försök igen.",
            "Inget Kanava-konto är kopplat till den här identiteten. Be en administratör.",
        ),
    ):
        for code, text in (("<b>hei</b>", unknown), ("not_linked", linked)):
            page = await pages.new("/pro")  # in English; then again, as another language
            await page.route(lambda url: urlsplit(url).path == "/pro", served_in(lang))
            await page.goto(web_server.base + "/pro?login_error=" + quote(code))
            await expect(page.locator("#login-error")).to_have_text(text)


async def test_on_her_own_computer_a_nurse_signs_in_past_guesses_of_her_username(
    browser: Browser, tmp_path: Path
) -> None:
    """Someone at the same address keeps three slowed guesses of hoitaja1 waiting. On other
    computers her sign-in is refused at once and the page says why, in its language; on the
    computer she signed in with before (its device cookie) she signs in at once."""
    server = start_page_server(
        tmp_path / "kanava.sqlite3",
        intake=False,
        login_free_failures=1,
        login_delay_seconds=3.0,
        login_max_delay_seconds=3.0,
    )
    pages = Pages(browser, server, tmp_path)
    pages.expected_console = ("Failed to load resource",)  # the refused sign-ins (401, 429)
    try:
        own = await sign_in(pages, "hoitaja1")
        await own.get_by_role("button", name="Sign out").click()
        await expect(own.get_by_label("Username")).to_be_visible()

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as guesser:
            async with guesser.get(server.base + "/api/session") as response:
                csrf = (await response.json())["csrf"]

            async def guess(number: int) -> int:
                async with guesser.post(
                    server.base + "/api/login",
                    json={"username": "hoitaja1", "password": f"arvaus-{number}", "token": True},
                    headers={"X-CSRF-Token": csrf},
                ) as response:
                    return response.status

            assert await guess(0) == 401
            guesses = asyncio.ensure_future(asyncio.gather(*(guess(i) for i in range(1, 4))))
            await asyncio.sleep(0.3)  # three wait, 3 s each, one after another

            for lang, text in (
                (
                    "en",
                    "Sign-ins with this username from this network are already waiting for an "
                    "answer. Wait a moment and try again. If this goes on, tell an administrator.",
                ),
                (
                    "fi",
                    "Tällä käyttäjätunnuksella on tästä verkosta jo kirjautumisia odottamassa "
                    "vastausta. Odota hetki ja yritä uudelleen. Jos tämä jatkuu, kerro "
                    "ylläpitäjälle.",
                ),
                (
                    "sv",
                    "Inloggningar med det här användarnamnet från det här nätverket väntar redan "
                    "på svar. Vänta en stund och försök igen. Om det fortsätter, kontakta en "
                    "administratör.",
                ),
            ):
                other = await pages.new("/pro")
                if lang != "en":
                    await other.route(lambda url: urlsplit(url).path == "/pro", served_in(lang))
                    await other.goto(server.base + "/pro")
                await other.get_by_label("Username").fill("hoitaja1")
                await other.get_by_label("Password").fill(PASSWORD)
                await other.get_by_role("button", name="Sign in", exact=True).click()
                await expect(other.locator("#login-error")).to_have_text(text)
                await expect(other.locator("#console")).to_be_hidden()

            started = time.monotonic()
            await own.get_by_label("Username").fill("hoitaja1")
            await own.get_by_label("Password").fill(PASSWORD)
            await own.get_by_role("button", name="Sign in", exact=True).click()
            await expect(own.locator("#me")).to_have_text("Hanna Hoitaja (nurse)")
            assert time.monotonic() - started < 2.0
            assert not guesses.done(), "the guesses were over before the nurse came: no test"
            assert await guesses == [401, 401, 401]
    finally:
        await pages.close()
        server.stop()
    assert not pages.errors, pages.errors
    assert not pages.dialogs, pages.dialogs
