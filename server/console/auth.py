"""Professional accounts and sessions.

Passwords are hashed with Argon2id (``argon2-cffi``) with the parameters OWASP's password
storage guidance recommends (19 MiB of memory, 2 passes, 1 lane), in a worker thread so that a
sign-in never stalls the chats. Hashes from before Argon2 (scrypt) still verify and are
replaced by an Argon2 hash at the next sign-in.

Usernames are compared and stored in one form (:func:`normalise_username`): Unicode NFKC,
case-folded, without surrounding spaces, so "Hoitaja1", " hoitaja1" and a full-width
"ｈｏｉｔａｊａ１" are one account and count as one in the sign-in's failure counts.

A sign-in creates a session: a random token, stored only as its SHA-256 hash, valid for
``session_hours``; the console gets it as an ``HttpOnly`` cookie, scripts in the response body.
Client conversation tokens follow the same rule: only their hash is stored.

The console's anti-forgery token is derived from the session token (an HMAC), so it needs no
storage, changes with every session, and cannot be computed without the cookie's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "DEVICE_COOKIE",
    "HOST_PREFIX",
    "LOGIN_CSRF_COOKIE",
    "OIDC_COOKIE",
    "SESSION_COOKIE",
    "cookie_name",
    "csrf_for_session",
    "hash_password",
    "needs_rehash",
    "normalise_username",
    "verify_password",
]

SESSION_COOKIE = "kanava_session"
LOGIN_CSRF_COOKIE = "kanava_login_csrf"
OIDC_COOKIE = "kanava_pro_oidc"
DEVICE_COOKIE = "kanava_device"  # see server.console.device
HOST_PREFIX = "__Host-"

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# A password is checked against this when the username is unknown, so that a wrong username
# takes as long as a wrong password and does not reveal which usernames exist.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def cookie_name(name: str, dev_insecure: bool) -> str:
    """The name a cookie is sent under: ``__Host-<name>``, which browsers keep only when it is
    ``Secure``, ``Path=/`` and without ``Domain``, so that neither another subdomain nor a
    plain-http page can set or overwrite it. Plain ``<name>`` only in loopback development
    over http (setting ``dev_insecure_cookies``), where a Secure cookie could not travel."""
    return name if dev_insecure else HOST_PREFIX + name


def normalise_username(username: str) -> str:
    """The one form of a username: NFKC, case-folded (and NFKC again, as case folding can
    undo it), stripped of surrounding whitespace."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())
    return folded.strip()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    if stored is None:
        try:
            _HASHER.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return False
    if stored.startswith("$argon2"):
        try:
            return _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    return _verify_scrypt(password, stored)


def needs_rehash(stored: str) -> bool:
    """True for a hash made before Argon2, or with weaker parameters than today's."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def csrf_for_session(session_token: str) -> str:
    """The anti-forgery token of one session (sent back in the ``X-CSRF-Token`` header)."""
    return hmac.new(session_token.encode("utf-8"), b"kanava csrf v1", hashlib.sha256).hexdigest()


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt_b64),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))
