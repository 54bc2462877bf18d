"""The two wire encodings, negotiated by websocket subprotocol.

``kanava.v1.json`` sends each message as one UTF-8 JSON object in a text frame;
``kanava.v1.msgpack`` sends the same object as MessagePack in a binary frame. Both carry exactly
the same dictionaries, so a message decodes to an equal dataclass from either.

Decoding validates: the frame type must match the codec, the bytes must parse to an object,
``type`` must be known for the direction, every field must be present and of its type, and
on the server the sender's role must be allowed to send it. Anything else raises
:class:`~protocol.errors.ProtocolError` with a code; nothing here does I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import msgpack
import orjson

from .errors import ErrorCode, ProtocolError
from .messages import INBOUND, OUTBOUND, Message, Role
from .schema import compile_schema

__all__ = [
    "CODECS",
    "DEFAULT_SUBPROTOCOL",
    "SUBPROTOCOLS",
    "Codec",
    "JsonCodec",
    "MsgpackCodec",
    "check_sender",
    "from_wire",
    "to_wire",
]


def to_wire(msg: Message) -> dict[str, Any]:
    """The wire dictionary of a message: ``type`` first, ``None`` fields left out."""
    out: dict[str, Any] = {"type": msg.type}
    out.update(compile_schema(type(msg)).to_wire(msg))
    return out


def from_wire(data: Any, registry: dict[str, type[Message]]) -> Message:
    """Validate a decoded wire value against ``registry`` (INBOUND or OUTBOUND)."""
    if type(data) is not dict:
        raise ProtocolError(ErrorCode.MALFORMED, "a message must be an object")
    type_name = data.get("type")
    if type(type_name) is not str:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "field 'type' is required")
    cls = registry.get(type_name)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type '{type_name[:40]}'")
    msg: Message = compile_schema(cls).from_wire(data)
    return msg


def check_sender(msg: Message, role: Role) -> None:
    """Raise ``role_forbidden`` unless ``role`` may send ``msg``."""
    if role not in msg.senders:
        raise ProtocolError(ErrorCode.ROLE_FORBIDDEN, f"a {role.value} may not send '{msg.type}'")


class Codec(ABC):
    """One wire encoding. ``binary`` says which websocket frame type it uses."""

    subprotocol: str
    binary: bool

    @abstractmethod
    def dumps(self, data: dict[str, Any]) -> bytes: ...

    @abstractmethod
    def loads(self, data: bytes) -> Any: ...

    def encode(self, msg: Message) -> bytes:
        return self.dumps(to_wire(msg))

    def decode(
        self,
        data: bytes | str,
        *,
        registry: dict[str, type[Message]] = INBOUND,
        binary: bool | None = None,
    ) -> Message:
        """Decode one frame; ``binary`` is the frame type when the transport tells it."""
        if binary is not None and binary != self.binary:
            expected = "binary" if self.binary else "text"
            raise ProtocolError(ErrorCode.FRAME_TYPE, f"{self.subprotocol} uses {expected} frames")
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        try:
            value = self.loads(data)
        except Exception as exc:  # each library raises its own family of errors
            raise ProtocolError(
                ErrorCode.MALFORMED, f"not valid {self.subprotocol}: {type(exc).__name__}"
            ) from None
        return from_wire(value, registry)

    def decode_inbound(self, data: bytes | str, role: Role, binary: bool | None = None) -> Message:
        """What the server does with a received frame: decode, validate, check the role."""
        msg = self.decode(data, registry=INBOUND, binary=binary)
        check_sender(msg, role)
        return msg

    def decode_outbound(self, data: bytes | str, binary: bool | None = None) -> Message:
        """What a client does with a received frame."""
        return self.decode(data, registry=OUTBOUND, binary=binary)


class JsonCodec(Codec):
    subprotocol = "kanava.v1.json"
    binary = False

    def dumps(self, data: dict[str, Any]) -> bytes:
        return orjson.dumps(data)

    def loads(self, data: bytes) -> Any:
        return orjson.loads(data)


class MsgpackCodec(Codec):
    subprotocol = "kanava.v1.msgpack"
    binary = True

    def dumps(self, data: dict[str, Any]) -> bytes:
        packed: bytes = msgpack.packb(data, use_bin_type=True)
        return packed

    def loads(self, data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)


JSON = JsonCodec()
MSGPACK = MsgpackCodec()
CODECS: dict[str, Codec] = {JSON.subprotocol: JSON, MSGPACK.subprotocol: MSGPACK}
SUBPROTOCOLS: tuple[str, ...] = tuple(CODECS)
DEFAULT_SUBPROTOCOL = JSON.subprotocol
