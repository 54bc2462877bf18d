"""Conversations, finished intakes and the audit trail: the rows a chat's life changes.

Also the SQL of the typed write records (:mod:`server.storage.base`) that the rest of Kanava
hands in with those changes, so that each is stored in the same transaction as its change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from protocol import ConversationState
from server.core.model import Conversation
from server.storage.base import AccessEntry, AuditEvent, IntakeColumns, IntakeRecord, WriteRecord
from server.storage.documents import (
    handover_from_json,
    handover_to_json,
    identity_from_json,
    identity_to_json,
    intake_from_json,
    intake_to_json,
)
from server.storage.sqlite.writer import Statement, WriterStore, _Log

_CONVERSATION_COLUMNS = (
    "id, token_hash, team_id, state, created_at, updated_at, client_name, topic, language, "
    "professional_id, queue_rank, queued_at, closed_at, closed_by, reason, read_client_seq, "
    "read_professional_seq, open_key_hash, triage, station_id, intake, identity, bot_seq, "
    "handover, escalated"
)
_MUTABLE_CONVERSATION_FIELDS = (
    "state",
    "token_hash",
    "open_key_hash",
    "professional_id",
    "queue_rank",
    "queued_at",
    "closed_at",
    "closed_by",
    "reason",
    "read_client_seq",
    "read_professional_seq",
    "updated_at",
    "team_id",
    "bot_seq",
    "handover",
    "escalated",
)
_UPDATE_CONVERSATION = (
    "UPDATE conversations SET "
    + ", ".join(f"{name} = ?" for name in _MUTABLE_CONVERSATION_FIELDS)
    + " WHERE id = ?"
)
# The fields not stored as they are, and how each is stored.
_ENCODED: dict[str, Callable[[Conversation], Any]] = {
    "state": lambda conv: conv.state.value,
    "handover": lambda conv: handover_to_json(conv.handover),
}


class ConversationsStore(WriterStore):
    """Conversations, intakes, audit events and access-log rows."""

    async def save_changes(
        self,
        new: Iterable[Conversation] = (),
        updated: Iterable[Conversation] = (),
        audit: Iterable[WriteRecord] = (),
    ) -> None:
        """Insert new conversations, update changed ones and add audit rows: one transaction."""
        statements: list[Statement] = []
        for conv in new:
            self._logs.setdefault(conv.id, _Log(next_seq=conv.last_seq + 1, ids={}))
            statements.append(
                (
                    f"INSERT INTO conversations ({_CONVERSATION_COLUMNS}) "
                    f"VALUES ({', '.join('?' * 25)})",
                    (
                        conv.id,
                        conv.token_hash,
                        conv.team_id,
                        conv.state.value,
                        conv.created_at,
                        conv.updated_at,
                        conv.client_name,
                        conv.topic,
                        conv.language,
                        conv.professional_id,
                        conv.queue_rank,
                        conv.queued_at,
                        conv.closed_at,
                        conv.closed_by,
                        conv.reason,
                        conv.read_client_seq,
                        conv.read_professional_seq,
                        conv.open_key_hash,
                        conv.triage,
                        conv.station_id,
                        intake_to_json(conv.intake),
                        identity_to_json(conv.identity),
                        conv.bot_seq,
                        handover_to_json(conv.handover),
                        int(conv.escalated),
                    ),
                )
            )
        for conv in updated:
            values = [
                _ENCODED[name](conv) if name in _ENCODED else getattr(conv, name)
                for name in _MUTABLE_CONVERSATION_FIELDS
            ]
            statements.append((_UPDATE_CONVERSATION, (*values, conv.id)))
        statements.extend(map(_statement, audit))
        if statements:
            await self._execute(statements)

    async def intakes(self, outcome: str | None = None) -> list[dict[str, Any]]:
        """Finished intakes (newest last), e.g. every emergency sent to 112."""
        sql = (
            "SELECT id, started_at, finished_at, topic, language, triage, outcome, answers, "
            "conversation_id FROM intakes"
        )
        rows = await (
            self._read(sql + " WHERE outcome = ? ORDER BY finished_at", (outcome,))
            if outcome
            else self._read(sql + " ORDER BY finished_at")
        )
        return [dict(r) for r in rows]

    async def save_intake(self, record: IntakeRecord, audit: Iterable[WriteRecord] = ()) -> None:
        await self._execute([_statement(record), *map(_statement, audit)])

    async def audit_events(self, conversation_id: str) -> list[tuple[str, str, str, str | None]]:
        rows = await self._read(
            "SELECT actor_role, actor_id, action, detail FROM audit_events "
            "WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def _conversation(self, row: Any) -> Conversation:
        return Conversation(
            id=row["id"],
            token_hash=row["token_hash"],
            team_id=row["team_id"],
            state=ConversationState(row["state"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            client_name=row["client_name"],
            topic=row["topic"],
            language=row["language"],
            professional_id=row["professional_id"],
            queue_rank=row["queue_rank"],
            queued_at=row["queued_at"],
            closed_at=row["closed_at"],
            closed_by=row["closed_by"],
            reason=row["reason"],
            read_client_seq=row["read_client_seq"],
            read_professional_seq=row["read_professional_seq"],
            open_key_hash=row["open_key_hash"],
            triage=row["triage"],
            station_id=row["station_id"],
            intake=intake_from_json(row["intake"]),
            identity=identity_from_json(row["identity"]),
            bot_seq=row["bot_seq"],
            handover=handover_from_json(row["handover"]),
            escalated=bool(row["escalated"]),
            last_seq=row["last_seq"] or 0,
        )

    _SELECT_CONVERSATION = (
        f"SELECT {_CONVERSATION_COLUMNS}, "
        "(SELECT MAX(seq) FROM messages m WHERE m.conversation_id = c.id) AS last_seq "
        "FROM conversations c "
    )

    async def open_conversations(self) -> list[Conversation]:
        """Every conversation that is not closed, for restoring the hub after a restart."""
        rows = await self._read(self._SELECT_CONVERSATION + "WHERE state != 'closed'")
        return [self._conversation(r) for r in rows]

    async def conversation_by_token(self, token_hash: str) -> Conversation | None:
        rows = await self._read(self._SELECT_CONVERSATION + "WHERE token_hash = ?", (token_hash,))
        return self._conversation(rows[0]) if rows else None

    async def conversation(self, conversation_id: str) -> Conversation | None:
        rows = await self._read(self._SELECT_CONVERSATION + "WHERE id = ?", (conversation_id,))
        return self._conversation(rows[0]) if rows else None

    async def save_event(self, record: WriteRecord) -> None:
        """Store one audit or access-log row on its own."""
        await self._execute([_statement(record)])


def _statement(record: WriteRecord) -> Statement:
    """The SQL of one write record."""
    match record:
        case AuditEvent():
            return (
                "INSERT INTO audit_events (at, conversation_id, actor_role, actor_id, action, "
                "detail) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.at,
                    record.conversation_id,
                    record.actor_role,
                    record.actor_id,
                    record.action,
                    record.detail,
                ),
            )
        case AccessEntry():
            return (
                "INSERT INTO access_log (at, professional_id, professional_name, conversation_id, "
                "client_key, client_name, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.at,
                    record.professional.id,
                    record.professional.display_name,
                    record.conversation_id,
                    record.client_key,
                    record.client_name,
                    record.reason,
                ),
            )
        case IntakeRecord():
            return (
                "INSERT INTO intakes (id, started_at, finished_at, topic, language, triage, "
                "outcome, answers, conversation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.intake_id,
                    record.started_at,
                    record.finished_at,
                    record.topic,
                    record.language,
                    record.triage,
                    record.outcome,
                    json.dumps(record.answers, ensure_ascii=False, sort_keys=True),
                    record.conversation_id,
                ),
            )
        case IntakeColumns(conversation=conv):
            return (
                "UPDATE conversations SET client_name = ?, topic = ?, triage = ?, "
                "station_id = ?, intake = ?, identity = ? WHERE id = ?",
                (
                    conv.client_name,
                    conv.topic,
                    conv.triage,
                    conv.station_id,
                    intake_to_json(conv.intake),
                    identity_to_json(conv.identity),
                    conv.id,
                ),
            )
    raise TypeError(f"not a write record: {record!r}")
