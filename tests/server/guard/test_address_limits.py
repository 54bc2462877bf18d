"""Limits per client address: a stranger with one machine cannot crowd out real patients.

Each test floods from one loopback address (127.0.0.1) and checks that the flood is refused
with a documented error and a retry time, while a person at another address (127.0.0.2) is
served as if nothing happened. Behind a trusted proxy the address comes from its header.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets
from intake_testing import answer_all
from kanava_testing import Chat, ClientPeer, KanavaServer

from protocol import JSON
from protocol.messages import (
    BotStart,
    ConversationOpen,
    ConversationOpened,
    ConversationResume,
    ConversationStateChanged,
    Error,
    IntakeConfirm,
    IntakeStart,
    IntakeStation,
    IntakeStep,
    MessageAck,
    MessageSend,
    QueueTake,
    Typing,
    TypingSet,
)
from server.guard.limits import AddressLimits, Rate

OTHER = {"local_addr": ("127.0.0.2", 0)}


# --- the bookkeeping --------------------------------------------------------------------


def test_a_rate_allows_its_burst_then_refills_over_the_hour() -> None:
    limits = AddressLimits({"chats": Rate(burst=3, per_hour=60)}, {})
    assert [limits.wait("chats", "a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.wait("chats", "a", 0.0) == pytest.approx(60.0)  # one a minute
    assert limits.wait("chats", "b", 0.0) == 0.0  # another address is not affected
    assert limits.wait("chats", "a", 61.0) == 0.0
    assert limits.refused["chats"] == 1


def test_holds_are_counted_and_released() -> None:
    limits = AddressLimits({}, {"sockets": 2})
    first, second = limits.hold("sockets", "a"), limits.hold("sockets", "a")
    with pytest.raises(Exception) as refused:
        limits.hold("sockets", "a")
    assert getattr(refused.value, "code", None) == "address_limit"
    first.release()
    first.release()  # twice is once
    limits.hold("sockets", "a")
    assert limits.held("sockets", "a") == 2
    second.release()
    assert limits.held("sockets", "a") == 1


def test_the_table_of_buckets_stays_bounded_under_a_flood_of_addresses() -> None:
    limits = AddressLimits({"chats": Rate(burst=2, per_hour=3600)}, {}, max_keys=100)
    for i in range(10_000):
        limits.wait("chats", f"10.0.{i // 256}.{i % 256}", i * 0.0001)
    assert len(limits._buckets["chats"]) <= 100


# --- on a live server ---------------------------------------------------------------------


async def more_windows(desk: Chat, client: ClientPeer, count: int) -> list[ClientPeer]:
    """``count`` more sockets on ``client``'s chat, as more tabs of the same person."""
    windows = []
    for _ in range(count):
        again = await desk.raw_client()
        await again.send(ConversationResume(client.token, 0))
        await again.expect(ConversationStateChanged)
        windows.append(again)
    return windows


async def _ws_status(server: KanavaServer, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return await websockets.connect(
        server.ws_base + "/ws/client",
        subprotocols=[JSON.subprotocol],  # type: ignore[list-item]
        additional_headers=headers or {},
        **kw,
    )


async def test_sockets_per_address_are_limited_and_others_still_connect(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(max_sockets_per_address=3)
    held = [await _ws_status(server) for _ in range(3)]
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await _ws_status(server)
        response = refused.value.response
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) > 0
        assert b"address_limit" in response.body
        other = await _ws_status(server, **OTHER)
        await other.close()
        # A closed socket frees its place.
        await held.pop().close()
        await asyncio.sleep(0.2)
        held.append(await _ws_status(server))
    finally:
        for ws in held:
            await ws.close()


async def test_behind_a_trusted_proxy_each_forwarded_address_counts_alone(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(max_sockets_per_address=2, trusted_proxies=("127.0.0.1",))
    via = [
        await _ws_status(server, {"X-Forwarded-For": f"203.0.113.{n}"}) for n in (1, 1, 2, 2, 3, 3)
    ]  # six people through one proxy: two each, all served
    try:
        with pytest.raises(websockets.InvalidStatus):
            await _ws_status(server, {"X-Forwarded-For": "203.0.113.1"})
        # IPv6: one /64 is one household.
        a = await _ws_status(server, {"X-Forwarded-For": "2001:db8:1:2::a"})
        b = await _ws_status(server, {"X-Forwarded-For": "2001:db8:1:2::b"})
        with pytest.raises(websockets.InvalidStatus):
            await _ws_status(server, {"X-Forwarded-For": "2001:db8:1:2::c"})
        via += [a, b]
        # Not from the proxy: the header is ignored and the socket's own address counts.
        stranger = [
            await _ws_status(server, {"X-Forwarded-For": f"198.51.100.{n}"}, **OTHER)
            for n in (1, 2)
        ]
        with pytest.raises(websockets.InvalidStatus):
            await _ws_status(server, {"X-Forwarded-For": "198.51.100.3"}, **OTHER)
        via += stranger
    finally:
        for ws in via:
            await ws.close()


async def test_bot_chats_per_address_are_limited_with_a_retry_time(server_factory: Any) -> None:
    server: KanavaServer = server_factory(bot_chats_burst=3, bot_chats_per_hour=6)
    desk = Chat(server, JSON)
    try:
        for _ in range(3):
            client = await desk.raw_client()
            await client.send(BotStart(language="fi"))
            await client.expect(ConversationOpened)
        flood = await desk.raw_client()
        await flood.send(BotStart(language="fi"))
        error = await flood.expect_error("rate_limited")
        assert error.ref == "bot.start"
        assert error.retry_after_ms is not None and 500_000 <= error.retry_after_ms <= 600_000
        someone = await desk.raw_client(**OTHER)
        await someone.send(BotStart(language="fi"))
        await someone.expect(ConversationOpened)
    finally:
        await desk.close_all()


async def queue_through_intake(desk: Chat, **connect: Any) -> ClientPeer:
    """A client that has answered everything and sent its review (the answer to come)."""
    client = await desk.raw_client(**connect)
    await client.send(IntakeStart("other", "fi"))
    step = await answer_all(client, await client.expect(IntakeStep), red_flags=["none"])
    assert step.step == "station"
    await client.send(IntakeStation("kallio"))
    review = await client.expect(IntakeStep)
    assert review.step == "review"
    await client.send(IntakeConfirm())
    return client


async def test_waiting_chats_per_address_are_limited_and_the_intake_waits_for_later(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(
        intake_required=True, always_open=True, max_waiting_per_address=2
    )
    desk = Chat(server, JSON)
    try:
        for _ in range(2):
            waiting = await queue_through_intake(desk)
            await waiting.expect(ConversationOpened)
        flood = await queue_through_intake(desk)
        error = await flood.expect_error("address_limit")
        assert error.retry_after_ms and error.ref == "intake.confirm"
        patient = await queue_through_intake(desk, **OTHER)
        opened = await patient.expect(ConversationOpened)
        assert opened.conversation.queue_position == 3
        assert len(server.hub.queue("kallio")) == 3
    finally:
        await desk.close_all()


async def test_intakes_per_address_and_in_all_are_bounded(server_factory: Any) -> None:
    server: KanavaServer = server_factory(
        intake_required=True,
        always_open=True,
        max_intakes_per_address=3,
        max_intake_sessions=5,
        intakes_burst=100,
    )
    desk = Chat(server, JSON)
    try:
        clients, steps = [], []
        for _ in range(3):
            client = await desk.raw_client()
            await client.send(IntakeStart("other", "fi"))
            steps.append(await client.expect(IntakeStep))
            clients.append(client)
        # One live intake per socket: starting again replaces, it does not add.
        await clients[0].send(IntakeStart("other", "fi"))
        await clients[0].expect(IntakeStep)
        flood = await desk.raw_client()
        await flood.send(IntakeStart("other", "fi"))
        error = await flood.expect_error("address_limit")
        assert error.retry_after_ms
        # Two more from elsewhere fill the table; then even a new address is told "busy"
        # rather than pushing out an intake somebody is answering.
        for _ in range(2):
            other = await desk.raw_client(**OTHER)
            await other.send(IntakeStart("other", "fi"))
            await other.expect(IntakeStep)
        late = await desk.raw_client(local_addr=("127.0.0.3", 0))
        await late.send(IntakeStart("other", "fi"))
        busy = await late.expect_error("busy")
        assert busy.retry_after_ms
        # The first ones go on undisturbed.
        step = await answer_all(clients[1], steps[1])
        assert step.step == "station"
    finally:
        await desk.close_all()


async def test_messages_are_limited_per_conversation_however_many_sockets_resume_it(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(
        client_messages_burst=5, client_messages_per_minute=6, client_rate_burst=1000
    )
    desk = Chat(server, JSON)
    try:
        first = await desk.open_client()
        sockets = [first, *await more_windows(desk, first, 3)]
        acks = errors = 0
        for i in range(12):
            sock = sockets[i % len(sockets)]
            msg_id = f"flood{i}"
            await sock.send(MessageSend(first.conversation_id, msg_id, "x" * 3000))
            reply = await sock.expect((MessageAck, Error))  # type: ignore[arg-type]
            if isinstance(reply, Error):
                assert reply.code == "rate_limited" and reply.ref == msg_id
                assert reply.retry_after_ms and reply.retry_after_ms >= 1000
            acks += isinstance(reply, MessageAck)
            errors += not isinstance(reply, MessageAck)
        assert (acks, errors) == (5, 7)
    finally:
        await desk.close_all()


# --- chats whose client has left ----------------------------------------------------------


async def test_waiting_and_bot_chats_whose_client_left_are_closed_and_the_client_is_told(
    server_factory: Any,
) -> None:
    """Abandoned places in the queue and bot chats go after idle_close_minutes; a client that
    comes back learns why. A chat a client still holds open stays."""
    # 1.2 seconds for a bot chat, 2.4 for a place in the queue (longer: a phone drops its
    # socket whenever its screen locks, and comes back).
    server: KanavaServer = server_factory(idle_close_minutes=0.02, idle_close_queued_minutes=0.04)
    desk = Chat(server, JSON)
    try:
        queued = await desk.open_client(team="kallio")
        bot = await desk.raw_client()
        await bot.send(BotStart(language="fi"))
        bot_view = (await bot.expect(ConversationOpened)).conversation
        staying = await desk.open_client(team="kallio")
        await queued.close()
        await bot.close()
        await asyncio.sleep(1.8)
        assert server.hub.conversation(bot_view.conversation_id) is None
        assert server.hub.conversation(queued.conversation_id) is not None  # still in line
        await asyncio.sleep(1.8)
        assert server.hub.conversation(queued.conversation_id) is None
        assert server.hub.conversation(bot_view.conversation_id) is None
        assert server.hub.conversation(staying.conversation_id) is not None
        assert [c.id for c in server.hub.queue("kallio")] == [staying.conversation_id]
        back = await desk.raw_client()
        await back.send(ConversationResume(queued.token, 0))
        state = await back.expect(ConversationStateChanged)
        assert state.conversation.state == "closed"
        assert state.conversation.reason == "client_left"
    finally:
        await desk.close_all()


async def test_the_bot_answers_however_many_chats_strangers_opened(server_factory: Any) -> None:
    """Strangers from many addresses open bot chats and leave; the bot still takes the next
    one at once, and the abandoned ones are closed after the idle time."""
    server: KanavaServer = server_factory(idle_close_minutes=0.02, bot_chats_burst=2)
    desk = Chat(server, JSON)
    try:
        for n in range(40):
            stranger = await desk.raw_client(local_addr=(f"127.0.3.{n + 1}", 0))
            await stranger.send(BotStart(language="fi"))
            await stranger.expect(ConversationOpened)
            await stranger.close()
        bot = server.hub.professional("p_bot")
        assert len(bot.conversation_ids) == 40
        someone = await desk.raw_client(**OTHER)
        await someone.send(BotStart(language="fi"))
        opened = await someone.expect(ConversationOpened)
        taken = await someone.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "assigned"
        )
        assert taken.conversation.professional is not None
        assert taken.conversation.professional.bot
        await asyncio.sleep(2.5)
        assert bot.conversation_ids == {opened.conversation.conversation_id}
    finally:
        await desk.close_all()


async def test_a_chat_is_open_in_a_few_windows_at_most(server_factory: Any) -> None:
    """Each socket on a chat multiplies its events: a person has a tab or two, so a sixth
    socket resuming one chat is refused, and closing one makes room."""
    server: KanavaServer = server_factory(max_sockets_per_conversation=5)
    desk = Chat(server, JSON)
    try:
        first = await desk.open_client()
        sockets = [first, *await more_windows(desk, first, 4)]
        sixth = await desk.raw_client()
        await sixth.send(ConversationResume(first.token, 0))
        error = await sixth.expect_error("address_limit")
        assert error.retry_after_ms and "windows" in error.reason
        await sockets.pop().close()
        await asyncio.sleep(0.2)
        await sixth.send(ConversationResume(first.token, 0))
        await sixth.expect(ConversationStateChanged)
    finally:
        await desk.close_all()


async def test_repeated_typing_is_sent_on_once_however_many_sockets_repeat_it(
    server_factory: Any,
) -> None:
    """ "Still typing" from five sockets of one chat reaches the nurse once, not five times
    per second; a change (stopped typing) goes through at once."""
    server: KanavaServer = server_factory(max_sockets_per_conversation=5)
    desk = Chat(server, JSON)
    try:
        pro = await desk.open_pro("hoitaja1")
        first = await desk.open_client(team="kallio")
        await pro.send(QueueTake(conversation_id=first.conversation_id))
        await first.expect(ConversationStateChanged, lambda m: m.conversation.state == "assigned")
        sockets = [first, *await more_windows(desk, first, 4)]
        for _ in range(3):
            for sock in sockets:
                await sock.send(TypingSet(first.conversation_id, True))
        await asyncio.sleep(0.3)
        await first.send(TypingSet(first.conversation_id, False))
        await asyncio.sleep(0.3)
        seen = []
        while True:
            try:
                seen.append((await pro.expect(Typing, timeout=0.2)).typing)
            except TimeoutError:
                break
        assert seen == [True, False]
    finally:
        await desk.close_all()


async def test_without_the_intake_joining_a_queue_is_limited_per_address_too(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(max_waiting_per_address=2)
    desk = Chat(server, JSON)
    try:
        await desk.open_client(team="kallio")
        await desk.open_client(team="kallio")
        flood = await desk.raw_client()
        await flood.send(ConversationOpen(client_name="X", team="kallio"))
        await flood.expect_error("address_limit")
        elsewhere = await desk.raw_client(**OTHER)
        await elsewhere.send(ConversationOpen(client_name="Y", team="kallio"))
        await elsewhere.expect(ConversationOpened)
    finally:
        await desk.close_all()


def test_an_ipv6_home_network_shares_a_wider_limit_across_its_64s() -> None:
    """A /56 at home is 256 /64s: each /64 counts alone, and together they count towards their
    /48, which may use eight times as much, not 256 times."""
    limits = AddressLimits({"starts": Rate(burst=2, per_hour=60)}, {"held": 2})
    home = [f"2001:db8:1:{n:x}00::/64" for n in range(20)]
    allowed = sum(limits.wait("starts", key, 0.0) == 0 for key in home for _ in range(2))
    assert allowed == 16  # 2 x 8, not 2 x 20
    assert limits.wait("starts", "2001:db8:2::/64", 0.0) == 0  # another /48
    holds = []
    for key in home:
        for _ in range(2):
            try:
                holds.append(limits.hold("held", key))
            except Exception:
                pass
    assert len(holds) == 16
    for hold in holds:
        hold.release()
    assert limits.held("held", home[0]) == 0
