"""Hostile input against a live server: random frames never break the connection handler nor
touch another conversation, and thousands of half-open connections do not stop the service."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kanava_testing import Chat, KanavaServer

from protocol import JSON, MSGPACK, Codec
from protocol.messages import (
    INBOUND,
    ConversationClose,
    ConversationStateChanged,
    MessageNew,
    Ping,
    Pong,
)

FIELDS = sorted({n for cls in INBOUND.values() for n in cls.__dataclass_fields__} - {"type"})
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)
OBJECTS = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(INBOUND)) | st.text(max_size=12)},
    optional={name: VALUES for name in FIELDS},
)
FRAMES = st.lists(
    st.one_of(
        OBJECTS.map(lambda o: ("json", o)),
        OBJECTS.map(lambda o: ("msgpack", o)),
        st.binary(max_size=200).map(lambda b: ("bytes", b)),
        st.text(max_size=200).map(lambda t: ("text", t)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: Any) -> Iterator[KanavaServer]:
    path: Path = tmp_path_factory.mktemp("hostile") / "kanava.sqlite3"
    server = KanavaServer(path, client_rate_burst=10_000, pro_rate_burst=10_000).start()
    yield server
    server.stop()


def _encode(kind: str, value: Any) -> bytes | str | None:
    try:
        if kind == "json":
            return orjson.dumps(value).decode()
        if kind == "msgpack":
            return bytes(msgpack.packb(value))
    except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError):
        return None
    return value  # type: ignore[no-any-return]


async def _attack(server: KanavaServer, codec: Codec, frames: list[tuple[str, Any]]) -> None:
    chat = Chat(server, codec)
    try:
        bystander, nurse = await chat.open_chat_with("hoitaja1", "Sivullinen")
        before = await server.acall(
            lambda: server.storage.count_messages(bystander.conversation_id)
        )
        attacker = await chat.open_client("Hyökkääjä")
        pro_attacker = await chat.open_pro("hoitaja2")
        for peer in (attacker, pro_attacker):
            for kind, value in frames:
                data = _encode(kind, value)
                if data is not None:
                    await peer.send_raw(data)
            # The handler is alive: it still answers.
            await peer.send(Ping(nonce="still-there"))
            await peer.expect(Pong, lambda p: p.nonce == "still-there")
        # Nothing reached the bystanders, nothing was stored in their conversation.
        await bystander.nothing_more(0.1, MessageNew)
        await nurse.nothing_more(0.1, MessageNew)
        after = await server.acall(lambda: server.storage.count_messages(bystander.conversation_id))
        assert after == before
        # Free the nurse's slot (and end the attacker's chat) for the next example.
        for peer, cid in (
            (nurse, bystander.conversation_id),
            (attacker, attacker.conversation_id),
        ):
            await peer.send(ConversationClose(cid, "test over"))
        await bystander.expect(ConversationStateChanged, lambda m: m.conversation.state == "closed")
    finally:
        await chat.close_all()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=FRAMES, codec=st.sampled_from([JSON, MSGPACK]))
def test_random_frames_never_break_the_handler_or_touch_another_chat(
    shared: KanavaServer, frames: list[tuple[str, Any]], codec: Codec
) -> None:
    asyncio.run(_attack(shared, codec, frames))


async def test_thousands_of_half_open_connections_do_not_stop_the_service(
    server: KanavaServer,
) -> None:
    """2,000 connections that began an upgrade and went silent; a real chat still works."""
    loop = asyncio.get_running_loop()
    stalled: list[socket.socket] = []
    try:
        for _ in range(2000):
            sock = socket.socket()
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, ("127.0.0.1", server.port))
            except OSError:
                sock.close()
                break
            await loop.sock_sendall(sock, b"GET /ws/client HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            stalled.append(sock)
        assert len(stalled) == 2000
        chat = Chat(server)
        try:
            client, nurse = await chat.open_chat_with("hoitaja1", "Aino")
            await client.say("Kuuluuko?")
            got = await nurse.expect(MessageNew)
            assert got.message.text == "Kuuluuko?"
        finally:
            await chat.close_all()
    finally:
        for sock in stalled:
            sock.close()
