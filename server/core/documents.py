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

__all__ = ["HandoverDocument", "IdentityDocument", "IntakeDocument", "IntakeSummary"]


@dataclass(frozen=True, slots=True)
class IntakeSummary:
    """What the professional sees: the triage level on top, then one line per answer."""

    topic: str
    title: str
    level: str  # a triage level: emergency, urgent, soon or routine
    level_label: str
    reasons: tuple[str, ...]
    lines: tuple[tuple[str, str], ...]  # (short question label, answer text)
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        """The protocol's ``intake`` field, as the console shows it."""
        return {
            "level": str(self.level),
            "level_label": self.level_label,
            "reasons": list(self.reasons),
            "topic": self.topic,
            "title": self.title,
            "complete": self.complete,
            "lines": [{"label": label, "answer": answer} for label, answer in self.lines],
        }

    def to_text(self) -> str:
        """Plain text, e.g. for a chat message or a patient record note."""
        parts = [f"{self.level_label.upper()} – {self.title}"]
        parts += [f"! {reason}" for reason in self.reasons]
        parts += [f"{label}: {answer}" for label, answer in self.lines]
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class IntakeDocument:
    """The questionnaire a client filled in before the chat: its topic, the normalized answers
    in question order, and the summary the professional reads."""

    topic: str | None
    answers: Mapping[str, Any]
    summary: IntakeSummary

    def view(self) -> dict[str, Any]:
        return self.summary.to_dict()


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
