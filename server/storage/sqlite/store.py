"""SQLite storage: the only module that speaks SQL.

Durability model
----------------
There is exactly one writer. Every write — a chat message, a state change, a session — is put
on the writer's queue and its caller awaits a future. The writer takes *everything* pending,
runs it in one ``BEGIN IMMEDIATE … COMMIT`` transaction and then resolves the futures, so a
caller learns of success only after the commit returned (with ``synchronous=FULL`` the WAL has
been fsynced). While one transaction commits, new writes pile up and go together in the next
(group commit); under load commits are also spaced at least ``commit_interval_ms`` apart so
each carries more. A quiet server answers at once; a busy one pays one transaction (one
thread hop, one fsync) for many messages.

Sequence numbers are handed out by that same writer when it forms a batch, inside the
transaction that stores the messages; ``PRIMARY KEY (conversation_id, seq)`` backs them. If
a transaction fails, its numbers are taken back before the next batch is formed, so a
conversation's sequence never has gaps.

Idempotency: each conversation's log remembers ``(sender_role, sender_id, msg_id) -> seq``. A
retry of a stored message answers with the original ``seq``; a retry of one still in flight
waits for it. The writer loads a conversation's keys from its rows before its first write
there, and it is the only writer, so no index is needed to back this (one would double the
pages each message dirties).

Reads go through a second connection; WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from protocol import ConversationState
from protocol.messages import ChatMessage
from server.core.clock import Clock, SystemClock
from server.core.model import AssignMode, Conversation, Professional, Team
from server.storage.base import (
    AccessEntry,
    Appended,
    AuditEvent,
    IntakeColumns,
    IntakeRecord,
    Retention,
    StorageClosed,
    WriteRecord,
)
from server.storage.documents import (
    handover_from_json,
    handover_to_json,
    identity_from_json,
    identity_to_json,
    intake_from_json,
    intake_to_json,
)

__all__ = ["Appended", "Retention", "Storage", "StorageClosed", "make_private"]

# The database, its WAL and shared-memory files and its backups hold health data: readable
# and writable by the service's own user only, like the key files.
PRIVATE_MODE = 0o600
_COMPANIONS = ("-wal", "-shm", "-journal")

CHECKPOINT_SECONDS = 1.0
# Once the WAL holds this many pages, the writer starts it over (see _checkpoint_loop).
WAL_RESTART_PAGES = 2048

T = TypeVar("T")

log = logging.getLogger("kanava.storage")

Statement = tuple[str, Sequence[Any]]

# aiosqlite's debug lines print every statement with its values: message texts, answers,
# identity data. Whatever level the rest of the server logs at, they never pass.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


@dataclass(slots=True)
class _Log:
    """What the writer knows about one conversation's messages."""

    next_seq: int
    ids: dict[tuple[str, str, str], tuple[int, int] | asyncio.Future[ChatMessage]]


@dataclass(slots=True)
class _MessageOp:
    conversation_id: str
    key: tuple[str, str, str]
    sender_name: str
    text: str
    future: asyncio.Future[ChatMessage]
    message: ChatMessage | None = None
    extra: dict[str, Any] | None = None  # quick replies and actions of a bot's answer


@dataclass(slots=True)
class _StatementsOp:
    statements: list[Statement]
    future: asyncio.Future[None]


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
_HANDOVER_INDEX = _MUTABLE_CONVERSATION_FIELDS.index("handover")
_INSERT_MESSAGE = (
    "INSERT INTO messages (conversation_id, seq, msg_id, sender_role, sender_id, sender_name, "
    "text, sent_at, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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


class Storage:
    """Kanava's SQLite database. Create with :meth:`open`, end with :meth:`close`."""

    def __init__(
        self,
        path: Path,
        clock: Clock | None = None,
        synchronous: str = "full",
        commit_interval_ms: float = 0.0,
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("sqlite_synchronous must be full, normal or extra")
        self.path = path
        self.clock = clock or SystemClock()
        self.synchronous = synchronous.upper()
        self._writer: _Writer | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[_MessageOp | _StatementsOp] = []
        self._wakeup = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._checkpointer: aiosqlite.Connection | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._logs: dict[str, _Log] = {}
        self._loading: dict[str, asyncio.Future[_Log]] = {}
        self._closing = False
        self.transactions = 0  # committed write transactions, for tests and metrics
        self.min_commit_interval = commit_interval_ms / 1000
        self._last_commit = 0.0
        self._restart_wal = False
        self.wal_restarts = 0  # for tests and metrics
        # The loop the storage was opened in. asyncio.get_running_loop() makes a getpid()
        # system call on every call (Python 3.11): too dear once per chat message.
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- life cycle -----------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path,
        clock: Clock | None = None,
        synchronous: str = "full",
        commit_interval_ms: float = 0.0,
    ) -> Storage:
        storage = cls(path, clock, synchronous, commit_interval_ms)
        await storage._open()
        return storage

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        make_private(self.path)
        self._writer = await _Writer.connect(self.path)
        await self._writer.execute("PRAGMA journal_mode=WAL")
        make_private(self.path)  # the WAL and shared-memory files SQLite has just made
        await self._writer.execute(f"PRAGMA synchronous={self.synchronous}")
        await self._writer.execute("PRAGMA foreign_keys=ON")
        await self._writer.execute("PRAGMA busy_timeout=5000")
        # No checkpoint inside a commit: it would hold up every acknowledgement behind it
        # for tens of milliseconds. A connection of its own checkpoints in the background.
        await self._writer.execute("PRAGMA wal_autocheckpoint=0")
        await self._migrate()
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout=5000")
        self._reader.row_factory = aiosqlite.Row
        self._checkpointer = await aiosqlite.connect(self.path, isolation_level=None)
        await self._checkpointer.execute("PRAGMA busy_timeout=5000")
        self._writer_task = asyncio.create_task(self._write_loop(), name="kanava-storage-writer")
        self._checkpoint_task = asyncio.create_task(
            self._checkpoint_loop(), name="kanava-storage-checkpoint"
        )

    async def close(self) -> None:
        """Flush every pending write, then close the connections."""
        if self._closing:
            return
        self._closing = True
        self._wakeup.set()
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            await asyncio.gather(self._checkpoint_task, return_exceptions=True)
        if self._writer_task is not None:
            await self._writer_task
        if self._checkpointer is not None:
            await self._checkpointer.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
        for conn in (self._reader, self._checkpointer, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = self._checkpointer = None

    async def _migrate(self) -> None:
        assert self._writer is not None
        db = self._writer
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        rows = await db.execute("SELECT MAX(version) FROM schema_version")
        current = rows[0][0] or 0
        for version, name, sql in self.migrations():
            if version <= current:
                continue
            log.info("applying migration %03d %s", version, name)
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                await db.execute("COMMIT")
            except Exception:
                await db.execute("ROLLBACK")
                raise

    @staticmethod
    def migrations() -> list[tuple[int, str, str]]:
        """The numbered SQL files, in order."""
        found = []
        folder = resources.files("server.storage.sqlite") / "migrations"
        for entry in folder.iterdir():
            match = re.fullmatch(r"(\d+)_(\w+)\.sql", entry.name)
            if match:
                found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
        return sorted(found)

    async def schema_version(self) -> int:
        rows = await self._read("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0)

    # --- the writer -----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._closing and self._writer_task is not None and self._writer_task.done():
            raise StorageClosed("storage is closed")
        self._wakeup.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                if self.min_commit_interval and not self._closing:
                    # Under load, space commits a little so that each carries more: a
                    # commit's fixed cost (a thread hop, an fsync) is then shared by more
                    # messages. A quiet server never waits: the last commit is long past.
                    since = time.monotonic() - self._last_commit
                    if since < self.min_commit_interval:
                        await asyncio.sleep(self.min_commit_interval - since)
                self._last_commit = time.monotonic()
                batch, self._pending = self._pending, []
                try:
                    await self._commit(batch)
                    if self._restart_wal:
                        await self._restart_wal_in_writer()
                except Exception as exc:  # a bug here must not leave callers waiting forever
                    log.exception("storage writer failed")
                    for op in batch:
                        if not op.future.done():
                            op.future.set_exception(exc)
            if self._closing:
                return

    async def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database every second, beside the writer.

        A PASSIVE checkpoint never blocks the writer: commits go on appending to the WAL
        while it runs. But SQLite starts the WAL over only when a checkpoint has copied
        *every* page in it, and under steady load the writer always appends more while the
        checkpoint runs: the WAL then grows without end (gigabytes in minutes), and every
        lookup in its index gets slower. So once the WAL is large, the next checkpoint is
        a RESTART run by the writer itself between two transactions: the PASSIVE one has
        just copied nearly everything, so the writer pauses only for the last pages.
        """
        assert self._checkpointer is not None
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            try:
                # Fetched to the end: a statement left open would hold its read snapshot.
                rows = await self._checkpointer.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
                row = next(iter(rows), None)
            except sqlite3.Error as exc:
                log.warning("checkpoint failed (will retry): %r", exc)
                continue
            if row is not None and row[1] >= WAL_RESTART_PAGES:
                self._restart_wal = True
                self._wakeup.set()

    async def _restart_wal_in_writer(self) -> None:
        assert self._writer is not None
        self._restart_wal = False
        try:
            await self._writer.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as exc:
            log.warning("WAL restart failed (will retry): %r", exc)
            return
        self.wal_restarts += 1

    async def _commit(self, ops: list[_MessageOp | _StatementsOp]) -> None:
        assert self._writer is not None
        db = self._writer
        now = self.clock.now_ms()
        groups: list[tuple[str, list[Sequence[Any]]]] = []
        first_seq: dict[str, int] = {}
        message_rows: list[Sequence[Any]] = []
        for op in ops:
            if isinstance(op, _MessageOp):
                seq_log = self._logs[op.conversation_id]
                seq = seq_log.next_seq
                first_seq.setdefault(op.conversation_id, seq)
                seq_log.next_seq = seq + 1
                role, sender_id, msg_id = op.key
                extra = op.extra
                op.message = ChatMessage(
                    conversation_id=op.conversation_id,
                    seq=seq,
                    msg_id=msg_id,
                    sender_role=role,
                    sender_name=op.sender_name,
                    text=op.text,
                    sent_at=now,
                    sender_id=sender_id,
                    quick_replies=extra.get("quick_replies") if extra else None,
                    actions=extra.get("actions") if extra else None,
                )
                message_rows.append(
                    (
                        op.conversation_id,
                        seq,
                        msg_id,
                        role,
                        sender_id,
                        op.sender_name,
                        op.text,
                        now,
                        json.dumps(extra, ensure_ascii=False) if extra else None,
                    )
                )
            else:
                if message_rows:
                    groups.append((_INSERT_MESSAGE, message_rows))
                    message_rows = []
                for sql, params in op.statements:
                    if groups and groups[-1][0] == sql:
                        groups[-1][1].append(params)
                    else:
                        groups.append((sql, [params]))
        if message_rows:
            groups.append((_INSERT_MESSAGE, message_rows))
        try:
            # The whole transaction in one hand-over to the connection's thread: each
            # await of an aiosqlite method is a round trip between threads, and on a busy
            # single core those round trips cost more than the SQL itself.
            await db.run(_transaction_in_thread, groups)
        except Exception as exc:
            log.error("write transaction of %d operations failed: %r", len(ops), exc)
            for cid, seq in first_seq.items():
                self._logs[cid].next_seq = seq
            for op in ops:
                if isinstance(op, _MessageOp):
                    self._logs[op.conversation_id].ids.pop(op.key, None)
                if not op.future.done():
                    op.future.set_exception(exc)
            return
        self.transactions += 1
        for op in ops:
            if isinstance(op, _MessageOp):
                assert op.message is not None
                self._logs[op.conversation_id].ids[op.key] = (op.message.seq, op.message.sent_at)
                if not op.future.done():
                    op.future.set_result(op.message)
            elif not op.future.done():
                op.future.set_result(None)

    async def _execute(self, statements: list[Statement]) -> None:
        """Run statements in the writer's next transaction and wait for its commit."""
        if self._closing:
            raise StorageClosed("storage is closing")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_StatementsOp(statements, future))
        self._wake()
        await future

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._reader is None:
            raise StorageClosed("storage is closed")
        return list(await self._reader.execute_fetchall(sql, params))

    # --- messages -------------------------------------------------------------------------

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
        """Queue a chat message for the next commit, without waiting.

        Returns a future of the stored message (with its seq, once committed) and whether this
        is a retry of a message already sent by the same sender with the same ``msg_id``; then
        nothing new is stored and the future gives the original seq. The conversation's log
        must be loaded (:meth:`load_logs`, or created by :meth:`save_changes`).
        """
        if self._closing:
            raise StorageClosed("storage is closing")
        seq_log = self._logs[conversation_id]
        key = (sender_role, sender_id, msg_id)
        known = seq_log.ids.get(key)
        loop = self._loop
        assert loop is not None, "storage not open"
        if known is not None:
            future: asyncio.Future[ChatMessage] = loop.create_future()
            if isinstance(known, tuple):
                future.set_result(
                    ChatMessage(
                        conversation_id,
                        known[0],
                        msg_id,
                        sender_role,
                        sender_name,
                        text,
                        known[1],
                        sender_id,
                    )
                )
            else:
                known.add_done_callback(functools.partial(_copy_outcome, future))
            return future, True
        future = loop.create_future()
        seq_log.ids[key] = future
        self._pending.append(
            _MessageOp(conversation_id, key, sender_name, text, future, extra=extra)
        )
        self._wake()
        return future, False

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
        if conversation_id not in self._logs:
            await self._load_log(conversation_id)
        future, duplicate = self.submit_message(
            conversation_id, sender_role, sender_id, sender_name, msg_id, text
        )
        return Appended(await asyncio.shield(future), duplicate)

    async def load_logs(self, conversation_ids: Iterable[str]) -> None:
        """Load what the writer needs to know about these conversations' messages."""
        for cid in conversation_ids:
            if cid not in self._logs:
                await self._load_log(cid)

    async def find_message(
        self, conversation_id: str, sender_role: str, sender_id: str, msg_id: str
    ) -> tuple[int, int] | None:
        """``(seq, sent_at)`` of a sender's stored message with this ``msg_id``, or None."""
        seq_log = self._logs.get(conversation_id)
        if seq_log is not None:
            known = seq_log.ids.get((sender_role, sender_id, msg_id))
            if isinstance(known, tuple):
                return known
            if known is not None:
                try:
                    stored = await asyncio.shield(known)
                except Exception:
                    return None
                return stored.seq, stored.sent_at
        rows = await self._read(
            "SELECT seq, sent_at FROM messages WHERE conversation_id = ? AND sender_role = ? "
            "AND sender_id = ? AND msg_id = ?",
            (conversation_id, sender_role, sender_id, msg_id),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def _load_log(self, conversation_id: str) -> _Log:
        loading = self._loading.get(conversation_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[_Log] = asyncio.get_running_loop().create_future()
        self._loading[conversation_id] = future
        try:
            rows = await self._read(
                "SELECT sender_role, sender_id, msg_id, seq, sent_at FROM messages "
                "WHERE conversation_id = ?",
                (conversation_id,),
            )
            # A write may have created the log while we read; keep the newer one.
            seq_log = self._logs.get(conversation_id)
            if seq_log is None:
                ids: dict[tuple[str, str, str], tuple[int, int] | asyncio.Future[ChatMessage]]
                ids = {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}
                next_seq = max((r[3] for r in rows), default=0) + 1
                seq_log = self._logs[conversation_id] = _Log(next_seq, ids)
            future.set_result(seq_log)
            return seq_log
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[conversation_id]

    def forget_log(self, conversation_id: str) -> None:
        """Drop the idempotency memory of a conversation that takes no more messages."""
        seq_log = self._logs.get(conversation_id)
        if seq_log is not None and not any(
            isinstance(v, asyncio.Future) for v in seq_log.ids.values()
        ):
            del self._logs[conversation_id]

    async def history(self, conversation_id: str, after_seq: int, limit: int) -> list[ChatMessage]:
        rows = await self._read(
            "SELECT seq, msg_id, sender_role, sender_name, text, sent_at, sender_id, extra "
            "FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (conversation_id, after_seq, limit),
        )
        result = []
        for seq, msg_id, role, name, text, sent_at, sender_id, extra_json in rows:
            extra = json.loads(extra_json) if extra_json else {}  # a bot's buttons and links
            result.append(
                ChatMessage(
                    conversation_id,
                    seq,
                    msg_id,
                    role,
                    name,
                    text,
                    sent_at,
                    sender_id,
                    extra.get("quick_replies"),
                    extra.get("actions"),
                )
            )
        return result

    async def count_messages(self, conversation_id: str | None = None) -> int:
        if conversation_id is None:
            rows = await self._read("SELECT COUNT(*) FROM messages")
        else:
            rows = await self._read(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", (conversation_id,)
            )
        return int(rows[0][0])

    # --- conversations --------------------------------------------------------------------

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
        update_sql = (
            "UPDATE conversations SET "
            + ", ".join(f"{name} = ?" for name in _MUTABLE_CONVERSATION_FIELDS)
            + " WHERE id = ?"
        )
        for conv in updated:
            values = [getattr(conv, name) for name in _MUTABLE_CONVERSATION_FIELDS]
            values[0] = conv.state.value
            values[_HANDOVER_INDEX] = handover_to_json(conv.handover)
            statements.append((update_sql, (*values, conv.id)))
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

    # --- teams, professionals, sessions ---------------------------------------------------

    async def save_team(self, team: Team) -> None:
        await self._execute(
            [
                (
                    "INSERT INTO teams (id, name, assign_mode) VALUES (?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                    "assign_mode = excluded.assign_mode",
                    (team.id, team.name, team.assign_mode.value),
                )
            ]
        )

    async def teams(self) -> list[Team]:
        rows = await self._read("SELECT id, name, assign_mode FROM teams ORDER BY id")
        return [Team(r[0], r[1], AssignMode(r[2])) for r in rows]

    async def save_professional(self, pro: Professional) -> None:
        statements: list[Statement] = [
            (
                "INSERT INTO professionals (id, username, display_name, title, password_hash, "
                "capacity, bot, role, oidc_subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET "
                "username = excluded.username, display_name = excluded.display_name, "
                "title = excluded.title, password_hash = excluded.password_hash, "
                "capacity = excluded.capacity, bot = excluded.bot, role = excluded.role, "
                "oidc_subject = excluded.oidc_subject",
                (
                    pro.id,
                    pro.username,
                    pro.display_name,
                    pro.title,
                    pro.password_hash,
                    pro.capacity,
                    int(pro.bot),
                    pro.role,
                    pro.oidc_subject,
                ),
            ),
            ("DELETE FROM professional_teams WHERE professional_id = ?", (pro.id,)),
        ]
        statements += [
            ("INSERT INTO professional_teams (professional_id, team_id) VALUES (?, ?)", (pro.id, t))
            for t in pro.teams
        ]
        await self._execute(statements)

    async def set_password_hash(self, professional_id: str, password_hash: str) -> None:
        await self._execute(
            [
                (
                    "UPDATE professionals SET password_hash = ? WHERE id = ?",
                    (password_hash, professional_id),
                )
            ]
        )

    async def professionals(self) -> list[Professional]:
        rows = await self._read(
            "SELECT p.id, p.username, p.display_name, p.title, p.capacity, p.password_hash, "
            "GROUP_CONCAT(t.team_id), p.bot, p.role, p.oidc_subject FROM professionals p "
            "LEFT JOIN professional_teams t ON t.professional_id = p.id "
            "GROUP BY p.id ORDER BY p.id"
        )
        return [
            Professional(
                id=r[0],
                username=r[1],
                display_name=r[2],
                title=r[3],
                capacity=r[4],
                password_hash=r[5],
                teams=tuple(sorted(r[6].split(","))) if r[6] else (),
                bot=bool(r[7]),
                role=r[8],
                oidc_subject=r[9],
            )
            for r in rows
        ]

    async def create_session(self, token_hash: str, professional_id: str, expires_at: int) -> None:
        await self._execute(
            [
                (
                    "INSERT INTO sessions (token_hash, professional_id, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?)",
                    (token_hash, professional_id, self.clock.now_ms(), expires_at),
                )
            ]
        )

    async def session(self, token_hash: str) -> tuple[str, int] | None:
        """``(professional_id, expires_at)`` of a session, or None."""
        rows = await self._read(
            "SELECT professional_id, expires_at FROM sessions WHERE token_hash = ?", (token_hash,)
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def delete_session(self, token_hash: str) -> None:
        await self._execute([("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))])

    async def check_writable(self) -> None:
        """A real write through the single writer: raises if storage takes no writes now."""
        await self._execute(
            [("INSERT OR REPLACE INTO health (id, at) VALUES (1, ?)", (self.clock.now_ms(),))]
        )

    # --- retention and backups -----------------------------------------------------------

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
        counts = await Storage.check_file(target)
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
        await Storage.check_file(backup)
        make_private(database)
        async with aiosqlite.connect(backup) as source, aiosqlite.connect(database) as target:
            await source.backup(target)
            await target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = await Storage.check_file(database)
        make_private(database)
        return counts

    # --- the client's feedback -----------------------------------------------------------

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

    # --- the console: drafts, the access log, record entries ------------------------------

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

    async def save_event(self, record: WriteRecord) -> None:
        """Store one audit or access-log row on its own."""
        await self._execute([_statement(record)])

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


class _Writer:
    """The one connection that writes, in a thread of its own.

    Work reaches it as a function of the connection (as Datasette's ``execute_write_fn``):
    a whole transaction is one hand-over between the event loop and the thread, so the SQL
    stays in this module and no per-statement round trips are paid.
    """

    def __init__(self, conn: sqlite3.Connection, pool: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._pool = pool

    @classmethod
    async def connect(cls, path: Path) -> _Writer:
        pool = ThreadPoolExecutor(1, thread_name_prefix="kanava-writer")
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(
            pool,
            functools.partial(
                sqlite3.connect, str(path), isolation_level=None, check_same_thread=False
            ),
        )
        return cls(conn, pool)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in the writer's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, self._conn, *args)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement, its rows fetched to the end."""
        return await self.run(_execute_in_thread, sql, params)

    async def close(self) -> None:
        await self.run(sqlite3.Connection.close)
        self._pool.shutdown(wait=True)


def _execute_in_thread(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _transaction_in_thread(
    conn: sqlite3.Connection, groups: list[tuple[str, list[Sequence[Any]]]]
) -> None:
    """Runs in the writer connection's own thread: one transaction, committed or undone."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in groups:
            if len(rows) == 1:
                conn.execute(sql, rows[0])
            else:
                conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _copy_outcome(target: asyncio.Future[Any], source: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file; a trigger's body (BEGIN … END) stays whole."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements: list[str] = []
    pending = ""
    for part in "\n".join(lines).split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip().removesuffix(";").strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip().removesuffix(";").strip())
    return statements
