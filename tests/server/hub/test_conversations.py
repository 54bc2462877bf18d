"""A conversation from opening to closing, over real websockets, in both codecs."""

from __future__ import annotations

from kanava_testing import Chat, assigned_to, texts

from protocol.messages import (
    AvailabilitySet,
    ConversationClose,
    ConversationOpen,
    ConversationOpened,
    ConversationStateChanged,
    ConversationTransfer,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    QueueSnapshot,
    QueueTake,
    Read,
    ReadMark,
    Typing,
    TypingSet,
)


async def test_client_opens_a_queued_conversation_with_a_resume_token(chat: Chat) -> None:
    """A new conversation is queued, first in line, and comes with a secret token."""
    client = await chat.open_client("Matti")
    assert client.view.state == "queued"
    assert client.view.queue_position == 1
    assert client.view.client_name == "Matti"
    assert len(client.token) >= 40


async def test_professional_takes_and_both_chat(chat: Chat) -> None:
    """Messages flow both ways, each acknowledged with its sequence number."""
    client = await chat.open_client("Matti")
    waiting = await client.say("Minulla on kuumetta")
    assert waiting.seq == 1
    pro = await chat.open_pro("hoitaja1")
    await pro.send(QueueTake())
    state = await client.expect(
        ConversationStateChanged, lambda m: m.conversation.state == "assigned"
    )
    assert state.conversation.professional is not None
    assert state.conversation.professional.name == "Hanna Hoitaja"
    # The professional gets what the client wrote while waiting.
    assert texts(await pro.history(client.conversation_id)) == ["Minulla on kuumetta"]
    ack = await pro.say(client.conversation_id, "Hei Matti, kuinka korkea kuume?")
    assert ack.seq == 2
    got = await client.expect(MessageNew)
    assert got.message.text == "Hei Matti, kuinka korkea kuume?"
    assert got.message.sender_role == "professional"
    assert got.message.sender_name == "Hanna Hoitaja"
    assert got.message.seq == 2
    await client.say("39 astetta")
    got = await pro.expect(MessageNew)
    assert (got.message.conversation_id, got.message.seq, got.message.text) == (
        client.conversation_id,
        3,
        "39 astetta",
    )


async def test_a_retried_send_is_stored_once_and_answers_the_first_seq(chat: Chat) -> None:
    """The sender's msg_id makes a retry safe: same seq, marked duplicate, nothing new."""
    client = await chat.open_client()
    first = await client.say("Hei", msg_id="retry-1")
    again = await client.say("Hei", msg_id="retry-1")
    assert (again.seq, again.sent_at, again.duplicate) == (first.seq, first.sent_at, True)
    assert not first.duplicate
    count = await chat.server.acall(
        lambda: chat.server.storage.count_messages(client.conversation_id)
    )
    assert count == 1


async def test_many_messages_sent_without_waiting_keep_their_order(chat: Chat) -> None:
    """A burst of sends is stored in order, with consecutive sequence numbers."""
    client = await chat.open_client()
    for i in range(25):
        await client.send(MessageSend(client.conversation_id, f"b{i}", f"viesti {i}"))
    acks = [await client.expect(MessageAck) for _ in range(25)]
    assert [a.msg_id for a in acks] == [f"b{i}" for i in range(25)]
    assert [a.seq for a in acks] == list(range(1, 26))


async def test_typing_reaches_the_other_party_and_is_not_stored(chat: Chat) -> None:
    client, pro = await chat.open_chat_with("hoitaja1")
    await client.send(TypingSet(client.conversation_id, True))
    typing = await pro.expect(Typing)
    assert (typing.conversation_id, typing.role, typing.typing) == (
        client.conversation_id,
        "client",
        True,
    )
    await pro.send(TypingSet(client.conversation_id, True))
    typing = await client.expect(Typing)
    assert typing.role == "professional"
    count = await chat.server.acall(lambda: chat.server.storage.count_messages())
    assert count == 0


async def test_read_receipts_reach_the_sender_and_survive_a_resume(chat: Chat) -> None:
    client, pro = await chat.open_chat_with("hoitaja1")
    await pro.say(client.conversation_id, "Hei")
    await pro.say(client.conversation_id, "Miten voin auttaa?")
    await client.send(ReadMark(client.conversation_id, 2))
    read = await pro.expect(Read)
    assert (read.role, read.seq) == ("client", 2)
    await client.close()
    again = await chat.resume_client(client.token, last_seq=2)
    state = await again.expect(ConversationStateChanged)
    assert state.conversation.read_client_seq == 2


async def test_professional_in_pick_mode_sees_the_queue_and_picks(chat: Chat) -> None:
    first = await chat.open_client("Eka")
    second = await chat.open_client("Toka")
    pro = await chat.open_pro("hoitaja1")
    snapshot = await pro.expect(QueueSnapshot, lambda s: s.team == "kallio")
    assert [e.client_name for e in snapshot.entries] == ["Eka", "Toka"]
    assert snapshot.length == 2
    await pro.send(QueueTake(conversation_id=second.conversation_id))
    await second.expect(ConversationStateChanged, assigned_to(pro.id))
    # The first client is still first in line; the queue shrank.
    snapshot = await pro.expect(QueueSnapshot, lambda s: s.length == 1)
    assert [e.conversation_id for e in snapshot.entries] == [first.conversation_id]


async def test_waiting_clients_see_their_position_move(chat: Chat) -> None:
    first = await chat.open_client("Eka")
    second = await chat.open_client("Toka")
    assert second.view.queue_position == 2
    assert second.view.wait_max_minutes is None  # nobody online: no estimate
    pro = await chat.open_pro("hoitaja1")
    # A nurse online: the waiting hear their wait, in the same place.
    told = await second.expect(ConversationStateChanged)
    assert told.conversation.queue_position == 2
    assert told.conversation.wait_max_minutes is not None
    await pro.send(QueueTake())
    await first.expect(ConversationStateChanged, assigned_to(pro.id))
    moved = await second.expect(ConversationStateChanged)
    assert moved.conversation.queue_position == 1


async def test_take_without_a_name_takes_the_longest_waiting(chat: Chat) -> None:
    first = await chat.open_client("Eka")
    await chat.open_client("Toka")
    pro = await chat.open_pro("hoitaja1")
    await pro.send(QueueTake())
    taken = await pro.expect(ConversationStateChanged, assigned_to(pro.id))
    assert taken.conversation.conversation_id == first.conversation_id


async def test_auto_mode_gives_the_longest_waiting_to_the_least_busy(chat: Chat) -> None:
    """Vuosaari auto-assigns: each new chat goes to the professional with fewest chats."""
    doctor = await chat.open_pro("laakari1")  # vuosaari only
    nurse = await chat.open_pro("hoitaja2")  # kallio and vuosaari
    clients = [await chat.open_client(f"Asiakas {i}", team="vuosaari") for i in range(4)]
    owners = []
    for client in clients:
        state = await client.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "assigned"
        )
        assert state.conversation.professional is not None
        owners.append(state.conversation.professional.id)
    assert sorted(owners) == sorted([doctor.id, doctor.id, nurse.id, nurse.id])
    # Ties go by id, so the doctor (p_hoitaja2 < p_laakari1 is false) order is stable.
    assert owners[0] == "p_hoitaja2"


async def test_capacity_limits_how_many_chats_a_professional_takes(chat: Chat) -> None:
    await chat.server.add_professional("pieni", capacity=1)
    await chat.open_client("Eka")
    await chat.open_client("Toka")
    pro = await chat.open_pro("pieni")
    await pro.send(QueueTake())
    await pro.expect(ConversationStateChanged, assigned_to(pro.id))
    await pro.send(QueueTake())
    err = await pro.expect_error("capacity_reached")
    assert err.ref == "queue.take"


async def test_transfer_moves_the_chat_and_the_client_is_told(chat: Chat) -> None:
    client = await chat.open_client("Matti")
    nurse = await chat.open_pro("hoitaja1")
    colleague = await chat.open_pro("hoitaja2")
    await nurse.send(QueueTake(conversation_id=client.conversation_id))
    await nurse.history(client.conversation_id)
    await client.say("Tarvitsen reseptin")
    assert (await nurse.expect(MessageNew)).message.text == "Tarvitsen reseptin"
    await nurse.send(ConversationTransfer(client.conversation_id, colleague.id, note="Reseptiasia"))
    told = await client.expect(ConversationStateChanged, assigned_to(colleague.id))
    assert told.conversation.reason == "transferred"
    assert told.conversation.professional is not None
    assert told.conversation.professional.name == "Ville Virtanen"
    # The colleague gets the whole history; the first nurse can no longer write.
    assert texts(await colleague.history(client.conversation_id)) == ["Tarvitsen reseptin"]
    await nurse.send(MessageSend(client.conversation_id, "late", "Vielä yksi asia"))
    await nurse.expect_error("not_assigned")
    await client.say("Kiitos")
    assert (await colleague.expect(MessageNew)).message.text == "Kiitos"
    await nurse.nothing_more(cls=MessageNew)


async def test_transfer_to_another_team_queues_the_chat_there_with_its_history(
    chat: Chat,
) -> None:
    """A nurse sends the chat to the doctors' team; a doctor gets it with everything said."""
    client = await chat.open_client("Matti")
    nurse = await chat.open_pro("hoitaja1")  # team kallio
    await nurse.send(QueueTake(conversation_id=client.conversation_id))
    await nurse.history(client.conversation_id)
    await client.say("Tarvitsen lääkärin arvion")
    await nurse.expect(MessageNew)
    await nurse.send(
        ConversationTransfer(client.conversation_id, to_team="vuosaari", note="Lääkärin arvio")
    )
    queued = await client.expect(
        ConversationStateChanged, lambda m: m.conversation.state == "queued"
    )
    assert queued.conversation.team == "vuosaari"
    assert queued.conversation.reason == "transferred"
    assert queued.conversation.queue_position == 1
    await nurse.expect(ConversationStateChanged, lambda m: m.conversation.state == "queued")
    await nurse.send(MessageSend(client.conversation_id, "late", "Vielä yksi asia"))
    await nurse.expect_error("not_assigned")
    # Vuosaari assigns automatically: the doctor who comes online gets it, and its history.
    doctor = await chat.open_pro("laakari1")
    taken = await client.expect(ConversationStateChanged, assigned_to(doctor.id))
    assert taken.conversation.team == "vuosaari"
    assert texts(await doctor.history(client.conversation_id)) == ["Tarvitsen lääkärin arvion"]
    await client.say("Kiitos")
    assert (await doctor.expect(MessageNew)).message.text == "Kiitos"
    await nurse.nothing_more(cls=MessageNew)


async def test_a_transfer_must_name_one_existing_target(chat: Chat) -> None:
    client, nurse = await chat.open_chat_with("hoitaja1")
    cid = client.conversation_id
    await nurse.send(ConversationTransfer(cid, to_team="mars"))
    await nurse.expect_error("unknown_team")
    await nurse.send(ConversationTransfer(cid, to_team="kallio"))
    await nurse.expect_error("target_unavailable")
    await nurse.send(ConversationTransfer(cid, to_professional="p_hoitaja2", to_team="vuosaari"))
    await nurse.expect_error("invalid_field")
    await nurse.send(ConversationTransfer(cid))
    await nurse.expect_error("invalid_field")
    # Nothing happened: the chat is still the nurse's.
    await client.say("Oletko vielä siellä?")
    assert (await nurse.expect(MessageNew)).message.text == "Oletko vielä siellä?"


async def test_closing_tells_the_client_and_refuses_further_messages(chat: Chat) -> None:
    client, pro = await chat.open_chat_with("hoitaja1")
    await pro.send(ConversationClose(client.conversation_id, reason="Ohjattu ajanvaraukseen"))
    closed = await client.expect(
        ConversationStateChanged, lambda m: m.conversation.state == "closed"
    )
    # The professional's own words stay with professionals; the client is told who ended it.
    assert closed.conversation.reason == "closed_by_professional"
    assert closed.conversation.closed_by == "professional"
    assert closed.conversation.outcome is None
    own = await pro.expect(ConversationStateChanged, lambda m: m.conversation.state == "closed")
    assert own.conversation.reason == "Ohjattu ajanvaraukseen"
    await client.send(MessageSend(client.conversation_id, "x", "Hei?"))
    err = await client.expect_error("conversation_closed")
    assert err.ref == "x"
    await pro.send(MessageSend(client.conversation_id, "y", "Hei?"))
    await pro.expect_error("conversation_closed")
    # The professional's slot is free again.
    another = await chat.open_client("Toinen")
    await pro.send(QueueTake())
    await another.expect(ConversationStateChanged, assigned_to(pro.id))


async def test_client_can_end_the_chat_while_waiting(chat: Chat) -> None:
    client = await chat.open_client()
    pro = await chat.open_pro("hoitaja1")
    await client.send(ConversationClose(client.conversation_id))
    closed = await client.expect(
        ConversationStateChanged, lambda m: m.conversation.state == "closed"
    )
    assert closed.conversation.closed_by == "client"
    await pro.expect(QueueSnapshot, lambda s: s.length == 0)
    await pro.send(QueueTake())
    await pro.expect_error("queue_empty")


async def test_history_sync_pages_through_long_conversations(chat: Chat) -> None:
    """More messages than a page: a sync sends every one, in order, in several pages."""
    client = await chat.open_client()
    for i in range(230):
        await client.send(MessageSend(client.conversation_id, f"h{i}", f"rivi {i}"))
    for _ in range(230):
        await client.expect(MessageAck)
    pro = await chat.open_pro("hoitaja1")
    await pro.send(QueueTake())
    pages = []
    while True:
        page = await pro.expect(MessageHistory)
        pages.append(page)
        if page.up_to_date:
            break
    assert len(pages) == 3
    seqs = [m.seq for p in pages for m in p.messages]
    assert seqs == list(range(1, 231))


async def test_retrying_an_open_after_a_drop_queues_no_second_chat(chat: Chat) -> None:
    """The phone lost its connection before 'opened' arrived: the retry gets the same chat."""
    first = await chat.raw_client()
    await first.send(ConversationOpen(client_name="Matti", open_id="retry-0123456789abcdef"))
    lost = await first.expect(ConversationOpened)
    await first.close()
    again = await chat.raw_client()
    await again.send(ConversationOpen(client_name="Matti", open_id="retry-0123456789abcdef"))
    opened = await again.expect(ConversationOpened)
    assert opened.conversation.conversation_id == lost.conversation.conversation_id
    assert opened.conversation.queue_position == 1
    assert opened.token != lost.token
    pro = await chat.open_pro("hoitaja1")
    snapshot = await pro.expect(QueueSnapshot, lambda s: s.team == "kallio")
    assert snapshot.length == 1
    # The new token resumes; the one that never arrived no longer does.
    resumed = await chat.resume_client(opened.token)
    await resumed.expect(ConversationStateChanged)
    stale = await chat.resume_client(lost.token)
    await stale.expect_error("invalid_token")


async def test_an_open_id_is_free_again_once_its_chat_has_closed(chat: Chat) -> None:
    client = await chat.open_client(open_id="once-0123456789abcdef")
    await client.send(ConversationClose(client.conversation_id))
    await client.expect(ConversationStateChanged, lambda m: m.conversation.state == "closed")
    later = await chat.open_client(open_id="once-0123456789abcdef")
    assert later.conversation_id != client.conversation_id


async def test_a_burst_of_queue_changes_sends_each_waiting_client_few_updates(chat: Chat) -> None:
    """Forty people leaving at once must not send everyone behind them forty updates."""
    leaving = [await chat.open_client(f"Lähtijä {i}") for i in range(40)]
    staying = [await chat.open_client(f"Jääjä {i}") for i in range(5)]
    for client in leaving:
        await client.send(ConversationClose(client.conversation_id))
    for i, client in enumerate(staying):
        final = await client.expect(
            ConversationStateChanged, lambda m, i=i: m.conversation.queue_position == i + 1
        )
        assert final.conversation.state == "queued"
        await client.nothing_more(wait=0.5, cls=ConversationStateChanged)
        updates = [m for m in client.received if isinstance(m, ConversationStateChanged)]
        assert len(updates) <= 4, [u.conversation.queue_position for u in updates]


async def test_a_supervisor_signs_in_unavailable_and_gets_chats_only_when_they_choose(
    chat: Chat,
) -> None:
    """Vuosaari auto-assigns. Its head nurse signs in to supervise: the waiting chat goes to
    no one until she makes herself available; a reload keeps her choice."""
    await chat.server.add_professional("osastonhoitaja", ("vuosaari",), role="supervisor")
    head = await chat.open_pro("osastonhoitaja")
    assert head.welcome.available is False
    client = await chat.open_client("Odottaja", team="vuosaari")
    await head.expect(QueueSnapshot, lambda m: m.team == "vuosaari" and len(m.entries) == 1)
    await head.send(AvailabilitySet(available=True))
    await client.expect(ConversationStateChanged, lambda m: m.conversation.state == "assigned")
    again = await chat.open_pro("osastonhoitaja")  # a second window: still available
    assert again.welcome.available is True
