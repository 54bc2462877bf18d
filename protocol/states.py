"""The lifecycle of a conversation, as one table.

Why a table: the rules about what may happen to a conversation are what keep two patients'
chats apart and keep nobody stranded, so they live in one place that can be read top to
bottom, rather than as ``if`` statements scattered through the hub. The hub asks
:func:`next_state` before it changes anything; a missing entry is an error, never a silent
no-op.

A conversation starts ``queued`` (a client opened it and waits for a professional). Taking it
or auto-assignment makes it ``assigned`` to one professional; a transfer keeps it ``assigned``
to another. If the professional goes away for longer than the grace period it is ``requeue``\\d
to the front of its queue. Either party can ``close`` it at any time; ``closed`` is final.

Later intake steps (questionnaire, identification) add states before ``queued``; they extend
this table rather than the hub.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "OUTCOMES",
    "TRANSITIONS",
    "ChatOutcome",
    "ConversationEvent",
    "ConversationState",
    "InvalidTransition",
    "next_state",
]


class ConversationState(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    CLOSED = "closed"


class ConversationEvent(StrEnum):
    ASSIGN = "assign"
    TRANSFER = "transfer"
    REQUEUE = "requeue"
    CLOSE = "close"


S, E = ConversationState, ConversationEvent

TRANSITIONS: dict[ConversationState, dict[ConversationEvent, ConversationState]] = {
    S.QUEUED: {E.ASSIGN: S.ASSIGNED, E.CLOSE: S.CLOSED},
    S.ASSIGNED: {E.TRANSFER: S.ASSIGNED, E.REQUEUE: S.QUEUED, E.CLOSE: S.CLOSED},
    S.CLOSED: {},
}


class InvalidTransition(Exception):
    def __init__(self, state: ConversationState, event: ConversationEvent) -> None:
        super().__init__(f"cannot {event.value} a {state.value} conversation")
        self.state = state
        self.event = event


def next_state(state: ConversationState, event: ConversationEvent) -> ConversationState:
    """The state after ``event``, or :class:`InvalidTransition`."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise InvalidTransition(state, event) from None


class ChatOutcome(StrEnum):
    """How a professional ended a chat: the outcome they chose for its record entry.

    A fixed set of codes, never free text: a client shows each in its own words, so nothing a
    professional types reaches the client as the outcome.
    """

    RESOLVED = "resolved"
    BOOKED_APPOINTMENT = "booked_appointment"
    REFERRED = "referred"
    NO_RESPONSE = "no_response"
    ESCALATED = "escalated"
    EMERGENCY = "emergency"


#: The outcome codes as plain strings.
OUTCOMES = frozenset(outcome.value for outcome in ChatOutcome)
