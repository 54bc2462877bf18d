"""Queues and the choice of professional: pure data structures and decisions.

A team's queue is ordered by a *rank*: the time a conversation was queued, in milliseconds
(:func:`queue_rank`), an urgent one moved far into the past so that it goes before every
routine one. A conversation whose professional went away re-enters at the front, with a rank
just below the current head, so it is next in line; several re-entering keep their relative
order. Positions are 1-based (1 = next in line).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

from server.core.model import Conversation, Professional

__all__ = [
    "DEFAULT_HANDLING_MINUTES",
    "URGENT_RANK_OFFSET_MS",
    "Queue",
    "choose_professional",
    "estimate_wait",
    "queue_rank",
]

URGENT_RANK_OFFSET_MS = 10**12  # about 32 years: before any routine chat


def queue_rank(queued_ms: int, triage: str | None) -> float:
    """The rank of a chat queued at ``queued_ms``. Urgent chats sort before every routine one
    and keep their own order among themselves: their rank is their queueing time moved far
    into the past."""
    return float(queued_ms) - (URGENT_RANK_OFFSET_MS if triage == "urgent" else 0)


class Queue:
    """Waiting conversations of one team, in the order they will be served."""

    def __init__(self) -> None:
        self._keys: list[tuple[float, str]] = []
        self._conversations: dict[str, Conversation] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._conversations

    def __iter__(self) -> Iterator[Conversation]:
        for _, cid in self._keys:
            yield self._conversations[cid]

    def add(self, conv: Conversation) -> None:
        assert conv.queue_rank is not None, "a queued conversation has a rank"
        if conv.id in self._conversations:
            self.remove(conv)
        bisect.insort(self._keys, (conv.queue_rank, conv.id))
        self._conversations[conv.id] = conv

    def remove(self, conv: Conversation) -> None:
        stored = self._conversations.pop(conv.id, None)
        if stored is None:
            return
        assert stored.queue_rank is not None
        key = (stored.queue_rank, stored.id)
        index = bisect.bisect_left(self._keys, key)
        del self._keys[index]

    def head(self) -> Conversation | None:
        return self._conversations[self._keys[0][1]] if self._keys else None

    def position(self, conv: Conversation) -> int | None:
        if conv.id not in self._conversations or conv.queue_rank is None:
            return None
        return bisect.bisect_left(self._keys, (conv.queue_rank, conv.id)) + 1

    def front_rank(self, now_ms: int) -> float:
        """A rank that puts a conversation before everyone waiting now."""
        if not self._keys:
            return float(now_ms)
        return self._keys[0][0] - 1.0


def choose_professional(candidates: Iterable[Professional]) -> Professional | None:
    """For auto-assignment: the online, available professional with the fewest chats.

    Ties are broken by id, so the choice is deterministic (and testable).
    """
    best: Professional | None = None
    best_key: tuple[int, str] | None = None
    for pro in candidates:
        if not pro.online or not pro.available or pro.free_slots <= 0:
            continue
        key = (len(pro.conversation_ids), pro.id)
        if best_key is None or key < best_key:
            best, best_key = pro, key
    return best


# With no chat handled yet today, the estimate assumes this many minutes per chat.
DEFAULT_HANDLING_MINUTES = 12.0


def estimate_wait(
    position: int, handling_minutes: Sequence[float], slots: int
) -> tuple[int, int] | None:
    """The wait of the ``position``-th in line as a range of minutes, or None if unknown.

    ``handling_minutes`` are the durations of recently handled chats of the team, ``slots``
    how many chats its online professionals can hold at once. A chat ahead frees a slot after
    about a median handling time divided by the slots; the range is -40 %/+60 % around that,
    rounded to whole 5 minutes (a promise of "3 minutes" is precision nobody has). With no
    professional online there is no estimate.
    """
    if position < 1 or slots < 1:
        return None
    recent = sorted(handling_minutes)
    median = recent[len(recent) // 2] if recent else DEFAULT_HANDLING_MINUTES
    expected = position * median / slots
    low = max(0, int(expected * 0.6 // 5) * 5)
    high = max(5, int(-(-expected * 1.6 // 5)) * 5)
    return low, high
