"""The hub's in-memory model: teams, professionals and conversations.

These are plain records. The hub owns and mutates them; storage persists them; the protocol
sees them only as :class:`~protocol.messages.ConversationView` snapshots built by
:meth:`Conversation.view`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from protocol import OUTCOMES, ConversationEvent, ConversationState, next_state
from protocol.messages import ConversationView, ProfessionalRef
from server.core.documents import HandoverDocument, IdentityDocument, IntakeDocument

__all__ = ["ROLES", "AssignMode", "Conversation", "IntakeFacts", "Professional", "Team"]

# A professional is a nurse or a doctor; a supervisor also reads the access log; an admin
# manages accounts (and reads the log). Bots are accounts too, never signed in by a person.
ROLES = ("nurse", "doctor", "supervisor", "admin", "bot")


class AssignMode(StrEnum):
    PICK = "pick"  # professionals choose from the queue
    AUTO = "auto"  # the hub gives the longest-waiting chat to the least busy professional


@dataclass(slots=True)
class Team:
    id: str
    name: str
    assign_mode: AssignMode = AssignMode.PICK


@dataclass(slots=True)
class Professional:
    id: str
    username: str
    display_name: str
    title: str | None
    capacity: int
    teams: tuple[str, ...]
    password_hash: str = ""
    bot: bool = False  # an advice bot (the built-in one), labelled as such to clients
    role: str = "nurse"  # one of ROLES
    oidc_subject: str | None = None  # sign-in through the organisation's OpenID provider
    # Runtime state, not stored:
    connections: int = 0
    available: bool = True
    offline_since_ms: int | None = None
    conversation_ids: set[str] = field(default_factory=set)

    @property
    def online(self) -> bool:
        return self.connections > 0

    @property
    def free_slots(self) -> int:
        return self.capacity - len(self.conversation_ids)

    @property
    def supervises(self) -> bool:
        """May read the access log (a supervisor, or an admin)."""
        return self.role in ("supervisor", "admin")

    def ref(self) -> ProfessionalRef:
        return ProfessionalRef(
            id=self.id, name=self.display_name, title=self.title, bot=self.bot, role=self.role
        )


@dataclass(frozen=True, slots=True)
class IntakeFacts:
    """What a finished intake tells about a conversation: who, about what, how urgent, where,
    with the questionnaire and (for an identified client) the identity."""

    client_name: str | None
    topic: str | None
    triage: str | None
    station_id: str | None
    intake: IntakeDocument | None
    identity: IdentityDocument | None


@dataclass(slots=True)
class Conversation:
    id: str
    token_hash: str
    team_id: str
    state: ConversationState
    created_at: int
    updated_at: int
    client_name: str | None = None
    topic: str | None = None
    language: str | None = None
    professional_id: str | None = None
    queue_rank: float | None = None
    queued_at: int | None = None
    closed_at: int | None = None
    closed_by: str | None = None
    reason: str | None = None
    read_client_seq: int = 0
    read_professional_seq: int = 0
    open_key_hash: str | None = None
    # From the intake: triage level, health station, and two documents (the questionnaire
    # with its summary; the identity with the identity code encrypted).
    triage: str | None = None
    station_id: str | None = None
    intake: IntakeDocument | None = None
    identity: IdentityDocument | None = None
    # The console's view of the chat's path: where the bot's part ends, how it reached its
    # professional, and whether a nurse escalated it to a doctor.
    bot_seq: int = 0
    handover: HandoverDocument | None = None
    escalated: bool = False
    last_seq: int = 0
    # Runtime only: the professional the last *published* state event named. Live messages
    # follow this, not professional_id, so a professional never gets a chat's messages
    # before the event that gives them the chat (and its history).
    announced_professional_id: str | None = None
    # Runtime only: the client address (limit key) that opened it, for limits per address;
    # unknown after a restart.
    client_address: str | None = None

    def apply(self, event: ConversationEvent) -> None:
        """Move along the lifecycle table; raises InvalidTransition for a wrong step."""
        self.state = next_state(self.state, event)

    @property
    def outcome(self) -> str | None:
        """The outcome a professional chose when they ended the chat (a code of
        :class:`~protocol.states.ChatOutcome`), or None.

        The console ends a chat with its record entry's outcome as the reason; any other
        reason (free text, the server's own) is no outcome.
        """
        if (
            self.state is ConversationState.CLOSED
            and self.closed_by == "professional"
            and self.reason in OUTCOMES
        ):
            return self.reason
        return None

    def view(
        self,
        professional: ProfessionalRef | None = None,
        queue_position: int | None = None,
        queue_length: int | None = None,
        wait_minutes: tuple[int, int] | None = None,
    ) -> ConversationView:
        return ConversationView(
            conversation_id=self.id,
            state=self.state.value,
            team=self.team_id,
            created_at=self.created_at,
            last_seq=self.last_seq,
            client_name=self.client_name,
            topic=self.topic,
            language=self.language,
            queue_position=queue_position,
            queue_length=queue_length,
            professional=professional,
            read_client_seq=self.read_client_seq,
            read_professional_seq=self.read_professional_seq,
            reason=self.reason,
            closed_by=self.closed_by,
            triage=self.triage,
            station=self.station_id,
            wait_min_minutes=wait_minutes[0] if wait_minutes else None,
            wait_max_minutes=wait_minutes[1] if wait_minutes else None,
            intake=self.intake.view() if self.intake else None,
            identity=self.identity.view() if self.identity else None,
            bot_seq=self.bot_seq,
            handover=self.handover.view() if self.handover else None,
            escalated=self.escalated,
            outcome=self.outcome,
        )
