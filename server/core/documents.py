"""What a conversation carries from its intake and its handovers, as typed values.

A finished intake leaves two documents on its conversation: the questionnaire (its answers and
the summary the professional reads) and, for an identified client, the identity. A transfer or
an escalation leaves a third: how the chat reached its professional. The hub, the console and
the record entries read them as these types; they are parsed once, when storage loads a
conversation, and turned into storage's format only by storage (:mod:`server.storage.documents`).
The protocol sees them as the JSON-ready mappings that :meth:`view` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HandoverDocument", "IdentityDocument", "IntakeDocument"]


@dataclass(frozen=True, slots=True)
class IntakeDocument:
    """The questionnaire a client filled in before the chat.

    ``summary`` is the questionnaire's summary as the professional's console shows it (the
    protocol's ``intake`` field: level, level_label, reasons, topic, title, complete, lines);
    ``answers`` the normalized answers in question order.
    """

    topic: str | None
    answers: Mapping[str, Any]
    summary: Mapping[str, Any]

    @property
    def title(self) -> str | None:
        title = self.summary.get("title")
        return title if isinstance(title, str) else None

    def view(self) -> dict[str, Any]:
        return dict(self.summary)


@dataclass(frozen=True, slots=True)
class IdentityDocument:
    """A strongly identified client, as the record entry and the console need them.

    The personal identity code is kept only encrypted (``protected_code``) and masked
    (``masked_code``); ``fingerprint`` is its keyed hash, by which a supervisor finds the
    client's chats in the access log. ``age`` is the age on the day of the intake.
    """

    name: str
    masked_code: str
    protected_code: str
    birth_date: str  # ISO 8601 date
    municipality: str | None = None
    postal_code: str | None = None
    fingerprint: str | None = None
    age: int | None = None
    verified: bool = True

    def view(self) -> dict[str, Any]:
        """What a professional's console shows: never the identity code itself."""
        return {
            "name": self.name,
            "masked_code": self.masked_code,
            "age": self.age,
            "municipality": self.municipality,
            "postal_code": self.postal_code,
            "verified": self.verified,
        }


@dataclass(frozen=True, slots=True)
class HandoverDocument:
    """How a chat reached its professional or team: transferred, or escalated to a doctor."""

    kind: str  # "transfer" (to a colleague), "team" (to another team) or "escalation"
    from_id: str
    from_name: str
    note: str | None
    at: int  # epoch ms

    def view(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "from_id": self.from_id,
            "from_name": self.from_name,
            "note": self.note,
            "at": self.at,
        }
