"""The reception: runs each client's intake and hands a finished one to the hub's queue.

The decisions are :class:`~server.intake.IntakeFlow`'s; this module keeps the sessions in
memory, answers each client message with the next ``intake.step``, stores every finished
intake (an emergency sent to 112 included) and, when the intake is complete, asks the hub to
queue the conversation with its triage, station, summary and identity.

A session is named by a token the client keeps (``intake.resume`` after a reconnect) and,
during identification, by a one-time ticket carried through the identity provider: the
browser comes back to ``/identity/callback`` with it, and the step that follows reaches the
client's websocket (or waits for its ``intake.resume``). Sessions live for
``SESSION_MINUTES``; an unfinished intake is not worth keeping across a restart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocol import ErrorCode, Role
from protocol.messages import IntakeStart, IntakeStep

from .auth import hash_token, new_id, new_token
from .bus import Envelope, Subscriber
from .clock import Clock
from .conversations import Conversation, IntakeFacts
from .errors import HubError
from .hub import Hub
from .intake import (
    ClientIdentity,
    IntakeFlow,
    IntakeSession,
    Outcome,
    Step,
    StepKind,
    client_language,
    refusal,
)
from .questionnaire import AnswerError
from .storage import Storage

__all__ = ["Reception"]

log = logging.getLogger("kanava.reception")

SESSION_MINUTES = 60


@dataclass
class _Live:
    session: IntakeSession
    subscriber: Subscriber | None
    touched_ms: int


class Reception:
    def __init__(
        self,
        hub: Hub,
        flow: IntakeFlow,
        storage: Storage,
        clock: Clock,
        local_now: Callable[[], datetime],
    ) -> None:
        self.hub = hub
        self.flow = flow
        self.storage = storage
        self.clock = clock
        self.local_now = local_now
        self._by_token: dict[str, _Live] = {}
        self._by_ticket: dict[str, _Live] = {}
        self._tokens: dict[str, str] = {}  # session id -> the client's token, for its steps

    # --- client messages ------------------------------------------------------------------

    async def start(
        self, cmd: IntakeStart, subscriber: Subscriber
    ) -> tuple[IntakeSession | None, Conversation | None]:
        """Begin an intake; a retried ``open_id`` of a queued chat returns that chat."""
        if cmd.open_id:
            again = self.hub.conversation_for_open_id(cmd.open_id)
            if again is not None:
                return None, await self.hub.reopen(again, subscriber)
        self._expire()
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
        live = _Live(session, subscriber, self.clock.now_ms())
        self._by_token[session.token_hash] = live
        self._tokens[session.id] = token
        if closed is not None:
            session.outcome = Outcome.CLOSED
            session.last_step = closed
            self._send(live, closed)
            return session, None
        return session, await self._advance(live)

    async def answer(
        self, session: IntakeSession, question_id: str, value: Any
    ) -> Conversation | None:
        live = self._live(session)
        if session.outcome is not None:
            raise HubError(ErrorCode.INTAKE_FINISHED, refusal("finished", session.lang))
        try:
            session.form.answer(question_id, value)
        except AnswerError as exc:
            raise HubError(ErrorCode(exc.code), exc.reason) from None
        return await self._advance(live)

    async def stay_anonymous(self, session: IntakeSession) -> Conversation | None:
        live = self._live(session)
        self._waiting_for(session, StepKind.IDENTIFY)
        session.anonymous = True
        return await self._advance(live)

    async def choose_station(self, session: IntakeSession, station_id: str) -> Conversation | None:
        live = self._live(session)
        self._waiting_for(session, StepKind.STATION)
        if self.flow.areas.station(station_id) is None:
            raise HubError(ErrorCode.UNKNOWN_STATION, refusal("unknown_station", session.lang))
        session.station_id = station_id
        return await self._advance(live)

    async def resume(
        self, token: str, subscriber: Subscriber
    ) -> tuple[IntakeSession, Conversation | None]:
        self._expire()
        live = self._by_token.get(hash_token(token))
        if live is None:
            raise HubError(ErrorCode.NO_INTAKE, "this intake has ended or expired: start again")
        live.subscriber = subscriber
        live.touched_ms = self.clock.now_ms()
        session = live.session
        if session.conversation_id is not None:
            conv = self.hub.conversations.get(session.conversation_id)
            if conv is not None:
                return session, await self.hub.reopen(conv, subscriber)
        if session.outcome is None and session.last_step is not None:
            if session.last_step.kind is StepKind.READY:
                return session, await self._queue(live, session.last_step)
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
        """A one-time name of this session for the identification round trip."""
        live = self._live(session)
        if session.ticket is not None:
            self._by_ticket.pop(session.ticket, None)
        session.ticket = new_token()
        self._by_ticket[session.ticket] = live
        return session.ticket

    def session_for_ticket(self, ticket: str) -> IntakeSession | None:
        live = self._by_ticket.get(ticket)
        return None if live is None else live.session

    async def identified(self, ticket: str, identity: ClientIdentity) -> IntakeSession:
        """The identity provider vouched for the person behind ``ticket``."""
        live = self._by_ticket.pop(ticket, None)
        if live is None:
            raise HubError(ErrorCode.NO_INTAKE, "this identification is not for a waiting chat")
        session = live.session
        session.ticket = None
        if session.outcome is not None or session.identity is not None:
            raise HubError(ErrorCode.INTAKE_FINISHED, refusal("finished", session.lang))
        session.identity = identity
        live.touched_ms = self.clock.now_ms()
        await self._advance(live)
        return session

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
            await self._record(session, step, None)
        # An end stays with the session until it expires, so a client that comes back with
        # intake.resume is told again (call 112, the bot, ...).
        self._send(live, step)
        return None

    async def _queue(self, live: _Live, step: Step) -> Conversation:
        session = live.session
        team_id = self.flow.team_for(session)
        if team_id not in self.hub.teams:
            raise HubError(ErrorCode.UNKNOWN_TEAM, f"no team '{team_id}' serves this station")
        summary = session.summary(session.lang)
        intake_doc = {
            "topic": session.topic_id,
            "answers": session.form.answers(),
            "summary": summary,
        }
        identity = session.identity
        identity_doc = None
        if identity is not None:
            identity_doc = {
                "record": identity.to_record(),
                "view": identity.view(self.local_now().date()),
            }
        bot_chat = (
            self.hub.conversations.get(session.bot_conversation_id)
            if session.bot_conversation_id
            else None
        )
        conversation_id = bot_chat.id if bot_chat is not None else new_id("c")
        record = self.storage.intake_statement(
            session.id,
            session.started_ms,
            self.clock.now_ms(),
            session.topic_id,
            session.lang,
            step.triage or "routine",
            Outcome.QUEUED.value,
            session.answers_json(),
            conversation_id,
        )
        subscriber = live.subscriber
        if subscriber is None:
            raise HubError(ErrorCode.NO_INTAKE, "the client is not connected")
        facts = IntakeFacts(
            client_name=identity.name if identity is not None else None,
            topic=summary.get("title") or session.topic_id,
            triage=step.triage,
            station_id=session.station_id,
            intake_json=json.dumps(intake_doc, ensure_ascii=False),
            identity_json=json.dumps(identity_doc, ensure_ascii=False) if identity_doc else None,
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
                extra_statements=(record,),
                conversation_id=conversation_id,
            )
        session.outcome = Outcome.QUEUED
        session.conversation_id = conv.id
        self._forget(live)
        return conv

    async def _record(
        self, session: IntakeSession, step: Step, conversation_id: str | None
    ) -> None:
        """Store how an intake ended (an emergency above all) with an audit row."""
        if session.outcome is Outcome.CLOSED and not session.form.answers():
            return  # nothing was asked: there is nothing to keep
        now = self.clock.now_ms()
        outcome = session.outcome.value if session.outcome else step.kind.value
        record = self.storage.intake_statement(
            session.id,
            session.started_ms,
            now,
            session.topic_id,
            session.lang,
            step.triage or session.triage().value,
            outcome,
            session.answers_json(),
            conversation_id,
        )
        audit = self.storage.audit_statement(
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
        )
        live.subscriber.deliver(Envelope(msg))

    # --- bookkeeping ----------------------------------------------------------------------

    def _live(self, session: IntakeSession) -> _Live:
        live = self._by_token.get(session.token_hash)
        if live is None:
            raise HubError(ErrorCode.NO_INTAKE, "this intake has ended or expired: start again")
        live.touched_ms = self.clock.now_ms()
        return live

    @staticmethod
    def _waiting_for(session: IntakeSession, kind: StepKind) -> None:
        if session.outcome is not None:
            raise HubError(ErrorCode.INTAKE_FINISHED, refusal("finished", session.lang))
        if session.last_step is None or session.last_step.kind is not kind:
            key = "not_identify" if kind is StepKind.IDENTIFY else "not_station"
            raise HubError(ErrorCode.INTAKE_OUT_OF_ORDER, refusal(key, session.lang))

    def _forget(self, live: _Live) -> None:
        self._by_token.pop(live.session.token_hash, None)
        if live.session.ticket is not None:
            self._by_ticket.pop(live.session.ticket, None)
        self._tokens.pop(live.session.id, None)

    def _expire(self) -> None:
        cutoff = self.clock.now_ms() - SESSION_MINUTES * 60_000
        for live in [v for v in self._by_token.values() if v.touched_ms < cutoff]:
            self._forget(live)
