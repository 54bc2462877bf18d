"""Device cookies: the browsers in which a person has signed in before.

OWASP's defence against lockout by others (the Authentication Cheat Sheet's "device cookies"):
after a successful sign-in the browser gets a long-lived cookie that names that username. An
attempt that brings one for its username is not slowed, queued or refused for what others
sent from the same address (see ``server.guard.ratelimit.SignInThrottle``): whoever shares
the nurse's address (the station's NAT, or a proxy not in ``trusted_proxies``) cannot keep
her out of the computer she signs in on.

One cookie holds an entry per username signed in with that browser (a shared station
computer), newest first, at most :data:`MAX_ENTRIES`. An entry is ``<id>.<expires>.<mac>``:
a random id, when it expires (Unix seconds) and an HMAC-SHA-256 (truncated to 128 bits) over
the normalised username, the id and the expiry, with a key of the server's own
(``device_key_file``). The username itself is not in the cookie. The id is what failures are
counted by: a cookie that failed too often loses its exemption for the window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterator

__all__ = ["MAX_ENTRIES", "DeviceCookies"]

#: Usernames one browser keeps a device cookie for (a computer a shift shares).
MAX_ENTRIES = 8
_LABEL = b"kanava device cookie v1"
_MAC_BYTES = 16


class DeviceCookies:
    """Makes and checks device cookies with ``key``; each entry lives ``lifetime`` seconds."""

    def __init__(self, key: bytes, lifetime: float) -> None:
        if len(key) < 32:
            raise ValueError("a device cookie key has at least 32 bytes")
        self._key = key
        self.lifetime = lifetime

    def issue(self, username: str, now: float, old: str | None = None) -> str:
        """The cookie's new value after ``username`` signed in: a fresh entry for it first,
        then the other unexpired entries of ``old`` (not this username's)."""
        device = secrets.token_urlsafe(12)
        expires = int(now + self.lifetime)
        entries = [f"{device}.{expires}.{self._mac(username, device, expires)}"]
        for text, entry_device, entry_expires in _entries(old):
            if len(entries) >= MAX_ENTRIES:
                break
            if entry_expires > now and not self._valid(username, entry_device, entry_expires, text):
                entries.append(text)
        return "~".join(entries)

    def device(self, value: str | None, username: str, now: float) -> str | None:
        """The id of the unexpired entry of ``value`` made for ``username``, if any."""
        for text, device, expires in _entries(value):
            if expires > now and self._valid(username, device, expires, text):
                return device
        return None

    def _valid(self, username: str, device: str, expires: int, text: str) -> bool:
        mac = text.rsplit(".", 1)[1]
        return hmac.compare_digest(mac, self._mac(username, device, expires))

    def _mac(self, username: str, device: str, expires: int) -> str:
        message = b"\0".join(
            (_LABEL, username.encode("utf-8"), device.encode("ascii"), str(expires).encode())
        )
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _entries(value: str | None) -> Iterator[tuple[str, str, int]]:
    """The well-formed entries of a cookie value: (text, id, expires); others are skipped."""
    if not value:
        return
    for text in value.split("~")[:MAX_ENTRIES]:
        parts = text.split(".")
        if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()) or len(parts[1]) > 12:
            continue
        device, expires, mac = parts
        if 0 < len(device) <= 32 and device.isascii() and 0 < len(mac) <= 32 and mac.isascii():
            yield text, device, int(expires)
