"""What the client's own copy of its conversation's view holds.

The hub makes one :class:`~protocol.messages.ConversationView` of a change and sends it to both
parties. Part of it is for professionals only: the questionnaire summary (``intake``), the
identity document with the masked identity code (``identity``), the note of a transfer
(``handover``), and a professional's own words when they end the chat (``reason``).
:func:`for_client` makes the client's copy of a view: those parts left out; instead, the
client's own name and health station (``identified``), and a reason that is one of the
protocol's codes whenever a professional gave it. The client's own reason for ending a chat
is theirs, and stays.

Pure: the caller (the client's connection) gives the station's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from protocol import OUTCOMES
from protocol.messages import ConversationView, Identified

__all__ = ["SERVER_REASONS", "StationName", "for_client"]

#: The reasons the server itself gives a change (docs/protocol.md, "Reasons"), outcomes aside.
SERVER_REASONS = frozenset(
    {
        "taken",
        "auto",
        "transferred",
        "escalated",
        "handed_over",
        "professional_disconnected",
        "professional_removed",
        "closed_by_client",
        "closed_by_professional",
        "client_left",
        "deleted_by_retention",
    }
)

_CODES = SERVER_REASONS | OUTCOMES

#: The name of a health station (its id) in a language (the conversation's), or None.
StationName = Callable[[str, str | None], str | None]


def for_client(view: ConversationView, station_name: StationName) -> ConversationView:
    """The client's copy of ``view``: nothing of it that is for professionals only."""
    reason = view.reason
    if view.closed_by == "professional" and reason not in _CODES:
        reason = "closed_by_professional"
    return replace(
        view,
        intake=None,
        identity=None,
        handover=None,
        reason=reason,
        identified=_identified(view, station_name),
    )


def _identified(view: ConversationView, station_name: StationName) -> Identified | None:
    """The client's own name and health station, if they identified."""
    identity = view.identity
    if not isinstance(identity, dict):
        return None
    name = identity.get("name")
    if not isinstance(name, str) or not name.strip() or identity.get("verified") is False:
        return None
    station = view.station
    return Identified(
        name=name,
        station=station,
        station_name=station_name(station, view.language) if station else None,
    )
