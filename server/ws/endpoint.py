"""The websocket endpoints ``/ws/client`` and ``/ws/pro``: the handshake's checks, then one
:class:`~server.ws.connection.Connection` per socket.

Before the upgrade: a socket limit per client address, the Origin allowlist (cross-site
websocket hijacking), and the subprotocol. The connections of a running application are kept
in ``app[CONNECTIONS]``, so that a shutdown (or a sign-out) can close them.
"""

from __future__ import annotations

import asyncio
import logging
import math

from aiohttp import hdrs, web

from protocol import CODECS, DEFAULT_SUBPROTOCOL, SUBPROTOCOLS, ErrorCode, Role
from protocol.errors import CloseCode
from server.core.clock import CLOCK
from server.guard.client_address import address_key, client_address
from server.guard.limits import LIMITS, LimitError
from server.hub.hub import HUB
from server.intake.reception import RECEPTION
from server.settings import SETTINGS
from server.ws.connection import Connection

__all__ = ["CONNECTIONS", "DRAINING", "client_websocket", "close_websockets", "pro_websocket"]

log = logging.getLogger("kanava.app")

CONNECTIONS = web.AppKey("connections", set[Connection])
#: Set when the application shuts down: /readyz says so, and no one new is sent here.
DRAINING = web.AppKey("draining", asyncio.Event)


async def close_websockets(app: web.Application) -> None:
    app[DRAINING].set()  # /readyz says "not ready" from now on: send nobody new here
    connections: set[Connection] = app[CONNECTIONS]
    for conn in list(connections):
        await conn.close(CloseCode.GOING_AWAY, "server restarting: reconnect shortly")


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
    address = address_key(client_address(request))
    try:
        hold = request.app[LIMITS].hold("sockets", address)
    except LimitError as exc:
        return web.json_response(
            {"error": {"code": exc.code.value, "reason": exc.reason}},
            status=429,
            headers={"Retry-After": str(math.ceil(exc.retry_after))},
        )
    try:
        return await _serve_websocket(request, role, address)
    finally:
        hold.release()


async def _serve_websocket(request: web.Request, role: Role, address: str) -> web.StreamResponse:
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
        address,
    )
    request.app[CONNECTIONS].add(conn)
    try:
        await conn.run()
    finally:
        request.app[CONNECTIONS].discard(conn)
        if not ws.closed:
            await ws.close()
    return ws
