"""What the console keeps beside the chat: professionals' drafts, the access log they read,
the patient-record entries they save, and the clients' feedback.

Rows of their own, read back for the console and for reporting; none of them takes part in
the message flow.
"""

from __future__ import annotations

from typing import Any

from server.storage.sqlite.writer import Statement, WriterStore


class ConsoleStore(WriterStore):
    """Feedback, drafts, the access log, record entries."""

    async def save_feedback(
        self,
        conversation_id: str,
        at: int,
        rating: int | None,
        comment: str | None,
        team_id: str,
        language: str | None,
    ) -> None:
        await self._execute(
            [
                (
                    "INSERT INTO feedback (conversation_id, at, rating, comment, team_id, "
                    "language) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(conversation_id) DO UPDATE SET at = excluded.at, "
                    "rating = excluded.rating, comment = excluded.comment",
                    (conversation_id, at, rating, comment, team_id, language),
                )
            ]
        )

    async def feedback(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """Feedback given since ``since_ms``, oldest first (for reporting)."""
        rows = await self._read(
            "SELECT conversation_id, at, rating, comment, team_id, language FROM feedback "
            "WHERE at >= ? ORDER BY at",
            (since_ms,),
        )
        return [dict(r) for r in rows]

    async def set_draft(
        self, conversation_id: str, professional_id: str, text: str, at: int
    ) -> None:
        """Keep (or, when empty, forget) a professional's unsent text in a conversation."""
        if text:
            statement: Statement = (
                "INSERT INTO drafts (conversation_id, professional_id, text, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(conversation_id, professional_id) DO UPDATE "
                "SET text = excluded.text, updated_at = excluded.updated_at",
                (conversation_id, professional_id, text, at),
            )
        else:
            statement = (
                "DELETE FROM drafts WHERE conversation_id = ? AND professional_id = ?",
                (conversation_id, professional_id),
            )
        await self._execute([statement])

    async def drafts(self, professional_id: str) -> dict[str, str]:
        """A professional's unsent texts by conversation (only open ones keep any)."""
        rows = await self._read(
            "SELECT d.conversation_id, d.text FROM drafts d "
            "JOIN conversations c ON c.id = d.conversation_id "
            "WHERE d.professional_id = ? AND c.state != 'closed'",
            (professional_id,),
        )
        return {r[0]: r[1] for r in rows}

    async def access_log(
        self, *, client_key: str | None = None, conversation_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Who opened the conversations of one client (or one conversation), oldest first."""
        columns = (
            "SELECT at, professional_id, professional_name, conversation_id, client_name, reason "
            "FROM access_log "
        )
        if client_key is not None:
            rows = await self._read(columns + "WHERE client_key = ? ORDER BY at, id", (client_key,))
        else:
            rows = await self._read(
                columns + "WHERE conversation_id = ? ORDER BY at, id", (conversation_id,)
            )
        return [dict(r) for r in rows]

    async def save_record(
        self,
        conversation_id: str,
        professional_id: str,
        saved_at: int,
        fields: dict[str, str],
        new_record_id: str,
    ) -> tuple[str, int]:
        """Store a new version of a conversation's record entry: ``(record_id, version)``."""
        latest = await self.record(conversation_id)
        record_id = latest["record_id"] if latest else new_record_id
        version = latest["version"] + 1 if latest else 1
        await self._execute(
            [
                (
                    "INSERT INTO records (record_id, version, conversation_id, professional_id, "
                    "saved_at, outcome, reason, symptoms, advice, follow_up) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record_id,
                        version,
                        conversation_id,
                        professional_id,
                        saved_at,
                        fields["outcome"],
                        fields["reason"],
                        fields["symptoms"],
                        fields["advice"],
                        fields["follow_up"],
                    ),
                )
            ]
        )
        return record_id, version

    _SELECT_RECORD = (
        "SELECT record_id, version, conversation_id, professional_id, saved_at, outcome, "
        "reason, symptoms, advice, follow_up FROM records "
    )

    async def record(
        self, conversation_id: str | None = None, *, record_id: str | None = None
    ) -> dict[str, Any] | None:
        """The latest version of a conversation's (or a record id's) entry, or None."""
        if record_id is not None:
            rows = await self._read(
                self._SELECT_RECORD + "WHERE record_id = ? ORDER BY version DESC LIMIT 1",
                (record_id,),
            )
        else:
            rows = await self._read(
                self._SELECT_RECORD + "WHERE conversation_id = ? ORDER BY version DESC LIMIT 1",
                (conversation_id,),
            )
        return dict(rows[0]) if rows else None
