"""Fuzzing the decoders: well-formed frames carrying wrong messages only ever raise the
protocol's own error, in both codecs and for both roles."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import JSON, MSGPACK, ErrorCode, Message, ProtocolError, Role
from protocol.messages import INBOUND

# JSON-shaped values of every kind, including the awkward ones: huge and negative integers,
# floats where ints go, deep nesting, long strings, lone surrogates in keys and values.
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
    | st.sampled_from(["x" * 4000, "ä" * 4001, "\ud800", "\x00" * 10])
)
VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)
FIELD_NAMES = sorted(
    {name for cls in INBOUND.values() for name in cls.__dataclass_fields__} | {"type"}
)


@st.composite
def wrong_messages(draw: Any) -> dict[str, Any]:
    """An object with a real type (usually) and fields of real names with arbitrary values."""
    kind = draw(st.sampled_from(sorted(INBOUND)) | st.text(max_size=20))
    fields = draw(st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), VALUES))
    fields["type"] = kind
    return fields


def _encodings(obj: dict[str, Any]) -> list[tuple[Any, bytes]]:
    out = []
    try:
        out.append((JSON, orjson.dumps(obj)))
    except (TypeError, orjson.JSONEncodeError):
        pass  # not representable in JSON (e.g. integers beyond 64 bits): nothing to send
    try:
        out.append((MSGPACK, msgpack.packb(obj)))
    except (OverflowError, TypeError, ValueError):
        pass
    return out


@settings(max_examples=800, deadline=None)
@given(obj=wrong_messages(), role=st.sampled_from([Role.CLIENT, Role.PROFESSIONAL]))
def test_well_formed_but_wrong_messages_only_raise_protocol_errors(
    obj: dict[str, Any], role: Role
) -> None:
    for codec, data in _encodings(obj):
        try:
            msg = codec.decode_inbound(data, role, codec.binary)
        except ProtocolError as exc:
            assert isinstance(exc.code, ErrorCode) and exc.reason
        else:
            # Accepted: then it is a valid message this role may send, of the named type.
            assert isinstance(msg, Message) and msg.type == obj["type"]
            assert role in type(msg).senders


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), role=st.sampled_from([Role.CLIENT, Role.PROFESSIONAL]))
def test_arbitrary_bytes_in_either_frame_type_only_raise_protocol_errors(
    data: bytes, role: Role
) -> None:
    for codec in (JSON, MSGPACK):
        for binary in (False, True):
            try:
                codec.decode_inbound(data, role, binary)
            except ProtocolError:
                pass
