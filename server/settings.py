"""Settings of a Kanava server.

Every setting has a default that suits the embedded single-machine setup, can be given as an
environment variable ``KANAVA_<NAME>`` (upper case), and the most common ones as options of
``kanava serve``. ``docs/settings.md`` documents each one; a test checks it stays complete.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

from aiohttp import web

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database: Path = Path("var/kanava.sqlite3")
    # "normal" loses nothing when only the process crashes; "full" also survives power loss.
    sqlite_synchronous: str = "full"
    # Under load, at least this long between write transactions, so each carries more.
    commit_interval_ms: float = 3.0
    demo: bool = False
    # Empty: the server's own address (and localhost on the same port when on loopback).
    allowed_origins: tuple[str, ...] = ()
    allow_missing_origin: bool = True
    # Proxies (addresses or networks, e.g. 127.0.0.1 or 10.0.0.0/8) whose forwarding header
    # names the client: limits per address then count people, not the proxy. Empty: the
    # socket's peer is the client, and no forwarding header is believed.
    trusted_proxies: tuple[str, ...] = ()
    # The header those proxies write: "x-forwarded-for" or "forwarded" (RFC 7239).
    trusted_proxy_header: str = "x-forwarded-for"
    # Origins of the city's pages that embed the chat widget: they may show the chat in a
    # frame (Content-Security-Policy frame-ancestors). The server's own pages always may.
    widget_origins: tuple[str, ...] = ()
    max_frame_bytes: int = 64 * 1024
    heartbeat_seconds: float = 20.0
    client_rate_per_second: float = 5.0
    client_rate_burst: int = 30
    pro_rate_per_second: float = 20.0
    pro_rate_burst: int = 100
    send_buffer_bytes: int = 1024 * 1024
    # Limits per client address (the address behind trusted_proxies; IPv6 per /64), sized so
    # that a school or library network behind one address still works. A rate is a burst at
    # once, then so many an hour; 0 turns a limit off. docs/settings.md explains each.
    max_sockets_per_address: int = 200
    bot_chats_burst: int = 30
    bot_chats_per_hour: int = 120
    queued_chats_burst: int = 5
    queued_chats_per_hour: int = 20
    max_waiting_per_address: int = 5
    intakes_burst: int = 30
    intakes_per_hour: int = 240
    max_intakes_per_address: int = 50
    max_identifications_per_address: int = 10
    sign_in_starts_burst: int = 20
    sign_in_starts_per_hour: int = 120
    # Per conversation, however many sockets a client opens: a burst, then so many a minute.
    client_messages_burst: int = 20
    client_messages_per_minute: float = 12.0
    # Whole-server bounds of what is kept in memory; a full table refuses new starts.
    max_intake_sessions: int = 20_000
    max_pending_identifications: int = 10_000
    # Chats with the bot whose client has been away this long are closed, with a reason the
    # client sees if it comes back (0: never); queued chats after idle_close_queued_minutes.
    idle_close_minutes: float = 30.0
    idle_close_queued_minutes: float = 240.0
    # Sockets of clients on one conversation at once (a tab or two; 0: no limit).
    max_sockets_per_conversation: int = 5
    grace_seconds: float = 60.0
    default_capacity: int = 4
    session_hours: float = 12.0
    # Sign-in is slowed, never locked: failures count per (username, client address) and are
    # forgotten login_window_minutes after the last one. The first login_free_failures of a
    # pair cost nothing; then each attempt of that pair waits login_delay_seconds, doubling
    # per failure up to login_max_delay_seconds, before its password is checked.
    login_free_failures: int = 3
    login_delay_seconds: float = 0.5
    login_max_delay_seconds: float = 4.0
    # Failures of one username from all addresses, or of one address for all usernames: past
    # ten times login_free_failures they add a delay of at most this much.
    login_shared_max_delay_seconds: float = 1.0
    login_window_minutes: float = 15.0
    # Password checks (Argon2, a CPU core each) at once; more wait, served in turn per
    # address. 0: one per CPU core.
    login_checks_at_once: int = 0
    # Password checks from one address waiting for their turn at once; more are refused
    # (HTTP 429). Sized for a station's shift signing in behind one NAT. 0: no cap.
    login_checks_waiting_per_address: int = 20
    # A browser that signed in gets a device cookie for that username, valid this many days
    # (renewed at each sign-in): its attempts are not slowed, queued or refused for what
    # others at the same address sent, until it fails login_free_failures times itself.
    # 0: no device cookies.
    login_device_days: float = 90.0
    # The key of the device cookies (created with mode 0600 if missing). None: the file
    # device-cookie.key in the database's folder.
    device_key_file: Path | None = None
    # The console's cookies are Secure and named __Host-…, so they travel over HTTPS only and
    # no other site or plain-http page can plant them. For development on one's own machine
    # over plain http only: true drops both. Allowed only while host is a loopback address.
    dev_insecure_cookies: bool = False
    # Canned responses of the console (None: the shipped server/config/canned.toml).
    canned_file: Path | None = None
    closed_token_hours: float = 24.0
    # Retention (``kanava retention``): chats of clients who did not identify (and chats
    # with the bot only) are deleted this many days after they ended, or, never ended, after
    # their last activity; so are intakes that never became a chat. Identified clients'
    # chats after retention_identified_days, 0 meaning never (the patient-record rules
    # decide, and a chat with a record entry is always kept). Expired sessions go at once.
    retention_anonymous_days: int = 30
    retention_identified_days: int = 0
    history_page: int = 100
    static_dir: Path | None = None
    log_level: str = "info"
    # "json": one JSON object per line, with ids (for log collectors); "text": for people.
    log_format: str = "json"
    uvloop: bool = True
    # The pre-chat intake. When required, conversation.open is refused: chats open only
    # through intake.start (questions, triage, identification, station).
    intake_required: bool = True
    # Folders and files of the intake's data; empty: the ones shipped in server/config.
    questionnaires_dir: Path | None = None
    # The advice bot's knowledge base (None: the shipped one); bot = false turns the bot off.
    knowledge_dir: Path | None = None
    bot: bool = True
    areas_file: Path | None = None
    hours_file: Path | None = None
    # For trying Kanava outside service hours: never "closed".
    always_open: bool = False
    # Strong identification (OpenID Connect). Empty issuer: no identification step, and the
    # client only chooses its station (for trying Kanava and for load tests; a deployment
    # sets its broker here). scripts/serve starts the development provider and sets it.
    oidc_issuer: str = ""
    oidc_client_id: str = "kanava-dev"
    # Empty: http://<host>:<port>/identity/callback
    oidc_redirect_uri: str = ""
    oidc_scopes: tuple[str, ...] = ("openid", "profile", "address")
    oidc_key_file: Path = Path("var/oidc-client-key.json")
    # Accept the official fictitious identity codes (individual number 900-999): test only.
    oidc_allow_test_codes: bool = False
    # The key that encrypts personal identity codes at rest.
    identity_key_file: Path = Path("var/identity-code.key")

    def check(self) -> None:
        """Raises ValueError, with what to change, for settings that must not go together."""
        if self.dev_insecure_cookies and not self.listens_on_loopback():
            raise ValueError(
                f"dev_insecure_cookies is for development on one's own machine: it sends the "
                f"console's session over plain http, so it is refused while the server listens "
                f"on {self.host!r}. Listen on 127.0.0.1 (or ::1, localhost), or set "
                f"KANAVA_DEV_INSECURE_COOKIES=false and serve over HTTPS."
            )

    def listens_on_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    def origins(self) -> tuple[str, ...]:
        """The web origins whose pages may open websockets."""
        if self.allowed_origins:
            return self.allowed_origins
        own = [f"http://{self.host}:{self.port}"]
        if self.host in ("127.0.0.1", "localhost", "::1"):
            own += [f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"]
        return tuple(dict.fromkeys(own))

    def device_key_path(self) -> Path:
        return self.device_key_file or self.database.parent / "device-cookie.key"

    def redirect_uri(self) -> str:
        return self.oidc_redirect_uri or f"http://{self.host}:{self.port}/identity/callback"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``KANAVA_*`` variables, then explicit ``overrides``."""
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f"KANAVA_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(hints[f.name], raw, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def _parse(hint: Any, raw: str, name: str) -> Any:
    text = str(hint)
    try:
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if "tuple" in text:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if "Path" in text:
            return Path(raw) if raw else None
        return raw
    except ValueError:
        raise SystemExit(f"KANAVA_{name.upper()}: cannot read {raw!r} as {text}") from None


# The settings of a running application (``app[SETTINGS]``).
SETTINGS = web.AppKey("settings", Settings)
