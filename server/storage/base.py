"""What the rest of Kanava hands to storage: typed write records, never SQL.

A record describes one fact to store *with* the change it belongs to (in the same
transaction): an audit event, an access-log entry, a finished intake, the intake's facts on a
conversation that already exists. Only a store turns a record into SQL, in its own dialect,
so a second store (PostgreSQL) takes the same records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from protocol.messages import ChatMessage
from server.core.model import Conversation, Professional, Team

__all__ = [
    "RETAINED_KINDS",
    "STORAGE",
    "AccessEntry",
    "Appended",
    "AuditEvent",
    "IntakeColumns",
    "IntakeRecord",
    "Retention",
    "Store",
    "StorageClosed",
    "WriteRecord",
]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something that happened to a conversation (or an intake, or the service), and who did it."""

    at: int
    conversation_id: str | None
    actor_role: str
    actor_id: str
    action: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """A professional opened a client's conversation or record (the append-only access log)."""

    at: int
    professional: Professional
    conversation_id: str
    client_key: str | None
    client_name: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    """How one intake ended (queued, 112, the bot, guidance, closed), with its answers."""

    intake_id: str
    started_at: int
    finished_at: int
    topic: str
    language: str
    triage: str
    outcome: str
    answers: Mapping[str, Any]  # the normalized answers in question order
    conversation_id: str | None


@dataclass(frozen=True, slots=True)
class IntakeColumns:
    """What an intake adds to a conversation that already exists (a chat with the bot handed
    over to a nurse): who, what about, how urgent, where."""

    conversation: Conversation


WriteRecord = AuditEvent | AccessEntry | IntakeRecord | IntakeColumns


RETAINED_KINDS = ("anonymous", "bot_only", "identified", "never_closed")


class StorageClosed(RuntimeError):
    """The store is closed: nothing more is written."""


@dataclass(frozen=True, slots=True)
class Appended:
    """The result of storing a chat message."""

    message: ChatMessage
    duplicate: bool


@dataclass(slots=True)
class Retention:
    """What ``kanava retention`` deletes, by kind.

    ``conversations``: ids by kind — ``anonymous`` (ended, a person answered, the client did
    not identify), ``bot_only`` (ended, only the advice bot answered), ``identified`` (ended,
    the client identified) and ``never_closed`` (never ended, inactive since the cutoff of its
    kind); after deletion, id → messages deleted. ``intakes``: intakes that never became a
    chat. ``sessions``: expired sessions. ``drafts``: unsent texts of ended chats.
    """

    conversations: dict[str, Any] = field(
        default_factory=lambda: {kind: [] for kind in RETAINED_KINDS}
    )
    intakes: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    drafts: list[tuple[str, str]] = field(default_factory=list)
    messages: int = 0

    def counts(self) -> dict[str, int]:
        return {
            **{kind: len(self.conversations[kind]) for kind in RETAINED_KINDS},
            "intakes_without_chat": len(self.intakes),
            "expired_sessions": len(self.sessions),
            "drafts_of_closed_chats": len(self.drafts),
        }


class Store(Protocol):
    """What the rest of Kanava asks of a store: the SQLite one today, PostgreSQL next.

    Every write that must be durable is acknowledged only after its transaction commits;
    messages get a gap-free ``seq`` per conversation in that transaction; a sender's
    ``msg_id`` makes a retried send return the stored message instead of a second one.
    """

    async def close(self) -> None:
        """Flush every pending write, then close the connections."""
        ...

    async def schema_version(self) -> int: ...

    def submit_message(
        self,
        conversation_id: str,
        sender_role: str,
        sender_id: str,
        sender_name: str,
        msg_id: str,
        text: str,
        extra: dict[str, Any] | None = None,
    ) -> tuple[asyncio.Future[ChatMessage], bool]:
        """Queue a chat message for the next commit, without waiting."""
        ...

    async def append_message(
        self,
        conversation_id: str,
        sender_role: str,
        sender_id: str,
        sender_name: str,
        msg_id: str,
        text: str,
    ) -> Appended:
        """Store a chat message and wait until it is durably committed."""
        ...

    async def load_logs(self, conversation_ids: Iterable[str]) -> None:
        """Load what the writer needs to know about these conversations' messages."""
        ...

    async def find_message(
        self, conversation_id: str, sender_role: str, sender_id: str, msg_id: str
    ) -> tuple[int, int] | None:
        """``(seq, sent_at)`` of a sender's stored message with this ``msg_id``, or None."""
        ...

    def forget_log(self, conversation_id: str) -> None:
        """Drop the idempotency memory of a conversation that takes no more messages."""
        ...

    async def history(
        self, conversation_id: str, after_seq: int, limit: int
    ) -> list[ChatMessage]: ...

    async def count_messages(self, conversation_id: str | None = None) -> int: ...

    async def save_changes(
        self,
        new: Iterable[Conversation] = (),
        updated: Iterable[Conversation] = (),
        audit: Iterable[WriteRecord] = (),
    ) -> None:
        """Insert new conversations, update changed ones and add audit rows: one transaction."""
        ...

    async def intakes(self, outcome: str | None = None) -> list[dict[str, Any]]:
        """Finished intakes (newest last), e.g. every emergency sent to 112."""
        ...

    async def save_intake(
        self, record: IntakeRecord, audit: Iterable[WriteRecord] = ()
    ) -> None: ...

    async def audit_events(
        self, conversation_id: str
    ) -> list[tuple[str, str, str, str | None]]: ...

    async def open_conversations(self) -> list[Conversation]:
        """Every conversation that is not closed, for restoring the hub after a restart."""
        ...

    async def conversation_by_token(self, token_hash: str) -> Conversation | None: ...

    async def conversation(self, conversation_id: str) -> Conversation | None: ...

    async def save_team(self, team: Team) -> None: ...

    async def teams(self) -> list[Team]: ...

    async def save_professional(self, pro: Professional) -> None: ...

    async def set_password_hash(self, professional_id: str, password_hash: str) -> None: ...

    async def professionals(self) -> list[Professional]: ...

    async def create_session(
        self, token_hash: str, professional_id: str, expires_at: int
    ) -> None: ...

    async def session(self, token_hash: str) -> tuple[str, int] | None:
        """``(professional_id, expires_at)`` of a session, or None."""
        ...

    async def delete_session(self, token_hash: str) -> None: ...

    async def check_writable(self) -> None:
        """A real write through the single writer: raises if storage takes no writes now."""
        ...

    async def retention_candidates(
        self, anonymous_before_ms: int, identified_before_ms: int | None, now_ms: int
    ) -> Retention:
        """Everything whose retention time is over, by kind (see :class:`Retention`)."""
        ...

    async def delete_retained(
        self,
        due: Retention,
        anonymous_before_ms: int,
        identified_before_ms: int | None,
        now_ms: int,
    ) -> Retention:
        """Delete what :meth:`retention_candidates` found; returns what was deleted."""
        ...

    async def count_kept(self) -> dict[str, int]: ...

    async def missing_conversations(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` that are not (or no longer) stored."""
        ...

    async def save_feedback(
        self,
        conversation_id: str,
        at: int,
        rating: int | None,
        comment: str | None,
        team_id: str,
        language: str | None,
    ) -> None: ...

    async def feedback(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """Feedback given since ``since_ms``, oldest first (for reporting)."""
        ...

    async def set_draft(
        self, conversation_id: str, professional_id: str, text: str, at: int
    ) -> None:
        """Keep (or, when empty, forget) a professional's unsent text in a conversation."""
        ...

    async def drafts(self, professional_id: str) -> dict[str, str]:
        """A professional's unsent texts by conversation (only open ones keep any)."""
        ...

    async def save_event(self, record: WriteRecord) -> None:
        """Store one audit or access-log row on its own."""
        ...

    async def access_log(
        self, *, client_key: str | None = None, conversation_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Who opened the conversations of one client (or one conversation), oldest first."""
        ...

    async def save_record(
        self,
        conversation_id: str,
        professional_id: str,
        saved_at: int,
        fields: dict[str, str],
        new_record_id: str,
    ) -> tuple[str, int]:
        """Store a new version of a conversation's record entry: ``(record_id, version)``."""
        ...

    async def record(
        self, conversation_id: str | None = None, *, record_id: str | None = None
    ) -> dict[str, Any] | None:
        """The latest version of a conversation's (or a record id's) entry, or None."""
        ...


#: The store of a running application (``app[STORAGE]``).
STORAGE = web.AppKey("storage", Store)
