"""Errors of the Kanava protocol.

Every error carries a machine-readable ``code`` (an :class:`ErrorCode`) and a human ``reason``.
The server turns any of them into one ``error`` message on the wire; the code is what a client
program branches on, the reason is for people reading logs::

    KanavaError                      code + reason, the root
    ├── ProtocolError                the bytes or the message are wrong (decode, validation)
    └── (server.errors.HubError)     the message is well-formed but not allowed now

Framing-level abuse (an oversized frame, a client that never reads) closes the connection
with a :class:`CloseCode`; everything else answers with an ``error`` and keeps it open.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["CloseCode", "ErrorCode", "KanavaError", "ProtocolError"]


class ErrorCode(StrEnum):
    """Machine-readable error codes carried by the ``error`` message."""

    # The frame or message itself is wrong.
    MALFORMED = "malformed"
    FRAME_TYPE = "frame_type"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    TEXT_TOO_LONG = "text_too_long"
    ROLE_FORBIDDEN = "role_forbidden"
    # The message is fine but comes at the wrong moment or from the wrong party.
    AUTH_REQUIRED = "auth_required"
    AUTH_FAILED = "auth_failed"
    SESSION_EXPIRED = "session_expired"
    INVALID_TOKEN = "invalid_token"
    NO_CONVERSATION = "no_conversation"
    ALREADY_OPEN = "already_open"
    FORBIDDEN = "forbidden"
    NOT_ASSIGNED = "not_assigned"
    CONVERSATION_CLOSED = "conversation_closed"
    INVALID_STATE = "invalid_state"
    CAPACITY_REACHED = "capacity_reached"
    QUEUE_EMPTY = "queue_empty"
    TARGET_UNAVAILABLE = "target_unavailable"
    TARGET_IS_BOT = "target_is_bot"  # a person's chat transferred to a bot account
    UNKNOWN_TEAM = "unknown_team"
    # The pre-chat intake.
    INTAKE_REQUIRED = "intake_required"
    INTAKE_UNKNOWN_TOPIC = "intake_unknown_topic"
    INTAKE_UNKNOWN_QUESTION = "intake_unknown_question"
    INTAKE_OUT_OF_ORDER = "intake_out_of_order"
    INTAKE_INVALID_ANSWER = "intake_invalid_answer"
    INTAKE_FINISHED = "intake_finished"
    NO_INTAKE = "no_intake"
    UNKNOWN_STATION = "unknown_station"
    SERVICE_CLOSED = "service_closed"
    RATE_LIMITED = "rate_limited"
    # Too many held at once from one client address (sockets, intakes, identifications,
    # waiting chats); ``retry_after_ms`` says when to try again.
    ADDRESS_LIMIT = "address_limit"
    # A server-wide table is full (intake sessions, identifications): try again later.
    BUSY = "busy"
    # The professional console.
    PANE_MISMATCH = "pane_mismatch"  # a send from a pane showing another conversation
    CSRF = "csrf"  # an HTTP request without the console's anti-forgery token
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """Websocket close codes Kanava uses besides the standard ones."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INVALID_TEXT = 1007  # a text frame that is not UTF-8 (RFC 6455 §8.1)
    MESSAGE_TOO_BIG = 1009
    # Application codes (4000-4999): the client may reconnect and resume unless noted.
    SLOW_CONSUMER = 4001
    SESSION_ENDED = 4003  # do not reconnect without signing in again


class KanavaError(Exception):
    """Root of Kanava's errors: a machine-readable code and a reason for people."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code.value}: {reason}")
        self.code = code
        self.reason = reason


class ProtocolError(KanavaError):
    """The received bytes do not form a valid message for this side."""
