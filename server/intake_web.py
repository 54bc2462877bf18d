"""The intake's HTTP side: service status, and the identification round trip.

- ``GET /api/service?lang=fi``: is the chat taking new chats now, the topics to choose from,
  and when closed, why and when it opens (with the bot and the 24/7 numbers).
- ``GET /identity/start?ticket=…&lang=fi``: redirects the browser to the identity provider.
  The ticket comes from the client's ``intake.step`` (``identify``), so a professional never
  sends anyone an identification link.
- ``GET /identity/callback``: the provider's answer. On success the client's intake goes on
  over its websocket, and this page tells the person to return to the chat (and closes itself
  when it was opened as a pop-up).
- ``GET /.well-known/jwks.json``: the public key of Kanava's ``private_key_jwt`` client
  authentication, for the provider.
"""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from .app_keys import CLOCK, HUB, IDENTIFICATION, RECEPTION, SETTINGS, STORAGE, Identification
from .areas import load_areas
from .console_web import sign_in_with_identity
from .conversations import AssignMode, Team
from .errors import HubError
from .hours import load_hours
from .identity import IdentificationError, OidcConfig, RelyingParty, load_or_create_private_jwk
from .intake import ClientIdentity, IntakeFlow, IntakeSession, client_language
from .personal_code import CodeProtector, load_or_create_key
from .questionnaire import load_topics
from .reception import Reception

__all__ = ["add_intake_routes", "intake_context"]

log = logging.getLogger("kanava.intake")

HELSINKI = ZoneInfo("Europe/Helsinki")
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
        if team_id not in hub.teams:
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
    app[RECEPTION] = Reception(hub, flow, app[STORAGE], clock, local_now)
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
    if wanted and wanted not in hub.teams and flow.areas.station(wanted) is not None:
        wanted = flow.areas.team_for(wanted)  # the widget may name a station, not its team
    queue_length = sum(
        len(queue)
        for team_id, queue in hub.queues.items()
        if (team_id == wanted if wanted else not hub.bot_team(team_id))
    )
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


async def identity_start(request: web.Request) -> web.StreamResponse:
    rp = request.app[IDENTIFICATION].rp
    lang = _lang(request)
    ticket = request.query.get("ticket", "")
    reception: Reception = request.app[RECEPTION]
    if rp is None or reception.session_for_ticket(ticket) is None:
        return _page(lang, _TEXTS["expired"], status=400)
    url, _state = rp.begin(context=ticket, lang=lang)
    raise web.HTTPFound(url)


async def identity_callback(request: web.Request) -> web.StreamResponse:
    rp = request.app[IDENTIFICATION].rp
    lang = _lang(request)
    if rp is None:
        raise web.HTTPNotFound()
    try:
        ticket, person = await rp.complete(request.query)
    except IdentificationError as exc:
        log.info("identification refused: %s (%s)", exc.code, exc.reason)
        return _page(lang, exc.user_message(lang), status=400, ok=False)
    if ticket.startswith("pro:"):
        # A professional signing in to the console with the organisation's provider.
        return await sign_in_with_identity(request, ticket, person)
    reception: Reception = request.app[RECEPTION]
    session = reception.session_for_ticket(ticket)
    if session is not None:
        lang = session.lang
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
    try:
        await reception.identified(ticket, identity)
    except HubError as exc:
        log.info("identification not used: %s", exc.reason)
        return _page(lang, _TEXTS["expired"], status=400, ok=False)
    return _page(lang, _TEXTS["done"], ok=True)


_TEXTS = {
    "done": {
        "fi": "Tunnistautuminen onnistui. Palaa chattiin: voit sulkea tämän ikkunan.",
        "sv": "Identifieringen lyckades. Gå tillbaka till chatten: du kan stänga det här fönstret.",
        "en": "You are identified. Return to the chat: you can close this window.",
    },
    "expired": {
        "fi": "Tämä tunnistautuminen ei ole enää voimassa. Aloita chat uudelleen.",
        "sv": "Den här identifieringen gäller inte längre. Börja chatten på nytt.",
        "en": "This identification is no longer valid. Please start the chat again.",
    },
}


def _page(
    lang: str, text: str | dict[str, str], *, status: int = 200, ok: bool = False
) -> web.Response:
    message = text[lang] if isinstance(text, dict) else text
    body = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kanava</title><link rel="stylesheet" href="/static/style.css"></head>
<body class="identity-result" data-ok="{"true" if ok else "false"}">
<main><p role="status">{html.escape(message)}</p></main>
<script src="/static/identity_result.js"></script></body></html>"""
    return web.Response(text=body, content_type="text/html", status=status)
