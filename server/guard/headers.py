"""The security headers of every response, set in one place.

:func:`add_security_headers` hooks aiohttp's ``on_response_prepare``, which runs for every
response the application sends just before its headers go out: pages, static files, JSON
answers, redirects, errors raised by handlers, aiohttp's own 404, 405 and 500 answers, and
websocket handshakes. A middleware would miss the last two: the handshake is sent before the
handler returns, and an unhandled error is answered outside the middlewares.

- ``Content-Security-Policy``: scripts, styles and connections from this server only, no
  plugins; ``frame-ancestors`` lets the city's pages (setting ``widget_origins``) frame the
  chat (``/client``, ``/accessibility``) and nobody frame anything else (``X-Frame-Options:
  DENY`` too, for old browsers).
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` everywhere.
- ``Cache-Control``: the public pages are revalidated (``no-cache``), the widget's loader is
  cached five minutes, static assets keep aiohttp's validators; everything else (the APIs,
  the console, identification, websocket handshakes, errors) is ``no-store``.
- ``Strict-Transport-Security`` when the browser came over HTTPS (directly, or through a
  trusted proxy that says so).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server.guard.client_address import is_https
from server.settings import Settings

__all__ = ["FRAMED_PAGES", "PUBLIC_PAGES", "add_security_headers"]

# The policy of every response. ``frame-ancestors`` says who may show it in a frame.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors {ancestors}"
)
# The chat may be framed by the city's pages (the widget) and by the server's own demo.
FRAMED_PAGES = frozenset({"/client", "/accessibility"})
# Pages that are the same for everyone: a browser may keep them, but asks again each time.
PUBLIC_PAGES = frozenset({"/", "/client", "/accessibility", "/demo"})
HSTS = "max-age=31536000"

Hook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def add_security_headers(app: web.Application, settings: Settings) -> None:
    app.on_response_prepare.append(_hook(settings.widget_origins))


def _hook(widget_origins: tuple[str, ...]) -> Hook:
    framed = _CSP.format(ancestors=" ".join(("'self'", *widget_origins)))
    alone = _CSP.format(ancestors="'none'")

    async def set_headers(request: web.Request, response: web.StreamResponse) -> None:
        path = request.path
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        if path in FRAMED_PAGES:
            headers["Content-Security-Policy"] = framed
            headers.popall("X-Frame-Options", None)  # it cannot name the city's page
        else:
            headers["Content-Security-Policy"] = alone
            headers["X-Frame-Options"] = "DENY"
        cache = _cache_control(path, response.status)
        if cache is not None:
            headers["Cache-Control"] = cache
        if is_https(request):
            headers["Strict-Transport-Security"] = HSTS

    return set_headers


def _cache_control(path: str, status: int) -> str | None:
    if path.startswith("/static/") and status < 400:
        return None  # assets: aiohttp's Last-Modified and ETag let browsers keep them
    if path == "/widget.js" and status < 400:
        return "max-age=300"  # embedded on the city's pages: cached briefly
    if path in PUBLIC_PAGES and status < 400:
        return "no-cache"
    return "no-store"
