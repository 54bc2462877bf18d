"""Bad input gets a clear error and loses nothing; abuse is contained to the abuser."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from typing import Any

import aiohttp
import pytest
import websockets
from kanava_testing import Chat, KanavaServer, echo_cookies

from protocol import JSON, MSGPACK, to_wire
from protocol.errors import CloseCode
from protocol.messages import (
    Auth,
    ConversationClose,
    ConversationOpen,
    ConversationOpened,
    ConversationStateChanged,
    ConversationSync,
    Error,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    Ping,
    Pong,
    QueueTake,
    Welcome,
)
from server.core.ids import hash_token

# --- the handshake ----------------------------------------------------------------------------


async def test_a_foreign_origin_is_refused_before_the_upgrade(chat: Chat) -> None:
    """Cross-site websocket hijacking: another site's page cannot open our sockets."""
    for path in ("/ws/client", "/ws/pro"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await chat.connect(path, origin="https://evil.example")
        assert refused.value.response.status_code == 403


async def test_an_allowed_origin_and_a_missing_one_are_accepted(chat: Chat) -> None:
    for origin in ("http://127.0.0.1", None):
        await chat.raw_client(origin=origin)


async def test_origin_can_be_required(server_factory: Any) -> None:
    server: KanavaServer = server_factory(allow_missing_origin=False)
    chat = Chat(server)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await chat.connect("/ws/client")
    assert refused.value.response.status_code == 403


async def test_the_codec_follows_the_subprotocol_and_json_is_the_default(chat: Chat) -> None:
    ws = (await chat.raw_client(subprotocols=[MSGPACK.subprotocol])).ws
    assert ws.subprotocol == MSGPACK.subprotocol
    await ws.send(MSGPACK.dumps(to_wire(Ping(nonce="n1"))))
    assert MSGPACK.decode_outbound(await ws.recv()) == Pong(nonce="n1")
    await ws.close()
    plain = (await chat.raw_client(subprotocols=None)).ws
    assert plain.subprotocol is None
    await plain.send(JSON.dumps(to_wire(Ping(nonce="n2"))).decode())
    assert JSON.decode_outbound(await plain.recv()) == Pong(nonce="n2")
    await plain.close()


async def test_an_unknown_subprotocol_is_refused(chat: Chat) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await chat.connect("/ws/client", subprotocols=["kanava.v9.xml"])
    assert refused.value.response.status_code == 400


async def test_compression_is_not_negotiated(chat: Chat) -> None:
    """permessage-deflate costs memory per socket and leaks via compression side channels."""
    peer = await chat.raw_client(compression="deflate")
    assert peer.ws.protocol.extensions == []


# --- malformed and misplaced messages -----------------------------------------------------------


async def test_malformed_frames_get_errors_and_the_connection_stays(chat: Chat) -> None:
    client = await chat.open_client()
    cid = client.conversation_id
    text_frame = chat.codec is JSON
    cases: list[tuple[Any, str]] = [
        (b"\xff\x00 not a message" if not text_frame else "{not json", "malformed"),
        ({"type": "no.such.thing"}, "unknown_type"),
        ({"conversation_id": cid}, "missing_field"),
        ({"type": "message.send", "conversation_id": cid, "msg_id": "x"}, "missing_field"),
        (
            {"type": "message.send", "conversation_id": cid, "msg_id": 7, "text": "a"},
            "invalid_field",
        ),
        ({"type": "read.mark", "conversation_id": cid, "seq": True}, "invalid_field"),
        ({"type": "read.mark", "conversation_id": cid, "seq": -1}, "invalid_field"),
        (
            {"type": "message.send", "conversation_id": cid, "msg_id": "", "text": "a"},
            "invalid_field",
        ),
        (
            {"type": "message.send", "conversation_id": cid, "msg_id": "e", "text": ""},
            "invalid_field",
        ),
        ([1, 2, 3], "malformed"),
        ({"type": "queue.take"}, "role_forbidden"),
        ({"type": "auth", "token": "x"}, "role_forbidden"),
    ]
    for payload, code in cases:
        if isinstance(payload, (bytes, str)):
            await client.send_raw(payload)
        else:
            await client.send_wire(payload)
        err = await client.expect(Error)
        assert err.code == code, (payload, err)
        assert err.reason
    # Still connected, still chatting.
    ack = await client.say("Toimiiko tämä yhä?")
    assert ack.seq == 1


async def test_the_wrong_frame_type_for_the_codec_is_refused(chat: Chat) -> None:
    client = await chat.open_client()
    encoded = chat.codec.dumps(to_wire(Ping()))
    # msgpack expects binary frames and json text frames: send the other kind.
    wrong: bytes | str = encoded.decode("latin-1") if chat.codec.binary else encoded
    await client.send_raw(wrong)
    await client.expect_error("frame_type")
    await client.send(Ping(nonce="still-here"))
    assert (await client.expect(Pong)).nonce == "still-here"


async def test_text_longer_than_4000_characters_is_refused_and_nothing_stored(chat: Chat) -> None:
    client = await chat.open_client()
    await client.send_wire(
        {
            "type": "message.send",
            "conversation_id": client.conversation_id,
            "msg_id": "long",
            "text": "ä" * 4001,
        }
    )
    err = await client.expect_error("text_too_long")
    assert err.ref == "long"
    exactly = await client.say("ä" * 4000, msg_id="exact")
    assert exactly.seq == 1


async def test_a_frame_over_64_kib_closes_the_connection_with_1009(chat: Chat) -> None:
    client = await chat.open_client()
    big = {"type": "ping", "nonce": "n", "padding": "x" * (70 * 1024)}
    await client.send_wire(big)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await client.ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG
    # The conversation is intact and can be resumed.
    again = await chat.resume_client(client.token)
    assert (await again.expect(ConversationStateChanged)).conversation.state == "queued"


async def test_steps_in_the_wrong_order_are_refused(chat: Chat) -> None:
    client = await chat.raw_client()
    await client.send(MessageSend("c_nothing", "m1", "Hei"))
    await client.expect_error("no_conversation")
    await client.send(ConversationOpen(client_name="Matti"))
    await client.send(ConversationOpen(client_name="Matti taas"))
    await client.expect_error("already_open")
    pro = await chat.raw_pro()
    await pro.send(QueueTake())
    await pro.expect_error("auth_required")
    await pro.send(Auth(token="forged-token"))
    await pro.expect_error("auth_failed")
    await pro.send(Auth(token=await chat.login("hoitaja1")))
    await pro.expect(Welcome)


async def test_an_expired_session_is_refused(chat: Chat) -> None:
    token = "expired-session-token-for-test"
    server = chat.server

    async def expired() -> None:
        await server.storage.create_session(
            hash_token(token), "p_hoitaja1", server.hub.clock.now_ms() - 1
        )

    await server.acall(expired)
    pro = await chat.raw_pro()
    await pro.send(Auth(token=token))
    err = await pro.expect_error("session_expired")
    assert "sign in" in err.reason


async def test_wrong_password_is_refused_by_login(chat: Chat) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(chat.server.base + "/api/session") as response:
            csrf = (await response.json())["csrf"]
            headers = {"X-CSRF-Token": csrf, "Cookie": echo_cookies(response)}
        async with session.post(
            chat.server.base + "/api/login",
            json={"username": "hoitaja1", "password": "väärä"},
            headers=headers,
        ) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "auth_failed"
        async with session.post(
            chat.server.base + "/api/login", data=b"{broken", headers=headers
        ) as response:
            assert response.status == 400


async def test_a_client_cannot_touch_another_conversation(chat: Chat) -> None:
    alice = await chat.open_client("Alice")
    bob = await chat.open_client("Bob")
    await bob.send(MessageSend(alice.conversation_id, "sneak", "Hei Alice"))
    await bob.expect_error("forbidden")
    await bob.send(ConversationSync(alice.conversation_id))
    await bob.expect_error("forbidden")
    await bob.send(ConversationClose(alice.conversation_id))
    await bob.expect_error("forbidden")
    await alice.nothing_more(cls=MessageNew)
    count = await chat.server.acall(lambda: chat.server.storage.count_messages())
    assert count == 0


async def test_a_professional_cannot_act_on_a_chat_not_assigned_to_them(chat: Chat) -> None:
    client = await chat.open_client()
    owner = await chat.open_pro("hoitaja1")
    other = await chat.open_pro("hoitaja2")
    await owner.send(QueueTake(conversation_id=client.conversation_id))
    await owner.history(client.conversation_id)
    await other.send(MessageSend(client.conversation_id, "sneak", "Hei"))
    await other.expect_error("not_assigned")
    await other.send(QueueTake(conversation_id=client.conversation_id))
    await other.expect_error("invalid_state")
    await other.send(ConversationSync(client.conversation_id))
    await other.expect_error("not_assigned")
    await client.nothing_more(cls=MessageNew)


async def test_a_professional_cannot_take_from_another_teams_queue(chat: Chat) -> None:
    client = await chat.open_client(team="kallio")
    doctor = await chat.open_pro("laakari1")  # vuosaari only
    await doctor.send(QueueTake(conversation_id=client.conversation_id))
    await doctor.expect_error("forbidden")
    await doctor.send(QueueTake(team="kallio"))
    await doctor.expect_error("forbidden")


# --- rate, heartbeat, slow consumers --------------------------------------------------------


async def test_the_rate_limit_refuses_the_excess_with_a_clear_error(server_factory: Any) -> None:
    server: KanavaServer = server_factory(client_rate_per_second=2.0, client_rate_burst=4)
    chat = Chat(server)
    try:
        client = await chat.open_client()  # the open used one token
        for i in range(6):
            await client.send(MessageSend(client.conversation_id, f"r{i}", f"viesti {i}"))
        replies = [await client.expect(MessageAck | Error) for _ in range(6)]  # type: ignore[arg-type]
        acked = [r.msg_id for r in replies if isinstance(r, MessageAck)]
        refused = [r for r in replies if isinstance(r, Error)]
        assert acked == ["r0", "r1", "r2"]
        assert [r.ref for r in refused] == ["r3", "r4", "r5"]
        assert all(r.code == "rate_limited" and r.retry_after_ms for r in refused)
        await asyncio.sleep(max(r.retry_after_ms or 0 for r in refused) / 1000 + 0.1)
        # The refused messages were not stored; sent again, they are.
        again = await client.say("viesti 3", msg_id="r3")
        assert (again.seq, again.duplicate) == (4, False)
    finally:
        await chat.close_all()


async def _raw_websocket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that completes the handshake and then never answers anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ws/client HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    status = await reader.readline()
    assert b"101" in status
    return reader, writer


async def test_heartbeat_drops_a_peer_that_stopped_answering(server_factory: Any) -> None:
    server: KanavaServer = server_factory(heartbeat_seconds=0.3)
    reader, writer = await _raw_websocket(server.port)
    chat = Chat(server)
    live = await chat.open_client()
    try:
        # The silent peer is disconnected: reading ends at EOF within a few heartbeats.
        async def until_eof() -> None:
            while await reader.read(4096):
                pass

        await asyncio.wait_for(until_eof(), timeout=3)
        # A peer that answers pings (websockets does) stays connected.
        assert (await live.say("yhä yhteydessä")).seq == 1
    finally:
        writer.close()
        await chat.close_all()


async def test_a_client_that_stops_reading_is_cut_off_without_slowing_others(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(
        send_buffer_bytes=64 * 1024, pro_rate_burst=100_000, pro_rate_per_second=100_000.0
    )
    chat = Chat(server, MSGPACK)
    try:
        # The slow client: a tiny receive buffer, and it never calls recv().
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        slow = await chat.raw_client(sock=sock, max_queue=1)
        slow_ws = slow.ws
        await slow.send(ConversationOpen(client_name="Hidas"))
        opened = await slow.expect(ConversationOpened)
        slow_id = opened.conversation.conversation_id
        quick = await chat.open_client("Nopea")
        pro = await chat.open_pro("hoitaja1")
        await pro.send(QueueTake(conversation_id=slow_id))
        await pro.send(QueueTake(conversation_id=quick.conversation_id))
        await pro.history(slow_id)
        await pro.history(quick.conversation_id)
        # Flood the slow client's conversation; it reads nothing.
        chunk = "x" * 4000
        total = 2000  # 8 MB: more than the kernel buffers on both sides hold
        acks: list[MessageAck] = []
        for window in range(total // 20):
            for i in range(window * 20, window * 20 + 20):
                await pro.send(MessageSend(slow_id, f"f{i}", chunk))
            acks += [await pro.expect(MessageAck, timeout=20) for _ in range(20)]
        assert len({a.seq for a in acks}) == total  # every message stored
        # The other client is served at once.
        loop = asyncio.get_running_loop()
        started = loop.time()
        await pro.say(quick.conversation_id, "Sinulle vastataan heti")
        got = await quick.expect(MessageNew)
        assert got.message.text == "Sinulle vastataan heti"
        assert loop.time() - started < 1.0
        # The slow one was disconnected with the slow-consumer code ...
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await slow_ws.recv()
        assert closed.value.rcvd is None or closed.value.rcvd.code == CloseCode.SLOW_CONSUMER
        # ... and on resuming gets every message it missed, once.
        again = await chat.resume_client(opened.token, last_seq=0)
        seqs: list[int] = []
        while True:
            page = await again.expect(MessageHistory, timeout=10)
            seqs.extend(m.seq for m in page.messages)
            if page.up_to_date:
                break
        assert seqs == list(range(1, total + 1))
    finally:
        await chat.close_all()


async def test_by_default_only_the_servers_own_origin_may_connect(server_factory: Any) -> None:
    server: KanavaServer = server_factory(allowed_origins=())
    chat = Chat(server)
    try:
        for own in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"):
            await chat.raw_client(origin=own)
        with pytest.raises(websockets.InvalidStatus) as refused:
            await chat.connect("/ws/client", origin=f"http://127.0.0.1:{server.port + 1}")
        assert refused.value.response.status_code == 403
    finally:
        await chat.close_all()


async def test_a_peer_flooding_itself_with_unread_replies_gets_the_slow_consumer_code(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(send_buffer_bytes=16 * 1024, client_rate_burst=100_000)
    chat = Chat(server)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        peer = await chat.raw_client(sock=sock, max_queue=1)
        await peer.send(ConversationOpen(client_name="Itseään tukkiva"))
        opened = await peer.expect(ConversationOpened)
        cid = opened.conversation.conversation_id
        for i in range(30):
            await peer.send(MessageSend(cid, f"long{i}", "x" * 4000))
        # Ask for the 120 kB history again and again without reading any of it.
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(200):
                await peer.send(ConversationSync(cid))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await peer.ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CloseCode.SLOW_CONSUMER
    finally:
        await chat.close_all()


# --- bidirectional text ------------------------------------------------------------------------


async def test_bidirectional_text_controls_never_reach_the_other_party_or_storage(
    chat: Chat,
) -> None:
    """A client hides a right-to-left override in a message: the nurse reads (and the
    database keeps) the text as it is written, without the control."""
    client, nurse = await chat.open_chat_with("hoitaja1", "Aino\u202e Aalto")
    await client.say("Otin \u202e05\u202c tablettia, soita \u2067211\u2069\u200f")
    new = await nurse.expect(MessageNew)
    assert new.message.text == "Otin 05 tablettia, soita 211"
    await nurse.say(client.conversation_id, "Selvä\u061c, soitan.")
    new = await client.expect(MessageNew)
    assert new.message.text == "Selvä, soitan."
    await client.send(MessageSend(client.conversation_id, "only", "\u202e\u202c"))
    await client.expect_error("invalid_field")

    db = sqlite3.connect(chat.server.database)
    stored = " ".join(
        text
        for (text,) in db.execute(
            "SELECT text FROM messages "
            "UNION ALL SELECT COALESCE(client_name, '') FROM conversations"
        )
    )
    db.close()
    assert "Aino Aalto" in stored
    assert not set(
        "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    ) & set(stored)
