"""Health checks for a load balancer: ``/healthz`` (the process answers) and ``/readyz``
(started, not draining, and storage takes a write)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server.storage.base import STORAGE
from server.ws.endpoint import DRAINING

__all__ = ["healthz", "readyz"]

log = logging.getLogger("kanava.app")


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
