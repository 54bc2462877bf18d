"""The simulated clients and professionals of one worker process (one asyncio loop).

Each worker simulates one team: its clients open conversations in that team and its own
professionals answer them, so both ends of every conversation live here. That is what lets a
worker check every message against what was really sent (correctness) and time it with one
monotonic clock (latency), whatever the number of processes.

Every frame is encoded and decoded with Kanava's own ``protocol`` codecs (full validation of
everything the server sends); the websockets are the ``websockets`` library's, a websocket
implementation independent of the server's aiohttp.

A chat message's text is ``<conversation key>/<msg_id>/<scheduled send ns>/`` padded to
``--text-size`` characters, and its ``msg_id`` is ``c<n>-<conversation index>`` (client) or
``p<n>-<index>`` (professional): a receiver can tell which conversation, which sender and which
message it got, and whether it is the one it should get.

Against the bare relay (``--target relay``) a "conversation" is a pair of sockets; the frames
are the same ``message.send`` frames, forwarded unchanged by the relay, and there are no
acknowledgements.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import websockets.frames
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.protocol import State

from protocol import CODECS, INBOUND, ErrorCode, ProtocolError
from protocol.messages import (
    Auth,
    ConversationClose,
    ConversationOpen,
    ConversationOpened,
    ConversationStateChanged,
    Error,
    IntakeAnswer,
    IntakeConfirm,
    IntakeStart,
    IntakeStation,
    IntakeStep,
    Message,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    Pong,
    QueueSnapshot,
    QueueTake,
    Read,
    ReadMark,
    Typing,
    TypingSet,
    Welcome,
)

from .config import WAIT_TEAM, WorkerPlan
from .histogram import Histogram
from .intake import LANGUAGES, answer
from .servers import cpu_seconds, rss_kb
from .stats import StepStats, WorkerStats


class _FastMasks:
    """Masking keys from a seeded PRNG instead of the OS: one syscall less per frame sent.

    The websocket mask keeps proxies from mistaking a client's frames for HTTP; it needs no
    secrecy between a load generator and the server it tests, and ``os.urandom`` per frame
    was 5 % of the generator's time.
    """

    _random = random.Random(0x4B414E41)

    @classmethod
    def token_bytes(cls, n: int) -> bytes:
        return cls._random.randbytes(n)


websockets.frames.secrets = _FastMasks  # type: ignore[attr-defined]

__all__ = ["Worker"]

log = logging.getLogger("kanava.loadtest")

# Fields of an in-flight message entry (a list, for speed).
T_SENT, STEP, ACKED, RECEIVED, DATA, TRIES = range(6)
FILLER = (
    "Hei, minulla on ollut kuumetta kolme päivää ja kurkku on kipeä. Voinko tulla "
    "vastaanotolle huomenna aamulla vai pitäisikö odottaa vielä? Kiitos vastauksesta. "
) * 60
MAX_RETRIES = 20
MIN_TICK = 0.001  # seconds: the pacer's shortest sleep
SETTLE_NS = 2_000_000_000  # unmeasured load before the first step of rate mode
# websockets' asyncio connection writes a frame with protocol.send_*() + send_data(); if a
# future version renames that, fall back to ``await ws.send()`` in a task.
_DIRECT_WRITE = hasattr(ClientConnection, "send_data")
SEND_QUEUE_ROOM = 64 * 1024


class Flow:
    """The chat messages of one direction of one conversation."""

    __slots__ = ("inflight", "missing", "next_rx", "prefix", "sent")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # "c" (client → professional) or "p"
        self.sent = 0
        self.inflight: dict[int, list[Any]] = {}  # n → entry, until acked *and* received
        self.next_rx = 1
        self.missing: set[int] = set()  # skipped numbers that may still arrive


class Conv:
    """One conversation as the load tool sees it: both parties and both flows."""

    __slots__ = (
        "active",
        "assigned",
        "c2p",
        "cid",
        "client",
        "closed",
        "closed_evt",
        "closing",
        "index",
        "key",
        "opened_ns",
        "p2c",
        "pro",
        "pro_synced",
        "queued_ns",
        "ready_evt",
    )

    def __init__(self, index: int, key: str) -> None:
        self.index = index
        self.key = key
        self.cid = ""
        self.client: SimClient | None = None
        self.pro: SimPro | None = None
        self.c2p = Flow("c")
        self.p2c = Flow("p")
        self.opened_ns = 0  # the client asked for a chat (intake.start or conversation.open)
        self.queued_ns = 0  # conversation.opened arrived: the chat is in the queue
        self.assigned = False  # the client has seen its assignment
        self.pro_synced = False  # the professional has its history
        self.active = False  # both sides may chat
        self.closing = False
        self.closed = False
        self.ready_evt = asyncio.Event()
        self.closed_evt = asyncio.Event()


class Peer:
    """One websocket of the load tool."""

    __slots__ = ("closing", "name", "reader", "ws")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.closing = False


class SimClient(Peer):
    __slots__ = ("conv", "index", "intake_last", "intake_sent_ns", "opened", "station")

    def __init__(self, index: int) -> None:
        super().__init__(f"client {index}")
        self.index = index
        self.conv: Conv | None = None
        self.opened: asyncio.Future[ConversationOpened] | None = None
        self.station = ""  # the health station (= team) this client's intake chooses
        self.intake_last: Message | None = None  # the last intake message, for a retry
        self.intake_sent_ns = 0


class SimPro(Peer):
    __slots__ = ("capacity", "convs", "id", "queue_length", "take_pending", "username", "welcome")

    def __init__(self, username: str) -> None:
        super().__init__(username)
        self.username = username
        self.id = ""
        self.capacity = 0
        self.convs: dict[str, Conv] = {}
        self.welcome: asyncio.Future[Welcome] | None = None
        self.take_pending = False
        self.queue_length = 0


class Shared:
    """What workers share: when to start and whether a sweep has been stopped."""

    def __init__(self) -> None:
        self.stop_step = -1

    def get_stop_step(self) -> int:
        return self.stop_step

    def set_stop_step(self, step: int) -> None:
        if self.stop_step < 0 or step < self.stop_step:
            self.stop_step = step

    async def wait_start(self) -> int:
        """The monotonic time (ns) to start at, once every worker is ready."""
        return time.monotonic_ns() + 100_000_000


class Worker:
    """Runs one plan: connect, set up, load, drain, account, clean up."""

    def __init__(
        self,
        plan: WorkerPlan,
        emit: Callable[[str, Any], None],
        shared: Shared,
        server_pid: int | None = None,
    ) -> None:
        self.plan = plan
        self.cfg = cfg = plan.config
        self.emit = emit
        self.shared = shared
        self.server_pid = server_pid
        self.codec = CODECS[cfg.subprotocol]
        self.binary = self.codec.binary
        self.relay = cfg.target == "relay"
        self.stats = WorkerStats()
        self.rng = random.Random(plan.index * 7919 + 17)
        self.convs: list[Conv] = []
        self.by_cid: dict[str, Conv] = {}
        self.pending: dict[str, tuple[SimPro, list[Message]]] = {}
        self.clients: list[SimClient] = []
        self.pros: list[SimPro] = []
        self.active: list[tuple[Conv, bool]] = []  # (conversation, client side?) for the pacer
        self.rr = 0
        self.step: StepStats | None = None  # where messages sent now are counted
        self.step_index = -1
        self.stopping = False  # no new messages or conversations
        self.finished = False  # drained: late frames are no longer counted
        self.inflight = 0
        self.interval = Histogram()  # e2e latencies since the last progress line
        self.tasks: set[asyncio.Task[Any]] = set()
        self.started_ns = 0
        self.session: aiohttp.ClientSession | None = None
        self.connect_slots = asyncio.Semaphore(200)
        self.last_connect_ns = 0
        self.connect_gap_ns = int(1e9 / max(1.0, cfg.connect_rate / cfg.procs))
        self.topics: list[str] = []  # the intake's topics, from GET /api/service

    # --- entry ----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        try:
            await self._setup()
        except Exception as exc:
            self.emit("failed", f"worker {self.plan.index}: setup failed: {exc!r}")
            await self._cleanup()
            raise
        gc.collect()
        gc.freeze()
        gc.disable()
        self.emit("ready", {"worker": self.plan.index})
        start_ns = await self.shared.wait_start()
        await _sleep_until(start_ns)
        self.started_ns = start_ns
        progress = self._spawn(self._progress_loop())
        try:
            if cfg.mode == "think":
                await self._run_think(start_ns)
            elif cfg.mode == "rate":
                await self._run_rate(start_ns)
            else:
                await self._run_idle(start_ns)
            self.stopping = True
            await self._drain()
        finally:
            progress.cancel()
            self.finished = True
            self._account()
            gc.enable()
            await self._cleanup()
        return self.stats.to_dict()

    # --- setup ----------------------------------------------------------------------------

    async def _setup(self) -> None:
        cfg, plan = self.cfg, self.plan
        deadline = time.monotonic() + cfg.setup_timeout
        if self.relay:
            await self._setup_relay(deadline)
            return
        if plan.pros or cfg.intake:
            self.session = aiohttp.ClientSession()
        if cfg.intake:
            await self._check_service()
        if plan.pros:
            await asyncio.gather(*(self._connect_pro(u, t) for u, t in plan.pros))
        self.clients = [SimClient(plan.client_offset + i) for i in range(plan.clients)]
        if cfg.mode == "think":
            return  # clients arrive after the start, along the ramp
        if cfg.mode == "rate":
            await asyncio.gather(*(self._open_client(c, plan.team) for c in self.clients))
            capacity = sum(p.capacity for p in self.pros)
            want = min(len(self.clients), capacity)
            if want < len(self.clients):
                self.emit(
                    "warning",
                    f"worker {plan.index}: {len(self.clients) - want} clients stay queued "
                    f"(capacity {capacity}); raise --capacity or --pros",
                )
            await self._wait_active(want, deadline)
            return
        # idle: the first `active` clients chat once with a professional, the rest wait.
        active = self.clients[: plan.active]
        idle = self.clients[plan.active :]
        tasks = [self._open_client(c, plan.team) for c in active]
        if cfg.idle_open == "queued":
            tasks += [self._open_client(c, WAIT_TEAM) for c in idle]
        else:
            tasks += [self._connect_client(c) for c in idle]
        await asyncio.gather(*tasks)
        await self._wait_active(len(active), deadline)
        for conv in [c.conv for c in active if c.conv is not None and c.conv.active]:
            self._send_chat(conv, True, time.monotonic_ns(), None)
            self._send_chat(conv, False, time.monotonic_ns(), None)
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _check_service(self) -> None:
        """Read the intake's topics; fail early, and clearly, where the intake cannot queue."""
        assert self.session is not None
        url = self.plan.http_base + "/api/service?lang=en"
        async with self.session.get(url) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {url} answered HTTP {response.status}")
            service = await response.json()
        self.topics = [topic["id"] for topic in service.get("topics") or []]
        if not self.topics:
            raise RuntimeError("the server offers no intake topics (GET /api/service)")
        if service.get("identification"):
            raise RuntimeError(
                "the server identifies citizens, which needs a person at the identity "
                "provider: load a server without KANAVA_OIDC_ISSUER, or use --no-intake"
            )
        if not service.get("accepting"):
            closed = service.get("closed") or {}
            raise RuntimeError(
                f"the server takes no new chats now ({closed.get('text', 'closed')}): start it "
                "with KANAVA_ALWAYS_OPEN=true, or use --no-intake"
            )

    async def _wait_active(self, want: int, deadline: float) -> None:
        while sum(1 for c in self.convs if c.active) < want:
            if time.monotonic() > deadline:
                have = sum(1 for c in self.convs if c.active)
                raise TimeoutError(f"only {have} of {want} conversations assigned in time")
            await asyncio.sleep(0.02)

    async def _ws_connect(self, path: str) -> ClientConnection:
        """Open a websocket, no faster than --connect-rate and 200 handshakes at a time."""
        async with self.connect_slots:
            now = time.monotonic_ns()
            at = max(now, self.last_connect_ns + self.connect_gap_ns)
            self.last_connect_ns = at
            if at > now:
                await asyncio.sleep((at - now) / 1e9)
            t0 = time.monotonic_ns()
            try:
                ws = await connect(
                    self.plan.ws_base + path,
                    subprotocols=[self.codec.subprotocol],  # type: ignore[list-item]
                    compression=None,
                    open_timeout=max(10.0, self.cfg.setup_timeout / 2),
                    ping_interval=None,
                    close_timeout=2,
                    max_size=2**22,
                    max_queue=256,
                    write_limit=SEND_QUEUE_ROOM,
                )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.stats.totals["connect_failures"] += 1
                raise ConnectionError(f"cannot open {path}: {exc!r}") from exc
            self.stats.connect.record_ns(time.monotonic_ns() - t0)
            self.stats.totals["connections"] += 1
            if ws.subprotocol != self.codec.subprotocol:
                raise ConnectionError(f"the server chose subprotocol {ws.subprotocol!r}")
            return ws

    def _start_reader(self, peer: Peer, handle: Callable[[Message, int], None]) -> None:
        peer.reader = self._spawn(self._read_loop(peer, handle))

    async def _read_loop(self, peer: Peer, handle: Callable[[Message, int], None]) -> None:
        ws = peer.ws
        assert ws is not None
        codec = self.codec
        if self.relay:  # the peer's message.send frames, forwarded as they are

            def decode(raw: bytes) -> Message:
                return codec.decode(raw, registry=INBOUND)

        else:
            decode = codec.decode_outbound
        totals = self.stats.totals
        problems = self.stats.problems
        try:
            while True:
                raw = await ws.recv(decode=False)
                now = time.monotonic_ns()
                totals["frames_received"] += 1
                if self.finished:
                    continue
                try:
                    msg = decode(raw)
                except ProtocolError as exc:
                    totals["invalid_frames"] += 1
                    if len(problems) < 20:
                        problems.append(f"invalid frame to {peer.name}: {exc}")
                    continue
                try:
                    handle(msg, now)
                except Exception as exc:  # a bug in the tool: report it, keep reading
                    if len(problems) < 20:
                        problems.append(f"handling {msg.type} at {peer.name} failed: {exc!r}")
                    log.exception("frame handler failed")
        except ConnectionClosed as exc:
            if not peer.closing and not self.finished:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                self.stats.disconnect(f"{type(peer).__name__[3:].lower()} closed {code}")

    # --- professionals --------------------------------------------------------------------

    async def _login(self, username: str) -> str:
        assert self.session is not None
        # The anti-forgery token of a sign-in, sent back as its cookie and its header.
        async with self.session.get(self.plan.http_base + "/api/session") as response:
            csrf = (await response.json())["csrf"]
            # The pre-sign-in cookie back, as the server named it (__Host-… over https).
            cookie = "; ".join(f"{m.key}={m.value}" for m in response.cookies.values())
        async with self.session.post(
            self.plan.http_base + "/api/login",
            json={"username": username, "password": self.cfg.password, "token": True},
            headers={"X-CSRF-Token": csrf, "Cookie": cookie},
        ) as response:
            body = await response.json()
            if response.status != 200:
                raise ConnectionError(f"sign-in of {username} failed: {body}")
            token: str = body["token"]
            return token

    async def _connect_pro(self, username: str, token: str | None) -> None:
        pro = SimPro(username)
        self.pros.append(pro)
        token = token or await self._login(username)
        pro.ws = await self._ws_connect("/ws/pro")
        pro.welcome = asyncio.get_running_loop().create_future()
        self._start_reader(pro, self._pro_handler(pro))
        await self._send(pro, Auth(token=token))
        welcome = await asyncio.wait_for(pro.welcome, self.cfg.setup_timeout)
        pro.id = welcome.professional.id
        pro.capacity = welcome.capacity
        if self.plan.team not in welcome.teams:
            raise RuntimeError(
                f"{username} is not in team {self.plan.team} but in {welcome.teams}: seed the "
                "accounts with the same --pros and --procs as this run"
            )
        for view in welcome.conversations:  # left over from an earlier run: end them
            self.stats.totals["stale_conversations"] += 1
            await self._send(pro, ConversationClose(view.conversation_id, "load test cleanup"))

    def _pro_handler(self, pro: SimPro) -> Callable[[Message, int], None]:
        stats = self.stats

        def handle(msg: Message, now: int) -> None:
            kind = type(msg)
            if kind is MessageNew:
                assert isinstance(msg, MessageNew)
                m = msg.message
                conv = pro.convs.get(m.conversation_id)
                if conv is None:
                    pending = self.pending.get(m.conversation_id)
                    if pending is not None and pending[0] is pro:
                        pending[1].append(msg)
                        return
                    stats.problem(
                        "misplaced", f"{pro.username} got a message of {m.conversation_id}"
                    )
                    return
                self._on_chat(conv, False, m.sender_role, m.msg_id, m.text, m.seq, now, False)
            elif kind is MessageAck:
                assert isinstance(msg, MessageAck)
                self._on_ack(msg, now, False)
            elif kind is ConversationStateChanged:
                assert isinstance(msg, ConversationStateChanged)
                self._pro_state(pro, msg)
            elif kind is MessageHistory:
                assert isinstance(msg, MessageHistory)
                self._pro_history(pro, msg, now)
            elif kind is QueueSnapshot:
                assert isinstance(msg, QueueSnapshot)
                if msg.team == self.plan.team:
                    pro.queue_length = msg.length
                    self._maybe_take(pro)
            elif kind is Error:
                assert isinstance(msg, Error)
                self._on_error(msg, pro)
            elif kind is Welcome:
                assert isinstance(msg, Welcome)
                if pro.welcome is not None and not pro.welcome.done():
                    pro.welcome.set_result(msg)
            elif kind is Typing or kind is Read or kind is Pong:
                pass
            else:
                stats.totals["invalid_frames"] += 1

        return handle

    def _pro_state(self, pro: SimPro, msg: ConversationStateChanged) -> None:
        view = msg.conversation
        cid = view.conversation_id
        mine = view.professional is not None and view.professional.id == pro.id
        if view.state == "assigned" and mine:
            if cid in pro.convs:
                return
            pro.take_pending = False
            conv = self.by_cid.get(cid)
            if conv is None:
                # Its client may not have read conversation.opened yet: wait for it.
                self.pending.setdefault(cid, (pro, []))
                return
            self._link(conv, pro)
        elif cid in pro.convs:
            conv = pro.convs.pop(cid)
            if view.state != "closed":
                self.stats.problem("misplaced", f"{cid} was taken from {pro.username}")
            self._maybe_take(pro)
        elif cid in self.pending and view.state == "closed":
            self.pending.pop(cid, None)

    def _link(self, conv: Conv, pro: SimPro) -> None:
        if conv.pro is not None and conv.pro is not pro:
            self.stats.problem("misplaced", f"{conv.cid} assigned to a second professional")
        conv.pro = pro
        pro.convs[conv.cid] = conv
        self.stats.totals["conversations_assigned"] += 1

    def _pro_history(self, pro: SimPro, msg: MessageHistory, now: int) -> None:
        conv = pro.convs.get(msg.conversation_id)
        if conv is None:
            pending = self.pending.get(msg.conversation_id)
            if pending is not None and pending[0] is pro:
                pending[1].append(msg)
            elif msg.messages:
                self.stats.problem(
                    "misplaced", f"{pro.username} got history of {msg.conversation_id}"
                )
            return
        for m in msg.messages:
            if m.sender_role == "professional":
                continue  # its own, from an earlier assignment
            self._on_chat(conv, False, m.sender_role, m.msg_id, m.text, m.seq, now, True)
        if msg.up_to_date and not conv.pro_synced:
            conv.pro_synced = True
            self._maybe_activate(conv)

    def _maybe_take(self, pro: SimPro) -> None:
        if (
            self.cfg.assign != "pick"
            or pro.take_pending
            or self.stopping
            or pro.queue_length <= 0
            or len(pro.convs) >= pro.capacity
        ):
            return
        pro.take_pending = True
        self.stats.totals["takes"] += 1
        self._fire(pro, QueueTake(team=self.plan.team))

    # --- clients --------------------------------------------------------------------------

    async def _connect_client(self, client: SimClient) -> None:
        client.ws = await self._ws_connect("/ws/client")
        client.closing = False
        self._start_reader(client, self._client_handler(client))

    async def _open_client(self, client: SimClient, team: str) -> Conv:
        """Connect a client and open a conversation; returns it once opened."""
        await self._connect_client(client)
        index = len(self.convs)
        conv = Conv(index, f"{self.plan.run_id}.{self.plan.index}.{index}")
        conv.client = client
        self.convs.append(conv)
        client.conv = conv
        client.opened = asyncio.get_running_loop().create_future()
        t0 = time.monotonic_ns()
        open_id = f"loadtest-{conv.key}"  # as the citizen page does, for safe retries
        if self.cfg.intake:
            # Citizens of every topic and language; the station is the one of this team.
            client.station = team
            start = IntakeStart(
                topic=self.topics[(client.index + index) % len(self.topics)],
                language=LANGUAGES[client.index % len(LANGUAGES)],
                open_id=open_id,
            )
            client.intake_last, client.intake_sent_ns = start, t0
            await self._send(client, start)
        else:
            await self._send(
                client,
                ConversationOpen(
                    client_name=f"Load Client {client.index}",
                    topic="load",
                    team=team,
                    open_id=open_id,
                ),
            )
        conv.opened_ns = t0
        await asyncio.wait_for(client.opened, self.cfg.setup_timeout)
        return conv

    def _opened(self, client: SimClient, msg: ConversationOpened, now: int) -> None:
        """Register the new conversation at once: the next frame may be its assignment."""
        conv = client.conv
        if conv is None or conv.cid or client.opened is None or client.opened.done():
            self.stats.problem("misplaced", f"{client.name} got a second conversation")
            return
        self.stats.open.record_ns(now - conv.opened_ns)
        conv.queued_ns = now
        self.stats.totals["conversations_opened"] += 1
        conv.cid = msg.conversation.conversation_id
        if conv.cid in self.by_cid:
            self.stats.problem("misplaced", f"conversation id {conv.cid} given twice")
        self.by_cid[conv.cid] = conv
        pending = self.pending.pop(conv.cid, None)
        if pending is not None:
            pro, held = pending
            self._link(conv, pro)
            handle = self._pro_handler(pro)
            for held_msg in held:
                handle(held_msg, now)
        if msg.conversation.state == "assigned":
            self._client_assigned(conv)
        client.opened.set_result(msg)

    def _client_handler(self, client: SimClient) -> Callable[[Message, int], None]:
        stats = self.stats

        def handle(msg: Message, now: int) -> None:
            kind = type(msg)
            conv = client.conv
            if kind is MessageNew:
                assert isinstance(msg, MessageNew)
                m = msg.message
                if conv is None or m.conversation_id != conv.cid:
                    stats.problem(
                        "misplaced", f"{client.name} got a message of {m.conversation_id}"
                    )
                    return
                self._on_chat(conv, True, m.sender_role, m.msg_id, m.text, m.seq, now, False)
            elif kind is MessageAck:
                assert isinstance(msg, MessageAck)
                self._on_ack(msg, now, True)
            elif kind is ConversationStateChanged:
                assert isinstance(msg, ConversationStateChanged)
                view = msg.conversation
                if conv is None or view.conversation_id != conv.cid:
                    if conv is None or conv.cid:  # before opened, the id is not known yet
                        stats.problem(
                            "misplaced", f"{client.name} got the state of {view.conversation_id}"
                        )
                    return
                if view.state == "assigned":
                    self._client_assigned(conv)
                elif view.state == "closed":
                    if not conv.closed:
                        conv.closed = True
                        conv.active = False
                        stats.totals["conversations_closed"] += 1
                        conv.closed_evt.set()
                        if self.cfg.mode == "rate" and not self.stopping:
                            self._spawn(self._come_back(client))
                else:
                    stats.totals["queue_updates"] += 1
            elif kind is ConversationOpened:
                assert isinstance(msg, ConversationOpened)
                client.intake_last = None
                self._opened(client, msg, now)
            elif kind is IntakeStep:
                assert isinstance(msg, IntakeStep)
                self._intake_step(client, msg, now)
            elif kind is Error:
                assert isinstance(msg, Error)
                if client.intake_last is not None and msg.ref == client.intake_last.type:
                    self._intake_error(client, msg)
                else:
                    self._on_error(msg, client)
            elif kind is Typing or kind is Read or kind is Pong:
                pass
            else:
                stats.totals["invalid_frames"] += 1

        return handle

    # --- the intake -------------------------------------------------------------------------

    def _intake_step(self, client: SimClient, msg: IntakeStep, now: int) -> None:
        """Answer the question, choose the station, confirm the review; an end instead of a
        chat is a failure."""
        stats = self.stats
        if client.intake_last is None or client.opened is None or client.opened.done():
            stats.totals["invalid_frames"] += 1
            stats.problems.append(f"{client.name} got an intake step it did not ask for")
            return
        stats.intake_step.record_ns(now - client.intake_sent_ns)
        detail = msg.detail if isinstance(msg.detail, dict) else {}
        reply: Message
        if msg.step == "question":
            stats.totals["intake_answers"] += 1
            reply = IntakeAnswer(question_id=str(detail.get("id")), value=answer(detail, self.rng))
        elif msg.step == "station":
            offered = {s.get("id") for s in detail.get("stations") or [] if isinstance(s, dict)}
            if client.station not in offered:
                self._intake_failed(
                    client,
                    f"the server offers no health station {client.station!r}: start it with "
                    "the load tool's areas file (see --seed)",
                )
                return
            stats.totals["intake_stations"] += 1
            reply = IntakeStation(station=client.station)
        elif msg.step == "review":
            reply = IntakeConfirm()
        else:
            stats.totals["intake_ends"] += 1
            self._intake_failed(
                client, f"the intake ended with {msg.step!r} instead of a chat: {detail}"
            )
            return
        think = self.cfg.intake_think
        if think > 0 and not self.stopping:
            delay = self.rng.expovariate(1.0 / think)
            asyncio.get_running_loop().call_later(delay, self._intake_send, client, reply)
        else:
            self._intake_send(client, reply)

    def _intake_send(self, client: SimClient, msg: Message) -> None:
        if client.opened is None or client.opened.done():
            return
        client.intake_last, client.intake_sent_ns = msg, time.monotonic_ns()
        self._fire(client, msg)

    def _intake_error(self, client: SimClient, msg: Error) -> None:
        """A refused intake message: wait and send it again if rate limited, else give up."""
        last = client.intake_last
        assert last is not None
        self.stats.error(f"{msg.code} ({msg.ref})", None)
        if msg.code == ErrorCode.RATE_LIMITED.value:
            self.stats.totals["rate_limited"] += 1
            delay = (msg.retry_after_ms or 100) / 1000.0
            asyncio.get_running_loop().call_later(delay, self._intake_send, client, last)
            return
        self._intake_failed(client, f"{last.type} refused: {msg.code}: {msg.reason}")

    def _intake_failed(self, client: SimClient, why: str) -> None:
        client.intake_last = None
        if client.opened is not None and not client.opened.done():
            client.opened.set_exception(RuntimeError(f"{client.name}: {why}"))

    def _client_assigned(self, conv: Conv) -> None:
        if conv.assigned or not conv.cid:
            return
        conv.assigned = True
        self.stats.queue_wait.record_ns(time.monotonic_ns() - conv.queued_ns)
        self._maybe_activate(conv)

    def _maybe_activate(self, conv: Conv) -> None:
        if conv.active or not (conv.assigned and conv.pro_synced) or conv.closing:
            return
        conv.active = True
        conv.ready_evt.set()
        if self.cfg.mode == "rate":
            self.active.append((conv, True))
            self.active.append((conv, False))

    # --- the relay ------------------------------------------------------------------------

    async def _setup_relay(self, deadline: float) -> None:
        plan = self.plan
        self.clients = [SimClient(plan.client_offset + i) for i in range(plan.clients)]
        await asyncio.gather(*(self._pair(c) for c in self.clients))

    async def _pair(self, client: SimClient) -> None:
        index = len(self.convs)
        conv = Conv(index, f"{self.plan.run_id}.{self.plan.index}.{index}")
        conv.cid = f"pair-{conv.key}"
        self.convs.append(conv)
        self.by_cid[conv.cid] = conv
        pro = SimPro(f"peer {client.index}")
        conv.client, conv.pro, client.conv = client, pro, conv
        pro.convs[conv.cid] = conv
        t0 = time.monotonic_ns()
        client.ws = await self._ws_connect("/relay/" + conv.cid)
        pro.ws = await self._ws_connect("/relay/" + conv.cid)
        for peer in (client, pro):
            assert peer.ws is not None
            hello = await asyncio.wait_for(peer.ws.recv(), self.cfg.setup_timeout)
            if '"relay.paired"' not in str(hello):
                raise ConnectionError(f"the relay answered {hello!r}")
        self.stats.open.record_ns(time.monotonic_ns() - t0)
        self.stats.totals["conversations_opened"] += 1
        self._start_reader(client, self._relay_handler(conv, True))
        self._start_reader(pro, self._relay_handler(conv, False))
        conv.assigned = conv.pro_synced = True
        self._maybe_activate(conv)
        if self.cfg.mode == "idle" and client.index - self.plan.client_offset < self.plan.active:
            self._send_chat(conv, True, time.monotonic_ns(), None)

    def _relay_handler(self, conv: Conv, to_client: bool) -> Callable[[Message, int], None]:
        def handle(msg: Message, now: int) -> None:
            if type(msg) is MessageSend:
                assert isinstance(msg, MessageSend)
                if msg.conversation_id != conv.cid:
                    self.stats.problem("misplaced", f"pair {conv.cid} got {msg.conversation_id}")
                    return
                role = "professional" if to_client else "client"
                self._on_chat(conv, to_client, role, msg.msg_id, msg.text, 0, now, False)

        return handle

    # --- chat messages --------------------------------------------------------------------

    def _send_chat(self, conv: Conv, from_client: bool, t_ns: int, step: StepStats | None) -> None:
        flow = conv.c2p if from_client else conv.p2c
        peer = conv.client if from_client else conv.pro
        assert peer is not None
        n = flow.sent = flow.sent + 1
        msg_id = f"{flow.prefix}{n}-{conv.index}"
        head = f"{conv.key}/{msg_id}/{t_ns}/"
        text = head + FILLER[: max(0, self.cfg.text_size - len(head))]
        data = self.codec.encode(MessageSend(conv.cid, msg_id, text))
        entry = [t_ns, step, self.relay, False, data, 0]
        flow.inflight[n] = entry
        self.inflight += 1
        self.stats.totals["sent"] += 1
        if step is not None:
            step.counts["sent"] += 1
        if self.relay:
            self.stats.totals["acked"] += 1
        self._write(peer, data)

    def _on_chat(
        self,
        conv: Conv,
        to_client: bool,
        sender_role: str,
        msg_id: str,
        text: str,
        seq: int,
        now: int,
        history: bool,
    ) -> None:
        """A chat message arrived at the client (``to_client``) or the professional."""
        stats = self.stats
        expected_role = "professional" if to_client else "client"
        flow = conv.p2c if to_client else conv.c2p
        where = f"{conv.cid} ({'client' if to_client else 'professional'})"
        if sender_role != expected_role or not msg_id.startswith(flow.prefix):
            stats.problem("misplaced", f"{where} got {msg_id} from a {sender_role}")
            return
        number, _, index = msg_id[1:].partition("-")
        if index != str(conv.index) or not text.startswith(f"{conv.key}/{msg_id}/"):
            stats.problem("misplaced", f"{where} got {msg_id}: {text[:60]!r}")
            return
        n = int(number)
        if n >= flow.next_rx:
            if n > flow.next_rx:
                flow.missing.update(range(flow.next_rx, n))
            flow.next_rx = n + 1
        elif n in flow.missing:
            flow.missing.discard(n)
            stats.correctness["reordered"] += 1
        else:
            stats.problem("duplicated", f"{where} got {msg_id} again (seq {seq})")
            return
        entry = flow.inflight.get(n)
        if entry is None:
            stats.problem("misplaced", f"{where} got {msg_id}, which was refused or never sent")
            return
        entry[RECEIVED] = True
        stats.totals["delivered"] += 1
        step: StepStats | None = entry[STEP]
        if history:
            stats.totals["delivered_history"] += 1
        else:
            latency = now - entry[T_SENT]
            self.interval.record_ns(latency)
            if step is not None:
                step.e2e.record_ns(latency)
                (step.p2c if to_client else step.c2p).record_ns(latency)
        if step is not None:
            step.counts["delivered"] += 1
        if entry[ACKED]:
            del flow.inflight[n]
            self.inflight -= 1
        if self.cfg.read_marks and not history and not self.relay and not self.stopping:
            peer = conv.client if to_client else conv.pro
            assert peer is not None
            self._fire(peer, ReadMark(conv.cid, seq))
            self.stats.totals["reads"] += 1
            if self.step is not None:
                self.step.counts["reads"] += 1
        if not to_client:
            self._maybe_close(conv)

    def _entry_of(self, msg_id: str) -> tuple[Conv, Flow, int, list[Any]] | None:
        try:
            number, _, index = msg_id[1:].partition("-")
            conv = self.convs[int(index)]
            flow = conv.c2p if msg_id[0] == "c" else conv.p2c
            n = int(number)
        except (ValueError, IndexError):
            return None
        entry = flow.inflight.get(n)
        return None if entry is None else (conv, flow, n, entry)

    def _on_ack(self, msg: MessageAck, now: int, to_client: bool) -> None:
        found = self._entry_of(msg.msg_id)
        if found is None or (msg.msg_id[0] == "c") != to_client:
            self.stats.totals["duplicate_acks"] += 1
            return
        conv, flow, n, entry = found
        if conv.cid != msg.conversation_id:
            self.stats.problem("misplaced", f"ack of {msg.msg_id} names {msg.conversation_id}")
            return
        if entry[ACKED]:
            self.stats.totals["duplicate_acks"] += 1
            return
        entry[ACKED] = True
        self.stats.totals["acked"] += 1
        step: StepStats | None = entry[STEP]
        if step is not None:
            step.counts["acked"] += 1
            step.ack.record_ns(now - entry[T_SENT])
        if entry[RECEIVED]:
            del flow.inflight[n]
            self.inflight -= 1
        if not to_client:
            self._maybe_close(conv)

    def _on_error(self, msg: Error, peer: Peer) -> None:
        ref = msg.ref or ""
        found = self._entry_of(ref) if ref[:1] in ("c", "p") and "-" in ref else None
        step = found[3][STEP] if found is not None else self.step
        self.stats.error(msg.code if found is not None or not ref else f"{msg.code} ({ref})", step)
        if found is None:
            if ref == "queue.take" and isinstance(peer, SimPro):
                peer.take_pending = False
            return
        conv, flow, n, entry = found
        if msg.code == ErrorCode.RATE_LIMITED.value and entry[TRIES] < MAX_RETRIES:
            self.stats.totals["rate_limited"] += 1
            if step is not None:
                step.counts["rate_limited"] += 1
            entry[TRIES] += 1
            delay = (msg.retry_after_ms or 100) / 1000.0
            asyncio.get_running_loop().call_later(delay, self._retry, peer, flow, n)
            return
        del flow.inflight[n]
        self.inflight -= 1
        self.stats.totals["refused"] += 1
        if step is not None:
            step.counts["refused"] += 1

    def _retry(self, peer: Peer, flow: Flow, n: int) -> None:
        entry = flow.inflight.get(n)
        if entry is None or entry[ACKED] or self.finished:
            return
        self.stats.totals["retries"] += 1
        self._write(peer, entry[DATA])

    def _maybe_close(self, conv: Conv) -> None:
        """The professional ends the chat once both said all they had to, and it arrived."""
        limit = self.cfg.messages
        if (
            limit <= 0
            or self.relay
            or conv.closing
            or conv.pro is None
            or conv.c2p.sent < limit
            or conv.p2c.sent < limit
            or any(not e[RECEIVED] for e in conv.c2p.inflight.values())
            or any(not e[ACKED] for e in conv.p2c.inflight.values())
        ):
            return
        conv.closing = True
        pro = conv.pro
        close = ConversationClose(conv.cid, "load test: done")
        if self.cfg.mode == "think" and self.cfg.think > 0:
            # A person reads the last message before closing the chat.
            delay = self.rng.expovariate(1.0 / self.cfg.think)
            asyncio.get_running_loop().call_later(delay, self._fire, pro, close)
        else:
            self._fire(pro, close)

    # --- sending --------------------------------------------------------------------------

    async def _send(self, peer: Peer, msg: Message) -> None:
        await self._send_raw(peer, self.codec.encode(msg))

    async def _send_raw(self, peer: Peer, data: bytes) -> None:
        ws = peer.ws
        if ws is None:
            self.stats.totals["send_failures"] += 1
            return
        try:
            await ws.send(data, text=not self.binary)
        except ConnectionClosed:
            self.stats.totals["send_failures"] += 1

    def _fire(self, peer: Peer, msg: Message) -> None:
        """Send without waiting (from a frame handler or the pacer)."""
        self._write(peer, self.codec.encode(msg))

    def _write(self, peer: Peer, data: bytes) -> None:
        """Write one frame now, open loop: what ``await ws.send()`` does, minus the wait.

        A load generator must not slow down when the server does (that would hide latency),
        so it never waits for the socket to drain; ``backpressure`` counts the writes made
        while the kernel's buffer was full.
        """
        ws = peer.ws
        if ws is None or ws.protocol.state is not State.OPEN:
            self.stats.totals["send_failures"] += 1
            return
        if not _DIRECT_WRITE:
            self._spawn(self._send_raw(peer, data))
            return
        if self.binary:
            ws.protocol.send_binary(data)
        else:
            ws.protocol.send_text(data)
        try:
            ws.send_data()
        except OSError:
            self.stats.totals["send_failures"] += 1
            return
        if getattr(ws, "paused", False):
            self.stats.totals["backpressure"] += 1

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # --- think mode -----------------------------------------------------------------------

    async def _run_think(self, start_ns: int) -> None:
        cfg = self.cfg
        step = StepStats(None, cfg.duration)
        self.stats.steps.append(step)
        self.step, self.step_index = step, 0
        end_ns = start_ns + int(cfg.duration * 1e9)
        cpu0 = time.process_time()
        server0 = self._server_cpu()
        lives = [
            self._spawn(self._client_life(c, start_ns, end_ns, i))
            for i, c in enumerate(self.clients)
        ]
        await _sleep_until(end_ns)
        self.stopping = True
        step.cpu_s = time.process_time() - cpu0
        server1 = self._server_cpu()
        if server0 is not None and server1 is not None:
            step.server_cpu_s = server1 - server0
        step.completed = True
        # Nobody starts anything new now: end the clients' lives wherever they are (waiting
        # for a chat to open, or pausing before the next one); messages already sent drain.
        for life in lives:
            life.cancel()
        await asyncio.gather(*lives, return_exceptions=True)

    async def _client_life(self, client: SimClient, start_ns: int, end_ns: int, i: int) -> None:
        cfg = self.cfg
        ramp_ns = int(cfg.ramp * 1e9 * i / max(1, len(self.clients)))
        await _sleep_until(start_ns + ramp_ns)
        while not self.stopping and time.monotonic_ns() < end_ns:
            if self.plan.max_messages and self.stats.totals["sent"] >= self.plan.max_messages:
                return
            try:
                conv = await self._open_client(client, self.plan.team)
            except (ConnectionError, TimeoutError, ConnectionClosed, RuntimeError) as exc:
                self.stats.totals["open_failures"] += 1
                self.stats.problems.append(f"{client.name} could not open: {exc!r}")
                return
            talk = [
                self._spawn(self._talk(conv, True)),
                self._spawn(self._talk(conv, False)),
            ]
            stop = max(0.0, (end_ns - time.monotonic_ns()) / 1e9)
            try:
                await asyncio.wait_for(conv.closed_evt.wait(), stop)
            except TimeoutError:
                pass
            for task in talk:
                task.cancel()
            if not conv.closed:
                return  # the run ends with this conversation open; cleanup closes it
            client.closing = True
            assert client.ws is not None
            await client.ws.close()
            await asyncio.sleep(self.rng.expovariate(1.0 / cfg.pause) if cfg.pause > 0 else 0)

    async def _come_back(self, client: SimClient) -> None:
        """Rate mode with --messages: a client whose chat ended opens a new one."""
        client.closing = True
        if client.ws is not None:
            await client.ws.close()
        pause = self.cfg.pause
        await asyncio.sleep(self.rng.expovariate(1.0 / pause) if pause > 0 else 0)
        if not self.stopping:
            try:
                await self._open_client(client, self.plan.team)
            except (ConnectionError, TimeoutError, ConnectionClosed, RuntimeError) as exc:
                self.stats.totals["open_failures"] += 1
                self.stats.problems.append(f"{client.name} could not open: {exc!r}")

    async def _talk(self, conv: Conv, client_side: bool) -> None:
        """One party of a conversation writing at human pace."""
        cfg = self.cfg
        peer = conv.client if client_side else None
        if client_side:
            # The citizen writes the question while waiting in the queue.
            await self._type_and_send(conv, True, peer)
        await conv.ready_evt.wait()
        if not client_side:
            peer = conv.pro
        flow = conv.c2p if client_side else conv.p2c
        while not self.stopping and not conv.closing and flow.sent < cfg.messages:
            await asyncio.sleep(self.rng.expovariate(1.0 / cfg.think) if cfg.think > 0 else 0)
            if self.stopping or conv.closing:
                return
            await self._type_and_send(conv, client_side, peer)

    async def _type_and_send(self, conv: Conv, client_side: bool, peer: Peer | None) -> None:
        cfg = self.cfg
        if peer is None:
            return
        typing = self.rng.random() < cfg.typing
        if typing:
            await self._send(peer, TypingSet(conv.cid, True))
            self.stats.totals["typing"] += 1
            await asyncio.sleep(min(2.0, cfg.think / 2))
            if self.stopping or conv.closing:
                return
        if self.plan.max_messages and self.stats.totals["sent"] >= self.plan.max_messages:
            return
        self._send_chat(conv, client_side, time.monotonic_ns(), self.step)
        if typing:
            await self._send(peer, TypingSet(conv.cid, False))
            self.stats.totals["typing"] += 1

    # --- rate mode ------------------------------------------------------------------------

    async def _run_rate(self, start_ns: int) -> None:
        cfg = self.cfg
        rates = cfg.steps()
        t = start_ns
        step_ns = int((cfg.step_seconds if cfg.sweep is not None else cfg.duration) * 1e9)
        warm_ns = int(cfg.warmup * 1e9)
        fails = 0
        for i, rate in enumerate(rates):
            if 0 <= self.shared.get_stop_step() <= i:
                break
            step = StepStats(rate, step_ns / 1e9)
            self.stats.steps.append(step)
            gc.collect()
            # The first step also settles the server after the set-up (caches, allocator).
            measure_at = t + (max(warm_ns, SETTLE_NS) if i == 0 else warm_ns)
            end = measure_at + step_ns
            stopped = await self._pace(rate * self.plan.rate_share, t, measure_at, end, step, i)
            if stopped:
                break
            # Judged on what arrived so far (the last few ms are still on their way): enough
            # to stop a sweep early; the report judges each step once everything is drained.
            fails = 0 if self._step_ok(step) else fails + 1
            if cfg.sweep is not None and fails >= cfg.sweep_max_fail:
                self.shared.set_stop_step(i + 1)
            t = end
        self.step = None

    def _step_ok(self, step: StepStats) -> bool:
        p99 = step.e2e.percentile_ms(99)
        sent = step.counts["sent"]
        return (
            sent > 0
            and p99 is not None
            and p99 <= self.cfg.p99_limit_ms
            and step.counts["delivered"] >= self.cfg.min_delivered * sent
        )

    async def _pace(
        self, rate: float, t0: int, measure_at: int, end: int, step: StepStats, index: int
    ) -> bool:
        """Send ``rate`` msg/s from ``t0`` to ``end``; count from ``measure_at``.

        Returns True if the sweep was stopped meanwhile.
        """
        cfg = self.cfg
        interval = 1e9 / rate
        i = 0
        cpu0: float | None = None
        lag = step.lag
        typing = cfg.typing
        max_messages = self.plan.max_messages
        totals = self.stats.totals
        self.step, self.step_index = None, index
        server0: float | None = None
        while True:
            now = time.monotonic_ns()
            if cpu0 is None and now >= measure_at:
                cpu0 = time.process_time()
                server0 = self._server_cpu()
                self.step = step
            if now >= end:
                break
            stop_step = self.shared.get_stop_step()
            if 0 <= stop_step <= index:
                self.step = None
                return True
            while True:
                t_i = t0 + int(i * interval)
                if t_i > now or t_i >= end:
                    break
                i += 1
                if max_messages and totals["sent"] >= max_messages:
                    continue
                side = self._next_side()
                if side is None:
                    continue
                conv, from_client = side
                counted = step if t_i >= measure_at else None
                peer = conv.client if from_client else conv.pro
                if typing and self.rng.random() < typing and peer is not None:
                    self._fire(peer, TypingSet(conv.cid, True))
                    totals["typing"] += 1
                self._send_chat(conv, from_client, t_i, counted)
                if typing and peer is not None and self.rng.random() < typing:
                    self._fire(peer, TypingSet(conv.cid, False))
                    totals["typing"] += 1
                if counted is not None:
                    lag.record_ns(time.monotonic_ns() - t_i)
            # Timers have a resolution of about 1 ms: sleep at least that long and send what
            # fell due meanwhile (latency still counts from each message's scheduled time).
            next_t = t0 + int(i * interval)
            wait = (min(next_t, end) - time.monotonic_ns()) / 1e9
            await asyncio.sleep(max(wait, MIN_TICK))
        if cpu0 is not None:
            step.cpu_s = time.process_time() - cpu0
            server1 = self._server_cpu()
            if server0 is not None and server1 is not None:
                step.server_cpu_s = server1 - server0
        step.completed = True
        self.step = None
        return False

    def _server_cpu(self) -> float | None:
        if self.plan.index != 0 or self.server_pid is None:
            return None
        return cpu_seconds(self.server_pid)

    def _next_side(self) -> tuple[Conv, bool] | None:
        active = self.active
        for _ in range(len(active)):
            if self.rr >= len(active):
                self.rr = 0
            conv, from_client = active[self.rr]
            if not conv.active or conv.closing:
                active.pop(self.rr)
                continue
            self.rr += 1
            return conv, from_client
        return None

    # --- idle mode ------------------------------------------------------------------------

    async def _run_idle(self, start_ns: int) -> None:
        cfg = self.cfg
        step = StepStats(None, cfg.duration)
        self.stats.steps.append(step)
        end_ns = start_ns + int(cfg.duration * 1e9)
        if self.plan.index == 0 and self.server_pid is not None:
            # Worker 0 reads the server's memory once every worker has connected everyone.
            await _sleep_until(start_ns + int(min(cfg.duration * 0.8, cfg.duration - 0.5) * 1e9))
            self.stats.extra["rss_loaded_kb"] = rss_kb(self.server_pid)
        await _sleep_until(end_ns)
        step.completed = True

    # --- the end --------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Wait (at most --drain seconds) for every message in flight to arrive.

        Messages of conversations still waiting for a professional have nobody to arrive at
        yet; they are not waited for.
        """
        deadline = time.monotonic() + self.cfg.drain
        while self.inflight > 0 and time.monotonic() < deadline:
            if self._deliverable_inflight() == 0:
                return
            await asyncio.sleep(0.05)

    def _deliverable_inflight(self) -> int:
        count = 0
        for conv in self.convs:
            if conv.p2c.inflight:
                count += len(conv.p2c.inflight)
            if conv.c2p.inflight and conv.pro is not None:
                count += len(conv.c2p.inflight)
        return count

    def _account(self) -> None:
        """Count what never arrived (lost) or was never answered (unanswered)."""
        correctness = self.stats.correctness
        for conv in self.convs:
            for flow, to in ((conv.c2p, "professional"), (conv.p2c, "client")):
                if flow is conv.c2p and conv.pro is None:
                    # Stored while queued, and no professional has had the chat yet.
                    self.stats.totals["waiting_in_queue"] += sum(
                        1 for e in flow.inflight.values() if e[ACKED]
                    )
                    correctness["unanswered"] += sum(
                        1 for e in flow.inflight.values() if not e[ACKED]
                    )
                    continue
                for n, entry in flow.inflight.items():
                    if entry[ACKED] and not entry[RECEIVED]:
                        self.stats.problem(
                            "lost", f"{conv.cid}: {flow.prefix}{n} never reached the {to}"
                        )
                    elif not entry[ACKED]:
                        correctness["unanswered"] += 1
        unassigned = sum(1 for c in self.convs if not c.active and not c.closed)
        self.stats.totals["conversations_unassigned"] = unassigned
        self.stats.totals["foreign_conversations"] = len(self.pending)

    async def _cleanup(self) -> None:
        """Close every socket; on a shared server (--url) end our open conversations first."""
        if not self.relay and self.cfg.url is not None:
            # Only on a server we did not start (ours is thrown away). Newest first: ending a
            # queued conversation moves everyone behind it up a place, and each of them is
            # told; from the back of the queue nobody moves.
            for client in reversed(self.clients):
                conv = client.conv
                if conv is not None and conv.cid and not conv.closed and client.ws is not None:
                    self._fire(client, ConversationClose(conv.cid, "load test over"))
        peers: list[Peer] = [*self.clients, *self.pros]
        if self.relay:
            peers += [c.pro for c in self.convs if c.pro is not None]
        for peer in peers:
            peer.closing = True

        async def close(peer: Peer) -> None:
            if peer.ws is not None:
                try:
                    await asyncio.wait_for(peer.ws.close(), 3)
                except (TimeoutError, ConnectionClosed, OSError):
                    pass

        if peers:
            await asyncio.wait_for(
                asyncio.gather(*(close(p) for p in peers), return_exceptions=True), 15
            )
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def _progress_loop(self) -> None:
        interval = 1.0
        while True:
            await asyncio.sleep(interval)
            totals = self.stats.totals
            self.emit(
                "progress",
                {
                    "worker": self.plan.index,
                    "t": (time.monotonic_ns() - self.started_ns) / 1e9,
                    "step": self.step_index,
                    "sent": totals["sent"],
                    "delivered": totals["delivered"],
                    "acked": totals["acked"],
                    "errors": sum(self.stats.errors.values()),
                    "inflight": self.inflight,
                    "active": sum(1 for c in self.convs if c.active),
                    "waiting": sum(
                        1 for c in self.convs if c.cid and not c.assigned and not c.closed
                    ),
                    "bad": sum(self.stats.correctness[k] for k in ("duplicated", "misplaced")),
                    "interval": self.interval.to_dict(),
                },
            )
            self.interval = Histogram()


async def _sleep_until(t_ns: int) -> None:
    wait = (t_ns - time.monotonic_ns()) / 1e9
    if wait > 0:
        await asyncio.sleep(wait)
