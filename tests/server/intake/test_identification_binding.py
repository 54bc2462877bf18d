"""Identification reaches only the chat that asked for it.

A phishing link on the real domain (``/identity/start?ticket=…`` of an attacker's intake),
completed by a victim at the real development provider, must identify nobody: the identity is
applied only when the one-time code from the callback is redeemed over the websocket that owns
the intake, and only the browser that opened the link gets that code. Links work once and for
minutes, the callback must come back to the browser that opened the link, and a full table of
identifications refuses new ones instead of pushing out real ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from idp import login, provider_for_kanava
from intake_testing import (
    after_identifying,
    answer_all,
    browser_identifies,
    identification_result,
)
from kanava_testing import Chat, ClientPeer, KanavaServer

from protocol import JSON
from protocol.messages import (
    ConversationOpened,
    IntakeAnonymous,
    IntakeIdentify,
    IntakeResume,
    IntakeStart,
    IntakeStep,
)
from server.core.clock import ManualClock


@pytest.fixture
def provider_port(tmp_path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with provider_for_kanava(tmp_path, "kanava-binding") as registration:
        yield registration


@pytest.fixture
def desk_server(server_factory: Any, provider_port: tuple[int, dict[str, Any]]) -> KanavaServer:
    port, identification = provider_port
    server: KanavaServer = server_factory(
        port=port, intake_required=True, always_open=True, **identification
    )
    return server


def browser() -> aiohttp.ClientSession:
    """A browser of its own: its own cookies (loopback cookies included)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def at_identify(desk: Chat) -> tuple[ClientPeer, IntakeStep]:
    client = await desk.raw_client()
    await client.send(IntakeStart("other", "fi"))
    step = await answer_all(client, await client.expect(IntakeStep))
    assert step.step == "identify"
    return client, step


def link(step: IntakeStep) -> str:
    assert isinstance(step.detail, dict)
    return str(step.detail["url"])


def identified_rows(server: KanavaServer) -> int:
    db = sqlite3.connect(server.database)
    try:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM conversations WHERE identity IS NOT NULL"
        ).fetchone()
    finally:
        db.close()
    return int(count)


async def test_a_link_completed_in_someone_elses_browser_identifies_nobody(
    desk_server: KanavaServer,
) -> None:
    """The attacker sends the victim their own intake's link; Aino logs in with it. The
    attacker's chat stays unidentified and shows nothing of Aino."""
    desk = Chat(desk_server, JSON)
    try:
        attacker, step = await at_identify(desk)
        async with browser() as victim:
            # Aino's browser has no opener to hand the code to: the code stays there.
            code = await browser_identifies(victim, desk_server, link(step), "aino")
        assert code  # the victim's own browser would have been able to continue
        # The attacker's socket gets a fresh link, and nothing else: no chat, no identity.
        refreshed = await attacker.expect(IntakeStep)
        assert refreshed.step == "identify" and link(refreshed) != link(step)
        await attacker.nothing_more(0.5, ConversationOpened)
        # Guessing a code does not help either.
        await attacker.send(IntakeIdentify("a-guessed-code-" + "x" * 30))
        await attacker.expect_error("forbidden")
        # The attacker can only go on anonymously: to the bot, never to a nurse as Aino.
        await attacker.send(IntakeAnonymous())
        end = await attacker.expect(IntakeStep)
        assert end.step == "anonymous"
        assert identified_rows(desk_server) == 0
    finally:
        await desk.close_all()


async def test_a_code_works_only_on_the_websocket_of_its_own_intake(
    desk_server: KanavaServer,
) -> None:
    """Even holding Aino's code, another intake cannot redeem it; and the code is burnt."""
    desk = Chat(desk_server, JSON)
    try:
        aino, aino_step = await at_identify(desk)
        other, _ = await at_identify(desk)
        async with browser() as aino_browser:
            code = await browser_identifies(aino_browser, desk_server, link(aino_step), "aino")
        await other.send(IntakeIdentify(code))
        error = await other.expect_error("forbidden")
        assert "another chat" in error.reason
        # Offered by the wrong chat, the code is spent: Aino identifies again.
        await aino.send(IntakeIdentify(code))
        await aino.expect_error("forbidden")
        assert identified_rows(desk_server) == 0
    finally:
        await desk.close_all()


async def test_the_rightful_browser_redeems_its_code_and_is_queued_identified(
    desk_server: KanavaServer,
) -> None:
    desk = Chat(desk_server, JSON)
    try:
        client, step = await at_identify(desk)
        async with browser() as own:
            code = await browser_identifies(own, desk_server, link(step), "aino")
        await client.send(IntakeIdentify(code))
        opened = await after_identifying(client)
        assert isinstance(opened, ConversationOpened)
        identified = opened.conversation.identified
        assert identified is not None and identified.name == "Aino Testinen"
        # Redeemed once: a replay of the same code by another intake finds nothing.
        replay, _ = await at_identify(desk)
        await replay.send(IntakeIdentify(code))
        error = await replay.expect_error("forbidden")
        assert "not valid" in error.reason
    finally:
        await desk.close_all()


async def test_a_link_works_once_and_the_chat_gets_a_fresh_one(
    desk_server: KanavaServer,
) -> None:
    desk = Chat(desk_server, JSON)
    try:
        client, step = await at_identify(desk)
        async with browser() as own:
            async with own.get(desk_server.base + link(step), allow_redirects=False) as resp:
                assert resp.status == 302
                assert "kanava_identify" in resp.cookies
                assert "httponly" in resp.headers["Set-Cookie"].lower()
                assert "samesite=lax" in resp.headers["Set-Cookie"].lower()
            # The same link again: used up.
            async with own.get(desk_server.base + link(step), allow_redirects=False) as resp:
                assert resp.status == 400
                assert "käytetty" in await resp.text()
            fresh = await client.expect(IntakeStep)
            assert fresh.step == "identify"
            code = await browser_identifies(own, desk_server, link(fresh), "aino")
        await client.send(IntakeIdentify(code))
        assert isinstance(await after_identifying(client), ConversationOpened)
    finally:
        await desk.close_all()


async def test_a_callback_in_another_browser_than_the_one_that_opened_the_link_is_refused(
    desk_server: KanavaServer,
) -> None:
    """The provider's answer replayed (or forced) into a browser without the binding cookie
    gives no code, and the login cannot be finished anywhere afterwards."""
    desk = Chat(desk_server, JSON)
    try:
        client, step = await at_identify(desk)
        async with browser() as opener, browser() as other:
            async with opener.get(desk_server.base + link(step), allow_redirects=False) as resp:
                provider_url = resp.headers["Location"]
            redirect = f"{desk_server.base}/identity/callback"
            query = await login(provider_url, redirect, person="aino")
            async with other.get(redirect, params=query) as resp:
                page = await resp.text()
                assert resp.status == 400
                assert identification_result(page) == {"ok": False, "code": None, "alone": None}
                assert "toisessa selaimessa" in page
            async with opener.get(redirect, params=query) as resp:
                assert resp.status == 400  # the login is spent
        await client.nothing_more(0.3, ConversationOpened)
        assert identified_rows(desk_server) == 0
    finally:
        await desk.close_all()


@pytest.fixture
def clocked_server(
    server_factory: Any, provider_port: tuple[int, dict[str, Any]]
) -> tuple[KanavaServer, ManualClock]:
    port, identification = provider_port
    clock = ManualClock()
    server: KanavaServer = server_factory(
        port=port, intake_required=True, always_open=True, clock=clock, **identification
    )
    return server, clock


async def test_a_link_lives_minutes_not_an_hour(
    clocked_server: tuple[KanavaServer, ManualClock],
) -> None:
    server, clock = clocked_server
    desk = Chat(server, JSON)
    try:
        client, step = await at_identify(desk)
        clock.advance(11 * 60)
        async with browser() as own:
            async with own.get(server.base + link(step), allow_redirects=False) as resp:
                assert resp.status == 400
            # Coming back to the chat gives a link that works.
            await client.send(IntakeResume(step.token))
            fresh = await client.expect(IntakeStep)
            assert fresh.step == "identify" and link(fresh) != link(step)
            async with own.get(server.base + link(fresh), allow_redirects=False) as resp:
                assert resp.status == 302
    finally:
        await desk.close_all()


async def test_identifications_in_progress_are_limited_per_address(
    server_factory: Any, provider_port: tuple[int, dict[str, Any]]
) -> None:
    """One network cannot hold the table of pending logins: past its share it is told to
    wait, while a resident elsewhere identifies as usual."""
    port, identification = provider_port
    server: KanavaServer = server_factory(
        port=port,
        intake_required=True,
        always_open=True,
        max_identifications_per_address=2,
        **identification,
    )
    desk = Chat(server, JSON)
    try:
        async with browser() as flood:
            first = None
            for _ in range(2):
                client, step = await at_identify(desk)
                first = first or (client, step)
                async with flood.get(server.base + link(step), allow_redirects=False) as resp:
                    assert resp.status == 302
            _, step = await at_identify(desk)
            async with flood.get(server.base + link(step), allow_redirects=False) as resp:
                assert resp.status == 429
                assert int(resp.headers["Retry-After"]) > 0
                assert "Yritä hetken kuluttua" in await resp.text()
            # Refused, the link was not used up: once a place is free, the same link works.
            assert first is not None
            await first[0].send(IntakeAnonymous())  # the first one will not identify: free
            await first[0].expect(IntakeStep, lambda m: m.step == "anonymous")
            async with flood.get(server.base + link(step), allow_redirects=False) as resp:
                assert resp.status == 302
        resident = await desk.raw_client(local_addr=("127.0.0.2", 0))
        await resident.send(IntakeStart("other", "fi"))
        step = await answer_all(resident, await resident.expect(IntakeStep))
        async with browser() as own:
            code = await browser_identifies(own, server, link(step), "aino")
        await resident.send(IntakeIdentify(code))
        assert isinstance(await after_identifying(resident), ConversationOpened)
    finally:
        await desk.close_all()


async def test_identification_and_sign_in_starts_are_limited_per_address(
    server_factory: Any, provider_port: tuple[int, dict[str, Any]]
) -> None:
    """Opening identify links and beginning organisation sign-ins costs the provider and a
    table entry: one network gets a burst, then waits; another network does not notice."""
    port, identification = provider_port
    server: KanavaServer = server_factory(
        port=port,
        intake_required=True,
        always_open=True,
        sign_in_starts_burst=2,
        sign_in_starts_per_hour=1,
        **identification,
    )
    desk = Chat(server, JSON)
    try:
        async with browser() as flood:
            for _ in range(2):
                _, step = await at_identify(desk)
                async with flood.get(server.base + link(step), allow_redirects=False) as resp:
                    assert resp.status == 302
            _, step = await at_identify(desk)
            async with flood.get(server.base + link(step), allow_redirects=False) as resp:
                assert resp.status == 429
                assert int(resp.headers["Retry-After"]) > 0
            async with flood.get(server.base + "/pro/oidc/start", allow_redirects=False) as resp:
                assert resp.headers["Location"] == "/pro?login_error=too_many"
        elsewhere = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=elsewhere) as colleague:
            async with colleague.get(
                server.base + "/pro/oidc/start", allow_redirects=False
            ) as resp:
                assert resp.status == 302
                assert "/auth?response_type=code" in resp.headers["Location"]
    finally:
        await desk.close_all()
