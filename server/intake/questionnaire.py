"""The pre-chat questionnaire: questions and red-flag triage as data, and a pure engine.

Before a resident joins the queue they answer a short questionnaire on the topic they picked
(``respiratory``, ``urinary``, ``other``…). The questions, their Finnish, Swedish and English
texts, the conditions that show or hide them and the triage rules all live in TOML files under
``server/config/questionnaires/``, so a nurse or a physician can review and change them without
reading Python. A file whose name starts with ``_`` is a *section* that topics include with
``include = "name"``: the red-flag screening and the background questions are written once.

The engine is pure and deterministic (no clock, no I/O once loaded): the hub can rebuild an
intake from stored answers at any time. Three decisions shape it:

* A condition may only look at *earlier* questions. One forward pass then decides what applies,
  re-answering an early question simply drops the answers that no longer apply, and a config
  cannot contain a cycle.
* Triage is evaluated on whatever has been answered so far; a rule that needs an unanswered
  question does not fire. The first answer that makes the level ``emergency`` ends the intake:
  the rest of the form would only delay a call to 112, and an intake cannot be talked out of an
  emergency afterwards (the hub may start a new one if it wants to).
* A refused answer changes nothing, so a client shows the reason and asks again.

The questions fall into *sections* a person sees progress through ("Section 2 of 4:
Symptoms"): each included section file is one, and the topic's own questions are one (titled
by ``section_title``). An own question that follows an included section (say "anything
else?" after the background questions) belongs to that section, so the progress never goes
back. A section file marked ``screening`` (the red flags) is asked before anything else; the
intake settles who may chat (identification) right after it.

The format, in brief (every text is a table with ``fi``, ``sv`` and ``en``)::

    order = 10                                  # place in the topic menu
    title = {...}  description = {...}
    section_title = {...}                       # the topic's own questions' section (optional)
    [[questions]]  include = "red_flags"        # splice in _red_flags.toml here
    [[questions]]  id, kind = single|multi|yes_no|number|text, text, label (short, for the
                   summary), help?, required? (true), when?
                   single/multi: [[questions.options]] id, label, exclusive? (multi only)
                   number: min, max, step?, integer?, unit?     text: max_length, multiline?
    [[triage]]     id, level = routine|urgent|emergency, when, reason
    when = { question = "q", <test> = value }   # or { all = [...] } / { any = [...] }
    A section file: title = {...} (its name in the progress), screening = true (asked before
    anything else, eligibility included), [[questions]], [[triage]].
        single: equals, in, not_in   multi: includes_any, includes_all, excludes
        yes_no: equals   number: at_least, at_most, above, below   any kind: answered

Errors::

    Exception
    ├── QuestionnaireError   a config file is wrong; the message names the file and key path
    └── AnswerError          a topic or answer is refused: ``code`` + ``reason`` in the
                             client's language; the intake is unchanged
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from protocol import MAX_TEXT_LENGTH
from server.core.config_files import SHIPPED
from server.core.documents import IntakeSummary
from server.core.texts import LANGUAGES

__all__ = [
    "DEFAULT_FOLDER",
    "LANGUAGES",
    "AllOf",
    "AnswerCode",
    "AnswerError",
    "AnyOf",
    "Compare",
    "Condition",
    "Intake",
    "IntakeSummary",
    "Localized",
    "Option",
    "Question",
    "QuestionKind",
    "QuestionnaireError",
    "Topic",
    "say",
    "Topics",
    "Triage",
    "TriageLevel",
    "TriageRule",
    "load_topics",
]

DEFAULT_FOLDER = SHIPPED / "questionnaires"

_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: An integer question with at most this many values is a scale (a row of buttons).
_SCALE_VALUES = 11


# -- Errors ------------------------------------------------------------------------------------


class QuestionnaireError(Exception):
    """A questionnaire file is invalid; the server should refuse to start with it."""


class AnswerCode(StrEnum):
    UNKNOWN_TOPIC = "intake_unknown_topic"
    UNKNOWN_QUESTION = "intake_unknown_question"
    OUT_OF_ORDER = "intake_out_of_order"
    INVALID_ANSWER = "intake_invalid_answer"
    FINISHED = "intake_finished"


@dataclass(frozen=True)
class AnswerError(Exception):
    """A refused topic or answer. ``question`` names the question concerned, if any."""

    code: str
    reason: str
    question: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


# -- Texts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Localized:
    """One text in every language the service speaks."""

    fi: str
    sv: str
    en: str

    def __getitem__(self, lang: str) -> str:
        if lang == "fi":
            return self.fi
        if lang == "sv":
            return self.sv
        if lang == "en":
            return self.en
        raise KeyError(lang)


def _check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    return lang


# The engine's own words: error reasons and answer texts. Typographic quotes as each language
# writes them, since clients show these verbatim.
_WORDS: dict[str, Localized] = {
    "unknown_topic": Localized(
        "Tuntematon aihe: {topic}.", "Okänt ämne: {topic}.", "Unknown topic: {topic}."
    ),
    "unknown_question": Localized(
        "Kyselyssä ei ole kysymystä {question}.",
        "Frågeformuläret har ingen fråga {question}.",
        "The questionnaire has no question {question}.",
    ),
    "answer_first": Localized(
        "Vastaa ensin kysymykseen ”{label}”.",
        "Svara först på frågan ”{label}”.",
        "Please answer “{label}” first.",
    ),
    "not_applicable": Localized(
        "Kysymys ”{label}” ei koske sinua aiempien vastaustesi perusteella.",
        "Frågan ”{label}” gäller inte dig enligt dina tidigare svar.",
        "The question “{label}” does not apply given your earlier answers.",
    ),
    "finished_emergency": Localized(
        "Kysely päättyi, koska oireesi vaativat kiireellistä apua. Soita hätänumeroon 112.",
        "Frågeformuläret avslutades eftersom dina symtom kräver akut hjälp. Ring nödnumret 112.",
        "The questionnaire ended because your symptoms need immediate help. Call 112.",
    ),
    "required": Localized(
        "Tähän kysymykseen on vastattava.",
        "Frågan måste besvaras.",
        "This question needs an answer.",
    ),
    "choose_one": Localized(
        "Valitse yksi vaihtoehto.", "Välj ett alternativ.", "Choose one option."
    ),
    "choose_some": Localized(
        "Valitse yksi tai useampi vaihtoehto.",
        "Välj ett eller flera alternativ.",
        "Choose one or more options.",
    ),
    "unknown_option": Localized(
        "Vaihtoehtoa {option} ei ole.",
        "Alternativet {option} finns inte.",
        "There is no option {option}.",
    ),
    "exclusive": Localized(
        "Vaihtoehtoa ”{label}” ei voi valita yhdessä muiden kanssa.",
        "Alternativet ”{label}” kan inte väljas tillsammans med andra.",
        "“{label}” cannot be chosen together with other options.",
    ),
    "yes_no": Localized("Vastaa kyllä tai ei.", "Svara ja eller nej.", "Answer yes or no."),
    "number": Localized("Anna vastaus numerona.", "Svara med ett tal.", "Give a number."),
    "integer": Localized("Anna kokonaisluku.", "Ange ett heltal.", "Give a whole number."),
    "range": Localized(
        "Anna arvo väliltä {min}–{max}{unit}.",
        "Ange ett värde mellan {min} och {max}{unit}.",
        "Give a value between {min} and {max}{unit}.",
    ),
    "step": Localized(
        "Anna arvo {step}{unit} tarkkuudella.",
        "Ange värdet med en noggrannhet på {step}{unit}.",
        "Give the value to the nearest {step}{unit}.",
    ),
    "text": Localized("Vastaa tekstinä.", "Svara med text.", "Answer with text."),
    "too_long": Localized(
        "Vastaus on liian pitkä: enintään {max} merkkiä.",
        "Svaret är för långt: högst {max} tecken.",
        "The answer is too long: at most {max} characters.",
    ),
    "control": Localized(
        "Vastauksessa on merkkejä, joita ei voi käyttää.",
        "Svaret innehåller otillåtna tecken.",
        "The answer contains characters that are not allowed.",
    ),
    "yes": Localized("Kyllä", "Ja", "Yes"),
    "no": Localized("Ei", "Nej", "No"),
    "reasons": Localized("Syyt", "Orsaker", "Reasons"),
    "routine": Localized("Kiireetön", "Icke brådskande", "Routine"),
    "urgent": Localized("Kiireellinen", "Brådskande", "Urgent"),
    "emergency": Localized("Hätätilanne", "Nödsituation", "Emergency"),
    "skipped": Localized("Ei vastausta", "Inget svar", "No answer"),
    # The titles of the sections that a file does not name.
    "own_section": Localized("Oireet", "Symtom", "Symptoms"),
    "questions": Localized("Kysymykset", "Frågor", "Questions"),
}


def _say(key: str, lang: str, **values: object) -> str:
    return _WORDS[key][lang].format(**values)


def say(key: str, lang: str, **values: object) -> str:
    """One of the engine's own words (``answer_first``, ``not_applicable``…) in ``lang``."""
    return _say(key, lang, **values)


# -- The model ---------------------------------------------------------------------------------


class QuestionKind(StrEnum):
    SINGLE = "single"  # one option id
    MULTI = "multi"  # a list of option ids; an ``exclusive`` option stands alone
    YES_NO = "yes_no"  # a bool
    NUMBER = "number"  # an int or float within [min, max]
    TEXT = "text"  # a short free text


class TriageLevel(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {TriageLevel.ROUTINE: 0, TriageLevel.URGENT: 1, TriageLevel.EMERGENCY: 2}

# What a stored, normalized answer looks like; None is a skipped optional question.
Answer = str | tuple[str, ...] | bool | int | float | None


@dataclass(frozen=True)
class Compare:
    """A test on one question's answer. An unanswered question never satisfies it."""

    question: str
    op: str
    operand: bool | int | float | str | frozenset[str]

    def holds(self, answers: Mapping[str, Answer]) -> bool:
        if self.question not in answers:
            return False
        value, op, operand = answers[self.question], self.op, self.operand
        if op == "answered":
            return (value is not None) is operand
        if value is None:
            return False
        if op == "equals":
            return value == operand and type(value) is type(operand)
        if isinstance(operand, frozenset):
            if op in ("in", "not_in"):
                return (value in operand) is (op == "in")
            chosen = frozenset(value) if isinstance(value, tuple) else frozenset()
            if op == "includes_any":
                return bool(chosen & operand)
            if op == "includes_all":
                return operand <= chosen
            return not chosen & operand  # excludes
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        assert isinstance(operand, int | float)
        if op == "at_least":
            return value >= operand
        if op == "at_most":
            return value <= operand
        if op == "above":
            return value > operand
        return value < operand  # below

    def questions(self) -> frozenset[str]:
        return frozenset((self.question,))


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]

    def holds(self, answers: Mapping[str, Answer]) -> bool:
        return all(c.holds(answers) for c in self.conditions)

    def questions(self) -> frozenset[str]:
        return frozenset().union(*(c.questions() for c in self.conditions))


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]

    def holds(self, answers: Mapping[str, Answer]) -> bool:
        return any(c.holds(answers) for c in self.conditions)

    def questions(self) -> frozenset[str]:
        return frozenset().union(*(c.questions() for c in self.conditions))


Condition = Compare | AllOf | AnyOf


@dataclass(frozen=True)
class Option:
    id: str
    label: Localized
    exclusive: bool = False


@dataclass(frozen=True)
class Question:
    id: str
    kind: QuestionKind
    text: Localized
    label: Localized  # short, for the professional's summary
    help: Localized | None = None
    required: bool = True
    when: Condition | None = None  # shown only when this holds on the earlier answers
    options: tuple[Option, ...] = ()
    unit: Localized | None = None
    min: int | float | None = None
    max: int | float | None = None
    step: int | float | None = None
    integer: bool = False
    max_length: int | None = None
    multiline: bool = False
    source: str = ""  # the file it was read from, for error messages
    section: str = ""  # the section of the progress: a section file's name, "" the topic's own
    screening: bool = False  # asked before anything else (the red flags)

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    @property
    def is_scale(self) -> bool:
        """A whole number from a short range (0–10): shown as a row of buttons, one a value."""
        if self.kind is not QuestionKind.NUMBER or not self.integer:
            return False
        assert self.min is not None and self.max is not None
        return self.max - self.min <= _SCALE_VALUES - 1 and self.step in (None, 1)

    @property
    def decimals(self) -> int | None:
        """Decimals to show a number with; None: as many as it has."""
        if self.integer:
            return 0
        if self.step is None:
            return None
        exponent = Decimal(str(self.step)).normalize().as_tuple().exponent
        return max(0, -exponent) if isinstance(exponent, int) else None


@dataclass(frozen=True)
class TriageRule:
    id: str
    level: TriageLevel
    when: Condition
    reason: Localized


@dataclass(frozen=True)
class Topic:
    id: str
    title: Localized
    description: Localized
    questions: tuple[Question, ...]
    rules: tuple[TriageRule, ...]
    order: int = 100
    # The title of each section of the progress, by the questions' ``section``.
    section_titles: Mapping[str, Localized] = field(default_factory=dict)
    _by_id: Mapping[str, Question] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {q.id: q for q in self.questions})

    def question(self, question_id: str) -> Question | None:
        return self._by_id.get(question_id)

    def section_title(self, section: str, lang: str) -> str:
        title = self.section_titles.get(section)
        return title[lang] if title is not None else _say("questions", lang)


@dataclass(frozen=True)
class Triage:
    level: TriageLevel
    reasons: tuple[str, ...]  # localized, most severe first
    rules: tuple[str, ...]  # ids of the rules that fired, same order

    def to_dict(self) -> dict[str, object]:
        return {"level": self.level.value, "reasons": list(self.reasons), "rules": list(self.rules)}


class Topics(Mapping[str, Topic]):
    """The loaded topics by id, iterated in menu order."""

    def __init__(self, topics: Mapping[str, Topic]) -> None:
        ordered = sorted(topics.values(), key=lambda t: (t.order, t.id))
        self._topics = {t.id: t for t in ordered}

    def __getitem__(self, topic_id: str) -> Topic:
        return self._topics[topic_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._topics)

    def __len__(self) -> int:
        return len(self._topics)

    def menu(self, lang: str) -> list[dict[str, str]]:
        """The client's topic picker."""
        _check_language(lang)
        return [
            {"id": t.id, "title": t.title[lang], "description": t.description[lang]}
            for t in self._topics.values()
        ]

    def topic(self, topic_id: str, lang: str) -> Topic:
        """The topic a client asked for, or an :class:`AnswerError` in its language."""
        _check_language(lang)
        found = self._topics.get(topic_id) if isinstance(topic_id, str) else None
        if found is None:
            raise AnswerError(
                AnswerCode.UNKNOWN_TOPIC, _say("unknown_topic", lang, topic=str(topic_id)[:64])
            )
        return found

    def start(self, topic_id: str, lang: str) -> Intake:
        return Intake(self.topic(topic_id, lang), lang)


# -- The engine --------------------------------------------------------------------------------


def _fired(topic: Topic, answers: Mapping[str, Answer]) -> list[TriageRule]:
    fired = [rule for rule in topic.rules if rule.when.holds(answers)]
    # Stable sort: most severe first, file order within a level.
    return sorted(fired, key=lambda rule: -rule.level.rank)


def _is_emergency(topic: Topic, answers: Mapping[str, Answer]) -> bool:
    return any(r.level is TriageLevel.EMERGENCY and r.when.holds(answers) for r in topic.rules)


def _settle(topic: Topic, answers: Mapping[str, Answer]) -> dict[str, Answer]:
    """Keep the answers that apply, in question order, up to the first emergency.

    This is the intake's one invariant: the answers it holds are exactly what answering them in
    order would have kept. Because conditions only look back, one pass suffices.
    """
    kept: dict[str, Answer] = {}
    for question in topic.questions:
        if question.id not in answers:
            continue
        if question.when is not None and not question.when.holds(kept):
            continue
        kept[question.id] = answers[question.id]
        if _is_emergency(topic, kept):
            break
    return kept


def _format_number(value: int | float, question: Question, lang: str) -> str:
    decimals = question.decimals
    if decimals is not None:
        text = f"{value:.{decimals}f}"
    else:
        text = str(value) if isinstance(value, int) else f"{value:g}"
    # Finnish and Swedish write a decimal comma.
    return text.replace(".", ",") if lang in ("fi", "sv") else text


def _unit(question: Question, lang: str) -> str:
    return f" {question.unit[lang]}" if question.unit is not None else ""


class Intake:
    """One resident's progress through one topic's questionnaire."""

    def __init__(self, topic: Topic, lang: str) -> None:
        self.topic = topic
        self.lang = _check_language(lang)
        self._answers: dict[str, Answer] = {}

    @classmethod
    def restore(
        cls, topic: Topic, lang: str, answers: Mapping[str, object], *, strict: bool = True
    ) -> Intake:
        """Rebuild from :meth:`answers`, validating every value again.

        ``strict=False`` drops answers that no longer apply (say, after the questionnaire was
        edited) instead of refusing them; invalid values and unknown questions are dropped too.
        """
        intake = cls(topic, lang)
        normalized: dict[str, Answer] = {}
        for question_id, value in answers.items():
            question = topic.question(question_id)
            if question is None:
                if strict:
                    raise intake._unknown_question(question_id)
                continue
            try:
                normalized[question_id] = intake._normalize(question, value)
            except AnswerError:
                if strict:
                    raise
        settled = _settle(topic, normalized)
        dropped = [q for q in normalized if q not in settled]
        if dropped and strict:
            question = topic.question(dropped[0])
            assert question is not None
            raise AnswerError(
                AnswerCode.OUT_OF_ORDER,
                _say("not_applicable", lang, label=question.label[lang]),
                question.id,
            )
        intake._answers = settled
        return intake

    def answers(self) -> dict[str, object]:
        """The normalized answers in question order; None marks a skipped optional question."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._answers.items()}

    @property
    def emergency(self) -> bool:
        return _is_emergency(self.topic, self._answers)

    @property
    def finished(self) -> bool:
        return self.next_question() is None

    def next_question(self) -> Question | None:
        """The question to show now: the first applicable unanswered one, unless emergency."""
        if self.emergency:
            return None
        return next((q for q in self._applicable() if q.id not in self._answers), None)

    def applicable(self) -> list[Question]:
        """The questions that apply given the answers so far, in order."""
        return self._applicable()

    def is_answered(self, question_id: str) -> bool:
        """Whether ``question_id`` holds an answer (a skipped optional question does)."""
        return question_id in self._answers

    def answer_text(self, question: Question, lang: str | None = None) -> str:
        """The answer to ``question`` as a person reads it; "No answer" when skipped."""
        lang = self.lang if lang is None else _check_language(lang)
        value = self._answers.get(question.id)
        if value is None:
            return _say("skipped", lang)
        return self._answer_text(question, value, lang)

    def triage(self, lang: str | None = None) -> Triage:
        lang = self.lang if lang is None else _check_language(lang)
        fired = _fired(self.topic, self._answers)
        level = fired[0].level if fired else TriageLevel.ROUTINE
        return Triage(
            level=level,
            reasons=tuple(rule.reason[lang] for rule in fired),
            rules=tuple(rule.id for rule in fired),
        )

    def answer(self, question_id: str, value: object) -> None:
        """Answer the current question, or change an earlier answer (also once every
        question is answered: the person checks the answers before sending them). Only an
        emergency is final.

        Raises :class:`AnswerError`, and changes nothing, if the answer is refused.
        """
        question = self.topic.question(question_id) if isinstance(question_id, str) else None
        if question is None:
            raise self._unknown_question(question_id)
        if self.emergency:
            raise AnswerError(
                AnswerCode.FINISHED, _say("finished_emergency", self.lang), question.id
            )
        if question.id not in self._answers:
            current = self.next_question()
            if current is None or current.id != question.id:
                if current is not None and question in self._applicable():
                    reason = _say("answer_first", self.lang, label=current.label[self.lang])
                else:
                    reason = _say("not_applicable", self.lang, label=question.label[self.lang])
                raise AnswerError(AnswerCode.OUT_OF_ORDER, reason, question.id)
        normalized = self._normalize(question, value)
        self._answers = _settle(self.topic, {**self._answers, question.id: normalized})

    def question_view(self, question: Question) -> dict[str, object]:
        """How a client shows ``question``, in the intake's language (JSON-able)."""
        lang = self.lang
        applicable = self._applicable()
        position = self.topic.questions.index(question)
        index = sum(1 for q in applicable if self.topic.questions.index(q) < position)
        view: dict[str, object] = {
            "id": question.id,
            "kind": question.kind.value,
            "text": question.text[lang],
            "help": question.help[lang] if question.help is not None else None,
            "required": question.required,
            "progress": {"index": index + 1, "total": max(len(applicable), index + 1)},
        }
        if question.kind in (QuestionKind.SINGLE, QuestionKind.MULTI):
            view["options"] = [
                {"id": o.id, "label": o.label[lang], "exclusive": o.exclusive}
                for o in question.options
            ]
        elif question.kind is QuestionKind.YES_NO:
            view["choices"] = [
                {"value": True, "label": _say("yes", lang)},
                {"value": False, "label": _say("no", lang)},
            ]
        elif question.kind is QuestionKind.NUMBER:
            view.update(
                unit=question.unit[lang] if question.unit is not None else None,
                min=question.min,
                max=question.max,
                step=question.step,
                integer=question.integer,
                scale=question.is_scale,
            )
        else:
            view.update(max_length=question.max_length, multiline=question.multiline)
        if question.id in self._answers:
            value = self._answers[question.id]
            view["answer"] = list(value) if isinstance(value, tuple) else value
        return view

    def summary(self, lang: str) -> IntakeSummary:
        """The compact view a professional reads, triage first."""
        _check_language(lang)
        triage = self.triage(lang)
        lines: list[tuple[str, str]] = []
        for question in self.topic.questions:
            value = self._answers.get(question.id)
            if value is not None:
                lines.append((question.label[lang], self._answer_text(question, value, lang)))
        return IntakeSummary(
            topic=self.topic.id,
            title=self.topic.title[lang],
            level=triage.level,
            level_label=_say(triage.level.value, lang),
            reasons=triage.reasons,
            lines=tuple(lines),
            complete=self.finished,
        )

    # -- Internals

    def _applicable(self) -> list[Question]:
        return [q for q in self.topic.questions if q.when is None or q.when.holds(self._answers)]

    def _unknown_question(self, question_id: object) -> AnswerError:
        shown = str(question_id)[:64]
        return AnswerError(
            AnswerCode.UNKNOWN_QUESTION, _say("unknown_question", self.lang, question=shown)
        )

    def _invalid(self, question: Question, key: str, **values: object) -> AnswerError:
        return AnswerError(AnswerCode.INVALID_ANSWER, _say(key, self.lang, **values), question.id)

    def _normalize(self, question: Question, value: object) -> Answer:
        if value is None:
            if question.required:
                raise self._invalid(question, "required")
            return None
        kind = question.kind
        if kind is QuestionKind.SINGLE:
            if not isinstance(value, str):
                raise self._invalid(question, "choose_one")
            if question.option(value) is None:
                raise self._invalid(question, "unknown_option", option=value[:64])
            return value
        if kind is QuestionKind.MULTI:
            return self._normalize_choices(question, value)
        if kind is QuestionKind.YES_NO:
            if not isinstance(value, bool):
                raise self._invalid(question, "yes_no")
            return value
        if kind is QuestionKind.NUMBER:
            return self._normalize_number(question, value)
        return self._normalize_text(question, value)

    def _normalize_choices(self, question: Question, value: object) -> Answer:
        if not isinstance(value, list | tuple) or not value:
            raise self._invalid(question, "choose_some")
        chosen: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                raise self._invalid(question, "choose_some")
            if question.option(item) is None:
                raise self._invalid(question, "unknown_option", option=item[:64])
            chosen.add(item)
        if len(chosen) > 1:
            for option in question.options:
                if option.exclusive and option.id in chosen:
                    raise self._invalid(question, "exclusive", label=option.label[self.lang])
        # Option order, so that equal choices compare and display equally.
        return tuple(o.id for o in question.options if o.id in chosen)

    def _normalize_number(self, question: Question, value: object) -> Answer:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._invalid(question, "number")
        if isinstance(value, float) and not math.isfinite(value):
            raise self._invalid(question, "number")
        assert question.min is not None and question.max is not None
        unit = _unit(question, self.lang)
        if not question.min <= value <= question.max:
            raise self._invalid(
                question,
                "range",
                min=_format_number(question.min, question, self.lang),
                max=_format_number(question.max, question, self.lang),
                unit=unit,
            )
        if question.integer:
            if isinstance(value, float) and not value.is_integer():
                raise self._invalid(question, "integer")
            value = int(value)
        if question.step is not None:
            steps = (value - question.min) / question.step
            # Tolerance for binary fractions: 38.7 is a multiple of 0.1 from 34 to a person.
            if abs(steps - round(steps)) > 1e-6:
                raise self._invalid(
                    question,
                    "step",
                    step=_format_number(question.step, question, self.lang),
                    unit=unit,
                )
            value = question.min + round(steps) * question.step
        if question.integer:
            return int(value)
        decimals = question.decimals
        return round(float(value), decimals) if decimals is not None else float(value)

    def _normalize_text(self, question: Question, value: object) -> Answer:
        if not isinstance(value, str):
            raise self._invalid(question, "text")
        text = value.replace("\r\n", "\n").strip()
        for char in text:
            # Cs: a lone surrogate cannot even be stored as UTF-8.
            if unicodedata.category(char) in ("Cc", "Cs") and not (
                char == "\n" and question.multiline
            ):
                raise self._invalid(question, "control")
        assert question.max_length is not None
        if len(text) > question.max_length:
            raise self._invalid(question, "too_long", max=question.max_length)
        if not text:
            # An emptied optional field is a skip, which saves every client a special case.
            if question.required:
                raise self._invalid(question, "required")
            return None
        return text

    def _answer_text(self, question: Question, value: Answer, lang: str) -> str:
        if isinstance(value, bool):
            return _say("yes" if value else "no", lang)
        if isinstance(value, int | float):
            return _format_number(value, question, lang) + _unit(question, lang)
        if isinstance(value, tuple):
            return ", ".join(o.label[lang] for o in question.options if o.id in value)
        assert isinstance(value, str)
        option = question.option(value) if question.kind is QuestionKind.SINGLE else None
        return option.label[lang] if option is not None else value


# -- Loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """A place in a config file, for error messages: ``respiratory.toml: questions[3].when``."""

    file: str
    path: str = ""

    def at(self, key: str | int) -> _Where:
        if isinstance(key, int):
            return _Where(self.file, f"{self.path}[{key}]")
        return _Where(self.file, f"{self.path}.{key}" if self.path else key)

    def error(self, problem: str) -> QuestionnaireError:
        return QuestionnaireError(f"{self.file}: {self.path or '(top level)'}: {problem}")


def _table(
    raw: object, where: _Where, allowed: frozenset[str], required: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise where.error("expected a table")
    for key in raw:
        if key not in allowed:
            raise where.at(key).error(f"unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required):
        if key not in raw:
            raise where.at(key).error("missing")
    return raw


def _list(raw: object, where: _Where, *, empty_ok: bool = False) -> list[Any]:
    if not isinstance(raw, list):
        raise where.error("expected an array")
    if not raw and not empty_ok:
        raise where.error("must not be empty")
    return raw


def _bool(raw: object, where: _Where) -> bool:
    if not isinstance(raw, bool):
        raise where.error("expected true or false")
    return raw


def _number(raw: object, where: _Where) -> int | float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise where.error("expected a finite number")
    return raw


def _identifier(raw: object, where: _Where) -> str:
    if not isinstance(raw, str) or not _ID.fullmatch(raw):
        raise where.error(f"expected an id of lowercase letters, digits and _, got {raw!r}")
    return raw


def _localized(raw: object, where: _Where) -> Localized:
    table = _table(raw, where, frozenset(LANGUAGES), frozenset(LANGUAGES))
    for lang in LANGUAGES:
        text = table[lang]
        if not isinstance(text, str) or not text.strip():
            raise where.at(lang).error("expected a non-empty text")
    return Localized(table["fi"], table["sv"], table["en"])


_KIND_ONLY_KEYS = frozenset(
    {"options", "unit", "min", "max", "step", "integer", "max_length", "multiline"}
)
_QUESTION_KEYS = _KIND_ONLY_KEYS | {"id", "kind", "text", "label", "help", "required", "when"}
_KIND_KEYS = {
    QuestionKind.SINGLE: frozenset({"options"}),
    QuestionKind.MULTI: frozenset({"options"}),
    QuestionKind.YES_NO: frozenset[str](),
    QuestionKind.NUMBER: frozenset({"unit", "min", "max", "step", "integer"}),
    QuestionKind.TEXT: frozenset({"max_length", "multiline"}),
}
_OPS = {
    QuestionKind.SINGLE: frozenset({"equals", "in", "not_in", "answered"}),
    QuestionKind.MULTI: frozenset({"includes_any", "includes_all", "excludes", "answered"}),
    QuestionKind.YES_NO: frozenset({"equals", "answered"}),
    QuestionKind.NUMBER: frozenset({"at_least", "at_most", "above", "below", "answered"}),
    QuestionKind.TEXT: frozenset({"answered"}),
}
_ALL_OPS = frozenset().union(*_OPS.values())


def _parse_question(raw: object, where: _Where, earlier: Mapping[str, Question]) -> Question:
    table = _table(raw, where, _QUESTION_KEYS, frozenset({"id", "kind", "text", "label"}))
    question_id = _identifier(table["id"], where.at("id"))
    try:
        kind = QuestionKind(table["kind"])
    except ValueError:
        kinds = ", ".join(k.value for k in QuestionKind)
        raise where.at("kind").error(f"expected one of {kinds}") from None
    for key in table:
        if key in _KIND_ONLY_KEYS and key not in _KIND_KEYS[kind]:
            raise where.at(key).error(f"not allowed for {kind.value} questions")
    values: dict[str, Any] = {
        "id": question_id,
        "kind": kind,
        "text": _localized(table["text"], where.at("text")),
        "label": _localized(table["label"], where.at("label")),
        "source": where.file,
    }
    if "help" in table:
        values["help"] = _localized(table["help"], where.at("help"))
    if "required" in table:
        values["required"] = _bool(table["required"], where.at("required"))
    if "when" in table:
        values["when"] = _parse_condition(
            table["when"], where.at("when"), earlier, "an earlier question"
        )
    if kind in (QuestionKind.SINGLE, QuestionKind.MULTI):
        values["options"] = _parse_options(table, where, kind)
    elif kind is QuestionKind.NUMBER:
        values.update(_parse_range(table, where))
    elif kind is QuestionKind.TEXT:
        if "max_length" not in table:
            raise where.at("max_length").error("missing")
        max_length = table["max_length"]
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise where.at("max_length").error("expected an integer")
        if not 1 <= max_length <= MAX_TEXT_LENGTH:
            raise where.at("max_length").error(f"must be between 1 and {MAX_TEXT_LENGTH}")
        values["max_length"] = max_length
        if "multiline" in table:
            values["multiline"] = _bool(table["multiline"], where.at("multiline"))
    return Question(**values)


def _parse_options(
    table: Mapping[str, Any], where: _Where, kind: QuestionKind
) -> tuple[Option, ...]:
    if "options" not in table:
        raise where.at("options").error("missing")
    raw_options = _list(table["options"], where.at("options"))
    if len(raw_options) < 2:
        raise where.at("options").error("a choice needs at least two options")
    options: list[Option] = []
    for i, raw in enumerate(raw_options):
        at = where.at("options").at(i)
        option = _table(
            raw, at, frozenset({"id", "label", "exclusive"}), frozenset({"id", "label"})
        )
        option_id = _identifier(option["id"], at.at("id"))
        if any(o.id == option_id for o in options):
            raise at.at("id").error(f"duplicate option id {option_id!r}")
        exclusive = False
        if "exclusive" in option:
            exclusive = _bool(option["exclusive"], at.at("exclusive"))
            if kind is not QuestionKind.MULTI:
                raise at.at("exclusive").error("only multi questions have exclusive options")
        options.append(Option(option_id, _localized(option["label"], at.at("label")), exclusive))
    if all(o.exclusive for o in options):
        raise where.at("options").error("every option is exclusive")
    return tuple(options)


def _parse_range(table: Mapping[str, Any], where: _Where) -> dict[str, Any]:
    for key in ("min", "max"):
        if key not in table:
            raise where.at(key).error("missing")
    low = _number(table["min"], where.at("min"))
    high = _number(table["max"], where.at("max"))
    if not low < high:
        raise where.at("max").error(f"must be greater than min ({low})")
    integer = _bool(table["integer"], where.at("integer")) if "integer" in table else False
    step = _number(table["step"], where.at("step")) if "step" in table else None
    if integer:
        for key, number in (("min", low), ("max", high), ("step", step)):
            if number is not None and not float(number).is_integer():
                raise where.at(key).error("must be a whole number for an integer question")
        low, high = int(low), int(high)
        step = int(step) if step is not None else None
    if step is not None and not 0 < step <= high - low:
        raise where.at("step").error(f"must be positive and at most max - min ({high - low})")
    values: dict[str, Any] = {"min": low, "max": high, "step": step, "integer": integer}
    if "unit" in table:
        values["unit"] = _localized(table["unit"], where.at("unit"))
    return values


def _parse_condition(
    raw: object, where: _Where, questions: Mapping[str, Question], scope: str
) -> Condition:
    if isinstance(raw, dict) and len(raw) == 1 and ("all" in raw or "any" in raw):
        key = "all" if "all" in raw else "any"
        items = _list(raw[key], where.at(key))
        parts = tuple(
            _parse_condition(item, where.at(key).at(i), questions, scope)
            for i, item in enumerate(items)
        )
        return AllOf(parts) if key == "all" else AnyOf(parts)
    table = _table(raw, where, _ALL_OPS | {"question", "all", "any"}, frozenset({"question"}))
    if "all" in table or "any" in table:
        raise where.error("'all' or 'any' must stand alone in its table")
    ops = [key for key in table if key != "question"]
    if len(ops) != 1:
        raise where.error(f"expected exactly one test, one of: {', '.join(sorted(_ALL_OPS))}")
    op = ops[0]
    question_id = table["question"]
    question = questions.get(question_id) if isinstance(question_id, str) else None
    if question is None:
        raise where.at("question").error(f"{question_id!r} is not {scope}")
    at = where.at(op)
    if op not in _OPS[question.kind]:
        allowed = ", ".join(sorted(_OPS[question.kind]))
        raise at.error(
            f"not a test for {question.kind.value} question {question.id!r} (allowed: {allowed})"
        )
    operand = table[op]
    if op == "answered" or question.kind is QuestionKind.YES_NO:
        return Compare(question.id, op, _bool(operand, at))
    if question.kind is QuestionKind.NUMBER:
        number = _number(operand, at)
        assert question.min is not None and question.max is not None
        if not question.min <= number <= question.max:
            raise at.error(f"{number} is outside the range of {question.id!r}")
        return Compare(question.id, op, number)
    names = [operand] if op == "equals" else _list(operand, at)
    for i, name in enumerate(names):
        if not isinstance(name, str) or question.option(name) is None:
            place = at if op == "equals" else at.at(i)
            raise place.error(f"{name!r} is not an option of {question.id!r}")
    if op == "equals":
        return Compare(question.id, op, str(operand))
    return Compare(question.id, op, frozenset(names))


def _parse_rule(raw: object, where: _Where, questions: Mapping[str, Question]) -> TriageRule:
    table = _table(
        raw,
        where,
        frozenset({"id", "level", "when", "reason"}),
        frozenset({"id", "level", "when", "reason"}),
    )
    try:
        level = TriageLevel(table["level"])
    except ValueError:
        levels = ", ".join(level.value for level in TriageLevel)
        raise where.at("level").error(f"expected one of {levels}") from None
    return TriageRule(
        id=_identifier(table["id"], where.at("id")),
        level=level,
        when=_parse_condition(table["when"], where.at("when"), questions, "a question"),
        reason=_localized(table["reason"], where.at("reason")),
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise QuestionnaireError(f"{path.name}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise QuestionnaireError(f"{path.name}: cannot read: {exc}") from None


def _compose(
    name: str, raw: Mapping[str, Any], sections: Mapping[str, tuple[str, dict[str, Any]]]
) -> Topic:
    top = _Where(f"{name}.toml")
    table = _table(
        raw,
        top,
        frozenset({"title", "description", "order", "questions", "triage", "section_title"}),
        frozenset({"title", "description", "questions"}),
    )
    questions: dict[str, Question] = {}
    rule_sources: list[tuple[_Where, object]] = []
    included: set[str] = set()
    own_title = (
        _localized(table["section_title"], top.at("section_title"))
        if "section_title" in table
        else _WORDS["own_section"]
    )
    titles: dict[str, Localized] = {"": own_title}
    # The section the topic's own questions belong to: its own, until an included section
    # that is not a screening one (an own question after it goes on in that section).
    group = ""

    def add(raw_question: object, where: _Where, section: str, screening: bool = False) -> None:
        question = _parse_question(raw_question, where, questions)
        if question.id in questions:
            other = questions[question.id].source
            raise where.at("id").error(f"duplicate question id {question.id!r} (also in {other})")
        questions[question.id] = replace(question, section=section, screening=screening)

    for i, entry in enumerate(_list(table["questions"], top.at("questions"))):
        where = top.at("questions").at(i)
        if isinstance(entry, dict) and "include" in entry:
            _table(entry, where, frozenset({"include"}))
            section = entry["include"]
            if not isinstance(section, str) or section not in sections:
                raise where.at("include").error(f"no section file _{section}.toml")
            if section in included:
                raise where.at("include").error(f"section {section!r} is already included")
            included.add(section)
            file, body = sections[section]
            section_top = _Where(file)
            body = _table(
                body,
                section_top,
                frozenset({"questions", "triage", "title", "screening"}),
                frozenset({"questions"}),
            )
            screening = (
                _bool(body["screening"], section_top.at("screening"))
                if "screening" in body
                else False
            )
            if screening and any(not q.screening for q in questions.values()):
                raise where.at("include").error(
                    f"the screening section {section!r} must come before every other question"
                )
            titles[section] = (
                _localized(body["title"], section_top.at("title"))
                if "title" in body
                else _WORDS["questions"]
            )
            for j, raw_question in enumerate(_list(body["questions"], section_top.at("questions"))):
                at = section_top.at("questions").at(j)
                if isinstance(raw_question, dict) and "include" in raw_question:
                    raise at.error("a section cannot include another section")
                add(raw_question, at, section, screening)
            if not screening:
                group = section
            for j, rule in enumerate(
                _list(body.get("triage", []), section_top.at("triage"), empty_ok=True)
            ):
                rule_sources.append((section_top.at("triage").at(j), rule))
        else:
            add(entry, where, group)
    triage = _list(table.get("triage", []), top.at("triage"), empty_ok=True)
    rule_sources += [(top.at("triage").at(i), rule) for i, rule in enumerate(triage)]
    rules: list[TriageRule] = []
    for where, raw_rule in rule_sources:
        rule = _parse_rule(raw_rule, where, questions)
        if any(r.id == rule.id for r in rules):
            raise where.at("id").error(f"duplicate triage rule id {rule.id!r}")
        rules.append(rule)
    order = table.get("order", 100)
    if isinstance(order, bool) or not isinstance(order, int):
        raise top.at("order").error("expected an integer")
    return Topic(
        id=name,
        title=_localized(table["title"], top.at("title")),
        description=_localized(table["description"], top.at("description")),
        questions=tuple(questions.values()),
        rules=tuple(rules),
        order=order,
        section_titles=titles,
    )


def load_topics(folder: Path | None = None) -> Topics:
    """Read and check every questionnaire in ``folder`` (by default the shipped ones).

    ``name.toml`` is the topic ``name``; ``_name.toml`` a section topics can include.
    Raises :class:`QuestionnaireError` naming the file and key of the first problem.
    """
    folder = DEFAULT_FOLDER if folder is None else folder
    if not folder.is_dir():
        raise QuestionnaireError(f"{folder}: no such folder")
    sections: dict[str, tuple[str, dict[str, Any]]] = {}
    raw_topics: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.toml")):
        is_section = path.stem.startswith("_")
        name = path.stem[1:] if is_section else path.stem
        if not _ID.fullmatch(name):
            raise QuestionnaireError(
                f"{path.name}: the file name must be an id of lowercase letters, digits and _"
            )
        if is_section:
            sections[name] = (path.name, _read(path))
        else:
            raw_topics[name] = _read(path)
    if not raw_topics:
        raise QuestionnaireError(f"{folder}: no questionnaire files (*.toml)")
    return Topics({name: _compose(name, raw, sections) for name, raw in raw_topics.items()})
