"""Kanava's SQLite store: :class:`Storage`, composed of one part per concern.

Each part is a mixin on :class:`~server.storage.sqlite.writer.WriterStore` (the single writer
and the reader): :mod:`~server.storage.sqlite.messages`,
:mod:`~server.storage.sqlite.conversations`, :mod:`~server.storage.sqlite.accounts`,
:mod:`~server.storage.sqlite.console`, :mod:`~server.storage.sqlite.maintenance` and
:mod:`~server.storage.sqlite.migrate`. This module holds what ties them together: the state
they share, and opening and closing the connections. The durability model is told in
:mod:`~server.storage.sqlite.writer`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

from server.core.clock import Clock, SystemClock
from server.storage.base import Appended, Retention, StorageClosed
from server.storage.sqlite.accounts import AccountsStore
from server.storage.sqlite.console import ConsoleStore
from server.storage.sqlite.conversations import ConversationsStore
from server.storage.sqlite.maintenance import MaintenanceStore, make_private
from server.storage.sqlite.messages import MessagesStore
from server.storage.sqlite.migrate import MigrationsStore
from server.storage.sqlite.writer import _Log, _MessageOp, _StatementsOp, _Writer

__all__ = ["Appended", "Retention", "Storage", "StorageClosed", "make_private"]


class Storage(
    MessagesStore,
    ConversationsStore,
    AccountsStore,
    ConsoleStore,
    MaintenanceStore,
    MigrationsStore,
):
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

    async def check_writable(self) -> None:
        """A real write through the single writer: raises if storage takes no writes now."""
        await self._execute(
            [("INSERT OR REPLACE INTO health (id, at) VALUES (1, ?)", (self.clock.now_ms(),))]
        )
