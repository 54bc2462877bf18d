"""Nothing is lost across a dropped connection, a professional going away, or a restart."""

from __future__ import annotations

from typing import Any

from kanava_testing import Chat, KanavaServer, texts

from protocol import JSON, MSGPACK
from protocol.messages import (
    ConversationOpen,
    ConversationOpened,
    ConversationStateChanged,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    QueueSnapshot,
    QueueTake,
)


async def test_client_resume_receives_exactly_the_missing_messages(chat: Chat) -> None:
    client, pro = await chat.open_chat_with("hoitaja1")
    await pro.say(client.conversation_id, "yksi")
    await client.expect(MessageNew)  # seq 1 seen
    await client.close()
    for word in ("kaksi", "kolme", "neljä"):
        await pro.say(client.conversation_id, word)
    again = await chat.resume_client(client.token, last_seq=1)
    state = await again.expect(ConversationStateChanged)
    assert state.conversation.conversation_id == client.conversation_id
    assert state.conversation.last_seq == 4
    history: list[Any] = []
    while True:
        page = await again.expect(MessageHistory)
        history.extend(page.messages)
        if page.up_to_date:
            break
    assert [(m.seq, m.text) for m in history] == [(2, "kaksi"), (3, "kolme"), (4, "neljä")]
    # Live messages continue after the history, without repeating any of it.
    await pro.say(client.conversation_id, "viisi")
    live = await again.expect(MessageNew)
    assert (live.message.seq, live.message.text) == (5, "viisi")
    await again.nothing_more(cls=MessageNew)


async def test_resume_during_a_burst_has_no_gap_and_no_duplicate(chat: Chat) -> None:
    """Messages committed while the history is being read arrive once, in order."""
    client, pro = await chat.open_chat_with("hoitaja1")
    await client.close()
    for i in range(40):
        await pro.send(MessageSend(client.conversation_id, f"a{i}", f"ennen {i}"))
    again = await chat.resume_client(client.token, last_seq=0)
    for i in range(40):
        await pro.send(MessageSend(client.conversation_id, f"b{i}", f"jälkeen {i}"))
    seen: list[int] = []
    while len(seen) < 80:
        msg = await again.recv()
        if isinstance(msg, MessageHistory):
            seen.extend(m.seq for m in msg.messages)
        elif isinstance(msg, MessageNew):
            seen.append(msg.message.seq)
    assert seen == list(range(1, 81))
    await again.nothing_more(cls=MessageNew)


async def test_resume_with_an_unknown_token_is_refused_and_the_socket_stays(chat: Chat) -> None:
    peer = await chat.resume_client("not-a-token-of-any-conversation")
    await peer.expect_error("invalid_token")
    # The same connection can still open a conversation.
    from protocol.messages import ConversationOpen, ConversationOpened

    await peer.send(ConversationOpen(client_name="Uusi"))
    await peer.expect(ConversationOpened)


async def test_professional_reconnect_with_cursors_gets_only_what_was_missed(chat: Chat) -> None:
    client, pro = await chat.open_chat_with("hoitaja1")
    await client.say("eka")
    await pro.expect(MessageNew)
    await pro.close()
    await client.say("toka")
    await client.say("kolmas")
    again = await chat.open_pro("hoitaja1", cursors={client.conversation_id: 1}, token=pro.token)
    assert [c.conversation_id for c in again.welcome.conversations] == [client.conversation_id]
    assert texts(await again.history(client.conversation_id)) == ["toka", "kolmas"]


async def test_professional_back_within_grace_keeps_the_chats(server_factory: Any) -> None:
    server: KanavaServer = server_factory(grace_seconds=1.0)
    chat = Chat(server, JSON)
    try:
        client = await chat.open_client()
        pro = await chat.open_pro("hoitaja1")
        await pro.send(QueueTake())
        await client.expect(ConversationStateChanged, lambda m: m.conversation.state == "assigned")
        await pro.history(client.conversation_id)
        await pro.close()
        again = await chat.open_pro("hoitaja1", token=pro.token)
        assert [c.conversation_id for c in again.welcome.conversations] == [client.conversation_id]
        await client.nothing_more(wait=1.5, cls=ConversationStateChanged)
        await client.say("olen yhä täällä")
        assert (await again.expect(MessageNew)).message.text == "olen yhä täällä"
    finally:
        await chat.close_all()


async def test_after_the_grace_period_chats_return_to_the_front_of_the_queue(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(grace_seconds=0.5)
    chat = Chat(server, MSGPACK)
    try:
        mine = await chat.open_client("Hylätty")
        pro = await chat.open_pro("hoitaja1")
        await pro.send(QueueTake())
        await mine.expect(ConversationStateChanged, lambda m: m.conversation.state == "assigned")
        waiting = await chat.open_client("Jonottaja")
        await pro.close()
        told = await mine.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "queued", timeout=5
        )
        assert told.conversation.reason == "professional_disconnected"
        assert told.conversation.queue_position == 1
        assert told.conversation.professional is None
        moved = await waiting.expect(ConversationStateChanged)
        assert moved.conversation.queue_position == 2
        # Another professional sees it first in line and gets its history.
        await mine.say("odotan taas")
        other = await chat.open_pro("hoitaja2")
        snapshot = await other.expect(QueueSnapshot, lambda s: s.team == "kallio")
        assert [e.client_name for e in snapshot.entries] == ["Hylätty", "Jonottaja"]
        await other.send(QueueTake())
        assert texts(await other.history(mine.conversation_id)) == ["odotan taas"]
    finally:
        await chat.close_all()


async def test_restart_restores_conversations_history_queue_and_assignment(
    server_factory: Any,
) -> None:
    """Stop the server and start it on the same database: everyone carries on."""
    server: KanavaServer = server_factory(grace_seconds=30.0)
    chat = Chat(server, JSON)
    try:
        taken = await chat.open_client("Otettu")
        first = await chat.open_client("Eka jonossa")
        second = await chat.open_client("Toka jonossa")
        pro = await chat.open_pro("hoitaja1")
        await pro.send(QueueTake(conversation_id=taken.conversation_id))
        await pro.history(taken.conversation_id)
        await taken.say("ennen katkoa")
        await pro.expect(MessageNew)
        await pro.say(taken.conversation_id, "vastaus ennen katkoa")
        await first.say("odotan")
        await chat.close_all()

        server.restart()

        chat = Chat(server, JSON)
        back = await chat.resume_client(taken.token, last_seq=0)
        state = await back.expect(ConversationStateChanged)
        back.conversation_id = state.conversation.conversation_id
        assert back.conversation_id == taken.conversation_id
        assert state.conversation.state == "assigned"
        assert state.conversation.professional is not None
        assert state.conversation.professional.id == "p_hoitaja1"
        history = await back.expect(MessageHistory)
        assert [(m.seq, m.text) for m in history.messages] == [
            (1, "ennen katkoa"),
            (2, "vastaus ennen katkoa"),
        ]
        for peer_token, position in ((first.token, 1), (second.token, 2)):
            waiting = await chat.resume_client(peer_token)
            state = await waiting.expect(ConversationStateChanged)
            assert (state.conversation.state, state.conversation.queue_position) == (
                "queued",
                position,
            )
        # The professional signs in again (sessions are stored) and still has the chat.
        again = await chat.open_pro("hoitaja1", token=pro.token)
        assert [c.conversation_id for c in again.welcome.conversations] == [taken.conversation_id]
        assert texts(await again.history(taken.conversation_id)) == [
            "ennen katkoa",
            "vastaus ennen katkoa",
        ]
        # Sequence numbers continue where they were.
        ack = await back.say("jälkeen katkon", msg_id="after-restart-1")
        assert ack.seq == 3
        # The idempotency memory survives too: a retry of a pre-restart send is not stored.
        retry = await back.say("ennen katkoa", msg_id="m1")
        assert (retry.seq, retry.duplicate) == (1, True)
    finally:
        await chat.close_all()


async def test_a_resume_claiming_too_much_hides_nothing(chat: Chat) -> None:
    """A last_seq beyond what exists is read as "up to date", not as a reason to skip."""
    client = await chat.open_client()
    await client.close()
    again = await chat.resume_client(client.token, last_seq=999)
    await again.expect(ConversationStateChanged)
    again.conversation_id = client.conversation_id
    assert (await again.expect(MessageHistory)).up_to_date
    pro = await chat.open_pro("hoitaja1")
    await pro.send(QueueTake())
    await pro.history(client.conversation_id)
    await pro.say(client.conversation_id, "Näkyykö tämä?")
    got = await again.expect(MessageNew)
    assert (got.message.seq, got.message.text) == (1, "Näkyykö tämä?")
    assert (got.message.sender_role, got.message.sender_id) == ("professional", "p_hoitaja1")


async def test_history_frames_stay_small_with_long_messages(chat: Chat) -> None:
    client = await chat.open_client()
    for i in range(60):
        await client.send(MessageSend(client.conversation_id, f"l{i}", f"{i:02d}" + "x" * 3998))
    for _ in range(60):
        await client.expect(MessageAck)
    await client.close()
    again = await chat.resume_client(client.token, last_seq=0)
    pages = []
    while True:
        page = await again.expect(MessageHistory)
        pages.append(page)
        if page.up_to_date:
            break
    assert len(pages) >= 3
    assert all(sum(len(m.text) for m in p.messages) <= 100_000 for p in pages)
    assert [m.seq for p in pages for m in p.messages] == list(range(1, 61))
    assert all(m.sender_id == "client" for p in pages for m in p.messages)


async def test_a_retried_open_gets_what_was_said_meanwhile(chat: Chat) -> None:
    """The first answer to conversation.open was lost; a nurse wrote before the retry: the
    retried open returns the same chat and, with it, the nurse's message."""
    open_id = "0123456789abcdef0123456789abcdef"
    first = await chat.raw_client()
    await first.send(ConversationOpen(client_name="Matti", team="kallio", open_id=open_id))
    opened = await first.expect(ConversationOpened)
    await first.close()
    nurse = await chat.open_pro("hoitaja1")
    cid = opened.conversation.conversation_id
    await nurse.send(QueueTake(conversation_id=cid))
    await nurse.history(cid)
    await nurse.say(cid, "Hei, miten voin auttaa?")
    again = await chat.raw_client()
    await again.send(ConversationOpen(client_name="Matti", team="kallio", open_id=open_id))
    reopened = await again.expect(ConversationOpened)
    assert reopened.conversation.conversation_id == cid
    history = await again.expect(MessageHistory)
    assert [m.text for m in history.messages] == ["Hei, miten voin auttaa?"]
    assert history.up_to_date
