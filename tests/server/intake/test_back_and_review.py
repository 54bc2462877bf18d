"""Answering fast and safely over a real websocket: who may chat is asked right after the red
flags, the citizen goes back and edits, checks every answer in the review before sending, the
page's station is preselected; and every bad request is refused clearly, losing nothing."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from intake_testing import answer_all, queue_through_intake
from kanava_testing import Chat, ClientPeer, KanavaServer

from protocol.messages import (
    ConversationOpened,
    IntakeAnswer,
    IntakeBack,
    IntakeConfirm,
    IntakeResume,
    IntakeStart,
    IntakeStation,
    IntakeStep,
    QueueSnapshot,
)


def asked(step: IntakeStep) -> str:
    assert step.step == "question" and isinstance(step.detail, dict), step
    return str(step.detail["id"])


async def start(
    desk: Chat, topic: str = "other", lang: str = "fi", **more: Any
) -> tuple[ClientPeer, IntakeStep]:
    client = await desk.raw_client()
    await client.send(IntakeStart(topic, lang, **more))
    return client, await client.expect(IntakeStep)


async def reply(client: ClientPeer, msg: Any) -> IntakeStep:
    await client.send(msg)
    return await client.expect(IntakeStep)


def stored_intakes(server: KanavaServer) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(server.database)
    try:
        rows = db.execute("SELECT outcome, triage, answers FROM intakes").fetchall()
    finally:
        db.close()
    return [(outcome, triage, json.loads(answers)) for outcome, triage, answers in rows]


async def test_a_17_year_old_is_told_right_after_the_red_flags(
    desk: Chat, intake_server: KanavaServer
) -> None:
    """Without identification the own age comes second: 17 ends the intake there, with advice
    for a routine matter, before any symptom is asked; nothing is queued, the end is stored."""
    client, first = await start(desk, lang="sv")
    assert asked(first) == "red_flags" and not first.back
    age = await reply(client, IntakeAnswer("red_flags", ["none"]))
    assert asked(age) == "own_age"
    assert age.progress == {
        "index": 2,
        "total": 12,
        "section": 2,
        "sections": 5,
        "title": "Om dig",
    }
    end = await reply(client, IntakeAnswer("own_age", 17))
    assert end.step == "bot" and end.triage == "routine"
    assert isinstance(end.detail, dict) and end.detail["reason"] == "under_age"
    assert "skolhälsovårdare" in end.detail["text"]
    await client.send(IntakeAnswer("description", "ont i halsen"))
    await client.expect_error("intake_finished")
    assert stored_intakes(intake_server) == [
        ("bot", "routine", {"red_flags": ["none"], "own_age": 17})
    ]
    pro = await desk.open_pro("hoitaja1")
    snapshot = await pro.expect(QueueSnapshot, lambda s: s.team == "kallio")
    assert snapshot.length == 0


async def test_back_shows_each_answer_and_the_next_goes_forward(desk: Chat) -> None:
    client, first = await start(desk, lang="en")
    step = await answer_all(client, first, duration="weeks", severity=4, worsening=False)
    assert step.step == "station"  # everything answered
    back = await reply(client, IntakeBack())
    assert asked(back) == "allergies" and back.back
    back = await reply(client, IntakeBack())
    assert asked(back) == "medication"
    assert isinstance(back.detail, dict) and back.detail["answer"] is False
    # A change goes on to the next question, its answer shown, then to where it stood.
    nxt = await reply(client, IntakeAnswer("medication", True))
    assert asked(nxt) == "medication_details"  # the change made a question apply
    nxt = await reply(client, IntakeAnswer("medication_details", "Ibuprofen"))
    assert asked(nxt) == "allergies"
    assert isinstance(nxt.detail, dict) and nxt.detail["answer"] is False
    station = await reply(client, IntakeAnswer("allergies", False))
    assert station.step == "station"


async def test_the_review_lists_everything_and_an_edit_comes_back_to_it(desk: Chat) -> None:
    """The page's station preselected; the review with every answer; an edit of the severity
    back to the review, now urgent; a change of station; then Send queues it once."""
    client, first = await start(desk, station="kalasatama")
    station = await answer_all(client, first, sex="male")
    assert station.step == "station" and isinstance(station.detail, dict)
    assert station.detail["selected"] == "kalasatama"
    review = await reply(client, IntakeStation("kalasatama"))
    assert review.step == "review" and review.back and review.triage == "routine"
    assert isinstance(review.detail, dict)
    ids = [a["id"] for section in review.detail["sections"] for a in section["answers"]]
    assert ids[:4] == ["red_flags", "own_age", "home_municipality", "description"]
    assert review.detail["station"] == {
        "id": "kalasatama",
        "name": "Kalasataman terveysasema",
        "source": "chosen",
    }

    severity = await reply(client, IntakeBack(question_id="severity"))
    assert asked(severity) == "severity"
    assert isinstance(severity.detail, dict) and severity.detail["scale"] is True
    again = await reply(client, IntakeAnswer("severity", 9))
    assert again.step == "review" and again.triage == "urgent"

    change = await reply(client, IntakeBack(step="station"))
    assert change.step == "station" and isinstance(change.detail, dict)
    assert change.detail["selected"] == "kalasatama"
    review = await reply(client, IntakeStation("vuosaari"))
    assert isinstance(review.detail, dict) and review.detail["station"]["id"] == "vuosaari"
    await client.send(IntakeConfirm())
    opened = await client.expect(ConversationOpened)
    view = opened.conversation
    assert (view.station, view.team, view.triage) == ("vuosaari", "vuosaari", "urgent")
    # The nurse reads the changed answer (the client's own view carries no questionnaire).
    stored = desk.server.hub.conversation(view.conversation_id)
    assert stored is not None and stored.intake is not None and view.intake is None
    assert ("Haitta 0–10", "9") in stored.intake.summary.lines

    # A replayed confirmation queues nothing more: this socket holds the chat now, and the
    # intake is over for any other.
    await client.send(IntakeConfirm())
    await client.expect_error("already_open")
    other = await desk.raw_client()
    await other.send(IntakeResume(token=review.token))
    await other.expect_error("no_intake")
    assert len(desk.server.hub.queue("vuosaari")) == 1


async def test_bad_requests_are_refused_clearly_and_lose_nothing(desk: Chat) -> None:
    """A question that does not exist, an edit of one not reached, a review confirmed too
    early, a station out of turn, back from the first question, a value too big: each an error
    with a reason; the intake stays where it was, every answer kept."""
    client, first = await start(desk, lang="en")
    await client.send(IntakeBack())
    err = await client.expect_error("intake_out_of_order")
    assert err.reason == "This is the first question: there is nothing before it."
    for value in ("x" * 5000, ["none"] * 3000):  # beyond the protocol's limits on a value
        await client.send(IntakeAnswer("red_flags", value))
        await client.expect_error("invalid_field")
    await client.send(IntakeAnswer("red_flags", ["none"]))
    await answer_all(client, await client.expect(IntakeStep), duration="today")
    description = await reply(client, IntakeBack(question_id="description"))
    assert asked(description) == "description"

    refusals: list[tuple[Any, str, str]] = [
        (IntakeAnswer("horoscope", "Leo"), "intake_unknown_question", "no question horoscope"),
        (IntakeBack(question_id="horoscope"), "intake_unknown_question", "no question"),
        (IntakeAnswer("description", "x" * 1001), "intake_invalid_answer", "at most 1000"),
        (IntakeConfirm(), "intake_out_of_order", "every question is answered"),
        (IntakeStation("kallio"), "intake_out_of_order", "not asking for a health station"),
        (IntakeBack(step="identify"), "invalid_field", "station"),
        (IntakeBack(question_id="age", step="station"), "invalid_field", "not both"),
    ]
    for msg, code, words in refusals:
        await client.send(msg)
        err = await client.expect_error(code)
        assert words in err.reason, (msg, err.reason)
        assert err.ref == msg.type
    # Nothing was lost: the same question, its answer kept, and the intake goes on.
    again = await desk.raw_client()
    await again.send(IntakeResume(token=description.token))
    resumed = await again.expect(IntakeStep)
    assert resumed.detail == description.detail
    station = await reply(again, IntakeAnswer("description", "A rash."))
    assert station.step == "station"  # opened from there: back to it
    review = await reply(again, IntakeStation("kallio"))
    assert isinstance(review.detail, dict)
    answers = {a["id"]: a["answer"] for sec in review.detail["sections"] for a in sec["answers"]}
    assert (answers["description"], answers["duration"]) == ("A rash.", "Started today")


async def test_an_edit_not_reached_is_refused_in_the_intakes_language(desk: Chat) -> None:
    client, first = await start(desk, lang="fi")
    await reply(client, IntakeAnswer("red_flags", ["none"]))
    await client.send(IntakeBack(question_id="severity"))
    err = await client.expect_error("intake_out_of_order")
    assert (
        err.reason == "Kysymykseen ”Haitta 0–10” ei ole vielä vastattu, joten sitä ei voi muokata."
    )
    await client.send(IntakeAnswer("severity", 5))  # and not answered ahead of its turn
    err = await client.expect_error("intake_out_of_order")
    assert err.reason == "Vastaa ensin kysymykseen ”Oma ikä”."
    assert first.step == "question"


async def test_an_edit_into_an_emergency_still_ends_in_112(desk: Chat) -> None:
    client, first = await start(desk, lang="en")
    review = await queue_through_intake(client, first, station=None)
    assert isinstance(review, IntakeStep) and review.step == "station"
    review = await reply(client, IntakeStation("kallio"))
    flags = await reply(client, IntakeBack(question_id="red_flags"))
    assert asked(flags) == "red_flags"
    end = await reply(client, IntakeAnswer("red_flags", ["confusion"]))
    assert end.step == "emergency" and end.triage == "emergency"
    await client.send(IntakeConfirm())
    await client.expect_error("intake_finished")
    assert review.step == "review"
