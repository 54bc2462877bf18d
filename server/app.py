"""The composition root: builds the aiohttp application from the concerns' parts.

Resources live in ``cleanup_ctx`` generators (storage, then hub, then the intake and the bot);
state is kept in typed ``AppKey``\\s, each defined in the module that owns it. On shutdown every
tracked websocket is closed with ``GOING_AWAY`` (clients reconnect and resume), then storage
flushes what is pending. The pages are served here, each by its own route.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

import server
from server.bot.responder import bot_context
from server.bus.local import LocalBus
from server.console.web import add_console_routes, csrf_middleware
from server.core.clock import CLOCK, Clock, SystemClock
from server.guard.client_address import PROXY_TRUST, ProxyTrust
from server.guard.headers import add_security_headers
from server.guard.limits import LIMITS, limits_from
from server.hub.hub import HUB, Hub
from server.intake.web import add_intake_routes, intake_context
from server.ops.demo import seed_demo
from server.ops.health import healthz, readyz
from server.settings import SETTINGS, Settings
from server.storage.base import STORAGE
from server.storage.sqlite.store import Storage
from server.ws.endpoint import (
    CONNECTIONS,
    DRAINING,
    client_websocket,
    close_websockets,
    pro_websocket,
)

__all__ = ["STATIC_ROOT", "build_app"]

log = logging.getLogger("kanava.app")

# The pages, beside the server package: the checkout's static_client/, or the one installed
# with the wheel in the same site-packages.
STATIC_ROOT = Path(server.__file__).resolve().parent.parent / "static_client"


def build_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    settings.check()
    app = web.Application(client_max_size=64 * 1024, middlewares=[csrf_middleware])
    app[SETTINGS] = settings
    app[PROXY_TRUST] = ProxyTrust(settings.trusted_proxies, settings.trusted_proxy_header)
    app[LIMITS] = limits_from(settings)
    app[CLOCK] = clock or SystemClock()
    app[CONNECTIONS] = set()
    app[DRAINING] = asyncio.Event()
    app.cleanup_ctx.append(_storage_and_hub)
    app.cleanup_ctx.append(intake_context)
    app.cleanup_ctx.append(bot_context)
    app.on_shutdown.append(close_websockets)
    app.router.add_get("/ws/client", client_websocket)
    app.router.add_get("/ws/pro", pro_websocket)
    add_console_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_intake_routes(app)
    static = settings.static_dir or STATIC_ROOT
    add_security_headers(app, settings)
    app.router.add_get("/", _page(static / "index.html"))
    app.router.add_get(
        "/client", _chat_page(static / "client.html", settings.origins() + settings.widget_origins)
    )
    app.router.add_get("/pro", _page(static / "pro.html"))
    app.router.add_get("/demo", _page(static / "demo.html"))
    app.router.add_get("/accessibility", _page(static / "accessibility.html"))
    app.router.add_get("/widget.js", _page(static / "widget.js"))
    # A page is served only by its own route, with that route's headers: never as a file.
    app.router.add_get(r"/static/{page:.*\.[hH][tT][mM][lL]?}", _not_a_file)
    app.router.add_static("/static/", static, show_index=False)
    return app


async def _storage_and_hub(app: web.Application) -> AsyncIterator[None]:
    settings, clock = app[SETTINGS], app[CLOCK]
    storage = await Storage.open(
        settings.database, clock, settings.sqlite_synchronous, settings.commit_interval_ms
    )
    if settings.demo:
        await seed_demo(storage, settings)
    hub = Hub(storage, LocalBus(), clock, settings)
    await hub.start()
    app[STORAGE], app[HUB] = storage, hub
    try:
        yield
    finally:
        await hub.stop()
        await storage.close()


def _chat_page(
    path: Path, frame_origins: tuple[str, ...]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The chat page, telling its widget bridge which framing pages it may talk to."""
    meta = '<meta name="kanava-widget-origins" content="{}">\n'.format(
        html.escape(" ".join(dict.fromkeys(frame_origins)), quote=True)
    )

    cache: dict[int, str] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        mtime = path.stat().st_mtime_ns  # the file may change while developing
        text = cache.get(mtime)
        if text is None:
            cache.clear()
            text = cache[mtime] = path.read_text(encoding="utf-8").replace(
                "</head>", meta + "</head>", 1
            )
        return web.Response(text=text, content_type="text/html")

    return handler


def _page(path: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path)

    return handler


async def _not_a_file(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()
