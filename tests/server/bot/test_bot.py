"""The advice bot over real websockets: it greets, answers, puts safety first, and is stored."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from intake_testing import answer_all, send_reviewed
from kanava_testing import Chat, ClientPeer, KanavaServer, assigned_to, closed_hours_file

from protocol import Codec
from protocol.messages import (
    BotStart,
    ConversationOpened,
    ConversationResume,
    ConversationStateChanged,
    ConversationTransfer,
    IntakeStart,
    IntakeStep,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    QueueTake,
)
from server.bot.accounts import BOT_ID
from server.bot.knowledge import load_knowledge
from server.core.clock import ManualClock
from server.core.texts import HELSINKI


@pytest.fixture
async def desk(server_factory: Any, codec: Codec) -> Any:
    server: KanavaServer = server_factory(intake_required=True, client_rate_burst=1000)
    helper = Chat(server, codec)
    yield helper
    await helper.close_all()


async def start_bot_chat(desk: Chat, language: str = "fi") -> tuple[ClientPeer, MessageNew]:
    client = await desk.raw_client()
    await client.send(BotStart(language=language))
    opened = await client.expect(ConversationOpened)
    client.conversation_id = opened.conversation.conversation_id
    client.token = opened.token
    assert opened.conversation.team == "bot"
    greeting = await client.expect(MessageNew)
    return client, greeting


async def ask(client: ClientPeer, text: str) -> MessageNew:
    await client.say(text)
    return await client.expect(MessageNew, lambda m: m.message.sender_role == "professional")


async def test_the_bot_says_it_is_a_bot_and_offers_topics(desk: Chat) -> None:
    """No intake needed: the chat opens at once, assigned to the bot, clearly labelled."""
    client = await desk.raw_client()
    await client.send(BotStart(language="fi"))
    await client.expect(ConversationOpened)
    assigned = await client.expect(
        ConversationStateChanged, lambda m: m.conversation.state == "assigned"
    )
    bot = assigned.conversation.professional
    assert bot is not None and bot.bot is True and bot.id == BOT_ID
    greeting = (await client.expect(MessageNew)).message
    assert "botti" in greeting.text and "112" in greeting.text
    assert isinstance(greeting.quick_replies, list) and len(greeting.quick_replies) >= 5
    assert {"id": "prescription", "label": "Reseptin uusiminen"} in greeting.quick_replies


async def test_a_question_gets_its_answer_with_somewhere_to_act(desk: Chat) -> None:
    client, _ = await start_bot_chat(desk)
    answer = (await ask(client, "miten saan uusittua reseptin?")).message
    assert "OmaKanna" in answer.text  # "OmaKannassa"
    assert isinstance(answer.actions, list)
    assert any(a["url"].startswith("https://www.kanta.fi") for a in answer.actions)
    # A quick reply sends its label, as the page does.
    dental = (await ask(client, "Hammashoito")).message
    assert "hammas" in dental.text.lower()


async def test_an_emergency_is_answered_first_with_112(desk: Chat) -> None:
    client, _ = await start_bot_chat(desk)
    answer = (await ask(client, "miten uusin reseptin, mulla on kova rintakipu")).message
    assert "112" in answer.text
    assert isinstance(answer.actions, list)
    assert answer.actions[0]["url"] == "tel:112"
    # Only after it, the answer to what else was asked.
    then = await client.expect(MessageNew, lambda m: m.message.sender_role == "professional")
    assert then.message.seq == answer.seq + 1 and "OmaKanna" in then.message.text
    crisis = (await ask(client, "en halua enää elää")).message
    assert "09 2525 0111" in crisis.text


async def test_the_bot_answers_in_the_language_the_client_writes_in(desk: Chat) -> None:
    client, greeting = await start_bot_chat(desk, "sv")
    assert greeting.message.text.startswith("Hej!")
    answer = (await ask(client, "How do I book an appointment with a nurse?")).message
    english = {t.answers["en"] for t in load_knowledge().topics.values()}
    assert answer.text in english
    assert isinstance(answer.actions, list) and answer.actions


async def test_when_unsure_it_says_so_and_offers_topics(desk: Chat) -> None:
    client, _ = await start_bot_chat(desk)
    answer = (await ask(client, "qwerty zxcvb")).message
    assert "En ole varma" in answer.text
    assert isinstance(answer.quick_replies, list) and answer.quick_replies
    weather = (await ask(client, "millainen ilma on huomenna lapissa")).message
    assert "En ole varma" in weather.text
    thanks = (await ask(client, "kiitos")).message
    assert thanks.text.startswith("Ole hyvä")
    # A thank-you does not hide an emergency written after it.
    urgent = (await ask(client, "kiitos, rintaan sattuu")).message
    assert "112" in urgent.text and isinstance(urgent.actions, list)


async def test_the_bot_chat_is_stored_and_resumes_with_its_buttons(desk: Chat) -> None:
    client, greeting = await start_bot_chat(desk)
    await ask(client, "miten uusin reseptin")
    await client.close()
    again = await desk.raw_client()
    await again.send(ConversationResume(token=client.token, last_seq=0))
    history = await again.expect(MessageHistory)
    texts = [m.text for m in history.messages]
    assert texts[0] == greeting.message.text and texts[1] == "miten uusin reseptin"
    assert history.messages[0].quick_replies == greeting.message.quick_replies
    assert history.messages[2].actions  # the answer's links came back too


async def test_a_client_cannot_write_in_someone_elses_bot_chat(desk: Chat) -> None:
    first, _ = await start_bot_chat(desk)
    second, _ = await start_bot_chat(desk)
    await second.send(MessageSend(first.conversation_id, "x1", "hei"))
    await second.expect_error("forbidden")
    await first.nothing_more(cls=MessageNew)


async def test_without_the_bot_bot_start_is_refused(server_factory: Any, codec: Codec) -> None:
    server = server_factory(bot=False)
    desk = Chat(server, codec)
    try:
        client = await desk.raw_client()
        await client.send(BotStart(language="fi"))
        await client.expect_error("unknown_team")
    finally:
        await desk.close_all()


# --- from the bot to a nurse, and back -----------------------------------------------------


@pytest.fixture
async def open_desk(server_factory: Any, codec: Codec) -> Any:
    server: KanavaServer = server_factory(
        intake_required=True, always_open=True, client_rate_burst=1000, pro_rate_burst=1000
    )
    helper = Chat(server, codec)
    yield helper
    await helper.close_all()


async def test_asking_for_a_nurse_hands_the_same_chat_over_with_its_transcript(
    open_desk: Chat,
) -> None:
    """Bot → intake → the nurse's queue → the nurse reads everything → back to the bot."""
    client, greeting = await start_bot_chat(open_desk)
    answer = await ask(client, "miten uusin reseptin")
    offer = (await ask(client, "haluan puhua hoitajan kanssa")).message
    assert isinstance(offer.actions, list)
    assert offer.actions[0]["kind"] == "handoff"
    await client.close()

    # The page runs the intake on a new connection, naming the bot chat.
    intake = await open_desk.raw_client()
    await intake.send(IntakeStart("other", "fi", bot_token=client.token))
    step = await answer_all(intake, await intake.expect(IntakeStep))
    assert step.step == "station"
    opened = await send_reviewed(intake, step)
    assert isinstance(opened, ConversationOpened)
    view = opened.conversation
    assert view.conversation_id == client.conversation_id  # the same chat, not a new one
    assert (view.state, view.team, view.reason) == ("queued", "kallio", "handed_over")
    assert view.intake is None  # the questionnaire's summary is for the nurse
    # The console shows the five messages with the bot apart, at the top of the pane.
    assert view.bot_seq == 5
    intake.conversation_id, intake.token = view.conversation_id, opened.token

    nurse = await open_desk.open_pro("hoitaja1")
    await nurse.send(QueueTake(conversation_id=view.conversation_id))
    taken = await nurse.expect(ConversationStateChanged, assigned_to(nurse.id))
    assert isinstance(taken.conversation.intake, dict)
    assert taken.conversation.intake["topic"] == "other"
    history = await nurse.history(view.conversation_id)
    assert [m.text for m in history] == [
        greeting.message.text,
        "miten uusin reseptin",
        answer.message.text,
        "haluan puhua hoitajan kanssa",
        offer.text,
    ]
    assert history[0].sender_id == BOT_ID and history[2].actions
    # (A new connection numbers its messages from m1 again: the page uses random ids.)
    await intake.say("Hei, tarvitsen apua.", msg_id="after-handover-1")
    assert (await nurse.expect(MessageNew)).message.text == "Hei, tarvitsen apua."
    await nurse.say(view.conversation_id, "Hei, olen hoitaja.")
    assert (await intake.expect(MessageNew)).message.text == "Hei, olen hoitaja."
    # The bot is out of it now: nothing more from it.
    await intake.nothing_more(cls=MessageNew)

    # And back: the nurse hands a general question to the bot's team; the bot answers again.
    await nurse.send(ConversationTransfer(view.conversation_id, to_team="bot"))
    await intake.expect(ConversationStateChanged, assigned_to(BOT_ID))
    await intake.say("milloin terveysasemat ovat auki", msg_id="after-handover-2")
    again = await intake.expect(MessageNew, lambda m: m.message.sender_id == BOT_ID)
    assert again.message.sender_id == BOT_ID and again.message.actions


async def test_a_wrong_bot_token_is_refused_and_nothing_is_queued(open_desk: Chat) -> None:
    client = await open_desk.raw_client()
    await client.send(IntakeStart("other", "fi", bot_token="x" * 43))
    await client.expect_error("invalid_token")
    # A chat with a person is not a chat with the bot.
    person = await open_desk.raw_client()
    await person.send(IntakeStart("other", "fi"))
    step = await answer_all(person, await person.expect(IntakeStep))
    opened = await send_reviewed(person, step)
    assert isinstance(opened, ConversationOpened)
    third = await open_desk.raw_client()
    await third.send(IntakeStart("other", "fi", bot_token=opened.token))
    await third.expect_error("invalid_state")
    assert step.step == "station"


async def test_outside_hours_the_bot_explains_instead_of_handing_over(
    server_factory: Any, codec: Codec, tmp_path: Path
) -> None:
    hours_file = closed_hours_file(tmp_path)
    desk = Chat(server_factory(intake_required=True, hours_file=hours_file), codec)
    try:
        client, _ = await start_bot_chat(desk)
        reply = (await ask(client, "haluan puhua hoitajan kanssa")).message
        assert reply.text.startswith("Hoitajan chat ei ota nyt uusia keskusteluja")
        assert "116117" in reply.text and "112" in reply.text
        assert not reply.actions or all(a["kind"] != "handoff" for a in reply.actions)
    finally:
        await desk.close_all()


def helsinki_ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=HELSINKI).timestamp() * 1000)


def handoffs(message: Any) -> list[dict[str, str]]:
    return [a for a in message.actions or () if a["kind"] == "handoff"]


async def test_on_midsummer_eve_the_bot_says_closed_by_the_servers_clock(
    server_factory: Any, codec: Codec
) -> None:
    """The server's clock and hours.toml decide; Midsummer Eve 2027 is a Friday, closed."""
    clock = ManualClock(helsinki_ms(2027, 6, 25, 10))
    desk = Chat(server_factory(intake_required=True, clock=clock, client_rate_burst=1000), codec)
    try:
        client, _ = await start_bot_chat(desk)
        hours = (await ask(client, "onko terveysasema auki tänään")).message
        assert "Tänään on juhannusaatto, ja chat on suljettu." in hours.text
        assert "maanantaina 28.6. klo 8.00" in hours.text and not handoffs(hours)
        fever = (await ask(client, "taaperolla on kova kuume, mitä teen")).message
        assert "116117" in fever.text and not handoffs(fever)
    finally:
        await desk.close_all()


async def test_at_night_advice_and_the_number_then_in_the_morning_the_nurse_too(
    server_factory: Any, codec: Codec
) -> None:
    clock = ManualClock(helsinki_ms(2026, 12, 8, 2))  # a Tuesday
    server = server_factory(
        intake_required=True, clock=clock, client_rate_burst=1000, idle_close_minutes=0
    )
    desk = Chat(server, codec)
    try:
        client, _ = await start_bot_chat(desk)
        night = (await ask(client, "taaperolla on kova kuume, mitä teen")).message
        assert "116117" in night.text and "Chat avataan tänään klo 8.00" in night.text
        assert isinstance(night.actions, list) and not handoffs(night)
        assert any(a["url"] == "tel:116117" for a in night.actions)
        clock.advance(8 * 3600)  # 10.00
        day = (await ask(client, "taaperolla on kova kuume, mitä teen")).message
        assert handoffs(day) and "Chat on auki" in day.text
        hours = (await ask(client, "onko chat auki nyt")).message
        assert "Chat on auki" in hours.text and handoffs(hours)
        assert "klo 8–16" in hours.text
    finally:
        await desk.close_all()


# --- a health service's own bot --------------------------------------------------------------


async def test_a_services_own_bot_connects_with_a_bot_token(
    server_factory: Any, codec: Codec, tmp_path: Path
) -> None:
    """`kanava add-bot` makes the account; the engine answers over /ws/pro, shown as a bot."""
    database = tmp_path / "kanava.sqlite3"
    made = subprocess.run(
        [sys.executable, "-m", "server.cli", "add-bot", "omabotti", "--name", "Terveysbotti"]
        + ["--database", str(database)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    server = server_factory(database=database, bot=False, intake_required=True)
    desk = Chat(server, codec)
    try:
        nobody = await desk.raw_client()
        await nobody.send(BotStart(language="fi"))
        await nobody.expect_error("target_unavailable")  # the engine is not connected yet

        engine = await desk.open_pro("omabotti", token=token)
        assert engine.welcome.professional.bot is True
        client = await desk.raw_client()
        await client.send(BotStart(language="fi"))
        opened = await client.expect(ConversationOpened)
        cid = opened.conversation.conversation_id
        assigned = await client.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "assigned"
        )
        assert assigned.conversation.professional is not None
        assert assigned.conversation.professional.bot is True
        await engine.expect(ConversationStateChanged, lambda m: m.conversation.state == "assigned")
        await engine.send(
            MessageSend(
                cid,
                "hello-1",
                "Hei! Olen terveysasemien oma botti.",
                quick_replies=[{"id": "hours", "label": "Aukioloajat"}],
                actions=[{"kind": "phone", "label": "Puhelinpalvelu", "url": "tel:0931010023"}],
            )
        )
        await engine.expect(MessageAck)
        got = (await client.expect(MessageNew)).message
        assert got.quick_replies == [{"id": "hours", "label": "Aukioloajat"}]
        assert isinstance(got.actions, list) and got.actions[0]["url"] == "tel:0931010023"
        # Links must be https or tel: anything else is refused and nothing is stored.
        await engine.send(
            MessageSend(
                cid, "bad-1", "x", actions=[{"kind": "link", "label": "x", "url": "http://x"}]
            )
        )
        await engine.expect_error("invalid_field")
        # People do not send buttons.
        nurse_desk = Chat(server_factory(intake_required=False), codec)
        try:
            patient, nurse = await nurse_desk.open_chat_with("hoitaja1")
            await nurse.send(
                MessageSend(
                    patient.conversation_id,
                    "n1",
                    "Hei",
                    quick_replies=[{"id": "a", "label": "A"}],
                )
            )
            await nurse.expect_error("invalid_field")
        finally:
            await nurse_desk.close_all()
        await client.nothing_more(cls=MessageNew)
    finally:
        await desk.close_all()


async def test_a_chat_is_never_transferred_to_a_bot_account(chat: Chat) -> None:
    """A nurse's transfer to the bot's own account is refused with target_is_bot, and the
    chat stays with her: the client sees no change, and she can still write in it."""
    client, nurse = await chat.open_chat_with("hoitaja1")
    await client.expect(ConversationStateChanged, lambda m: m.conversation.reason == "taken")
    await nurse.send(
        ConversationTransfer(client.conversation_id, to_professional=BOT_ID, note="botille")
    )
    refused = await nurse.expect_error("target_is_bot")
    assert "bot's team" in refused.reason
    await client.nothing_more(cls=ConversationStateChanged)
    await nurse.say(client.conversation_id, "Olen yhä täällä.")
    said = await client.expect(MessageNew)
    assert said.message.text == "Olen yhä täällä." and said.message.sender_id == "p_hoitaja1"
