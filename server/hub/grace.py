"""What time alone changes: the grace period, the close of abandoned chats, and their timers.

- :class:`GracePeriod`: which professionals have been away long enough that their chats go
  back to the queue;
- :class:`IdleClose`: which waiting chats (queued, or with the bot) have had no socket of
  their client long enough to be closed;
- :class:`Timers`: jobs run later, each in a task of its own, all cancelled at stop.

The first two only decide, at a time they are given; the hub makes the changes (decide →
persist → publish) and asks them again when a timer fires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from server.core.model import Professional

__all__ = ["GracePeriod", "IdleClose", "Timers", "Unattended"]

log = logging.getLogger("kanava.hub")


@dataclass(frozen=True, slots=True)
class GracePeriod:
    """How long a professional's chats stay theirs after their last connection closed."""

    seconds: float

    @property
    def check_after(self) -> float:
        """When to look again after a professional left: just after their period ends."""
        return self.seconds + 0.01

    def present(self, pro: Professional, now_ms: int) -> bool:
        """Online, or offline for less than the grace period (and so expected back)."""
        return pro.online or (
            pro.offline_since_ms is not None and now_ms - pro.offline_since_ms < self.seconds * 1000
        )

    def expired(self, professionals: Iterable[Professional], now_ms: int) -> list[Professional]:
        """The professionals offline for the whole grace period who still hold chats."""
        grace_ms = self.seconds * 1000
        return [
            pro
            for pro in professionals
            if not pro.online
            and pro.offline_since_ms is not None
            and pro.conversation_ids
            and now_ms - pro.offline_since_ms >= grace_ms
        ]


@dataclass(frozen=True, slots=True)
class Unattended:
    """An open chat as the idle close sees it."""

    conversation_id: str
    with_bot: bool
    queued: bool
    client_here: bool  # a socket of the client is open (or the chat is still being opened)


class IdleClose:
    """Which waiting chats have had no client for too long.

    A chat with the bot goes after ``bot_minutes`` without any socket of its client, a queued
    chat after ``queued_minutes`` (longer, since a phone drops its socket whenever its screen
    locks); 0 keeps them. Chats with a person are left to that person. It remembers since when
    each chat has been without its client, from the first sweep that found it so.
    """

    def __init__(self, bot_minutes: float, queued_minutes: float) -> None:
        self._bot_minutes = bot_minutes
        self._queued_minutes = queued_minutes
        self._away_since: dict[str, int] = {}

    @property
    def sweep_seconds(self) -> float | None:
        """How often to look: a quarter of the shorter limit, within 0.2 s to 60 s (None:
        both are off)."""
        limits = [m for m in (self._bot_minutes, self._queued_minutes) if m > 0]
        if not limits:
            return None
        return min(60.0, max(0.2, min(limits) * 60 / 4))

    def due(self, chats: Iterable[Unattended], now_ms: int) -> list[str]:
        """The ids of the chats to close at ``now_ms``, in the order given."""
        due: list[str] = []
        for chat in chats:
            if chat.with_bot:
                limit_ms = self._bot_minutes * 60_000
            elif chat.queued:
                limit_ms = self._queued_minutes * 60_000
            else:
                limit_ms = 0
            if not limit_ms or chat.client_here:
                self._away_since.pop(chat.conversation_id, None)
                continue
            since = self._away_since.setdefault(chat.conversation_id, now_ms)
            if now_ms - since >= limit_ms:
                due.append(chat.conversation_id)
        return due

    def forget(self, conversation_id: str) -> None:
        """The chat has ended."""
        self._away_since.pop(conversation_id, None)


class Timers:
    """Jobs run later or now, each in a task of its own; :meth:`stop` cancels them all."""

    def __init__(self) -> None:
        self._handles: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._stopped:  # a job that ends after stop() schedules nothing more
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def later(self, delay: float, job: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run ``job`` in a task of its own after ``delay`` seconds."""
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._handles.discard(handle)
            self.spawn(job())

        handle = loop.call_later(delay, fire)
        self._handles.add(handle)

    def every(self, delay: float, job: Callable[[], Awaitable[Any]], failed: str) -> None:
        """Run ``job`` ``delay`` seconds after the last run ended, until stopped; a failure is
        logged (``failed`` says what failed) and the next run comes as usual."""

        async def run() -> None:
            try:
                await job()
            except Exception:
                log.exception(failed)
            finally:
                self.later(delay, run)

        self.later(delay, run)

    async def stop(self) -> None:
        self._stopped = True
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
