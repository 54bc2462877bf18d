"""The intake's decisions without a socket: the order of the steps, who may chat (settled right
after the red flags), going back and editing, the review, the station, and the advice for
those turned away."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from server.core.texts import HELSINKI
from server.intake.areas import Areas, Station, load_areas
from server.intake.eligibility import Refusal, audience, turned_away
from server.intake.flow import (
    ClientIdentity,
    IntakeFlow,
    IntakeSession,
    Outcome,
    Step,
    StepKind,
)
from server.intake.hours import load_hours
from server.intake.questionnaire import AnswerError, Topics, TriageLevel, load_topics

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=HELSINKI)
# The answers of a calm "something else", by question id.
CALM: dict[str, object] = {
    "red_flags": ["none"],
    "own_age": 40,
    "home_municipality": True,
    "description": "Ihottuma kyynärvarressa.",
    "duration": "days",
    "severity": 2,
    "worsening": False,
    "age": 40,
    "sex": "male",
    "chronic": False,
    "medication": False,
    "allergies": False,
}


@pytest.fixture(scope="module")
def topics() -> Topics:
    return load_topics()


def flow_of(
    topics: Topics, *, identification: bool = False, areas: Areas | None = None
) -> IntakeFlow:
    return IntakeFlow(
        topics,
        areas or load_areas(),
        load_hours(),
        identification=identification,
        check_hours=False,
    )


def session(
    flow: IntakeFlow, topic: str = "other", lang: str = "fi", page: str | None = None
) -> IntakeSession:
    s = IntakeSession("i_1", "h", topic, lang, 0, flow.topics.start(topic, lang))
    flow.prepare(s, page)
    return s


def step(flow: IntakeFlow, s: IntakeSession) -> Step:
    return flow.next_step(s, NOW)


def asked(st: Step) -> str:
    assert st.kind is StepKind.QUESTION and st.detail is not None, st
    return str(st.detail["id"])


def answer(flow: IntakeFlow, s: IntakeSession, answers: Mapping[str, object] = CALM) -> Step:
    """Answer what is asked from ``answers`` until something else is asked."""
    st = step(flow, s)
    while st.kind is StepKind.QUESTION and asked(st) in answers:
        flow.answer(s, asked(st), answers[asked(st)], NOW)
        st = step(flow, s)
    return st


def refused(flow: IntakeFlow, s: IntakeSession, code: str, do: Any) -> str:
    """``do`` is refused with ``code``, and the step stays what it was."""
    before = (step(flow, s), s.answers())
    with pytest.raises(AnswerError) as caught:
        do()
    assert caught.value.code == code
    assert (step(flow, s), s.answers()) == before
    return caught.value.reason


def person(
    age: int, municipality: str | None = "091", postal_code: str | None = None
) -> ClientIdentity:
    born = date(NOW.year - age, 1, 1)
    return ClientIdentity(
        "Testi Henkilö", "010100-****", "hetu1:x", born, municipality, postal_code
    )


# --- the order ----------------------------------------------------------------------------------


def test_without_identification_age_and_home_come_right_after_the_red_flags(
    topics: Topics,
) -> None:
    """Red flags, then who may chat, then the symptoms: sections counted, not questions."""
    flow = flow_of(topics)
    s = session(flow, lang="en")
    first = step(flow, s)
    assert asked(first) == "red_flags" and not first.back
    assert first.progress is not None
    assert (first.progress["section"], first.progress["title"]) == (1, "Danger signs")
    flow.answer(s, "red_flags", ["none"], NOW)
    age = step(flow, s)
    assert asked(age) == "own_age" and age.back
    assert age.progress is not None
    assert {k: age.progress[k] for k in ("section", "sections", "title")} == {
        "section": 2,
        "sections": 5,
        "title": "About you",
    }
    assert age.detail is not None and "18" in str(age.detail["help"])
    flow.answer(s, "own_age", 40, NOW)
    home = step(flow, s)
    assert asked(home) == "home_municipality"
    assert home.detail is not None and home.detail["text"] == "Is Helsinki your home municipality?"
    flow.answer(s, "home_municipality", True, NOW)
    description = step(flow, s)
    assert asked(description) == "description"
    assert description.progress is not None
    assert (description.progress["section"], description.progress["title"]) == (3, "Your matter")


@pytest.mark.parametrize(
    ("answers", "kind", "reason", "words"),
    [
        ({"own_age": 17}, StepKind.BOT, "under_age", "kouluterveydenhoitaja"),
        (
            {"own_age": 40, "home_municipality": False},
            StepKind.GUIDANCE,
            "not_resident",
            "oman kuntasi",
        ),
    ],
)
def test_someone_who_may_not_chat_is_turned_away_before_the_symptoms(
    topics: Topics, answers: dict[str, object], kind: StepKind, reason: str, words: str
) -> None:
    """A 17-year-old or a resident of another municipality: told at once, with advice for a
    routine matter; nothing more is asked, and the end is final."""
    flow = flow_of(topics)
    s = session(flow)
    end = answer(flow, s, {"red_flags": ["none"], **answers})
    assert end.kind is kind and end.final and end.triage == "routine"
    assert end.detail is not None and end.detail["reason"] == reason
    assert words in end.detail["text"]
    assert [n["number"] for n in end.detail["numbers"]] == ["116117", "112"]
    assert s.outcome is Outcome(kind.value)
    assert s.answers() == {"red_flags": ["none"], **answers}
    refused(flow, s, "intake_finished", lambda: flow.answer(s, "description", "x", NOW))


@pytest.mark.parametrize(
    ("refusal", "lang", "routine_words", "urgent_words"),
    [
        (Refusal.UNDER_AGE, "fi", "kouluterveydenhoitaja", "soita nyt Päivystysapuun 116117"),
        (Refusal.UNDER_AGE, "sv", "skolhälsovårdare", "ring Jourhjälpen 116117 nu"),
        (
            Refusal.NOT_RESIDENT,
            "en",
            "your own municipality",
            "call the Medical Helpline 116117 now",
        ),
    ],
)
def test_the_advice_for_those_turned_away_follows_the_triage_so_far(
    refusal: Refusal, lang: str, routine_words: str, urgent_words: str
) -> None:
    """Routine: their own services; urgent: call 116117 now, not a generic text."""
    areas = load_areas()
    routine = turned_away(refusal, TriageLevel.ROUTINE, areas, lang)["text"]
    urgent = turned_away(refusal, TriageLevel.URGENT, areas, lang)["text"]
    assert routine_words in routine and urgent_words not in routine
    assert urgent_words in urgent and routine_words not in urgent


def test_the_flow_chooses_the_advice_by_the_level_of_the_answers_given(
    tmp_path: Path,
) -> None:
    """A screening answer that makes the matter urgent: the under-18 is told to call 116117."""
    words = '{ fi = "Teksti", sv = "Text", en = "Text" }'
    (tmp_path / "_flags.toml").write_text(
        f'screening = true\n[[questions]]\nid = "fever"\nkind = "yes_no"\ntext = {words}\n'
        f'label = {words}\n[[triage]]\nid = "f"\nlevel = "urgent"\n'
        f'when = {{ question = "fever", equals = true }}\nreason = {words}\n',
        encoding="utf-8",
    )
    (tmp_path / "t.toml").write_text(
        f'title = {words}\ndescription = {words}\n[[questions]]\ninclude = "flags"\n'
        f'[[questions]]\nid = "q"\nkind = "yes_no"\ntext = {words}\nlabel = {words}\n',
        encoding="utf-8",
    )
    flow = flow_of(load_topics(tmp_path))
    s = session(flow, "t")
    end = answer(flow, s, {"fever": True, "own_age": 15})
    assert end.kind is StepKind.BOT and end.triage == "urgent"
    assert end.detail is not None and "soita nyt Päivystysapuun 116117" in end.detail["text"]


def test_an_emergency_still_ends_first_and_stays_final(topics: Topics) -> None:
    flow = flow_of(topics, identification=True)
    s = session(flow)
    end = answer(flow, s, {"red_flags": ["chest_pain"]})
    assert end.kind is StepKind.EMERGENCY and end.triage == "emergency"
    refused(flow, s, "intake_finished", lambda: flow.back(s, NOW))


# --- identification ------------------------------------------------------------------------


def test_identification_comes_after_the_red_flags_and_anonymity_keeps_the_answers(
    topics: Topics,
) -> None:
    """Identify right after the red flags; not identifying says "only the bot" and can be
    undone; the identity's postal code chooses the station, the review offers a change."""
    flow = flow_of(topics, identification=True)
    s = session(flow, lang="en")
    identify = answer(flow, s, {"red_flags": ["none"]})
    assert identify.kind is StepKind.IDENTIFY and identify.back
    assert identify.progress == {"section": 2, "sections": 5, "title": "Identification"}
    assert identify.detail is not None and "only the advice bot" in identify.detail["text"]
    refused(flow, s, "intake_out_of_order", lambda: flow.answer(s, "description", "x", NOW))
    flow.stay_anonymous(s, NOW)
    anonymous = step(flow, s)
    assert anonymous.kind is StepKind.ANONYMOUS and not anonymous.final and anonymous.back
    assert s.outcome is None and s.answers() == {"red_flags": ["none"]}
    flow.back(s, NOW)  # identify after all
    assert step(flow, s).kind is StepKind.IDENTIFY
    flow.identify(s, person(40, "091", "00530"), NOW)
    review = answer(flow, s)
    assert review.kind is StepKind.REVIEW  # no station step: the address chose Kallio
    assert review.detail is not None
    assert review.detail["station"] == {
        "id": "kallio",
        "name": "Kallio health station",
        "source": "postal_code",
    }
    assert review.detail["identity"] == {"name": "Testi Henkilö"}
    flow.back(s, NOW, step="station")
    station = step(flow, s)
    assert station.kind is StepKind.STATION and station.detail is not None
    assert station.detail["selected"] == "kallio"
    assert "address" in station.detail["text"]
    flow.choose_station(s, "vuosaari", NOW)
    again = step(flow, s)
    assert again.kind is StepKind.REVIEW and again.detail is not None
    assert again.detail["station"]["id"] == "vuosaari"
    flow.confirm(s, NOW)
    ready = step(flow, s)
    assert ready.kind is StepKind.READY and flow.team_for(s) == "vuosaari"


@pytest.mark.parametrize(
    ("who", "kind", "reason"),
    [
        (person(17), StepKind.BOT, "under_age"),
        (person(40, "049"), StepKind.GUIDANCE, "not_resident"),
    ],
)
def test_an_identity_that_may_not_chat_is_turned_away_at_once(
    topics: Topics, who: ClientIdentity, kind: StepKind, reason: str
) -> None:
    flow = flow_of(topics, identification=True)
    s = session(flow)
    answer(flow, s, {"red_flags": ["none"]})
    flow.identify(s, who, NOW)
    end = step(flow, s)
    assert end.kind is kind and end.detail is not None and end.detail["reason"] == reason
    assert s.answers() == {"red_flags": ["none"]}  # nothing more was asked


# --- back, edit, review -------------------------------------------------------------------------


def test_back_shows_the_previous_answer_and_next_goes_on_through_the_answered_ones(
    topics: Topics,
) -> None:
    flow = flow_of(topics)
    s = session(flow)
    st = answer(
        flow,
        s,
        {
            k: CALM[k]
            for k in ("red_flags", "own_age", "home_municipality", "description", "duration")
        },
    )
    assert asked(st) == "severity"
    flow.back(s, NOW)
    shown = step(flow, s)
    assert asked(shown) == "duration" and shown.detail is not None
    assert shown.detail["answer"] == "days"
    flow.back(s, NOW)
    assert asked(step(flow, s)) == "description"
    flow.answer(s, "description", "Ihottuma, nyt myös kutinaa.", NOW)
    nxt = step(flow, s)
    assert asked(nxt) == "duration" and nxt.detail is not None and nxt.detail["answer"] == "days"
    flow.answer(s, "duration", "weeks", NOW)
    assert asked(step(flow, s)) == "severity"  # the first unanswered one again
    assert s.answers()["duration"] == "weeks"


def test_the_review_lists_every_answer_and_an_edit_returns_to_it(topics: Topics) -> None:
    flow = flow_of(topics)
    s = session(flow, page="kallio")
    station = answer(flow, s)
    assert station.kind is StepKind.STATION and station.detail is not None
    assert station.detail["selected"] == "kallio"  # the page's station, preselected
    flow.choose_station(s, "kallio", NOW)
    review = step(flow, s)
    assert review.kind is StepKind.REVIEW and review.back and review.triage == "routine"
    assert review.progress == {"section": 5, "sections": 5, "title": "Tarkistus ja lähetys"}
    assert review.detail is not None
    sections = review.detail["sections"]
    assert [section["title"] for section in sections] == [
        "Hätäoireet",
        "Tietoja sinusta",
        "Asiasi",
        "Taustatiedot",
    ]
    listed = [a["id"] for section in sections for a in section["answers"]]
    assert listed == list(CALM)
    assert sections[0]["answers"][0] == {
        "id": "red_flags",
        "label": "Hätäoireet nyt",
        "answer": "Ei mitään näistä",
    }
    flow.back(s, NOW, question_id="severity")
    edit = step(flow, s)
    assert asked(edit) == "severity" and edit.detail is not None and edit.detail["answer"] == 2
    assert edit.detail["scale"] is True
    flow.answer(s, "severity", 9, NOW)
    again = step(flow, s)
    assert again.kind is StepKind.REVIEW and again.triage == "urgent"


def test_an_edit_that_makes_a_question_apply_asks_it_before_the_review(topics: Topics) -> None:
    flow = flow_of(topics)
    s = session(flow, "respiratory")
    calm = {**CALM, "symptoms": ["cough"], "duration_days": 2, "coughing_blood": False}
    calm |= {"condition": "good", "notes": None}
    flow.answer(s, "red_flags", ["none"], NOW)
    st = answer(flow, s, calm)
    assert st.kind is StepKind.STATION
    flow.choose_station(s, "toolo", NOW)
    assert step(flow, s).kind is StepKind.REVIEW
    flow.back(s, NOW, question_id="symptoms")
    flow.answer(s, "symptoms", ["cough", "fever"], NOW)
    assert asked(step(flow, s)) == "temperature"
    flow.answer(s, "temperature", None, NOW)
    review = step(flow, s)
    assert review.kind is StepKind.REVIEW and review.detail is not None
    answers = {a["id"]: a["answer"] for sec in review.detail["sections"] for a in sec["answers"]}
    assert answers["temperature"] == "Ei vastausta"


def test_back_from_the_review_goes_to_the_station_then_the_last_question(topics: Topics) -> None:
    flow = flow_of(topics)
    s = session(flow)
    answer(flow, s)
    flow.choose_station(s, "malmi", NOW)
    flow.back(s, NOW)
    station = step(flow, s)
    assert station.kind is StepKind.STATION and station.detail is not None
    assert station.detail["selected"] == "malmi"
    flow.back(s, NOW)
    assert asked(step(flow, s)) == "allergies"


def test_an_edit_into_an_emergency_ends_in_112(topics: Topics) -> None:
    flow = flow_of(topics)
    s = session(flow)
    answer(flow, s)
    flow.choose_station(s, "kallio", NOW)
    flow.back(s, NOW, question_id="red_flags")
    flow.answer(s, "red_flags", ["severe_breathlessness"], NOW)
    end = step(flow, s)
    assert end.kind is StepKind.EMERGENCY and s.outcome is Outcome.EMERGENCY


def test_refused_requests_say_why_and_change_nothing(topics: Topics) -> None:
    flow = flow_of(topics)
    s = session(flow, lang="en")
    assert "first question" in refused(flow, s, "intake_out_of_order", lambda: flow.back(s, NOW))
    flow.answer(s, "red_flags", ["none"], NOW)
    refused(flow, s, "intake_unknown_question", lambda: flow.answer(s, "horoscope", 1, NOW))
    reason = refused(
        flow, s, "intake_out_of_order", lambda: flow.back(s, NOW, question_id="severity")
    )
    assert reason == "“Severity 0–10” has not been answered yet, so it cannot be changed."
    assert "every question" in refused(flow, s, "intake_out_of_order", lambda: flow.confirm(s, NOW))
    refused(flow, s, "invalid_field", lambda: flow.back(s, NOW, step="identify"))
    refused(flow, s, "invalid_field", lambda: flow.back(s, NOW, "red_flags", "station"))
    refused(flow, s, "intake_out_of_order", lambda: flow.choose_station(s, "kallio", NOW))
    refused(flow, s, "intake_invalid_answer", lambda: flow.answer(s, "own_age", 400, NOW))
    answer(flow, s)
    refused(flow, s, "unknown_station", lambda: flow.choose_station(s, "hogwarts", NOW))
    flow.choose_station(s, "kallio", NOW)
    flow.confirm(s, NOW)
    assert step(flow, s).kind is StepKind.READY
    refused(flow, s, "intake_out_of_order", lambda: flow.confirm(s, NOW))  # a replay


# --- the station of the page, and the start screen's words -----------------------------------


def test_the_pages_station_or_its_teams_first_station_is_preselected(topics: Topics) -> None:
    names = {"fi": "Asema", "sv": "Station", "en": "Station"}
    areas = Areas(
        "Helsinki",
        "091",
        {"fi": "Helsinki", "sv": "Helsingfors", "en": "Helsinki"},
        ("fi", "sv"),
        (
            Station("alpha", names, "north", ("00100",)),
            Station("beta", names, "north", ("00200",)),
            Station("gamma", names, "south", ("00300",)),
        ),
    )
    flow = flow_of(topics, areas=areas)
    assert session(flow, page="beta").page_station == "beta"
    assert session(flow, page="north").page_station == "alpha"  # a team: its first station
    assert session(flow, page="nowhere").page_station is None
    assert session(flow).page_station is None


@pytest.mark.parametrize("identification", [True, False])
def test_the_start_says_who_the_chat_is_for_from_the_configuration(identification: bool) -> None:
    areas = load_areas()
    fi = audience(areas, "fi", identification=identification, bot=True)
    sv = audience(areas, "sv", identification=identification, bot=False)
    assert fi["text"].startswith(
        "Hoitajan chat on 18 vuotta täyttäneille, joiden kotikunta on Helsinki."
    )
    assert sv["text"].startswith(
        "Sjukskötarens chatt är för personer som fyllt 18 år och bor i Helsingfors."
    )
    assert ("pankkitunnuksilla" in fi["text"]) is identification
    assert ("ikäsi ja kotikuntasi" in fi["text"]) is not identification
    assert any("kouluterveydenhoitaja" in line for line in fi["others"])
    assert any("neuvontabotti" in line for line in fi["others"])
    assert not any("rådgivningsboten" in line for line in sv["others"])  # no bot, not offered
