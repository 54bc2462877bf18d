"""The console as a browser uses it over HTTP, in tests: cookies for 127.0.0.1 and the
anti-forgery header."""

from __future__ import annotations

from typing import Any

import aiohttp
import websockets
from kanava_testing import PASSWORD, KanavaServer

from protocol import JSON

__all__ = ["Browser"]


class Browser:
    """An HTTP client that keeps cookies for 127.0.0.1, as a browser does, and sends the
    console's anti-forgery header."""

    def __init__(self, server: KanavaServer) -> None:
        self.server = server
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def start(self) -> dict[str, Any]:
        async with self.session.get(self.server.base + "/api/session") as response:
            body: dict[str, Any] = await response.json()
        self.csrf = body["csrf"]
        return body

    async def post(
        self, path: str, body: Any, *, csrf: str | None = None, **headers: str
    ) -> tuple[int, dict[str, Any]]:
        sent = {"X-CSRF-Token": self.csrf if csrf is None else csrf, **headers}
        async with self.session.post(self.server.base + path, json=body, headers=sent) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.server.base + path) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def sign_in(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        await self.start()
        status, body = await self.post("/api/login", {"username": username, "password": password})
        assert status == 200, body
        self.csrf = body["csrf"]
        return body

    def cookie(self, name: str) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None

    async def websocket(self) -> Any:
        token = self.cookie("kanava_session")
        return await websockets.connect(
            self.server.ws_base + "/ws/pro",
            subprotocols=[JSON.subprotocol],  # type: ignore[list-item]
            additional_headers={"Cookie": f"kanava_session={token}"},
        )

    async def close(self) -> None:
        await self.session.close()
