"""The path from "I want to chat" to a place in the right queue: pure decisions.

An intake walks a resident through, in this order:

1. **Service hours.** Outside them (or after the last intake time) nothing else is asked: the
   client is told when the chat opens next and offered the bot and the 24/7 numbers.
2. **The questionnaire** of the chosen topic (:mod:`server.intake.questionnaire`). Its red-flag
   screening comes first, and the first answer that makes the triage ``emergency`` ends the
   intake with an instruction to call 112: nothing is queued, and the hub stores the intake.
3. **Identification**, for adults who bring their own health matter: the client opens the
   identification URL (:mod:`server.intake.oidc`). Choosing to stay anonymous leads to the bot.
   An identified under-18 may not open an identified chat and is sent to the bot too; when the
   provider tells the municipality, a non-resident is guided to their own services.
4. **The health station**: from the identity's postal code, else the client chooses.
5. Then the hub queues the conversation in the station's team's queue, ``urgent`` ones first.

:class:`IntakeFlow` holds the configuration and makes every decision from an
:class:`IntakeSession` and the time it is given; the hub keeps the sessions, stores outcomes and
sends the steps. Times come in as aware datetimes, so tests use a fixed clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from server.core.documents import IdentityDocument, IntakeSummary
from server.intake.areas import Areas
from server.intake.hours import ServiceHours, closed_message
from server.intake.questionnaire import LANGUAGES, Intake, Topics, TriageLevel

__all__ = [
    "ADULT_AGE",
    "ClientIdentity",
    "IntakeFlow",
    "IntakeSession",
    "Outcome",
    "Step",
    "StepKind",
    "client_language",
]

ADULT_AGE = 18


class StepKind(StrEnum):
    QUESTION = "question"
    IDENTIFY = "identify"
    STATION = "station"
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


_ENDS = {
    StepKind.EMERGENCY: Outcome.EMERGENCY,
    StepKind.BOT: Outcome.BOT,
    StepKind.GUIDANCE: Outcome.GUIDANCE,
    StepKind.CLOSED: Outcome.CLOSED,
}


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

    def triage(self) -> TriageLevel:
        return self.form.triage().level

    def summary(self, lang: str) -> IntakeSummary:
        return self.form.summary(lang)


@dataclass(frozen=True)
class Step:
    """What the client is told next; ``detail`` is JSON-ready."""

    kind: StepKind
    detail: dict[str, Any] | None = None
    triage: str | None = None
    progress: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.kind in _ENDS


# The texts of the ends, per language. The numbers are also given as data so the client can
# render them as links.
_EMERGENCY = {
    "fi": "Oireesi voivat olla hengenvaarallisia. Soita heti hätänumeroon 112. "
    "Älä jää odottamaan chattiin.",
    "sv": "Dina symtom kan vara livshotande. Ring genast nödnumret 112. Vänta inte i chatten.",
    "en": "Your symptoms may be life-threatening. Call the emergency number 112 now. "
    "Do not wait for the chat.",
}
_ANONYMOUS_BOT = {
    "fi": "Voit kysyä neuvontabotilta yleisiä terveyskysymyksiä nimettömänä. "
    "Jos tarvitset hoitajan apua omassa asiassasi, tunnistaudu.",
    "sv": "Du kan ställa allmänna hälsofrågor till rådgivningsboten anonymt. "
    "Om du behöver en skötares hjälp i ditt eget ärende, identifiera dig.",
    "en": "You can ask the advice bot general health questions anonymously. "
    "If you need a nurse's help with your own matter, please identify yourself.",
}
_UNDER_AGE = {
    "fi": "Alle 18-vuotias ei voi aloittaa tunnistautunutta chattia itse. Neuvontabotti "
    "vastaa yleisiin kysymyksiin. Koululaisena voit kääntyä oman kouluterveydenhoitajasi "
    "puoleen. Voit myös pyytää huoltajaa ottamaan yhteyttä, tai soittaa päivystysapuun "
    "116117. Hätätilanteessa soita 112.",
    "sv": "Den som är under 18 år kan inte själv starta en identifierad chatt. "
    "Rådgivningsboten svarar på allmänna frågor. Som elev kan du vända dig till din "
    "skolhälsovårdare. Du kan också be en vårdnadshavare kontakta oss, eller ringa "
    "jourhjälpen 116117. I nödsituationer ring 112.",
    "en": "Under-18s cannot start an identified chat themselves. The advice bot answers "
    "general questions. Pupils can turn to their school health nurse. You can also ask a "
    "guardian to contact us, or call the medical helpline 116117. In an emergency call 112.",
}
_NOT_RESIDENT = {
    "fi": "Tämä chat palvelee {municipality} asukkaita. Ota yhteyttä oman kuntasi tai "
    "hyvinvointialueesi terveysasemaan. Päivystysapu 116117 palvelee ympäri vuorokauden; "
    "hätätilanteessa soita 112.",
    "sv": "Den här chatten betjänar invånare i {municipality}. Kontakta hälsostationen i din "
    "egen kommun eller ditt välfärdsområde. Jourhjälpen 116117 betjänar dygnet runt; i "
    "nödsituationer ring 112.",
    "en": "This chat serves residents of {municipality}. Please contact the health station "
    "of your own municipality or wellbeing services county. The medical helpline 116117 is "
    "open around the clock; in an emergency call 112.",
}
_IDENTIFY = {
    "fi": "Tunnistaudu pankkitunnuksilla tai mobiilivarmenteella, niin hoitaja näkee "
    "kenen asiasta on kyse ja voi kirjata keskustelun potilastietoihisi.",
    "sv": "Identifiera dig med nätbankskoder eller mobilcertifikat, så vet skötaren vem "
    "ärendet gäller och kan föra in samtalet i din journal.",
    "en": "Identify yourself with online banking codes or a mobile certificate, so the nurse "
    "knows whose matter it is and can record the chat in your patient record.",
}
_STATION = {
    "fi": "Valitse oma terveysasemasi.",
    "sv": "Välj din egen hälsostation.",
    "en": "Choose your own health station.",
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
}


def refusal(key: str, lang: str) -> str:
    """The ``reason`` of a refused intake message, in the intake's language."""
    return _REFUSALS[key][client_language(lang)]


_NUMBERS = {
    "112": {"fi": "Hätänumero", "sv": "Nödnummer", "en": "Emergency number"},
    "116117": {"fi": "Päivystysapu", "sv": "Jourhjälpen", "en": "Medical helpline"},
}


def _numbers(lang: str, only: tuple[str, ...] = ("112", "116117")) -> list[dict[str, str]]:
    return [{"number": n, "tel": f"tel:{n}", "name": _NUMBERS[n][lang]} for n in only]


def client_language(lang: str | None) -> str:
    """The intake language for a client's tag ("sv-FI" -> "sv"); Finnish when unknown."""
    base = (lang or "fi").split("-")[0].lower()
    return base if base in LANGUAGES else "fi"


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

    def closed_step(self, lang: str, now: datetime) -> Step | None:
        """The ``closed`` step when new chats are not taken now, else None."""
        if not self.check_hours:
            return None
        status = self.hours.status(now)
        if status.accepting:
            return None
        return Step(StepKind.CLOSED, closed_message(status, lang))

    def next_step(self, s: IntakeSession, now: datetime) -> Step:
        """What the client must do now; records the outcome of an end."""
        step = self._decide(s, now)
        if step.kind in _ENDS and s.outcome is None:
            s.outcome = _ENDS[step.kind]
        s.last_step = step
        return step

    def _decide(self, s: IntakeSession, now: datetime) -> Step:
        lang = s.lang
        if s.outcome is not None and s.last_step is not None:
            return s.last_step
        form = s.form
        triage = form.triage(lang)
        if form.emergency:
            return Step(
                StepKind.EMERGENCY,
                {
                    "text": _EMERGENCY[lang],
                    "reasons": list(triage.reasons),
                    "numbers": _numbers(lang, ("112",)),
                },
                triage=TriageLevel.EMERGENCY.value,
            )
        question = form.next_question()
        if question is not None:
            view = form.question_view(question)
            progress = view.pop("progress", None)
            return Step(
                StepKind.QUESTION, view, progress=progress if isinstance(progress, dict) else None
            )
        level = triage.level.value
        if (closed := self.closed_step(lang, now)) is not None:
            return Step(closed.kind, closed.detail, triage=level)
        if s.anonymous:
            return Step(
                StepKind.BOT,
                {"text": _ANONYMOUS_BOT[lang], "numbers": _numbers(lang)},
                triage=level,
            )
        if self.identification and s.identity is None:
            url = self.identify_url(s) if self.identify_url is not None else None
            return Step(
                StepKind.IDENTIFY,
                {"text": _IDENTIFY[lang], "url": url, "anonymous_allowed": True},
                triage=level,
            )
        if s.identity is not None:
            if s.identity.age_on(now.date()) < ADULT_AGE:
                return Step(
                    StepKind.BOT,
                    {"text": _UNDER_AGE[lang], "reason": "under_age", "numbers": _numbers(lang)},
                    triage=level,
                )
            if self.areas.is_resident(s.identity.municipality) is False:
                name = self.areas.municipality_names.get(lang, self.areas.municipality)
                return Step(
                    StepKind.GUIDANCE,
                    {
                        "text": _NOT_RESIDENT[lang].format(municipality=name),
                        "reason": "not_resident",
                        "numbers": _numbers(lang),
                    },
                    triage=level,
                )
            if s.station_id is None and s.identity.postal_code:
                station = self.areas.station_for_postal_code(s.identity.postal_code)
                if station is not None:
                    s.station_id = station.id
        if s.station_id is None:
            return Step(
                StepKind.STATION,
                {"text": _STATION[lang], "stations": self.areas.choices(lang)},
                triage=level,
            )
        return Step(StepKind.READY, {"station": s.station_id}, triage=level)

    def team_for(self, s: IntakeSession) -> str:
        assert s.station_id is not None
        return self.areas.team_for(s.station_id)
