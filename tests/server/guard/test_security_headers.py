"""Every response carries its security headers: each route of the app's router, errors, static
files, websocket handshakes and the identification pages — over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import websockets
from aiohttp import web
from kanava_testing import PASSWORD, KanavaServer, self_signed_tls

from protocol import JSON

CITY = "https://www.hel.example"
FRAMED = {"/client", "/accessibility"}
PUBLIC = {"/", "/client", "/accessibility", "/demo"}
# A concrete value for each placeholder of a dynamic route.
SAMPLES = {"cid": "c_nothing", "record_id": "r_nothing", "page": "client.html"}


def concrete_paths(resource: web.AbstractResource) -> list[str]:
    info = resource.get_info()
    if "path" in info:
        return [info["path"]]
    if "formatter" in info:
        return [info["formatter"].format(**SAMPLES)]
    # The static files: an asset, and a page that must not be served from there.
    prefix = info["prefix"].rstrip("/")
    return [prefix + "/style.css", prefix + "/client.html"]


def check(path: str, status: int, headers: Any) -> list[str]:
    """What is wrong with one response's headers (nothing, when all is well)."""
    problems = []
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("nosniff")
    if headers.get("Referrer-Policy") != "no-referrer":
        problems.append("Referrer-Policy")
    csp = headers.get("Content-Security-Policy", "")
    if "script-src 'self'" not in csp or "object-src 'none'" not in csp:
        problems.append(f"CSP {csp!r}")
    if path in FRAMED:
        if not csp.endswith(f"frame-ancestors 'self' {CITY}") or "X-Frame-Options" in headers:
            problems.append("framing by the city's page")
    elif not csp.endswith("frame-ancestors 'none'") or headers.get("X-Frame-Options") != "DENY":
        problems.append("framed by nobody")
    cache = headers.get("Cache-Control", "")
    if path.startswith("/static/") and status == 200:
        if "no-store" in cache:
            problems.append("a static asset may be cached")
    elif path == "/widget.js":
        if cache != "max-age=300":
            problems.append(f"widget.js cached briefly, not {cache!r}")
    elif path in PUBLIC and status == 200:
        if cache != "no-cache":
            problems.append(f"public page revalidated, not {cache!r}")
    elif cache != "no-store":
        problems.append(f"no-store, not {cache!r}")
    if "Strict-Transport-Security" in headers:
        problems.append("HSTS over plain http")
    return [f"{path} ({status}): {p}" for p in problems]


async def signed_in(session: aiohttp.ClientSession, base: str) -> str:
    """Sign in with the session's cookies, as the console does; the session's CSRF token."""
    async with session.get(base + "/api/session") as response:
        csrf = (await response.json())["csrf"]
    async with session.post(
        base + "/api/login",
        json={"username": "hoitaja1", "password": PASSWORD},
        headers={"X-CSRF-Token": csrf},
    ) as response:
        assert response.status == 200
        token: str = (await response.json())["csrf"]
        return token


async def test_every_route_of_the_router_answers_with_its_security_headers(
    server_factory: Any,
) -> None:
    server: KanavaServer = server_factory(widget_origins=(CITY,))
    assert server.app is not None
    walked: list[str] = []
    problems: list[str] = []
    statuses: dict[str, int] = {}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        csrf = await signed_in(session, server.base)
        # Signing out last, so that the console's own answers are those of a signed-in nurse.
        routes = sorted(
            server.app.router.routes(), key=lambda r: r.resource.canonical == "/api/logout"
        )
        for route in routes:
            for path in concrete_paths(route.resource):
                async with session.request(
                    route.method,
                    server.base + path,
                    json={} if route.method == "POST" else None,
                    headers={"X-CSRF-Token": csrf},
                    allow_redirects=False,
                ) as response:
                    await response.read()
                    walked.append(f"{route.method} {path}")
                    statuses[f"{route.method} {path}"] = response.status
                    problems += check(path, response.status, response.headers)
    assert len(walked) >= 40, walked
    # The walk reached the handlers (a signed-in console, pages, errors of each kind).
    assert statuses["GET /api/console"] == 200 and statuses["GET /pro"] == 200
    assert statuses["GET /static/style.css"] == 200
    assert statuses["GET /api/records/r_nothing.txt"] == 404
    assert statuses["POST /api/logout"] == 200
    assert not problems, "\n".join(problems)


async def test_errors_handshakes_and_identification_pages_carry_them_too(
    server: KanavaServer,
) -> None:
    problems: list[str] = []
    async with aiohttp.ClientSession() as session:
        for method, path, status in [
            ("GET", "/nothing-here", 404),
            ("POST", "/healthz", 405),
            ("GET", "/identity/start?ticket=forged", 400),  # the identification page
            ("GET", "/identity/callback", 404),
            ("GET", "/pro/oidc/start", 303),
            ("GET", "/ws/client", 400),  # not an upgrade
        ]:
            async with session.request(method, server.base + path, allow_redirects=False) as r:
                body = await r.text()
                assert r.status == status, (path, r.status)
                problems += check(path.split("?")[0], r.status, r.headers)
            if path.startswith("/identity/start"):
                # The page runs no inline script (the policy would block it): its script is a file.
                assert '<script src="/static/identity_result.js">' in body
                assert "<script>" not in body
        async with session.get(
            server.ws_base + "/ws/client", headers={"Origin": "https://evil.example"}
        ) as refused:
            assert refused.status == 403
            problems += check("/ws/client", refused.status, refused.headers)
    async with websockets.connect(
        server.ws_base + "/ws/client",
        subprotocols=[JSON.subprotocol],  # type: ignore[list-item]
    ) as ws:
        assert ws.response is not None
        problems += check("/ws/client", ws.response.status_code, ws.response.headers)
    assert not problems, "\n".join(problems)


async def test_pages_are_not_served_as_static_files(server: KanavaServer) -> None:
    """A page under /static/ would come without its route's headers (and the chat page
    without its widget origins): only the routes serve pages."""
    async with aiohttp.ClientSession() as session:
        for path in (
            "/static/client.html",
            "/static/pro.html",
            "/static/accessibility.html",
            "/static/PRO.HTML",
            "/static/pro%2Ehtml",
            "/static/./pro.html",
        ):
            async with session.get(server.base + path) as response:
                text = await response.text()
                assert response.status == 404, path
                assert "<html" not in text.lower(), path
        async with session.get(server.base + "/static/pro.js") as response:
            assert response.status == 200  # the assets still are


async def test_hsts_when_the_browser_came_over_https(server_factory: Any, tmp_path: Path) -> None:
    """Directly over TLS, or through a trusted proxy that says so; never on a stranger's word."""
    tls: KanavaServer = server_factory(tls=self_signed_tls(tmp_path))
    proxied: KanavaServer = server_factory(trusted_proxies=("127.0.0.1",))
    forwarded: KanavaServer = server_factory(
        trusted_proxies=("127.0.0.1",), trusted_proxy_header="forwarded"
    )
    elsewhere: KanavaServer = server_factory(trusted_proxies=("192.0.2.1",))

    async def hsts(server: KanavaServer, path: str, **headers: str) -> str | None:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.base + path, headers=headers, ssl=False) as response:
                value: str | None = response.headers.get("Strict-Transport-Security")
                return value

    assert tls.base.startswith("https://")
    for path in ("/healthz", "/pro", "/static/style.css", "/nothing"):
        assert await hsts(tls, path) == "max-age=31536000", path
    assert await hsts(proxied, "/pro", **{"X-Forwarded-Proto": "https"}) == "max-age=31536000"
    assert await hsts(proxied, "/pro", **{"X-Forwarded-Proto": "http"}) is None
    assert await hsts(proxied, "/pro") is None
    assert await hsts(forwarded, "/pro", Forwarded="for=203.0.113.9;proto=https") is not None
    # The forwarded server reads Forwarded only; a stranger's header is not believed.
    assert await hsts(forwarded, "/pro", **{"X-Forwarded-Proto": "https"}) is None
    assert await hsts(elsewhere, "/pro", **{"X-Forwarded-Proto": "https"}) is None
