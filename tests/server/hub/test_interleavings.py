"""Random interleavings of clients and professionals never mix or lose a message.

Hypothesis draws a sequence of steps — clients and professionals sending without waiting,
taking chats, transferring them, dropping their connections and resuming — and fires them at
one real server over real websockets. Every message's text names its conversation. Each
receiving connection checks, as frames arrive, that:

- a client receives only its own conversation's messages;
- a professional receives a conversation's messages only while their own stream says it is
  assigned to them (between the event that gives it to them and the one that takes it away);
- no connection receives a seq twice or out of order within one assignment.

At the end (after every send was acknowledged or refused) the storage and the receivers are
compared: every acknowledged message is stored exactly once, with the acknowledged seq, in its
own conversation, with gap-free seqs; a refused one is not stored; and every stored message
reached the client and the professional who holds the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kanava_testing import PASSWORD, KanavaServer, login_token

from protocol import JSON, MSGPACK, Codec, Message, to_wire
from protocol.messages import (
    Auth,
    ChatMessage,
    ConversationClose,
    ConversationOpen,
    ConversationOpened,
    ConversationResume,
    ConversationStateChanged,
    ConversationTransfer,
    Error,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    QueueTake,
    Welcome,
)

TEAMS = {"kallio": ("hoitaja1", "hoitaja2"), "vuosaari": ("hoitaja2", "laakari1")}
N_CLIENTS = 3


@dataclass
class Side:
    """One party (a client or a professional) across its connections."""

    name: str
    codec: Codec
    ws: Any = None
    reader: asyncio.Task[None] | None = None
    # msg_id -> conversation of every send still waiting for its answer
    outstanding: dict[str, str] = field(default_factory=dict)
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # msg_id -> (cid, seq)
    refused: dict[str, str] = field(default_factory=dict)  # msg_id -> code
    texts: dict[str, str] = field(default_factory=dict)  # msg_id -> text
    # seqs received per conversation (all connections), for the "nothing lost" check
    seen: dict[str, set[int]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    # per connection: conversation -> last seq delivered in the current assignment
    delivered: dict[str, int] = field(default_factory=dict)
    mine: set[str] = field(default_factory=set)  # professionals: assigned per own stream
    cid: str | None = None  # clients: their conversation
    token: str | None = None
    pro_id: str | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, msg: Message) -> None:
        raw = self.codec.dumps(to_wire(msg))
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.send(raw if self.codec.binary else raw.decode())

    def check_chat(self, m: ChatMessage, via: str) -> None:
        cid = m.conversation_id
        if not m.text.startswith(cid + "|"):
            self.violations.append(f"{self.name}: text of another conversation in {cid}: {m}")
        if self.cid is not None and cid != self.cid:
            self.violations.append(f"{self.name}: got {cid}, not its own, via {via}")
        if self.pro_id is not None and cid not in self.mine:
            self.violations.append(f"{self.name}: got {cid} while not assigned, via {via}")
        last = self.delivered.get(cid, 0)
        if m.seq <= last:
            self.violations.append(f"{self.name}: seq {m.seq} after {last} in {cid} via {via}")
        self.delivered[cid] = m.seq
        self.seen.setdefault(cid, set()).add(m.seq)

    def handle(self, msg: Message) -> None:
        if isinstance(msg, MessageNew):
            self.check_chat(msg.message, "message.new")
        elif isinstance(msg, MessageHistory):
            for m in msg.messages:
                self.check_chat(m, "message.history")
        elif isinstance(msg, MessageAck):
            cid = self.outstanding.pop(msg.msg_id, None)
            if cid is None and msg.msg_id not in self.acked:
                self.violations.append(f"{self.name}: ack for unknown {msg.msg_id}")
            self.acked[msg.msg_id] = (msg.conversation_id, msg.seq)
            self.seen.setdefault(msg.conversation_id, set()).add(msg.seq)
        elif isinstance(msg, Error):
            if msg.ref in self.outstanding:
                self.outstanding.pop(msg.ref)
                self.refused[msg.ref] = msg.code
        elif isinstance(msg, ConversationOpened):
            self.cid = msg.conversation.conversation_id
            self.token = msg.token
        elif isinstance(msg, Welcome):
            self.pro_id = msg.professional.id
            self.mine = {v.conversation_id for v in msg.conversations}
        elif isinstance(msg, ConversationStateChanged) and self.pro_id is not None:
            view = msg.conversation
            cid = view.conversation_id
            assigned = view.professional is not None and view.professional.id == self.pro_id
            if assigned and view.state == "assigned":
                if cid not in self.mine:
                    self.mine.add(cid)
                    self.delivered.pop(cid, None)  # a new assignment starts from its history
            elif view.state != "closed":
                self.mine.discard(cid)
                self.delivered.pop(cid, None)

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                msg = self.codec.decode_outbound(raw, binary=isinstance(raw, bytes))
                self.handle(msg)
                if isinstance(msg, (ConversationOpened, Welcome)):
                    self.connected.set()
                elif isinstance(msg, ConversationStateChanged) and self.cid is not None:
                    self.connected.set()
        except websockets.ConnectionClosed:
            pass


class Scenario:
    def __init__(self, server: KanavaServer, codec: Codec, tokens: dict[str, str]) -> None:
        self.server = server
        self.codec = codec
        self.tokens = tokens
        self.ids = itertools.count(1)

    async def connect(self, side: Side, path: str, first: Message) -> None:
        side.ws = await websockets.connect(
            self.server.ws_base + path, subprotocols=[self.codec.subprotocol], max_queue=None
        )
        side.delivered = {}
        side.connected = asyncio.Event()
        side.reader = asyncio.create_task(side.read())
        await side.send(first)
        await asyncio.wait_for(side.connected.wait(), 5)
        # Sends left unanswered by the previous connection are retried with the same id.
        for msg_id, cid in list(side.outstanding.items()):
            await side.send(MessageSend(cid, msg_id, side.texts[msg_id]))

    async def disconnect(self, side: Side) -> None:
        await side.ws.close()
        assert side.reader is not None
        await side.reader

    async def reconnect_client(self, side: Side) -> None:
        await self.disconnect(side)
        assert side.cid is not None and side.token is not None
        last = 0
        while last + 1 in side.seen.get(side.cid, set()):
            last += 1
        await self.connect(side, "/ws/client", ConversationResume(side.token, last))

    async def reconnect_pro(self, side: Side) -> None:
        await self.disconnect(side)
        cursors = {cid: side.delivered.get(cid, 0) for cid in side.mine}
        side.mine = set()
        await self.connect(side, "/ws/pro", Auth(self.tokens[side.name], cursors=cursors))

    async def say(self, side: Side, cid: str) -> None:
        msg_id = f"{side.name}-{next(self.ids)}"
        text = f"{cid}|{side.name}|{msg_id}"
        side.outstanding[msg_id] = cid
        side.texts[msg_id] = text
        await side.send(MessageSend(cid, msg_id, text))

    async def run(self, team: str, steps: list[tuple[str, int, int]]) -> list[str]:
        clients = [Side(f"c{i}", self.codec) for i in range(N_CLIENTS)]
        pros = [Side(name, self.codec) for name in TEAMS[team]]
        for c in clients:
            await self.connect(c, "/ws/client", ConversationOpen(client_name=c.name, team=team))
        for p in pros:
            await self.connect(p, "/ws/pro", Auth(self.tokens[p.name]))
        try:
            for action, who, arg in steps:
                await self.step(action, who, arg, clients, pros)
            return await self.settle_and_check(clients, pros)
        finally:
            await self.cleanup(clients, pros)

    async def step(
        self, action: str, who: int, arg: int, clients: list[Side], pros: list[Side]
    ) -> None:
        client, pro = clients[who % len(clients)], pros[who % len(pros)]
        if action == "client_says":
            assert client.cid is not None
            await self.say(client, client.cid)
        elif action == "pro_says" and pro.mine:
            await self.say(pro, sorted(pro.mine)[arg % len(pro.mine)])
        elif action == "take":
            await pro.send(QueueTake())
        elif action == "transfer" and pro.mine:
            other = pros[(who + 1) % len(pros)]
            if other.pro_id is not None:
                cid = sorted(pro.mine)[arg % len(pro.mine)]
                await pro.send(ConversationTransfer(cid, other.pro_id))
        elif action == "client_reconnects":
            await self.reconnect_client(client)
        elif action == "pro_reconnects":
            await self.reconnect_pro(pro)
        elif action == "pause":
            await asyncio.sleep(0.002 * arg)

    async def settle(self, sides: list[Side]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while any(s.outstanding for s in sides) and loop.time() < deadline:
            await asyncio.sleep(0.01)

    async def settle_and_check(self, clients: list[Side], pros: list[Side]) -> list[str]:
        sides = clients + pros
        await self.settle(sides)
        problems = [v for s in sides for v in s.violations]
        for s in sides:
            if s.outstanding:
                problems.append(f"{s.name}: no answer to {sorted(s.outstanding)}")
        stored: dict[str, list[ChatMessage]] = {}
        for c in clients:
            assert c.cid is not None
            cid = c.cid
            stored[cid] = await self.server.acall(
                lambda cid=cid: self.server.storage.history(cid, 0, 100_000)  # type: ignore[misc]
            )
            seqs = [m.seq for m in stored[cid]]
            if seqs != list(range(1, len(seqs) + 1)):
                problems.append(f"{cid}: stored seqs are not gap-free: {seqs}")
            for m in stored[cid]:
                if not m.text.startswith(cid + "|"):
                    problems.append(f"{cid}: stores a message of another conversation: {m}")
        by_id = {(m.conversation_id, m.text.split("|")[2]): m for ms in stored.values() for m in ms}
        counts: dict[str, int] = {}
        for ms in stored.values():
            for m in ms:
                counts[m.text] = counts.get(m.text, 0) + 1
        problems += [f"stored {n} times: {t}" for t, n in counts.items() if n > 1]
        for s in sides:
            for msg_id, (cid, seq) in s.acked.items():
                m = by_id.get((cid, msg_id))
                if m is None or m.seq != seq:
                    problems.append(f"{s.name}: acked {msg_id} as {cid}#{seq}, stored {m}")
            for msg_id in s.refused:
                if any(key[1] == msg_id for key in by_id):
                    problems.append(f"{s.name}: refused {msg_id} was stored anyway")
        # Nothing lost: give deliveries a moment, then every stored message has reached the
        # client and the professional holding the chat.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            missing = []
            for c in clients:
                assert c.cid is not None
                want = {m.seq for m in stored[c.cid]}
                for side in (c, *(p for p in pros if c.cid in p.mine)):
                    if lost := want - side.seen.get(c.cid, set()):
                        missing.append(f"{side.name} misses {sorted(lost)} of {c.name}")
            if not missing or loop.time() > deadline:
                break
            await asyncio.sleep(0.02)
        return problems + missing

    async def cleanup(self, clients: list[Side], pros: list[Side]) -> None:
        for c in clients:
            if c.cid is not None:
                await c.send(ConversationClose(c.cid, reason="test over"))
        hub = self.server.hub
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while any(hub.conversation(c.cid) for c in clients) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for s in clients + pros:
            if s.ws is not None:
                await self.disconnect(s)


STEP = st.tuples(
    st.sampled_from(
        [
            "client_says",
            "client_says",
            "pro_says",
            "pro_says",
            "take",
            "transfer",
            "client_reconnects",
            "pro_reconnects",
            "pause",
        ]
    ),
    st.integers(0, 5),
    st.integers(0, 5),
)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path: Path = tmp_path_factory.mktemp("interleavings") / "kanava.sqlite3"
    server = KanavaServer(
        path, client_rate_burst=100_000, pro_rate_burst=100_000, grace_seconds=300.0
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tokens(shared_server: KanavaServer) -> dict[str, str]:
    async def login_all() -> dict[str, str]:
        return {
            name: await login_token(shared_server.base, name, PASSWORD)
            for name in ("hoitaja1", "hoitaja2", "laakari1")
        }

    return asyncio.run(login_all())


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    team=st.sampled_from(sorted(TEAMS)),
    codec=st.sampled_from([JSON, MSGPACK]),
    steps=st.lists(STEP, min_size=1, max_size=30),
)
def test_random_interleavings_never_mix_or_lose_messages(
    shared_server: KanavaServer,
    tokens: dict[str, str],
    team: str,
    codec: Codec,
    steps: list[tuple[str, int, int]],
) -> None:
    """Every delivered message belongs to the receiver's conversation; none is lost."""
    problems = asyncio.run(Scenario(shared_server, codec, tokens).run(team, steps))
    assert problems == []
