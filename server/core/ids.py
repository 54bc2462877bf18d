"""Identifiers and secrets: public ids (``c_Xb3…``), random tokens, and their stored hashes.

Only the hash of a token (a session, a conversation, an intake) is ever stored: a copy of the
database does not let anyone act as its owner.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["hash_token", "new_id", "new_token"]


def new_token() -> str:
    """A secret for a session or a conversation: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_id(prefix: str) -> str:
    """A public identifier such as ``c_Xb3…`` (not a secret)."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"
