"""The client's own copy of a view, and a closed chat's outcome: pure, without a socket."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from protocol import OUTCOMES, ConversationState, to_wire
from protocol.messages import ConversationStateChanged, ConversationView, Identified
from server.core.client_view import SERVER_REASONS, for_client
from server.core.documents import HandoverDocument, IdentityDocument, IntakeDocument, IntakeSummary
from server.core.model import Conversation

NOW = 1_767_225_600_000

AINO = IdentityDocument(
    name="Aino Testinen",
    masked_code="150385-****",
    protected_code="hetu1:sealed",
    birth_date="1985-03-15",
    municipality="091",
    postal_code="00530",
    fingerprint="fp-aino",
    age=40,
)
SUMMARY = IntakeSummary(
    topic="respiratory",
    title="Hengitystieinfektio",
    level="urgent",
    level_label="Kiireellinen",
    reasons=("Kuume yli 39 °C",),
    lines=(("Oireet", "Yskä"),),
    complete=True,
)


def station_names(station_id: str, language: str | None) -> str | None:
    names = {"kallio": {"fi": "Kallion terveysasema", "en": "Kallio health station"}}
    return names.get(station_id, {}).get(language or "fi")


def conversation(**changes: object) -> Conversation:
    conv = Conversation(
        id="c_aino",
        token_hash="h",
        team_id="kallio",
        state=ConversationState.ASSIGNED,
        created_at=NOW,
        updated_at=NOW,
        client_name="Aino Testinen",
        topic="Hengitystieinfektio",
        language="fi",
        professional_id="p_hoitaja1",
        triage="urgent",
        station_id="kallio",
        intake=IntakeDocument("respiratory", {"red_flags": ["none"]}, SUMMARY),
        identity=AINO,
        handover=HandoverDocument("transfer", "p_hoitaja2", "Ville", "Soita hänelle", NOW),
    )
    for name, value in changes.items():
        setattr(conv, name, value)
    return conv


def wire(view: ConversationView) -> str:
    return json.dumps(to_wire(ConversationStateChanged(view)), ensure_ascii=False)


def test_the_client_reads_its_own_name_and_station_and_nothing_for_professionals() -> None:
    view = conversation().view()
    assert isinstance(view.identity, dict) and view.intake and view.handover  # the nurse's view
    own = for_client(view, station_names)
    assert own.identified == Identified("Aino Testinen", "kallio", "Kallion terveysasema")
    assert (own.identity, own.intake, own.handover) == (None, None, None)
    sent = wire(own)
    for secret in ("150385", "masked_code", "fp-aino", "hetu1", "Kuume yli 39", "Soita hänelle"):
        assert secret not in sent, secret
    # What the client needs to show stays: the triage, the station, the state.
    assert (own.triage, own.station, own.state) == ("urgent", "kallio", "assigned")


def test_the_station_is_named_in_the_chats_language() -> None:
    own = for_client(conversation(language="en").view(), station_names)
    assert own.identified == Identified("Aino Testinen", "kallio", "Kallio health station")
    unknown = for_client(conversation(station_id="mars").view(), station_names)
    assert unknown.identified == Identified("Aino Testinen", "mars", None)


def test_a_client_who_did_not_identify_is_told_no_name() -> None:
    own = for_client(conversation(identity=None).view(), station_names)
    assert own.identified is None


@pytest.mark.parametrize(
    "reason",
    ["Soita numeroon 0700 123 456 heti", "<script>alert(1)</script>", "resolved!", "TAKEN"],
)
def test_a_professionals_own_words_on_closing_stay_with_professionals(reason: str) -> None:
    conv = conversation(state=ConversationState.CLOSED, closed_by="professional", reason=reason)
    view = conv.view()
    assert view.reason == reason and view.outcome is None  # the professional's copy
    own = for_client(view, station_names)
    assert own.reason == "closed_by_professional" and own.outcome is None
    assert reason not in wire(own)


@pytest.mark.parametrize("code", sorted(OUTCOMES))
def test_an_outcome_code_reaches_the_client_as_the_outcome(code: str) -> None:
    conv = conversation(state=ConversationState.CLOSED, closed_by="professional", reason=code)
    own = for_client(conv.view(), station_names)
    assert (own.reason, own.outcome) == (code, code)


def test_the_servers_reasons_and_the_clients_own_words_pass() -> None:
    for reason in sorted(SERVER_REASONS):
        view = replace(conversation().view(), reason=reason)
        assert for_client(view, station_names).reason == reason
    mine = conversation(state=ConversationState.CLOSED, closed_by="client", reason="sain apua")
    assert for_client(mine.view(), station_names).reason == "sain apua"


@pytest.mark.parametrize(
    ("state", "closed_by"),
    [
        (ConversationState.CLOSED, "client"),  # a client cannot claim an outcome
        (ConversationState.CLOSED, "server"),
        (ConversationState.ASSIGNED, None),  # not ended yet
        (ConversationState.QUEUED, None),
    ],
)
def test_only_a_professional_ending_the_chat_gives_an_outcome(
    state: ConversationState, closed_by: str | None
) -> None:
    conv = conversation(state=state, closed_by=closed_by, reason="booked_appointment")
    assert conv.outcome is None
    assert for_client(conv.view(), station_names).outcome is None
