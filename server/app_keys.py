"""The typed keys of the aiohttp application's state (one place, so modules share them)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .clock import Clock
from .connection import Connection
from .hub import Hub
from .identity import RelyingParty
from .personal_code import CodeProtector
from .reception import Reception
from .settings import Settings
from .storage import Storage

__all__ = [
    "CLOCK",
    "CONNECTIONS",
    "HUB",
    "IDENTIFICATION",
    "RECEPTION",
    "SETTINGS",
    "STORAGE",
    "Identification",
]


@dataclass
class Identification:
    """The relying party and the identity-code key; both None without a provider."""

    rp: RelyingParty | None = None
    protector: CodeProtector | None = None


SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
STORAGE = web.AppKey("storage", Storage)
HUB = web.AppKey("hub", Hub)
CONNECTIONS = web.AppKey("connections", set[Connection])
RECEPTION = web.AppKey("reception", Reception)
IDENTIFICATION = web.AppKey("identification", Identification)
