"""What a bot adds to a chat message: quick replies (buttons) and actions (links, numbers).

Only a bot account sends them (``message.send``), and every party receives them with the
message (``ChatMessage``). On the wire each is a list of objects, carried by the message
dataclasses as JSON; this module is their typed form and the one place their shape is
checked:

- a quick reply ``{"id": …, "label": …}``: a button that sends its label as the client's
  next message;
- an action ``{"kind": …, "label": …, "value": …, "url": …}``: a ``link`` to an
  ``https://`` address, a ``phone`` number as a ``tel:`` link, or a ``handoff`` (no
  ``url``): a button that takes the client to the nurse's chat.

At most :data:`MAX_QUICK_REPLIES` quick replies and :data:`MAX_ACTIONS` actions to a message,
each label 1 to :data:`MAX_LABEL_LENGTH` characters and not only spaces. Anything else raises
:class:`~protocol.errors.ProtocolError` with ``invalid_field``.

As with the messages, building a value checks nothing; :meth:`BotExtras.from_wire` checks what
was received, and ``to_wire`` gives back the JSON that goes on the wire and into storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import ErrorCode, ProtocolError

__all__ = [
    "MAX_ACTIONS",
    "MAX_LABEL_LENGTH",
    "MAX_QUICK_REPLIES",
    "Action",
    "ActionKind",
    "BotExtras",
    "QuickReply",
]

MAX_QUICK_REPLIES = 8
MAX_ACTIONS = 5
MAX_LABEL_LENGTH = 80


class ActionKind(StrEnum):
    """What an action does when the client presses it."""

    LINK = "link"  # opens an https:// address
    PHONE = "phone"  # dials a tel: number
    HANDOFF = "handoff"  # takes the client to the nurse's chat


# What each kind's url must start with; a handoff has none.
_URL_PREFIX = {ActionKind.LINK: "https://", ActionKind.PHONE: "tel:"}


def _kind(value: object) -> ActionKind | None:
    try:
        return ActionKind(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _invalid(reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FIELD, reason)


def _labelled(entry: object, field_name: str) -> tuple[dict[str, Any], str]:
    """The entry as an object, and its label (1 to 80 characters, not only spaces)."""
    if not isinstance(entry, dict):
        raise _invalid(f"{field_name}: each entry is an object")
    label = entry.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_LENGTH:
        raise _invalid(f"{field_name}: a label of 1 to {MAX_LABEL_LENGTH}")
    return entry, label


def _entries(value: object, field_name: str, most: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > most:
        raise _invalid(f"{field_name}: at most {most}")
    return value


@dataclass(frozen=True, slots=True)
class QuickReply:
    """A button under the message; pressing it sends ``label`` as the client's message."""

    id: str
    label: str

    @classmethod
    def from_wire(cls, entry: object) -> QuickReply:
        checked, label = _labelled(entry, "quick_replies")
        return cls(id=str(checked.get("id") or ""), label=label)

    def to_wire(self) -> dict[str, str]:
        return {"id": self.id, "label": self.label}


@dataclass(frozen=True, slots=True)
class Action:
    """Where the client can act: a link, a phone number, or the way to the nurse's chat.

    ``url`` is what the client opens (empty for a handoff); ``value`` what a page may show
    instead, e.g. the number as it is written.
    """

    kind: ActionKind
    label: str
    url: str = ""
    value: str = ""

    @classmethod
    def from_wire(cls, entry: object) -> Action:
        checked, label = _labelled(entry, "actions")
        kind, url = _kind(checked.get("kind")), checked.get("url") or ""
        if kind is ActionKind.HANDOFF:
            ok = url == ""
        else:
            ok = kind is not None and isinstance(url, str) and url.startswith(_URL_PREFIX[kind])
        if kind is None or not ok:
            raise _invalid("actions: a link (https://), a phone (tel:) or a handoff")
        value = checked.get("value")
        return cls(
            kind=kind,
            label=label,
            url=str(url),
            value=value if isinstance(value, str) else "",
        )

    def to_wire(self) -> dict[str, str]:
        return {"kind": self.kind.value, "label": self.label, "value": self.value, "url": self.url}


@dataclass(frozen=True, slots=True)
class BotExtras:
    """The quick replies and actions of one message; ``None``: the message has none."""

    quick_replies: tuple[QuickReply, ...] | None = None
    actions: tuple[Action, ...] | None = None

    @classmethod
    def from_wire(cls, quick_replies: object, actions: object) -> BotExtras:
        """Check the two fields as received (``None``: absent); ProtocolError if wrong."""
        replies = None
        if quick_replies is not None:
            entries = _entries(quick_replies, "quick_replies", MAX_QUICK_REPLIES)
            replies = tuple(QuickReply.from_wire(entry) for entry in entries)
        links = None
        if actions is not None:
            links = tuple(
                Action.from_wire(entry) for entry in _entries(actions, "actions", MAX_ACTIONS)
            )
        return cls(replies, links)

    def to_wire(self) -> dict[str, Any] | None:
        """``{"quick_replies": [...], "actions": [...]}`` with the fields present; ``None`` if
        neither is."""
        wire: dict[str, Any] = {}
        if self.quick_replies is not None:
            wire["quick_replies"] = [reply.to_wire() for reply in self.quick_replies]
        if self.actions is not None:
            wire["actions"] = [action.to_wire() for action in self.actions]
        return wire or None
