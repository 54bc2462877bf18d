"""The grace period and the close of abandoned chats, decided at a given time (no sockets),
and the timers that run them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.core.model import Professional
from server.hub.grace import GracePeriod, IdleClose, Timers, Unattended

NOW = 1_767_225_600_000
MINUTE = 60_000


def away(pid: str, since_ms: int | None, chats: set[str], connections: int = 0) -> Professional:
    pro = Professional(pid, pid, pid.title(), "nurse", 4, ("kallio",))
    pro.offline_since_ms = since_ms
    pro.conversation_ids = chats
    pro.connections = connections
    return pro


# --- the grace period ------------------------------------------------------------------------


def test_a_professional_away_longer_than_the_grace_period_has_their_chats_due() -> None:
    grace = GracePeriod(60.0)
    gone = away("gone", NOW - 61_000, {"c1", "c2"})
    assert grace.expired([gone], NOW) == [gone]


def test_the_grace_period_ends_exactly_after_its_seconds() -> None:
    grace = GracePeriod(60.0)
    pro = away("p", NOW - 60_000, {"c1"})
    assert grace.expired([pro], NOW - 1) == []
    assert grace.expired([pro], NOW) == [pro]


def test_a_professional_back_online_or_with_no_chats_keeps_everything() -> None:
    grace = GracePeriod(60.0)
    back = away("back", NOW - 3_600_000, {"c1"}, connections=1)
    idle = away("idle", NOW - 3_600_000, set())
    never_left = away("never", None, {"c2"})
    within = away("within", NOW - 30_000, {"c3"})
    gone = away("gone", NOW - 90_000, {"c4"})
    assert grace.expired([back, idle, never_left, within, gone], NOW) == [gone]


def test_the_check_comes_after_the_grace_period_not_before() -> None:
    grace = GracePeriod(60.0)
    assert grace.check_after > grace.seconds
    pro = away("p", NOW, {"c1"})
    assert grace.expired([pro], NOW + int(grace.check_after * 1000)) == [pro]


# --- the close of abandoned chats ------------------------------------------------------------


def bot_chat(cid: str, here: bool = False) -> Unattended:
    return Unattended(cid, with_bot=True, queued=False, client_here=here)


def queued_chat(cid: str, here: bool = False) -> Unattended:
    return Unattended(cid, with_bot=False, queued=True, client_here=here)


def test_a_bot_chat_without_its_client_is_due_after_the_bot_limit() -> None:
    idle = IdleClose(bot_minutes=30, queued_minutes=240)
    assert idle.due([bot_chat("b")], NOW) == []  # first seen away: the count starts
    assert idle.due([bot_chat("b")], NOW + 30 * MINUTE - 1) == []
    assert idle.due([bot_chat("b")], NOW + 30 * MINUTE) == ["b"]


def test_a_queued_chat_keeps_its_place_longer_than_a_bot_chat() -> None:
    idle = IdleClose(bot_minutes=30, queued_minutes=240)
    chats = [queued_chat("q"), bot_chat("b")]
    assert idle.due(chats, NOW) == []
    assert idle.due(chats, NOW + 30 * MINUTE) == ["b"]
    assert idle.due([queued_chat("q")], NOW + 239 * MINUTE) == []
    assert idle.due([queued_chat("q")], NOW + 240 * MINUTE) == ["q"]


def test_a_chat_with_a_person_is_never_closed_for_its_absent_client() -> None:
    idle = IdleClose(bot_minutes=1, queued_minutes=1)
    with_nurse = Unattended("n", with_bot=False, queued=False, client_here=False)
    assert idle.due([with_nurse], NOW) == []
    assert idle.due([with_nurse], NOW + 10_000 * MINUTE) == []


def test_a_client_who_comes_back_starts_the_count_again() -> None:
    idle = IdleClose(bot_minutes=30, queued_minutes=240)
    assert idle.due([bot_chat("b")], NOW) == []
    assert idle.due([bot_chat("b", here=True)], NOW + 20 * MINUTE) == []
    assert idle.due([bot_chat("b")], NOW + 25 * MINUTE) == []  # away again: from here
    assert idle.due([bot_chat("b")], NOW + 50 * MINUTE) == []
    assert idle.due([bot_chat("b")], NOW + 55 * MINUTE) == ["b"]


def test_an_ended_chat_is_forgotten() -> None:
    idle = IdleClose(bot_minutes=30, queued_minutes=240)
    assert idle.due([bot_chat("b")], NOW) == []
    idle.forget("b")
    assert idle.due([bot_chat("b")], NOW + 30 * MINUTE) == []


def test_a_limit_of_zero_keeps_those_chats() -> None:
    idle = IdleClose(bot_minutes=0, queued_minutes=240)
    assert idle.due([bot_chat("b"), queued_chat("q")], NOW) == []
    assert idle.due([bot_chat("b"), queued_chat("q")], NOW + 10_000 * MINUTE) == ["q"]


@pytest.mark.parametrize(
    ("bot", "queued", "seconds"),
    [
        (30, 240, 60.0),  # a quarter of 30 minutes, capped at a minute
        (2, 240, 30.0),  # a quarter of the shorter limit
        (0, 2, 30.0),  # a limit that is off does not count
        (0.0001, 240, 0.2),  # never busier than five times a second
        (0, 0, None),  # both off: no sweep at all
    ],
)
def test_the_sweep_looks_often_enough_for_the_shorter_limit(
    bot: float, queued: float, seconds: float | None
) -> None:
    assert IdleClose(bot, queued).sweep_seconds == seconds


# --- timers ----------------------------------------------------------------------------------


async def test_a_job_runs_later_and_stop_cancels_the_ones_still_waiting() -> None:
    timers = Timers()
    ran: list[str] = []

    async def job(name: str) -> None:
        ran.append(name)

    timers.later(0.01, lambda: job("soon"))
    timers.later(30, lambda: job("much later"))
    await asyncio.sleep(0.1)
    await timers.stop()
    assert ran == ["soon"]


async def test_stop_cancels_running_tasks() -> None:
    timers = Timers()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    timers.spawn(forever())
    await started.wait()
    await timers.stop()
    assert cancelled.is_set()


async def test_a_repeated_job_goes_on_after_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    timers = Timers()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("the disk is full")

    with caplog.at_level(logging.ERROR, logger="kanava.hub"):
        timers.every(0.01, flaky, "the sweep failed")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if runs >= 3:
                break
        await timers.stop()
    assert runs >= 3
    assert [r.getMessage() for r in caplog.records] == ["the sweep failed"]


async def test_a_repeated_job_stopped_while_it_runs_is_not_scheduled_again() -> None:
    timers = Timers()
    started = asyncio.Event()
    runs = 0

    async def slow() -> None:
        nonlocal runs
        runs += 1
        started.set()
        await asyncio.sleep(10)

    timers.every(0.01, slow, "the sweep failed")
    await asyncio.wait_for(started.wait(), 2)
    await timers.stop()
    await asyncio.sleep(0.1)
    assert runs == 1
    assert not timers._handles and not timers._tasks
