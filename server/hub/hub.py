"""The hub: who may do what to which conversation, and who hears about it.

How one request is handled
--------------------------
Every operation has the same three steps, and the order is what makes it safe:

1. **Decide and change memory, without awaiting.** Access, state (``protocol.states``),
   capacity and queue checks run synchronously, so two professionals taking the same chat
   cannot both succeed: the second sees the first's change. Auto-assignment and queue
   position updates triggered by the change are worked out in the same step, and every
   event is built now, from the state as it is now.
2. **Persist in one transaction**, awaiting the storage writer's commit. The writer resolves
   commits in order, so operations resume in the order they changed memory.
3. **Publish** the events to the bus. Nobody hears of a change that is not stored.

Chat messages take a faster path (:meth:`Hub.send_message`): they are submitted to the writer
without a task of their own, and acknowledged and delivered from the commit's callback.

Whom an event reaches is decided here, at publish time: a conversation's events go to its
client connections (``conv:<id>``) and to the professional it is assigned to *now*
(``pro:<id>``). A professional therefore never receives another professional's
conversation, whatever their browser asks for.

Queue positions and snapshots go out through :class:`server.hub.queues.QueuePublisher`,
coalesced. What time alone changes (the grace period, the close of abandoned chats) is decided
in :mod:`server.hub.grace` and changed here like any other operation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from protocol import ConversationEvent, ConversationState, ErrorCode, InvalidTransition, Role
from protocol.extras import BotExtras
from protocol.messages import (
    ChatMessage,
    ConversationOpen,
    ConversationOpened,
    ConversationStateChanged,
    ConversationView,
    Message,
    MessageAck,
    MessageNew,
    QueueSnapshot,
    Read,
    Typing,
    Welcome,
)
from server.bus.base import Bus, Envelope, Subscriber
from server.core.clock import Clock
from server.core.documents import HandoverDocument
from server.core.errors import HubError, error_message, internal_error
from server.core.ids import hash_token, new_id, new_token
from server.core.model import AssignMode, Conversation, IntakeFacts, Professional, Team
from server.core.routing import Queue, choose_professional, estimate_wait, queue_rank
from server.hub.grace import GracePeriod, IdleClose, Timers, Unattended
from server.hub.queues import QueuePublisher, WaitEstimate, queue_snapshot
from server.hub.topics import conversation_topic, professional_topic, team_topic
from server.settings import Settings
from server.storage.base import AccessEntry, AuditEvent, IntakeColumns, Store, WriteRecord

__all__ = ["Actor", "Hub"]

log = logging.getLogger("kanava.hub")

OPEN_RETRY_MINUTES = 15
RECENTLY_CLOSED = 10_000
DELETED_CHECK_SECONDS = 60.0  # how often open chats are checked against retention's deletions


# Why a professional opened a conversation, as the access log says it.
_ACCESS_REASONS = {
    "taken": "taken from the queue",
    "auto": "assigned automatically from the queue",
}


def client_key(conv: Conversation) -> str | None:
    """The fingerprint of an identified client's identity code (None: not identified)."""
    return conv.identity.fingerprint if conv.identity is not None else None


#: A typing state repeated within this many seconds is not sent on again.
TYPING_REPEAT_SECONDS = 3.0


def _id(subscriber: Subscriber | None) -> str | None:
    return None if subscriber is None else subscriber.subscriber_id


@dataclass(frozen=True, slots=True)
class Actor:
    """The party behind a connection, as the hub knows it."""

    role: Role
    id: str  # the professional's id, or "client" for the citizen of a conversation
    name: str
    conversation_id: str | None = None  # a client's own conversation
    professional: Professional | None = None

    @classmethod
    def for_client(cls, conv: Conversation) -> Actor:
        return cls(Role.CLIENT, "client", conv.client_name or "Client", conversation_id=conv.id)

    @classmethod
    def for_professional(cls, pro: Professional) -> Actor:
        return cls(Role.PROFESSIONAL, pro.id, pro.display_name, professional=pro)


@dataclass(slots=True)
class _Event:
    message: Message
    topics: tuple[str, ...] = ()
    to: Subscriber | None = None  # delivered to this subscriber only
    exclude: Subscriber | None = None


@dataclass(slots=True)
class _Changes:
    """What one operation changed: stored in one transaction, then published."""

    new: list[Conversation] = field(default_factory=list)
    updated: dict[str, Conversation] = field(default_factory=dict)
    audit: list[WriteRecord] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    teams: set[str] = field(default_factory=set)
    closed: list[str] = field(default_factory=list)


class Hub:
    def __init__(self, storage: Store, bus: Bus, clock: Clock, settings: Settings) -> None:
        self.storage = storage
        self.bus = bus
        self.clock = clock
        self.settings = settings
        self._teams: dict[str, Team] = {}
        self._professionals: dict[str, Professional] = {}
        self._conversations: dict[str, Conversation] = {}  # open ones
        self._queues: dict[str, Queue] = {}
        self._by_token: dict[str, Conversation] = {}
        self._by_open_key: dict[str, Conversation] = {}
        self._recently_closed: OrderedDict[str, Conversation] = OrderedDict()
        self._opening: set[str] = set()  # created, but `conversation.opened` not yet sent
        self._timers = Timers()
        self._grace = GracePeriod(settings.grace_seconds)
        self._idle = IdleClose(settings.idle_close_minutes, settings.idle_close_queued_minutes)
        self._queue_publisher = QueuePublisher(
            bus,
            clock,
            lambda team_id: self._queues.get(team_id),
            self._wait_estimate,
            lambda conversation_id: conversation_id in self._opening,
        )
        # For the wait estimate: when each chat was first assigned, and how long the last
        # chats of each team took from assignment to close (minutes).
        self._assigned_at: dict[str, int] = {}
        self._handling: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=30))
        self._slots_cache: dict[str, tuple[float, int]] = {}
        # The last typing state sent on per conversation and role, and when (monotonic).
        self._typing_sent: dict[tuple[str, str], tuple[bool, float]] = {}

    # --- start and stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Load teams, professionals and every open conversation from storage."""
        self._teams = {t.id: t for t in await self.storage.teams()}
        self._queues = {t: Queue() for t in self._teams}
        self._professionals = {p.id: p for p in await self.storage.professionals()}
        convs = await self.storage.open_conversations()
        await self.storage.load_logs([c.id for c in convs])
        orphans: list[Conversation] = []
        for conv in sorted(convs, key=lambda c: c.created_at):
            self._index(conv)
            if conv.state is ConversationState.QUEUED:
                self._queues[conv.team_id].add(conv)
            elif conv.professional_id in self._professionals:
                self._professionals[conv.professional_id].conversation_ids.add(conv.id)
                conv.announced_professional_id = conv.professional_id
            else:
                orphans.append(conv)
        now = self.clock.now_ms()
        for pro in self._professionals.values():
            if pro.conversation_ids:
                # Nobody is connected after a restart: the grace period starts now.
                pro.offline_since_ms = now
                self._schedule_expiry()
        if orphans:
            changes = _Changes()
            for conv in orphans:
                self._requeue(conv, "professional_removed", changes)
            await self._apply(changes)
        for team_id, queue in self._queues.items():
            for position, conv in enumerate(queue, 1):
                self._queue_publisher.told(conv, position)
            log.info("team %s: %d waiting", team_id, len(queue))
        if (every := self._idle.sweep_seconds) is not None:
            failed = "closing abandoned chats failed; trying again at the next sweep"
            self._timers.every(every, self.close_abandoned, failed)
        log.info(
            "hub started: %d open conversations, %d professionals",
            len(self._conversations),
            len(self._professionals),
        )
        self._timers.spawn(self._watch_deleted())

    async def stop(self) -> None:
        self._queue_publisher.stop()
        await self._timers.stop()

    def add_team(self, team: Team) -> None:
        self._teams[team.id] = team
        self._queues.setdefault(team.id, Queue())

    def add_professional(self, pro: Professional) -> None:
        known = self._professionals.get(pro.id)
        if known is not None:
            pro.conversation_ids = known.conversation_ids
            pro.connections = known.connections
        self._professionals[pro.id] = pro

    # --- questions others ask ------------------------------------------------------------

    def team(self, team_id: str) -> Team | None:
        return self._teams.get(team_id)

    def has_team(self, team_id: str) -> bool:
        return team_id in self._teams

    def teams(self) -> list[Team]:
        """Every team, by id."""
        return sorted(self._teams.values(), key=lambda t: t.id)

    def professional(self, professional_id: str) -> Professional | None:
        return self._professionals.get(professional_id)

    def professionals(self) -> list[Professional]:
        """Every account (bots included), by display name."""
        return sorted(self._professionals.values(), key=lambda p: p.display_name)

    def professional_by_subject(self, subject: str) -> Professional | None:
        """The person's account linked to an organisation sign-in subject (never a bot)."""
        return next(
            (p for p in self._professionals.values() if p.oidc_subject == subject and not p.bot),
            None,
        )

    def conversation(self, conversation_id: str) -> Conversation | None:
        """An open conversation."""
        return self._conversations.get(conversation_id)

    def open_conversations(self) -> list[Conversation]:
        """Every open conversation, oldest first."""
        return sorted(self._conversations.values(), key=lambda c: c.created_at)

    def assigned(self, actor: Actor, conversation_id: str) -> Conversation:
        """The open conversation ``actor`` may act on now (its own, or assigned to them);
        raises HubError otherwise."""
        return self._open_conversation_of(actor, conversation_id)

    def recent_conversation(self, conversation_id: str) -> Conversation | None:
        """An open conversation, or one closed lately (still in memory)."""
        return self._conversations.get(conversation_id) or self._recently_closed.get(
            conversation_id
        )

    def queue(self, team_id: str) -> list[Conversation]:
        """The chats waiting in ``team_id``'s queue, first in line first."""
        queue = self._queues.get(team_id)
        return list(queue) if queue is not None else []

    def waiting(self, team_id: str | None = None) -> int:
        """How many wait in ``team_id``'s queue, or in every queue of people."""
        if team_id is not None:
            queue = self._queues.get(team_id)
            return len(queue) if queue is not None else 0
        return sum(len(q) for t, q in self._queues.items() if not self.bot_team(t))

    # --- views ----------------------------------------------------------------------------

    def view(self, conv: Conversation) -> ConversationView:
        pro = self._professionals.get(conv.professional_id) if conv.professional_id else None
        position = length = None
        wait = None
        if conv.state is ConversationState.QUEUED:
            queue = self._queues[conv.team_id]
            position, length = queue.position(conv), len(queue)
            if position is not None:
                wait = self._wait_estimate(conv.team_id)(position)
        return conv.view(pro.ref() if pro else None, position, length, wait)

    def _wait_estimate(self, team_id: str) -> WaitEstimate:
        """The wait of the n-th in ``team_id``'s line: from the team's recent chats and the
        slots of its professionals online now."""
        return functools.partial(
            estimate_wait, handling_minutes=self._handling[team_id], slots=self._team_slots(team_id)
        )

    def _team_slots(self, team_id: str) -> int:
        """How many chats the team's professionals can hold: those online, and those within
        their grace period (a reload is no reason to tell the waiting their wait is unknown)."""
        # Views go out to everyone in a queue when it moves: recount at most once a second,
        # or when a professional of the team comes or their grace period ends.
        now = self.clock.monotonic()
        cached = self._slots_cache.get(team_id)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        now_ms = self.clock.now_ms()
        slots = sum(
            p.capacity
            for p in self._professionals.values()
            if team_id in p.teams and self._grace.present(p, now_ms)
        )
        self._slots_cache[team_id] = (now, slots)
        return slots

    async def _grace_over(self, teams: tuple[str, ...]) -> None:
        """A professional of ``teams`` went away a grace period ago: unless they are back,
        the waiting clients of those teams hear their wait without them."""
        for team_id in teams:
            self._slots_cache.pop(team_id, None)
        self._queue_publisher.changed(set(teams))

    def _state_event(self, conv: Conversation, *extra_pros: str | None) -> _Event:
        return _Event(ConversationStateChanged(self.view(conv)), self._topics(conv, *extra_pros))

    @staticmethod
    def _live_topics(conv: Conversation) -> tuple[str, ...]:
        """Where a chat message, typing or read event goes: the client and the announced pro."""
        if conv.announced_professional_id is None:
            return (conversation_topic(conv.id),)
        return (conversation_topic(conv.id), professional_topic(conv.announced_professional_id))

    @staticmethod
    def _topics(conv: Conversation, *extra_pros: str | None) -> tuple[str, ...]:
        topics = [conversation_topic(conv.id)]
        for pro_id in (conv.professional_id, *extra_pros):
            if pro_id is not None and professional_topic(pro_id) not in topics:
                topics.append(professional_topic(pro_id))
        return tuple(topics)

    def queue_snapshot(self, team_id: str) -> QueueSnapshot:
        return queue_snapshot(team_id, self._queues[team_id])

    # --- clients --------------------------------------------------------------------------

    @property
    def default_team(self) -> str:
        if not self._teams:
            raise HubError(ErrorCode.UNKNOWN_TEAM, "no team is configured")
        # A team somebody works in, so that a chat opened without a team can be answered;
        # never a bot's team: a chat opened for a person goes to people.
        bots = {t for p in self._professionals.values() if p.bot for t in p.teams}
        teams = set(self._teams) - bots or set(self._teams)
        staffed = {t for p in self._professionals.values() if not p.bot for t in p.teams}
        return min(teams & staffed) if teams & staffed else min(teams)

    async def open_conversation(
        self, cmd: ConversationOpen, subscriber: Subscriber, client_address: str | None = None
    ) -> Conversation:
        """A client starts a conversation; it is queued in its team's queue.

        With an ``open_id`` already used for a conversation opened in the last
        ``OPEN_RETRY_MINUTES`` and still open, that conversation is returned with a fresh
        token: a retry after a dropped connection does not queue a second chat.
        """
        if cmd.open_id and (again := self.conversation_for_open_id(cmd.open_id)) is not None:
            return await self.reopen(again, subscriber)
        team_id = cmd.team or self.default_team
        return await self.create_conversation(
            subscriber,
            team_id=team_id,
            client_name=cmd.client_name or None,
            topic=cmd.topic or None,
            language=cmd.language or None,
            open_key=hash_token(cmd.open_id) if cmd.open_id else None,
            client_address=client_address,
        )

    def conversation_for_open_id(self, open_id: str) -> Conversation | None:
        """The recent open conversation a retried ``open_id`` names (raises if too old)."""
        again = self._by_open_key.get(hash_token(open_id))
        if again is None:
            return None
        if self.clock.now_ms() - again.created_at > OPEN_RETRY_MINUTES * 60_000:
            raise HubError(ErrorCode.INVALID_STATE, "this open_id was used already")
        return again

    async def create_conversation(
        self,
        subscriber: Subscriber,
        *,
        team_id: str,
        client_name: str | None = None,
        topic: str | None = None,
        language: str | None = None,
        open_key: str | None = None,
        facts: IntakeFacts | None = None,
        extra_records: tuple[WriteRecord, ...] = (),
        conversation_id: str | None = None,
        client_address: str | None = None,
    ) -> Conversation:
        """Queue a new conversation in ``team_id``'s queue; ``urgent`` ones go first."""
        if team_id not in self._teams:
            raise HubError(ErrorCode.UNKNOWN_TEAM, f"there is no team '{team_id}'")
        token = new_token()
        now = self.clock.now_ms()
        if facts is None:
            facts = IntakeFacts(client_name, topic, None, None, None, None)
        rank = queue_rank(now, facts.triage)
        conv = Conversation(
            id=conversation_id or new_id("c"),
            token_hash=hash_token(token),
            team_id=team_id,
            state=ConversationState.QUEUED,
            created_at=now,
            updated_at=now,
            client_name=facts.client_name,
            topic=facts.topic,
            language=language,
            queue_rank=rank,
            queued_at=now,
            open_key_hash=open_key,
            triage=facts.triage,
            station_id=facts.station_id,
            intake=facts.intake,
            identity=facts.identity,
            client_address=client_address,
        )
        self._index(conv)
        queue = self._queues[team_id]
        queue.add(conv)
        self._queue_publisher.told(conv, len(queue))
        self._opening.add(conv.id)
        self.bus.subscribe(conversation_topic(conv.id), subscriber)
        changes = _Changes()
        changes.new.append(conv)
        changes.teams.add(team_id)
        changes.audit.append(self._audit(conv.id, Role.CLIENT.value, "client", "opened"))
        changes.audit.extend(extra_records)
        changes.events.append(_Event(ConversationOpened(token, self.view(conv)), to=subscriber))
        try:
            await self._apply(changes)
        except HubError:
            self._opening.discard(conv.id)
            # Not stored: leave no trace of it in memory either (no ghost in the queue).
            self.bus.unsubscribe(conversation_topic(conv.id), subscriber)
            if conv.id in queue:
                self._dequeue(conv)
            self._unindex(conv)
            self._recently_closed.pop(conv.id, None)
            raise
        return conv

    async def reopen(self, conv: Conversation, subscriber: Subscriber) -> Conversation:
        """Give a client back its open conversation with a fresh token."""
        self._check_client_sockets(conv)
        changes = _Changes()
        self._touch(conv, changes)
        changes.audit.append(self._audit(conv.id, Role.CLIENT.value, "client", "reopened"))
        self._open_for(conv, subscriber, changes)
        await self._apply(changes)
        return conv

    def _open_for(self, conv: Conversation, subscriber: Subscriber, changes: _Changes) -> None:
        """A fresh token for ``conv``, sent to ``subscriber`` in ``conversation.opened``."""
        token = new_token()
        self._by_token.pop(conv.token_hash, None)
        conv.token_hash = hash_token(token)
        self._by_token[conv.token_hash] = conv
        self.bus.subscribe(conversation_topic(conv.id), subscriber)
        changes.events.append(_Event(ConversationOpened(token, self.view(conv)), to=subscriber))

    async def resume_conversation(self, token: str, subscriber: Subscriber) -> Conversation:
        """A client returns with its token; subscribes it and sends the current state."""
        token_hash = hash_token(token)
        conv = self._by_token.get(token_hash)
        if conv is None:
            conv = await self.storage.conversation_by_token(token_hash)
            if conv is None:
                raise HubError(ErrorCode.INVALID_TOKEN, "no conversation has this token")
            live = self._conversations.get(conv.id)
            if live is not None:
                conv = live
            elif conv.closed_at is not None:
                age_hours = (self.clock.now_ms() - conv.closed_at) / 3_600_000
                if age_hours > self.settings.closed_token_hours:
                    raise HubError(
                        ErrorCode.SESSION_EXPIRED,
                        "this conversation ended too long ago to be opened again",
                    )
        self._check_client_sockets(conv)
        self.bus.subscribe(conversation_topic(conv.id), subscriber)
        subscriber.deliver(Envelope(ConversationStateChanged(self.view(conv))))
        return conv

    def _check_client_sockets(self, conv: Conversation) -> None:
        """A person has a tab or two on a chat, not hundreds: each one multiplies every event
        of the chat, so their number is bounded."""
        limit = self.settings.max_sockets_per_conversation
        if limit and self.bus.subscriber_count(conversation_topic(conv.id)) >= limit:
            raise HubError(
                ErrorCode.ADDRESS_LIMIT,
                f"this chat is open in {limit} windows already: close one and try again",
                60_000,
            )

    # --- professionals --------------------------------------------------------------------

    async def connect_professional(self, pro: Professional, subscriber: Subscriber) -> None:
        """A professional's connection authenticated: welcome it, maybe assign chats."""
        # Read before anything changes: from here to the welcome nothing may wait, or a
        # transfer committing meanwhile would be missed by the list of chats below.
        drafts = await self.storage.drafts(pro.id) if not pro.bot else {}
        if pro.supervises and not self._grace.present(pro, self.clock.now_ms()):
            # A supervisor or an admin signs in to supervise, not to be given chats: they
            # make themselves available when they want some (a reload keeps their choice).
            pro.available = False
        pro.connections += 1
        pro.offline_since_ms = None
        self.bus.subscribe(professional_topic(pro.id), subscriber)
        for team_id in pro.teams:
            self.bus.subscribe(team_topic(team_id), subscriber)
        changes = _Changes()
        # The chats *announced* as theirs: one decided but not yet announced (a transfer
        # still committing) arrives with its own state event, and its history then.
        # Likewise one being transferred away is still theirs until that is announced.
        mine = sorted(
            (c for c in self._conversations.values() if c.announced_professional_id == pro.id),
            key=lambda c: c.created_at,
        )
        drafts = {c.id: drafts[c.id] for c in mine if c.id in drafts}
        for team_id in pro.teams:
            self._slots_cache.pop(team_id, None)  # the waits below count them now
        welcome = Welcome(
            professional=pro.ref(),
            capacity=pro.capacity,
            available=pro.available,
            teams=pro.teams,
            conversations=tuple(self.view(c) for c in mine),
            drafts=drafts or None,
        )
        changes.events.append(_Event(welcome, to=subscriber))
        for team_id in pro.teams:
            if team_id in self._queues:
                changes.events.append(_Event(self.queue_snapshot(team_id), to=subscriber))
                # Coming online may auto-assign waiting chats to this professional.
                changes.teams.add(team_id)
        await self._apply(changes)

    def disconnect_professional(self, pro: Professional, subscriber: Subscriber) -> None:
        self.bus.unsubscribe(professional_topic(pro.id), subscriber)
        for team_id in pro.teams:
            self.bus.unsubscribe(team_topic(team_id), subscriber)
        pro.connections = max(0, pro.connections - 1)
        if pro.connections == 0:
            pro.offline_since_ms = self.clock.now_ms()
            if pro.conversation_ids:
                self._schedule_expiry()
            # The waits count them until their grace period is over, then no longer.
            self._timers.later(
                self._grace.check_after, functools.partial(self._grace_over, pro.teams)
            )

    async def set_availability(self, pro: Professional, available: bool) -> None:
        pro.available = available
        changes = _Changes()
        changes.teams.update(pro.teams)
        await self._apply(changes)

    async def take(
        self, actor: Actor, conversation_id: str | None, team_id: str | None = None
    ) -> Conversation:
        """A professional takes a named waiting conversation, or the longest-waiting one."""
        pro = self._pro(actor)
        if pro.free_slots <= 0:
            raise HubError(
                ErrorCode.CAPACITY_REACHED,
                f"you already have {len(pro.conversation_ids)} chats (capacity {pro.capacity})",
            )
        if conversation_id is not None:
            conv = self._conversations.get(conversation_id)
            if conv is None or conv.state is not ConversationState.QUEUED:
                raise HubError(ErrorCode.INVALID_STATE, "this conversation is no longer waiting")
            if conv.team_id not in pro.teams:
                raise HubError(ErrorCode.FORBIDDEN, "this conversation is in another team's queue")
        else:
            teams = [team_id] if team_id is not None else list(pro.teams)
            if team_id is not None and team_id not in pro.teams:
                raise HubError(ErrorCode.FORBIDDEN, f"you are not in team '{team_id}'")
            heads = [h for t in teams if t in self._queues if (h := self._queues[t].head())]
            if not heads:
                raise HubError(ErrorCode.QUEUE_EMPTY, "nobody is waiting")
            conv = min(heads, key=lambda c: (c.queue_rank or 0.0, c.id))
        changes = _Changes()
        self._assign(conv, pro, "taken", changes)
        await self._apply(changes)
        return conv

    async def transfer(
        self,
        actor: Actor,
        conversation_id: str,
        to_professional: str,
        note: str | None,
        escalate: bool = False,
    ) -> None:
        pro = self._pro(actor)
        conv = self._open_conversation_of(actor, conversation_id)
        target = self._professionals.get(to_professional)
        if target is None or target is pro:
            raise HubError(ErrorCode.TARGET_UNAVAILABLE, "choose another professional")
        if target.bot or target.role == "bot":
            # A bot cannot take over a person's chat; the bot's team queue is the way back.
            raise HubError(
                ErrorCode.TARGET_IS_BOT,
                f"{target.display_name} is a bot and takes no transfers: to hand the chat to "
                "the advice bot, transfer it to the bot's team",
            )
        if escalate and target.role != "doctor":
            raise HubError(
                ErrorCode.TARGET_UNAVAILABLE, f"{target.display_name} is not a doctor: choose one"
            )
        if not target.online:
            raise HubError(ErrorCode.TARGET_UNAVAILABLE, f"{target.display_name} is not online")
        if target.free_slots <= 0:
            raise HubError(ErrorCode.TARGET_UNAVAILABLE, f"{target.display_name} has no free slot")
        self._transition(conv, ConversationEvent.TRANSFER)
        pro.conversation_ids.discard(conv.id)
        target.conversation_ids.add(conv.id)
        conv.professional_id = target.id
        conv.reason = "escalated" if escalate else "transferred"
        kind = "escalation" if escalate else "transfer"
        self._mark_handover(conv, kind, pro, note)
        changes = _Changes()
        self._touch(conv, changes)
        changes.audit.append(
            self._audit(conv.id, Role.PROFESSIONAL.value, pro.id, conv.reason, target.id)
        )
        if note:
            changes.audit.append(
                self._audit(conv.id, Role.PROFESSIONAL.value, pro.id, "transfer_note", note)
            )
        verb = "escalated to a doctor" if escalate else "transferred"
        changes.audit.append(self._access(conv, target, f"{verb} by {pro.display_name}"))
        changes.events.append(self._state_event(conv, pro.id))
        changes.teams.update(pro.teams)
        await self._apply(changes)

    def _mark_handover(
        self, conv: Conversation, kind: str, pro: Professional, note: str | None
    ) -> None:
        conv.handover = HandoverDocument(
            kind=kind,
            from_id=pro.id,
            from_name=pro.display_name,
            note=note or None,
            at=self.clock.now_ms(),
        )
        if kind == "escalation":
            conv.escalated = True

    async def transfer_to_team(
        self,
        actor: Actor,
        conversation_id: str,
        team_id: str,
        note: str | None,
        escalate: bool = False,
    ) -> None:
        """Send an assigned chat to another team's queue (a doctor's team, another station).

        It queues there by its first arrival, urgent chats first as always, so a chat that has
        already waited is not sent to the back.
        """
        pro = self._pro(actor)
        conv = self._open_conversation_of(actor, conversation_id)
        if team_id not in self._teams:
            raise HubError(ErrorCode.UNKNOWN_TEAM, f"there is no team '{team_id}'")
        if team_id == conv.team_id:
            raise HubError(ErrorCode.TARGET_UNAVAILABLE, "the chat is already in this team")
        old_team = conv.team_id
        rank = queue_rank(conv.created_at, conv.triage)
        self._back_to_queue(conv, team_id, rank, "transferred", pro)
        self._mark_handover(conv, "escalation" if escalate else "team", pro, note)
        self._assigned_at.pop(conv.id, None)
        changes = _Changes()
        self._touch(conv, changes)
        changes.audit.append(
            self._audit(conv.id, Role.PROFESSIONAL.value, pro.id, "transferred_team", team_id)
        )
        if note:
            changes.audit.append(
                self._audit(conv.id, Role.PROFESSIONAL.value, pro.id, "transfer_note", note)
            )
        changes.events.append(self._state_event(conv, pro.id))
        changes.teams.update((old_team, team_id, *pro.teams))
        await self._apply(changes)

    # --- from the bot to a person ---------------------------------------------------------

    def bot_conversation(self, token: str) -> Conversation:
        """The open chat with a bot that ``token`` names (for an intake that hands it over)."""
        match self._by_token.get(hash_token(token)):
            case None:
                raise HubError(ErrorCode.INVALID_TOKEN, "no open conversation has this token")
            case conv if conv.state is ConversationState.ASSIGNED and self._with_bot(conv):
                return conv
        raise HubError(ErrorCode.INVALID_STATE, "this conversation is not with the bot")

    def waiting_from(self, address: str) -> int:
        """How many chats opened from ``address`` wait in the queues of people now."""
        return sum(
            1
            for team_id, queue in self._queues.items()
            if not self.bot_team(team_id)
            for conv in queue
            if conv.client_address == address
        )

    def bot_team(self, team_id: str) -> bool:
        """Whether ``team_id``'s members are bots (its queue is not people waiting for people)."""
        members = [p for p in self._professionals.values() if team_id in p.teams]
        return bool(members) and all(p.bot for p in members)

    def bot_online(self, team_id: str) -> bool:
        """Whether a bot account of ``team_id`` is connected (the built-in one or another)."""
        return any(
            p.bot and p.online and team_id in p.teams and p.free_slots > 0
            for p in self._professionals.values()
        )

    def _with_bot(self, conv: Conversation) -> bool:
        pro = self._professionals.get(conv.professional_id or "")
        return pro is not None and pro.bot

    async def hand_over(
        self,
        conv: Conversation,
        subscriber: Subscriber,
        team_id: str,
        facts: IntakeFacts,
        extra_records: tuple[WriteRecord, ...] = (),
    ) -> Conversation:
        """A chat with the bot goes to a team's queue with what the intake found.

        The same conversation, so whoever takes it reads everything said with the bot. The
        client's connection that ran the intake gets ``conversation.opened`` with a new token.
        """
        if team_id not in self._teams:
            raise HubError(ErrorCode.UNKNOWN_TEAM, f"there is no team '{team_id}'")
        if conv.state is not ConversationState.ASSIGNED:
            raise HubError(ErrorCode.CONVERSATION_CLOSED, "the chat with the bot has ended")
        bot = self._professionals.get(conv.professional_id) if conv.professional_id else None
        old_team = conv.team_id
        conv.client_name = facts.client_name or conv.client_name
        conv.topic = facts.topic or conv.topic
        conv.triage, conv.station_id = facts.triage, facts.station_id
        conv.intake, conv.identity = facts.intake, facts.identity
        # The nurse's console shows what was said with the bot apart, at the top.
        conv.bot_seq = conv.last_seq
        rank = queue_rank(self.clock.now_ms(), facts.triage)
        self._back_to_queue(conv, team_id, rank, "handed_over", bot)
        changes = _Changes()
        self._open_for(conv, subscriber, changes)
        self._touch(conv, changes)
        changes.audit.append(IntakeColumns(conv))
        changes.audit.append(self._audit(conv.id, Role.CLIENT.value, "client", "handed_over"))
        changes.audit.extend(extra_records)
        changes.events.append(self._state_event(conv, bot.id if bot else None))
        changes.teams.update((old_team, team_id))
        await self._apply(changes)
        return conv

    # --- both parties ---------------------------------------------------------------------

    def send_message(
        self,
        actor: Actor,
        conversation_id: str,
        msg_id: str,
        text: str,
        reply: Callable[[Message], None],
        exclude: Subscriber | None = None,
        extras: BotExtras | None = None,
    ) -> None:
        """Store a chat message; ``reply`` gets the ack (or an error) after the commit.

        ``extras`` holds a bot's quick replies and actions, stored and sent with the text.

        Does not wait: the read loop goes on with the next frame while this one commits, and
        messages are stored, acknowledged and delivered in the order they were sent.
        """
        try:
            conv = self._open_conversation_of(actor, conversation_id)
        except HubError as exc:
            if exc.code not in (ErrorCode.NOT_ASSIGNED, ErrorCode.CONVERSATION_CLOSED):
                raise
            # A retry of a message stored before the chat left the sender (or closed) must
            # still learn its seq, or the sender would believe it lost.
            self._timers.spawn(self._answer_late_retry(actor, conversation_id, msg_id, exc, reply))
            return
        extra = extras.to_wire() if extras is not None else None
        future, duplicate = self.storage.submit_message(
            conv.id, actor.role.value, actor.id, actor.name, msg_id, text, extra
        )
        future.add_done_callback(
            functools.partial(self._message_stored, conv, msg_id, duplicate, reply, exclude)
        )

    async def _answer_late_retry(
        self,
        actor: Actor,
        conversation_id: str,
        msg_id: str,
        refusal: HubError,
        reply: Callable[[Message], None],
    ) -> None:
        stored = await self.storage.find_message(
            conversation_id, actor.role.value, actor.id, msg_id
        )
        if stored is None:
            reply(error_message(refusal, ref=msg_id))
        else:
            reply(MessageAck(conversation_id, msg_id, stored[0], stored[1], duplicate=True))

    def _message_stored(
        self,
        conv: Conversation,
        msg_id: str,
        duplicate: bool,
        reply: Callable[[Message], None],
        exclude: Subscriber | None,
        future: asyncio.Future[ChatMessage],
    ) -> None:
        if future.cancelled() or future.exception() is not None:
            reply(internal_error(ref=msg_id))
            return
        message = future.result()
        reply(MessageAck(conv.id, msg_id, message.seq, message.sent_at, duplicate))
        if duplicate:
            return
        if message.seq > conv.last_seq:
            conv.last_seq = message.seq
        self.bus.publish(self._live_topics(conv), Envelope(MessageNew(message)), _id(exclude))

    def typing(
        self, actor: Actor, conversation_id: str, typing: bool, exclude: Subscriber | None
    ) -> None:
        conv = self._open_conversation_of(actor, conversation_id)
        # Only a change is news: "still typing" repeated by a page (or by many sockets of one
        # chat) is sent on once every TYPING_REPEAT_SECONDS at most.
        key = (conv.id, actor.role.value)
        now = self.clock.monotonic()
        last = self._typing_sent.get(key)
        if last is not None and last[0] == typing and now - last[1] < TYPING_REPEAT_SECONDS:
            return
        self._typing_sent[key] = (typing, now)
        event = Typing(conversation_id=conv.id, role=actor.role.value, typing=typing)
        self.bus.publish(self._live_topics(conv), Envelope(event), _id(exclude))

    async def mark_read(
        self, actor: Actor, conversation_id: str, seq: int, exclude: Subscriber | None
    ) -> None:
        conv = self._open_conversation_of(actor, conversation_id)
        seq = min(seq, conv.last_seq)
        if actor.role is Role.CLIENT:
            if seq <= conv.read_client_seq:
                return
            conv.read_client_seq = seq
        else:
            if seq <= conv.read_professional_seq:
                return
            conv.read_professional_seq = seq
        event = Read(conversation_id=conv.id, role=actor.role.value, seq=seq)
        changes = _Changes()
        self._touch(conv, changes)
        changes.events.append(_Event(event, self._live_topics(conv), exclude=exclude))
        await self._apply(changes)

    async def close(self, actor: Actor, conversation_id: str, reason: str | None) -> None:
        conv = self._open_conversation_of(actor, conversation_id)
        changes = _Changes()
        self._close(conv, actor.role.value, actor.id, reason, changes)
        await self._apply(changes)

    def _close(
        self,
        conv: Conversation,
        by_role: str,
        by_id: str,
        reason: str | None,
        changes: _Changes,
    ) -> None:
        """Close ``conv`` as ``by_role``/``by_id`` did, with its audit row and wait figures."""
        closed_at = self._end(conv, by_role, reason or f"closed_by_{by_role}", changes)
        assigned_at = self._assigned_at.pop(conv.id, None)
        if assigned_at is not None:
            self._handling[conv.team_id].append((closed_at - assigned_at) / 60_000)
        self._touch(conv, changes)
        changes.audit.append(self._audit(conv.id, by_role, by_id, "closed", reason))

    def _end(self, conv: Conversation, closed_by: str, reason: str, changes: _Changes) -> int:
        """Close ``conv`` here: out of its queue or its professional's chats, announced."""
        self._transition(conv, ConversationEvent.CLOSE)
        if conv.team_id in self._queues and conv.id in self._queues[conv.team_id]:
            self._dequeue(conv)
            changes.teams.add(conv.team_id)
        if conv.professional_id is not None:
            pro = self._professionals.get(conv.professional_id)
            if pro is not None:
                pro.conversation_ids.discard(conv.id)
                changes.teams.update(pro.teams)
        conv.closed_at = closed_at = self.clock.now_ms()
        conv.closed_by = closed_by
        conv.reason = reason
        changes.events.append(self._state_event(conv))
        changes.closed.append(conv.id)
        self._idle.forget(conv.id)
        for role in (Role.CLIENT.value, Role.PROFESSIONAL.value):
            self._typing_sent.pop((conv.id, role), None)
        self._unindex(conv)
        return closed_at

    # --- retention --------------------------------------------------------------------------

    async def _watch_deleted(self) -> None:
        while True:
            await asyncio.sleep(DELETED_CHECK_SECONDS)
            try:
                await self.drop_deleted()
            except Exception:
                log.exception("could not check for conversations deleted by retention")

    async def drop_deleted(self) -> list[str]:
        """End the open conversations that storage no longer has, without storing anything.

        ``kanava retention`` deletes a chat that never ended once it has been inactive for its
        retention time, also while the server runs; the server then still holds it. It is let
        go of here (the parties are told it has ended), so that nothing more is written for
        it. A conversation still being opened is not stored yet and is skipped.
        """
        ids = [cid for cid in self._conversations if cid not in self._opening]
        if not ids:
            return []
        changes = _Changes()
        gone: list[str] = []
        for cid in await self.storage.missing_conversations(ids):
            conv = self._conversations.get(cid)
            if conv is None:
                continue  # ended meanwhile
            self._assigned_at.pop(cid, None)
            conv.updated_at = self.clock.now_ms()
            self._end(conv, "server", "deleted_by_retention", changes)
            gone.append(cid)
        if gone:
            log.info("%d conversations deleted by retention were let go of", len(gone))
            await self._apply(changes)
        return gone

    # --- chats whose client has left ------------------------------------------------------

    async def close_abandoned(self) -> list[str]:
        """Close the chats that wait (queued, or with the bot) while their client is away.

        A client that left a bot chat or a queue without closing it must not hold the bot's
        attention, or a place ahead of real patients, forever. The chats that
        :class:`~server.hub.grace.IdleClose` finds away too long (``idle_close_minutes``,
        ``idle_close_queued_minutes``) are closed (``client_left``); a client that comes back
        sees that reason. Chats with a person are left to that person.
        """
        chats = [
            Unattended(
                conv.id,
                with_bot=self._with_bot(conv),
                queued=conv.state is ConversationState.QUEUED,
                client_here=conv.id in self._opening
                or self.bus.subscriber_count(conversation_topic(conv.id)) > 0,
            )
            for conv in self._conversations.values()
        ]
        changes = _Changes()
        closed = self._idle.due(chats, self.clock.now_ms())
        for conversation_id in closed:
            self._close(
                self._conversations[conversation_id], "server", "hub", "client_left", changes
            )
        if closed:
            log.info("closed %d chats whose client had left", len(closed))
            await self._apply(changes)
        return closed

    def readable_conversation(self, actor: Actor, conversation_id: str) -> str:
        """The id of a conversation whose history ``actor`` may read, or HubError."""
        if actor.role is Role.CLIENT:
            if conversation_id != actor.conversation_id:
                raise HubError(ErrorCode.FORBIDDEN, "this is not your conversation")
            return conversation_id
        conv = self.recent_conversation(conversation_id)
        if conv is None or conv.professional_id != actor.id:
            raise HubError(ErrorCode.NOT_ASSIGNED, "this conversation is not assigned to you")
        return conversation_id

    # --- the grace period -----------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        self._timers.later(self._grace.check_after, self.expire_offline)

    async def expire_offline(self) -> list[str]:
        """Requeue the chats of professionals offline for longer than the grace period."""
        changes = _Changes()
        requeued: list[str] = []
        for pro in self._grace.expired(self._professionals.values(), self.clock.now_ms()):
            # Newest first, each to the front: the oldest ends up first in line.
            mine = sorted(
                (self._conversations[c] for c in pro.conversation_ids),
                key=lambda c: c.created_at,
                reverse=True,
            )
            for conv in mine:
                self._requeue(conv, "professional_disconnected", changes, previous=pro)
                requeued.append(conv.id)
        if requeued:
            log.info("grace period over: %d conversations back in the queue", len(requeued))
            await self._apply(changes)
        return requeued

    # --- internals ------------------------------------------------------------------------

    def _pro(self, actor: Actor) -> Professional:
        if actor.professional is None:
            raise HubError(ErrorCode.ROLE_FORBIDDEN, "only professionals may do this")
        return actor.professional

    def _open_conversation_of(self, actor: Actor, conversation_id: str) -> Conversation:
        conv = self._conversations.get(conversation_id)
        if actor.role is Role.CLIENT:
            if conversation_id != actor.conversation_id:
                raise HubError(ErrorCode.FORBIDDEN, "this is not your conversation")
            if conv is None:
                raise HubError(ErrorCode.CONVERSATION_CLOSED, "this conversation has ended")
            return conv
        if conv is None:
            closed = self._recently_closed.get(conversation_id)
            if closed is not None and closed.professional_id == actor.id:
                raise HubError(ErrorCode.CONVERSATION_CLOSED, "this conversation has ended")
            raise HubError(ErrorCode.NOT_ASSIGNED, "this conversation is not assigned to you")
        if conv.professional_id != actor.id or conv.state is not ConversationState.ASSIGNED:
            raise HubError(ErrorCode.NOT_ASSIGNED, "this conversation is not assigned to you")
        return conv

    @staticmethod
    def _transition(conv: Conversation, event: ConversationEvent) -> None:
        try:
            conv.apply(event)
        except InvalidTransition as exc:
            raise HubError(ErrorCode.INVALID_STATE, str(exc)) from None

    def _index(self, conv: Conversation) -> None:
        self._conversations[conv.id] = conv
        self._by_token[conv.token_hash] = conv
        if conv.open_key_hash is not None:
            self._by_open_key[conv.open_key_hash] = conv

    def _unindex(self, conv: Conversation) -> None:
        self._conversations.pop(conv.id, None)
        self._by_token.pop(conv.token_hash, None)
        if conv.open_key_hash is not None:
            # A closed conversation frees its open_id (stored as NULL with the close).
            self._by_open_key.pop(conv.open_key_hash, None)
            conv.open_key_hash = None
        self._recently_closed[conv.id] = conv
        while len(self._recently_closed) > RECENTLY_CLOSED:
            self._recently_closed.popitem(last=False)

    def _dequeue(self, conv: Conversation) -> None:
        self._queues[conv.team_id].remove(conv)
        self._queue_publisher.forget(conv.id)
        conv.queue_rank = None

    def _touch(self, conv: Conversation, changes: _Changes) -> None:
        conv.updated_at = self.clock.now_ms()
        changes.updated[conv.id] = conv

    def _audit(
        self, conversation_id: str, role: str, actor_id: str, action: str, detail: str | None = None
    ) -> AuditEvent:
        return AuditEvent(self.clock.now_ms(), conversation_id, role, actor_id, action, detail)

    def _access(self, conv: Conversation, pro: Professional, reason: str) -> AccessEntry:
        """An access-log row: ``pro`` opens ``conv`` (with the change that lets them)."""
        return AccessEntry(
            self.clock.now_ms(), pro, conv.id, client_key(conv), conv.client_name, reason
        )

    def _assign(self, conv: Conversation, pro: Professional, how: str, changes: _Changes) -> None:
        self._transition(conv, ConversationEvent.ASSIGN)
        self._dequeue(conv)
        conv.professional_id = pro.id
        conv.reason = how
        pro.conversation_ids.add(conv.id)
        self._assigned_at.setdefault(conv.id, self.clock.now_ms())
        self._touch(conv, changes)
        changes.teams.add(conv.team_id)
        changes.audit.append(self._audit(conv.id, Role.PROFESSIONAL.value, pro.id, how))
        changes.audit.append(self._access(conv, pro, _ACCESS_REASONS.get(how, how)))
        changes.events.append(self._state_event(conv))

    def _requeue(
        self,
        conv: Conversation,
        reason: str,
        changes: _Changes,
        previous: Professional | None = None,
    ) -> None:
        old_pro = conv.professional_id
        rank = self._queues[conv.team_id].front_rank(self.clock.now_ms())
        self._back_to_queue(conv, conv.team_id, rank, reason, previous)
        self._touch(conv, changes)
        changes.teams.add(conv.team_id)
        changes.audit.append(self._audit(conv.id, "system", "hub", "requeued", reason))
        changes.events.append(self._state_event(conv, old_pro))

    def _back_to_queue(
        self,
        conv: Conversation,
        team_id: str,
        rank: float,
        reason: str,
        previous: Professional | None,
    ) -> None:
        """An assigned chat waits in ``team_id``'s queue again (requeued, transferred to a
        team, handed over from the bot); ``previous`` no longer has it."""
        self._transition(conv, ConversationEvent.REQUEUE)
        if previous is not None:
            previous.conversation_ids.discard(conv.id)
        conv.professional_id = None
        conv.team_id = team_id
        conv.queue_rank = rank
        conv.queued_at = self.clock.now_ms()
        conv.reason = reason
        queue = self._queues[team_id]
        queue.add(conv)
        self._queue_publisher.told(conv, queue.position(conv) or 1)

    def _auto_assign(self, team_id: str, changes: _Changes) -> None:
        team = self._teams.get(team_id)
        if team is None or team.assign_mode is not AssignMode.AUTO:
            return
        queue = self._queues[team_id]
        members = [p for p in self._professionals.values() if team_id in p.teams]
        while (conv := queue.head()) is not None:
            pro = choose_professional(members)
            if pro is None:
                return
            self._assign(conv, pro, "auto", changes)

    async def _apply(self, changes: _Changes) -> None:
        for team_id in sorted(changes.teams):
            self._auto_assign(team_id, changes)
        new_ids = {c.id for c in changes.new}
        updated = [c for c in changes.updated.values() if c.id not in new_ids]
        if changes.new or updated or changes.audit:
            try:
                await self.storage.save_changes(changes.new, updated, changes.audit)
            except Exception:
                log.exception("could not store a change")
                raise HubError(ErrorCode.INTERNAL, "the change could not be stored") from None
        for cid in changes.closed:
            self.storage.forget_log(cid)
        for event in changes.events:
            envelope = Envelope(event.message)
            if type(event.message) is ConversationStateChanged:
                self._announce(event.message.conversation)
            if event.to is not None:
                event.to.deliver(envelope)
            else:
                self.bus.publish(event.topics, envelope, _id(event.exclude))
        self._opening.difference_update(c.id for c in changes.new)
        self._queue_publisher.changed(changes.teams)

    def _announce(self, view: ConversationView) -> None:
        conv = self._conversations.get(view.conversation_id) or self._recently_closed.get(
            view.conversation_id
        )
        if conv is None:
            return
        if view.state == ConversationState.ASSIGNED.value and view.professional is not None:
            conv.announced_professional_id = view.professional.id
        elif view.state == ConversationState.QUEUED.value:
            conv.announced_professional_id = None


# The hub of a running application (``app[HUB]``).
HUB = web.AppKey("hub", Hub)
