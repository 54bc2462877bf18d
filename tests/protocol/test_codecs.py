"""The protocol package alone: messages, codecs, validation, states. No sockets here."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    CODECS,
    INBOUND,
    JSON,
    MAX_TEXT_LENGTH,
    MESSAGE_TYPES,
    MSGPACK,
    OUTBOUND,
    ConversationEvent,
    ConversationState,
    ErrorCode,
    InvalidTransition,
    Message,
    ProtocolError,
    Role,
    next_state,
    to_wire,
)
from protocol.messages import (
    Auth,
    AvailabilitySet,
    BotStart,
    ChatMessage,
    ConversationClose,
    ConversationOpen,
    ConversationOpened,
    ConversationResume,
    ConversationStateChanged,
    ConversationSync,
    ConversationTransfer,
    ConversationView,
    DraftSet,
    Error,
    FeedbackSaved,
    FeedbackSend,
    IntakeAnonymous,
    IntakeAnswer,
    IntakeBack,
    IntakeConfirm,
    IntakeIdentify,
    IntakeResume,
    IntakeStart,
    IntakeStation,
    IntakeStep,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    Ping,
    Pong,
    ProfessionalRef,
    QueueEntry,
    QueueSnapshot,
    QueueTake,
    Read,
    ReadMark,
    Typing,
    TypingSet,
    Welcome,
)

VIEW = ConversationView(
    conversation_id="c_1",
    state="assigned",
    team="kallio",
    created_at=1_767_225_600_000,
    last_seq=3,
    client_name="Åsa Öberg",
    topic="Flunssa",
    language="sv",
    professional=ProfessionalRef(id="p_1", name="Hanna Hoitaja", title="nurse"),
    read_client_seq=2,
    reason="taken",
)
CHAT = ChatMessage("c_1", 3, "m-3", "client", "Åsa", "Hej! 🌡️ 39,2 °C", 1_767_225_600_123)

EXAMPLES: list[Message] = [
    ConversationOpen(client_name="Matti", topic="Kuume", language="fi", team="kallio"),
    ConversationOpen(),
    IntakeStart(topic="respiratory", language="fi", open_id="0" * 32),
    IntakeStart(topic="other", language="sv", station="kalasatama"),
    IntakeAnswer(question_id="temperature", value=38.5),
    IntakeAnswer(question_id="red_flags", value=["none"]),
    IntakeAnswer(question_id="notes", value=None),
    IntakeAnonymous(),
    IntakeBack(),
    IntakeBack(question_id="symptoms"),
    IntakeBack(step="station"),
    IntakeConfirm(),
    IntakeStation(station="kallio"),
    IntakeResume(token="i" * 43),
    IntakeIdentify(code="k" * 43),
    IntakeStep(
        step="question",
        token="i" * 43,
        detail={"id": "temperature", "kind": "number", "unit": "°C", "min": 34, "max": 43.5},
        progress={"index": 3, "total": 9, "section": 2, "sections": 5, "title": "Oireet"},
        back=True,
    ),
    IntakeStep(step="emergency", token="i" * 43, triage="emergency", detail={"call": "112"}),
    ConversationResume(token="t" * 43, last_seq=7),
    Auth(token="s" * 43, cursors={"c_1": 3, "c_2": 0}),
    Auth(token="s" * 43),
    Auth(cursors={"c_1": 2}),
    AvailabilitySet(available=False),
    QueueTake(),
    QueueTake(conversation_id="c_1", team="kallio"),
    ConversationSync(conversation_id="c_1", after_seq=2),
    MessageSend(conversation_id="c_1", msg_id="m-1", text="Hei"),
    MessageSend(conversation_id="c_1", msg_id="m-2", text="Hei", pane="c_1"),
    DraftSet(conversation_id="c_1", text="Hei Aino, katsoin"),
    DraftSet(conversation_id="c_1", text=""),
    FeedbackSend(rating=5, comment="Kiitos!"),
    FeedbackSend(rating=3),
    FeedbackSend(comment="Vastaus tuli nopeasti."),
    TypingSet(conversation_id="c_1", typing=True),
    ReadMark(conversation_id="c_1", seq=3),
    ConversationTransfer(conversation_id="c_1", to_professional="p_2", note="Lääkärille"),
    ConversationTransfer(conversation_id="c_1", to_team="vuosaari"),
    ConversationTransfer(conversation_id="c_1", to_professional="p_3", note="Iho", escalate=True),
    BotStart(language="sv", open_id="o" * 20),
    BotStart(),
    ConversationClose(conversation_id="c_1", reason="Ohjattu"),
    Ping(nonce="n"),
    ConversationOpened(token="t" * 43, conversation=VIEW),
    ConversationStateChanged(conversation=VIEW),
    Welcome(
        professional=ProfessionalRef(id="p_1", name="Hanna", bot=False),
        capacity=4,
        available=True,
        teams=("kallio", "vuosaari"),
        conversations=(VIEW,),
    ),
    Welcome(
        professional=ProfessionalRef(id="p_1", name="Hanna", title="nurse", role="nurse"),
        capacity=4,
        available=True,
        teams=("kallio",),
        conversations=(
            dataclasses.replace(
                VIEW,
                bot_seq=4,
                escalated=True,
                handover={
                    "kind": "escalation",
                    "from_id": "p_2",
                    "from_name": "Ville",
                    "note": None,
                    "at": 1,
                },
            ),
        ),
        drafts={"c_1": "Hei Aino"},
    ),
    FeedbackSaved(conversation_id="c_1"),
    MessageNew(message=CHAT),
    MessageNew(
        message=ChatMessage(
            conversation_id="c_1",
            seq=2,
            msg_id="b-1",
            sender_role="professional",
            sender_name="Neuvontabotti",
            text="Reseptin voi uusia OmaKannassa.",
            sent_at=6,
            sender_id="p_bot",
            quick_replies=[{"id": "prescription", "label": "Reseptin uusiminen"}],
            actions=[{"kind": "link", "label": "OmaKanta", "url": "https://www.kanta.fi"}],
        )
    ),
    MessageAck(conversation_id="c_1", msg_id="m-1", seq=1, sent_at=5, duplicate=True),
    MessageHistory(conversation_id="c_1", messages=(CHAT, CHAT), up_to_date=False),
    MessageHistory(conversation_id="c_1", messages=(), up_to_date=True),
    Typing(conversation_id="c_1", role="client", typing=False),
    Read(conversation_id="c_1", role="professional", seq=3),
    QueueSnapshot(
        team="kallio",
        entries=(QueueEntry("c_1", 1, 5, client_name="Matti", topic="Kuume", language="fi"),),
        length=1,
    ),
    Error(code="rate_limited", reason="slow down", ref="m-1", retry_after_ms=200),
    Pong(),
]


def test_every_message_type_has_an_example() -> None:
    """The examples above cover the whole registry, so the round-trip test covers it too."""
    assert {type(m).type for m in EXAMPLES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.type)
def test_every_message_round_trips_identically_through_both_codecs(
    codec: Any, msg: Message
) -> None:
    data = codec.encode(msg)
    registry = INBOUND if msg.type in INBOUND else OUTBOUND
    assert codec.decode(data, registry=registry, binary=codec.binary) == msg


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.type)
def test_both_codecs_carry_the_same_dictionary(msg: Message) -> None:
    assert JSON.loads(JSON.encode(msg)) == MSGPACK.loads(MSGPACK.encode(msg)) == to_wire(msg)


def test_json_frames_are_text_and_msgpack_frames_binary() -> None:
    assert (JSON.binary, MSGPACK.binary) == (False, True)
    assert set(CODECS) == {"kanava.v1.json", "kanava.v1.msgpack"}
    JSON.encode(Ping()).decode("utf-8")  # valid UTF-8 text


def test_each_type_is_either_sent_to_or_by_the_server() -> None:
    assert not set(INBOUND) & set(OUTBOUND)
    for cls in INBOUND.values():
        assert cls.senders, f"{cls.type} says who may send it"
    for cls in OUTBOUND.values():
        assert not cls.senders, f"{cls.type} is the server's"


@pytest.mark.parametrize(
    ("role", "msg"),
    [
        (Role.CLIENT, QueueTake()),
        (Role.CLIENT, Auth(token="x")),
        (Role.CLIENT, ConversationTransfer("c", "p")),
        (Role.PROFESSIONAL, ConversationOpen()),
        (Role.PROFESSIONAL, ConversationResume(token="x")),
    ],
)
def test_a_role_cannot_send_what_is_not_its_own(role: Role, msg: Message) -> None:
    with pytest.raises(ProtocolError) as refused:
        JSON.decode_inbound(JSON.encode(msg), role)
    assert refused.value.code is ErrorCode.ROLE_FORBIDDEN


def test_the_server_refuses_to_decode_its_own_messages_as_input() -> None:
    with pytest.raises(ProtocolError) as refused:
        JSON.decode_inbound(JSON.encode(Pong()), Role.CLIENT)
    assert refused.value.code is ErrorCode.UNKNOWN_TYPE


def wire(**fields: Any) -> dict[str, Any]:
    return {"type": "message.send", "conversation_id": "c", "msg_id": "m", "text": "a", **fields}


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize(
    ("data", "code"),
    [
        (wire(text="x" * (MAX_TEXT_LENGTH + 1)), ErrorCode.TEXT_TOO_LONG),
        (wire(text=""), ErrorCode.INVALID_FIELD),
        (wire(text=None), ErrorCode.MISSING_FIELD),
        (wire(text=5), ErrorCode.INVALID_FIELD),
        (wire(msg_id="m" * 65), ErrorCode.INVALID_FIELD),
        (wire(conversation_id=["c"]), ErrorCode.INVALID_FIELD),
        (
            {"type": "intake.answer", "question_id": "q", "value": [[[[[[[[[[1]]]]]]]]]]},
            ErrorCode.INVALID_FIELD,
        ),
        (
            {"type": "intake.answer", "question_id": "q", "value": ["x"] * 3000},
            ErrorCode.INVALID_FIELD,
        ),
        (
            {"type": "intake.answer", "question_id": "q", "value": "x" * 4001},
            ErrorCode.INVALID_FIELD,
        ),
        (
            {"type": "intake.answer", "question_id": "q", "value": {"1": 1.5, "k" * 101: 1}},
            ErrorCode.INVALID_FIELD,
        ),
        ({"type": "read.mark", "conversation_id": "c", "seq": 1.5}, ErrorCode.INVALID_FIELD),
        ({"type": "read.mark", "conversation_id": "c", "seq": 2**60}, ErrorCode.INVALID_FIELD),
        ({"type": "typing.set", "conversation_id": "c", "typing": 1}, ErrorCode.INVALID_FIELD),
        ({"type": "auth", "token": "t", "cursors": {"c": "1"}}, ErrorCode.INVALID_FIELD),
        ({"type": "auth", "token": "t", "cursors": [1]}, ErrorCode.INVALID_FIELD),
        ({"type": 7}, ErrorCode.MISSING_FIELD),
        ({"type": "x" * 1000}, ErrorCode.UNKNOWN_TYPE),
        ({}, ErrorCode.MISSING_FIELD),
    ],
)
def test_invalid_fields_raise_protocol_errors_with_a_code(
    codec: Any, data: dict[str, Any], code: ErrorCode
) -> None:
    role = Role.PROFESSIONAL if data.get("type") == "auth" else Role.CLIENT
    with pytest.raises(ProtocolError) as refused:
        codec.decode_inbound(codec.dumps(data), role)
    assert refused.value.code is code
    assert refused.value.reason


def test_exactly_4000_characters_is_allowed() -> None:
    msg = MessageSend("c", "m", "ä" * MAX_TEXT_LENGTH)
    assert JSON.decode_inbound(JSON.encode(msg), Role.CLIENT) == msg


def test_unknown_extra_fields_are_ignored_for_forward_compatibility() -> None:
    data = JSON.dumps(wire(future_field={"x": 1}))
    assert JSON.decode_inbound(data, Role.CLIENT) == MessageSend("c", "m", "a")


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_the_frame_type_must_match_the_codec(codec: Any) -> None:
    with pytest.raises(ProtocolError) as refused:
        codec.decode_inbound(codec.encode(Ping()), Role.CLIENT, binary=not codec.binary)
    assert refused.value.code is ErrorCode.FRAME_TYPE


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_protocol_errors(data: bytes) -> None:
    for codec in (JSON, MSGPACK):
        try:
            msg = codec.decode_inbound(data, Role.CLIENT)
        except ProtocolError as exc:
            assert isinstance(exc.code, ErrorCode)
        else:
            assert isinstance(msg, Message)


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def _no_bidi(text: str) -> str:
    return "".join(ch for ch in text if ch not in BIDI)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(min_size=1, max_size=MAX_TEXT_LENGTH) | st.text(BIDI + "ab1ä", min_size=1),
    msg_id=st.text(min_size=1, max_size=64),
)
def test_any_valid_chat_text_round_trips(text: str, msg_id: str) -> None:
    """Any text arrives as it was sent, less its bidirectional-text controls; one that was
    nothing else is refused."""
    msg = MessageSend("c_1", msg_id, text)
    for codec in (JSON, MSGPACK):
        try:
            encoded = codec.encode(msg)
        except Exception:
            # Lone surrogates cannot be encoded as UTF-8 by any codec; they never arrive.
            assert any(0xD800 <= ord(ch) <= 0xDFFF for ch in text + msg_id)
            continue
        if not _no_bidi(text) or not _no_bidi(msg_id):
            with pytest.raises(ProtocolError) as refused:
                codec.decode_inbound(encoded, Role.CLIENT)
            assert refused.value.code is ErrorCode.INVALID_FIELD
            continue
        expected = MessageSend("c_1", _no_bidi(msg_id), _no_bidi(text))
        assert codec.decode_inbound(encoded, Role.CLIENT) == expected


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize("control", list(BIDI), ids=lambda c: f"U+{ord(c):04X}")
def test_bidirectional_text_controls_are_removed_from_every_text(codec: Any, control: str) -> None:
    """A right-to-left override makes "Soita 211" show as "Soita 112" (and a dose or a phone
    number read backwards): the server never passes one on, in a message, a name, a note or
    an intake answer."""
    sent = codec.dumps(wire(text=f"Soita {control}211{control} heti"))
    assert codec.decode_inbound(sent, Role.CLIENT).text == "Soita 211 heti"
    sent = codec.dumps(
        {"type": "conversation.open", "client_name": f"Aino{control} Aalto", "topic": control}
    )
    opened = codec.decode_inbound(sent, Role.CLIENT)
    assert (opened.client_name, opened.topic) == ("Aino Aalto", "")
    sent = codec.dumps(
        {
            "type": "intake.answer",
            "question_id": "q",
            "value": {f"k{control}": [f"{control}kova kipu"]},
        }
    )
    assert codec.decode_inbound(sent, Role.CLIENT).value == {"k": ["kova kipu"]}
    sent = codec.dumps(
        {"type": "conversation.transfer", "conversation_id": "c", "to_team": "t", "note": control}
    )
    assert codec.decode_inbound(sent, Role.PROFESSIONAL).note == ""
    with pytest.raises(ProtocolError) as refused:
        codec.decode_inbound(codec.dumps(wire(text=control * 3)), Role.CLIENT)
    assert refused.value.code is ErrorCode.INVALID_FIELD


def test_the_state_table_allows_exactly_the_lifecycle() -> None:
    s, e = ConversationState, ConversationEvent
    assert next_state(s.QUEUED, e.ASSIGN) is s.ASSIGNED
    assert next_state(s.ASSIGNED, e.TRANSFER) is s.ASSIGNED
    assert next_state(s.ASSIGNED, e.REQUEUE) is s.QUEUED
    assert next_state(s.QUEUED, e.CLOSE) is s.CLOSED
    assert next_state(s.ASSIGNED, e.CLOSE) is s.CLOSED
    for state, event in [
        (s.QUEUED, e.TRANSFER),
        (s.QUEUED, e.REQUEUE),
        (s.CLOSED, e.ASSIGN),
        (s.CLOSED, e.CLOSE),
        (s.CLOSED, e.REQUEUE),
    ]:
        with pytest.raises(InvalidTransition):
            next_state(state, event)


def test_protocol_is_sans_io() -> None:
    """No module of protocol/ imports an I/O or event-loop library."""
    forbidden = {"asyncio", "aiohttp", "aiosqlite", "socket", "sqlite3", "websockets", "server"}
    root = Path(__file__).resolve().parents[2] / "protocol"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
