"""The single writer: every write of :class:`~server.storage.sqlite.store.Storage` goes through
it, so this is where durability, group commit and the gap-free ``seq`` are decided.

The rest of the package only queues statements (``_execute``) or messages
(:mod:`server.storage.sqlite.messages`) and reads (``_read``); the thread, the transaction, the
commit and the WAL's upkeep live here. Only the migrations use the writer's connection
directly, when the store opens, before its loop starts.

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
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from protocol.messages import ChatMessage
from server.core.clock import Clock
from server.storage.base import StorageClosed

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


_INSERT_MESSAGE = (
    "INSERT INTO messages (conversation_id, seq, msg_id, sender_role, sender_id, sender_name, "
    "text, sent_at, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class WriterStore:
    """The writer's queue, its loops and the reading connection: what every other part of
    :class:`~server.storage.sqlite.store.Storage` writes and reads through."""

    clock: Clock
    _writer: _Writer | None
    _reader: aiosqlite.Connection | None
    _pending: list[_MessageOp | _StatementsOp]
    _wakeup: asyncio.Event
    _writer_task: asyncio.Task[None] | None
    _checkpointer: aiosqlite.Connection | None
    _logs: dict[str, _Log]
    _closing: bool
    transactions: int
    min_commit_interval: float
    _last_commit: float
    _restart_wal: bool
    wal_restarts: int

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


class _Writer:
    """The one connection that writes, in a thread of its own.

    Work reaches it as a function of the connection (as Datasette's ``execute_write_fn``):
    a whole transaction is one hand-over between the event loop and the thread, so the SQL
    stays in this package and no per-statement round trips are paid.
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
