"""Staff sign-in under attack: guessing is slowed per (username, address), nobody is locked out.

Each test signs in over real HTTP against a real server on a loopback port. Behind the trusted
proxy (``trusted_proxies = 127.0.0.1``) each ``X-Forwarded-For`` value is another person; the
times measured are what the attacker and the nurse would wait for their answers. A browser
that signed in before holds a device cookie, with which the attempts of others at its address
neither slow nor refuse it.
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
from kanava_testing import PASSWORD, KanavaServer, echo_cookies

from server.console.device import MAX_ENTRIES, DeviceCookies
from server.core.clock import ManualClock
from server.guard.ratelimit import FailureCounts, FairGate, GateFull
from server.settings import Settings

ATTACKER = "203.0.113.66"
NURSE = "198.51.100.10"
STATION = "192.0.2.40"  # a health station's NAT: its nurses, and whoever else is there


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

    async def sign_in(
        self, username: str, password: str, *, token: bool = True
    ) -> tuple[int, dict[str, Any], float]:
        """The answer's status and body, and how long it took to come, in seconds. As a
        script (the token in the body, no cookies) unless ``token`` is false: as the console,
        which gets the session and the device cookie."""
        started = time.monotonic()
        async with self.session.post(
            self.server.base + "/api/login",
            json={"username": username, "password": password, "token": token},
            headers={**self.headers, "X-CSRF-Token": self.csrf},
        ) as response:
            body = await response.json()
            if response.status == 429:
                assert response.headers["Retry-After"].isdigit(), response.headers
            return response.status, body, time.monotonic() - started

    async def sign_in_and_out(self, username: str) -> str:
        """The console's sign-in with the right password, then sign-out (as at the end of a
        shift): the browser keeps its device cookie, which is returned."""
        status, body, _ = await self.sign_in(username, PASSWORD, token=False)
        assert status == 200, body
        async with self.session.post(
            self.server.base + "/api/logout", headers={**self.headers, "X-CSRF-Token": body["csrf"]}
        ) as response:
            assert response.status == 200
        await self.start()  # a new pre-sign-in token, for the next sign-in
        device = self.device_cookie()
        assert device, "no device cookie after signing in"
        return device

    def device_cookie(self) -> str | None:
        return next((c.value for c in self.session.cookie_jar if c.key == "kanava_device"), None)


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
    another, each after its delay; past three at once the rest are answered 429 unchecked.
    The guesser is a colleague whose browser has a device cookie of its own account: that
    cookie exempts nothing for another username."""
    server: KanavaServer = server_factory(
        trusted_proxies=("127.0.0.1",),
        login_free_failures=1,
        login_delay_seconds=0.5,
        login_max_delay_seconds=0.5,
    )
    async with person(server, ATTACKER) as attacker:
        await attacker.sign_in_and_out("hoitaja2")
        status, _, _ = await attacker.sign_in("hoitaja1", "arvaus", token=False)
        assert status == 401
        answers = await asyncio.gather(
            *(attacker.sign_in("hoitaja1", f"arvaus-{i}", token=False) for i in range(6))
        )
    checked = sorted(took for status, _, took in answers if status == 401)
    refused = [(body, took) for status, body, took in answers if status == 429]
    assert len(checked) == 3 and len(refused) == 3, answers
    assert checked[0] >= 0.5 and checked[1] >= 1.0 and checked[2] >= 1.5, checked
    for body, took in refused:
        assert body["error"]["code"] == "rate_limited" and took < 0.5, (body, took)
        assert body["error"]["limit"] == "username", body


# --- device cookies: the nurse's own browser is not kept out --------------------------------


def slowed_server(server_factory: Any, free: int, **settings: Any) -> KanavaServer:
    """Behind the trusted proxy 127.0.0.1; past ``free`` failures a pair's attempts wait 1 s."""
    server: KanavaServer = server_factory(
        trusted_proxies=("127.0.0.1",),
        login_free_failures=free,
        login_delay_seconds=1.0,
        login_max_delay_seconds=1.0,
        **settings,
    )
    return server


async def guesses_in_flight(attacker: Person, username: str, free: int = 1) -> asyncio.Task[Any]:
    """The ``free`` failures, then three slowed guesses of the pair sent at once; returns when
    they are waiting (a fourth one without a device cookie is now answered 429 at once)."""
    for _ in range(free):
        status, _, _ = await attacker.sign_in(username, "arvaus")
        assert status == 401
    guesses = asyncio.gather(*(attacker.sign_in(username, f"arvaus-{i}") for i in range(3)))
    task = asyncio.ensure_future(guesses)
    await asyncio.sleep(0.3)
    return task


async def attempt_with_cookie(
    server: KanavaServer, address: str, device: str | None, username: str, password: str
) -> tuple[int, dict[str, Any], float]:
    """A sign-in from a browser at ``address`` that holds exactly this device cookie."""
    forwarded = {"X-Forwarded-For": address}
    async with aiohttp.ClientSession() as session:
        async with session.get(server.base + "/api/session", headers=forwarded) as response:
            csrf = (await response.json())["csrf"]
            cookies = echo_cookies(response)
        if device is not None:
            cookies += f"; kanava_device={device}"
        started = time.monotonic()
        async with session.post(
            server.base + "/api/login",
            json={"username": username, "password": password, "token": True},
            headers={**forwarded, "X-CSRF-Token": csrf, "Cookie": cookies},
        ) as response:
            return response.status, await response.json(), time.monotonic() - started


async def test_with_three_slowed_guesses_waiting_the_nurses_browser_signs_in_at_once(
    server_factory: Any,
) -> None:
    """Someone at the station's address sends three guesses of the nurse's username at a time,
    which kept her out before (the fourth attempt of the pair was refused). Her browser, which
    she signed in with yesterday, signs in at once; the guesses are still checked one after
    another after their delays, and her sign-in did not clear the pair's count."""
    server = slowed_server(server_factory, free=3)
    async with person(server, STATION) as nurse, person(server, STATION) as attacker:
        await nurse.sign_in_and_out("hoitaja1")
        guesses = await guesses_in_flight(attacker, "hoitaja1", free=3)
        # The same password from a browser without her device cookie: refused, unchecked.
        status, body, took = await attempt_with_cookie(server, STATION, None, "hoitaja1", PASSWORD)
        assert status == 429 and body["error"]["limit"] == "username" and took < 0.5, body
        # Her own browser: at once, and it gets a renewed device cookie.
        before = nurse.device_cookie()
        status, body, took = await nurse.sign_in("hoitaja1", PASSWORD, token=False)
        assert status == 200, body
        assert took < 1.0, took
        assert nurse.device_cookie() not in (None, before)
        # Had her sign-in cleared the pair, the second and third guess would not wait.
        answers = await guesses
        assert [status for status, _, _ in answers] == [401, 401, 401], answers
        times = sorted(took for _, _, took in answers)
        assert times[0] >= 1.0 and times[1] >= 2.0 and times[2] >= 3.0, times
        status, _, took = await attacker.sign_in("hoitaja1", "arvaus-4")
        assert status == 401 and took >= 1.0, "the nurse's sign-in reset the guesser's count"


async def test_a_device_cookie_of_another_username_a_forged_or_an_expired_one_exempts_nothing(
    server_factory: Any,
) -> None:
    """While three guesses of hoitaja1 wait, only a device cookie made for hoitaja1, unchanged
    and unexpired, gets past them; a colleague's cookie, a cookie with its mac or its expiry
    changed, and (a day later) the expired cookie itself are answered 429 like no cookie."""
    clock = ManualClock()
    server = slowed_server(server_factory, free=1, clock=clock, login_device_days=1.0)
    async with person(server, STATION) as nurse, person(server, STATION) as colleague:
        own = await nurse.sign_in_and_out("hoitaja1")
        others = await colleague.sign_in_and_out("hoitaja2")
    device, expires, mac = own.split(".")
    forged_mac = f"{device}.{expires}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    later = f"{device}.{int(expires) + 86_400}.{mac}"

    async def try_with(cookie: str | None) -> int:
        status, body, took = await attempt_with_cookie(
            server, STATION, cookie, "hoitaja1", PASSWORD
        )
        assert took < 1.0, (cookie, took)  # answered at once either way
        return status

    async with person(server, STATION) as attacker:
        guesses = await guesses_in_flight(attacker, "hoitaja1")
        assert [await try_with(c) for c in (others, forged_mac, later)] == [429, 429, 429]
        assert await try_with(own) == 200  # the real one, while the same guesses wait
        await guesses
        clock.advance(86_400 + 1)  # the cookie has expired (and the pair's count with it)
        guesses = await guesses_in_flight(attacker, "hoitaja1")
        assert await try_with(own) == 429
        await guesses


async def test_a_device_cookie_that_failed_several_times_loses_its_exemption(
    server_factory: Any,
) -> None:
    """The pair is already slowed by someone else's failures. The nurse's browser mistypes
    twice: answered at once (its own failures are counted per device cookie). Past
    ``login_free_failures`` (2) of them the cookie exempts nothing: the next attempt waits the
    pair's delay like anyone at that address, and a correct password still signs in."""
    server = slowed_server(server_factory, free=2)
    async with person(server, STATION) as nurse, person(server, STATION) as attacker:
        await nurse.sign_in_and_out("hoitaja1")
        for guess in range(3):
            status, _, _ = await attacker.sign_in("hoitaja1", f"arvaus-{guess}")
            assert status == 401
        for typo in ("kanava-dmeo", "kanava-deom"):
            status, _, took = await nurse.sign_in("hoitaja1", typo, token=False)
            assert status == 401 and took < 1.0, (status, took)
        status, body, took = await nurse.sign_in("hoitaja1", PASSWORD, token=False)
        assert status == 200, body
        assert took >= 1.0, "the cookie that failed twice was still exempt"


# --- how many password checks one address has waiting ----------------------------------------


async def test_a_flood_from_one_address_is_capped_and_the_nurses_still_sign_in(
    server_factory: Any,
) -> None:
    """Sixty sign-ins with made-up usernames at once from the station's address, one password
    check at a time: past ``login_checks_waiting_per_address`` (20) waiting, the flood is
    refused at once (429 ``rate_limited``, ``Retry-After``). A nurse at that address whose
    browser has her device cookie, and a nurse at another address, sign in meanwhile."""
    cap = Settings().login_checks_waiting_per_address
    assert cap == 20
    server: KanavaServer = server_factory(
        trusted_proxies=("127.0.0.1",),
        login_checks_at_once=1,
        login_checks_waiting_per_address=cap,
    )
    async with (
        person(server, STATION) as flood,
        person(server, STATION) as nurse,
        person(server, NURSE) as elsewhere,
    ):
        await nurse.sign_in_and_out("hoitaja1")

        async def nurses() -> list[tuple[int, dict[str, Any], float]]:
            await asyncio.sleep(0.2)  # the flood is queued by now
            return list(
                await asyncio.gather(
                    nurse.sign_in("hoitaja1", PASSWORD, token=False),
                    elsewhere.sign_in("hoitaja2", PASSWORD),
                )
            )

        flooded, signed_in = await asyncio.gather(
            asyncio.gather(*(flood.sign_in(f"nimi-{i}", "arvaus") for i in range(60))), nurses()
        )
    refused = [(body, took) for status, body, took in flooded if status == 429]
    checked = [took for status, _, took in flooded if status == 401]
    assert len(refused) + len(checked) == 60
    assert len(refused) >= 20 and len(checked) > cap, (len(refused), len(checked))
    for body, took in refused:
        assert body["error"]["code"] == "rate_limited" and body["error"]["limit"] == "address"
        assert took < 1.0
    for status, body, took in signed_in:
        assert status == 200, body
        assert took < 1.0, took


async def test_a_flood_of_sign_ins_from_one_address_does_not_starve_another(
    server_factory: Any,
) -> None:
    """With one password check at a time, a nurse arriving behind a flood of sign-ins from
    another address is checked within the next two, not after the whole flood. (No cap on the
    flood's waiting checks here: this is about the order in which they are served.)"""
    server: KanavaServer = server_factory(
        trusted_proxies=("127.0.0.1",),
        login_checks_at_once=1,
        login_checks_waiting_per_address=0,
    )
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


async def test_the_gate_refuses_an_address_with_too_many_waiting() -> None:
    """Two may wait per key: the third of that key is refused at once, another key still
    waits its turn, and a waiter that gave up no longer counts."""
    gate = FairGate(limit=1, max_waiting_per_key=2)
    release = asyncio.Event()

    async def hold(key: str) -> None:
        async with gate.place(key):
            await release.wait()

    tasks = [asyncio.create_task(hold("flood")) for _ in range(3)]  # one holds, two wait
    await asyncio.sleep(0)
    assert gate.active == 1 and gate.waiting("flood") == 2
    with pytest.raises(GateFull):
        async with gate.place("flood"):
            pass
    tasks.append(asyncio.create_task(hold("nurse")))
    await asyncio.sleep(0)
    assert gate.waiting("nurse") == 1
    tasks[2].cancel()
    await asyncio.sleep(0)
    assert gate.waiting("flood") == 1
    tasks.append(asyncio.create_task(hold("flood")))
    await asyncio.sleep(0)
    assert gate.waiting("flood") == 2
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert gate.active == 0 and gate.waiting("flood") == gate.waiting("nurse") == 0


def test_a_device_cookie_holds_an_entry_per_username_and_checks_each() -> None:
    """Entries are made for one username each; a shift sharing a computer keeps one each (at
    most MAX_ENTRIES, the newest); another key, another username, an expired entry or a
    damaged value give no device."""
    devices = DeviceCookies(b"k" * 32, lifetime=3600)
    value = devices.issue("hoitaja1", now=1000)
    value = devices.issue("hoitaja2", now=1001, old=value)
    first, second = devices.device(value, "hoitaja1", 1002), devices.device(value, "hoitaja2", 1002)
    assert first and second and first != second
    assert devices.device(value, "laakari1", 1002) is None
    assert DeviceCookies(b"x" * 32, lifetime=3600).device(value, "hoitaja1", 1002) is None
    assert devices.device(value, "hoitaja1", 1000 + 3600) is None  # expired
    # Signing in again renews that username's entry and keeps the others'.
    renewed = devices.issue("hoitaja1", now=2000, old=value)
    assert renewed.count("~") == 1
    assert devices.device(renewed, "hoitaja1", 4700) not in (None, first)
    assert devices.device(renewed, "hoitaja2", 2000) == second
    # A shift of usernames: the newest MAX_ENTRIES are kept.
    for i in range(MAX_ENTRIES + 2):
        renewed = devices.issue(f"hoitaja{i + 10}", now=3000 + i, old=renewed)
    assert renewed.count("~") == MAX_ENTRIES - 1
    assert devices.device(renewed, f"hoitaja{MAX_ENTRIES + 11}", 3100)
    assert devices.device(renewed, "hoitaja2", 3100) is None
    for damaged in (None, "", "~", "a.b.c", "a.1.", ".1.a", "a.１２.b", "x" * 5000):
        assert devices.device(damaged, "hoitaja1", 1002) is None
