"""The queues' order and what the waiting hear of it: ranks, snapshots, coalesced positions.

The publisher is driven directly, with a manual clock and a bus that keeps what is published
(no sockets)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from protocol import ConversationState
from protocol.messages import ConversationStateChanged, Message, QueueSnapshot
from server.bus.base import Envelope
from server.bus.local import LocalBus
from server.core.clock import ManualClock
from server.core.model import Conversation
from server.core.routing import Queue, queue_rank
from server.hub.queues import (
    QUEUE_SNAPSHOT_ENTRIES,
    QUEUE_UPDATE_SECONDS,
    QueuePublisher,
    queue_snapshot,
)
from server.hub.topics import conversation_topic, team_topic

NOW = 1_767_225_600_000


class KeepingBus(LocalBus):
    """A bus that keeps every message published, by topic."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: defaultdict[str, list[Message]] = defaultdict(list)

    def publish(
        self, topics: tuple[str, ...], envelope: Envelope, exclude: str | None = None
    ) -> int:
        for topic in topics:
            self.sent[topic].append(envelope.message)
        return super().publish(topics, envelope, exclude)


def waiting(cid: str, queued_ms: int, triage: str | None = None) -> Conversation:
    return Conversation(
        id=cid,
        token_hash="h-" + cid,
        team_id="kallio",
        state=ConversationState.QUEUED,
        created_at=queued_ms,
        updated_at=queued_ms,
        client_name=cid.title(),
        queue_rank=queue_rank(queued_ms, triage),
        queued_at=queued_ms,
        triage=triage,
    )


# --- order -----------------------------------------------------------------------------------


def test_an_urgent_client_is_ranked_before_a_routine_one_who_came_earlier() -> None:
    queue = Queue()
    early = waiting("early", NOW - 3_600_000)
    urgent = waiting("urgent", NOW, "urgent")
    queue.add(early)
    queue.add(urgent)
    assert [c.id for c in queue] == ["urgent", "early"]


def test_urgent_clients_keep_their_own_order_among_themselves() -> None:
    queue = Queue()
    for conv in (
        waiting("routine", NOW - 10_000),
        waiting("second", NOW, "urgent"),
        waiting("first", NOW - 5_000, "urgent"),
    ):
        queue.add(conv)
    assert [c.id for c in queue] == ["first", "second", "routine"]


def test_triage_other_than_urgent_waits_in_arrival_order() -> None:
    assert queue_rank(NOW, "routine") == queue_rank(NOW, None) == float(NOW)
    assert queue_rank(NOW - 1, None) < queue_rank(NOW, "routine")


# --- the team's snapshot ---------------------------------------------------------------------


def test_the_snapshot_lists_the_first_in_line_and_counts_everyone() -> None:
    queue = Queue()
    for i in range(QUEUE_SNAPSHOT_ENTRIES + 5):
        queue.add(waiting(f"c{i:03}", NOW + i))
    snapshot = queue_snapshot("kallio", queue)
    assert snapshot.team == "kallio"
    assert snapshot.length == QUEUE_SNAPSHOT_ENTRIES + 5
    assert len(snapshot.entries) == QUEUE_SNAPSHOT_ENTRIES
    assert [e.position for e in snapshot.entries[:3]] == [1, 2, 3]
    assert snapshot.entries[0].conversation_id == "c000"
    assert snapshot.entries[0].waiting_since == NOW


def test_the_snapshot_shows_a_requeued_chat_waiting_since_it_first_arrived() -> None:
    queue = Queue()
    conv = waiting("c", NOW)
    conv.queued_at = None  # restored from an old database
    queue.add(conv)
    assert queue_snapshot("kallio", queue).entries[0].waiting_since == conv.created_at


# --- positions and snapshots sent ------------------------------------------------------------


class Line:
    """A team's queue and a publisher for it, on a bus that keeps what is sent."""

    def __init__(self, *convs: Conversation) -> None:
        self.clock = ManualClock()
        self.bus = KeepingBus()
        self.queue = Queue()
        self.opening: set[str] = set()
        self.staffed = True  # whether the team has professionals: else no wait estimate
        self.publisher = QueuePublisher(
            self.bus,
            self.clock,
            lambda team_id: self.queue if team_id == "kallio" else None,
            lambda team_id: self.estimate,
            lambda conversation_id: conversation_id in self.opening,
        )
        for conv in convs:
            self.add(conv)

    def estimate(self, position: int) -> tuple[int, int] | None:
        return (position * 5, position * 10) if self.staffed else None

    def waits(self, conversation_id: str) -> list[tuple[int | None, int | None]]:
        return [
            (m.conversation.wait_min_minutes, m.conversation.wait_max_minutes)
            for m in self.client(conversation_id)
        ]

    def add(self, conv: Conversation) -> None:
        self.queue.add(conv)
        self.publisher.told(conv, self.queue.position(conv) or 1)

    def leave(self, conv: Conversation) -> None:
        self.queue.remove(conv)
        self.publisher.forget(conv.id)

    def client(self, conversation_id: str) -> list[ConversationStateChanged]:
        """What the client of ``conversation_id`` was sent."""
        sent = self.bus.sent[conversation_topic(conversation_id)]
        assert all(isinstance(m, ConversationStateChanged) for m in sent)
        return [m for m in sent if isinstance(m, ConversationStateChanged)]

    def positions(self, conversation_id: str) -> list[int | None]:
        return [m.conversation.queue_position for m in self.client(conversation_id)]

    def snapshots(self, team_id: str = "kallio") -> list[list[str]]:
        """The team's snapshots, each as the ids in line."""
        return [
            [e.conversation_id for e in m.entries]
            for m in self.bus.sent[team_topic(team_id)]
            if isinstance(m, QueueSnapshot)
        ]


async def test_clients_behind_one_who_leaves_hear_their_new_place_with_a_wait() -> None:
    a, b, c = waiting("a", NOW), waiting("b", NOW + 1), waiting("c", NOW + 2)
    line = Line(a, b, c)
    line.leave(a)
    line.publisher.changed({"kallio"})
    assert line.positions("b") == [1]
    assert line.positions("c") == [2]
    message = line.client("c")[-1]
    assert (message.conversation.wait_min_minutes, message.conversation.wait_max_minutes) == (
        10,
        20,
    )
    assert message.conversation.queue_length == 2
    assert line.snapshots() == [["b", "c"]]


async def test_a_client_whose_place_did_not_change_hears_nothing() -> None:
    a, b = waiting("a", NOW), waiting("b", NOW + 1)
    line = Line(a, b)
    line.add(waiting("z", NOW + 2))  # joins at the back: nobody ahead of it moved
    line.publisher.changed({"kallio"})
    assert line.client("a") == []
    assert line.client("b") == []
    assert line.snapshots() == [["a", "b", "z"]]


async def test_a_client_whose_wait_can_now_be_estimated_hears_it_in_place() -> None:
    """Nobody of the team online: no estimate. A nurse signs in: each waiting client hears
    its wait, though nobody moved; and hears again when the estimate is gone."""
    line = Line()
    line.staffed = False
    a, b = waiting("a", NOW), waiting("b", NOW + 1)
    line.add(a)
    line.add(b)
    line.publisher.changed({"kallio"})
    assert line.client("a") == [] and line.client("b") == []
    line.staffed = True
    line.clock.advance(QUEUE_UPDATE_SECONDS)
    line.publisher.changed({"kallio"})
    assert line.positions("a") == [1] and line.waits("a") == [(5, 10)]
    assert line.positions("b") == [2] and line.waits("b") == [(10, 20)]
    line.clock.advance(QUEUE_UPDATE_SECONDS)
    line.publisher.changed({"kallio"})  # nothing new: nothing sent
    assert len(line.client("a")) == 1
    line.staffed = False
    line.clock.advance(QUEUE_UPDATE_SECONDS)
    line.publisher.changed({"kallio"})
    assert line.waits("a") == [(5, 10), (None, None)]
    assert line.positions("a") == [1, 1]


async def test_a_chat_still_being_opened_hears_its_place_only_after_that() -> None:
    a = waiting("a", NOW)
    line = Line(a)
    urgent = waiting("u", NOW + 1, "urgent")
    line.add(urgent)
    line.opening.add(urgent.id)
    line.publisher.told(urgent, 2)  # as if it had been told another place
    line.publisher.changed({"kallio"})
    assert line.client("u") == []
    assert line.positions("a") == [2]
    line.opening.discard(urgent.id)
    line.clock.advance(QUEUE_UPDATE_SECONDS)
    line.publisher.changed({"kallio"})
    assert line.positions("u") == [1]


async def test_changes_in_quick_succession_go_out_once_after_the_interval() -> None:
    a, b, c = waiting("a", NOW), waiting("b", NOW + 1), waiting("c", NOW + 2)
    line = Line(a, b, c)
    line.publisher.changed({"kallio"})
    assert line.snapshots() == [["a", "b", "c"]]
    line.leave(a)
    line.publisher.changed({"kallio"})
    line.leave(b)
    line.publisher.changed({"kallio"})
    assert line.snapshots() == [["a", "b", "c"]]  # not yet
    assert line.client("c") == []
    await asyncio.sleep(QUEUE_UPDATE_SECONDS + 0.1)
    assert line.snapshots() == [["a", "b", "c"], ["c"]]
    assert line.positions("c") == [1]  # straight from 3 to 1, once


async def test_a_change_after_the_interval_goes_out_at_once() -> None:
    a, b = waiting("a", NOW), waiting("b", NOW + 1)
    line = Line(a, b)
    line.publisher.changed({"kallio"})
    line.clock.advance(QUEUE_UPDATE_SECONDS)
    line.leave(a)
    line.publisher.changed({"kallio"})
    assert line.snapshots() == [["a", "b"], ["b"]]


async def test_stop_cancels_an_update_still_waiting() -> None:
    a, b = waiting("a", NOW), waiting("b", NOW + 1)
    line = Line(a, b)
    line.publisher.changed({"kallio"})
    line.leave(a)
    line.publisher.changed({"kallio"})
    line.publisher.stop()
    await asyncio.sleep(QUEUE_UPDATE_SECONDS + 0.1)
    assert line.snapshots() == [["a", "b"]]
    assert line.client("b") == []


async def test_a_team_that_does_not_exist_gets_nothing() -> None:
    line = Line(waiting("a", NOW))
    line.publisher.changed({"nowhere"})
    assert line.bus.sent == {}
