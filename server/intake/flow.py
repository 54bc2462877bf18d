"""The path from "I want to chat" to a place in the right queue: pure decisions.

An intake walks a resident through, in this order:

1. **Service hours.** Outside them (or after the last intake time) nothing else is asked: the
   client is told when the chat opens next and offered the bot and the 24/7 numbers.
2. **The red flags**, the questionnaire's screening section
   (:mod:`server.intake.questionnaire`). The first answer that makes the triage ``emergency``
   ends the intake with an instruction to call 112: nothing is queued, and the hub stores the
   intake. That stays true of any answer given or changed later.
3. **Who may chat** (:mod:`server.intake.eligibility`), settled before anything else is asked
   so that nobody answers the whole questionnaire to be turned away. With identification
   configured, the client identifies (:mod:`server.intake.oidc`); choosing not to keeps the
   answers and says what it means (only the advice bot), and identifying after all is one step
   back. Without identification, two questions ask the person's own age and whether they live
   in the municipality. An under-18 is sent to the bot, a non-resident to their own services,
   with advice chosen by the triage of the answers so far.
4. **The rest of the questionnaire.**
5. **The health station**: from the identity's postal code (no step, changeable at the
   review), else chosen in a step that preselects the station of the page the chat began on
   (the widget's ``data-team-or-station``).
6. **The review**: every answer, each editable, and the station; the client confirms.
7. Then the hub queues the conversation in the station's team's queue, ``urgent`` ones first.

**Going back.** Each step but the first question can go one step back (``back``): to the
previous question, from the anonymous choice to identification, from the review to the
station or the last question. A question seen again shows its answer; answering it goes on to
the next question, answered ones included, as a paper form would. From the review, any answer
can be opened directly (``back`` with its question); changing it leads back to the review,
through any question that the change makes apply. Answers that no longer apply are dropped by
the questionnaire itself.

:class:`IntakeFlow` holds the configuration and makes every decision from an
:class:`IntakeSession` and the time it is given; the hub keeps the sessions, stores outcomes and
sends the steps. Times come in as aware datetimes, so tests use a fixed clock. A refused
request raises :class:`~server.intake.questionnaire.AnswerError` (a protocol error code and a
reason in the intake's language) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from server.core.documents import IdentityDocument, IntakeSummary
from server.intake.areas import Areas
from server.intake.eligibility import (
    ADULT_AGE,
    HOME_MUNICIPALITY,
    OWN_AGE,
    Refusal,
    declared_refusal,
    eligibility_topic,
    identity_refusal,
    numbers,
    section_title,
    turned_away,
)
from server.intake.hours import ServiceHours, closed_message
from server.intake.questionnaire import (
    LANGUAGES,
    AnswerCode,
    AnswerError,
    Intake,
    Question,
    Topics,
    TriageLevel,
    say,
)

__all__ = [
    "ADULT_AGE",
    "ClientIdentity",
    "IntakeFlow",
    "IntakeSession",
    "Outcome",
    "StationSource",
    "Step",
    "StepKind",
    "client_language",
    "refusal",
]


class StepKind(StrEnum):
    QUESTION = "question"
    IDENTIFY = "identify"
    ANONYMOUS = "anonymous"  # chose not to identify: the bot, or identify after all
    STATION = "station"
    REVIEW = "review"
    READY = "ready"  # the hub queues the conversation; the client gets conversation.opened
    # Ends: nothing is queued.
    EMERGENCY = "emergency"
    BOT = "bot"
    GUIDANCE = "guidance"
    CLOSED = "closed"


class Outcome(StrEnum):
    QUEUED = "queued"
    EMERGENCY = "emergency"
    BOT = "bot"
    GUIDANCE = "guidance"
    CLOSED = "closed"


class StationSource(StrEnum):
    """Where the station of an intake came from (the review says so)."""

    POSTAL_CODE = "postal_code"  # the identity's address
    CHOSEN = "chosen"  # the station step


_ENDS = {
    StepKind.EMERGENCY: Outcome.EMERGENCY,
    StepKind.BOT: Outcome.BOT,
    StepKind.GUIDANCE: Outcome.GUIDANCE,
    StepKind.CLOSED: Outcome.CLOSED,
}
_REFUSED = {Refusal.UNDER_AGE: StepKind.BOT, Refusal.NOT_RESIDENT: StepKind.GUIDANCE}


@dataclass(frozen=True)
class ClientIdentity:
    """Who an identified client is, as Kanava keeps it (the identity code only protected)."""

    name: str
    masked_code: str
    protected_code: str
    birth_date: date
    municipality: str | None = None
    postal_code: str | None = None
    # The keyed fingerprint of the identity code: finds the person's access-log entries
    # without decrypting anything.
    fingerprint: str | None = None

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

    def document(self, today: date) -> IdentityDocument:
        """What the conversation keeps: the identity code only encrypted and masked."""
        return IdentityDocument(
            name=self.name,
            masked_code=self.masked_code,
            protected_code=self.protected_code,
            birth_date=self.birth_date.isoformat(),
            municipality=self.municipality,
            postal_code=self.postal_code,
            fingerprint=self.fingerprint,
            age=self.age_on(today),
        )


@dataclass
class IntakeSession:
    """One client's intake in progress. Owned by the hub."""

    id: str
    token_hash: str
    topic_id: str
    lang: str
    started_ms: int
    form: Intake
    open_id: str | None = None
    identity: ClientIdentity | None = None
    anonymous: bool = False
    station_id: str | None = None
    outcome: Outcome | None = None
    conversation_id: str | None = None
    bot_conversation_id: str | None = None  # a chat with the bot this intake hands over
    ticket: str | None = None  # names this intake in its identify link
    pending_identification: str | None = None  # an identification begun at the provider
    last_step: Step | None = field(default=None, repr=False)
    # Who may chat, asked as questions when nobody is identified (None: identification).
    eligibility: Intake | None = None
    page_station: str | None = None  # the station of the page the chat began on
    station_source: StationSource | None = None
    revisit: str | None = None  # an answered question shown again (back, or an edit)
    walking: bool = False  # gone back step by step: each answer shows the next question
    to_review: bool = False  # gone back from the review: an answer leads back to it
    choosing_station: bool = False  # the station shown again, from the review
    confirmed: bool = False  # the review was confirmed: queue it

    def triage(self) -> TriageLevel:
        return self.form.triage().level

    def answers(self) -> dict[str, object]:
        """Every answer in the order they were asked: the red flags, who may chat, the rest."""
        answers = self.form.answers()
        if self.eligibility is None:
            return answers
        screening = {q.id for q in self.form.topic.questions if q.screening}
        first = {k: v for k, v in answers.items() if k in screening}
        rest = {k: v for k, v in answers.items() if k not in screening}
        return {**first, **self.eligibility.answers(), **rest}

    def summary(self, lang: str) -> IntakeSummary:
        summary = self.form.summary(lang)
        if self.eligibility is not None and self.eligibility.answers():
            # The person's own age and municipality, as they said them, after the red flags.
            screening = {q.label[lang] for q in self.form.topic.questions if q.screening}
            at = sum(1 for label, _ in summary.lines if label in screening)
            own = self.eligibility.summary(lang).lines
            lines = (*summary.lines[:at], *own, *summary.lines[at:])
            summary = replace(summary, lines=lines)
        return summary


@dataclass(frozen=True)
class Step:
    """What the client is told next; ``detail`` is JSON-ready."""

    kind: StepKind
    detail: dict[str, Any] | None = None
    triage: str | None = None
    progress: dict[str, Any] | None = None
    back: bool = False  # intake.back is possible now

    @property
    def final(self) -> bool:
        return self.kind in _ENDS


@dataclass(frozen=True)
class _Position:
    """Where an intake stands, before it is put into words."""

    kind: StepKind
    form: Intake | None = None
    question: Question | None = None
    refusal: Refusal | None = None
    closed: Step | None = None


# The texts of the steps, per language. The numbers are also given as data so the client can
# render them as links.
_EMERGENCY = {
    "fi": "Oireesi voivat olla hengenvaarallisia. Soita heti hätänumeroon 112. "
    "Älä jää odottamaan chattiin.",
    "sv": "Dina symtom kan vara livshotande. Ring genast nödnumret 112. Vänta inte i chatten.",
    "en": "Your symptoms may be life-threatening. Call the emergency number 112 now. "
    "Do not wait for the chat.",
}
_ANONYMOUS = {
    "fi": "Ilman tunnistautumista voit käyttää vain neuvontabottia: se vastaa yleisiin "
    "terveyskysymyksiin, mutta ei hoida omaa asiaasi eikä näe vastauksiasi. Vastauksesi ovat "
    "tallessa: jos tunnistaudut sittenkin, jatkat siitä mihin jäit.",
    "sv": "Utan identifiering kan du bara använda rådgivningsboten: den svarar på allmänna "
    "hälsofrågor, men sköter inte ditt eget ärende och ser inte dina svar. Dina svar finns "
    "kvar: identifierar du dig ändå fortsätter du där du slutade.",
    "en": "Without identifying you can use only the advice bot: it answers general health "
    "questions, but it cannot handle your own matter and does not see your answers. Your "
    "answers are kept: if you identify after all, you continue where you left off.",
}
_IDENTIFY = {
    "fi": "Tunnistaudu pankkitunnuksilla tai mobiilivarmenteella, niin hoitaja näkee "
    "kenen asiasta on kyse ja voi kirjata keskustelun potilastietoihisi. Ilman "
    "tunnistautumista voit käyttää vain neuvontabottia.",
    "sv": "Identifiera dig med nätbankskoder eller mobilcertifikat, så vet skötaren vem "
    "ärendet gäller och kan föra in samtalet i din journal. Utan identifiering kan du bara "
    "använda rådgivningsboten.",
    "en": "Identify yourself with online banking codes or a mobile certificate, so the nurse "
    "knows whose matter it is and can record the chat in your patient record. Without "
    "identifying you can use only the advice bot.",
}
_STATION = {
    None: {
        "fi": "Valitse oma terveysasemasi.",
        "sv": "Välj din egen hälsostation.",
        "en": "Choose your own health station.",
    },
    "page": {
        "fi": "Valittuna on terveysasema, jonka sivulta aloitit. Voit valita toisen.",
        "sv": "Förvald är hälsostationen vars sida du började på. Du kan välja en annan.",
        "en": "The health station whose page you started from is chosen. You can choose another.",
    },
    StationSource.POSTAL_CODE: {
        "fi": "Valittuna on osoitteesi mukainen terveysasema. Voit valita toisen.",
        "sv": "Förvald är hälsostationen för din adress. Du kan välja en annan.",
        "en": "The health station for your address is chosen. You can choose another.",
    },
    StationSource.CHOSEN: {
        "fi": "Valittuna on terveysasema, jonka valitsit. Voit valita toisen.",
        "sv": "Förvald är hälsostationen du valde. Du kan välja en annan.",
        "en": "The health station you chose is chosen. You can choose another.",
    },
}
_REVIEW = {
    "fi": "Tarkista vastauksesi ennen lähettämistä. Voit muokata mitä tahansa vastausta.",
    "sv": "Kontrollera dina svar innan du skickar dem. Du kan ändra vilket svar som helst.",
    "en": "Check your answers before you send them. You can change any answer.",
}
_FINAL_SECTION = {
    "fi": "Tarkistus ja lähetys",
    "sv": "Kontroll och sändning",
    "en": "Check and send",
}
# Why an intake message was refused (``error.reason``), in the intake's language.
_REFUSALS = {
    "finished": {
        "fi": "Esitiedot on jo käsitelty. Jatka viimeisimmän ohjeen mukaan.",
        "sv": "Förhandsuppgifterna är redan behandlade. Fortsätt enligt den senaste anvisningen.",
        "en": "This intake has ended. Follow the last step.",
    },
    "not_identify": {
        "fi": "Tunnistautumista ei kysytä nyt. Vastaa viimeisimpään kysymykseen.",
        "sv": "Identifiering efterfrågas inte nu. Svara på den senaste frågan.",
        "en": "The intake is not asking for identification now. Answer the last step.",
    },
    "not_station": {
        "fi": "Terveysasemaa ei kysytä nyt. Vastaa viimeisimpään kysymykseen.",
        "sv": "Hälsostationen efterfrågas inte nu. Svara på den senaste frågan.",
        "en": "The intake is not asking for a health station now. Answer the last step.",
    },
    "unknown_station": {
        "fi": "Valitse terveysasema listasta.",
        "sv": "Välj en hälsostation i listan.",
        "en": "Choose a health station from the list.",
    },
    "not_question": {
        "fi": "Kysymykseen ei voi vielä vastata: jatka viimeisimmän vaiheen mukaan.",
        "sv": "Frågan kan inte besvaras ännu: fortsätt enligt det senaste steget.",
        "en": "This question cannot be answered yet: continue with the last step.",
    },
    "not_review": {
        "fi": "Lähetä vasta, kun kaikkiin kysymyksiin on vastattu ja vastaukset on tarkistettu.",
        "sv": "Skicka först när alla frågor är besvarade och svaren är kontrollerade.",
        "en": "Send only once every question is answered and the answers are checked.",
    },
    "first": {
        "fi": "Tämä on ensimmäinen kysymys: ennen sitä ei ole mitään.",
        "sv": "Det här är den första frågan: det finns inget före den.",
        "en": "This is the first question: there is nothing before it.",
    },
    "not_reached": {
        "fi": "Kysymykseen ”{label}” ei ole vielä vastattu, joten sitä ei voi muokata.",
        "sv": "Frågan ”{label}” är inte besvarad ännu och kan därför inte ändras.",
        "en": "“{label}” has not been answered yet, so it cannot be changed.",
    },
    "back_step": {
        "fi": 'Takaisin voi palata vain terveysaseman valintaan (step: "station").',
        "sv": 'Tillbaka går bara till valet av hälsostation (step: "station").',
        "en": 'Going back to a step works only for the station (step: "station").',
    },
    "back_both": {
        "fi": "Anna joko kysymys tai vaihe, ei molempia.",
        "sv": "Ange antingen en fråga eller ett steg, inte båda.",
        "en": "Give either a question or a step, not both.",
    },
}


def refusal(key: str, lang: str, **values: object) -> str:
    """The ``reason`` of a refused intake message, in the intake's language."""
    return _REFUSALS[key][client_language(lang)].format(**values)


def _refused(code: str, key: str, lang: str, **values: object) -> AnswerError:
    return AnswerError(code, refusal(key, lang, **values))


def client_language(lang: str | None) -> str:
    """The intake language for a client's tag ("sv-FI" -> "sv"); Finnish when unknown."""
    base = (lang or "fi").split("-")[0].lower()
    return base if base in LANGUAGES else "fi"


# The progress's own sections (questionnaire sections are named by their files; "#" is in no id).
_WHO = "#who"
_SEND = "#send"


class IntakeFlow:
    """Every decision of an intake, given the configuration and the time."""

    def __init__(
        self,
        topics: Topics,
        areas: Areas,
        hours: ServiceHours,
        *,
        identification: bool,
        identify_url: Callable[[IntakeSession], str] | None = None,
        check_hours: bool = True,
    ) -> None:
        self.topics = topics
        self.areas = areas
        self.hours = hours
        self.identification = identification
        self.identify_url = identify_url
        self.check_hours = check_hours
        self.eligibility = eligibility_topic(areas)
        for topic in topics.values():
            for own in (OWN_AGE, HOME_MUNICIPALITY):
                if topic.question(own) is not None:
                    raise ValueError(f"topic {topic.id!r} has a question {own!r}: rename it")

    def closed_step(self, lang: str, now: datetime) -> Step | None:
        """The ``closed`` step when new chats are not taken now, else None."""
        if not self.check_hours:
            return None
        status = self.hours.status(now)
        if status.accepting:
            return None
        return Step(StepKind.CLOSED, closed_message(status, lang))

    def prepare(self, s: IntakeSession, page_station: str | None = None) -> None:
        """A new session: the questions of who may chat (without identification), and the
        station of the page it began on (a station's id, or a team's: its first station)."""
        if not self.identification:
            s.eligibility = Intake(self.eligibility, s.lang)
        if page_station and self.areas.station(page_station) is not None:
            s.page_station = page_station
        elif page_station:
            s.page_station = next(
                (st.id for st in self.areas.stations if st.team == page_station), None
            )

    def next_step(self, s: IntakeSession, now: datetime) -> Step:
        """What the client must do now; records the outcome of an end."""
        step = self._decide(s, now)
        if step.kind in _ENDS and s.outcome is None:
            s.outcome = _ENDS[step.kind]
        s.last_step = step
        return step

    def team_for(self, s: IntakeSession) -> str:
        assert s.station_id is not None
        return self.areas.team_for(s.station_id)

    # --- what the client asks -----------------------------------------------------------

    def answer(self, s: IntakeSession, question_id: str, value: object, now: datetime) -> None:
        """An answer to the question asked now, or a changed earlier answer."""
        self._not_ended(s)
        form, question = self._find(s, question_id)
        if not form.is_answered(question.id):
            at = self._position(s, now)
            if at.kind is not StepKind.QUESTION or at.question is None:
                raise _refused(AnswerCode.OUT_OF_ORDER, "not_question", s.lang)
            if at.question.id != question.id:
                key = "answer_first" if self._on_path(s, question) else "not_applicable"
                label = (at.question if key == "answer_first" else question).label[s.lang]
                raise AnswerError(AnswerCode.OUT_OF_ORDER, say(key, s.lang, label=label))
        form.answer(question.id, value)
        # Gone back step by step: on to the next question, its answer shown. From the review:
        # back to it, through any question the change made apply. Otherwise the first
        # question still unanswered.
        walk = s.walking and not s.to_review
        s.revisit = self._next_answered(s, question.id) if walk else None
        path = self._path(s)
        last = bool(path) and path[-1][1].id == question.id
        # Past the last question, a walk goes on to the station chosen in its own step.
        s.choosing_station = walk and last and s.station_source is StationSource.CHOSEN
        s.confirmed = False

    def back(
        self,
        s: IntakeSession,
        now: datetime,
        question_id: str | None = None,
        step: str | None = None,
    ) -> None:
        """One step back; or to an answered question; or (``step="station"``) the station."""
        self._not_ended(s)
        if question_id is not None and step is not None:
            raise _refused("invalid_field", "back_both", s.lang)
        at = self._position(s, now)
        if step is not None:
            if step != "station":
                raise _refused("invalid_field", "back_step", s.lang)
            if at.kind not in (StepKind.REVIEW, StepKind.STATION):
                raise _refused(AnswerCode.OUT_OF_ORDER, "not_station", s.lang)
            self._go(s, station=True, to_review=True)
        elif question_id is not None:
            form, question = self._find(s, question_id)
            if not form.is_answered(question.id):
                label = question.label[s.lang]
                raise _refused(AnswerCode.OUT_OF_ORDER, "not_reached", s.lang, label=label)
            self._go(s, question.id, to_review=at.kind in (StepKind.REVIEW, StepKind.STATION))
        else:
            self._step_back(s, at)

    def stay_anonymous(self, s: IntakeSession, now: datetime) -> None:
        """Not to identify: only the bot, the answers kept (``back`` identifies after all)."""
        self._expect(s, now, StepKind.IDENTIFY, "not_identify")
        s.anonymous = True

    def identify(self, s: IntakeSession, identity: ClientIdentity, now: datetime) -> None:
        """The provider vouched for the client: the identity, and its address's station."""
        self._expect(s, now, StepKind.IDENTIFY, "not_identify")
        s.identity = identity
        station = (
            self.areas.station_for_postal_code(identity.postal_code)
            if identity.postal_code
            else None
        )
        if station is not None and s.station_id is None:
            s.station_id, s.station_source = station.id, StationSource.POSTAL_CODE

    def choose_station(self, s: IntakeSession, station_id: str, now: datetime) -> None:
        self._expect(s, now, StepKind.STATION, "not_station")
        if self.areas.station(station_id) is None:
            raise _refused("unknown_station", "unknown_station", s.lang)
        s.station_id, s.station_source = station_id, StationSource.CHOSEN
        self._go(s)

    def confirm(self, s: IntakeSession, now: datetime) -> None:
        """The review's "Send": the next step is the queue."""
        self._expect(s, now, StepKind.REVIEW, "not_review")
        s.confirmed = True

    def _not_ended(self, s: IntakeSession) -> None:
        if s.outcome is not None:
            raise _refused(AnswerCode.FINISHED, "finished", s.lang)

    def _expect(self, s: IntakeSession, now: datetime, kind: StepKind, key: str) -> None:
        self._not_ended(s)
        if self._position(s, now).kind is not kind:
            raise _refused(AnswerCode.OUT_OF_ORDER, key, s.lang)

    def _go(
        self,
        s: IntakeSession,
        revisit: str | None = None,
        *,
        to_review: bool = False,
        station: bool = False,
        walking: bool = False,
    ) -> None:
        s.revisit, s.to_review, s.choosing_station = revisit, to_review, station
        s.walking, s.confirmed = walking, False

    def _step_back(self, s: IntakeSession, at: _Position) -> None:
        path = self._path(s)
        last = path[-1][1].id if path else None
        if at.kind is StepKind.QUESTION and at.question is not None:
            previous = self._previous(s, at.question.id)
            if previous is None:
                raise _refused(AnswerCode.OUT_OF_ORDER, "first", s.lang)
            self._go(s, previous, walking=True)
        elif at.kind is StepKind.IDENTIFY:
            screening = [q for form, q in path if q.screening and form is s.form]
            if not screening:
                raise _refused(AnswerCode.OUT_OF_ORDER, "first", s.lang)
            self._go(s, screening[-1].id, walking=True)
        elif at.kind is StepKind.ANONYMOUS:
            s.anonymous = False  # identify after all
        elif at.kind is StepKind.REVIEW and s.station_source is not StationSource.POSTAL_CODE:
            self._go(s, station=True)
        elif at.kind is StepKind.STATION and s.to_review and s.station_id is not None:
            self._go(s)  # "change station" not wanted after all: the review again
        elif at.kind in (StepKind.REVIEW, StepKind.STATION) and last is not None:
            self._go(s, last, walking=True)
        else:
            raise _refused(AnswerCode.OUT_OF_ORDER, "first", s.lang)

    # --- where the intake stands ------------------------------------------------------------

    def _position(self, s: IntakeSession, now: datetime) -> _Position:
        form = s.form
        if form.emergency:
            return _Position(StepKind.EMERGENCY)
        # Who may not chat is told at once, also after changing an answer (a 17-year-old is
        # not asked where they live first).
        found = self._refusal(s, now)
        if found is not None:
            return _Position(_REFUSED[found], refusal=found)
        if s.revisit is not None:
            seen = self._answered(s, s.revisit)
            if seen is not None:
                return _Position(StepKind.QUESTION, *seen)
        question = form.next_question()
        if question is not None and question.screening:
            return _Position(StepKind.QUESTION, form, question)
        gate = self._who_may_chat(s)
        if gate is not None:
            return gate
        if question is not None:
            return _Position(StepKind.QUESTION, form, question)
        closed = self.closed_step(s.lang, now)
        if closed is not None:
            return _Position(StepKind.CLOSED, closed=closed)
        if s.choosing_station or s.station_id is None:
            return _Position(StepKind.STATION)
        return _Position(StepKind.READY if s.confirmed else StepKind.REVIEW)

    def _refusal(self, s: IntakeSession, now: datetime) -> Refusal | None:
        if s.identity is not None:
            age = s.identity.age_on(now.date())
            return identity_refusal(age, self.areas.is_resident(s.identity.municipality))
        return None if s.eligibility is None else declared_refusal(s.eligibility)

    def _who_may_chat(self, s: IntakeSession) -> _Position | None:
        """What settles who may chat while it is not settled (no refusal found): None when
        the client may go on to the rest."""
        if s.identity is not None:
            return None
        if s.eligibility is not None:
            question = s.eligibility.next_question()
            return (
                None if question is None else _Position(StepKind.QUESTION, s.eligibility, question)
            )
        if self.identification:
            return _Position(StepKind.ANONYMOUS if s.anonymous else StepKind.IDENTIFY)
        return None

    def _forms(self, s: IntakeSession) -> list[Intake]:
        return [s.form] if s.eligibility is None else [s.form, s.eligibility]

    def _path(self, s: IntakeSession) -> list[tuple[Intake, Question]]:
        """The questions that apply, in the order they are asked."""
        applicable = s.form.applicable()
        first = [(s.form, q) for q in applicable if q.screening]
        who = (
            []
            if s.eligibility is None
            else [(s.eligibility, q) for q in s.eligibility.applicable()]
        )
        return first + who + [(s.form, q) for q in applicable if not q.screening]

    def _find(self, s: IntakeSession, question_id: str) -> tuple[Intake, Question]:
        for form in self._forms(s):
            question = form.topic.question(question_id)
            if question is not None:
                return form, question
        shown = str(question_id)[:64]
        raise AnswerError(
            AnswerCode.UNKNOWN_QUESTION, say("unknown_question", s.lang, question=shown)
        )

    def _on_path(self, s: IntakeSession, question: Question) -> bool:
        return any(q.id == question.id for _, q in self._path(s))

    def _answered(self, s: IntakeSession, question_id: str) -> tuple[Intake, Question] | None:
        return next(
            ((f, q) for f, q in self._path(s) if q.id == question_id and f.is_answered(q.id)),
            None,
        )

    def _previous(self, s: IntakeSession, question_id: str) -> str | None:
        ids = [q.id for _, q in self._path(s)]
        at = ids.index(question_id) if question_id in ids else 0
        return ids[at - 1] if at > 0 else None

    def _next_answered(self, s: IntakeSession, question_id: str) -> str | None:
        path = self._path(s)
        ids = [q.id for _, q in path]
        if question_id not in ids:
            return None
        later = path[ids.index(question_id) + 1 :]
        if not later or not later[0][0].is_answered(later[0][1].id):
            return None  # the first unanswered one comes next anyway
        return later[0][1].id

    # --- the steps in words ----------------------------------------------------------------

    def _decide(self, s: IntakeSession, now: datetime) -> Step:
        if s.outcome is not None and s.last_step is not None:
            return s.last_step
        lang = s.lang
        at = self._position(s, now)
        triage = s.form.triage(lang)
        level = triage.level.value
        if at.kind is StepKind.EMERGENCY:
            return Step(
                StepKind.EMERGENCY,
                {
                    "text": _EMERGENCY[lang],
                    "reasons": list(triage.reasons),
                    "numbers": numbers(lang, ("112",)),
                },
                triage=TriageLevel.EMERGENCY.value,
            )
        if at.kind is StepKind.QUESTION:
            assert at.form is not None and at.question is not None
            view = at.form.question_view(at.question)
            view.pop("progress", None)
            return Step(
                StepKind.QUESTION,
                view,
                progress=self._progress(s, at.question),
                back=self._previous(s, at.question.id) is not None,
            )
        if at.refusal is not None:
            detail = turned_away(at.refusal, triage.level, self.areas, lang)
            return Step(at.kind, detail, triage=level)
        if at.closed is not None:
            return Step(at.closed.kind, at.closed.detail, triage=level)
        progress = self._progress(
            s, None, final=at.kind not in (StepKind.IDENTIFY, StepKind.ANONYMOUS)
        )
        if at.kind is StepKind.IDENTIFY:
            url = self.identify_url(s) if self.identify_url is not None else None
            detail = {"text": _IDENTIFY[lang], "url": url, "anonymous_allowed": True}
            back = any(q.screening for q in s.form.applicable())
            return Step(StepKind.IDENTIFY, detail, triage=level, progress=progress, back=back)
        if at.kind is StepKind.ANONYMOUS:
            detail = {"text": _ANONYMOUS[lang], "numbers": numbers(lang, ("116117", "112"))}
            return Step(StepKind.ANONYMOUS, detail, triage=level, progress=progress, back=True)
        if at.kind is StepKind.STATION:
            selected = s.station_id or s.page_station
            source = s.station_source if s.station_id else ("page" if selected else None)
            detail = {
                "text": _STATION[source][lang],
                "stations": self.areas.choices(lang),
                "selected": selected,
            }
            return Step(StepKind.STATION, detail, triage=level, progress=progress, back=True)
        if at.kind is StepKind.REVIEW:
            return Step(
                StepKind.REVIEW, self._review(s), triage=level, progress=progress, back=True
            )
        return Step(StepKind.READY, {"station": s.station_id}, triage=level)

    def _sections(self, s: IntakeSession) -> list[tuple[str, str]]:
        """The sections of the progress, (key, title), in order."""
        lang, topic = s.lang, s.form.topic
        applicable = s.form.applicable()
        keys = list(dict.fromkeys(q.section for q in applicable if q.screening))
        if self.identification or s.eligibility is not None:
            keys.append(_WHO)
        keys += [
            k
            for k in dict.fromkeys(q.section for q in applicable if not q.screening)
            if k not in keys
        ]
        titles = [
            section_title(self.identification, lang) if k == _WHO else topic.section_title(k, lang)
            for k in keys
        ]
        return [*zip(keys, titles, strict=True), (_SEND, _FINAL_SECTION[lang])]

    def _progress(
        self, s: IntakeSession, question: Question | None, *, final: bool = False
    ) -> dict[str, Any]:
        """ "Section 2 of 5: Symptoms"; for a question also its place among all of them."""
        sections = self._sections(s)
        keys = [k for k, _ in sections]
        if question is None:
            key = _SEND if final else _WHO
        else:
            key = (
                _WHO
                if s.eligibility is not None and question.id in (OWN_AGE, HOME_MUNICIPALITY)
                else question.section
            )
        index = keys.index(key) if key in keys else len(keys) - 1
        progress: dict[str, Any] = {
            "section": index + 1,
            "sections": len(sections),
            "title": sections[index][1],
        }
        if question is not None:
            ids = [q.id for _, q in self._path(s)]
            place = ids.index(question.id) + 1 if question.id in ids else len(ids)
            progress.update(index=place, total=max(len(ids), place))
        return progress

    def _review(self, s: IntakeSession) -> dict[str, Any]:
        """Every answer by section, each with the id to change it by, and the station."""
        lang = s.lang
        sections: list[dict[str, Any]] = []
        by_key: dict[str, dict[str, Any]] = {}
        titles = dict(self._sections(s))
        for form, question in self._path(s):
            key = _WHO if form is s.eligibility else question.section
            if key not in by_key:
                by_key[key] = {"title": titles.get(key, ""), "answers": []}
                sections.append(by_key[key])
            by_key[key]["answers"].append(
                {
                    "id": question.id,
                    "label": question.label[lang],
                    "answer": form.answer_text(question, lang),
                }
            )
        station = self.areas.station(s.station_id or "")
        return {
            "text": _REVIEW[lang],
            "sections": sections,
            "identity": None if s.identity is None else {"name": s.identity.name},
            "station": None
            if station is None
            else {
                "id": station.id,
                "name": station.name(lang, self.areas.languages[0]),
                "source": s.station_source.value if s.station_source else None,
            },
        }
