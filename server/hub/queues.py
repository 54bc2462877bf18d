"""What the waiting hear about their queue: positions to clients, snapshots to teams.

Every change to a queue moves everyone behind it, so sending positions on each change would
cost O(queue length) messages per change and O(n²) in a busy morning. Instead the hub marks a
team's queue as changed (:meth:`QueuePublisher.changed`) and updates go out at most every
``QUEUE_UPDATE_SECONDS``, coalescing the changes between. A client hears of its position and
its wait estimate only when one of them differs from what it was last told: the estimate
changes with the team's professionals coming and going (rounded to whole 5 minutes, so not
with every chat that ends), and a client whose wait could not be estimated hears one as soon
as it can be. Joining the queue behind someone tells that someone nothing.

The queues themselves stay the hub's: the publisher asks for a team's line, for the wait
estimate of a position, and whether a chat is still being opened, through the callables it is
given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from protocol.messages import ConversationStateChanged, QueueEntry, QueueSnapshot
from server.bus.base import Bus, Envelope
from server.core.clock import Clock
from server.core.model import Conversation
from server.core.routing import Queue
from server.hub.topics import conversation_topic, team_topic

__all__ = [
    "QUEUE_SNAPSHOT_ENTRIES",
    "QUEUE_UPDATE_SECONDS",
    "QueuePublisher",
    "WaitEstimate",
    "queue_snapshot",
]

QUEUE_SNAPSHOT_ENTRIES = 50
QUEUE_UPDATE_SECONDS = 0.25  # queue positions and snapshots go out at most this often

#: The wait of the n-th in a line as a range of minutes, or None if unknown.
WaitEstimate = Callable[[int], tuple[int, int] | None]


def queue_snapshot(team_id: str, queue: Queue) -> QueueSnapshot:
    """The team's view of its queue: its length and the first QUEUE_SNAPSHOT_ENTRIES."""
    entries = []
    for position, conv in enumerate(queue, 1):
        if position > QUEUE_SNAPSHOT_ENTRIES:
            break
        entries.append(
            QueueEntry(
                conversation_id=conv.id,
                position=position,
                waiting_since=conv.queued_at or conv.created_at,
                client_name=conv.client_name,
                topic=conv.topic,
                language=conv.language,
                triage=conv.triage,
            )
        )
    return QueueSnapshot(team=team_id, entries=tuple(entries), length=len(queue))


class QueuePublisher:
    """Sends the teams' queues and the waiting clients' positions, at most every
    QUEUE_UPDATE_SECONDS.

    ``line(team_id)`` is the team's queue (None: no such team), ``waits(team_id)`` the wait
    estimate of each position in it, and ``opening(conversation_id)`` whether a chat's
    ``conversation.opened`` is still to be sent (it hears of its position then, not before).
    """

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        line: Callable[[str], Queue | None],
        waits: Callable[[str], WaitEstimate],
        opening: Callable[[str], bool],
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._line = line
        self._waits = waits
        self._opening = opening
        # The position and the wait each waiting client was last told.
        self._told: dict[str, tuple[int, tuple[int, int] | None]] = {}
        self._dirty: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")

    def told(self, conv: Conversation, position: int) -> None:
        """The client of ``conv`` was told (by the hub) it is ``position``-th in its team's
        line, with that place's wait."""
        self._told[conv.id] = (position, self._waits(conv.team_id)(position))

    def forget(self, conversation_id: str) -> None:
        """The chat waits no more."""
        self._told.pop(conversation_id, None)

    def changed(self, teams: set[str]) -> None:
        """These teams' queues changed: send them now, or soon."""
        self._dirty |= teams
        if not self._dirty:
            return
        wait = self._last_flush + QUEUE_UPDATE_SECONDS - self._clock.monotonic()
        if wait <= 0:
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            self.flush()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        """Send every changed queue now."""
        self._flush = None
        self._last_flush = self._clock.monotonic()
        teams, self._dirty = sorted(self._dirty), set()
        for team_id in teams:
            queue = self._line(team_id)
            if queue is not None:
                self._publish(team_id, queue)

    def stop(self) -> None:
        if self._flush is not None:
            self._flush.cancel()

    def _publish(self, team_id: str, queue: Queue) -> None:
        """Tell waiting clients whose position or wait changed, and the team its new queue."""
        length = len(queue)
        wait = self._waits(team_id)
        for position, conv in enumerate(queue, 1):
            if self._opening(conv.id):
                continue  # its `conversation.opened` comes first; next update then
            now = (position, wait(position))
            if self._told.get(conv.id) != now:
                self._told[conv.id] = now
                view = conv.view(None, position, length, now[1])
                self._bus.publish(
                    (conversation_topic(conv.id),), Envelope(ConversationStateChanged(view))
                )
        self._bus.publish((team_topic(team_id),), Envelope(queue_snapshot(team_id, queue)))
