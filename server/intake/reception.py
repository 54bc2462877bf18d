"""The reception: runs each client's intake and hands a finished one to the hub's queue.

The decisions are :class:`~server.intake.flow.IntakeFlow`'s; this module keeps the sessions in
memory, answers each client message with the next ``intake.step``, stores every finished
intake (an emergency sent to 112 included) and, when the citizen confirms the review of their
answers, asks the hub to queue the conversation with its triage, station, summary and identity.

A session is named by a token the client keeps (``intake.resume`` after a reconnect).

Identification reaches only the chat that asked for it. The identify step carries a link
with a one-time *ticket* (it lives ``TICKET_MINUTES``). Opening it (``/identity/start``)
uses the ticket up, sets a binding cookie in that browser and begins the login; the client's
step is sent again with a fresh ticket, so the button works a second time. When the provider
answers (``/identity/callback``) in the browser holding the binding cookie, the identity is
kept aside under a one-time *code*, which the callback page hands to the page that opened it
(``postMessage`` to its own origin). Only that page's websocket, the one that owns the intake,
can redeem the code with ``intake.identify``. A link sent to someone else therefore
identifies nobody: their browser has the code, the attacker's websocket does not.

Everything is bounded: sessions (``max_intake_sessions``, and ``max_intakes_per_address``
unfinished ones per client address), identifications in progress
(``max_pending_identifications``, ``max_identifications_per_address``). A full table refuses
new starts; it never evicts someone else's. Each table is kept in the order its entries
expire, so expiring looks only at its head. Sessions live for ``SESSION_MINUTES`` after
their last use; an unfinished intake is not worth keeping across a restart.
"""

from __future__ import annotations

import hmac
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from protocol import ErrorCode, Role
from protocol.messages import IntakeStart, IntakeStep
from server.bus.base import Envelope, Subscriber
from server.core.clock import Clock
from server.core.documents import IntakeDocument
from server.core.errors import HubError
from server.core.ids import hash_token, new_id, new_token
from server.core.model import Conversation, IntakeFacts
from server.guard.limits import AddressLimits, Hold, LimitError, check_joining_a_queue
from server.hub.hub import Hub
from server.intake.flow import (
    ClientIdentity,
    IntakeFlow,
    IntakeSession,
    Outcome,
    Step,
    StepKind,
    client_language,
    refusal,
)
from server.intake.questionnaire import AnswerError
from server.storage.base import AuditEvent, IntakeRecord, Store

__all__ = ["Reception"]

log = logging.getLogger("kanava.reception")

SESSION_MINUTES = 60
#: How long the identify step's link works (it is refreshed after each use).
TICKET_MINUTES = 10
#: How long an identification may take, from opening the link to redeeming the code.
IDENTIFY_MINUTES = 10


@dataclass
class _Live:
    session: IntakeSession
    subscriber: Subscriber | None
    touched_ms: int
    address: str = ""
    hold: Hold | None = None  # counts this unfinished intake against its address


@dataclass
class _Ticket:
    live: _Live
    expires_ms: int


@dataclass
class _Pending:
    """An identification begun at the provider, then (with ``code_hash``) waiting to be
    redeemed by the intake's own websocket."""

    id: str
    live: _Live
    binding_hash: str
    expires_ms: int
    hold: Hold | None = None
    identity: ClientIdentity | None = field(default=None, repr=False)
    code_hash: str | None = None


class Reception:
    def __init__(
        self,
        hub: Hub,
        flow: IntakeFlow,
        storage: Store,
        clock: Clock,
        local_now: Callable[[], datetime],
        limits: AddressLimits | None = None,
        *,
        max_sessions: int = 20_000,
        max_pending: int = 10_000,
        max_waiting: int = 0,
    ) -> None:
        self.hub = hub
        self.flow = flow
        self.storage = storage
        self.clock = clock
        self.local_now = local_now
        self.limits = limits or AddressLimits({}, {"open_intakes": 0, "identifications": 0})
        self.max_sessions = max_sessions
        self.max_pending = max_pending
        self.max_waiting = max_waiting
        # Each in the order its entries expire (touching a session moves it to the end).
        self._by_token: OrderedDict[str, _Live] = OrderedDict()
        self._by_ticket: OrderedDict[str, _Ticket] = OrderedDict()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._by_code: dict[str, str] = {}  # code hash -> pending id
        self._ended: OrderedDict[str, None] = OrderedDict()  # token hashes of ended intakes
        self._tokens: dict[str, str] = {}  # session id -> the client's token, for its steps

    def station_name(self, station_id: str, language: str | None) -> str | None:
        """A health station's name in ``language`` (the intake's languages; else Finnish)."""
        station = self.flow.areas.station(station_id)
        return station.name(client_language(language)) if station is not None else None

    def counts(self) -> dict[str, int]:
        """What is held in memory now (for tests, health and the operators)."""
        self._expire()
        return {
            "sessions": len(self._by_token),
            "tickets": len(self._by_ticket),
            "identifications": len(self._pending),
        }

    # --- client messages ------------------------------------------------------------------

    async def start(
        self, cmd: IntakeStart, subscriber: Subscriber, address: str = ""
    ) -> tuple[IntakeSession | None, Conversation | None]:
        """Begin an intake; a retried ``open_id`` of a queued chat returns that chat."""
        if cmd.open_id:
            again = self.hub.conversation_for_open_id(cmd.open_id)
            if again is not None:
                return None, await self.hub.reopen(again, subscriber)
        self._expire()
        if len(self._by_token) >= self.max_sessions:
            self._forget_ended_one()
        if len(self._by_token) >= self.max_sessions:
            raise LimitError(ErrorCode.BUSY, "the service is very busy: try again shortly", 30.0)
        self.limits.take("intakes", address, self.clock.monotonic())
        hold = self.limits.hold("open_intakes", address)
        try:
            return await self._start(cmd, subscriber, address, hold)
        except BaseException:
            hold.release()
            raise

    async def _start(
        self, cmd: IntakeStart, subscriber: Subscriber, address: str, hold: Hold
    ) -> tuple[IntakeSession | None, Conversation | None]:
        lang = client_language(cmd.language)
        token = new_token()
        closed = self.flow.closed_step(lang, self.local_now())
        try:
            form = self.flow.topics.start(cmd.topic, lang)
        except AnswerError as exc:
            raise HubError(ErrorCode(exc.code), exc.reason) from None
        bot_chat = self.hub.bot_conversation(cmd.bot_token) if cmd.bot_token else None
        session = IntakeSession(
            id=new_id("i"),
            token_hash=hash_token(token),
            topic_id=cmd.topic,
            lang=lang,
            bot_conversation_id=bot_chat.id if bot_chat is not None else None,
            started_ms=self.clock.now_ms(),
            form=form,
            open_id=cmd.open_id,
        )
        self.flow.prepare(session, cmd.station)
        live = _Live(session, subscriber, self.clock.now_ms(), address, hold)
        self._by_token[session.token_hash] = live
        self._tokens[session.id] = token
        if closed is not None:
            session.outcome = Outcome.CLOSED
            session.last_step = closed
            self._finished(live)
            self._send(live, closed)
            return session, None
        return session, await self._advance(live)

    def abandon(self, session: IntakeSession, subscriber: Subscriber) -> None:
        """The socket starts another intake: this one is over (one live intake per socket)."""
        live = self._by_token.get(session.token_hash)
        if live is not None and live.subscriber is subscriber:
            self._forget(live)

    async def answer(
        self, session: IntakeSession, question_id: str, value: Any
    ) -> Conversation | None:
        return await self._change(
            session, lambda now: self.flow.answer(session, question_id, value, now)
        )

    async def back(
        self, session: IntakeSession, question_id: str | None, step: str | None
    ) -> Conversation | None:
        """One step back, or to an answered question or the station (the review's links)."""
        return await self._change(
            session, lambda now: self.flow.back(session, now, question_id, step)
        )

    async def confirm(self, session: IntakeSession) -> Conversation | None:
        """The review's "Send": the chat is queued (a repeat finds the intake gone)."""
        return await self._change(session, lambda now: self.flow.confirm(session, now))

    async def stay_anonymous(self, session: IntakeSession) -> Conversation | None:
        conv = await self._change(session, lambda now: self.flow.stay_anonymous(session, now))
        # No identification is on its way any more: its place is free (the answers stay, and
        # identifying after all begins a new one).
        self._drop_pending(session)
        return conv

    async def choose_station(self, session: IntakeSession, station_id: str) -> Conversation | None:
        return await self._change(
            session, lambda now: self.flow.choose_station(session, station_id, now)
        )

    async def _change(
        self, session: IntakeSession, change: Callable[[datetime], None]
    ) -> Conversation | None:
        """Apply one of the flow's changes (a refusal changes nothing), then the next step."""
        live = self._live(session)
        try:
            change(self.local_now())
        except AnswerError as exc:
            raise HubError(ErrorCode(exc.code), exc.reason) from None
        return await self._advance(live)

    async def resume(
        self, token: str, subscriber: Subscriber
    ) -> tuple[IntakeSession, Conversation | None]:
        self._expire()
        live = self._by_token.get(hash_token(token))
        if live is None:
            raise HubError(ErrorCode.NO_INTAKE, "this intake has ended or expired: start again")
        live.subscriber = subscriber
        self._touch(live)
        session = live.session
        if session.conversation_id is not None:
            conv = self.hub.conversation(session.conversation_id)
            if conv is not None:
                return session, await self.hub.reopen(conv, subscriber)
        if session.outcome is None:
            # Where the intake stands now (the link of an identify step may be used up or
            # expired: a fresh one; the hours may have closed it meanwhile).
            step = self.flow.next_step(session, self.local_now())
            if step.kind is StepKind.READY:
                return session, await self._queue(live, step)
            if step.final:
                self._finished(live)
                await self._record(session, step, None)
        if session.last_step is not None:
            self._send(live, session.last_step)
        return session, None

    def detach(self, session: IntakeSession, subscriber: Subscriber) -> None:
        """The client's connection went away; the session waits for intake.resume."""
        live = self._by_token.get(session.token_hash)
        if live is not None and live.subscriber is subscriber:
            live.subscriber = None

    # --- identification -------------------------------------------------------------------

    def ticket_for(self, session: IntakeSession) -> str:
        """A one-time name of this session for its identify link (``TICKET_MINUTES``)."""
        live = self._live(session)
        self._expire()
        if session.ticket is not None:
            self._by_ticket.pop(session.ticket, None)
        session.ticket = new_token()
        expires = self.clock.now_ms() + TICKET_MINUTES * 60_000
        self._by_ticket[session.ticket] = _Ticket(live, expires)
        return session.ticket

    def begin_identification(self, ticket: str) -> tuple[str, str, str]:
        """``/identity/start``: use the ticket up; returns ``(pending id, binding, lang)``.

        The binding goes to the browser as a cookie; the callback must bring it back. The
        client's identify step is sent again with a fresh link.
        """
        self._expire()
        entry = self._by_ticket.get(ticket)
        if entry is None or entry.expires_ms < self.clock.now_ms():
            raise HubError(ErrorCode.NO_INTAKE, "this identification link is used or expired")
        live = entry.live
        session = live.session
        if session.outcome is not None or session.identity is not None:
            raise HubError(ErrorCode.INTAKE_FINISHED, refusal("finished", session.lang))
        if self._by_token.get(session.token_hash) is not live:
            raise HubError(ErrorCode.NO_INTAKE, "this intake has ended or expired: start again")
        # The limits first: a refused start leaves the link as it was, to try again later.
        previous = self._pending.get(session.pending_identification or "")
        if previous is None and len(self._pending) >= self.max_pending:
            raise LimitError(
                ErrorCode.BUSY, "too many identifications in progress: try again shortly", 60.0
            )
        if previous is not None and previous.hold is not None:
            # The new identification takes the place of the one this intake began before.
            hold, previous.hold = previous.hold, None
        else:
            hold = self.limits.hold("identifications", live.address)
        del self._by_ticket[ticket]
        session.ticket = None
        self._drop_pending(session)
        binding = new_token()
        pending = _Pending(
            id=new_token(),
            live=live,
            binding_hash=hash_token(binding),
            expires_ms=self.clock.now_ms() + IDENTIFY_MINUTES * 60_000,
            hold=hold,
        )
        self._pending[pending.id] = pending
        session.pending_identification = pending.id
        self._touch(live)
        if session.last_step is not None and session.last_step.kind is StepKind.IDENTIFY:
            session.last_step = self.flow.next_step(session, self.local_now())
            self._send(live, session.last_step)
        return pending.id, binding, session.lang

    def cancel_identification(self, pending_id: str) -> None:
        """The login could not be begun after all: forget it (and free its place)."""
        pending = self._pending.get(pending_id)
        if pending is not None:
            self._remove_pending(pending)

    def identification_lang(self, pending_id: str) -> str | None:
        pending = self._pending.get(pending_id)
        return None if pending is None else pending.live.session.lang

    def identification_done(self, pending_id: str, binding: str, identity: ClientIdentity) -> str:
        """``/identity/callback``: the provider vouched for someone. Keeps the identity aside
        and returns the one-time code that the intake's own page redeems."""
        self._expire()
        pending = self._pending.get(pending_id)
        if pending is None or pending.code_hash is not None:
            raise HubError(ErrorCode.NO_INTAKE, "this identification is not for a waiting chat")
        if not binding or not hmac.compare_digest(hash_token(binding), pending.binding_hash):
            # Completed in another browser than the one that opened the link.
            self._remove_pending(pending)
            raise HubError(ErrorCode.FORBIDDEN, "this identification was begun in another browser")
        code = new_token()
        pending.identity = identity
        pending.code_hash = hash_token(code)
        pending.expires_ms = self.clock.now_ms() + IDENTIFY_MINUTES * 60_000
        self._pending.move_to_end(pending.id)
        self._by_code[pending.code_hash] = pending.id
        return code

    async def redeem(self, session: IntakeSession, code: str) -> Conversation | None:
        """``intake.identify`` over the intake's own websocket: apply the identity."""
        live = self._live(session)
        self._expire()
        pending_id = self._by_code.get(hash_token(code))
        pending = self._pending.get(pending_id) if pending_id is not None else None
        if pending is None:
            raise HubError(ErrorCode.FORBIDDEN, "this identification code is not valid")
        if pending.live is not live:
            # Someone else's code: it is burnt, and this chat stays unidentified.
            self._remove_pending(pending)
            log.warning("an identification code was offered by another intake")
            raise HubError(ErrorCode.FORBIDDEN, "this identification belongs to another chat")
        self._remove_pending(pending)
        identity = pending.identity
        assert identity is not None
        return await self._change(session, lambda now: self.flow.identify(session, identity, now))

    # --- the steps ------------------------------------------------------------------------

    async def _advance(self, live: _Live) -> Conversation | None:
        session = live.session
        step = self.flow.next_step(session, self.local_now())
        if step.kind is StepKind.READY:
            if live.subscriber is None:
                # Complete while the client is away (e.g. identified in another tab): it is
                # queued when the client comes back with intake.resume.
                return None
            return await self._queue(live, step)
        if step.final:
            self._finished(live)
            await self._record(session, step, None)
        # An end stays with the session until it expires, so a client that comes back with
        # intake.resume is told again (call 112, the bot, ...).
        self._send(live, step)
        return None

    async def _queue(self, live: _Live, step: Step) -> Conversation:
        session = live.session
        team_id = self.flow.team_for(session)
        if not self.hub.has_team(team_id):
            raise HubError(ErrorCode.UNKNOWN_TEAM, f"no team '{team_id}' serves this station")
        summary = session.summary(session.lang)
        identity = session.identity
        bot_chat = (
            self.hub.conversation(session.bot_conversation_id)
            if session.bot_conversation_id
            else None
        )
        conversation_id = bot_chat.id if bot_chat is not None else new_id("c")
        record = IntakeRecord(
            session.id,
            session.started_ms,
            self.clock.now_ms(),
            session.topic_id,
            session.lang,
            step.triage or "routine",
            Outcome.QUEUED.value,
            session.answers(),
            conversation_id,
        )
        subscriber = live.subscriber
        if subscriber is None:
            raise HubError(ErrorCode.NO_INTAKE, "the client is not connected")
        self._check_waiting(live)
        facts = IntakeFacts(
            client_name=identity.name if identity is not None else None,
            topic=summary.title or session.topic_id,
            triage=step.triage,
            station_id=session.station_id,
            intake=IntakeDocument(session.topic_id, session.answers(), summary),
            identity=identity.document(self.local_now().date()) if identity is not None else None,
        )
        if bot_chat is not None:
            # From the bot to a nurse: the same chat, its whole transcript for the nurse.
            conv = await self.hub.hand_over(bot_chat, subscriber, team_id, facts, (record,))
        else:
            conv = await self.hub.create_conversation(
                subscriber,
                team_id=team_id,
                language=session.lang,
                open_key=hash_token(session.open_id) if session.open_id else None,
                facts=facts,
                extra_records=(record,),
                conversation_id=conversation_id,
                client_address=live.address,
            )
        session.outcome = Outcome.QUEUED
        session.conversation_id = conv.id
        self._forget(live)
        return conv

    def _check_waiting(self, live: _Live) -> None:
        """Limits per address on chats waiting for people. Refused, the intake stays as it
        is: ``intake.resume`` later queues it."""
        check_joining_a_queue(
            self.limits,
            live.address,
            self.hub.waiting_from(live.address),
            self.max_waiting,
            self.clock.monotonic(),
        )

    async def _record(
        self, session: IntakeSession, step: Step, conversation_id: str | None
    ) -> None:
        """Store how an intake ended (an emergency above all) with an audit row."""
        if session.outcome is Outcome.CLOSED and not session.answers():
            return  # nothing was asked: there is nothing to keep
        now = self.clock.now_ms()
        outcome = session.outcome.value if session.outcome else step.kind.value
        record = IntakeRecord(
            session.id,
            session.started_ms,
            now,
            session.topic_id,
            session.lang,
            step.triage or session.triage().value,
            outcome,
            session.answers(),
            conversation_id,
        )
        audit = AuditEvent(
            now, None, Role.CLIENT.value, session.id, f"intake_{outcome}", session.topic_id
        )
        try:
            await self.storage.save_intake(record, (audit,))
        except Exception:
            # The client is still told what to do (call 112 first, always); the log says
            # the record is missing.
            log.exception("could not store intake %s (%s)", session.id, outcome)

    def _send(self, live: _Live, step: Step) -> None:
        if live.subscriber is None:
            return
        token = self._tokens.get(live.session.id)
        msg = IntakeStep(
            step=step.kind.value,
            token=token or "-",
            detail=step.detail,
            triage=step.triage,
            progress=step.progress,
            back=step.back,
        )
        live.subscriber.deliver(Envelope(msg))

    # --- bookkeeping ----------------------------------------------------------------------

    def _live(self, session: IntakeSession) -> _Live:
        live = self._by_token.get(session.token_hash)
        if live is None:
            raise HubError(ErrorCode.NO_INTAKE, "this intake has ended or expired: start again")
        self._touch(live)
        return live

    def _touch(self, live: _Live) -> None:
        live.touched_ms = self.clock.now_ms()
        self._by_token.move_to_end(live.session.token_hash)

    def _finished(self, live: _Live) -> None:
        """An end was reached: the session stays (to tell a returning client again) but no
        longer counts against its address, and gives way first when the table is full."""
        if live.hold is not None:
            live.hold.release()
        self._drop_pending(live.session)  # an identification for an ended intake is moot
        if live.session.token_hash in self._by_token:
            self._ended[live.session.token_hash] = None

    def _forget_ended_one(self) -> None:
        """Make room by forgetting the intake that ended first (never one being answered)."""
        while self._ended:
            token_hash, _ = self._ended.popitem(last=False)
            live = self._by_token.get(token_hash)
            if live is not None:
                self._forget(live)
                return

    def _drop_pending(self, session: IntakeSession) -> None:
        if session.pending_identification is not None:
            pending = self._pending.get(session.pending_identification)
            if pending is not None:
                self._remove_pending(pending)
            session.pending_identification = None

    def _remove_pending(self, pending: _Pending) -> None:
        self._pending.pop(pending.id, None)
        if pending.code_hash is not None:
            self._by_code.pop(pending.code_hash, None)
        if pending.hold is not None:
            pending.hold.release()
        if pending.live.session.pending_identification == pending.id:
            pending.live.session.pending_identification = None

    def _forget(self, live: _Live) -> None:
        self._by_token.pop(live.session.token_hash, None)
        self._ended.pop(live.session.token_hash, None)
        if live.session.ticket is not None:
            self._by_ticket.pop(live.session.ticket, None)
        self._drop_pending(live.session)
        self._tokens.pop(live.session.id, None)
        self._finished(live)

    def _expire(self) -> None:
        """Forget what has expired, looking only at the head of each table."""
        now = self.clock.now_ms()
        cutoff = now - SESSION_MINUTES * 60_000
        while self._by_token:
            live = next(iter(self._by_token.values()))
            if live.touched_ms >= cutoff:
                break
            self._forget(live)
        while self._by_ticket:
            ticket, entry = next(iter(self._by_ticket.items()))
            if entry.expires_ms >= now:
                break
            del self._by_ticket[ticket]
        while self._pending:
            pending = next(iter(self._pending.values()))
            if pending.expires_ms >= now:
                break
            self._remove_pending(pending)


# The reception of a running application, when it runs the intake.
RECEPTION = web.AppKey("reception", Reception)
