"""Keeping the database file: retention (what is due, deleting it), backups, checks,
restores, and the file's private mode.

The operator's side of the store (``kanava retention``, ``kanava backup``, ``kanava
restore``), apart from what serves the chats.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from protocol import ConversationState
from server.storage.base import Retention
from server.storage.sqlite.writer import Statement, WriterStore

log = logging.getLogger("kanava.storage")

# The database, its WAL and shared-memory files and its backups hold health data: readable
# and writable by the service's own user only, like the key files.
PRIVATE_MODE = 0o600
_COMPANIONS = ("-wal", "-shm", "-journal")


# A conversation whose retention time is over: no patient-record entry, and ended (or, never
# ended, last active: its last change or message) before the cutoff of its kind. Parameters:
# the cutoff of anonymous clients and bot-only chats, then that of identified clients.
_DUE = (
    "NOT EXISTS (SELECT 1 FROM records r WHERE r.conversation_id = c.id) AND "
    "(CASE WHEN c.state = 'closed' THEN c.closed_at ELSE MAX(c.updated_at, COALESCE("
    "(SELECT MAX(m.sent_at) FROM messages m WHERE m.conversation_id = c.id), 0)) END) "
    "< (CASE WHEN c.identity IS NULL THEN ? ELSE ? END)"
)


def _cutoffs(anonymous_before_ms: int, identified_before_ms: int | None) -> tuple[int, int]:
    # -1: no identified client's chat is ever due (times are never negative).
    return anonymous_before_ms, -1 if identified_before_ms is None else identified_before_ms


def _chunks(keys: Sequence[Any], size: int = 400) -> Iterable[list[Any]]:
    for start in range(0, len(keys), size):
        yield list(keys[start : start + size])


class MaintenanceStore(WriterStore):
    """Retention, backup, check and restore."""

    async def retention_candidates(
        self, anonymous_before_ms: int, identified_before_ms: int | None, now_ms: int
    ) -> Retention:
        """Everything whose retention time is over, by kind (see :class:`Retention`).

        A conversation's time runs from its end, or, for one that never ended, from its last
        activity (a change or a message). A conversation with a patient-record entry is never
        a candidate; an identified client's only when ``identified_before_ms`` is given.
        """
        cutoffs = _cutoffs(anonymous_before_ms, identified_before_ms)
        rows = await self._read(
            "SELECT c.id, c.state, c.identity IS NOT NULL AS identified, EXISTS ("
            "  SELECT 1 FROM messages m JOIN professionals p ON p.id = m.sender_id"
            "  WHERE m.conversation_id = c.id AND m.sender_role = 'professional' AND p.bot = 0"
            f") AS person FROM conversations c WHERE {_DUE}",
            cutoffs,
        )
        due = Retention()
        for row in rows:
            if row["state"] != ConversationState.CLOSED.value:
                kind = "never_closed"
            elif row["identified"]:
                kind = "identified"
            else:
                kind = "anonymous" if row["person"] else "bot_only"
            due.conversations[kind].append(row["id"])
        rows = await self._read(
            "SELECT id FROM intakes WHERE conversation_id IS NULL AND finished_at < ?",
            (anonymous_before_ms,),
        )
        due.intakes = [r[0] for r in rows]
        rows = await self._read("SELECT token_hash FROM sessions WHERE expires_at < ?", (now_ms,))
        due.sessions = [r[0] for r in rows]
        rows = await self._read(
            "SELECT d.conversation_id, d.professional_id FROM drafts d "
            "JOIN conversations c ON c.id = d.conversation_id WHERE c.state = 'closed'"
        )
        going = {cid for ids in due.conversations.values() for cid in ids}
        due.drafts = [(r[0], r[1]) for r in rows if r[0] not in going]
        return due

    async def delete_retained(
        self,
        due: Retention,
        anonymous_before_ms: int,
        identified_before_ms: int | None,
        now_ms: int,
    ) -> Retention:
        """Delete what :meth:`retention_candidates` found; returns what was deleted.

        Each deletion checks again that its rows are still due, in the transaction that
        deletes them: a chat that has come alive meanwhile, or got a record entry, is kept.
        """
        cutoffs = _cutoffs(anonymous_before_ms, identified_before_ms)
        done = Retention(messages=0)
        for kind, ids in due.conversations.items():
            gone = await self._delete_conversations(ids, cutoffs)
            done.conversations[kind] = gone
            done.messages += sum(gone.values())
        for chunk in _chunks(due.intakes):
            marks = ", ".join("?" for _ in chunk)
            await self._execute(
                [
                    (
                        "DELETE FROM audit_events WHERE conversation_id IS NULL AND "
                        "actor_role = 'client' AND action LIKE 'intake%' AND actor_id IN "
                        f"({marks}) AND actor_id IN (SELECT id FROM intakes WHERE "
                        "conversation_id IS NULL AND finished_at < ?)",
                        (*chunk, anonymous_before_ms),
                    ),
                    (
                        f"DELETE FROM intakes WHERE id IN ({marks}) AND conversation_id IS NULL "
                        "AND finished_at < ?",
                        (*chunk, anonymous_before_ms),
                    ),
                ]
            )
        done.intakes = await self._missing("intakes", "id", due.intakes)
        for chunk in _chunks(due.sessions):
            marks = ", ".join("?" for _ in chunk)
            await self._execute(
                [
                    (
                        f"DELETE FROM sessions WHERE token_hash IN ({marks}) AND expires_at < ?",
                        (*chunk, now_ms),
                    )
                ]
            )
        done.sessions = await self._missing("sessions", "token_hash", due.sessions)
        if due.drafts:
            await self._execute(
                [
                    (
                        "DELETE FROM drafts WHERE conversation_id = ? AND professional_id = ? "
                        "AND conversation_id IN (SELECT id FROM conversations WHERE state = "
                        "'closed')",
                        pair,
                    )
                    for pair in due.drafts
                ]
            )
        done.drafts = list(due.drafts)
        return done

    async def _delete_conversations(
        self, ids: Sequence[str], cutoffs: tuple[int, int]
    ) -> dict[str, int]:
        """Delete the conversations still due with everything said in them: deleted id →
        its messages. The access log keeps its rows: it is the client's record of who saw
        their data."""
        deleted: dict[str, int] = {}
        for chunk in _chunks(ids):
            marks = ", ".join("?" for _ in chunk)
            still_due = f"SELECT id FROM conversations c WHERE id IN ({marks}) AND {_DUE}"
            params = (*chunk, *cutoffs)
            rows = await self._read(
                "SELECT conversation_id, COUNT(*) FROM messages "
                f"WHERE conversation_id IN ({marks}) GROUP BY conversation_id",
                chunk,
            )
            messages = {r[0]: r[1] for r in rows}
            statements: list[Statement] = [
                # An intake's own audit row names it, not the conversation it led to.
                (
                    "DELETE FROM audit_events WHERE conversation_id IS NULL AND "
                    "actor_role = 'client' AND action LIKE 'intake%' AND actor_id IN "
                    f"(SELECT id FROM intakes WHERE conversation_id IN ({still_due}))",
                    params,
                )
            ]
            statements += [
                (f"DELETE FROM {table} WHERE conversation_id IN ({still_due})", params)
                for table in ("messages", "drafts", "feedback", "intakes", "audit_events")
            ]
            statements.append((f"DELETE FROM conversations WHERE id IN ({still_due})", params))
            await self._execute(statements)
            for cid in await self._missing("conversations", "id", chunk):
                deleted[cid] = messages.get(cid, 0)
        return deleted

    async def _missing(self, table: str, column: str, keys: Sequence[str]) -> list[str]:
        """Those of ``keys`` that ``table`` no longer has."""
        missing: list[str] = []
        for chunk in _chunks(keys):
            marks = ", ".join("?" for _ in chunk)
            rows = await self._read(
                f"SELECT {column} FROM {table} WHERE {column} IN ({marks})", chunk
            )
            present = {r[0] for r in rows}
            missing += [key for key in chunk if key not in present]
        return missing

    async def count_kept(self) -> dict[str, int]:
        rows = await self._read(
            "SELECT COUNT(*) AS conversations, "
            "SUM(identity IS NOT NULL) AS identified FROM conversations"
        )
        intakes = await self._read("SELECT COUNT(*) FROM intakes")
        sessions = await self._read("SELECT COUNT(*) FROM sessions")
        return {
            "conversations": rows[0][0] or 0,
            "identified": rows[0][1] or 0,
            "intakes": intakes[0][0],
            "sessions": sessions[0][0],
        }

    async def missing_conversations(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` that are not (or no longer) stored."""
        return await self._missing("conversations", "id", ids)

    @staticmethod
    async def backup(source: Path, target: Path) -> dict[str, int]:
        """A consistent copy of the database at ``source``, taken while it is in use.

        SQLite's online backup copies a snapshot: writes that commit meanwhile are either
        wholly in the copy or not at all. The copy is checked before it is reported.
        """
        make_private(target)
        async with aiosqlite.connect(source) as live, aiosqlite.connect(target) as copy:
            await live.execute("PRAGMA busy_timeout=5000")
            await live.backup(copy)
        counts = await MaintenanceStore.check_file(target)
        make_private(target)
        return counts

    @staticmethod
    async def check_file(path: Path) -> dict[str, int]:
        """``integrity_check`` must say ok; returns a few counts of what the file holds."""
        async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
            (result,) = await (await db.execute("PRAGMA integrity_check")).fetchone() or ("",)
            if result != "ok":
                raise ValueError(f"{path} is damaged: {result}")
            counts = {}
            for table in ("conversations", "messages", "records"):
                row = await (await db.execute(f"SELECT COUNT(*) FROM {table}")).fetchone()
                counts[table] = row[0] if row else 0
            return counts

    @staticmethod
    async def restore(backup: Path, database: Path) -> dict[str, int]:
        """Replace ``database`` (its server stopped) with a checked backup."""
        await MaintenanceStore.check_file(backup)
        make_private(database)
        async with aiosqlite.connect(backup) as source, aiosqlite.connect(database) as target:
            await source.backup(target)
            await target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = await MaintenanceStore.check_file(database)
        make_private(database)
        return counts


def make_private(database: Path) -> None:
    """Create ``database`` (empty) with mode 0600 if it is missing, and give it and its WAL,
    shared-memory and journal files that mode if they have another (a database made before
    Kanava did this, or copied with a looser mode). SQLite makes the companion files with
    the database's own mode."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_RDWR | os.O_CREAT, PRIVATE_MODE))
    for path in (database, *(database.with_name(database.name + c) for c in _COMPANIONS)):
        try:
            if path.stat().st_mode & 0o777 != PRIVATE_MODE:
                os.chmod(path, PRIVATE_MODE)
        except FileNotFoundError:
            pass
        except PermissionError as exc:
            log.warning("cannot make %s private (chmod 600 it): %r", path, exc)
