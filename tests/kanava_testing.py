"""Test helpers: a real Kanava server in a thread, and real websocket clients.

The server runs in its own thread and event loop on a loopback port, with its own SQLite file,
exactly as ``kanava serve`` runs it; tests talk to it only over sockets, with the
``websockets`` library (an independent websocket implementation) and aiohttp's HTTP client.

``Chat`` is the domain helper: ``await chat.open_client()``, ``await chat.open_pro("hoitaja1")``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import websockets
from aiohttp import web

from protocol import CODECS, JSON, Codec, Message, to_wire
from protocol.messages import (
    Auth,
    ConversationOpen,
    ConversationOpened,
    ConversationResume,
    ConversationView,
    Error,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    QueueTake,
    Welcome,
)
from server.app import build_app
from server.console.auth import hash_password
from server.core.clock import Clock
from server.core.model import AssignMode, Professional, Team
from server.guard.limits import NO_ADDRESS_LIMITS
from server.hub.hub import HUB, Hub
from server.logs import AccessLog
from server.settings import Settings
from server.storage.base import STORAGE
from server.storage.sqlite.store import Storage

T = TypeVar("T")
M = TypeVar("M", bound=Message)

PASSWORD = "kanava-demo"
TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def echo_cookies(response: aiohttp.ClientResponse) -> str:
    """A ``Cookie`` header sending back what ``response`` set, whatever the server named it
    (``__Host-kanava_login_csrf`` by default): a script's own cookie jar, also over http."""
    return "; ".join(f"{morsel.key}={morsel.value}" for morsel in response.cookies.values())


async def login_token(base: str, username: str, password: str = PASSWORD) -> str:
    """Sign in as a script does: the anti-forgery token first, then the session's token."""
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/api/session") as response:
            csrf = (await response.json())["csrf"]
            cookie = echo_cookies(response)
        async with session.post(
            base + "/api/login",
            json={"username": username, "password": password, "token": True},
            headers={"X-CSRF-Token": csrf, "Cookie": cookie},
        ) as response:
            body = await response.json()
            assert response.status == 200, body
            token: str = body["token"]
            return token


class KanavaServer:
    """A Kanava server on 127.0.0.1:<ephemeral port>, in a background thread."""

    def __init__(
        self, database: Path, *, tls: ssl.SSLContext | None = None, **settings: Any
    ) -> None:
        self.database = database
        self.tls = tls  # serve https with this context (see ``self_signed_tls``)
        # Known before start, so the server knows its own origin (and a test can register
        # its callback address with an identity provider first).
        self.port = settings.pop("port", None) or free_port()
        # A ManualClock lets a test move the server's time (expiries, idle closes).
        self.clock: Clock | None = settings.pop("clock", None)
        self.settings_overrides = settings
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    @property
    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "demo": True,
            "uvloop": False,
            "allowed_origins": ("http://127.0.0.1", "http://localhost"),
            # Plain http on loopback, as in development: cookies without Secure and __Host-
            # (tests of the production default turn it off, and may serve TLS).
            "dev_insecure_cookies": True,
            # Most tests are about the chat itself and open conversations directly; the
            # intake's own tests (tests/server/test_intake*.py) turn it on.
            "intake_required": False,
            # Every test client comes from 127.0.0.1: limits per address would count them all
            # as one stranger. tests/server/guard/test_address_limits.py turns them on.
            **NO_ADDRESS_LIMITS,
            **self.settings_overrides,
            "port": self.port,
            "database": self.database,
        }
        return Settings(**values)

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}"

    def start(self) -> KanavaServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_app())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="kanava-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    async def _start_app(self) -> None:
        settings = self.settings
        self.app = build_app(settings, self.clock)
        self._runner = web.AppRunner(self.app, shutdown_timeout=2, access_log_class=AccessLog)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.tls)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        runner = self._runner
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop = self._thread = self._runner = self.app = None

    def restart(self) -> None:
        """Stop and start again on the same port and database."""
        self.stop()
        self.start()

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30) -> T:
        """Run a coroutine in the server's loop from the test's thread (blocking)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    async def acall(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30) -> T:
        """Run a coroutine in the server's loop from an async test."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(fn(), self._loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    @property
    def hub(self) -> Hub:
        assert self.app is not None
        return self.app[HUB]

    @property
    def storage(self) -> Storage:
        assert self.app is not None
        return self.app[STORAGE]

    async def add_professional(
        self,
        username: str,
        teams: tuple[str, ...] = ("kallio",),
        capacity: int = 4,
        role: str = "nurse",
        oidc_subject: str | None = None,
        password_hash: str | None = None,
    ) -> Professional:
        pro = Professional(
            id="p_" + username,
            username=username,
            display_name=username.title(),
            title="doctor" if role == "doctor" else "nurse",
            capacity=capacity,
            teams=teams,
            password_hash=password_hash or _PASSWORD_HASH,
            role=role,
            oidc_subject=oidc_subject,
        )

        async def save() -> None:
            await self.storage.save_professional(pro)
            self.hub.add_professional(pro)

        await self.acall(save)
        return pro

    async def add_team(self, team_id: str, mode: AssignMode = AssignMode.PICK) -> None:
        team = Team(team_id, team_id.title(), mode)

        async def save() -> None:
            await self.storage.save_team(team)
            self.hub.add_team(team)

        await self.acall(save)


_PASSWORD_HASH = hash_password(PASSWORD)


def self_signed_tls(folder: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1 (clients of the
    tests skip verification: what is tested is that the connection is TLS)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "tls-cert.pem", folder / "tls-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


class Peer:
    """A websocket client speaking Kanava's protocol in one codec."""

    def __init__(self, ws: Any, codec: Codec) -> None:
        self.ws = ws
        self.codec = codec
        self.received: list[Message] = []  # everything received, in order
        self._unread: list[Message] = []
        self._ids = itertools.count(1)

    async def send(self, msg: Message) -> None:
        await self.send_wire(to_wire(msg))

    async def send_wire(self, data: dict[str, Any]) -> None:
        raw = self.codec.dumps(data)
        await self.ws.send(raw if self.codec.binary else raw.decode("utf-8"))

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = TIMEOUT) -> Message:
        if self._unread:
            return self._unread.pop(0)
        return await self._read(timeout)

    async def _read(self, timeout: float) -> Message:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        msg = self.codec.decode_outbound(raw, binary=isinstance(raw, bytes))
        self.received.append(msg)
        return msg

    async def expect(
        self,
        cls: type[M],
        where: Callable[[M], bool] | None = None,
        timeout: float = TIMEOUT,
    ) -> M:
        """The next message of type ``cls`` (matching ``where``); others stay unread."""
        for i, msg in enumerate(self._unread):
            if isinstance(msg, cls) and (where is None or where(msg)):
                del self._unread[i]
                return msg
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {cls.type} within {timeout}s; unread: {self._unread}")
            msg = await self._read(remaining)
            if isinstance(msg, cls) and (where is None or where(msg)):
                return msg
            self._unread.append(msg)

    async def expect_error(self, code: str, timeout: float = TIMEOUT) -> Error:
        err = await self.expect(Error, timeout=timeout)
        assert err.code == code, f"expected error {code}, got {err}"
        return err

    def drop_unread(self, where: Callable[[Message], bool]) -> None:
        """Forget the unread messages that ``where`` picks (superseded ones, such as the
        identify steps sent again with a fresh link while the person identified)."""
        self._unread = [msg for msg in self._unread if not where(msg)]

    async def nothing_more(self, wait: float = 0.2, cls: type[Message] = Message) -> None:
        """Assert that no new message of ``cls`` arrives within ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (remaining := deadline - loop.time()) > 0:
            try:
                msg = await self._read(remaining)
            except TimeoutError:
                return
            if isinstance(msg, cls):
                raise AssertionError(f"unexpected {msg}")
            self._unread.append(msg)

    def next_msg_id(self) -> str:
        return f"m{next(self._ids)}"

    async def close(self) -> None:
        await self.ws.close()


class ClientPeer(Peer):
    conversation_id: str
    token: str
    view: ConversationView

    async def say(self, text: str, msg_id: str | None = None) -> MessageAck:
        msg_id = msg_id or self.next_msg_id()
        await self.send(MessageSend(self.conversation_id, msg_id, text))
        return await self.expect(MessageAck, lambda a: a.msg_id == msg_id)


class ProPeer(Peer):
    welcome: Welcome
    token: str
    id: str

    async def say(self, conversation_id: str, text: str, msg_id: str | None = None) -> MessageAck:
        msg_id = msg_id or self.next_msg_id()
        await self.send(MessageSend(conversation_id, msg_id, text))
        return await self.expect(MessageAck, lambda a: a.msg_id == msg_id)

    async def history(self, conversation_id: str) -> list[Any]:
        """Collect message.history pages of a conversation until up to date."""
        messages: list[Any] = []
        while True:
            page = await self.expect(MessageHistory, lambda h: h.conversation_id == conversation_id)
            messages.extend(page.messages)
            if page.up_to_date:
                return messages


class Chat:
    """Opens clients and professionals against one server, in one codec."""

    def __init__(self, server: KanavaServer, codec: Codec = JSON) -> None:
        self.server = server
        self.codec = codec
        self.peers: list[Peer] = []

    async def connect(self, path: str, codec: Codec | None = None, **kwargs: Any) -> Any:
        codec = codec or self.codec
        kwargs.setdefault("subprotocols", [codec.subprotocol])
        kwargs.setdefault("open_timeout", TIMEOUT)
        # Unbounded: a test that leaves messages unread must still close promptly.
        kwargs.setdefault("max_queue", None)
        return await websockets.connect(self.server.ws_base + path, **kwargs)

    async def raw_client(self, **kwargs: Any) -> ClientPeer:
        """A connected client that has not opened or resumed anything yet."""
        peer = ClientPeer(await self.connect("/ws/client", **kwargs), self.codec)
        self.peers.append(peer)
        return peer

    async def raw_pro(self) -> ProPeer:
        """A connected professional socket that has not authenticated yet."""
        peer = ProPeer(await self.connect("/ws/pro"), self.codec)
        self.peers.append(peer)
        return peer

    async def open_client(
        self, name: str | None = "Matti Meikäläinen", team: str | None = None, **fields: Any
    ) -> ClientPeer:
        peer = ClientPeer(await self.connect("/ws/client"), self.codec)
        self.peers.append(peer)
        await peer.send(ConversationOpen(client_name=name, team=team, **fields))
        opened = await peer.expect(ConversationOpened)
        peer.conversation_id = opened.conversation.conversation_id
        peer.token = opened.token
        peer.view = opened.conversation
        return peer

    async def resume_client(self, token: str, last_seq: int = 0) -> ClientPeer:
        peer = ClientPeer(await self.connect("/ws/client"), self.codec)
        self.peers.append(peer)
        peer.token = token
        await peer.send(ConversationResume(token=token, last_seq=last_seq))
        return peer

    async def login(self, username: str, password: str = PASSWORD) -> str:
        return await login_token(self.server.base, username, password)

    async def open_pro(
        self, username: str, cursors: dict[str, int] | None = None, token: str | None = None
    ) -> ProPeer:
        token = token or await self.login(username)
        peer = ProPeer(await self.connect("/ws/pro"), self.codec)
        self.peers.append(peer)
        peer.token = token
        await peer.send(Auth(token=token, cursors=cursors))
        peer.welcome = await peer.expect(Welcome)
        peer.id = peer.welcome.professional.id
        return peer

    async def open_chat_with(
        self, username: str, name: str | None = "Matti Meikäläinen"
    ) -> tuple[ClientPeer, ProPeer]:
        """A client whose conversation ``username`` has taken, history already received."""
        client = await self.open_client(name)
        pro = await self.open_pro(username)
        await pro.send(QueueTake(conversation_id=client.conversation_id))
        await pro.history(client.conversation_id)
        return client, pro

    async def close_all(self) -> None:
        for peer in self.peers:
            try:
                await peer.close()
            except Exception:
                pass


def texts(messages: list[Any]) -> list[str]:
    return [m.message.text if isinstance(m, MessageNew) else m.text for m in messages]


__all__ = [
    "CODECS",
    "Chat",
    "ClientPeer",
    "KanavaServer",
    "PASSWORD",
    "Peer",
    "ProPeer",
    "texts",
]


def closed_hours_file(folder: Path) -> Path:
    """The shipped hours file with every weekday closed: the chat takes no new chats."""
    shipped = Path(__file__).resolve().parent.parent / "server" / "config" / "hours.toml"
    source = shipped.read_text(encoding="utf-8")
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    weekly = "[weekly]\n" + "".join(f'{d} = "closed"\n' for d in days) + "\n"
    start = source.index("\n[weekly]\n") + 1
    end = source.index("\n[", start + 1)
    path = folder / "closed-hours.toml"
    path.write_text(source[:start] + weekly + source[end + 1 :], encoding="utf-8")
    return path


def assigned_to(pro_id: str):  # type: ignore[no-untyped-def]
    return lambda m: (
        m.conversation.professional is not None and (m.conversation.professional.id == pro_id)
    )
