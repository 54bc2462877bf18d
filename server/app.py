"""The aiohttp application: websocket endpoints, sign-in, static pages, start-up and shutdown.

Resources live in ``cleanup_ctx`` generators (storage, then hub); state is kept in typed
``AppKey``\\s. On shutdown every tracked websocket is closed with ``GOING_AWAY`` (clients
reconnect and resume), then storage flushes what is pending.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import hdrs, web

import server
from protocol import CODECS, DEFAULT_SUBPROTOCOL, SUBPROTOCOLS, ErrorCode, Role
from protocol.errors import CloseCode

from .app_keys import CLOCK, CONNECTIONS, HUB, RECEPTION, SETTINGS, STORAGE
from .bot import bot_context
from .bus import LocalBus
from .client_address import PROXY_TRUST, ProxyTrust, address_key, client_address
from .clock import Clock, SystemClock
from .connection import Connection
from .console_web import add_console_routes, csrf_middleware
from .demo import seed_demo
from .hub import Hub
from .intake_web import add_intake_routes, intake_context
from .limits import LIMITS, LimitError, limits_from
from .security_headers import add_security_headers
from .settings import Settings
from .storage import Storage

__all__ = ["CLOCK", "CONNECTIONS", "HUB", "SETTINGS", "STORAGE", "build_app"]

log = logging.getLogger("kanava.app")

DRAINING = web.AppKey("draining", asyncio.Event)


# The pages, beside the server package: the checkout's static_client/, or the one installed
# with the wheel in the same site-packages. Found from the package, not from this module, so
# that it holds wherever this module moves.
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
    app.on_shutdown.append(_close_websockets)
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


async def _close_websockets(app: web.Application) -> None:
    app[DRAINING].set()  # /readyz says "not ready" from now on: send nobody new here
    connections: set[Connection] = app[CONNECTIONS]
    for conn in list(connections):
        await conn.close(CloseCode.GOING_AWAY, "server restarting: reconnect shortly")


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


def _json_error(status: int, code: ErrorCode, reason: str) -> web.Response:
    return web.json_response({"error": {"code": code.value, "reason": reason}}, status=status)


async def client_websocket(request: web.Request) -> web.StreamResponse:
    return await _websocket(request, Role.CLIENT)


async def pro_websocket(request: web.Request) -> web.StreamResponse:
    return await _websocket(request, Role.PROFESSIONAL)


async def _websocket(request: web.Request, role: Role) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        if not settings.allow_missing_origin:
            return _json_error(403, ErrorCode.FORBIDDEN, "an Origin header is required")
    elif origin not in settings.origins():
        # Cross-site websocket hijacking: a page from another site must not use our sockets.
        log.warning("refused websocket from origin %r", origin[:200])
        return _json_error(403, ErrorCode.FORBIDDEN, "this origin may not connect")
    offered = [
        p.strip()
        for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(",")
        if p.strip()
    ]
    if offered and not any(p in SUBPROTOCOLS for p in offered):
        return _json_error(
            400,
            ErrorCode.MALFORMED,
            f"unsupported subprotocol; offer one of: {', '.join(SUBPROTOCOLS)}",
        )
    try:
        hold = request.app[LIMITS].hold("sockets", address_key(client_address(request)))
    except LimitError as exc:
        return web.json_response(
            {"error": {"code": exc.code.value, "reason": exc.reason}},
            status=429,
            headers={"Retry-After": str(math.ceil(exc.retry_after))},
        )
    try:
        return await _serve_websocket(request, role)
    finally:
        hold.release()


async def _serve_websocket(request: web.Request, role: Role) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(
        protocols=SUBPROTOCOLS,
        compress=False,
        # aiohttp refuses a message of max_msg_size bytes or more: +1 lets exactly 64 KiB in.
        max_msg_size=settings.max_frame_bytes + 1,
        heartbeat=settings.heartbeat_seconds or None,
        decode_text=False,
    )
    await ws.prepare(request)
    codec = CODECS[ws.ws_protocol or DEFAULT_SUBPROTOCOL]
    conn = Connection(
        ws,
        request,
        codec,
        role,
        request.app[HUB],
        settings,
        request.app[CLOCK],
        request.app.get(RECEPTION) if role is Role.CLIENT else None,
        request.app[LIMITS],
    )
    request.app[CONNECTIONS].add(conn)
    try:
        await conn.run()
    finally:
        request.app[CONNECTIONS].discard(conn)
        if not ws.closed:
            await ws.close()
    return ws


async def healthz(request: web.Request) -> web.Response:
    """Live: the process answers (a load balancer restarts it when this fails)."""
    return web.json_response({"status": "ok"})


READY_TIMEOUT = 2.0


async def readyz(request: web.Request) -> web.Response:
    """Ready: started, not shutting down, and storage takes a write within two seconds."""
    if request.app[DRAINING].is_set():
        return web.json_response({"status": "draining"}, status=503)
    if STORAGE not in request.app:
        return web.json_response({"status": "starting"}, status=503)
    try:
        await asyncio.wait_for(request.app[STORAGE].check_writable(), READY_TIMEOUT)
    except Exception as exc:
        log.warning("not ready: storage write failed: %r", exc)
        return web.json_response({"status": "storage_unavailable"}, status=503)
    return web.json_response({"status": "ready"})
