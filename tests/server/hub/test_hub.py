"""The hub's decisions, called directly with an injected clock (no sockets, no sleeping)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.messages import ConversationOpen, ConversationStateChanged, Message
from server.bus.base import Envelope
from server.bus.local import LocalBus
from server.core.clock import ManualClock
from server.core.model import AssignMode, Conversation, Professional, Team
from server.core.routing import Queue, choose_professional
from server.hub.hub import Actor, Hub
from server.settings import Settings
from server.storage.sqlite.store import Storage


class Inbox:
    """A subscriber that keeps what it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.subscriber_id = f"inbox-{id(self)}"

    def deliver(self, envelope: Envelope) -> None:
        self.messages.append(envelope.message)

    def states(self) -> list[tuple[str, str | None, int | None]]:
        return [
            (
                m.conversation.state,
                m.conversation.reason,
                m.conversation.queue_position,
            )
            for m in self.messages
            if isinstance(m, ConversationStateChanged)
        ]


def pro(pid: str, teams: tuple[str, ...] = ("kallio",), capacity: int = 4) -> Professional:
    return Professional(pid, pid, pid.title(), "nurse", capacity, teams)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    clock = ManualClock()
    storage = await Storage.open(tmp_path / "hub.sqlite3", clock)
    await storage.save_team(Team("kallio", "Kallio", AssignMode.PICK))
    await storage.save_team(Team("auto", "Auto", AssignMode.AUTO))
    for p in (pro("p_a"), pro("p_b"), pro("p_x", ("auto",), 2), pro("p_y", ("auto",), 2)):
        await storage.save_professional(p)
    hub = Hub(storage, LocalBus(), clock, Settings(grace_seconds=60.0))
    await hub.start()
    yield hub
    await hub.stop()
    await storage.close()


async def open_conv(hub: Hub, name: str, team: str = "kallio") -> tuple[Conversation, Inbox]:
    inbox = Inbox()
    conv = await hub.open_conversation(ConversationOpen(client_name=name, team=team), inbox)
    return conv, inbox


async def test_grace_period_requeues_at_the_front_in_original_order(hub: Hub) -> None:
    clock = hub.clock
    assert isinstance(clock, ManualClock)
    nurse = hub.professional("p_a")
    desk = Inbox()
    await hub.connect_professional(nurse, desk)
    old1, inbox1 = await open_conv(hub, "Vanha 1")
    clock.advance(1)
    old2, inbox2 = await open_conv(hub, "Vanha 2")
    await hub.take(Actor.for_professional(nurse), old1.id)
    await hub.take(Actor.for_professional(nurse), old2.id)
    clock.advance(1)
    new, new_inbox = await open_conv(hub, "Uusi")
    hub.disconnect_professional(nurse, desk)
    clock.advance(59)
    assert await hub.expire_offline() == []  # still within the grace period
    clock.advance(1)
    assert sorted(await hub.expire_offline()) == sorted([old1.id, old2.id])
    queue = hub.queue("kallio")
    assert [c.client_name for c in queue] == ["Vanha 1", "Vanha 2", "Uusi"]
    assert inbox1.states()[-1] == ("queued", "professional_disconnected", 1)
    assert inbox2.states()[-1] == ("queued", "professional_disconnected", 2)
    assert new_inbox.states()[-1] == ("queued", None, 3)
    assert nurse.conversation_ids == set()


async def test_reconnecting_within_grace_keeps_everything(hub: Hub) -> None:
    clock = hub.clock
    assert isinstance(clock, ManualClock)
    nurse = hub.professional("p_a")
    desk = Inbox()
    await hub.connect_professional(nurse, desk)
    conv, _ = await open_conv(hub, "Matti")
    await hub.take(Actor.for_professional(nurse), conv.id)
    hub.disconnect_professional(nurse, desk)
    clock.advance(30)
    await hub.connect_professional(nurse, Inbox())
    clock.advance(60)
    assert await hub.expire_offline() == []
    assert nurse.conversation_ids == {conv.id}


async def test_auto_assignment_balances_and_respects_capacity(hub: Hub) -> None:
    x, y = hub.professional("p_x"), hub.professional("p_y")
    await hub.connect_professional(x, Inbox())
    await hub.connect_professional(y, Inbox())
    convs = [(await open_conv(hub, f"A{i}", "auto"))[0] for i in range(5)]
    assert [len(x.conversation_ids), len(y.conversation_ids)] == [2, 2]
    assert convs[4].state.value == "queued"  # both at capacity 2
    assert [c.id for c in hub.queue("auto")] == [convs[4].id]
    await hub.close(Actor.for_professional(x), next(iter(sorted(x.conversation_ids))), "valmis")
    assert convs[4].professional_id == "p_x"  # the freed slot takes the waiting chat


async def test_unavailable_professionals_get_nothing_automatically(hub: Hub) -> None:
    x = hub.professional("p_x")
    await hub.connect_professional(x, Inbox())
    await hub.set_availability(x, False)
    conv, _ = await open_conv(hub, "Odottaja", "auto")
    assert conv.state.value == "queued"
    await hub.set_availability(x, True)
    assert conv.professional_id == "p_x"


def test_choose_professional_prefers_the_least_busy_online_available() -> None:
    a, b, c, d = pro("a"), pro("b"), pro("c"), pro("d", capacity=0)
    for p in (a, b, c, d):
        p.connections = 1
    a.conversation_ids = {"1", "2"}
    b.conversation_ids = {"3"}
    c.conversation_ids = {"4"}
    assert choose_professional([a, b, c, d]) is b  # fewest, tie broken by id
    b.available = False
    assert choose_professional([a, b, c, d]) is c
    c.connections = 0
    assert choose_professional([a, b, c, d]) is a
    a.capacity = 2
    assert choose_professional([a, b, c, d]) is None


def test_queue_orders_by_rank_and_front_rank_goes_first() -> None:
    queue = Queue()
    convs = []
    for i, rank in enumerate((10.0, 20.0, 30.0)):
        conv = Conversation(f"c{i}", "h", "t", state=None, created_at=0, updated_at=0)  # type: ignore[arg-type]
        conv.queue_rank = rank
        queue.add(conv)
        convs.append(conv)
    assert [queue.position(c) for c in convs] == [1, 2, 3]
    front = Conversation("front", "h", "t", state=None, created_at=0, updated_at=0)  # type: ignore[arg-type]
    front.queue_rank = queue.front_rank(now_ms=99)
    queue.add(front)
    assert queue.head() is front
    queue.remove(convs[1])
    assert [c.id for c in queue] == ["front", "c0", "c2"]
    assert queue.position(convs[1]) is None
