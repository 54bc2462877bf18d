"""One websocket connection: read, decode, dispatch to the hub, encode, send.

Sending
-------
Frames for a connection are collected during one event-loop iteration and written with one
call (see :meth:`Connection._flush`). A publisher never waits for a receiver: when a receiver
stops reading, its socket's send buffer grows, and past ``send_buffer_bytes`` it is
disconnected (close code 4001, ``slow_consumer``) instead of slowing anyone else. It can
reconnect and resume without losing anything, because every message is in storage.

Ordering and resume
-------------------
Per conversation the connection remembers the highest ``seq`` it has delivered (its cursor)
and drops any ``message.new`` at or below it, so nothing is delivered twice. While it is
sending history (after a resume, an ``auth`` with cursors, an assignment or an explicit
``conversation.sync``), live messages of that conversation are held back and released after
the history, each only if newer than what the history contained. The receiver thus sees every
message exactly once and in ``seq`` order, whatever the timing of commits and reads.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import WSMsgType, web

from protocol import Codec, ErrorCode, KanavaError, ProtocolError, Role
from protocol.errors import CloseCode
from protocol.extras import BotExtras
from protocol.messages import (
    Auth,
    AvailabilitySet,
    BotStart,
    ChatMessage,
    ConversationClose,
    ConversationOpen,
    ConversationOpened,
    ConversationResume,
    ConversationStateChanged,
    ConversationSync,
    ConversationTransfer,
    DraftSet,
    Error,
    FeedbackSaved,
    FeedbackSend,
    IntakeAnonymous,
    IntakeAnswer,
    IntakeBack,
    IntakeConfirm,
    IntakeIdentify,
    IntakeResume,
    IntakeStart,
    IntakeStation,
    Message,
    MessageHistory,
    MessageNew,
    MessageSend,
    Ping,
    Pong,
    QueueTake,
    ReadMark,
    TypingSet,
    Welcome,
)
from server.bot.accounts import BOT_NAME, BOT_TEAM
from server.bus.base import Envelope
from server.console.auth import SESSION_COOKIE, cookie_name
from server.console.drafts import set_draft
from server.console.feedback import save_feedback
from server.console.sessions import professional_for_session
from server.core.client_view import for_client
from server.core.clock import Clock
from server.core.errors import HubError, error_message, internal_error
from server.core.ids import hash_token, new_id
from server.core.model import Conversation
from server.guard.limits import AddressLimits, check_joining_a_queue
from server.guard.ratelimit import TokenBucket
from server.hub.hub import Actor, Hub
from server.hub.topics import conversation_topic
from server.intake.flow import IntakeSession, client_language
from server.intake.reception import Reception
from server.settings import Settings

__all__ = ["Connection"]

log = logging.getLogger("kanava.connection")


@dataclass(slots=True)
class _Sync:
    """Live messages held back while history of a conversation is being sent."""

    pending: int = 0
    held: list[Envelope] = field(default_factory=list)
    revoked: bool = False  # the conversation left this professional meanwhile


class Connection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        codec: Codec,
        role: Role,
        hub: Hub,
        settings: Settings,
        clock: Clock,
        reception: Reception | None = None,
        limits: AddressLimits | None = None,
        address: str = "",
    ) -> None:
        self.ws = ws
        self.subscriber_id = new_id("s")
        self.reception = reception
        self.limits = limits
        # What limits per address count by (the endpoint's key of the client behind trusted
        # proxies: IPv6 per /64).
        self.address = address
        self.intake: IntakeSession | None = None
        self.request = request
        self.codec = codec
        self.role = role
        self.hub = hub
        self.settings = settings
        self.clock = clock
        self.actor: Actor | None = None
        self.session_hash: str | None = None
        self.closed = False
        self._first_byte = 0x82 if codec.binary else 0x81  # FIN + binary or text opcode
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self._cursors: dict[str, int] = {}
        self._syncs: dict[str, _Sync] = {}
        self._sync_lock = asyncio.Lock()
        self._auth_cursors: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._close_task: asyncio.Task[None] | None = None
        if role is Role.CLIENT:
            rate, burst = settings.client_rate_per_second, settings.client_rate_burst
        else:
            rate, burst = settings.pro_rate_per_second, settings.pro_rate_burst
        self._bucket = TokenBucket(rate, burst, clock.monotonic())
        handlers: dict[type[Message], Callable[[Any], Awaitable[None]]] = {
            ConversationOpen: self._on_open,
            BotStart: self._on_bot_start,
            IntakeStart: self._on_intake_start,
            IntakeAnswer: self._on_intake_answer,
            IntakeBack: self._on_intake_back,
            IntakeConfirm: self._on_intake_confirm,
            IntakeAnonymous: self._on_intake_anonymous,
            IntakeStation: self._on_intake_station,
            IntakeResume: self._on_intake_resume,
            IntakeIdentify: self._on_intake_identify,
            ConversationResume: self._on_resume,
            Auth: self._on_auth,
            DraftSet: self._on_draft,
            FeedbackSend: self._on_feedback,
            AvailabilitySet: self._on_availability,
            QueueTake: self._on_take,
            ConversationTransfer: self._on_transfer,
            ConversationClose: self._on_close,
            ConversationSync: self._on_sync,
            ReadMark: self._on_read,
        }
        self._handlers = handlers

    # --- the read side --------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                if frame.type is WSMsgType.TEXT or frame.type is WSMsgType.BINARY:
                    data = frame.data
                    await self.receive(data, frame.type is WSMsgType.BINARY)
                    if self.closed:
                        break
                elif frame.type is WSMsgType.ERROR:
                    log.info("connection error: %r", self.ws.exception())
                    break
        finally:
            self._cleanup()
            if self._close_task is not None:
                # Let the slow-consumer close go out with its own code before the handler's.
                await asyncio.wait([self._close_task], timeout=3)

    async def receive(self, data: bytes | str, binary: bool) -> None:
        """Handle one frame; every refusal is answered with an ``error`` message."""
        wait = self._bucket.take(self.clock.monotonic())
        if wait:
            self.send(
                Error(
                    code=ErrorCode.RATE_LIMITED.value,
                    reason="too many messages: slow down and send this again",
                    ref=_peek_ref(self.codec, data, binary),
                    retry_after_ms=max(1, math.ceil(wait * 1000)),
                )
            )
            return
        try:
            msg = self.codec.decode_inbound(data, self.role, binary)
        except ProtocolError as exc:
            if not binary and isinstance(data, bytes) and not _is_utf8(data):
                # Not a wrong message but a broken websocket: RFC 6455 says close (1007).
                await self.close(CloseCode.INVALID_TEXT, "a text frame must be UTF-8")
                return
            self.send(error_message(exc, ref=_peek_ref(self.codec, data, binary)))
            return
        ref = msg.msg_id if type(msg) is MessageSend else msg.type
        try:
            await self._dispatch(msg)
        except KanavaError as exc:
            self.send(error_message(exc, ref=ref))
        except Exception:
            log.exception("could not handle %s", msg.type)
            self.send(internal_error(ref))

    async def _dispatch(self, msg: Message) -> None:
        kind = type(msg)
        # The hot path first: chat messages and typing need no task switch.
        if kind is MessageSend:
            assert isinstance(msg, MessageSend)
            actor = self._actor()
            if msg.pane is not None and msg.pane != msg.conversation_id:
                # The console says which pane the text was written in: a send addressed to
                # another chat than the one that pane shows would reach the wrong patient.
                raise HubError(
                    ErrorCode.PANE_MISMATCH,
                    "not sent: this message was written in another chat's pane",
                )
            if self.limits is not None and actor.conversation_id is not None:
                # Per conversation, not per socket: many sockets resuming one chat share it.
                self.limits.take("messages", actor.conversation_id, self.clock.monotonic())
            extras = None
            if msg.quick_replies is not None or msg.actions is not None:
                if actor.professional is None or not actor.professional.bot:
                    raise HubError(ErrorCode.INVALID_FIELD, "only a bot sends buttons and links")
                extras = BotExtras.from_wire(msg.quick_replies, msg.actions)
            self.hub.send_message(
                actor, msg.conversation_id, msg.msg_id, msg.text, self.send, self, extras
            )
        elif kind is TypingSet:
            assert isinstance(msg, TypingSet)
            self.hub.typing(self._actor(), msg.conversation_id, msg.typing, self)
        elif kind is Ping:
            assert isinstance(msg, Ping)
            self.send(Pong(nonce=msg.nonce))
        else:
            await self._handlers[kind](msg)

    def _actor(self) -> Actor:
        if self.actor is None:
            if self.role is Role.CLIENT:
                raise HubError(
                    ErrorCode.NO_CONVERSATION,
                    "open a conversation (conversation.open) or resume one first",
                )
            raise HubError(ErrorCode.AUTH_REQUIRED, "authenticate first (auth)")
        return self.actor

    def _not_bound(self) -> None:
        if self.actor is not None:
            raise HubError(ErrorCode.ALREADY_OPEN, "this connection already has its party")

    async def _on_open(self, msg: ConversationOpen) -> None:
        self._not_bound()
        if self.settings.intake_required:
            raise HubError(
                ErrorCode.INTAKE_REQUIRED,
                "start with the pre-chat questions (intake.start): chats are opened by the intake",
            )
        if self.limits is not None and not (
            msg.open_id and self.hub.conversation_for_open_id(msg.open_id)
        ):
            # Without the intake, the same limits on joining a queue as through it.
            check_joining_a_queue(
                self.limits,
                self.address,
                self.hub.waiting_from(self.address),
                self.settings.max_waiting_per_address,
                self.clock.monotonic(),
            )
        conv = await self.hub.open_conversation(msg, self, self.address)
        self.actor = Actor.for_client(conv)
        self._sync_reopened(conv)

    async def _on_bot_start(self, msg: BotStart) -> None:
        """A chat with the advice bot: anonymous, at any hour, without the intake."""
        self._not_bound()
        if not self.hub.has_team(BOT_TEAM):
            raise HubError(ErrorCode.UNKNOWN_TEAM, "this server runs no advice bot")
        if not self.hub.bot_online(BOT_TEAM):
            raise HubError(ErrorCode.TARGET_UNAVAILABLE, "the advice bot is not available now")
        if msg.open_id and (again := self.hub.conversation_for_open_id(msg.open_id)):
            conv = await self.hub.reopen(again, self)
            self._sync_reopened(conv)
        else:
            if self.limits is not None:
                self.limits.take("bot_chats", self.address, self.clock.monotonic())
            conv = await self.hub.create_conversation(
                self,
                team_id=BOT_TEAM,
                topic=BOT_NAME,
                language=client_language(msg.language),
                open_key=hash_token(msg.open_id) if msg.open_id else None,
                client_address=self.address,
            )
        self._bind_client(conv)

    def _sync_reopened(self, conv: Conversation) -> None:
        """A retried open found its chat with messages already in it (a nurse answered
        while the first answer was lost): this connection gets them all."""
        if conv.last_seq > 0:
            self._request_sync(conv.id, 0)

    # --- the intake -----------------------------------------------------------------------

    def _reception(self) -> Reception:
        if self.reception is None:
            raise HubError(ErrorCode.NO_INTAKE, "this server runs no intake")
        return self.reception

    def _session(self) -> IntakeSession:
        if self.intake is None:
            raise HubError(ErrorCode.NO_INTAKE, "start the intake first (intake.start)")
        return self.intake

    def _bind_client(self, conv: Conversation | None) -> None:
        if conv is not None and self.actor is None:
            self.actor = Actor.for_client(conv)
            # The intake is over (the reception has forgotten it): let its answers go.
            self.intake = None

    async def _on_intake_start(self, msg: IntakeStart) -> None:
        self._not_bound()
        reception = self._reception()
        if self.intake is not None:
            # One live intake per socket: starting again ends the one before.
            reception.abandon(self.intake, self)
            self.intake = None
        session, conv = await reception.start(msg, self, self.address)
        self.intake = session
        self._bind_client(conv)

    async def _on_intake_answer(self, msg: IntakeAnswer) -> None:
        self._not_bound()
        conv = await self._reception().answer(self._session(), msg.question_id, msg.value)
        self._bind_client(conv)

    async def _on_intake_back(self, msg: IntakeBack) -> None:
        self._not_bound()
        conv = await self._reception().back(self._session(), msg.question_id, msg.step)
        self._bind_client(conv)

    async def _on_intake_confirm(self, msg: IntakeConfirm) -> None:
        self._not_bound()
        self._bind_client(await self._reception().confirm(self._session()))

    async def _on_intake_anonymous(self, msg: IntakeAnonymous) -> None:
        self._not_bound()
        self._bind_client(await self._reception().stay_anonymous(self._session()))

    async def _on_intake_station(self, msg: IntakeStation) -> None:
        self._not_bound()
        self._bind_client(await self._reception().choose_station(self._session(), msg.station))

    async def _on_intake_resume(self, msg: IntakeResume) -> None:
        self._not_bound()
        session, conv = await self._reception().resume(msg.token, self)
        self.intake = session
        self._bind_client(conv)

    async def _on_intake_identify(self, msg: IntakeIdentify) -> None:
        self._not_bound()
        self._bind_client(await self._reception().redeem(self._session(), msg.code))

    async def _on_resume(self, msg: ConversationResume) -> None:
        self._not_bound()
        conv = await self.hub.resume_conversation(msg.token, self)
        self.actor = Actor.for_client(conv)
        # A client cannot have seen more than has been delivered: a higher claim would hide
        # messages from it, so it is taken as "everything so far".
        self._request_sync(conv.id, min(msg.last_seq, conv.last_seq))

    async def _on_auth(self, msg: Auth) -> None:
        self._not_bound()
        # The console's session is its HttpOnly cookie, sent with the websocket's upgrade
        # request; scripts and bots send the token from POST /api/login instead.
        cookie = cookie_name(SESSION_COOKIE, self.settings.dev_insecure_cookies)
        token = msg.token or self.request.cookies.get(cookie)
        if not token:
            raise HubError(ErrorCode.AUTH_FAILED, "not signed in: sign in first")
        pro = await professional_for_session(self.hub, self.hub.storage, self.clock, token)
        self.actor = Actor.for_professional(pro)
        self.session_hash = hash_token(token)
        self._auth_cursors = dict(msg.cursors or {})
        await self.hub.connect_professional(pro, self)

    async def _on_feedback(self, msg: FeedbackSend) -> None:
        cid = await save_feedback(
            self.hub, self.hub.storage, self.clock, self._actor(), msg.rating, msg.comment
        )
        self.send(FeedbackSaved(conversation_id=cid))

    async def _on_draft(self, msg: DraftSet) -> None:
        await set_draft(
            self.hub, self.hub.storage, self.clock, self._actor(), msg.conversation_id, msg.text
        )

    async def _on_availability(self, msg: AvailabilitySet) -> None:
        actor = self._actor()
        assert actor.professional is not None
        await self.hub.set_availability(actor.professional, msg.available)

    async def _on_take(self, msg: QueueTake) -> None:
        await self.hub.take(self._actor(), msg.conversation_id, msg.team)

    async def _on_transfer(self, msg: ConversationTransfer) -> None:
        if (msg.to_professional is None) == (msg.to_team is None):
            raise HubError(
                ErrorCode.INVALID_FIELD, "give either to_professional or to_team, not both"
            )
        if msg.to_team is not None:
            await self.hub.transfer_to_team(
                self._actor(), msg.conversation_id, msg.to_team, msg.note, msg.escalate
            )
        else:
            assert msg.to_professional is not None
            await self.hub.transfer(
                self._actor(), msg.conversation_id, msg.to_professional, msg.note, msg.escalate
            )

    async def _on_close(self, msg: ConversationClose) -> None:
        await self.hub.close(self._actor(), msg.conversation_id, msg.reason)

    async def _on_read(self, msg: ReadMark) -> None:
        await self.hub.mark_read(self._actor(), msg.conversation_id, msg.seq, self)

    async def _on_sync(self, msg: ConversationSync) -> None:
        cid = self.hub.readable_conversation(self._actor(), msg.conversation_id)
        self._request_sync(cid, msg.after_seq)

    # --- delivery -------------------------------------------------------------------------

    def deliver(self, envelope: Envelope) -> None:
        """Called by the bus (and the hub) with an event for this connection."""
        if self.closed:
            return
        msg = envelope.message
        kind = type(msg)
        if kind is MessageNew:
            assert isinstance(msg, MessageNew)
            cid, seq = msg.message.conversation_id, msg.message.seq
            sync = self._syncs.get(cid)
            if sync is not None:
                sync.held.append(envelope)
                return
            if seq <= self._cursors.get(cid, 0):
                return
            self._cursors[cid] = seq
        elif kind is ConversationStateChanged and self.role is Role.PROFESSIONAL:
            assert isinstance(msg, ConversationStateChanged)
            self._follow_assignment(msg)
        elif kind is Welcome:
            assert isinstance(msg, Welcome)
            for view in msg.conversations:
                cid = view.conversation_id
                self._request_sync(cid, min(self._auth_cursors.get(cid, 0), view.last_seq))
        elif kind is ConversationOpened:
            assert isinstance(msg, ConversationOpened)
            self._cursors[msg.conversation.conversation_id] = 0
            if self.actor is None and self.role is Role.CLIENT:
                # An intake completed from outside this connection (identification came
                # back over HTTP): the chat it opened is this connection's now.
                self._bind_client(self.hub.conversation(msg.conversation.conversation_id))
        if self.role is Role.CLIENT and isinstance(
            msg, ConversationStateChanged | ConversationOpened
        ):
            # The view is made for both parties: the client's copy goes without what is for
            # professionals only (the identity document, the questionnaire, a transfer's note).
            own = replace(msg, conversation=for_client(msg.conversation, self._station_name))
            self._enqueue(self.codec.encode(own))
            return
        self._enqueue(envelope.encoded(self.codec))

    def _station_name(self, station_id: str, language: str | None) -> str | None:
        return self.reception.station_name(station_id, language) if self.reception else None

    def _follow_assignment(self, msg: ConversationStateChanged) -> None:
        view = msg.conversation
        cid = view.conversation_id
        mine = (
            self.actor is not None
            and view.professional is not None
            and view.professional.id == self.actor.id
            and view.state == "assigned"
        )
        sync = self._syncs.get(cid)
        if mine and cid not in self._cursors and (sync is None or sync.revoked):
            # Newly assigned (taken, auto-assigned or transferred here): send the history.
            self._request_sync(cid, 0)
        elif not mine and view.state != "closed":
            # No longer ours: forget it, including history still being sent, so that nothing
            # of this conversation reaches this professional after they were told.
            self._cursors.pop(cid, None)
            if sync is not None:
                sync.revoked = True
                sync.held.clear()

    def send(self, msg: Message) -> None:
        """Send a message to this connection only."""
        if not self.closed:
            self._enqueue(self.codec.encode(msg))

    def _enqueue(self, data: bytes) -> None:
        if self.closed:
            return
        n = len(data)
        if n < 126:
            header = bytes((self._first_byte, n))
        elif n < 65536:
            header = struct.pack("!BBH", self._first_byte, 126, n)
        else:
            header = struct.pack("!BBQ", self._first_byte, 127, n)
        self._out.append(header)
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write every frame queued in this loop iteration with one call.

        Server frames are never masked nor compressed here, so they are written as bytes
        straight to the transport, after aiohttp's handshake: no task, no await per frame.
        One group commit that acknowledges many messages thus costs each connection one
        write. The transport's buffer is this connection's bounded send queue: when it
        holds more than ``send_buffer_bytes`` the peer is not reading, and is dropped.
        """
        self._flush_scheduled = False
        out, self._out = self._out, []
        transport = self.request.transport
        if self.closed or not out:
            return
        if transport is None or transport.is_closing():
            self.closed = True
            return
        transport.write(b"".join(out))
        if transport.get_write_buffer_size() > self.settings.send_buffer_bytes:
            self._drop_slow_consumer()

    # --- history --------------------------------------------------------------------------

    def _request_sync(self, cid: str, after_seq: int) -> None:
        sync = self._syncs.get(cid)
        if sync is None or sync.revoked:
            sync = self._syncs[cid] = _Sync()
        sync.pending += 1
        self._spawn(self._run_sync(cid, after_seq, sync))

    async def _run_sync(self, cid: str, after_seq: int, sync: _Sync) -> None:
        try:
            async with self._sync_lock:
                last = after_seq
                page_size = self.settings.history_page
                while True:
                    if self.closed or sync.revoked:
                        return
                    page = await self.hub.storage.history(cid, last, page_size)
                    if self.closed or sync.revoked:
                        return
                    up_to_date = len(page) < page_size
                    if page:
                        last = page[-1].seq
                    chunks = _chunks_by_size(page)
                    for i, chunk in enumerate(chunks):
                        done = up_to_date and i == len(chunks) - 1
                        self.send(MessageHistory(cid, tuple(chunk), done))
                    if up_to_date:
                        break
                if last > self._cursors.get(cid, -1):
                    self._cursors[cid] = last
        finally:
            sync.pending -= 1
            if sync.pending == 0 and self._syncs.get(cid) is sync:
                del self._syncs[cid]
                if not sync.revoked:
                    for envelope in sync.held:
                        self.deliver(envelope)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("connection task failed: %r", exc)

    # --- closing --------------------------------------------------------------------------

    def _drop_slow_consumer(self) -> None:
        log.warning("closing a connection that does not read its messages (slow consumer)")
        self._out.clear()
        self._close_task = asyncio.get_running_loop().create_task(
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect and resume")
        )
        self.closed = True

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``; if the peer does not let the close frame through, abort."""
        self.closed = True
        try:
            await asyncio.wait_for(
                self.ws.close(code=code, message=reason.encode("utf-8")), timeout=2.0
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    def _cleanup(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        if self.intake is not None and self.reception is not None:
            self.reception.detach(self.intake, self)
        actor = self.actor
        if actor is None:
            return
        if actor.professional is not None:
            self.hub.disconnect_professional(actor.professional, self)
        elif actor.conversation_id is not None:
            self.hub.bus.unsubscribe(conversation_topic(actor.conversation_id), self)


HISTORY_FRAME_CHARS = 100_000  # keeps a history frame well under 1 MiB, whatever the text


def _chunks_by_size(page: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Split a page of history so that no frame carries more than HISTORY_FRAME_CHARS."""
    chunks: list[list[ChatMessage]] = [[]]
    size = 0
    for message in page:
        if chunks[-1] and size + len(message.text) > HISTORY_FRAME_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(message)
        size += len(message.text)
    return chunks


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _peek_ref(codec: Codec, data: bytes | str, binary: bool) -> str | None:
    """The msg_id or type of a refused frame, if it can be read at all (for ``error.ref``)."""
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        value = codec.loads(raw)
    except Exception:
        return None
    if type(value) is not dict:
        return None
    ref = value.get("msg_id") if value.get("type") == "message.send" else value.get("type")
    return ref[:64] if type(ref) is str and ref else None
