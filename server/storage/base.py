"""What the rest of Kanava hands to storage: typed write records, never SQL.

A record describes one fact to store *with* the change it belongs to (in the same
transaction): an audit event, an access-log entry, a finished intake, the intake's facts on a
conversation that already exists. Only a store turns a record into SQL, in its own dialect,
so a second store (PostgreSQL) takes the same records.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.core.model import Conversation, Professional

__all__ = ["AccessEntry", "AuditEvent", "IntakeColumns", "IntakeRecord", "WriteRecord"]


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
    answers_json: str
    conversation_id: str | None


@dataclass(frozen=True, slots=True)
class IntakeColumns:
    """What an intake adds to a conversation that already exists (a chat with the bot handed
    over to a nurse): who, what about, how urgent, where."""

    conversation: Conversation


WriteRecord = AuditEvent | AccessEntry | IntakeRecord | IntakeColumns
