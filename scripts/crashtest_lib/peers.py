"""Simulated clients and professionals that survive crashes the way the protocol says.

Each peer keeps what docs/protocol.md section 13 asks a client to keep: the messages it has
of each conversation, by ``seq``, and an outbox of sent messages not yet acknowledged. Its
connection loop never gives up: when the connection ends (a killed server, a cut network) it
reconnects with a growing, randomised delay, resumes (``conversation.resume`` with its token,
or ``auth`` with ``cursors``), reads until it is caught up, and then sends every message of
the outbox again, with the same ``msg_id``. A client that has not yet seen
``conversation.opened`` sends ``conversation.open`` again with the same ``open_id``.

The cursor a peer resumes from is the highest ``seq`` below which it has *every* message (the
contiguous prefix of what it has), not the highest ``seq`` it has: the two differ only when
something is missing, and then the prefix gets it back. How often they differed at a resume
is counted (``resume_cursor_gaps``): each such resume would have lost messages for a client
that resumed from the highest ``seq`` it had.

Every observation is checked as it arrives and counted in the shared :class:`Ledger`:
an acknowledgement that contradicts an earlier one, a message delivered under a conversation
its text does not name, two different messages seen at the same ``seq``, a connection that
delivers a conversation's messages out of ``seq`` order.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = ["ClientPeer", "Ledger", "PeerConfig", "ProPeer", "Send", "parse_text"]

SUBPROTOCOL = "kanava.v1.json"
BACKOFF_MIN = 0.05
BACKOFF_MAX = 0.5
CATCH_UP_TIMEOUT = 20.0
EXAMPLES = 5

_TEXT = re.compile(r"conversation=(\S+) msg=(\S+)")


def parse_text(text: str) -> tuple[str, str] | None:
    """The conversation and ``msg_id`` a crash-test message names in its text."""
    found = _TEXT.search(text)
    return (found.group(1), found.group(2)) if found else None


@dataclass(slots=True)
class Send:
    """One chat message a peer decided to send, with everything that happened to it."""

    msg_id: str
    conversation_id: str
    sender: str
    role: str
    text: str
    attempts: int = 0
    acked_seq: int | None = None
    duplicate_ack: bool = False
    refused: str | None = None
    # Connections that ended while it waited for its ack (then it was sent again).
    interrupted: int = 0
    last_session: int = -1
    last_sent: float = 0.0  # time.monotonic() of the latest transmission


@dataclass
class Ledger:
    """Everything every peer sent and every anomaly any peer saw."""

    sends: dict[str, Send] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    in_flight: int = 0  # sends neither acknowledged nor refused yet
    # Seconds from a message's (last) transmission to its acknowledgement.
    ack_waits: list[float] = field(default_factory=list)

    def note(self, kind: str, example: str) -> None:
        self.stats[kind] += 1
        if len(self.examples[kind]) < EXAMPLES:
            self.examples[kind].append(example)

    def pending(self) -> int:
        return self.in_flight


@dataclass(frozen=True)
class PeerConfig:
    ws_base: str  # the address peers connect to (the server, or the proxy in front of it)
    http_base: str  # the server itself, for the professionals' one sign-in
    team: str
    password: str
    client_think: tuple[float, float] = (0.15, 0.5)
    pro_think: tuple[float, float] = (0.04, 0.15)
    client_window: int = 3
    pro_window: int = 8
    # The share of clients whose first conversation.open loses its connection at once.
    open_drop: float = 0.5


class _Reconnect(Exception):
    """End this connection and resume on a new one."""


class PeerFailed(Exception):
    """The peer cannot go on (its token or session was refused)."""


_CONNECTION_TROUBLE = (
    OSError,
    ConnectionClosed,
    InvalidHandshake,
    asyncio.TimeoutError,
    EOFError,
    aiohttp.ClientError,
)


class Peer:
    path = ""
    role = ""

    def __init__(self, name: str, ledger: Ledger, cfg: PeerConfig, rng: random.Random) -> None:
        self.name = name
        self.ledger = ledger
        self.cfg = cfg
        self.rng = rng
        self.outbox: dict[str, Send] = {}
        self.seen: dict[str, dict[int, str]] = defaultdict(dict)
        self._prefix: dict[str, int] = {}
        self.sending = True
        self.final_requested = asyncio.Event()
        self.finished = False
        self.failed: str | None = None
        self.counter = 0
        self.sessions = 0
        self.caught_up = asyncio.Event()
        # Per connection: the highest seq of each conversation delivered on it so far.
        self.conn_last: dict[str, int] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()

    # --- what subclasses provide ----------------------------------------------------------

    async def before_connect(self) -> None:
        pass

    async def handshake(self, ws: ClientConnection) -> None:
        raise NotImplementedError

    async def handle(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def pick_conversation(self) -> str | None:
        raise NotImplementedError

    def think(self) -> float:
        raise NotImplementedError

    @property
    def window(self) -> int:
        raise NotImplementedError

    def on_caught_up(self, final: bool) -> None:
        pass

    # --- the connection loop --------------------------------------------------------------

    async def run(self, start_delay: float = 0.0) -> None:
        await asyncio.sleep(start_delay)
        backoff = BACKOFF_MIN
        while not self.finished:
            final = self.final_requested.is_set()
            try:
                await self.before_connect()
                async with connect(
                    self.cfg.ws_base + self.path,
                    subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                    max_size=2**22,
                    compression=None,
                    open_timeout=5,
                    close_timeout=1,
                ) as ws:
                    self.sessions += 1
                    if await self._session(ws, final):
                        backoff = BACKOFF_MIN
                        if final:
                            self.finished = True
                            return
            except PeerFailed as failure:
                self.failed = str(failure)
                self.ledger.note("peer_failures", f"{self.name}: {failure}")
                self.finished = True
                return
            except _Reconnect:
                backoff = BACKOFF_MIN
            except _CONNECTION_TROUBLE:
                self.ledger.stats["connection_failures"] += 1
            except Exception as exc:  # noqa: BLE001 - counted, then the peer goes on
                self.ledger.note("unexpected_exceptions", f"{self.name}: {exc!r}")
            finally:
                self._connection_ended()
            await asyncio.sleep(backoff * self.rng.uniform(0.5, 1.5))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _connection_ended(self) -> None:
        for task in list(self._side_tasks):
            task.cancel()
        for send in self.outbox.values():
            if send.last_session == self.sessions:
                send.interrupted += 1

    async def _session(self, ws: ClientConnection, final: bool) -> bool:
        """One connection: resume, catch up, resend the outbox, then chat until it ends.

        Returns True when the connection ended because the run asked for the final resume
        (or, in the final resume, when everything has been read).
        """
        self.caught_up = asyncio.Event()
        self.conn_last = {}
        reader = asyncio.create_task(self._reader(ws))
        tasks: list[asyncio.Task[Any]] = [reader]
        try:
            await self.handshake(ws)
            caught_up = asyncio.create_task(self.caught_up.wait())
            tasks.append(caught_up)
            done, _ = await asyncio.wait(
                {reader, caught_up}, timeout=CATCH_UP_TIMEOUT, return_when="FIRST_COMPLETED"
            )
            if reader in done:
                reader.result()  # raises what ended the connection
                return False
            if not done:
                self.ledger.note("stalled_resumes", f"{self.name}: not caught up in time")
                return False
            self.on_caught_up(final)
            for send in list(self.outbox.values()):
                await self._transmit(ws, send)
            if final:
                deadline = time.monotonic() + CATCH_UP_TIMEOUT
                while self.outbox and not reader.done() and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                if reader.done():
                    reader.result()
                    return False
                self.on_caught_up(final)
                return True
            writer = asyncio.create_task(self._writer(ws))
            stop = asyncio.create_task(self.final_requested.wait())
            tasks += [writer, stop]
            done, _ = await asyncio.wait({reader, writer, stop}, return_when="FIRST_COMPLETED")
            for task in (reader, writer):
                if task in done:
                    task.result()
            return stop in done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _reader(self, ws: ClientConnection) -> None:
        async for raw in ws:
            try:
                msg = json.loads(raw)
            except ValueError:
                self.ledger.note("invalid_frames", f"{self.name}: {raw[:80]!r}")
                continue
            await self.handle(ws, msg)

    async def _writer(self, ws: ClientConnection) -> None:
        while True:
            if self.sending and len(self.outbox) < self.window:
                conversation_id = self.pick_conversation()
                if conversation_id is not None:
                    await self._transmit(ws, self._new_send(conversation_id))
            await asyncio.sleep(self.think())

    # --- sending --------------------------------------------------------------------------

    def _new_send(self, conversation_id: str) -> Send:
        self.counter += 1
        msg_id = f"{self.name}-{self.counter:06d}"
        text = f"crashtest conversation={conversation_id} msg={msg_id} from={self.name}"
        send = Send(msg_id, conversation_id, self.name, self.role, text)
        self.ledger.sends[msg_id] = send
        self.ledger.in_flight += 1
        self.outbox[msg_id] = send
        return send

    async def _transmit(self, ws: ClientConnection, send: Send) -> None:
        send.attempts += 1
        send.last_session = self.sessions
        send.last_sent = time.monotonic()
        if send.attempts > 1:
            self.ledger.stats["retransmissions"] += 1
        frame = {
            "type": "message.send",
            "conversation_id": send.conversation_id,
            "msg_id": send.msg_id,
            "text": send.text,
        }
        await ws.send(json.dumps(frame))

    def _later(self, delay: float, ws: ClientConnection, send: Send) -> None:
        async def again() -> None:
            await asyncio.sleep(delay)
            if send.msg_id in self.outbox:
                await self._transmit(ws, send)

        task = asyncio.create_task(again())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # --- receiving ------------------------------------------------------------------------

    def prefix(self, conversation_id: str) -> int:
        """The highest seq below which this peer has every message of the conversation."""
        have = self.seen.get(conversation_id, {})
        top = self._prefix.get(conversation_id, 0)
        while top + 1 in have:
            top += 1
        self._prefix[conversation_id] = top
        return top

    def resume_cursor(self, conversation_id: str) -> int:
        cursor = self.prefix(conversation_id)
        have = self.seen.get(conversation_id, {})
        if have and max(have) > cursor:
            missing = sum(1 for s in range(cursor + 1, max(have)) if s not in have)
            self.ledger.stats["resume_cursor_gaps"] += 1
            self.ledger.stats["resume_cursor_gap_messages"] += missing
        return cursor

    def _saw(self, conversation_id: str, seq: int, msg_id: str) -> None:
        have = self.seen[conversation_id]
        before = have.get(seq)
        if before is not None and before != msg_id:
            self.ledger.note(
                "view_conflicts",
                f"{self.name}: {conversation_id} seq {seq} was {before}, now {msg_id}",
            )
        have[seq] = msg_id

    def _deliver(self, m: dict[str, Any], how: str) -> None:
        cid, seq, msg_id = m["conversation_id"], m["seq"], m["msg_id"]
        named = parse_text(m["text"])
        if named is None or named[0] != cid or named[1] != msg_id:
            self.ledger.note(
                "misplaced_deliveries", f"{self.name}: {how} in {cid} seq {seq}: {m['text']!r}"
            )
        last = self.conn_last.get(cid)
        if last is not None and seq <= last:
            self.ledger.note(
                "order_violations", f"{self.name}: {how} {cid} seq {seq} after seq {last}"
            )
        self.conn_last[cid] = max(seq, last or 0)
        self.ledger.stats["deliveries"] += 1
        self._saw(cid, seq, msg_id)

    def _deliver_all(self, messages: Iterable[dict[str, Any]], how: str) -> None:
        for m in messages:
            self._deliver(m, how)

    def _acked(self, msg: dict[str, Any]) -> None:
        msg_id, seq = msg["msg_id"], msg["seq"]
        send = self.outbox.pop(msg_id, None)
        if send is None:
            known = self.ledger.sends.get(msg_id)
            if known is None:
                self.ledger.note("unknown_acks", f"{self.name}: {msg}")
            elif known.acked_seq is not None and known.acked_seq != seq:
                self.ledger.note(
                    "ack_conflicts", f"{self.name}: {msg_id} acked as {known.acked_seq}, now {seq}"
                )
            return
        self.ledger.in_flight -= 1
        self.ledger.ack_waits.append(time.monotonic() - send.last_sent)
        if msg["conversation_id"] != send.conversation_id:
            self.ledger.note("misplaced_acks", f"{self.name}: {msg_id} acked in {msg}")
        send.acked_seq = seq
        send.duplicate_ack = bool(msg.get("duplicate"))
        if send.duplicate_ack:
            self.ledger.stats["duplicate_acks"] += 1
            if send.attempts == 1:
                self.ledger.note("duplicate_ack_on_first_attempt", f"{self.name}: {msg_id}")
        self._saw(send.conversation_id, seq, msg_id)

    async def _error(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        code, ref = msg.get("code"), msg.get("ref")
        send = self.outbox.get(ref) if isinstance(ref, str) else None
        if send is not None and code == "rate_limited":
            self.ledger.stats["rate_limited"] += 1
            self._later(msg.get("retry_after_ms", 200) / 1000, ws, send)
        elif send is not None and code == "internal":
            self.ledger.note("internal_errors", f"{self.name}: {msg}")
            self._later(0.2, ws, send)
        elif send is not None:
            # Refused for good (not_assigned, conversation_closed, …): nothing was stored.
            send.refused = str(code)
            del self.outbox[send.msg_id]
            self.ledger.in_flight -= 1
            self.ledger.note("refused_sends", f"{self.name}: {send.msg_id}: {msg}")
        else:
            self.ledger.note(f"error_{code}", f"{self.name}: {msg}")


class ClientPeer(Peer):
    """A citizen with one conversation, opened with ``conversation.open`` and an ``open_id``."""

    path = "/ws/client"
    role = "client"

    def __init__(self, name: str, ledger: Ledger, cfg: PeerConfig, rng: random.Random) -> None:
        super().__init__(name, ledger, cfg, rng)
        self.open_id = uuid.UUID(int=rng.getrandbits(128)).hex
        self.conversation_id: str | None = None
        self.token: str | None = None
        self.state: str | None = None
        self.opened = 0
        self.opens_sent = 0

    async def handshake(self, ws: ClientConnection) -> None:
        frame: dict[str, Any]
        if self.token is None:
            frame = {
                "type": "conversation.open",
                "client_name": self.name,
                "topic": "crash test",
                "language": "en",
                "team": self.cfg.team,
                "open_id": self.open_id,
            }
            if self.opens_sent == 0 and self.rng.random() < self.cfg.open_drop:
                # The first open is sent and the connection dropped at once, before (or just
                # as) conversation.opened comes: the retry must not open a second chat.
                self.opens_sent += 1
                await ws.send(json.dumps(frame))
                await asyncio.sleep(self.rng.uniform(0, 0.01))
                ws.transport.abort()
                self.ledger.stats["opens_dropped"] += 1
                raise _Reconnect
            self.opens_sent += 1
        else:
            assert self.conversation_id is not None
            cursor = self.resume_cursor(self.conversation_id)
            self.conn_last[self.conversation_id] = cursor
            frame = {"type": "conversation.resume", "token": self.token, "last_seq": cursor}
        await ws.send(json.dumps(frame))

    async def handle(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "message.new":
            self._deliver(msg["message"], "new")
            self._check_own(msg["message"]["conversation_id"])
        elif kind == "message.ack":
            self._acked(msg)
        elif kind == "message.history":
            self._check_own(msg["conversation_id"])
            self._deliver_all(msg["messages"], "history")
            if msg.get("up_to_date"):
                self.caught_up.set()
        elif kind == "conversation.state":
            self.state = msg["conversation"]["state"]
        elif kind == "conversation.opened":
            view = msg["conversation"]
            cid = view["conversation_id"]
            if self.conversation_id is not None and cid != self.conversation_id:
                self.ledger.note(
                    "duplicate_conversations",
                    f"{self.name}: open_id {self.open_id} gave {self.conversation_id}, now {cid}",
                )
            self.opened += 1
            if self.opened > 1:
                self.ledger.stats["open_retries_answered"] += 1
            self.conversation_id, self.token, self.state = cid, msg["token"], view["state"]
            self.conn_last[cid] = 0
            if view.get("last_seq", 0) > self.prefix(cid):
                # A retried open returns the conversation without its history: resume.
                self.ledger.stats["reopened_with_messages"] += 1
                raise _Reconnect
            self.caught_up.set()
        elif kind == "error":
            if msg.get("code") in ("invalid_token", "session_expired"):
                raise PeerFailed(f"conversation.resume refused: {msg}")
            await self._error(ws, msg)

    def _check_own(self, conversation_id: str) -> None:
        if conversation_id != self.conversation_id:
            self.ledger.note(
                "foreign_deliveries", f"{self.name} ({self.conversation_id}) got {conversation_id}"
            )

    def pick_conversation(self) -> str | None:
        return self.conversation_id if self.state in ("queued", "assigned") else None

    def think(self) -> float:
        return self.rng.uniform(*self.cfg.client_think)

    @property
    def window(self) -> int:
        return self.cfg.client_window


class ProPeer(Peer):
    """A professional: signs in once, takes chats from the queue and answers them."""

    path = "/ws/pro"
    role = "professional"

    def __init__(
        self, name: str, username: str, ledger: Ledger, cfg: PeerConfig, rng: random.Random
    ) -> None:
        super().__init__(name, ledger, cfg, rng)
        self.username = username
        self.token: str | None = None
        self.pro_id: str | None = None
        self.assigned: set[str] = set()
        self.capacity = 0
        self.welcomed = False
        self.pending_history: set[str] = set()
        self.final_assigned: set[str] | None = None
        self.final_session = False
        self.takes = 0
        self._cursors: dict[str, int] = {}

    async def before_connect(self) -> None:
        if self.token is not None:
            return
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(self.cfg.http_base + "/api/session") as response:
                csrf = (await response.json())["csrf"]
                # The pre-sign-in cookie back, as the server named it (__Host-… over https).
                cookie = "; ".join(f"{m.key}={m.value}" for m in response.cookies.values())
            async with session.post(
                self.cfg.http_base + "/api/login",
                json={"username": self.username, "password": self.cfg.password, "token": True},
                headers={"X-CSRF-Token": csrf, "Cookie": cookie},
            ) as response:
                body = await response.json()
                if response.status != 200:
                    raise PeerFailed(f"sign-in refused: {response.status} {body}")
                self.token = body["token"]
                self.ledger.stats["sign_ins"] += 1

    async def handshake(self, ws: ClientConnection) -> None:
        self.welcomed = False
        self.final_session = self.final_requested.is_set()
        cursors = {}
        for cid in self.seen:
            cursor = self.resume_cursor(cid)
            if cursor > 0:
                cursors[cid] = cursor
        self._cursors = cursors
        await ws.send(json.dumps({"type": "auth", "token": self.token, "cursors": cursors}))

    async def handle(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "message.new":
            m = msg["message"]
            if m["conversation_id"] not in self.assigned:
                self.ledger.note("foreign_deliveries", f"{self.name} got {m['conversation_id']}")
            self._deliver(m, "new")
        elif kind == "message.ack":
            self._acked(msg)
        elif kind == "message.history":
            cid = msg["conversation_id"]
            self._deliver_all(msg["messages"], "history")
            if msg.get("up_to_date"):
                self.pending_history.discard(cid)
                if self.welcomed and not self.pending_history:
                    self.caught_up.set()
        elif kind == "queue.snapshot":
            await self._maybe_take(ws, msg)
        elif kind == "conversation.state":
            view = msg["conversation"]
            cid = view["conversation_id"]
            mine = (view.get("professional") or {}).get("id") == self.pro_id
            if view["state"] == "assigned" and mine:
                if cid not in self.assigned:
                    self.assigned.add(cid)
                    self.conn_last[cid] = 0  # a new assignment brings the whole history
            elif cid in self.assigned:
                self.assigned.discard(cid)
                self.ledger.note("conversations_left_professional", f"{self.name}: {view}")
        elif kind == "welcome":
            self.pro_id = msg["professional"]["id"]
            self.capacity = msg["capacity"]
            before = set(self.assigned)
            self.assigned = {c["conversation_id"] for c in msg["conversations"]}
            for cid in before - self.assigned:
                self.ledger.note("conversations_left_professional", f"{self.name}: {cid}")
            self.pending_history = set(self.assigned)
            for cid in self.assigned:
                self.conn_last[cid] = self._cursors.get(cid, 0)
            self.welcomed = True
            if not self.pending_history:
                self.caught_up.set()
        elif kind == "error":
            code = msg.get("code")
            if code in ("auth_failed", "session_expired"):
                self.ledger.note("sessions_lost", f"{self.name}: {msg}")
                self.token = None
                raise _Reconnect
            if msg.get("ref") == "queue.take":
                self.ledger.stats["takes_refused"] += 1
                return
            await self._error(ws, msg)

    async def _maybe_take(self, ws: ClientConnection, snapshot: dict[str, Any]) -> None:
        entries = snapshot.get("entries") or []
        if self.final_session or not self.welcomed or len(self.assigned) >= self.capacity:
            return
        if not entries:
            return
        choice = self.rng.choice(entries[:3])["conversation_id"]
        self.takes += 1
        await ws.send(json.dumps({"type": "queue.take", "conversation_id": choice}))

    def on_caught_up(self, final: bool) -> None:
        if final:
            self.final_assigned = set(self.assigned)

    def pick_conversation(self) -> str | None:
        return self.rng.choice(sorted(self.assigned)) if self.assigned else None

    def think(self) -> float:
        return self.rng.uniform(*self.cfg.pro_think)

    @property
    def window(self) -> int:
        return self.cfg.pro_window
