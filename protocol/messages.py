"""Kanava's messages: one frozen dataclass per message type.

A message on the wire is an object whose ``type`` names its class, e.g.
``{"type": "message.send", "conversation_id": "c_x", "msg_id": "m1", "text": "Hei"}``.

Messages a connection *sends to the server* are listed in :data:`INBOUND`, each with the roles
that may send it (``senders``); messages the server sends are in :data:`OUTBOUND`. A type is in
exactly one of the two, so a decoder always knows which fields to expect.

Timestamps are integers: milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, ClassVar

from .errors import ErrorCode
from .schema import JsonValue, Limit, compile_schema
from .states import ConversationState

__all__ = [
    "INBOUND",
    "MAX_TEXT_LENGTH",
    "MESSAGE_TYPES",
    "OUTBOUND",
    "PROTOCOL_VERSION",
    "Auth",
    "AvailabilitySet",
    "DraftSet",
    "FeedbackSaved",
    "FeedbackSend",
    "BotStart",
    "ChatMessage",
    "ConversationClose",
    "ConversationOpen",
    "ConversationOpened",
    "ConversationResume",
    "ConversationStateChanged",
    "ConversationSync",
    "ConversationTransfer",
    "ConversationView",
    "Error",
    "Identified",
    "IntakeAnonymous",
    "IntakeAnswer",
    "IntakeBack",
    "IntakeConfirm",
    "IntakeIdentify",
    "IntakeResume",
    "IntakeStart",
    "IntakeStation",
    "IntakeStep",
    "Message",
    "MessageAck",
    "MessageHistory",
    "MessageNew",
    "MessageSend",
    "Ping",
    "Pong",
    "ProfessionalRef",
    "QueueEntry",
    "QueueSnapshot",
    "QueueTake",
    "Read",
    "ReadMark",
    "Role",
    "Typing",
    "TypingSet",
    "Welcome",
]

PROTOCOL_VERSION = 1
MAX_TEXT_LENGTH = 4000


class Role(StrEnum):
    """Who is at the other end of a connection."""

    CLIENT = "client"  # a citizen, on /ws/client
    PROFESSIONAL = "professional"  # a nurse or doctor, on /ws/pro


CLIENT_ONLY = frozenset({Role.CLIENT})
PRO_ONLY = frozenset({Role.PROFESSIONAL})
BOTH = frozenset({Role.CLIENT, Role.PROFESSIONAL})

Id = Annotated[str, Limit(64, min_len=1)]
Name = Annotated[str, Limit(100)]
Reason = Annotated[str, Limit(500)]
Text = Annotated[str, Limit(MAX_TEXT_LENGTH, min_len=1, too_long=ErrorCode.TEXT_TOO_LONG)]
Token = Annotated[str, Limit(200, min_len=1)]
Code = Annotated[str, Limit(40)]
Secret = Annotated[str, Limit(200, min_len=1)]


@dataclass(frozen=True, slots=True)
class Message:
    """Base of all messages; ``type`` is the wire name, ``senders`` who may send it."""

    type: ClassVar[str] = ""
    senders: ClassVar[frozenset[Role]] = frozenset()


# --- Nested values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfessionalRef:
    """A professional as the other party sees them."""

    id: Id
    name: Name
    title: Name | None = None
    bot: bool = False  # an advice bot, not a person: clients must say so
    role: Code | None = None  # "nurse", "doctor", "supervisor" or "admin"


@dataclass(frozen=True, slots=True)
class Identified:
    """Who the client identified as, and their health station: the client's own view only.

    What the client may read back of their identification: their name, never the identity
    code (the professional's ``identity`` has it masked; the client's view does not carry that).
    """

    name: Name
    station: Id | None = None  # the health station's id, as in ConversationView.station
    station_name: Name | None = None  # its name in the conversation's language


@dataclass(frozen=True, slots=True)
class ConversationView:
    """Everything a party needs to show one conversation, sent whenever it changes."""

    conversation_id: Id
    state: Code  # a ConversationState value
    team: Id
    created_at: int
    last_seq: int
    client_name: Name | None = None
    topic: Name | None = None
    language: Annotated[str, Limit(8)] | None = None
    queue_position: int | None = None  # 1 = next in line; only while queued
    queue_length: int | None = None
    professional: ProfessionalRef | None = None
    read_client_seq: int = 0
    read_professional_seq: int = 0
    reason: Reason | None = None  # why the last change happened, e.g. "professional_disconnected"
    closed_by: Code | None = None  # "client" or "professional" once closed
    # From the intake (absent for a conversation opened without one):
    triage: Code | None = None  # "urgent" or "routine"
    station: Id | None = None  # the client's health station
    # Only in the client's own view, while queued: the estimated wait, a range in minutes.
    wait_min_minutes: int | None = None
    wait_max_minutes: int | None = None
    # The questionnaire summary and who the client is (identity code masked): what the
    # professional's console shows. Never in the client's own view (see ``identified``).
    intake: JsonValue | None = None
    identity: JsonValue | None = None
    # Messages up to this seq were with the advice bot, before a person took over (0: none).
    bot_seq: int = 0
    # How the chat reached its professional, when another professional sent it:
    # {"kind": "transfer" | "team" | "escalation", "from_id", "from_name", "note", "at"}.
    handover: JsonValue | None = None
    escalated: bool = False  # a nurse escalated it to a doctor (in the same conversation)
    # Once closed by a professional who chose one: the outcome, a code of states.ChatOutcome.
    outcome: Code | None = None
    # Only in the client's own view, once identified: their name and health station.
    identified: Identified | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One stored chat message of a conversation."""

    conversation_id: Id
    seq: int
    msg_id: Id
    sender_role: Code
    sender_name: Name
    text: Text
    sent_at: int
    sender_id: Id | None = None  # the professional's id; "client" for the citizen
    # From a bot: buttons that send their label as the client's next message, and links or
    # phone numbers where the client can act. Each a list of objects, as JSON here: their
    # typed form and checks are protocol.extras (BotExtras.from_wire, BotExtras.to_wire).
    quick_replies: JsonValue | None = None
    actions: JsonValue | None = None


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A waiting conversation as professionals see it in the queue."""

    conversation_id: Id
    position: int
    waiting_since: int
    client_name: Name | None = None
    topic: Name | None = None
    language: Annotated[str, Limit(8)] | None = None
    triage: Code | None = None


# --- Sent to the server ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationOpen(Message):
    """A client starts a new conversation (first message on /ws/client)."""

    type: ClassVar[str] = "conversation.open"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    client_name: Name | None = None
    topic: Name | None = None
    language: Annotated[str, Limit(8)] | None = None
    team: Id | None = None
    # Chosen by the client (e.g. a random UUID) and sent again on a retry: the same
    # conversation is returned, with a fresh token, instead of a second one being queued.
    open_id: Annotated[str, Limit(64, min_len=16)] | None = None


@dataclass(frozen=True, slots=True)
class BotStart(Message):
    """A client starts a chat with the advice bot: anonymous, at any hour, no intake."""

    type: ClassVar[str] = "bot.start"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    language: Annotated[str, Limit(8)] | None = None
    open_id: Annotated[str, Limit(64, min_len=16)] | None = None


@dataclass(frozen=True, slots=True)
class IntakeStart(Message):
    """A client starts the pre-chat intake on a topic; the server answers ``intake.step``."""

    type: ClassVar[str] = "intake.start"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    topic: Id
    language: Annotated[str, Limit(8)] | None = None
    # As in conversation.open: the same open_id on a retry returns the same conversation.
    open_id: Annotated[str, Limit(64, min_len=16)] | None = None
    # The token of the client's chat with the advice bot: the finished intake hands that
    # chat, with everything said in it, over to a nurse instead of opening another one.
    bot_token: Token | None = None
    # The station or team whose page the chat was opened from (the widget's
    # data-team-or-station): preselected in the station step.
    station: Id | None = None


@dataclass(frozen=True, slots=True)
class IntakeAnswer(Message):
    """The answer to the question the last ``intake.step`` asked (or to an earlier one)."""

    type: ClassVar[str] = "intake.answer"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    question_id: Id
    value: JsonValue | None = None


@dataclass(frozen=True, slots=True)
class IntakeBack(Message):
    """Back one step (the previous question; from the anonymous choice, identification), or
    to an answered question named by ``question_id``, or to the station (``step``)."""

    type: ClassVar[str] = "intake.back"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    question_id: Id | None = None
    step: Code | None = None


@dataclass(frozen=True, slots=True)
class IntakeConfirm(Message):
    """The citizen has checked the answers of the ``review`` step: queue the chat."""

    type: ClassVar[str] = "intake.confirm"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY


@dataclass(frozen=True, slots=True)
class IntakeAnonymous(Message):
    """The client chooses not to identify: the bot answers instead of a professional."""

    type: ClassVar[str] = "intake.anonymous"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY


@dataclass(frozen=True, slots=True)
class IntakeStation(Message):
    """The client chooses their health station (when the identity gave no address)."""

    type: ClassVar[str] = "intake.station"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    station: Id


@dataclass(frozen=True, slots=True)
class IntakeResume(Message):
    """A client comes back to an unfinished intake (e.g. after identifying in another tab)."""

    type: ClassVar[str] = "intake.resume"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    token: Token


@dataclass(frozen=True, slots=True)
class IntakeIdentify(Message):
    """The identification finished in this client's pop-up: redeem its one-time code.

    Only the websocket that owns the intake can redeem it, so a link opened in someone
    else's browser identifies nobody.
    """

    type: ClassVar[str] = "intake.identify"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    code: Token


@dataclass(frozen=True, slots=True)
class ConversationResume(Message):
    """A client comes back to its conversation with its token and the last seq it saw."""

    type: ClassVar[str] = "conversation.resume"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    token: Token
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class Auth(Message):
    """A professional authenticates: with the session cookie of the websocket's upgrade
    request (the console), or with a ``token`` from ``POST /api/login`` (scripts, bots).

    ``cursors`` maps a conversation id to the last seq this console has of it; the server then
    sends exactly the missing messages of each assigned conversation.
    """

    type: ClassVar[str] = "auth"
    senders: ClassVar[frozenset[Role]] = PRO_ONLY
    token: Token | None = None
    cursors: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class AvailabilitySet(Message):
    """A professional pauses or resumes receiving auto-assigned chats."""

    type: ClassVar[str] = "availability.set"
    senders: ClassVar[frozenset[Role]] = PRO_ONLY
    available: bool


@dataclass(frozen=True, slots=True)
class QueueTake(Message):
    """A professional takes a waiting conversation, or the longest-waiting one if none named."""

    type: ClassVar[str] = "queue.take"
    senders: ClassVar[frozenset[Role]] = PRO_ONLY
    conversation_id: Id | None = None
    team: Id | None = None


@dataclass(frozen=True, slots=True)
class ConversationSync(Message):
    """Ask for the messages of a conversation after ``after_seq``."""

    type: ClassVar[str] = "conversation.sync"
    senders: ClassVar[frozenset[Role]] = BOTH
    conversation_id: Id
    after_seq: int = 0


@dataclass(frozen=True, slots=True)
class MessageSend(Message):
    """Send a chat message. ``msg_id`` is chosen by the sender and makes retries safe."""

    type: ClassVar[str] = "message.send"
    senders: ClassVar[frozenset[Role]] = BOTH
    conversation_id: Id
    msg_id: Id
    text: Text
    # Only from a bot account: buttons and links, as in ChatMessage. The server checks who
    # sent them before their shape (protocol.extras), so they are decoded as JSON.
    quick_replies: JsonValue | None = None
    actions: JsonValue | None = None
    # From a professional's console: the conversation of the pane the composer belongs to,
    # read apart from ``conversation_id``. The server refuses the send when they differ.
    pane: Id | None = None


@dataclass(frozen=True, slots=True)
class DraftSet(Message):
    """A professional's unsent text in one conversation, kept by the server (empty: none)."""

    type: ClassVar[str] = "draft.set"
    senders: ClassVar[frozenset[Role]] = PRO_ONLY
    conversation_id: Id
    text: Annotated[str, Limit(MAX_TEXT_LENGTH, too_long=ErrorCode.TEXT_TOO_LONG)]


@dataclass(frozen=True, slots=True)
class TypingSet(Message):
    """The sender started or stopped typing."""

    type: ClassVar[str] = "typing.set"
    senders: ClassVar[frozenset[Role]] = BOTH
    conversation_id: Id
    typing: bool


@dataclass(frozen=True, slots=True)
class ReadMark(Message):
    """The sender has read the conversation up to and including ``seq``."""

    type: ClassVar[str] = "read.mark"
    senders: ClassVar[frozenset[Role]] = BOTH
    conversation_id: Id
    seq: int


@dataclass(frozen=True, slots=True)
class ConversationTransfer(Message):
    """Hand a conversation to another professional, or to another team's queue.

    Exactly one of ``to_professional`` and ``to_team``; an optional note, which the receiving
    professional sees. ``escalate`` marks a nurse's escalation to a doctor: the same
    conversation, to a professional whose role is doctor (or to a team's queue).
    """

    type: ClassVar[str] = "conversation.transfer"
    senders: ClassVar[frozenset[Role]] = PRO_ONLY
    conversation_id: Id
    to_professional: Id | None = None
    note: Reason | None = None
    to_team: Id | None = None
    escalate: bool = False


@dataclass(frozen=True, slots=True)
class ConversationClose(Message):
    """End a conversation (either party)."""

    type: ClassVar[str] = "conversation.close"
    senders: ClassVar[frozenset[Role]] = BOTH
    conversation_id: Id
    reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class FeedbackSend(Message):
    """The client's feedback on its chat (usually after it ended): both parts optional."""

    type: ClassVar[str] = "feedback.send"
    senders: ClassVar[frozenset[Role]] = CLIENT_ONLY
    rating: int | None = None  # 1 (poor) to 5 (excellent)
    comment: Annotated[str, Limit(1000, too_long=ErrorCode.TEXT_TOO_LONG)] | None = None


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """Application-level liveness check (browsers cannot send websocket pings)."""

    type: ClassVar[str] = "ping"
    senders: ClassVar[frozenset[Role]] = BOTH
    nonce: Id | None = None


# --- Sent by the server ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationOpened(Message):
    """Answer to ``conversation.open``: keep ``token`` to resume the conversation later."""

    type: ClassVar[str] = "conversation.opened"
    token: Token
    conversation: ConversationView


@dataclass(frozen=True, slots=True)
class IntakeStep(Message):
    """What the client must do next in the intake, or how it ended.

    ``step`` is one of ``question`` (``detail`` is the question), ``identify`` (``detail``
    has the ``url`` to open), ``anonymous`` (only the bot, unless the citizen identifies
    after all), ``station`` (``detail.stations`` to choose from), ``review`` (every answer,
    to check before ``intake.confirm``), or an end: ``emergency`` (call 112 now: nothing is
    queued), ``bot``, ``guidance`` (e.g. not a resident) or ``closed`` (outside service
    hours). Once confirmed, the server queues the conversation and sends
    ``conversation.opened`` instead. ``back``: whether ``intake.back`` is possible now.
    """

    type: ClassVar[str] = "intake.step"
    step: Code
    token: Token  # for intake.resume
    detail: JsonValue | None = None
    triage: Code | None = None
    progress: JsonValue | None = None
    back: bool = False


@dataclass(frozen=True, slots=True)
class ConversationStateChanged(Message):
    """The state of a conversation: after a resume and whenever it changes."""

    type: ClassVar[str] = "conversation.state"
    conversation: ConversationView


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """Answer to ``auth``: who the professional is, their conversations and their queues."""

    type: ClassVar[str] = "welcome"
    professional: ProfessionalRef
    capacity: int
    available: bool
    teams: tuple[Id, ...]
    conversations: tuple[ConversationView, ...]
    protocol_version: int = PROTOCOL_VERSION
    # The professional's unsent text per conversation (``draft.set``), for their composers.
    drafts: JsonValue | None = None


@dataclass(frozen=True, slots=True)
class MessageNew(Message):
    """A chat message was stored; delivered to every party of the conversation."""

    type: ClassVar[str] = "message.new"
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class MessageAck(Message):
    """The sender's message is durably stored as ``seq``. ``duplicate`` marks a retry."""

    type: ClassVar[str] = "message.ack"
    conversation_id: Id
    msg_id: Id
    seq: int
    sent_at: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class MessageHistory(Message):
    """A page of stored messages, in seq order; ``up_to_date`` on the last page of a sync."""

    type: ClassVar[str] = "message.history"
    conversation_id: Id
    messages: tuple[ChatMessage, ...]
    up_to_date: bool


@dataclass(frozen=True, slots=True)
class Typing(Message):
    """The other party started or stopped typing."""

    type: ClassVar[str] = "typing"
    conversation_id: Id
    role: Code
    typing: bool


@dataclass(frozen=True, slots=True)
class Read(Message):
    """The other party has read up to ``seq``."""

    type: ClassVar[str] = "read"
    conversation_id: Id
    role: Code
    seq: int


@dataclass(frozen=True, slots=True)
class QueueSnapshot(Message):
    """The head of a team's queue (at most 50 entries) and its full length."""

    type: ClassVar[str] = "queue.snapshot"
    team: Id
    entries: tuple[QueueEntry, ...]
    length: int


@dataclass(frozen=True, slots=True)
class Error(Message):
    """Something the connection sent was refused; the connection stays open.

    ``ref`` names what was refused: the ``msg_id`` of a send, else the message type.
    """

    type: ClassVar[str] = "error"
    code: Code
    reason: Reason
    ref: Id | None = None
    retry_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class FeedbackSaved(Message):
    """Answer to ``feedback.send``: the feedback is stored."""

    type: ClassVar[str] = "feedback.saved"
    conversation_id: Id


@dataclass(frozen=True, slots=True)
class Pong(Message):
    """Answer to ``ping``."""

    type: ClassVar[str] = "pong"
    nonce: Id | None = None


INBOUND: dict[str, type[Message]] = {
    cls.type: cls
    for cls in (
        ConversationOpen,
        BotStart,
        IntakeStart,
        IntakeAnswer,
        IntakeBack,
        IntakeConfirm,
        IntakeAnonymous,
        IntakeStation,
        IntakeResume,
        IntakeIdentify,
        ConversationResume,
        Auth,
        AvailabilitySet,
        QueueTake,
        ConversationSync,
        MessageSend,
        DraftSet,
        TypingSet,
        ReadMark,
        ConversationTransfer,
        ConversationClose,
        FeedbackSend,
        Ping,
    )
}
OUTBOUND: dict[str, type[Message]] = {
    cls.type: cls
    for cls in (
        ConversationOpened,
        IntakeStep,
        ConversationStateChanged,
        Welcome,
        MessageNew,
        MessageAck,
        MessageHistory,
        Typing,
        Read,
        QueueSnapshot,
        Error,
        FeedbackSaved,
        Pong,
    )
}
MESSAGE_TYPES: dict[str, type[Message]] = {**INBOUND, **OUTBOUND}
assert len(MESSAGE_TYPES) == len(INBOUND) + len(OUTBOUND), "a type is both in and out"

for _cls in MESSAGE_TYPES.values():
    compile_schema(_cls)

# A state's wire value must be one of these.
STATE_VALUES = frozenset(s.value for s in ConversationState)
