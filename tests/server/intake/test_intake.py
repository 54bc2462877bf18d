"""The intake over a real websocket: questions, triage, the station, and the queue it leads to."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from idp import provider_for_kanava
from intake_testing import (
    answer_all,
    benign,
    identified_intake,
    identify_as,
    queue_through_intake,
    send_reviewed,
)
from kanava_testing import Chat, KanavaServer, closed_hours_file

from protocol import Codec
from protocol.messages import (
    ConversationOpen,
    ConversationOpened,
    ConversationStateChanged,
    Identified,
    IntakeAnonymous,
    IntakeAnswer,
    IntakeBack,
    IntakeConfirm,
    IntakeIdentify,
    IntakeResume,
    IntakeStart,
    IntakeStation,
    IntakeStep,
    QueueSnapshot,
    QueueTake,
)


async def test_a_chat_cannot_be_opened_past_the_intake(desk: Chat) -> None:
    """With the intake required, conversation.open is refused with a clear code."""
    client = await desk.raw_client()
    await client.send(ConversationOpen(client_name="Matti", team="kallio"))
    err = await client.expect_error("intake_required")
    assert "intake.start" in err.reason


async def test_red_flags_are_asked_first_and_an_emergency_queues_nothing(
    desk: Chat, intake_server: KanavaServer
) -> None:
    """Chest pain ends the intake at once with 112; nothing is queued and it is on record."""
    client = await desk.raw_client()
    await client.send(IntakeStart("respiratory", "fi"))
    first = await client.expect(IntakeStep)
    assert first.step == "question"
    assert isinstance(first.detail, dict) and first.detail["id"] == "red_flags"
    await client.send(IntakeAnswer("red_flags", ["chest_pain"]))
    end = await client.expect(IntakeStep)
    assert end.step == "emergency" and end.triage == "emergency"
    assert isinstance(end.detail, dict)
    assert "112" in end.detail["text"]
    assert [n["tel"] for n in end.detail["numbers"]] == ["tel:112"]
    # The intake is over: more answers are refused, and nothing reached any queue.
    await client.send(IntakeAnswer("symptoms", ["cough"]))
    await client.expect_error("intake_finished")
    # A client that reconnects is told again to call 112.
    again = await desk.raw_client()
    await again.send(IntakeResume(token=end.token))
    told = await again.expect(IntakeStep)
    assert told.step == "emergency"
    pro = await desk.open_pro("hoitaja1")
    snapshot = await pro.expect(QueueSnapshot, lambda s: s.team == "kallio")
    assert snapshot.length == 0
    db = sqlite3.connect(intake_server.database)
    rows = db.execute("SELECT topic, triage, outcome, conversation_id FROM intakes").fetchall()
    audit = db.execute("SELECT action FROM audit_events WHERE action LIKE 'intake_%'").fetchall()
    db.close()
    assert rows == [("respiratory", "emergency", "emergency", None)]
    assert audit == [("intake_emergency",)]


async def test_an_invalid_answer_is_refused_and_can_be_corrected(desk: Chat) -> None:
    """A temperature of 50 °C gets a reason in the client's language; 38.9 then goes on."""
    client = await desk.raw_client()
    await client.send(IntakeStart("respiratory", "sv"))
    step = await client.expect(IntakeStep)
    await client.send(IntakeAnswer("red_flags", ["none"]))
    # Who may chat (no identification on this server) comes right after the red flags.
    for question_id, value in (("own_age", 40), ("home_municipality", True)):
        step = await client.expect(IntakeStep)
        assert isinstance(step.detail, dict) and step.detail["id"] == question_id
        await client.send(IntakeAnswer(question_id, value))
    step = await client.expect(IntakeStep)
    assert isinstance(step.detail, dict) and step.detail["id"] == "symptoms"
    # Out of order: a question not yet asked.
    await client.send(IntakeAnswer("fever_days", 2))
    await client.expect_error("intake_out_of_order")
    await client.send(IntakeAnswer("symptoms", ["fever"]))
    step = await client.expect(IntakeStep)
    while isinstance(step.detail, dict) and step.detail["id"] != "temperature":
        await client.send(IntakeAnswer(step.detail["id"], benign(step.detail)))
        step = await client.expect(IntakeStep)
    await client.send(IntakeAnswer("temperature", 50))
    err = await client.expect_error("intake_invalid_answer")
    assert err.reason and err.ref == "intake.answer"
    await client.send(IntakeAnswer("temperature", "kuuma"))
    await client.expect_error("intake_invalid_answer")
    await client.send(IntakeAnswer("temperature", 38.9))
    step = await client.expect(IntakeStep)
    assert isinstance(step.detail, dict) and step.detail["id"] != "temperature"


async def test_a_finished_intake_queues_the_chat_with_its_summary_for_the_nurse(
    desk: Chat,
) -> None:
    """Questions, then the station: the nurse of that station's team sees triage and answers."""
    client = await desk.raw_client()
    await client.send(IntakeStart("respiratory", "fi", open_id="u" * 32))
    step = await answer_all(client, await client.expect(IntakeStep))
    assert step.step == "station" and step.triage == "routine"
    assert isinstance(step.detail, dict)
    assert {"kallio", "vuosaari"} <= {s["id"] for s in step.detail["stations"]}
    await client.send(IntakeStation("no-such-station"))
    await client.expect_error("unknown_station")
    opened = await send_reviewed(client, step)
    assert isinstance(opened, ConversationOpened)
    view = opened.conversation
    assert view.team == "kallio" and view.station == "kallio" and view.triage == "routine"
    assert view.queue_position == 1
    pro = await desk.open_pro("hoitaja1")
    await pro.send(QueueTake(conversation_id=view.conversation_id))
    taken = await pro.expect(
        ConversationStateChanged, lambda m: m.conversation.conversation_id == view.conversation_id
    )
    intake = taken.conversation.intake
    assert isinstance(intake, dict)
    assert intake["level"] == "routine"
    assert intake["lines"], "the nurse sees the answers"
    # Who the person said they are, right after the red flags (no identification here).
    assert [line["label"] for line in intake["lines"][:3]] == [
        "Hätäoireet nyt",
        "Oma ikä",
        "Kotikunta Helsinki",
    ]
    assert taken.conversation.identity is None  # identification is off on this server


async def test_an_urgent_chat_goes_before_routine_ones(desk: Chat) -> None:
    """Breathless when walking is urgent: it is next in line although it came last."""
    views = []
    for overrides in ({}, {}, {"symptoms": ["breathlessness"], "breathing": "walking"}):
        client = await desk.raw_client()
        await client.send(IntakeStart("respiratory", "en"))
        opened = await queue_through_intake(client, await client.expect(IntakeStep), **overrides)
        assert isinstance(opened, ConversationOpened)
        views.append(opened.conversation)
    assert [v.triage for v in views] == ["routine", "routine", "urgent"]
    pro = await desk.open_pro("hoitaja1")
    snapshot = await pro.expect(QueueSnapshot, lambda s: s.team == "kallio" and s.length == 3)
    order = [e.conversation_id for e in snapshot.entries]
    assert order == [views[2].conversation_id, views[0].conversation_id, views[1].conversation_id]
    assert snapshot.entries[0].triage == "urgent"


async def test_the_client_sees_its_place_and_an_estimated_wait_as_the_queue_moves(
    desk: Chat,
) -> None:
    """Second in line with a nurse online: a wait range; when the first is taken, first."""
    pro = await desk.open_pro("hoitaja1")
    clients, views = [], []
    for _ in range(2):
        client = await desk.raw_client()
        await client.send(IntakeStart("other", "fi"))
        opened = await queue_through_intake(client, await client.expect(IntakeStep))
        assert isinstance(opened, ConversationOpened)
        clients.append(client)
        views.append(opened.conversation)
    second = views[1]
    assert second.queue_position == 2
    assert second.wait_min_minutes is not None and second.wait_max_minutes is not None
    assert second.wait_min_minutes < second.wait_max_minutes
    await pro.send(QueueTake(conversation_id=views[0].conversation_id))
    moved = await clients[1].expect(
        ConversationStateChanged, lambda m: m.conversation.queue_position == 1
    )
    assert moved.conversation.wait_max_minutes is not None
    assert moved.conversation.wait_max_minutes <= second.wait_max_minutes


@pytest.fixture
def identified_desk(server_factory: Any, tmp_path: Path) -> Iterator[KanavaServer]:
    """A server whose intake identifies people at the real development provider."""
    with provider_for_kanava(tmp_path, "kanava-intake") as (port, identification):
        server: KanavaServer = server_factory(
            port=port, intake_required=True, always_open=True, **identification
        )
        yield server


async def test_an_identified_helsinki_adult_is_queued_at_their_own_station(
    identified_desk: KanavaServer, codec: Codec
) -> None:
    """Aino (00530 Helsinki) identifies; her chat queues at Kallio with her name, code masked
    for the nurse; she herself is told her name and station, and nothing of the code."""
    desk, client, nxt = await identified_intake(identified_desk, codec, "aino")
    try:
        assert isinstance(nxt, ConversationOpened), nxt
        own = nxt.conversation
        assert own.station == "kallio" and own.team == "kallio"
        assert own.identified == Identified("Aino Testinen", "kallio", "Kallion terveysasema")
        assert own.identity is None and own.intake is None
        nurse = await desk.open_pro("hoitaja1")
        await nurse.send(QueueTake(conversation_id=own.conversation_id))
        taken = await nurse.expect(ConversationStateChanged)
        view = taken.conversation
        assert isinstance(view.identity, dict) and view.identified is None
        assert view.identity["masked_code"].endswith("-****")
        assert view.identity["verified"] is True and view.client_name
        db = sqlite3.connect(identified_desk.database)
        (stored,) = db.execute("SELECT identity FROM conversations").fetchone()
        db.close()
        record = json.loads(stored)["record"]
        # The identity code is kept only encrypted.
        assert record["protected_code"].startswith("hetu1:")
        assert record["masked_code"] == view.identity["masked_code"]
        assert record["masked_code"][:6] not in record["protected_code"]
    finally:
        await desk.close_all()


async def test_an_identified_minor_is_sent_to_the_bot(
    identified_desk: KanavaServer, codec: Codec
) -> None:
    """A 16-year-old may not open an identified chat: the bot, not the queue."""
    desk, client, nxt = await identified_intake(identified_desk, codec, "ilona")
    try:
        assert isinstance(nxt, IntakeStep) and nxt.step == "bot"
        assert isinstance(nxt.detail, dict) and nxt.detail["reason"] == "under_age"
    finally:
        await desk.close_all()


async def test_an_identified_non_resident_is_guided_to_their_own_services(
    identified_desk: KanavaServer, codec: Codec
) -> None:
    """Eero lives in Espoo: guidance to his own health services, nothing queued."""
    desk, client, nxt = await identified_intake(identified_desk, codec, "eero")
    try:
        assert isinstance(nxt, IntakeStep) and nxt.step == "guidance"
        assert isinstance(nxt.detail, dict) and nxt.detail["reason"] == "not_resident"
    finally:
        await desk.close_all()


async def test_choosing_anonymity_offers_only_the_bot_and_identifying_after_all_keeps_answers(
    identified_desk: KanavaServer, codec: Codec
) -> None:
    """Identification right after the red flags; staying anonymous says "only the bot" and
    queues nothing; one step back identifies after all, the answers kept, and the chat is
    queued with them."""
    desk = Chat(identified_desk, codec)
    try:
        client = await desk.raw_client()
        await client.send(IntakeStart("other", "en"))
        first = await client.expect(IntakeStep)
        await client.send(IntakeAnswer("red_flags", ["none"]))
        step = await client.expect(IntakeStep)
        assert step.step == "identify" and step.back
        assert isinstance(step.detail, dict) and step.detail["url"].startswith("/identity/start")
        assert step.progress == {"section": 2, "sections": 5, "title": "Identification"}
        await client.send(IntakeStation("kallio"))
        await client.expect_error("intake_out_of_order")
        await client.send(IntakeAnswer("description", "a rash"))  # not before identifying
        await client.expect_error("intake_out_of_order")
        await client.send(IntakeAnonymous())
        anonymous = await client.expect(IntakeStep)
        assert anonymous.step == "anonymous" and anonymous.back
        assert isinstance(anonymous.detail, dict)
        assert "only the advice bot" in anonymous.detail["text"]
        assert "answers are kept" in anonymous.detail["text"]
        await client.send(IntakeAnonymous())  # not asked any more
        await client.expect_error("intake_out_of_order")
        assert not identified_desk.hub.open_conversations()

        await client.send(IntakeBack())  # identify after all
        again = await client.expect(IntakeStep)
        assert again.step == "identify" and isinstance(again.detail, dict)
        assert again.detail["url"] != step.detail["url"]  # a fresh link
        code = await identify_as(identified_desk, again, "aino")
        await client.send(IntakeIdentify(code))
        nxt = await client.expect(IntakeStep, lambda m: m.step != "identify")
        assert isinstance(nxt.detail, dict) and nxt.detail["id"] == "description"
        client.drop_unread(lambda m: isinstance(m, IntakeStep) and m.step == "identify")
        opened = await queue_through_intake(client, nxt)
        assert isinstance(opened, ConversationOpened)
        stored = identified_desk.hub.conversation(opened.conversation.conversation_id)
        assert stored is not None and stored.intake is not None
        assert stored.intake.summary.lines[0] == ("Danger signs now", "None of these")
        assert first.step == "question"
    finally:
        await desk.close_all()


async def test_an_unfinished_intake_resumes_after_a_reconnect(desk: Chat) -> None:
    """The client's token brings back the question it was on, with its answers kept."""
    client = await desk.raw_client()
    await client.send(IntakeStart("other", "fi"))
    await client.expect(IntakeStep)
    await client.send(IntakeAnswer("red_flags", ["none"]))
    step = await client.expect(IntakeStep)
    await client.ws.close()
    again = await desk.raw_client()
    await again.send(IntakeResume(token=step.token))
    resumed = await again.expect(IntakeStep)
    assert resumed.detail == step.detail and resumed.step == "question"
    fresh = await desk.raw_client()
    await fresh.send(IntakeResume(token="x" * 43))
    await fresh.expect_error("no_intake")


async def test_a_wrong_step_is_refused_in_the_language_of_the_intake(desk: Chat) -> None:
    """Refusals a resident may see come in their language; nothing changes, the intake goes on."""
    client = await desk.raw_client()
    await client.send(IntakeStart("other", "sv"))
    first = await client.expect(IntakeStep)
    await client.send(IntakeStation("kallio"))  # a station while a question is asked
    err = await client.expect_error("intake_out_of_order")
    assert err.reason == "Hälsostationen efterfrågas inte nu. Svara på den senaste frågan."
    await client.send(IntakeAnonymous())
    err = await client.expect_error("intake_out_of_order")
    assert err.reason.startswith("Identifiering efterfrågas inte nu")
    step = await answer_all(client, first)
    assert step.step == "station"
    await client.send(IntakeConfirm())  # nothing to confirm yet
    err = await client.expect_error("intake_out_of_order")
    assert err.reason.startswith("Skicka först när alla frågor är besvarade")
    await client.send(IntakeStation("hogwarts"))
    err = await client.expect_error("unknown_station")
    assert err.reason == "Välj en hälsostation i listan."
    opened = await send_reviewed(client, step)
    assert isinstance(opened, ConversationOpened)
    assert opened.conversation.station == "kallio" and opened.conversation.language == "sv"


async def test_an_unknown_topic_is_refused(desk: Chat) -> None:
    client = await desk.raw_client()
    await client.send(IntakeStart("astrology", "fi"))
    await client.expect_error("intake_unknown_topic")


async def test_outside_service_hours_the_client_is_told_when_the_chat_opens(
    server_factory: Any, codec: Codec, tmp_path: Path
) -> None:
    """An hours file with no open day: intake.start answers `closed` with the numbers."""
    hours_file = closed_hours_file(tmp_path)
    server = server_factory(intake_required=True, hours_file=hours_file)
    desk = Chat(server, codec)
    try:
        client = await desk.raw_client()
        await client.send(IntakeStart("other", "fi"))
        step = await client.expect(IntakeStep)
        assert step.step == "closed"
        assert isinstance(step.detail, dict)
        assert {n["number"] for n in step.detail["numbers"]} >= {"116117", "112"}
        assert step.detail["text"]
    finally:
        await desk.close_all()
