"""Test helpers for identification: the development identity provider, a browser, a proxy.

:class:`DevIdp` runs ``scripts/dev_idp/idp.mjs`` (panva's oidc-provider under Node.js) on a
loopback port with clients whose keys the tests generate, exactly as ``scripts/dev_idp`` runs
for development. One client publishes its public key over HTTP (``jwks_uri``) from a small
aiohttp site that uses :meth:`RelyingParty.jwks_handler`; the others register it inline.

:func:`login` plays the resident's browser: it follows the authorization URL, presses a
person's button (or Cancel) on the provider's page and stops at the redirect to Kanava's
``redirect_uri``, returning its query, which a test hands to ``RelyingParty.complete``.

:class:`TamperingProxy` stands between the relying party and the provider's token and key
endpoints, as a network attacker or a mix-up would, so tests can swap or re-sign real tokens.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import aiohttp
from aiohttp import web
from joserfc import jws, jwt
from joserfc.jwk import RSAKey

from server.intake.oidc import OidcConfig, RelyingParty, generate_private_jwk

ROOT = Path(__file__).resolve().parent.parent
IDP_DIR = ROOT / "scripts" / "dev_idp"
STARTUP_TIMEOUT = 30.0
#: The assurance level the development provider states for every login.
ACR = "http://ftn.ficora.fi/2017/loa2"


class NodeMissing(RuntimeError):
    """Node.js is not installed, so the development provider cannot run."""


@dataclass(frozen=True)
class Client:
    client_id: str
    private_jwk: dict[str, Any] = field(repr=False)


@dataclass
class DevIdp:
    """A running development provider and the clients registered with it."""

    issuer: str
    redirect_uri: str
    clients: dict[str, Client]
    process: subprocess.Popen[str]
    output: list[str]

    def config(self, client: str = "main", **overrides: Any) -> OidcConfig:
        """A relying-party configuration for one of the registered clients."""
        registered = self.clients[client]
        config = OidcConfig(
            issuer=self.issuer,
            client_id=registered.client_id,
            redirect_uri=self.redirect_uri,
            private_jwk=registered.private_jwk,
            scopes=("openid", "profile", "address"),
            acr_values=(ACR,),
            allow_test_codes=True,
        )
        return replace(config, **overrides)


def ensure_node_modules() -> None:
    if (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise NodeMissing("npm is missing, so scripts/dev_idp's packages cannot be installed")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=IDP_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )


class _JwksSite:
    """Kanava's side of ``jwks_uri``: an aiohttp app in its own thread and event loop."""

    def __init__(self) -> None:
        self.port = 0
        self._jwk: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self, private_jwk: dict[str, Any]) -> _JwksSite:
        self._jwk = private_jwk
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        # Built here only to serve its public key; a relying party needs no discovery for that.
        rp = RelyingParty(
            OidcConfig(
                issuer="http://unused.invalid",
                client_id="kanava-jwks-uri",
                redirect_uri="http://unused.invalid/cb",
                private_jwk=self._jwk,
            )
        )
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", rp.jwks_handler)
        app.router.add_get("/identity/callback", _callback_page)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def _callback_page(request: web.Request) -> web.Response:
    return web.Response(text="Kanava would complete the identification here.")


@dataclass
class _Started:
    idp: DevIdp
    site: _JwksSite
    provider: ProviderProcess


def start_dev_idp(workdir: Path) -> _Started:
    """Generate client keys, start the provider with them and the key site, wait for ``ready``."""
    if shutil.which("node") is None:
        raise NodeMissing("Node.js is not installed: the development identity provider needs it")
    clients = {
        "main": Client("kanava-test", generate_private_jwk("ES256")),
        "jwks_uri": Client("kanava-jwks-uri", generate_private_jwk("RS256")),
        "short_lived": Client("kanava-short-lived", generate_private_jwk("ES256")),
        "other": Client("kanava-other", generate_private_jwk("ES256")),
    }
    site = _JwksSite().start(clients["jwks_uri"].private_jwk)
    base = f"http://127.0.0.1:{site.port}"
    redirect_uri = f"{base}/identity/callback"

    def inline(client: Client, **extra: Any) -> dict[str, Any]:
        public = {
            k: v
            for k, v in client.private_jwk.items()
            if k not in {"d", "p", "q", "dp", "dq", "qi"}
        }
        return {
            "client_id": client.client_id,
            "redirect_uris": [redirect_uri],
            "jwks": {"keys": [public]},
            **extra,
        }

    registrations = [
        inline(clients["main"]),
        {
            "client_id": clients["jwks_uri"].client_id,
            "redirect_uris": [redirect_uri],
            "jwks_uri": f"{base}/.well-known/jwks.json",
        },
        inline(clients["short_lived"], id_token_ttl=1),
        inline(clients["other"]),
    ]
    try:
        provider = launch_provider(registrations, workdir)
    except BaseException:
        site.stop()
        raise
    idp = DevIdp(provider.issuer, redirect_uri, clients, provider.process, provider.output)
    return _Started(idp, site, provider)


def stop_dev_idp(started: _Started) -> None:
    started.provider.stop()
    started.site.stop()


@dataclass
class ProviderProcess:
    """``scripts/dev_idp/idp.mjs`` running with a given list of client registrations."""

    process: subprocess.Popen[str]
    issuer: str
    output: list[str]
    reader: threading.Thread

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def launch_provider(registrations: list[dict[str, Any]], workdir: Path) -> ProviderProcess:
    """Write the clients file, start the provider on a free port, wait for ``ready``.

    A start that says nothing within ``STARTUP_TIMEOUT`` is tried once more: on a loaded
    machine Node.js now and then stalls before it listens, and a second process does not.
    """
    node = shutil.which("node")
    if node is None:
        raise NodeMissing("Node.js is not installed: the development identity provider needs it")
    ensure_node_modules()
    clients_file = workdir / "clients.json"
    clients_file.write_text(json.dumps(registrations, indent=2))
    try:
        return _start_provider(node, clients_file)
    except ProviderStalled:
        return _start_provider(node, clients_file)


class ProviderStalled(RuntimeError):
    """The provider process did not say ``ready`` in time."""


def _start_provider(node: str, clients_file: Path) -> ProviderProcess:
    process = subprocess.Popen(
        [node, str(IDP_DIR / "idp.mjs"), "--port", "0", "--clients", str(clients_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    output: list[str] = []
    ready = threading.Event()
    issuer: list[str] = []

    def drain() -> None:
        # Read everything the provider prints, always: a full pipe would stall it.
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith("ready ") and not ready.is_set():
                issuer.append(line.split(" ", 1)[1].strip())
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    provider = ProviderProcess(process, "", output, reader)
    if not ready.wait(STARTUP_TIMEOUT) or not issuer:
        provider.stop()
        raise ProviderStalled("the development provider did not start:\n" + "\n".join(output))
    provider.issuer = issuer[0]
    return provider


def kanava_registration(workdir: Path, client_id: str, base: str) -> tuple[dict[str, Any], Path]:
    """A Kanava server's client at the provider: its registration and its private key file.

    ``base`` is the server's ``http://host:port``; pass the file as ``oidc_key_file``.
    """
    from server.intake.personal_code import write_secret_file

    key = generate_private_jwk("ES256")
    key_file = workdir / f"{client_id}-key.json"
    write_secret_file(key_file, json.dumps(key).encode())
    registration = {
        "client_id": client_id,
        "redirect_uris": [f"{base}/identity/callback"],
        "jwks": {"keys": [{k: v for k, v in key.items() if k != "d"}]},
    }
    return registration, key_file


@contextmanager
def provider_for_kanava(workdir: Path, client_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The provider, running with one Kanava server as its client (skips without Node.js).

    Yields the port the Kanava server must listen on (its ``redirect_uri`` is registered)
    and the server's identification settings.
    """
    import pytest
    from kanava_testing import free_port

    port = free_port()
    registration, key_file = kanava_registration(workdir, client_id, f"http://127.0.0.1:{port}")
    try:
        provider = launch_provider([registration], workdir)
    except NodeMissing as exc:
        pytest.skip(str(exc))
    try:
        yield (
            port,
            {
                "oidc_issuer": provider.issuer,
                "oidc_client_id": client_id,
                "oidc_key_file": key_file,
                "oidc_allow_test_codes": True,
                "identity_key_file": workdir / "identity.key",
            },
        )
    finally:
        provider.stop()


def dev_idp_fixture(tmp_path_factory: Any) -> Iterator[DevIdp]:
    """Body of the session fixture: skips (only) when Node.js is missing."""
    import pytest

    try:
        started = start_dev_idp(tmp_path_factory.mktemp("dev_idp"))
    except NodeMissing as exc:
        pytest.skip(f"identification tests need the development provider: {exc}")
    try:
        yield started.idp
    finally:
        stop_dev_idp(started)


# ---------------------------------------------------------------------- the browser


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(a.get("action", ""), a.get("method", "get").lower()))
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


class LoginPageError(AssertionError):
    """The provider's page did not offer what the test wanted to press."""


async def login(
    authorization_url: str, redirect_uri: str, *, person: str | None = "aino"
) -> dict[str, str]:
    """Go through the provider as a resident; ``person=None`` presses Cancel.

    Returns the query of the provider's redirect to ``redirect_uri`` (code or error, state, iss).
    """
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1, as a browser keeps them
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        url, method, data = authorization_url, "GET", None
        for _ in range(10):
            async with browser.request(method, url, data=data, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                body = await resp.text()
                if location is not None:
                    url, method, data = urljoin(url, location), "GET", None
                    if url.startswith(redirect_uri):
                        return dict(parse_qsl(urlsplit(url).query))
                    continue
                if resp.status != 200:
                    raise LoginPageError(f"provider answered {resp.status}: {body[:500]}")
                form = _choose(body, person)
                url = urljoin(str(resp.url), form.action)
                method = form.method.upper()
                data = dict(form.fields)
                data.update(form.buttons[:1])
        raise LoginPageError("too many steps without reaching the redirect URI")


def _choose(page: str, person: str | None) -> _Form:
    if "test service, fictitious persons only" not in page:
        raise LoginPageError("the login page does not say it is a test service")
    parser = _FormParser()
    parser.feed(page)
    for form in parser.forms:
        if person is None and form.action.endswith("/abort"):
            return form
        if person is not None and form.fields.get("person") == person:
            return form
    raise LoginPageError(f"no button for {person or 'Cancel'} on the login page")


# ---------------------------------------------------------------------- the attacker


class TamperingProxy:
    """A loopback HTTP proxy in front of the provider's back-channel endpoints.

    Its discovery document sends the relying party's token and key requests through it (the
    browser still talks to the provider). ``tamper`` rewrites the ID token in token responses;
    ``impersonate`` also claims the proxy is the issuer, like a mix-up attacker would.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.tamper: Callable[[str], str] | None = None
        self.impersonate = False
        self.id_tokens: list[str] = []
        self.requests: list[str] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> TamperingProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        self.requests.append(request.path)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in {"content-type", "authorization"}
        }
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read(),
            headers=headers,
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            status, content_type = upstream.status, upstream.content_type
        if request.path == "/.well-known/openid-configuration" and status == 200:
            body = json.dumps(self._rewrite_discovery(json.loads(body))).encode()
        elif request.path == "/token" and status == 200:
            body = json.dumps(self._rewrite_tokens(json.loads(body))).encode()
        return web.Response(status=status, body=body, content_type=content_type)

    def _rewrite_discovery(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc["token_endpoint"] = f"{self.url}/token"
        doc["jwks_uri"] = f"{self.url}/jwks"
        if self.impersonate:
            doc["issuer"] = self.url
            # A mix-up attacker would not promise the RFC 9207 iss parameter it cannot forge.
            doc.pop("authorization_response_iss_parameter_supported", None)
        return doc

    def _rewrite_tokens(self, tokens: dict[str, Any]) -> dict[str, Any]:
        id_token = tokens.get("id_token")
        if isinstance(id_token, str):
            self.id_tokens.append(id_token)
            if self.tamper is not None:
                tokens["id_token"] = self.tamper(id_token)
        return tokens


def resign(token: str, key: RSAKey, *, kid: str | None = None) -> str:
    """``token``'s header and claims signed again with ``key``: a forgery, kid kept or set."""
    compact = jws.extract_compact(token.encode("ascii"))
    header = dict(compact.headers())
    if kid is not None:
        header["kid"] = kid
    claims = json.loads(compact.payload)
    return jwt.encode(
        {"alg": "RS256", **{k: header[k] for k in ("kid", "typ") if k in header}}, claims, key
    )


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (for looking, never for trusting)."""
    claims: dict[str, Any] = json.loads(jws.extract_compact(token.encode("ascii")).payload)
    return claims


class SkewClock:
    """Wall-clock time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
