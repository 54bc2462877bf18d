"""The advice bot over real websockets: it greets, answers, puts safety first, and is stored."""

from __future__ import annotations

from typing import Any

import pytest
from kanava_testing import Chat, ClientPeer, KanavaServer

from protocol import Codec
from protocol.messages import (
    BotStart,
    ConversationOpened,
    ConversationResume,
    ConversationStateChanged,
    MessageHistory,
    MessageNew,
    MessageSend,
)
from server.bot import BOT_ID
from server.knowledge import load_knowledge


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
