"""The professional console's server side: sign-in, forgery, roles, the access log, drafts, the
pane check, escalation and record entries — over real HTTP and real websockets."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from console_testing import Browser
from idp import login as provider_login
from idp import provider_for_kanava
from kanava_testing import PASSWORD, Chat, KanavaServer, login_token, self_signed_tls

from protocol import JSON
from protocol.messages import (
    Auth,
    ConversationOpen,
    ConversationOpened,
    ConversationStateChanged,
    ConversationTransfer,
    DraftSet,
    Error,
    MessageNew,
    MessageSend,
    QueueTake,
)
from server.console.auth import _verify_scrypt
from server.settings import Settings

# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
async def browser(server: KanavaServer) -> AsyncIterator[Browser]:
    b = Browser(server)
    yield b
    await b.close()


async def recv_json(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    import asyncio

    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        msg: dict[str, Any] = json.loads(raw)
        if msg["type"] == kind:
            return msg


def raw_set_cookie(headers: Any, name: str) -> str:
    for value in headers.getall("Set-Cookie", []):
        if value.startswith(name + "="):
            return str(value)
    raise AssertionError(f"no Set-Cookie for {name}")


# --- sign-in and the session cookie -------------------------------------------------------


async def test_sign_in_sets_an_httponly_strict_cookie_and_no_token_in_the_body(
    server: KanavaServer,
) -> None:
    """The page never sees the session token: it is an HttpOnly, SameSite=Strict cookie."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(server.base + "/api/session") as response:
            start = await response.json()
            assert start["professional"] is None and start["csrf"]
        async with session.post(
            server.base + "/api/login",
            json={"username": "hoitaja1", "password": PASSWORD},
            headers={"X-CSRF-Token": start["csrf"]},
        ) as response:
            body = await response.json()
            assert response.status == 200, body
            cookie = raw_set_cookie(response.headers, "kanava_session")
        assert "token" not in body
        assert body["professional"]["role"] == "nurse"
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        # The test server runs with dev_insecure_cookies (plain http on loopback): no Secure
        # flag and no __Host- prefix, or http would lose the cookie.
        assert "Secure" not in cookie
        async with session.get(server.base + "/api/session") as response:
            now = await response.json()
        assert now["professional"]["name"] == "Hanna Hoitaja"
        assert now["csrf"] == body["csrf"] != start["csrf"]


def host_cookie(headers: Any, name: str) -> str:
    """The Set-Cookie of ``__Host-<name>``, checked for what the prefix demands."""
    cookie = raw_set_cookie(headers, "__Host-" + name)
    attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "secure" in attributes and "path=/" in attributes and "httponly" in attributes
    assert not any(a.startswith("domain") for a in attributes), cookie
    return cookie


async def test_by_default_the_console_cookies_are_secure_and_host_prefixed(
    server_factory: Any, tmp_path: Path
) -> None:
    """The shipped default, over real TLS: the anti-forgery, session, device and sign-out
    cookies are __Host-…, Secure, Path=/, without Domain, and the console works with them (a
    browser's cookie jar sends them back over https only). The device cookie lives 90 days,
    stays after signing out, and its key is a 0600 file in the database's folder."""
    assert Settings().dev_insecure_cookies is False
    server: KanavaServer = server_factory(dev_insecure_cookies=False, tls=self_signed_tls(tmp_path))
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(ssl=False)
    async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as session:
        async with session.get(server.base + "/api/session") as response:
            csrf = (await response.json())["csrf"]
            assert "SameSite=Strict" in host_cookie(response.headers, "kanava_login_csrf")
        async with session.post(
            server.base + "/api/login",
            json={"username": "hoitaja1", "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        ) as response:
            body = await response.json()
            assert response.status == 200, body
            assert "SameSite=Strict" in host_cookie(response.headers, "kanava_session")
            device = host_cookie(response.headers, "kanava_device")
            assert "SameSite=Strict" in device and f"Max-Age={90 * 86_400}" in device, device
        assert (tmp_path / "device-cookie.key").stat().st_mode & 0o777 == 0o600
        async with session.get(server.base + "/api/session") as response:
            assert (await response.json())["professional"]["name"] == "Hanna Hoitaja"
        token = next(c.value for c in jar if c.key == "__Host-kanava_session")
        async with session.ws_connect(
            server.ws_base + "/ws/pro",
            protocols=[JSON.subprotocol],
            headers={"Cookie": f"__Host-kanava_session={token}"},
        ) as ws:
            await ws.send_str(json.dumps({"type": "auth"}))
            assert json.loads(await ws.receive_str())["type"] == "welcome"
        async with session.post(
            server.base + "/api/logout", headers={"X-CSRF-Token": body["csrf"]}
        ) as response:
            assert response.status == 200
            gone = host_cookie(response.headers, "kanava_session")
            assert gone.startswith('__Host-kanava_session=""') or "Max-Age=0" in gone, gone
            assert "kanava_device" not in str(response.headers.getall("Set-Cookie"))
        assert any(c.key == "__Host-kanava_device" for c in jar)
    # A cookie under the development name (as a plain-http page could plant) is not read.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        async with session.get(
            server.base + "/api/session", headers={"Cookie": f"kanava_session={token}"}
        ) as response:
            assert (await response.json())["professional"] is None


async def test_the_organisation_sign_in_cookie_follows_the_same_rule(
    server_factory: Any, tmp_path: Path
) -> None:
    with provider_for_kanava(tmp_path, "kanava-console") as (port, identification):
        server: KanavaServer = server_factory(
            port=port, dev_insecure_cookies=False, **identification
        )
        async with aiohttp.ClientSession() as session:
            async with session.get(server.base + "/pro/oidc/start", allow_redirects=False) as r:
                assert r.status == 302
                assert "SameSite=Lax" in host_cookie(r.headers, "kanava_pro_oidc")


def test_a_device_cookie_key_open_to_others_stops_the_server(
    server_factory: Any, tmp_path: Path
) -> None:
    key = tmp_path / "device.key"
    key.write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    key.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        server_factory(device_key_file=key)


async def test_passwords_are_stored_with_argon2id(server: KanavaServer) -> None:
    db = sqlite3.connect(server.database)
    hashes = [h for (h,) in db.execute("SELECT password_hash FROM professionals WHERE bot = 0")]
    db.close()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


async def test_an_old_scrypt_hash_still_signs_in_and_is_replaced_by_argon2(
    server: KanavaServer,
) -> None:
    # A real scrypt hash of the password, as Kanava stored them before Argon2.
    import base64
    import hashlib

    salt = b"saltsaltsaltsalt"
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    old = f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert _verify_scrypt(PASSWORD, old)
    await server.add_professional("vanha", password_hash=old)
    await login_token(server.base, "vanha")
    db = sqlite3.connect(server.database)
    (stored,) = db.execute(
        "SELECT password_hash FROM professionals WHERE id = 'p_vanha'"
    ).fetchone()
    db.close()
    assert stored.startswith("$argon2id$")
    await login_token(server.base, "vanha")  # and the new hash works


async def test_wrong_passwords_slow_down_the_account_from_that_address(
    browser: Browser,
) -> None:
    """Wrong passwords make the next attempts of that username from that computer wait longer
    and longer (3 free, then 0.5 s doubling); the right password still signs in, after its
    wait. Another account from the same computer signs in without waiting."""
    await browser.start()
    took = []
    for _ in range(5):
        started = time.monotonic()
        status, body = await browser.post(
            "/api/login", {"username": "hoitaja2", "password": "arvaus"}
        )
        took.append(time.monotonic() - started)
        assert status == 401 and body["error"]["code"] == "auth_failed"
    assert took[3] >= 0.5 and took[4] >= 1.0, took
    started = time.monotonic()
    status, body = await browser.post("/api/login", {"username": "hoitaja2", "password": PASSWORD})
    assert status == 200, body
    assert time.monotonic() - started >= 2.0
    # Another account from the same computer: no wait.
    colleague = Browser(browser.server)
    try:
        await colleague.start()
        started = time.monotonic()
        status, body = await colleague.post(
            "/api/login", {"username": "hoitaja1", "password": PASSWORD}
        )
        assert status == 200, body
        assert time.monotonic() - started < 0.5
    finally:
        await colleague.close()


async def test_an_unknown_username_is_refused_like_a_wrong_password(browser: Browser) -> None:
    await browser.start()
    status, body = await browser.post("/api/login", {"username": "nobody", "password": "x"})
    assert status == 401 and body["error"]["reason"] == "wrong username or password"


# --- forgery ------------------------------------------------------------------------------


async def test_sign_in_without_the_anti_forgery_token_is_refused(browser: Browser) -> None:
    await browser.start()
    for token in ("", "forged"):
        status, body = await browser.post(
            "/api/login", {"username": "hoitaja1", "password": PASSWORD}, csrf=token
        )
        assert status == 403 and body["error"]["code"] == "csrf"


async def test_a_foreign_origin_cannot_post(browser: Browser) -> None:
    await browser.sign_in("hoitaja1")
    status, body = await browser.post("/api/logout", {}, Origin="https://evil.example")
    assert status == 403 and body["error"]["code"] == "csrf"
    status, _ = await browser.get("/api/console")
    assert status == 200  # still signed in


async def test_a_cookie_request_needs_the_sessions_own_token(browser: Browser) -> None:
    """The pre-sign-in token, or none, does not work once signed in; the session's does."""
    first = await browser.start()
    await browser.sign_in("hoitaja1")
    for token in ("", first["csrf"]):
        status, body = await browser.post("/api/logout", {}, csrf=token)
        assert status == 403 and body["error"]["code"] == "csrf"
    status, body = await browser.post("/api/logout", {})
    assert status == 200 and body["signed_out"] is True
    status, body = await browser.get("/api/console")
    assert status == 401


# --- the websocket with the cookie; sign-out closes it -----------------------------------


async def test_the_console_websocket_signs_in_with_the_cookie_and_sign_out_closes_it(
    browser: Browser,
) -> None:
    await browser.sign_in("hoitaja1")
    ws = await browser.websocket()
    try:
        await ws.send(json.dumps({"type": "auth", "cursors": {}}))
        welcome = await recv_json(ws, "welcome")
        assert welcome["professional"]["role"] == "nurse"
        status, _ = await browser.post("/api/logout", {})
        assert status == 200
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws, "never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    finally:
        await ws.close()


async def test_auth_without_a_cookie_or_token_is_refused(chat: Chat) -> None:
    pro = await chat.raw_pro()
    await pro.send(Auth())
    err = await pro.expect_error("auth_failed")
    assert "sign in" in err.reason


# --- roles and the access log -------------------------------------------------------------


async def test_only_supervisors_read_the_access_log_and_it_says_who_opened_what(
    chat: Chat, browser: Browser
) -> None:
    client, nurse = await chat.open_chat_with("hoitaja1", "Maija Mehiläinen")
    doctor = await chat.open_pro("laakari1")
    await chat.server.add_team("laakarit")
    await nurse.send(
        ConversationTransfer(
            client.conversation_id, to_professional=doctor.id, note="Ihottuma", escalate=True
        )
    )
    await doctor.expect(
        ConversationStateChanged, lambda m: m.conversation.conversation_id == client.conversation_id
    )
    await browser.sign_in("hoitaja1")
    status, body = await browser.post(
        "/api/access-log", {"conversation_id": client.conversation_id}
    )
    assert status == 403 and body["error"]["code"] == "forbidden"

    supervisor = Browser(chat.server)
    try:
        profile = await supervisor.sign_in("esihenkilo1")
        assert profile["professional"]["role"] == "supervisor"
        status, body = await supervisor.post(
            "/api/access-log", {"conversation_id": client.conversation_id}
        )
        assert status == 200, body
        seen = [(e["professional_name"], e["reason"]) for e in body["entries"]]
        assert seen == [
            ("Hanna Hoitaja", "taken from the queue"),
            ("Laura Lääkäri", "escalated to a doctor by Hanna Hoitaja"),
        ]
        assert all(e["client_name"] == "Maija Mehiläinen" for e in body["entries"])
        status, body = await supervisor.post("/api/access-log", {"identity_code": "not a code"})
        assert status == 400 and body["error"]["code"] == "invalid_field"
    finally:
        await supervisor.close()
    # Reading the log is on record too.
    db = sqlite3.connect(chat.server.database)
    actions = [a for (a,) in db.execute("SELECT action FROM audit_events")]
    db.close()
    assert "access_log_read" in actions


async def test_the_access_log_cannot_be_changed_or_emptied(chat: Chat) -> None:
    await chat.open_chat_with("hoitaja1")
    db = sqlite3.connect(chat.server.database)
    try:
        assert db.execute("SELECT COUNT(*) FROM access_log").fetchone()[0] == 1
        for sql in ("UPDATE access_log SET reason = 'x'", "DELETE FROM access_log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)
    finally:
        db.close()


async def test_a_professional_cannot_act_on_a_chat_assigned_to_someone_else(chat: Chat) -> None:
    client, nurse = await chat.open_chat_with("hoitaja1", "Aino")
    other = await chat.open_pro("hoitaja2")
    await other.send(MessageSend(client.conversation_id, "m1", "Hei"))
    assert (await other.expect_error("not_assigned")).ref == "m1"
    await other.send(DraftSet(client.conversation_id, "luonnos"))
    await other.expect_error("not_assigned")
    await other.send(ConversationTransfer(client.conversation_id, to_professional=other.id))
    await other.expect_error("not_assigned")
    await client.nothing_more(cls=MessageNew)


# --- the pane check and drafts ------------------------------------------------------------


async def test_a_send_from_another_chats_pane_is_refused_and_reaches_nobody(chat: Chat) -> None:
    aino = await chat.open_client("Aino Aalto")
    antti = await chat.open_client("Antti Aho")
    pro = await chat.open_pro("hoitaja1")
    for client in (aino, antti):
        await pro.send(QueueTake(conversation_id=client.conversation_id))
        await pro.history(client.conversation_id)
    await pro.send(
        MessageSend(
            antti.conversation_id, "m-wrong", "Aino, verikokeesi", pane=aino.conversation_id
        )
    )
    err = await pro.expect_error("pane_mismatch")
    assert err.ref == "m-wrong" and "another chat" in err.reason
    await pro.send(
        MessageSend(aino.conversation_id, "m-right", "Hei Aino", pane=aino.conversation_id)
    )
    got = await aino.expect(MessageNew)
    assert got.message.text == "Hei Aino"
    await antti.nothing_more(cls=MessageNew)
    assert await chat.server.acall(lambda: chat.server.storage.count_messages()) == 1


async def test_drafts_are_kept_per_conversation_and_come_back_on_sign_in(chat: Chat) -> None:
    first = await chat.open_client("Aino")
    second = await chat.open_client("Antti")
    pro = await chat.open_pro("hoitaja1")
    for client in (first, second):
        await pro.send(QueueTake(conversation_id=client.conversation_id))
        await pro.history(client.conversation_id)
    await pro.send(DraftSet(first.conversation_id, "Hei Aino, katsoin"))
    await pro.send(DraftSet(second.conversation_id, "Antti: kuume?"))
    await pro.send(DraftSet(second.conversation_id, "Antti: kuinka korkea kuume?"))
    await pro.send(DraftSet(first.conversation_id, "x" * 4001))
    await pro.expect_error("text_too_long")
    await pro.nothing_more(cls=Error)
    again = await chat.open_pro("hoitaja1", token=pro.token)
    assert again.welcome.drafts == {
        first.conversation_id: "Hei Aino, katsoin",
        second.conversation_id: "Antti: kuinka korkea kuume?",
    }
    await again.send(DraftSet(first.conversation_id, ""))
    await again.nothing_more(cls=Error)
    third = await chat.open_pro("hoitaja1", token=pro.token)
    assert third.welcome.drafts == {second.conversation_id: "Antti: kuinka korkea kuume?"}


# --- transfer with a note, escalation -----------------------------------------------------


async def test_escalation_to_a_doctor_is_marked_and_carries_the_note(chat: Chat) -> None:
    client, nurse = await chat.open_chat_with("hoitaja1", "Aino")
    await chat.server.add_professional("toinen", teams=("kallio",))
    colleague = await chat.open_pro("toinen")
    doctor = await chat.open_pro("laakari1")
    # Escalation goes to a doctor only.
    await nurse.send(
        ConversationTransfer(client.conversation_id, to_professional=colleague.id, escalate=True)
    )
    assert "not a doctor" in (await nurse.expect_error("target_unavailable")).reason
    await nurse.send(
        ConversationTransfer(
            client.conversation_id,
            to_professional=doctor.id,
            note="Ihottuma levinnyt, pyytää lääkäriä",
            escalate=True,
        )
    )
    state = await doctor.expect(
        ConversationStateChanged, lambda m: m.conversation.conversation_id == client.conversation_id
    )
    view = state.conversation
    assert view.escalated is True and view.reason == "escalated"
    assert isinstance(view.handover, dict)
    assert view.handover["kind"] == "escalation"
    assert view.handover["from_name"] == "Hanna Hoitaja"
    assert view.handover["note"] == "Ihottuma levinnyt, pyytää lääkäriä"
    told = await client.expect(
        ConversationStateChanged,
        lambda m: (
            m.conversation.professional is not None and m.conversation.professional.id == doctor.id
        ),
    )
    assert told.conversation.professional is not None
    assert told.conversation.professional.role == "doctor"


async def test_a_retried_open_after_a_transfer_does_not_show_the_note(chat: Chat) -> None:
    """The client's conversation.open is retried after a transfer with a note: the chat comes
    back to it without the note, which is between professionals."""
    open_id = "f" * 32
    first = await chat.raw_client()
    await first.send(ConversationOpen(client_name="Aino", team="kallio", open_id=open_id))
    cid = (await first.expect(ConversationOpened)).conversation.conversation_id
    await first.close()
    nurse = await chat.open_pro("hoitaja1")
    colleague = await chat.open_pro("hoitaja2")
    await nurse.send(QueueTake(conversation_id=cid))
    await nurse.history(cid)
    await nurse.send(ConversationTransfer(cid, to_professional=colleague.id, note="Kuume 39"))
    await colleague.expect(ConversationStateChanged)
    again = await chat.raw_client()
    await again.send(ConversationOpen(client_name="Aino", team="kallio", open_id=open_id))
    opened = await again.expect(ConversationOpened)
    assert opened.conversation.conversation_id == cid
    assert opened.conversation.handover is None
    assert all("Kuume 39" not in repr(m) for m in again.received)


async def test_a_transfer_note_reaches_the_colleague(chat: Chat) -> None:
    client, nurse = await chat.open_chat_with("hoitaja1", "Aino")
    colleague = await chat.open_pro("hoitaja2")
    await nurse.send(
        ConversationTransfer(client.conversation_id, to_professional=colleague.id, note="Kuume 39")
    )
    state = await colleague.expect(ConversationStateChanged)
    assert isinstance(state.conversation.handover, dict)
    assert state.conversation.handover["kind"] == "transfer"
    assert state.conversation.handover["note"] == "Kuume 39"
    assert state.conversation.escalated is False
    # The note is between professionals: the client's copy of the change has none of it.
    told = await client.expect(
        ConversationStateChanged,
        lambda m: (
            m.conversation.professional is not None
            and m.conversation.professional.id == colleague.id
        ),
    )
    assert told.conversation.handover is None
    assert all("Kuume 39" not in repr(m) for m in client.received)


# --- record entries -----------------------------------------------------------------------


async def test_a_record_entry_is_drafted_saved_with_the_close_and_downloaded(chat: Chat) -> None:
    client, nurse = await chat.open_chat_with("hoitaja1", "Aino Aalto")
    await client.say("Minulla on ollut kuumetta kolme päivää ja yskää.")
    await nurse.say(
        client.conversation_id,
        "Lepää ja juo runsaasti. Jos vointi huononee, ota yhteyttä uudelleen.",
    )
    b = Browser(chat.server)
    try:
        await b.sign_in("hoitaja1")
        cid = client.conversation_id
        status, body = await b.get(f"/api/conversations/{cid}/record")
        assert status == 200, body
        draft = body["draft"]
        assert body["saved"] is None
        assert "kuumetta" in draft["reason"] + draft["symptoms"]
        assert "Lepää ja juo runsaasti" in draft["advice"]
        status, body = await b.post(
            f"/api/conversations/{cid}/record", {**draft, "outcome": "nope"}
        )
        assert status == 400 and body["error"]["code"] == "invalid_field"
        entry = {**draft, "advice": "Lepo ja nesteet.", "outcome": "resolved", "close": True}
        status, body = await b.post(f"/api/conversations/{cid}/record", entry)
        assert status == 200, body
        saved = body["saved"]
        assert saved["version"] == 1 and saved["advice"] == "Lepo ja nesteet."
        closed = await client.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "closed"
        )
        assert closed.conversation.reason == "resolved"
        # Saved again after the close: a new version of the same entry.
        status, body = await b.post(
            f"/api/conversations/{cid}/record", {**entry, "follow_up": "Ei jatkoa.", "close": False}
        )
        assert status == 200 and body["saved"]["version"] == 2
        assert body["saved"]["record_id"] == saved["record_id"]
        status, text = await b.get(body["saved"]["text_url"])
        assert status == 200 and "Lepo ja nesteet." in text and "Ei jatkoa." in text
        status, fhir = await b.get(body["saved"]["fhir_url"])
        assert status == 200, fhir
        if isinstance(fhir, str):
            fhir = json.loads(fhir)
        assert fhir["resourceType"] == "Bundle" and fhir["type"] == "document"
        assert fhir["entry"][0]["resource"]["resourceType"] == "Composition"
    finally:
        await b.close()
    # Nobody else gets the entry.
    other = Browser(chat.server)
    try:
        await other.sign_in("hoitaja2")
        status, _ = await other.get(f"/api/conversations/{cid}/record")
        assert status == 403
        status, _ = await other.get(saved["text_url"])
        assert status == 404
    finally:
        await other.close()


async def test_the_console_data_lists_colleagues_teams_and_canned_responses(
    browser: Browser,
) -> None:
    await browser.sign_in("hoitaja1")
    status, body = await browser.get("/api/console")
    assert status == 200
    names = {c["name"]: c for c in body["colleagues"]}
    assert "Hanna Hoitaja" not in names and names["Laura Lääkäri"]["role"] == "doctor"
    assert {"kallio", "vuosaari"} <= {t["id"] for t in body["teams"]}
    assert body["canned"] and all(
        "*" in c["teams"] or "kallio" in c["teams"] for c in body["canned"]
    )
    assert {"resolved", "booked_appointment"} <= {o["value"] for o in body["outcomes"]}


# --- sign-in with the organisation's OpenID Connect provider -----------------------------


@pytest.fixture
def provider_server(server_factory: Any, tmp_path: Path) -> Iterator[KanavaServer]:
    with provider_for_kanava(tmp_path, "kanava-console") as (port, identification):
        yield server_factory(port=port, always_open=True, **identification)


async def test_a_professional_signs_in_with_the_organisations_provider(
    provider_server: KanavaServer,
) -> None:
    server = provider_server
    await server.add_professional("eero", oidc_subject="fi-test-eero")
    b = Browser(server)
    try:
        assert (await b.start())["oidc"] is True
        async with b.session.get(server.base + "/pro/oidc/start", allow_redirects=False) as resp:
            assert resp.status == 302
            provider_url = resp.headers["Location"]
        callback = server.base + "/identity/callback"
        query = await provider_login(provider_url, callback, person="eero")
        async with b.session.get(callback, params=query, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            assert resp.headers["Location"] == "/pro"
        status, body = await b.get("/api/session")
        assert body["professional"]["id"] == "p_eero"
        assert b.cookie("kanava_device"), "no device cookie after the organisation's sign-in"
        # A person with no linked account is not signed in.
        async with b.session.get(server.base + "/pro/oidc/start", allow_redirects=False) as resp:
            provider_url = resp.headers["Location"]
        query = await provider_login(provider_url, callback, person="aino")
        async with b.session.get(callback, params=query, allow_redirects=False) as resp:
            assert resp.status == 303
            # A code the console knows, never words to show from the address.
            assert resp.headers["Location"] == "/pro?login_error=not_linked"
    finally:
        await b.close()


async def test_a_provider_answer_from_another_browser_signs_nobody_in(
    provider_server: KanavaServer,
) -> None:
    """The sign-in is bound to the browser that started it (a cookie), so a forged one fails."""
    server = provider_server
    await server.add_professional("eero", oidc_subject="fi-test-eero")
    attacker, victim = Browser(server), Browser(server)
    try:
        async with attacker.session.get(
            server.base + "/pro/oidc/start", allow_redirects=False
        ) as resp:
            provider_url = resp.headers["Location"]
        callback = server.base + "/identity/callback"
        query = await provider_login(provider_url, callback, person="eero")
        async with victim.session.get(callback, params=query, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/pro?login_error=other_browser"
        status, body = await victim.get("/api/session")
        assert body["professional"] is None
    finally:
        await attacker.close()
        await victim.close()


async def test_a_supervisor_finds_who_opened_an_identified_clients_chats_by_identity_code(
    provider_server: KanavaServer,
) -> None:
    """Aino identifies; a nurse takes her chat; the log for Aino's code names the nurse."""
    from intake_testing import identified_intake

    desk, client, opened = await identified_intake(provider_server, JSON, "aino")
    supervisor = Browser(provider_server)
    try:
        assert isinstance(opened, ConversationOpened)
        nurse = await desk.open_pro("hoitaja1")
        await nurse.send(QueueTake(conversation_id=opened.conversation.conversation_id))
        await nurse.history(opened.conversation.conversation_id)
        await supervisor.sign_in("esihenkilo1")
        digits = "150385904"  # Aino Testinen, a fictitious person of the test provider
        code = f"150385-904{'0123456789ABCDEFHJKLMNPRSTUVWXY'[int(digits) % 31]}"
        status, body = await supervisor.post("/api/access-log", {"identity_code": code})
        assert status == 200, body
        assert [(e["professional_name"], e["reason"]) for e in body["entries"]] == [
            ("Hanna Hoitaja", "taken from the queue")
        ]
        assert body["entries"][0]["conversation_id"] == opened.conversation.conversation_id
        # Someone else's code finds nothing of hers.
        other = f"020572-913{'0123456789ABCDEFHJKLMNPRSTUVWXY'[20572913 % 31]}"
        status, body = await supervisor.post("/api/access-log", {"identity_code": other})
        assert status == 200 and body["entries"] == []
    finally:
        await supervisor.close()
        await desk.close_all()


async def test_reading_a_record_entry_is_in_the_access_log_of_the_client(
    provider_server: KanavaServer,
) -> None:
    """Aino's record entry carries her full identity code: every reading of a saved entry
    (in the console, as text, as a FHIR document) is in her access log, each with its own
    reason; writing the draft before anything is saved reads nothing."""
    from intake_testing import identified_intake

    desk, client, opened = await identified_intake(provider_server, JSON, "aino")
    nurse_browser, supervisor = Browser(provider_server), Browser(provider_server)
    try:
        assert isinstance(opened, ConversationOpened)
        cid = opened.conversation.conversation_id
        nurse = await desk.open_pro("hoitaja1")
        await nurse.send(QueueTake(conversation_id=cid))
        await nurse.history(cid)
        await nurse_browser.sign_in("hoitaja1")
        status, body = await nurse_browser.get(f"/api/conversations/{cid}/record")
        assert status == 200 and body["saved"] is None
        status, body = await nurse_browser.post(
            f"/api/conversations/{cid}/record", {**body["draft"], "close": True}
        )
        assert status == 200, body
        saved = body["saved"]
        status, _ = await nurse_browser.get(f"/api/conversations/{cid}/record")
        assert status == 200
        status, text = await nurse_browser.get(saved["text_url"])
        assert status == 200 and "150385-904" in text
        status, _ = await nurse_browser.get(saved["fhir_url"])
        assert status == 200

        await supervisor.sign_in("esihenkilo1")
        code = f"150385-904{'0123456789ABCDEFHJKLMNPRSTUVWXY'[150385904 % 31]}"
        status, body = await supervisor.post("/api/access-log", {"identity_code": code})
        assert status == 200, body
        assert [(e["professional_name"], e["reason"]) for e in body["entries"]] == [
            ("Hanna Hoitaja", "taken from the queue"),
            ("Hanna Hoitaja", "record entry read in the console (version 1)"),
            ("Hanna Hoitaja", "record entry downloaded as text (version 1)"),
            ("Hanna Hoitaja", "record entry downloaded as a FHIR document (version 1)"),
        ]
        assert {e["conversation_id"] for e in body["entries"]} == {cid}
    finally:
        await nurse_browser.close()
        await supervisor.close()
        await desk.close_all()
