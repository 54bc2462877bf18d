"""The pre-chat questionnaire: shipped data, validation of answers and config, triage, summary."""

from __future__ import annotations

import ast
import math
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from server.intake import questionnaire
from server.intake.questionnaire import (
    DEFAULT_FOLDER,
    LANGUAGES,
    AllOf,
    AnswerCode,
    AnswerError,
    AnyOf,
    Compare,
    Condition,
    Intake,
    Localized,
    QuestionKind,
    QuestionnaireError,
    Topic,
    Topics,
    TriageLevel,
    load_topics,
)

NO_RED_FLAGS = ["none"]
# Everything after the topic's own questions: a healthy 40-year-old man.
BACKGROUND: dict[str, object] = {
    "age": 40,
    "sex": "male",
    "chronic": False,
    "medication": False,
    "allergies": False,
    "notes": None,
}


@pytest.fixture(scope="module")
def topics() -> Topics:
    return load_topics()


def start(topics: Topics, topic_id: str, lang: str = "fi") -> Intake:
    return topics.start(topic_id, lang)


def answer_all(intake: Intake, script: Mapping[str, object]) -> list[str]:
    """Answer every question asked from ``script``; return the ids asked, in order."""
    asked = []
    while (question := intake.next_question()) is not None:
        assert question.id in script, f"unexpected question {question.id!r}"
        asked.append(question.id)
        intake.answer(question.id, script[question.id])
    return asked


def next_id(intake: Intake) -> str | None:
    question = intake.next_question()
    return question.id if question is not None else None


def refused(intake: Intake, question_id: str, value: object) -> AnswerError:
    """Answer, expect a refusal, and check that the refusal changed nothing."""
    before = (intake.answers(), intake.next_question(), intake.triage())
    with pytest.raises(AnswerError) as caught:
        intake.answer(question_id, value)
    assert (intake.answers(), intake.next_question(), intake.triage()) == before
    return caught.value


def at(topics: Topics, topic_id: str, script: Mapping[str, object], lang: str = "fi") -> Intake:
    """An intake with ``script`` answered in order (the next question is the one after)."""
    intake = start(topics, topic_id, lang)
    for question_id, value in script.items():
        intake.answer(question_id, value)
    return intake


# -- Shipped topics: every triage level ---------------------------------------------------------

RESPIRATORY_ROUTINE: dict[str, object] = {
    "red_flags": NO_RED_FLAGS,
    "symptoms": ["cough", "runny_nose", "fever"],
    "duration_days": 2,
    "temperature": 38.2,
    "fever_days": 1,
    "coughing_blood": False,
    "condition": "reduced",
    **BACKGROUND,
}
URINARY_ROUTINE: dict[str, object] = {
    "red_flags": NO_RED_FLAGS,
    "symptoms": ["burning", "frequency"],
    "duration_days": 1,
    "flank_pain": "none",
    "fever": False,
    "infections_past_year": 0,
    **BACKGROUND,
    "sex": "female",
    "age": 60,
}
OTHER_ROUTINE: dict[str, object] = {
    "red_flags": NO_RED_FLAGS,
    "description": "Ihottuma kyynärtaipeessa, kutisee.",
    "duration": "weeks",
    "severity": 3,
    "worsening": False,
    **BACKGROUND,
}
ROUTINE = {"respiratory": RESPIRATORY_ROUTINE, "urinary": URINARY_ROUTINE, "other": OTHER_ROUTINE}


@pytest.mark.parametrize("topic_id", ["respiratory", "urinary", "other"])
def test_an_ordinary_case_is_routine_and_finishes(topics: Topics, topic_id: str) -> None:
    """Benign answers to every question give routine, with no reasons, and finish the intake."""
    intake = start(topics, topic_id)
    asked = answer_all(intake, ROUTINE[topic_id])
    assert asked[0] == "red_flags"
    assert intake.finished
    assert intake.next_question() is None
    triage = intake.triage()
    assert triage.level is TriageLevel.ROUTINE
    assert triage.reasons == ()


@pytest.mark.parametrize(
    ("topic_id", "changes", "rule"),
    [
        ("respiratory", {"temperature": 39.4, "fever_days": 3}, "high_fever_days"),
        ("respiratory", {"fever_days": 6}, "long_fever"),
        ("respiratory", {"coughing_blood": True}, "coughing_blood"),
        ("respiratory", {"condition": "poor"}, "poor_condition"),
        (
            "respiratory",
            {"symptoms": ["breathlessness"], "breathing": "walking"},
            "breathless_walking",
        ),
        (
            "respiratory",
            {"symptoms": ["sore_throat"], "cannot_swallow": True},
            "cannot_swallow",
        ),
        ("respiratory", {"age": 0, "sex": "female"}, "infant_fever"),
        ("respiratory", {"age": 30, "sex": "female", "pregnant": "maybe"}, "pregnant_fever"),
        (
            "urinary",
            {"flank_pain": "mild", "fever": True, "temperature": None, "vomiting": False},
            "flank_pain_fever",
        ),
        ("urinary", {"fever": True, "temperature": 39.2, "vomiting": False}, "high_fever"),
        ("urinary", {"age": 28, "pregnant": "yes"}, "pregnancy"),
        ("urinary", {"symptoms": ["retention"]}, "retention"),
        (
            "urinary",
            {"age": 2, "fever": True, "temperature": 38.5, "vomiting": False},
            "small_child_fever",
        ),
        ("other", {"severity": 9}, "severe"),
        ("other", {"worsening": True}, "worsening"),
        ("other", {"age": 33, "sex": "female", "pregnant": "yes"}, "pregnancy"),
    ],
)
def test_a_worrying_answer_makes_the_case_urgent(
    topics: Topics, topic_id: str, changes: dict[str, object], rule: str
) -> None:
    """Each urgent rule of each topic fires on its answers and puts its reason first."""
    intake = start(topics, topic_id, "en")
    answer_all(intake, {**ROUTINE[topic_id], **changes})
    triage = intake.triage()
    assert intake.finished
    assert triage.level is TriageLevel.URGENT
    assert rule in triage.rules
    reason = next(r.reason.en for r in intake.topic.rules if r.id == rule)
    assert reason in triage.reasons


@pytest.mark.parametrize("topic_id", ["respiratory", "urinary", "other"])
@pytest.mark.parametrize(
    ("flags", "rule"),
    [
        (["chest_pain"], "chest_pain"),
        (["severe_breathlessness"], "severe_breathlessness"),
        (["speech_difficulty"], "stroke_signs"),
        (["face_droop", "limb_weakness"], "stroke_signs"),
        (["confusion"], "confusion"),
        (["heavy_bleeding"], "heavy_bleeding"),
    ],
)
def test_a_red_flag_is_an_emergency_that_ends_the_intake_at_once(
    topics: Topics, topic_id: str, flags: list[str], rule: str
) -> None:
    """The first question screens for emergencies; one ticked box ends the questionnaire."""
    intake = start(topics, topic_id)
    intake.answer("red_flags", flags)
    assert intake.triage().level is TriageLevel.EMERGENCY
    assert intake.triage().rules == (rule,)
    assert intake.next_question() is None
    assert intake.finished
    error = refused(intake, "symptoms" if topic_id != "other" else "description", "x")
    assert error.code == AnswerCode.FINISHED
    assert "112" in error.reason


def test_breathlessness_at_rest_is_an_emergency_that_skips_the_remaining_questions(
    topics: Topics,
) -> None:
    """An emergency found mid-way stops there, though many questions are left."""
    intake = at(
        topics,
        "respiratory",
        {"red_flags": NO_RED_FLAGS, "symptoms": ["breathlessness"], "duration_days": 1},
    )
    assert next_id(intake) == "breathing"
    intake.answer("breathing", "rest")
    assert intake.next_question() is None
    triage = intake.triage("sv")
    assert triage.level is TriageLevel.EMERGENCY
    assert triage.reasons == ("Andfåddhet även i vila",)
    assert list(intake.answers()) == ["red_flags", "symptoms", "duration_days", "breathing"]


def test_reasons_list_the_most_severe_first(topics: Topics) -> None:
    """When rules of several levels fire, the level is the highest and its reasons lead."""
    intake = at(
        topics,
        "urinary",
        {"red_flags": NO_RED_FLAGS, "symptoms": ["blood"], "duration_days": 1},
    )
    intake.answer("flank_pain", "severe")
    intake.answer("fever", True)
    intake.answer("temperature", 39.5)
    assert intake.triage().rules == ("flank_pain_fever", "high_fever", "visible_blood")
    assert intake.triage().level is TriageLevel.URGENT


def test_re_answering_into_an_emergency_ends_the_intake_there(topics: Topics) -> None:
    """A changed red-flag answer ends the intake as if it had been given first."""
    intake = at(
        topics,
        "respiratory",
        {"red_flags": NO_RED_FLAGS, "symptoms": ["cough", "fever"], "duration_days": 6},
    )
    intake.answer("temperature", 39.5)
    intake.answer("fever_days", 6)
    assert intake.triage().rules == ("high_fever_days", "long_fever")
    intake.answer("red_flags", ["confusion"])
    assert intake.triage().rules == ("confusion",)
    assert intake.triage().level is TriageLevel.EMERGENCY
    assert intake.answers() == {"red_flags": ["confusion"]}
    assert intake.finished


def test_a_partial_answer_set_is_already_triaged(topics: Topics) -> None:
    """Triage works before the end: rules that need unanswered questions just do not fire."""
    intake = at(topics, "urinary", {"red_flags": NO_RED_FLAGS, "symptoms": ["blood"]})
    assert not intake.finished
    assert intake.triage().level is TriageLevel.ROUTINE
    assert intake.triage("en").reasons == ("Visible blood in the urine",)


# -- Validation of each kind --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("chest_pain", "Valitse yksi tai useampi vaihtoehto."),
        ([], "Valitse yksi tai useampi vaihtoehto."),
        ([1], "Valitse yksi tai useampi vaihtoehto."),
        (["chest_pain", "headache"], "Vaihtoehtoa headache ei ole."),
        (
            ["none", "confusion"],
            "Vaihtoehtoa ”Ei mitään näistä” ei voi valita yhdessä muiden kanssa.",
        ),
        (None, "Tähän kysymykseen on vastattava."),
    ],
)
def test_multiple_choice_rejects_bad_values(topics: Topics, value: object, reason: str) -> None:
    """A list of known option ids is needed, and "none of these" stands alone."""
    error = refused(start(topics, "respiratory"), "red_flags", value)
    assert (error.code, error.reason, error.question) == (
        "intake_invalid_answer",
        reason,
        "red_flags",
    )


def test_multiple_choice_is_normalized_to_option_order_without_duplicates(
    topics: Topics,
) -> None:
    """The stored choice does not depend on the order or repetition the client sent."""
    intake = at(topics, "respiratory", {"red_flags": ("none",)})
    intake.answer("symptoms", ["fever", "cough", "fever"])
    assert intake.answers()["symptoms"] == ["cough", "fever"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (2, "Choose one option."),
        (["mild"], "Choose one option."),
        ("sharp", "There is no option sharp."),
        (None, "This question needs an answer."),
    ],
)
def test_single_choice_rejects_bad_values(topics: Topics, value: object, reason: str) -> None:
    """One option id is needed; errors come in the client's language."""
    intake = at(
        topics,
        "urinary",
        {"red_flags": NO_RED_FLAGS, "symptoms": ["burning"], "duration_days": 1},
        lang="en",
    )
    error = refused(intake, "flank_pain", value)
    assert (error.code, error.reason) == ("intake_invalid_answer", reason)


@pytest.mark.parametrize("value", ["yes", 1, 0, None, [True]])
def test_yes_no_takes_only_a_bool(topics: Topics, value: object) -> None:
    """Neither strings nor numbers pass for yes/no."""
    intake = at(
        topics,
        "urinary",
        {"red_flags": NO_RED_FLAGS, "symptoms": ["burning"], "duration_days": 1},
        lang="sv",
    )
    intake.answer("flank_pain", "none")
    error = refused(intake, "fever", value)
    assert error.code == "intake_invalid_answer"
    assert error.reason in ("Svara ja eller nej.", "Frågan måste besvaras.")


def respiratory_at_temperature(topics: Topics, lang: str = "fi") -> Intake:
    return at(
        topics,
        "respiratory",
        {"red_flags": NO_RED_FLAGS, "symptoms": ["fever"], "duration_days": 2},
        lang=lang,
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "Anna vastaus numerona."),
        ("38.5", "Anna vastaus numerona."),
        (math.nan, "Anna vastaus numerona."),
        (math.inf, "Anna vastaus numerona."),
        (33.9, "Anna arvo väliltä 34,0–43,0 °C."),
        (43.1, "Anna arvo väliltä 34,0–43,0 °C."),
        (10**400, "Anna arvo väliltä 34,0–43,0 °C."),
        (38.55, "Anna arvo 0,1 °C tarkkuudella."),
    ],
)
def test_a_number_must_be_a_finite_number_in_range_and_step(
    topics: Topics, value: object, reason: str
) -> None:
    """Temperature takes 34–43 °C in tenths; the reason shows the range in Finnish style."""
    error = refused(respiratory_at_temperature(topics), "temperature", value)
    assert (error.code, error.reason) == ("intake_invalid_answer", reason)


def test_range_errors_read_naturally_in_every_language(topics: Topics) -> None:
    """The same refusal is worded, and its numbers written, as each language does."""
    reasons = {
        lang: refused(respiratory_at_temperature(topics, lang), "temperature", 50).reason
        for lang in LANGUAGES
    }
    assert reasons == {
        "fi": "Anna arvo väliltä 34,0–43,0 °C.",
        "sv": "Ange ett värde mellan 34,0 och 43,0 °C.",
        "en": "Give a value between 34.0 and 43.0 °C.",
    }


def test_a_number_is_normalized_to_its_step(topics: Topics) -> None:
    """An integer or a float with binary noise becomes the temperature a person meant."""
    intake = respiratory_at_temperature(topics)
    intake.answer("temperature", 0.1 + 38.6)  # 38.7 in binary is not exact
    assert intake.answers()["temperature"] == 38.7
    intake.answer("temperature", 38)
    assert intake.answers()["temperature"] == 38.0
    assert isinstance(intake.answers()["temperature"], float)


def test_an_integer_question_rejects_fractions_and_accepts_whole_floats(topics: Topics) -> None:
    """Days are whole: 2.5 is refused, 3.0 (as some JSON encoders send it) becomes 3."""
    intake = at(topics, "respiratory", {"red_flags": NO_RED_FLAGS, "symptoms": ["cough"]})
    error = refused(intake, "duration_days", 2.5)
    assert (error.code, error.reason) == ("intake_invalid_answer", "Anna kokonaisluku.")
    error = refused(intake, "duration_days", -1)
    assert error.reason == "Anna arvo väliltä 0–365 vrk."
    intake.answer("duration_days", 3.0)
    assert intake.answers()["duration_days"] == 3
    assert type(intake.answers()["duration_days"]) is int


def other_at_description(topics: Topics, lang: str = "fi") -> Intake:
    return at(topics, "other", {"red_flags": NO_RED_FLAGS}, lang=lang)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (42, "Answer with text."),
        (["pain"], "Answer with text."),
        ("", "This question needs an answer."),
        ("   \n ", "This question needs an answer."),
        (None, "This question needs an answer."),
        ("x" * 1001, "The answer is too long: at most 1000 characters."),
        ("pain\x00", "The answer contains characters that are not allowed."),
        ("pain\x1b[2J", "The answer contains characters that are not allowed."),
        ("pain \ud800", "The answer contains characters that are not allowed."),
    ],
)
def test_free_text_rejects_non_text_empty_long_and_control_characters(
    topics: Topics, value: object, reason: str
) -> None:
    """A required text is 1..max_length printable characters after stripping."""
    error = refused(other_at_description(topics, "en"), "description", value)
    assert (error.code, error.reason) == ("intake_invalid_answer", reason)


def test_free_text_is_stripped_and_keeps_newlines_only_where_multiline(topics: Topics) -> None:
    """Line breaks are fine in a description but not in a one-line field."""
    intake = other_at_description(topics)
    intake.answer("description", "  Päänsärkyä\r\niltaisin.\n" + " " * 5000)
    assert intake.answers()["description"] == "Päänsärkyä\niltaisin."


def test_a_one_line_text_refuses_a_line_break(topics: Topics) -> None:
    """chronic_details is a one-line field, so a newline is a control character there."""
    intake = at(
        topics,
        "other",
        {
            "red_flags": NO_RED_FLAGS,
            "description": "Selkäkipu",
            "duration": "days",
            "severity": 4,
            "worsening": False,
            "age": 40,
            "sex": "male",
            "chronic": True,
        },
    )
    error = refused(intake, "chronic_details", "astma\ndiabetes")
    assert error.code == "intake_invalid_answer"
    intake.answer("chronic_details", " astma, diabetes ")
    assert intake.answers()["chronic_details"] == "astma, diabetes"


def test_an_optional_question_can_be_skipped_with_none_or_an_empty_text(topics: Topics) -> None:
    """Skipping stores None; a skipped temperature hides the fever-duration question."""
    intake = respiratory_at_temperature(topics)
    intake.answer("temperature", None)
    assert intake.answers()["temperature"] is None
    assert next_id(intake) == "condition"  # fever_days needs a temperature
    complete = at(topics, "other", {k: v for k, v in OTHER_ROUTINE.items() if k != "notes"})
    assert complete.finished
    intake = start(topics, "respiratory")
    answer_all(intake, {**RESPIRATORY_ROUTINE, "notes": "  "})
    assert intake.answers()["notes"] is None


# -- Order, conditions and changes --------------------------------------------------------------


def test_only_the_current_question_may_be_answered(topics: Topics) -> None:
    """Skipping ahead is refused with the label of the question to answer first."""
    intake = start(topics, "respiratory", "en")
    error = refused(intake, "duration_days", 3)
    assert (error.code, error.reason, error.question) == (
        "intake_out_of_order",
        "Please answer “Danger signs now” first.",
        "duration_days",
    )


def test_a_hidden_question_cannot_be_answered(topics: Topics) -> None:
    """Without fever among the symptoms the temperature question does not apply."""
    intake = at(topics, "respiratory", {"red_flags": NO_RED_FLAGS, "symptoms": ["cough"]})
    error = refused(intake, "temperature", 38.5)
    assert error.code == "intake_out_of_order"
    assert (
        error.reason == "Kysymys ”Korkein lämpö” ei koske sinua aiempien vastaustesi perusteella."
    )


@pytest.mark.parametrize("question_id", ["nonexistent", "", 3, None])
def test_an_unknown_question_is_refused(topics: Topics, question_id: Any) -> None:
    """A question id the topic does not have gets its own code."""
    error = refused(start(topics, "other", "sv"), question_id, "x")
    assert error.code == "intake_unknown_question"
    assert error.reason.startswith("Frågeformuläret har ingen fråga")


def test_conditional_questions_appear_only_for_matching_answers(topics: Topics) -> None:
    """Temperature, breathing and swallowing questions follow the symptoms chosen."""
    few = start(topics, "respiratory")
    asked_few = answer_all(few, {**RESPIRATORY_ROUTINE, "symptoms": ["runny_nose"]})
    many = start(topics, "respiratory")
    asked_many = answer_all(
        many,
        {
            **RESPIRATORY_ROUTINE,
            "symptoms": ["cough", "sore_throat", "fever", "breathlessness"],
            "breathing": "exertion",
            "cannot_swallow": False,
        },
    )
    conditional = {"temperature", "fever_days", "breathing", "coughing_blood", "cannot_swallow"}
    assert conditional.isdisjoint(asked_few)
    assert conditional <= set(asked_many)
    assert asked_many.index("temperature") < asked_many.index("fever_days")


@pytest.mark.parametrize(
    ("age", "sex", "asked"),
    [
        (30, "female", True),
        (30, "other", True),
        (30, "male", False),
        (60, "female", False),
        (8, "female", False),
        (12, "female", True),
        (55, "female", True),
    ],
)
def test_pregnancy_is_asked_only_when_possible(
    topics: Topics, age: int, sex: str, asked: bool
) -> None:
    """The background section asks about pregnancy for women and others aged 12 to 55."""
    intake = at(
        topics,
        "other",
        {
            **{k: OTHER_ROUTINE[k] for k in ("red_flags", "description", "duration")},
            "severity": 2,
            "worsening": False,
            "age": age,
            "sex": sex,
        },
    )
    question = intake.next_question()
    assert question is not None
    assert (question.id == "pregnant") is asked


def test_re_answering_an_earlier_question_drops_answers_that_no_longer_apply(
    topics: Topics,
) -> None:
    """Removing fever from the symptoms forgets the temperature and fever duration only."""
    intake = at(
        topics,
        "respiratory",
        {
            "red_flags": NO_RED_FLAGS,
            "symptoms": ["cough", "fever"],
            "duration_days": 4,
            "temperature": 38.4,
            "fever_days": 2,
            "coughing_blood": False,
        },
    )
    intake.answer("symptoms", ["cough"])
    assert intake.answers() == {
        "red_flags": ["none"],
        "symptoms": ["cough"],
        "duration_days": 4,
        "coughing_blood": False,
    }
    assert next_id(intake) == "condition"


def test_re_answering_can_open_a_question_before_later_answers(topics: Topics) -> None:
    """Adding fever asks for the temperature next while keeping what came after."""
    intake = at(
        topics,
        "respiratory",
        {
            "red_flags": NO_RED_FLAGS,
            "symptoms": ["cough"],
            "duration_days": 4,
            "coughing_blood": False,
        },
    )
    intake.answer("symptoms", ["cough", "fever"])
    assert next_id(intake) == "temperature"
    assert intake.answers()["coughing_blood"] is False
    assert refused(intake, "condition", "good").code == "intake_out_of_order"
    intake.answer("temperature", 37.6)
    assert next_id(intake) == "condition"


def test_a_complete_questionnaire_still_takes_changes_until_an_emergency(
    topics: Topics,
) -> None:
    """Complete, the answers can still change (the person checks them before sending, and
    the triage follows); only an emergency is final."""
    intake = start(topics, "other")
    answer_all(intake, OTHER_ROUTINE)
    assert intake.finished and intake.triage().level is TriageLevel.ROUTINE
    intake.answer("severity", 9)
    assert intake.finished and intake.triage().level is TriageLevel.URGENT
    intake.answer("red_flags", ["heavy_bleeding"])
    error = refused(intake, "severity", 2)
    assert error.code == "intake_finished" and "112" in error.reason


@pytest.mark.parametrize(
    ("condition", "true_for", "false_for"),
    [
        (Compare("q", "equals", "a"), ["a"], ["b", None]),
        (Compare("q", "in", frozenset({"a", "b"})), ["a", "b"], ["c", None]),
        (Compare("q", "not_in", frozenset({"a"})), ["b"], ["a", None]),
        (Compare("q", "includes_any", frozenset({"x", "z"})), [("x",), ("x", "y")], [("y",)]),
        (Compare("q", "includes_all", frozenset({"x", "y"})), [("x", "y", "z")], [("x",)]),
        (Compare("q", "excludes", frozenset({"y"})), [("x",), ("x", "z")], [("x", "y"), None]),
        (Compare("q", "at_least", 38), [38, 39.5], [37.9, None]),
        (Compare("q", "above", 38), [38.1], [38, None]),
        (Compare("q", "at_most", 38), [38, 37], [38.1, None]),
        (Compare("q", "below", 38), [37.9], [38, None]),
        (Compare("q", "equals", True), [True], [False, None]),
        (Compare("q", "equals", False), [False], [True, None]),
        (Compare("q", "answered", True), ["text", False, 0], [None]),
        (Compare("q", "answered", False), [None], ["text", False, 0]),
        (AllOf((Compare("q", "above", 37), Compare("q", "below", 39))), [38], [37, 39, None]),
        (AnyOf((Compare("q", "below", 37.5), Compare("q", "above", 39))), [37, 40], [38, None]),
    ],
)
def test_conditions_hold_only_for_matching_answers_and_never_for_missing_ones(
    condition: Condition, true_for: list[Any], false_for: list[Any]
) -> None:
    """Each test of the config language; an unanswered question satisfies none of them."""
    for value in true_for:
        assert condition.holds({"q": value}), value
    for value in false_for:
        assert not condition.holds({"q": value}), value
    assert not condition.holds({})
    assert condition.questions() == {"q"}


# -- Restore, views and summary -----------------------------------------------------------------


@pytest.mark.parametrize("topic_id", ["respiratory", "urinary", "other"])
def test_restore_rebuilds_the_same_intake(topics: Topics, topic_id: str) -> None:
    """Stored answers, complete or partial or with a gap, give back an equal intake."""
    intake = start(topics, topic_id)
    answer_all(intake, ROUTINE[topic_id])
    restored = Intake.restore(intake.topic, "sv", intake.answers())
    assert restored.answers() == intake.answers()
    assert restored.finished
    assert restored.summary("fi") == intake.summary("fi")
    partial = at(topics, topic_id, dict(list(ROUTINE[topic_id].items())[:3]))
    again = Intake.restore(partial.topic, "fi", partial.answers())
    assert again.answers() == partial.answers()
    assert again.next_question() == partial.next_question()


def test_restore_keeps_a_gap_opened_by_a_changed_answer(topics: Topics) -> None:
    """An intake waiting for a newly shown question survives a restore as it was."""
    intake = at(
        topics,
        "respiratory",
        {
            "red_flags": NO_RED_FLAGS,
            "symptoms": ["cough"],
            "duration_days": 4,
            "coughing_blood": True,
        },
    )
    intake.answer("symptoms", ["cough", "fever"])
    restored = Intake.restore(intake.topic, "fi", intake.answers())
    assert restored.answers() == intake.answers()
    assert restored.next_question() == intake.next_question()
    assert restored.triage() == intake.triage()


def test_restore_revalidates_stored_answers(topics: Topics) -> None:
    """Invalid, unknown or inapplicable answers are refused, or dropped when not strict."""
    topic = topics["urinary"]
    good = {"red_flags": ["none"], "symptoms": ["burning"], "duration_days": 1}
    cases = {
        "intake_invalid_answer": {**good, "duration_days": 1000},
        "intake_unknown_question": {**good, "shoe_size": 43},
        "intake_out_of_order": {**good, "temperature": 38.0},  # fever was never answered
    }
    for code, stored in cases.items():
        with pytest.raises(AnswerError) as caught:
            Intake.restore(topic, "fi", stored)
        assert caught.value.code == code
        lenient = Intake.restore(topic, "fi", stored, strict=False)
        expected = (
            good
            if code != "intake_invalid_answer"
            else {"red_flags": ["none"], "symptoms": ["burning"]}
        )
        assert lenient.answers() == expected


def test_restore_stops_at_an_emergency(topics: Topics) -> None:
    """Answers after an emergency are not kept, as they would never have been asked."""
    stored = {"red_flags": ["chest_pain"], "symptoms": ["cough"]}
    with pytest.raises(AnswerError) as caught:
        Intake.restore(topics["respiratory"], "en", stored)
    assert caught.value.code == "intake_out_of_order"
    lenient = Intake.restore(topics["respiratory"], "en", stored, strict=False)
    assert lenient.answers() == {"red_flags": ["chest_pain"]}
    assert lenient.triage().level is TriageLevel.EMERGENCY


def view_of(intake: Intake, question_id: str) -> dict[str, Any]:
    question = intake.topic.question(question_id)
    assert question is not None
    return intake.question_view(question)


def test_question_view_describes_each_kind_for_the_client(topics: Topics) -> None:
    """The wire view carries the texts in the client's language and what each kind needs."""
    intake = respiratory_at_temperature(topics, "sv")
    red_flags = view_of(intake, "red_flags")
    assert red_flags["kind"] == "multi"
    assert red_flags["text"] == "Har du något av följande symtom just nu?"
    assert red_flags["answer"] == ["none"]
    assert red_flags["options"][-1] == {"id": "none", "label": "Inget av detta", "exclusive": True}
    assert view_of(intake, "temperature") == {
        "id": "temperature",
        "kind": "number",
        "text": "Vilken är den högsta temperatur du har mätt?",
        "help": "Om du inte har mätt temperaturen kan du hoppa över frågan.",
        "required": False,
        # 11 apply so far: fever_days, pregnancy and the rest wait for answers that decide them.
        "progress": {"index": 4, "total": 11},
        "unit": "°C",
        "min": 34,
        "max": 43,
        "step": 0.1,
        "integer": False,
        "scale": False,
    }
    intake.answer("temperature", 38.0)
    assert view_of(intake, "fever_days")["progress"] == {"index": 5, "total": 12}
    yes_no = view_of(intake, "coughing_blood")
    assert yes_no["choices"] == [{"value": True, "label": "Ja"}, {"value": False, "label": "Nej"}]
    assert "answer" not in yes_no
    text = view_of(intake, "notes")
    assert (text["max_length"], text["multiline"], text["required"]) == (500, True, False)
    single = view_of(intake, "condition")
    assert [o["id"] for o in single["options"]] == ["good", "reduced", "poor"]


def test_summary_puts_triage_first_and_lists_answers_in_the_professionals_language(
    topics: Topics,
) -> None:
    """A Swedish-speaking resident's answers read in Finnish, urgent reasons on top."""
    intake = start(topics, "urinary", "sv")
    answer_all(
        intake,
        {
            **URINARY_ROUTINE,
            "symptoms": ["burning", "blood"],
            "flank_pain": "severe",
            "fever": True,
            "temperature": 39.1,
            "vomiting": False,
            "age": 30,
            "pregnant": "no",
            "medication": True,
            "medication_details": "Levaxin",
        },
    )
    summary = intake.summary("fi")
    assert summary.level is TriageLevel.URGENT
    assert summary.reasons == (
        "Kylkikipu ja kuume (munuaisaltaan tulehdus?)",
        "Korkea kuume (39 °C tai yli)",
        "Näkyvää verta virtsassa",
    )
    lines = dict(summary.lines)
    assert lines["Oireet"] == "Kirvely tai kipu virtsatessa, Verta virtsassa"
    assert lines["Korkein lämpö"] == "39,1 °C"
    assert lines["Ikä"] == "30 v"
    assert lines["Kylkikipu"] == "Kovaa kipua"
    assert lines["Kuume tai vilunväristykset"] == "Kyllä"
    assert lines["Lääkkeet"] == "Levaxin"
    assert "Lisätiedot" not in lines  # skipped
    assert [label for label, _ in summary.lines][:2] == ["Hätäoireet nyt", "Oireet"]
    data = summary.to_dict()
    assert list(data)[:3] == ["level", "level_label", "reasons"]
    assert data["level"] == "urgent" and data["complete"] is True
    assert summary.to_text().splitlines()[:2] == [
        "KIIREELLINEN – Virtsatieoireet",
        "! Kylkikipu ja kuume (munuaisaltaan tulehdus?)",
    ]
    english = intake.summary("en")
    assert dict(english.lines)["Highest temperature"] == "39.1 °C"
    assert english.level_label == "Urgent"


def test_summary_of_an_emergency_is_short_and_marked_incomplete(topics: Topics) -> None:
    """An intake ended by a red flag still gives the professional what is known."""
    intake = at(topics, "other", {"red_flags": ["face_droop", "speech_difficulty"]}, lang="en")
    summary = intake.summary("sv")
    assert summary.to_text().splitlines() == [
        "NÖDSITUATION – Något annat",
        "! Tecken på stroke (ansikte, arm eller ben, tal)",
        "Akuta varningstecken: Ena mungipan hänger eller ena sidan av ansiktet är slapp, "
        "Plötsligt sluddrigt tal eller svårt att hitta ord",
    ]
    assert summary.complete is True  # finished: nothing more will be asked


def test_topic_menu_and_unknown_topic(topics: Topics) -> None:
    """The picker lists the topics in their order; an unknown one is refused in the language."""
    assert [t["id"] for t in topics.menu("en")] == ["respiratory", "urinary", "other"]
    assert topics.menu("sv")[1] == {
        "id": "urinary",
        "title": "Urinvägsbesvär",
        "description": "Sveda när du kissar, täta trängningar eller blod i urinen",
    }
    with pytest.raises(AnswerError) as caught:
        topics.start("dental", "sv")
    assert (caught.value.code, caught.value.reason) == (
        "intake_unknown_topic",
        "Okänt ämne: dental.",
    )
    with pytest.raises(ValueError):
        Intake(topics["other"], "de")


# -- The shipped files --------------------------------------------------------------------------


def localized_tables(node: object, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every table in a raw TOML document that holds a text in some language."""
    if isinstance(node, dict):
        if set(node) & set(LANGUAGES):
            yield path, node
        else:
            for key, value in node.items():
                yield from localized_tables(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from localized_tables(item, f"{path}[{i}]")


@pytest.mark.parametrize("path", sorted(DEFAULT_FOLDER.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_text_is_in_finnish_swedish_and_english(path: Path) -> None:
    """Read straight from the file: each text has exactly fi, sv and en, none left empty."""
    with path.open("rb") as file:
        document = tomllib.load(file)
    tables = list(localized_tables(document))
    assert len(tables) > 10
    for where, table in tables:
        assert sorted(table) == sorted(LANGUAGES), f"{path.name}{where}"
        assert all(isinstance(t, str) and t.strip() for t in table.values()), f"{where}"


def all_question_texts(topic: Topic) -> Iterator[Localized]:
    for question in topic.questions:
        yield question.text
        yield question.label
        yield from (option.label for option in question.options)


def test_shipped_questions_are_really_translated(topics: Topics) -> None:
    """No question text or label is left in one language for all three (a forgotten copy)."""
    for topic in topics.values():
        for text in all_question_texts(topic):
            assert len({text.fi, text.sv, text.en}) == 3, text


def test_every_shipped_topic_screens_red_flags_first_and_asks_the_background(
    topics: Topics,
) -> None:
    """The emergency screen comes first everywhere, with emergency rules and a 'none' option."""
    assert set(topics) == {"respiratory", "urinary", "other"}
    for topic in topics.values():
        first = topic.questions[0]
        assert first.id == "red_flags" and first.kind is QuestionKind.MULTI
        assert [o.id for o in first.options if o.exclusive] == ["none"]
        emergencies = {r.id for r in topic.rules if r.level is TriageLevel.EMERGENCY}
        assert {"chest_pain", "severe_breathlessness", "stroke_signs", "confusion"} <= emergencies
        ids = [q.id for q in topic.questions]
        assert {"age", "sex", "pregnant", "chronic", "medication", "allergies"} <= set(ids)
        levels = {r.level for r in topic.rules}
        assert {TriageLevel.URGENT, TriageLevel.EMERGENCY} <= levels


def test_the_engine_is_pure() -> None:
    """No asyncio, aiohttp or sockets in the questionnaire module."""
    tree = ast.parse(Path(questionnaire.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported.isdisjoint({"asyncio", "aiohttp", "aiosqlite", "socket", "time", "datetime"})


# -- Sections and scales ------------------------------------------------------------------------


def test_the_red_flags_are_a_screening_section_and_the_rest_fall_into_titled_sections(
    topics: Topics,
) -> None:
    """The progress's sections: the red flags (screened first), the topic's own questions,
    the background; "anything else?" after the background stays in it, so the progress
    never goes back."""
    topic = topics["respiratory"]
    sections = [(q.id, q.section, q.screening) for q in topic.questions]
    assert sections[0] == ("red_flags", "red_flags", True)
    assert ("symptoms", "", False) in sections and ("age", "background", False) in sections
    assert sections[-1] == ("notes", "background", False)
    assert [q.id for q in topic.questions if q.screening] == ["red_flags"]
    titles = {key: topic.section_title(key, "en") for key in ("red_flags", "", "background")}
    assert titles == {"red_flags": "Danger signs", "": "Symptoms", "background": "Background"}
    assert topics["other"].section_title("", "sv") == "Ditt ärende"
    assert topics["urinary"].section_title("background", "fi") == "Taustatiedot"


def test_a_whole_number_from_zero_to_ten_is_a_scale(topics: Topics) -> None:
    """The severity 0–10 shows as a row of buttons; an age or a temperature does not."""
    topic = topics["other"]
    scales = {q.id for q in topic.questions if q.is_scale}
    assert scales == {"severity"}
    intake = at(
        topics, "other", {"red_flags": NO_RED_FLAGS, "description": "x", "duration": "days"}
    )
    view = intake.question_view(topic.question("severity"))  # type: ignore[arg-type]
    assert (view["scale"], view["min"], view["max"]) == (True, 0, 10)
    age = intake.question_view(topic.question("age"))  # type: ignore[arg-type]
    assert age["scale"] is False


def test_a_screening_section_must_come_first(tmp_path: Path) -> None:
    """A screening section after another question would not screen first: refused."""
    flags = "screening = true\n" + question("flag")
    with pytest.raises(QuestionnaireError, match="must come before every other question"):
        load_one(tmp_path, question("q1") + '[[questions]]\ninclude = "flags"\n', flags=flags)
    topic = load_one(tmp_path, '[[questions]]\ninclude = "flags"\n' + question("q1"), flags=flags)[
        "t"
    ]
    assert [(q.id, q.screening) for q in topic.questions] == [("flag", True), ("q1", False)]


# -- Broken config files ------------------------------------------------------------------------

L = '{ fi = "Teksti", sv = "Text", en = "Text" }'
HEADER = f"title = {L}\ndescription = {L}\n"


def question(qid: str, kind: str = "yes_no", extra: str = "") -> str:
    return f'[[questions]]\nid = "{qid}"\nkind = "{kind}"\ntext = {L}\nlabel = {L}\n{extra}\n'


def choice(qid: str, kind: str = "single", extra: str = "") -> str:
    options = "".join(
        f'[[questions.options]]\nid = "{o}"\nlabel = {L}\n' for o in ("a", "b", "none")
    )
    return question(qid, kind, extra) + options


def load_one(tmp_path: Path, body: str, **sections: str) -> Topics:
    (tmp_path / "t.toml").write_text(HEADER + body, encoding="utf-8")
    for name, text in sections.items():
        (tmp_path / f"_{name}.toml").write_text(text, encoding="utf-8")
    return load_topics(tmp_path)


def test_a_minimal_valid_folder_loads(tmp_path: Path) -> None:
    """The snippets below are valid until each one breaks one thing."""
    topics = load_one(
        tmp_path,
        question("q1")
        + choice("q2", extra='when = { question = "q1", equals = true }')
        + question("q3", "number", "min = 0\nmax = 10\nstep = 0.5")
        + '[[triage]]\nid = "note"\nlevel = "routine"\n'
        + f'when = {{ question = "q1", equals = false }}\nreason = {L}\n'
        + '[[triage]]\nid = "r"\nlevel = "urgent"\n'
        + f'when = {{ question = "q3", at_least = 5 }}\nreason = {L}\n',
    )
    topic = topics["t"]
    assert [q.id for q in topic.questions] == ["q1", "q2", "q3"]
    intake = Intake(topic, "fi")
    intake.answer("q1", False)
    intake.answer("q3", 5.5)
    assert intake.triage().level is TriageLevel.URGENT
    assert intake.triage().rules == ("r", "note")  # by severity, not file order


@pytest.mark.parametrize(
    ("body", "sections", "message"),
    [
        (
            question("q1").replace(L, '{ fi = "Teksti", en = "Text" }', 1),
            {},
            "t.toml: questions[0].text.sv: missing",
        ),
        (
            question("q1").replace(L, '{ fi = "Teksti", sv = "", en = "Text" }', 1),
            {},
            "t.toml: questions[0].text.sv: expected a non-empty text",
        ),
        (
            question("q1").replace(L, '{ fi = "a", sv = "b", en = "c", de = "d" }', 1),
            {},
            "t.toml: questions[0].text.de: unknown key",
        ),
        (question("q1") + question("q1"), {}, "questions[1].id: duplicate question id 'q1'"),
        (question("q1", "slider"), {}, "questions[0].kind: expected one of single, multi"),
        (question("q1", extra="requird = false"), {}, "questions[0].requird: unknown key"),
        (question("Q 1"), {}, "questions[0].id: expected an id"),
        (
            question("q1", extra='when = { question = "q2", equals = true }') + question("q2"),
            {},
            "questions[0].when.question: 'q2' is not an earlier question",
        ),
        (
            question("q1", extra='when = { question = "q1", equals = true }'),
            {},
            "questions[0].when.question: 'q1' is not an earlier question",
        ),
        (
            choice("q1") + question("q2", extra='when = { question = "q1", equals = "c" }'),
            {},
            "questions[1].when.equals: 'c' is not an option of 'q1'",
        ),
        (
            choice("q1") + question("q2", extra='when = { question = "q1", at_least = 3 }'),
            {},
            "questions[1].when.at_least: not a test for single question 'q1'",
        ),
        (
            question("q1") + question("q2", extra='when = { question = "q1", equals = "yes" }'),
            {},
            "questions[1].when.equals: expected true or false",
        ),
        (
            question("q1")
            + question("q2", extra='when = { question = "q1", equals = true, answered = true }'),
            {},
            "questions[1].when: expected exactly one test",
        ),
        (
            question("q1", extra="when = { all = [] }"),
            {},
            "questions[0].when.all: must not be empty",
        ),
        (question("q1", "number", "min = 43\nmax = 34"), {}, "questions[0].max: must be greater"),
        (question("q1", "number", "max = 34"), {}, "questions[0].min: missing"),
        (
            question("q1", "number", "min = 0\nmax = 10\nstep = 0"),
            {},
            "questions[0].step: must be positive",
        ),
        (
            question("q1", "number", "min = 0\nmax = 10\ninteger = true\nstep = 0.5"),
            {},
            "questions[0].step: must be a whole number",
        ),
        (
            question("q1", "number", "min = 0\nmax = 10\nmax_length = 5"),
            {},
            "questions[0].max_length: not allowed for number questions",
        ),
        (question("q1", "text"), {}, "questions[0].max_length: missing"),
        (
            question("q1", "text", "max_length = 100000"),
            {},
            "questions[0].max_length: must be between 1 and",
        ),
        (question("q1", "single"), {}, "questions[0].options: missing"),
        (
            choice("q1").replace('id = "b"', 'id = "a"'),
            {},
            "questions[0].options[1].id: duplicate option id 'a'",
        ),
        (
            choice("q1").replace('id = "none"', 'id = "none"\nexclusive = true'),
            {},
            "questions[0].options[2].exclusive: only multi questions have exclusive options",
        ),
        (
            question("q1", "multi")
            + "".join(
                f'[[questions.options]]\nid = "{o}"\nexclusive = true\nlabel = {L}\n'
                for o in ("a", "b")
            ),
            {},
            "questions[0].options: every option is exclusive",
        ),
        (
            question("q1", "number", "min = 34\nmax = 43")
            + '[[triage]]\nid = "r"\nlevel = "urgent"\n'
            + f'when = {{ question = "q1", at_least = 45 }}\nreason = {L}\n',
            {},
            "triage[0].when.at_least: 45 is outside the range of 'q1'",
        ),
        (
            question("q1")
            + f'[[triage]]\nid = "r"\nlevel = "critical"\nwhen = {{ question = "q1", '
            f"equals = true }}\nreason = {L}\n",
            {},
            "triage[0].level: expected one of routine, urgent, emergency",
        ),
        (
            question("q1") + f'[[triage]]\nid = "r"\nlevel = "urgent"\nwhen = {{ question = "qx", '
            f"equals = true }}\nreason = {L}\n",
            {},
            "triage[0].when.question: 'qx' is not a question",
        ),
        (
            question("q1") + '[[triage]]\nid = "r"\nlevel = "urgent"\nwhen = { question = "q1", '
            "equals = true }\n",
            {},
            "triage[0].reason: missing",
        ),
        ('[[questions]]\ninclude = "missing"\n', {}, "questions[0].include: no section file"),
        (
            '[[questions]]\ninclude = "bg"\n' + question("q1"),
            {"bg": question("q1")},
            "t.toml: questions[1].id: duplicate question id 'q1' (also in _bg.toml)",
        ),
        (
            '[[questions]]\ninclude = "bg"\n',
            {"bg": question("q1", extra='when = { question = "q0", equals = true }')},
            "_bg.toml: questions[0].when.question: 'q0' is not an earlier question",
        ),
        ('[[questions]\nid = "q1"\n', {}, "t.toml: invalid TOML"),
    ],
)
def test_a_broken_config_is_refused_naming_file_and_key(
    tmp_path: Path, body: str, sections: dict[str, str], message: str
) -> None:
    """Each mistake gives a QuestionnaireError that says where it is and what is wrong."""
    with pytest.raises(QuestionnaireError) as caught:
        load_one(tmp_path, body, **sections)
    assert message in str(caught.value)


def test_a_folder_without_topics_is_refused(tmp_path: Path) -> None:
    """Sections alone, or nothing, are not a questionnaire."""
    with pytest.raises(QuestionnaireError, match="no questionnaire files"):
        load_topics(tmp_path)
    with pytest.raises(QuestionnaireError, match="no such folder"):
        load_topics(tmp_path / "missing")
