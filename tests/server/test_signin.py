"""Staff sign-in under attack: guessing is slowed per (username, address), nobody is locked out.

Each test signs in over real HTTP against a real server on a loopback port. Behind the trusted
proxy (``trusted_proxies = 127.0.0.1``) each ``X-Forwarded-For`` value is another person; the
times measured are what the attacker and the nurse would wait for their answers.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from kanava_testing import PASSWORD, KanavaServer

from server.guard.ratelimit import FailureCounts, FairGate

ATTACKER = "203.0.113.66"
NURSE = "198.51.100.10"


class Person:
    """One browser: its own cookies, coming from ``address`` through the proxy (or not)."""

    def __init__(self, session: aiohttp.ClientSession, server: KanavaServer, address: str | None):
        self.session = session
        self.server = server
        self.headers = {"X-Forwarded-For": address} if address else {}
        self.csrf = ""

    async def start(self) -> None:
        url = self.server.base + "/api/session"
        async with self.session.get(url, headers=self.headers) as response:
            self.csrf = (await response.json())["csrf"]

    async def sign_in(self, username: str, password: str) -> tuple[int, dict[str, Any], float]:
        """The answer's status and body, and how long it took to come, in seconds."""
        started = time.monotonic()
        async with self.session.post(
            self.server.base + "/api/login",
            json={"username": username, "password": password, "token": True},
            headers={**self.headers, "X-CSRF-Token": self.csrf},
        ) as response:
            body = await response.json()
            return response.status, body, time.monotonic() - started


@asynccontextmanager
async def person(server: KanavaServer, address: str | None = None) -> AsyncIterator[Person]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        someone = Person(session, server, address)
        await someone.start()
        yield someone


# --- nobody is locked out -------------------------------------------------------------------


async def test_failures_with_spellings_of_a_username_do_not_refuse_its_right_password(
    server: KanavaServer,
) -> None:
    """Five failures with case, width and space variants of one username (the old lockout)
    then the right password: it signs in. The variants counted as one username: the right
    password waited the delay that its five failures earned (0, 0, 0, 0.5, 1 s, then 2 s)."""
    spellings = ("HOITAJA2", " hoitaja2", "Hoitaja2 ", "ｈｏｉｔａｊａ２", "hoitaja2")
    async with person(server) as someone:
        for spelling in spellings:
            status, body, _ = await someone.sign_in(spelling, "arvaus")
            assert status == 401 and body["error"]["code"] == "auth_failed"
        status, body, took = await someone.sign_in("hoitaja2", PASSWORD)
    assert status == 200, body
    assert body["professional"]["name"] == "Ville Virtanen"
    assert took >= 2.0


async def test_failures_with_random_names_from_one_address_refuse_nobody(
    server: KanavaServer,
) -> None:
    """Twenty failures with made-up usernames from the address everyone shares (a proxy that
    is not configured as trusted): the nurses behind it still sign in."""
    async with person(server) as stranger:
        for _ in range(20):
            status, _, _ = await stranger.sign_in(secrets.token_hex(6), "arvaus")
            assert status == 401
    async with person(server) as nurse:
        status, body, _ = await nurse.sign_in("hoitaja1", PASSWORD)
    assert status == 200, body


# --- behind the trusted proxy: the attacker waits, the nurse does not -----------------------


async def test_an_attacker_is_slowed_while_the_nurse_from_elsewhere_signs_in_at_once(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(
        trusted_proxies=("127.0.0.1",),
        login_free_failures=2,
        login_delay_seconds=1.0,
        login_max_delay_seconds=2.0,
    )
    async with person(server, ATTACKER) as attacker, person(server, NURSE) as nurse:
        times = []
        for guess in range(4):
            status, _, took = await attacker.sign_in("hoitaja1", f"arvaus-{guess}")
            assert status == 401
            times.append(took)
        # Two free failures, then the delay doubles: 1 s, 2 s.
        assert times[0] < 1.0 and times[1] < 1.0
        assert times[2] >= 1.0 and times[3] >= 2.0, times
        # The nurse, from her own address, with the same username: at once.
        status, body, took = await nurse.sign_in("hoitaja1", PASSWORD)
        assert status == 200, body
        assert took < 1.0, took
        # The attacker's pair still waits (2 s, the cap), and a correct password is not
        # refused even there; it clears that pair.
        status, body, took = await attacker.sign_in("hoitaja1", PASSWORD)
        assert status == 200 and took >= 2.0, (status, took)
        status, _, took = await attacker.sign_in("hoitaja1", "arvaus-5")
        assert status == 401 and took < 1.0


async def test_a_forwarding_header_from_an_untrusted_peer_is_ignored(server_factory: Any) -> None:
    """The proxy is elsewhere (192.0.2.1): our peer 127.0.0.1 cannot choose its address by
    sending X-Forwarded-For, so a new value does not start a new, unslowed pair."""
    server: KanavaServer = server_factory(
        trusted_proxies=("192.0.2.1",), login_free_failures=1, login_delay_seconds=1.0
    )
    async with person(server, ATTACKER) as attacker, person(server, NURSE) as disguised:
        status, _, _ = await attacker.sign_in("hoitaja1", "arvaus")
        assert status == 401
        status, body, took = await disguised.sign_in("hoitaja1", PASSWORD)
    assert status == 200, body
    assert took >= 1.0, "the header was believed: the pair started anew"


async def test_parallel_guesses_of_one_pair_wait_their_turn(server_factory: Any) -> None:
    """Sending guesses in parallel does not multiply the rate: they are checked one after
    another, each after its delay; past three at once the rest are answered 429 unchecked."""
    server: KanavaServer = server_factory(
        trusted_proxies=("127.0.0.1",),
        login_free_failures=1,
        login_delay_seconds=0.5,
        login_max_delay_seconds=0.5,
    )
    async with person(server, ATTACKER) as attacker:
        status, _, _ = await attacker.sign_in("hoitaja1", "arvaus")
        assert status == 401
        answers = await asyncio.gather(
            *(attacker.sign_in("hoitaja1", f"arvaus-{i}") for i in range(6))
        )
    checked = sorted(took for status, _, took in answers if status == 401)
    refused = [(body, took) for status, body, took in answers if status == 429]
    assert len(checked) == 3 and len(refused) == 3, answers
    assert checked[0] >= 0.5 and checked[1] >= 1.0 and checked[2] >= 1.5, checked
    assert all(body["error"]["code"] == "rate_limited" and took < 0.5 for body, took in refused)


async def test_a_flood_of_sign_ins_from_one_address_does_not_starve_another(
    server_factory: Any,
) -> None:
    """With one password check at a time, a nurse arriving behind a flood of sign-ins from
    another address is checked within the next two, not after the whole flood."""
    server: KanavaServer = server_factory(trusted_proxies=("127.0.0.1",), login_checks_at_once=1)
    finished: list[str] = []
    async with person(server, ATTACKER) as attacker, person(server, NURSE) as nurse:

        async def flood(i: int) -> None:
            await attacker.sign_in(f"nimi-{i}", "arvaus")
            finished.append("flood")

        async def nurse_signs_in() -> int:
            await asyncio.sleep(0.2)  # the flood is queued by now
            done_before = len(finished)
            status, body, _ = await nurse.sign_in("hoitaja1", PASSWORD)
            assert status == 200, body
            finished.append("nurse")
            return done_before

        *_, done_before = await asyncio.gather(*(flood(i) for i in range(40)), nurse_signs_in())
    assert finished.count("flood") == 40
    assert done_before < 30, "the flood was over before the nurse came: no test"
    assert finished.index("nurse") <= done_before + 3, (done_before, finished)


# --- the tables stay small ------------------------------------------------------------------


def test_failure_counts_forget_expired_keys_and_keep_to_their_cap() -> None:
    counts = FailureCounts(window=60, max_keys=3)
    counts.failed("a", now=0)
    counts.failed("a", now=10)
    counts.failed("b", now=20)
    assert counts.count("a", now=30) == 2
    # Forgotten a window after their last failure, oldest first.
    assert counts.count("a", now=70.5) == 0 and counts.count("b", now=70.5) == 1
    assert counts.count("b", now=80) == 0 and len(counts) == 0
    for key in ("c", "d", "e", "f"):
        counts.failed(key, now=100)
    assert len(counts) == 3 and counts.count("c", now=100) == 0  # the oldest made room


async def test_the_gate_serves_waiting_addresses_in_turn() -> None:
    gate = FairGate(limit=1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(key: str, name: str) -> None:
        async with gate.place(key):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("flood", "flood-0"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(hold("flood", f"flood-{i}")) for i in range(1, 4)]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(hold("nurse", "nurse")))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiting)
    assert order[:3] == ["flood-0", "flood-1", "nurse"]


@pytest.mark.parametrize("cancel_at", ["waiting", "given"])
async def test_a_cancelled_waiter_gives_its_place_on(cancel_at: str) -> None:
    gate = FairGate(limit=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.place("a"):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    if cancel_at == "given":
        release.set()
        await holder
    waiter.cancel()
    release.set()
    await asyncio.gather(holder, waiter, return_exceptions=True)
    async with asyncio.timeout(1):
        async with gate.place("b"):
            assert gate.active == 1
    assert gate.active == 0
