"""The intake's HTTP side: service status, and the identification round trip.

- ``GET /api/service?lang=fi``: is the chat taking new chats now, the topics to choose from,
  who the nurse chat is for, and when closed, why and when it opens (with the bot and the
  24/7 numbers).
- ``GET /identity/start?ticket=…&lang=fi``: redirects the browser to the identity provider.
  The ticket comes from the client's ``intake.step`` (``identify``), works once and for
  minutes, and binds the login to this browser with a cookie.
- ``GET /identity/callback``: the provider's answer. In the browser that began the login, the
  identity is kept aside under a one-time code that this page hands to the chat page that
  opened it (``postMessage`` to its own origin); the chat's websocket redeems it with
  ``intake.identify``. See :mod:`server.intake.reception` for why.
- ``GET /.well-known/jwks.json``: the public key of Kanava's ``private_key_jwt`` client
  authentication, for the provider.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiohttp import web

from protocol import ErrorCode
from server.console.web import delete_cookie, read_cookie, set_cookie, sign_in_with_identity
from server.core.clock import CLOCK
from server.core.errors import HubError
from server.core.model import AssignMode, Team
from server.core.texts import HELSINKI
from server.guard.client_address import address_key, client_address
from server.guard.limits import LIMITS, LimitError
from server.hub.hub import HUB
from server.intake.areas import load_areas
from server.intake.eligibility import audience
from server.intake.flow import ClientIdentity, IntakeFlow, IntakeSession, client_language
from server.intake.hours import load_hours
from server.intake.oidc import (
    IDENTIFICATION,
    Identification,
    IdentificationError,
    OidcConfig,
    RelyingParty,
    load_or_create_private_jwk,
)
from server.intake.personal_code import CodeProtector, load_or_create_key
from server.intake.questionnaire import load_topics
from server.intake.reception import IDENTIFY_MINUTES, RECEPTION, Reception
from server.settings import SETTINGS
from server.storage.base import STORAGE

__all__ = ["add_intake_routes", "intake_context"]

log = logging.getLogger("kanava.intake")

CLOSING_SOON = timedelta(minutes=30)


async def intake_context(app: web.Application) -> AsyncIterator[None]:
    """Load the intake's data (a bad file stops the start), start the relying party."""
    settings, clock = app[SETTINGS], app[CLOCK]
    topics = load_topics(settings.questionnaires_dir)
    areas = load_areas(settings.areas_file)
    hours = load_hours(settings.hours_file)
    rp: RelyingParty | None = None
    protector: CodeProtector | None = None
    if settings.oidc_issuer:
        config = OidcConfig(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            redirect_uri=settings.redirect_uri(),
            private_jwk=load_or_create_private_jwk(settings.oidc_key_file),
            scopes=settings.oidc_scopes,
            allow_test_codes=settings.oidc_allow_test_codes,
        )
        rp = RelyingParty(config, clock=lambda: clock.now_ms() / 1000)
        try:
            await rp.start()
        except Exception as exc:
            # A provider that is down must not keep the chat from starting: adults are then
            # offered the bot, and the log says why identification is off.
            log.error(
                "identity provider %s unreachable, identification off: %r", config.issuer, exc
            )
            await rp.close()
            rp = None
        else:
            protector = CodeProtector(load_or_create_key(settings.identity_key_file))
    hub = app[HUB]
    # Teams are data too: every team the areas name exists, with its stations' name.
    for team_id in areas.teams():
        if not hub.has_team(team_id):
            names = [st.name("fi") for st in areas.stations if st.team == team_id]
            team = Team(team_id, " / ".join(names) or team_id, AssignMode.PICK)
            await app[STORAGE].save_team(team)
            hub.add_team(team)

    def local_now() -> datetime:
        return datetime.fromtimestamp(clock.now_ms() / 1000, HELSINKI)

    def identify_url(session: IntakeSession) -> str:
        ticket = app[RECEPTION].ticket_for(session)
        return f"/identity/start?ticket={ticket}&lang={session.lang}"

    flow = IntakeFlow(
        topics,
        areas,
        hours,
        identification=rp is not None,
        identify_url=identify_url,
        check_hours=not settings.always_open,
    )
    app[RECEPTION] = Reception(
        hub,
        flow,
        app[STORAGE],
        clock,
        local_now,
        app[LIMITS],
        max_sessions=settings.max_intake_sessions,
        max_pending=settings.max_pending_identifications,
        max_waiting=settings.max_waiting_per_address,
    )
    app[IDENTIFICATION] = Identification(rp, protector)
    try:
        yield
    finally:
        if rp is not None:
            await rp.close()


def add_intake_routes(app: web.Application) -> None:
    app.router.add_get("/api/service", service_status)
    app.router.add_get("/identity/start", identity_start)
    app.router.add_get("/identity/callback", identity_callback)
    app.router.add_get("/.well-known/jwks.json", jwks)


def _lang(request: web.Request) -> str:
    return client_language(request.query.get("lang"))


async def service_status(request: web.Request) -> web.Response:
    reception: Reception = request.app[RECEPTION]
    lang = _lang(request)
    flow = reception.flow
    now = reception.local_now()
    closed = flow.closed_step(lang, now)
    hub = request.app[HUB]
    # Waiting now: the team of ?team= (a station's widget), else every team with people.
    wanted = request.query.get("team")
    if wanted and not hub.has_team(wanted) and flow.areas.station(wanted) is not None:
        wanted = flow.areas.team_for(wanted)  # the widget may name a station, not its team
    queue_length = hub.waiting(wanted or None)
    state, last_intake = "closed", None
    if closed is None:
        state = "open"
        status = flow.hours.status(now) if flow.check_hours else None
        if status is not None and status.last_intake_at is not None:
            last_intake = status.last_intake_at.strftime("%H:%M")
            if status.last_intake_at - now <= CLOSING_SOON:
                state = "closing_soon"
    return web.json_response(
        {
            # "open", "closing_soon" (new chats stop within half an hour) or "closed".
            "state": state,
            "last_intake_at": last_intake,
            "queue_length": queue_length,
            "accepting": closed is None,
            "closed": closed.detail if closed is not None else None,
            "topics": flow.topics.menu(lang),
            "identification": flow.identification,
            # Who the nurse chat is for, and where the others turn (from the configuration).
            "audience": audience(
                flow.areas,
                lang,
                identification=flow.identification,
                bot=request.app[SETTINGS].bot,
            ),
            # Off only for trying the chat without the intake (and for its older tests).
            "intake_required": request.app[SETTINGS].intake_required,
            # The advice bot answers at any hour (bot.start): offer it beside the topics.
            "bot": request.app[SETTINGS].bot,
        }
    )


async def jwks(request: web.Request) -> web.StreamResponse:
    rp = request.app[IDENTIFICATION].rp
    if rp is None:
        raise web.HTTPNotFound()
    return web.json_response(rp.public_jwks())


#: Binds an identification to the browser that opened its link (``__Host-``, Secure, HttpOnly;
#: Lax, because the provider's redirect back is a cross-site navigation that a Strict cookie
#: would not follow).
IDENTIFY_COOKIE = "kanava_identify"


async def identity_start(request: web.Request) -> web.StreamResponse:
    """The identify link: uses its ticket up, binds the login to this browser."""
    rp = request.app[IDENTIFICATION].rp
    lang = _lang(request)
    ticket = request.query.get("ticket", "")
    reception: Reception = request.app[RECEPTION]
    if rp is None:
        return _page(lang, _TEXTS["expired"], status=400)
    address = address_key(client_address(request))
    try:
        request.app[LIMITS].take("sign_in_starts", address, request.app[CLOCK].monotonic())
        pending_id, binding, lang = reception.begin_identification(ticket)
    except LimitError as exc:
        return _page(lang, _TEXTS["busy"], status=429, retry_after=exc.retry_after)
    except HubError as exc:
        log.info("identification link refused: %s", exc.reason)
        return _page(lang, _TEXTS["expired"], status=400)
    try:
        url, _state = rp.begin(context=pending_id, lang=lang)
    except IdentificationError as exc:
        reception.cancel_identification(pending_id)
        log.warning("identification not begun: %s", exc.reason)
        return _page(lang, _TEXTS["busy"], status=503, retry_after=60)
    response = web.HTTPFound(url)
    set_cookie(response, request, IDENTIFY_COOKIE, binding, IDENTIFY_MINUTES * 60, "Lax")
    raise response


async def identity_callback(request: web.Request) -> web.StreamResponse:
    rp = request.app[IDENTIFICATION].rp
    lang = _lang(request)
    if rp is None:
        raise web.HTTPNotFound()
    try:
        context, person = await rp.complete(request.query)
    except IdentificationError as exc:
        log.info("identification refused: %s (%s)", exc.code, exc.reason)
        return _page(lang, exc.user_message(lang), status=400, ok=False)
    if context.startswith("pro:"):
        # A professional signing in to the console with the organisation's provider.
        return await sign_in_with_identity(request, context, person)
    reception: Reception = request.app[RECEPTION]
    lang = reception.identification_lang(context) or lang
    protector = request.app[IDENTIFICATION].protector
    assert protector is not None
    identity = ClientIdentity(
        name=person.name,
        masked_code=person.masked_hetu,
        protected_code=protector.protect(person.hetu),
        birth_date=person.birth_date,
        municipality=person.municipality_code or person.municipality,
        postal_code=person.postal_code,
        fingerprint=protector.fingerprint(person.hetu),
    )
    binding = read_cookie(request, IDENTIFY_COOKIE) or ""
    try:
        code = reception.identification_done(context, binding, identity)
    except HubError as exc:
        log.info("identification not used: %s", exc.reason)
        key = "other_browser" if exc.code is ErrorCode.FORBIDDEN else "expired"
        response = _page(lang, _TEXTS[key], status=400, ok=False)
    else:
        # The code goes only to the page that opened this window, on this server's origin;
        # that page's websocket redeems it. Opened anywhere else, it identifies nobody.
        response = _page(lang, _TEXTS["done"], ok=True, code=code)
    delete_cookie(response, request, IDENTIFY_COOKIE)
    return response


_TEXTS = {
    "done": {
        "fi": "Tunnistautuminen onnistui. Palaa chattiin: voit sulkea tämän ikkunan.",
        "sv": "Identifieringen lyckades. Gå tillbaka till chatten: du kan stänga det här fönstret.",
        "en": "You are identified. Return to the chat: you can close this window.",
    },
    "expired": {
        "fi": "Tämä tunnistautumislinkki on jo käytetty tai vanhentunut. Palaa chattiin ja "
        "valitse Tunnistaudu uudelleen.",
        "sv": "Den här identifieringslänken har redan använts eller gått ut. Gå tillbaka till "
        "chatten och välj Identifiera dig på nytt.",
        "en": "This identification link has been used already or has expired. Return to the "
        "chat and choose Identify again.",
    },
    "other_browser": {
        "fi": "Tunnistautuminen aloitettiin toisessa selaimessa, joten sitä ei käytetty. "
        "Tunnistaudu samassa selaimessa, jossa chat on auki.",
        "sv": "Identifieringen påbörjades i en annan webbläsare och användes därför inte. "
        "Identifiera dig i samma webbläsare som chatten är öppen i.",
        "en": "This identification was begun in another browser, so it was not used. Identify "
        "in the same browser in which the chat is open.",
    },
    "alone": {
        "fi": "Tätä ikkunaa ei avattu chatista, joten tunnistautumista ei käytetty. Palaa "
        "chattiin ja valitse siellä Tunnistaudu.",
        "sv": "Det här fönstret öppnades inte från chatten, så identifieringen användes inte. "
        "Gå tillbaka till chatten och välj Identifiera dig där.",
        "en": "This window was not opened from the chat, so the identification was not used. "
        "Return to the chat and choose Identify there.",
    },
    "busy": {
        "fi": "Liian monta tunnistautumista on juuri nyt kesken. Yritä hetken kuluttua uudelleen.",
        "sv": "För många identifieringar pågår just nu. Försök igen om en stund.",
        "en": "Too many identifications are in progress right now. Please try again shortly.",
    },
}


def _page(
    lang: str,
    text: str | dict[str, str],
    *,
    status: int = 200,
    ok: bool = False,
    code: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    """The page the identification pop-up ends on. Its script (static, no inline code) tells
    the opener the result, with the one-time code when there is one."""
    message = text[lang] if isinstance(text, dict) else text
    alone = _TEXTS["alone"][lang] if code else None
    result = html.escape(json.dumps({"ok": ok, "code": code, "alone": alone}), quote=True)
    body = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="kanava-identification" content="{result}">
<title>Kanava</title><link rel="stylesheet" href="/static/style.css"></head>
<body class="identity-result"><main><h1>Kanava</h1>
<p role="status">{html.escape(message)}</p></main>
<script src="/static/identity_result.js"></script></body></html>"""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return web.Response(text=body, content_type="text/html", status=status, headers=headers)
