"""The professional console's HTTP side: sign-in, the console's data, record entries, the
access log.

Sign-in
    ``GET /api/session`` says who is signed in and gives the anti-forgery token;
    ``POST /api/login`` checks the password (Argon2id, in a thread) and sets the session
    cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` outside development) and the
    device cookie (:mod:`server.console.device`), with which this browser's later attempts
    for that username are not slowed or refused for what others at its address sent;
    ``POST /api/logout`` ends the session and closes its websockets;
    ``GET /pro/oidc/start`` signs in through the organisation's OpenID Connect provider, with
    the relying party the intake uses (its callback comes back to ``/identity/callback``).

Forgery
    Every state-changing request (``POST``…) under ``/api/`` passes :func:`csrf_middleware`:
    a foreign ``Origin`` is refused, and a request that relies on the session cookie must
    carry ``X-CSRF-Token`` with the session's token (an HMAC of the session token). The
    sign-in itself carries the token of a short-lived pre-sign-in cookie (double submit).
    A script that sends ``Authorization: Bearer`` and no cookie cannot be forged by a page.

The console's data
    ``GET /api/console``: teams, colleagues (for transfers), canned responses, outcomes.
    ``GET|POST /api/conversations/{id}/record``: the record entry's draft and saved versions;
    ``GET /api/records/{id}.txt`` and ``.fhir.json``: downloads.
    ``POST /api/access-log``: who opened one client's conversations (supervisors, admins).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

from aiohttp import hdrs, web

from protocol import ErrorCode
from protocol.errors import CloseCode
from server.console.auth import (
    DEVICE_COOKIE,
    LOGIN_CSRF_COOKIE,
    OIDC_COOKIE,
    SESSION_COOKIE,
    cookie_name,
    csrf_for_session,
    hash_password,
    needs_rehash,
    normalise_username,
    verify_password,
)
from server.console.canned import CannedResponse, canned_for, load_canned
from server.console.device import DeviceCookies
from server.console.records import OUTCOMES, RecordContext, draft_record, record_fhir, record_text
from server.console.records import validate_entry as validate_record
from server.console.sessions import professional_for_session
from server.core.clock import CLOCK
from server.core.errors import HubError
from server.core.ids import hash_token, new_id, new_token
from server.core.model import Conversation, Professional
from server.guard.client_address import address_key, client_address
from server.guard.limits import LIMITS
from server.guard.ratelimit import FairGate, GateFull, PairBusy, SignInThrottle
from server.hub.hub import HUB, Actor, Hub, client_key
from server.intake import personal_code
from server.intake.oidc import IDENTIFICATION, IdentificationError, Identity
from server.intake.personal_code import load_or_create_key
from server.settings import SETTINGS
from server.storage.base import STORAGE, AccessEntry, AuditEvent
from server.ws.connection import Connection
from server.ws.endpoint import CONNECTIONS

__all__ = ["SIGN_IN_THROTTLE", "add_console_routes", "csrf_middleware", "sign_in_with_identity"]

log = logging.getLogger("kanava.console")

# Failed sign-ins slow down the next attempts of their (username, address) pair; the password
# checks running at once are bounded, and the waiting ones served in turn per address. A
# browser's device cookie exempts its attempts from what others at its address sent.
SIGN_IN_THROTTLE = web.AppKey("sign_in_throttle", SignInThrottle)
PASSWORD_CHECKS = web.AppKey("password_checks", FairGate)
DEVICE_COOKIES = web.AppKey("device_cookies", DeviceCookies)
CANNED = web.AppKey("canned", tuple[CannedResponse, ...])
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_console_routes(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[SIGN_IN_THROTTLE] = SignInThrottle(
        free=settings.login_free_failures,
        delay=settings.login_delay_seconds,
        max_delay=settings.login_max_delay_seconds,
        shared_max_delay=settings.login_shared_max_delay_seconds,
        window=settings.login_window_minutes * 60,
    )
    app[PASSWORD_CHECKS] = FairGate(
        settings.login_checks_at_once or os.cpu_count() or 1,
        max_waiting_per_key=settings.login_checks_waiting_per_address,
    )
    app[CANNED] = load_canned(settings.canned_file)
    app.cleanup_ctx.append(_device_cookies)
    app.router.add_get("/api/session", session_info)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/pro/oidc/start", oidc_start)
    app.router.add_get("/api/console", console_data)
    app.router.add_get("/api/conversations/{cid}/record", get_record)
    app.router.add_post("/api/conversations/{cid}/record", save_record)
    app.router.add_get("/api/records/{record_id}.txt", download_text)
    app.router.add_get("/api/records/{record_id}.fhir.json", download_fhir)
    app.router.add_post("/api/access-log", access_log)


async def _device_cookies(app: web.Application) -> AsyncIterator[None]:
    """The device cookies' key, read (or created, 0600) once storage has made its folder."""
    settings = app[SETTINGS]
    if settings.login_device_days > 0:
        key = await asyncio.to_thread(load_or_create_key, settings.device_key_path())
        app[DEVICE_COOKIES] = DeviceCookies(key, settings.login_device_days * 86_400)
    yield


def _error(status: int, code: ErrorCode, reason: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code.value, "reason": reason, **extra}}
    return web.json_response(body, status=status)


# --- forgery ------------------------------------------------------------------------------


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in _UNSAFE or not request.path.startswith("/api/"):
        return await handler(request)
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin not in request.app[SETTINGS].origins():
        return _error(403, ErrorCode.CSRF, "requests from this origin are not accepted")
    sent = request.headers.get("X-CSRF-Token", "")
    if request.path == "/api/login":
        expected = read_cookie(request, LOGIN_CSRF_COOKIE) or ""
    elif (token := read_cookie(request, SESSION_COOKIE)) is not None:
        expected = csrf_for_session(token)
    elif request.headers.get(hdrs.AUTHORIZATION, "").startswith("Bearer "):
        return await handler(request)  # not ambient: a page cannot make the browser send it
    else:
        return await handler(request)  # nothing to forge: the handler says "sign in"
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        return _error(
            403, ErrorCode.CSRF, "the anti-forgery token is missing or wrong: reload the page"
        )
    return await handler(request)


# --- cookies ------------------------------------------------------------------------------


def _cookie_name(request: web.Request, name: str) -> str:
    return cookie_name(name, request.app[SETTINGS].dev_insecure_cookies)


def read_cookie(request: web.Request, name: str) -> str | None:
    return request.cookies.get(_cookie_name(request, name))


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    name: str,
    value: str,
    max_age: int,
    samesite: str = "Strict",
) -> None:
    """``__Host-<name>``: Secure, Path=/, no Domain, HttpOnly (see ``cookie_name``)."""
    response.set_cookie(
        _cookie_name(request, name),
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite=samesite,
        secure=not request.app[SETTINGS].dev_insecure_cookies,
    )


def delete_cookie(response: web.StreamResponse, request: web.Request, name: str) -> None:
    """Expire a cookie: a browser takes a ``__Host-`` one only with the same Secure flag."""
    response.del_cookie(
        _cookie_name(request, name),
        path="/",
        secure=not request.app[SETTINGS].dev_insecure_cookies,
        httponly=True,
    )


def _set_session_cookie(response: web.StreamResponse, request: web.Request, token: str) -> None:
    hours = request.app[SETTINGS].session_hours
    set_cookie(response, request, SESSION_COOKIE, token, int(hours * 3600))
    delete_cookie(response, request, LOGIN_CSRF_COOKIE)


# --- who is asking ------------------------------------------------------------------------


def _session_token(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    return read_cookie(request, SESSION_COOKIE)


async def _signed_in(request: web.Request) -> Professional:
    """The professional of the request's session, or an HTTP 401 to return."""
    token = _session_token(request)
    if token is None:
        raise _http(401, ErrorCode.AUTH_REQUIRED, "sign in first")
    try:
        return await professional_for_session(
            request.app[HUB], request.app[STORAGE], request.app[CLOCK], token
        )
    except HubError as exc:
        raise _http(401, exc.code, exc.reason) from None


def _http(status: int, code: ErrorCode, reason: str) -> web.HTTPException:
    exc = web.HTTPException(
        text=json.dumps({"error": {"code": code.value, "reason": reason}}),
        content_type="application/json",
    )
    exc.set_status(status)
    return exc


def _profile(pro: Professional) -> dict[str, Any]:
    return {
        "id": pro.id,
        "name": pro.display_name,
        "title": pro.title,
        "role": pro.role,
        "teams": list(pro.teams),
        "capacity": pro.capacity,
    }


# --- sign-in ------------------------------------------------------------------------------


async def session_info(request: web.Request) -> web.Response:
    """Who is signed in here, and the anti-forgery token for the next POST."""
    rp = request.app[IDENTIFICATION].rp if IDENTIFICATION in request.app else None
    token = read_cookie(request, SESSION_COOKIE)
    if token is not None:
        try:
            pro = await professional_for_session(
                request.app[HUB], request.app[STORAGE], request.app[CLOCK], token
            )
        except HubError:
            pass
        else:
            return web.json_response(
                {"professional": _profile(pro), "csrf": csrf_for_session(token), "oidc": bool(rp)}
            )
    csrf = read_cookie(request, LOGIN_CSRF_COOKIE) or new_token()
    response = web.json_response({"professional": None, "csrf": csrf, "oidc": bool(rp)})
    set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf, 3600)
    if token is not None:
        delete_cookie(response, request, SESSION_COOKIE)  # expired or unknown: forget it
    return response


async def login(request: web.Request) -> web.Response:
    """``POST /api/login`` with ``{"username", "password"}``: a session.

    The console gets the session as a cookie, and a device cookie for the username. A script
    that sends ``"token": true`` gets the token in the body instead, for ``auth`` on the
    websocket and ``Authorization: Bearer``, and no cookie.

    After failures of the same username from the same address the attempt waits (see
    :class:`SignInThrottle`) and then its password is checked: a correct one signs in. With a
    device cookie of that username it waits for nothing of the kind.
    """
    try:
        body = await request.json()
        username, password = body["username"], body["password"]
        if not isinstance(username, str) or not isinstance(password, str):
            raise TypeError
        want_token = body.get("token") is True
    except (ValueError, KeyError, TypeError, AttributeError):
        return _error(400, ErrorCode.MALFORMED, "send JSON with username and password")
    app = request.app
    user, address = normalise_username(username), address_key(client_address(request))
    try:
        pro = await _attempt(request, user, address, password)
    except PairBusy:
        return _too_many(
            "a sign-in with this username is already being checked: wait for its answer",
            "username",
            app[SIGN_IN_THROTTLE].max_delay,
        )
    except GateFull:
        return _too_many(
            "too many sign-ins from your network are waiting to be checked: try again shortly",
            "address",
            1.0,  # about the time a full queue of one address takes
        )
    if pro is None:
        return _error(401, ErrorCode.AUTH_FAILED, "wrong username or password")
    token, expires_at = await _new_session(app, pro)
    body_out: dict[str, Any] = {
        "professional": _profile(pro),
        "csrf": csrf_for_session(token),
        "expires_at": expires_at,
    }
    if want_token:
        body_out["token"] = token
        return web.json_response(body_out)
    response = web.json_response(body_out)
    _set_session_cookie(response, request, token)
    _set_device_cookie(response, request, user)
    return response


async def _attempt(
    request: web.Request, user: str, address: str, password: str
) -> Professional | None:
    """One sign-in attempt's wait and password check: the account, or None.

    With a device cookie of ``user`` that has not failed too often, in the cookie's own line
    and its own place in the password checks' queue, at once; otherwise in the pair's line
    after the pair's delay. Raises :class:`PairBusy` or :class:`GateFull` to refuse it."""
    clock, throttle = request.app[CLOCK], request.app[SIGN_IN_THROTTLE]
    device = _device(request, user)
    if device is not None:
        async with throttle.device_turn(device):
            if throttle.trusted(device, clock.monotonic()):
                pro = await _check_password(request, ("device", device), user, password)
                if pro is None:
                    throttle.failed(user, address, clock.monotonic(), device)
                    log.info("failed sign-in from %s with a device cookie", address)
                else:
                    throttle.device_succeeded(device)
                return pro
    async with throttle.turn(user, address):
        wait = throttle.wait(user, address, clock.monotonic())
        if wait:
            await asyncio.sleep(wait)
        pro = await _check_password(request, address, user, password)
        if pro is None:
            throttle.failed(user, address, clock.monotonic(), device)
            log.info("failed sign-in from %s (this pair waited %.1f s)", address, wait)
            return None
        throttle.succeeded(user, address)
        if device is not None:
            throttle.device_succeeded(device)
        return pro


def _too_many(reason: str, limit: str, retry_after: float) -> web.Response:
    """HTTP 429 ``rate_limited``: ``limit`` says whose attempts are too many waiting."""
    response = _error(
        429,
        ErrorCode.RATE_LIMITED,
        reason,
        retry_after_ms=int(retry_after * 1000) + 1,
        limit=limit,
    )
    response.headers[hdrs.RETRY_AFTER] = str(int(retry_after) + 1)
    return response


def _device(request: web.Request, user: str) -> str | None:
    """The id of the request's device cookie for ``user``, if it has a valid one."""
    devices = request.app.get(DEVICE_COOKIES)
    if devices is None:
        return None
    now = request.app[CLOCK].now_ms() / 1000
    return devices.device(read_cookie(request, DEVICE_COOKIE), user, now)


def _set_device_cookie(response: web.StreamResponse, request: web.Request, user: str) -> None:
    """After a sign-in as ``user`` (normalised): this browser's device cookie for it, renewed."""
    devices = request.app.get(DEVICE_COOKIES)
    if devices is None:
        return
    now = request.app[CLOCK].now_ms() / 1000
    value = devices.issue(user, now, read_cookie(request, DEVICE_COOKIE))
    set_cookie(response, request, DEVICE_COOKIE, value, int(devices.lifetime))


async def _check_password(
    request: web.Request, place: Hashable, user: str, password: str
) -> Professional | None:
    """The account if ``password`` is its password (Argon2 in a thread, a bounded number at
    once, in turn per ``place``: an address, or a device cookie); an old hash is replaced by
    today's. Raises :class:`GateFull` when that place has too many waiting."""
    app = request.app
    pro = _account(app[HUB], user)
    stored = pro.password_hash if pro is not None else None
    async with app[PASSWORD_CHECKS].place(place):
        if not await asyncio.to_thread(verify_password, password, stored) or pro is None:
            return None
        if needs_rehash(pro.password_hash):
            pro.password_hash = await asyncio.to_thread(hash_password, password)
            await app[STORAGE].set_password_hash(pro.id, pro.password_hash)
    return pro


def _account(hub: Hub, username: str) -> Professional | None:
    """The person's account with this (normalised) username; None for none, or for two that
    differ only in case or width (stored before usernames were normalised: ask an admin)."""
    found = [
        p for p in hub.professionals() if not p.bot and normalise_username(p.username) == username
    ]
    if len(found) > 1:
        log.error("accounts %s share one username: rename all but one", [p.id for p in found])
    return found[0] if len(found) == 1 else None


async def _new_session(app: web.Application, pro: Professional) -> tuple[str, int]:
    token = new_token()
    expires_at = app[CLOCK].now_ms() + int(app[SETTINGS].session_hours * 3_600_000)
    await app[STORAGE].create_session(hash_token(token), pro.id, expires_at)
    log.info("professional %s signed in", pro.id)
    return token, expires_at


async def logout(request: web.Request) -> web.Response:
    """``POST /api/logout``: ends the session (cookie or Bearer) and closes its websockets."""
    token = _session_token(request)
    if token is None:
        return _error(400, ErrorCode.MALFORMED, "no session: send the cookie or a Bearer token")
    token_hash = hash_token(token)
    await request.app[STORAGE].delete_session(token_hash)
    connections: set[Connection] = request.app[CONNECTIONS]
    for conn in list(connections):
        if conn.session_hash == token_hash:
            await conn.close(CloseCode.SESSION_ENDED, "signed out")
    response = web.json_response({"signed_out": True})
    delete_cookie(response, request, SESSION_COOKIE)
    return response


async def oidc_start(request: web.Request) -> web.StreamResponse:
    """Sign in through the organisation's OpenID Connect provider."""
    rp = request.app[IDENTIFICATION].rp if IDENTIFICATION in request.app else None
    if rp is None:
        raise _to_console("oidc_unavailable")
    address = address_key(client_address(request))
    wait = request.app[LIMITS].wait("sign_in_starts", address, request.app[CLOCK].monotonic())
    if wait:
        raise _to_console("too_many")
    nonce = secrets.token_urlsafe(24)
    try:
        url, _state = rp.begin(context="pro:" + nonce, lang="en")
    except IdentificationError as exc:
        log.warning("organisation sign-in not begun: %s", exc.reason)
        raise _to_console("busy") from None
    response = web.HTTPFound(url)
    # Binds the provider's answer to this browser: a callback started in another browser (a
    # forged sign-in) finds no matching cookie. Lax, because the callback is a navigation
    # from the provider's site, which a Strict cookie would not accompany.
    set_cookie(response, request, OIDC_COOKIE, nonce, 600, samesite="Lax")
    raise response


# Why an organisation sign-in came back without a session. The console shows each code's
# text in its own language, and only these: never words taken from the address.
LOGIN_ERRORS = frozenset({"oidc_unavailable", "other_browser", "not_linked", "too_many", "busy"})


def _to_console(error: str | None = None) -> web.HTTPException:
    assert error is None or error in LOGIN_ERRORS, error
    return web.HTTPSeeOther("/pro" + (f"?login_error={error}" if error else ""))


async def sign_in_with_identity(
    request: web.Request, context: str, person: Identity
) -> web.StreamResponse:
    """The provider vouched for ``person``: sign in the account linked to them."""
    nonce = context.removeprefix("pro:")
    cookie = read_cookie(request, OIDC_COOKIE) or ""
    if not cookie or not hmac.compare_digest(cookie, nonce):
        raise _to_console("other_browser")
    hub = request.app[HUB]
    pro = hub.professional_by_subject(person.subject)
    if pro is None:
        log.info("organisation sign-in of an unlinked identity")
        raise _to_console("not_linked")
    token, _expires = await _new_session(request.app, pro)
    response = _to_console()
    _set_session_cookie(response, request, token)
    _set_device_cookie(response, request, normalise_username(pro.username))
    delete_cookie(response, request, OIDC_COOKIE)
    raise response


# --- the console's data -------------------------------------------------------------------


async def console_data(request: web.Request) -> web.Response:
    pro = await _signed_in(request)
    hub = request.app[HUB]
    teams = [{"id": t.id, "name": t.name, "mode": t.assign_mode.value} for t in hub.teams()]
    colleagues = [
        {
            "id": p.id,
            "name": p.display_name,
            "title": p.title,
            "role": p.role,
            "teams": list(p.teams),
            "online": p.online,
        }
        for p in hub.professionals()
        if p.id != pro.id and not p.bot
    ]
    return web.json_response(
        {
            "teams": teams,
            "colleagues": colleagues,
            "canned": canned_for(_canned(request), pro.teams),
            "outcomes": [{"value": k, "label": v} for k, v in OUTCOMES.items()],
        },
    )


def _canned(request: web.Request) -> tuple[CannedResponse, ...]:
    responses: tuple[CannedResponse, ...] = request.app[CANNED]
    return responses


# --- record entries -----------------------------------------------------------------------


async def _own_conversation(request: web.Request, pro: Professional) -> Conversation:
    """A conversation assigned to ``pro`` now, or that they had when it closed."""
    cid = request.match_info["cid"]
    conv = request.app[HUB].conversation(cid) or await request.app[STORAGE].conversation(cid)
    if conv is None or conv.professional_id != pro.id:
        raise _http(403, ErrorCode.NOT_ASSIGNED, "this conversation is not yours")
    return conv


async def _transcript(request: web.Request, cid: str) -> list[dict[str, Any]]:
    storage = request.app[STORAGE]
    messages: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await storage.history(cid, after, 500)
        messages += [
            {
                "seq": m.seq,
                "sender_role": m.sender_role,
                "sender_id": m.sender_id,
                "sender_name": m.sender_name,
                "text": m.text,
                "sent_at": m.sent_at,
            }
            for m in page
        ]
        if len(page) < 500:
            return messages
        after = page[-1].seq


def _saved(record: dict[str, Any]) -> dict[str, Any]:
    rid = record["record_id"]
    return {
        **{k: record[k] for k in ("record_id", "version", "saved_at", "outcome")},
        **{k: record[k] for k in ("reason", "symptoms", "advice", "follow_up")},
        "text_url": f"/api/records/{rid}.txt",
        "fhir_url": f"/api/records/{rid}.fhir.json",
    }


async def get_record(request: web.Request) -> web.Response:
    pro = await _signed_in(request)
    conv = await _own_conversation(request, pro)
    intake = conv.intake.view() if conv.intake else None
    default = conv.reason if conv.reason in OUTCOMES else "resolved"
    draft = draft_record(intake, await _transcript(request, conv.id), default)
    saved = await request.app[STORAGE].record(conv.id)
    if saved is not None:
        await _record_read(request, pro, conv, "read in the console", saved["version"])
    return web.json_response(
        {
            "draft": {
                "reason": draft.reason,
                "symptoms": draft.symptoms,
                "advice": draft.advice,
                "follow_up": draft.follow_up,
                "outcome": draft.outcome,
            },
            "saved": _saved(saved) if saved else None,
        },
    )


async def save_record(request: web.Request) -> web.Response:
    pro = await _signed_in(request)
    conv = await _own_conversation(request, pro)
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("send a JSON object")
        entry = validate_record(body)
        close = body.get("close", False)
        if not isinstance(close, bool):
            raise ValueError("'close' must be true or false")
    except ValueError as exc:
        return _error(400, ErrorCode.INVALID_FIELD, str(exc) or "send a JSON object")
    storage, clock = request.app[STORAGE], request.app[CLOCK]
    fields = {
        "outcome": entry.outcome,
        "reason": entry.reason,
        "symptoms": entry.symptoms,
        "advice": entry.advice,
        "follow_up": entry.follow_up,
    }
    record_id, version = await storage.save_record(
        conv.id, pro.id, clock.now_ms(), fields, new_id("r")
    )
    log.info("record %s version %d saved for %s", record_id, version, conv.id)
    if close and request.app[HUB].conversation(conv.id) is not None:
        try:
            await request.app[HUB].close(Actor.for_professional(pro), conv.id, entry.outcome)
        except HubError as exc:
            return _error(409, exc.code, f"the entry was saved, but: {exc.reason}")
    saved = await storage.record(record_id=record_id)
    assert saved is not None
    return web.json_response({"saved": _saved(saved)})


async def _record_for_download(request: web.Request, how: str) -> tuple[Any, RecordContext]:
    pro = await _signed_in(request)
    storage = request.app[STORAGE]
    record = await storage.record(record_id=request.match_info["record_id"])
    conv = await storage.conversation(record["conversation_id"]) if record else None
    if record is None or conv is None or conv.professional_id != pro.id:
        raise _http(404, ErrorCode.NO_CONVERSATION, "no record entry of yours has this id")
    author = request.app[HUB].professional(record["professional_id"]) or pro
    identity = conv.identity
    code = birth = None
    protector = request.app[IDENTIFICATION].protector if IDENTIFICATION in request.app else None
    if identity is not None:
        birth = identity.birth_date or None
        if protector is not None:
            try:
                code = protector.reveal(identity.protected_code)
            except ValueError:
                log.error("record %s: the identity code cannot be decrypted", record["record_id"])
    ctx = RecordContext(
        conversation_id=conv.id,
        record_id=record["record_id"],
        version=record["version"],
        started_at_ms=conv.created_at,
        ended_at_ms=conv.closed_at,
        saved_at_ms=record["saved_at"],
        language=conv.language,
        topic=conv.topic,
        triage=conv.triage,
        station=conv.station_id,
        professional_id=author.id,
        professional_name=author.display_name,
        professional_title=author.title,
        client_name=identity.name if identity else conv.client_name,
        identity_code=code,
        birth_date=birth,
    )
    entry = validate_record(record)
    await _record_read(request, pro, conv, how, ctx.version)
    return entry, ctx


async def _record_read(
    request: web.Request, pro: Professional, conv: Conversation, how: str, version: int
) -> None:
    """Put a reading of a saved record entry in the access log, before it is shown."""
    storage, clock = request.app[STORAGE], request.app[CLOCK]
    reason = f"record entry {how} (version {version})"
    await storage.save_event(
        AccessEntry(clock.now_ms(), pro, conv.id, client_key(conv), conv.client_name, reason)
    )


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


async def download_text(request: web.Request) -> web.Response:
    entry, ctx = await _record_for_download(request, "downloaded as text")
    return web.Response(
        text=record_text(entry, ctx),
        content_type="text/plain",
        charset="utf-8",
        headers=_attachment(f"{ctx.record_id}-v{ctx.version}.txt"),
    )


async def download_fhir(request: web.Request) -> web.Response:
    entry, ctx = await _record_for_download(request, "downloaded as a FHIR document")
    return web.Response(
        text=json.dumps(record_fhir(entry, ctx), ensure_ascii=False, indent=2),
        content_type="application/fhir+json",
        charset="utf-8",
        headers=_attachment(f"{ctx.record_id}-v{ctx.version}.fhir.json"),
    )


# --- the access log -----------------------------------------------------------------------


async def access_log(request: web.Request) -> web.Response:
    """Who opened one client's conversations: by identity code, or by conversation id."""
    pro = await _signed_in(request)
    if not pro.supervises:
        return _error(403, ErrorCode.FORBIDDEN, "only a supervisor or an admin reads the log")
    try:
        body = await request.json()
        code, cid = body.get("identity_code"), body.get("conversation_id")
        if (code is None) == (cid is None) or not isinstance(code or cid, str):
            raise ValueError
    except (ValueError, AttributeError):
        return _error(
            400, ErrorCode.MALFORMED, "send JSON with either identity_code or conversation_id"
        )
    storage, clock = request.app[STORAGE], request.app[CLOCK]
    settings = request.app[SETTINGS]
    if code is not None:
        try:
            canonical = personal_code.validate(
                code.strip(), allow_test_codes=settings.oidc_allow_test_codes
            )
        except ValueError as exc:
            return _error(400, ErrorCode.INVALID_FIELD, f"not a valid identity code: {exc}")
        protector = request.app[IDENTIFICATION].protector
        entries = (
            await storage.access_log(client_key=protector.fingerprint(canonical))
            if protector is not None
            else []  # without identification no client was ever identified
        )
        what = "identity code " + personal_code.mask(canonical)
    else:
        entries = await storage.access_log(conversation_id=cid)
        what = "conversation " + cid
    # Reading the log is itself on record.
    await storage.save_event(
        AuditEvent(clock.now_ms(), None, "professional", pro.id, "access_log_read", what)
    )
    return web.json_response({"entries": entries})
