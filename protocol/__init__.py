"""Kanava's wire protocol, sans I/O: messages, codecs, validation, errors and states.

Nothing in this package opens a socket or imports asyncio: the server and every client build on
the same definitions, and tests can exercise them synchronously.
"""

from __future__ import annotations

from .codecs import (
    CODECS,
    DEFAULT_SUBPROTOCOL,
    JSON,
    MSGPACK,
    SUBPROTOCOLS,
    Codec,
    JsonCodec,
    MsgpackCodec,
    check_sender,
    from_wire,
    to_wire,
)
from .errors import CloseCode, ErrorCode, KanavaError, ProtocolError
from .messages import (
    INBOUND,
    MAX_TEXT_LENGTH,
    MESSAGE_TYPES,
    OUTBOUND,
    PROTOCOL_VERSION,
    Message,
    Role,
)
from .states import (
    OUTCOMES,
    ChatOutcome,
    ConversationEvent,
    ConversationState,
    InvalidTransition,
    next_state,
)

__all__ = [
    "CODECS",
    "DEFAULT_SUBPROTOCOL",
    "INBOUND",
    "JSON",
    "MAX_TEXT_LENGTH",
    "MESSAGE_TYPES",
    "MSGPACK",
    "OUTBOUND",
    "OUTCOMES",
    "PROTOCOL_VERSION",
    "SUBPROTOCOLS",
    "ChatOutcome",
    "CloseCode",
    "Codec",
    "ConversationEvent",
    "ConversationState",
    "ErrorCode",
    "InvalidTransition",
    "JsonCodec",
    "KanavaError",
    "Message",
    "MsgpackCodec",
    "ProtocolError",
    "Role",
    "check_sender",
    "from_wire",
    "next_state",
    "to_wire",
]
