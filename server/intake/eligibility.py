"""Who the nurse chat is for, how the intake finds out, and what everyone else is told.

The nurse chat serves adults (``ADULT_AGE``) whose home municipality is the one of the areas
data (``server/config/areas.toml``). With identification configured the identity says both;
without it two questions ask them (:func:`eligibility_topic`). Either way the intake settles it
right after the red-flag screening, so that nobody answers the whole questionnaire to be
turned away at the end.

A person turned away gets advice that fits how urgent their matter looks from the answers
given so far (:func:`turned_away`): urgent, call the medical helpline 116117 now; otherwise
school or student health care (under 18), or their own municipality's services.

The start screen says the same before anything is asked (:func:`audience`): who the chat is
for, derived from the configuration, and where the others turn. Every text is in Finnish,
Swedish and English. Pure: no I/O, no clock.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from server.intake.areas import Areas
from server.intake.questionnaire import (
    Intake,
    Localized,
    Question,
    QuestionKind,
    Topic,
    TriageLevel,
)

__all__ = [
    "ADULT_AGE",
    "HOME_MUNICIPALITY",
    "OWN_AGE",
    "Refusal",
    "audience",
    "declared_refusal",
    "eligibility_topic",
    "identity_refusal",
    "municipality_name",
    "numbers",
    "section_title",
    "turned_away",
]

ADULT_AGE = 18

#: The questions asked when nobody is identified (their ids never clash with a topic's).
OWN_AGE = "own_age"
HOME_MUNICIPALITY = "home_municipality"
SECTION = "eligibility"


class Refusal(StrEnum):
    """Why someone cannot open a chat with a nurse (``detail.reason`` of the step)."""

    UNDER_AGE = "under_age"
    NOT_RESIDENT = "not_resident"


def municipality_name(areas: Areas, lang: str) -> str:
    return areas.municipality_names.get(lang, areas.municipality)


def _texts(texts: dict[str, str], areas: Areas) -> Localized:
    """``texts`` in each language, with the age and the municipality's name in it."""
    return Localized(
        *(
            texts[lang].format(age=ADULT_AGE, municipality=municipality_name(areas, lang))
            for lang in ("fi", "sv", "en")
        )
    )


# --- the questions -----------------------------------------------------------------------------

_OWN_AGE = {
    "text": {
        "fi": "Kuinka vanha sinä itse olet?",
        "sv": "Hur gammal är du själv?",
        "en": "How old are you yourself?",
    },
    "label": {"fi": "Oma ikä", "sv": "Egen ålder", "en": "Own age"},
    "help": {
        "fi": "Hoitajan chat on {age} vuotta täyttäneille. Jos kysyt lapsesi puolesta, kerro "
        "oma ikäsi: lapsen tiedot kysytään myöhemmin.",
        "sv": "Sjukskötarens chatt är för personer som fyllt {age} år. Frågar du för ditt "
        "barn, ange din egen ålder: barnets uppgifter frågas senare.",
        "en": "The nurse chat is for people aged {age} or over. If you are asking for your "
        "child, give your own age: the child's details are asked later.",
    },
    "unit": {"fi": "v", "sv": "år", "en": "years"},
}
_HOME = {
    "text": {
        "fi": "Onko kotikuntasi {municipality}?",
        "sv": "Är {municipality} din hemkommun?",
        "en": "Is {municipality} your home municipality?",
    },
    "label": {
        "fi": "Kotikunta {municipality}",
        "sv": "Hemkommun {municipality}",
        "en": "Home municipality {municipality}",
    },
    "help": {
        "fi": "Kotikunta on se kunta, jossa asut vakinaisesti.",
        "sv": "Hemkommunen är den kommun där du stadigvarande bor.",
        "en": "Your home municipality is the one where you permanently live.",
    },
}
_TITLES = {
    "questions": {"fi": "Tietoja sinusta", "sv": "Om dig", "en": "About you"},
    "identification": {"fi": "Tunnistautuminen", "sv": "Identifiering", "en": "Identification"},
}


def section_title(identification: bool, lang: str) -> str:
    """The progress's name for the part that settles who may chat."""
    return _TITLES["identification" if identification else "questions"][lang]


def _question(
    question_id: str,
    kind: QuestionKind,
    texts: dict[str, dict[str, str]],
    areas: Areas,
    **more: Any,
) -> Question:
    return Question(
        id=question_id,
        kind=kind,
        text=_texts(texts["text"], areas),
        label=_texts(texts["label"], areas),
        help=_texts(texts["help"], areas),
        section=SECTION,
        **more,
    )


def eligibility_topic(areas: Areas) -> Topic:
    """The two questions asked, when nobody is identified, right after the red flags.

    A topic of its own, so that the questionnaire engine checks, shows and summarises the
    answers like any other; its ids are not in any shipped topic.
    """
    unit = _texts(_OWN_AGE["unit"], areas)
    age = _question(
        OWN_AGE, QuestionKind.NUMBER, _OWN_AGE, areas, unit=unit, min=0, max=120, integer=True
    )
    home = _question(HOME_MUNICIPALITY, QuestionKind.YES_NO, _HOME, areas)
    title = _texts(_TITLES["questions"], areas)
    return Topic(
        id=SECTION,
        title=title,
        description=title,
        questions=(age, home),
        rules=(),
        section_titles={SECTION: title},
    )


# --- the decisions ------------------------------------------------------------------------------


def identity_refusal(age: int, resident: bool | None) -> Refusal | None:
    """What an identity allows: ``resident`` is None when the provider did not say."""
    if age < ADULT_AGE:
        return Refusal.UNDER_AGE
    if resident is False:
        return Refusal.NOT_RESIDENT
    return None


def declared_refusal(form: Intake) -> Refusal | None:
    """What the answers to the two questions allow (None also while they are unanswered)."""
    answers = form.answers()
    age = answers.get(OWN_AGE)
    if isinstance(age, int) and not isinstance(age, bool) and age < ADULT_AGE:
        return Refusal.UNDER_AGE
    if answers.get(HOME_MUNICIPALITY) is False:
        return Refusal.NOT_RESIDENT
    return None


# --- what a person reads -------------------------------------------------------------------------

_NUMBER_NAMES = {
    "112": {"fi": "Hätänumero", "sv": "Nödnummer", "en": "Emergency number"},
    "116117": {"fi": "Päivystysapu", "sv": "Jourhjälpen", "en": "Medical helpline"},
}


def numbers(lang: str, only: tuple[str, ...] = ("112", "116117")) -> list[dict[str, str]]:
    """The phone numbers a step offers as links."""
    return [{"number": n, "tel": f"tel:{n}", "name": _NUMBER_NAMES[n][lang]} for n in only]


# Advice by the reason and by how urgent the matter looks from the answers so far.
_TURNED_AWAY = {
    (Refusal.UNDER_AGE, False): {
        "fi": "Hoitajan chat on {age} vuotta täyttäneille, joten et voi aloittaa sitä itse. "
        "Ota yhteyttä kouluterveydenhoitajaasi tai, jos opiskelet, opiskeluterveydenhuoltoon. "
        "Huoltajasi voi myös aloittaa chatin puolestasi. Neuvontabotti vastaa yleisiin "
        "kysymyksiin heti.",
        "sv": "Sjukskötarens chatt är för personer som fyllt {age} år, så du kan inte starta "
        "den själv. Kontakta din skolhälsovårdare eller, om du studerar, studerandehälsovården. "
        "En vårdnadshavare kan också starta chatten för dig. Rådgivningsboten svarar genast på "
        "allmänna frågor.",
        "en": "The nurse chat is for people aged {age} or over, so you cannot start it "
        "yourself. Contact your school nurse or, if you are a student, student health care. "
        "A parent or guardian can also start the chat for you. The advice bot answers general "
        "questions at once.",
    },
    (Refusal.UNDER_AGE, True): {
        "fi": "Hoitajan chat on {age} vuotta täyttäneille, mutta vastaustesi perusteella "
        "asiasi on kiireellinen: soita nyt Päivystysapuun 116117, mieluiten yhdessä huoltajasi "
        "kanssa. Hätätilanteessa soita 112.",
        "sv": "Sjukskötarens chatt är för personer som fyllt {age} år, men enligt dina svar är "
        "ditt ärende brådskande: ring Jourhjälpen 116117 nu, helst tillsammans med en "
        "vårdnadshavare. I nödsituationer ring 112.",
        "en": "The nurse chat is for people aged {age} or over, but your answers suggest your "
        "matter is urgent: call the Medical Helpline 116117 now, with a parent or guardian if "
        "you can. In an emergency call 112.",
    },
    (Refusal.NOT_RESIDENT, False): {
        "fi": "Hoitajan chat palvelee asukkaita, joiden kotikunta on {municipality}. Ota "
        "yhteyttä oman kuntasi tai hyvinvointialueesi terveysasemaan: monella on oma chat tai "
        "takaisinsoittopalvelu. Kiireellisissä asioissa Päivystysapu 116117 palvelee ympäri "
        "vuorokauden.",
        "sv": "Sjukskötarens chatt betjänar invånare i {municipality}. Kontakta hälsostationen "
        "i din egen kommun eller ditt välfärdsområde: många har en egen chatt eller "
        "återuppringning. I brådskande ärenden betjänar Jourhjälpen 116117 dygnet runt.",
        "en": "The nurse chat serves residents of {municipality}. Contact the health station "
        "of your own municipality or wellbeing services county: many have a chat or call-back "
        "service of their own. For urgent matters the Medical Helpline 116117 is open around "
        "the clock.",
    },
    (Refusal.NOT_RESIDENT, True): {
        "fi": "Hoitajan chat palvelee asukkaita, joiden kotikunta on {municipality}, mutta "
        "vastaustesi perusteella asiasi on kiireellinen: soita nyt Päivystysapuun 116117. Se "
        "palvelee ympäri vuorokauden. Hätätilanteessa soita 112.",
        "sv": "Sjukskötarens chatt betjänar invånare i {municipality}, men enligt dina svar är "
        "ditt ärende brådskande: ring Jourhjälpen 116117 nu. Den betjänar dygnet runt. I "
        "nödsituationer ring 112.",
        "en": "The nurse chat serves residents of {municipality}, but your answers suggest "
        "your matter is urgent: call the Medical Helpline 116117 now. It is open around the "
        "clock. In an emergency call 112.",
    },
}


def turned_away(refusal: Refusal, level: TriageLevel, areas: Areas, lang: str) -> dict[str, Any]:
    """The ``detail`` of the end for someone turned away, chosen by the triage so far."""
    urgent = level.rank >= TriageLevel.URGENT.rank
    text = _TURNED_AWAY[(refusal, urgent)][lang].format(
        age=ADULT_AGE, municipality=municipality_name(areas, lang)
    )
    return {"text": text, "reason": refusal.value, "numbers": numbers(lang, ("116117", "112"))}


_AUDIENCE = {
    "who": {
        "fi": "Hoitajan chat on {age} vuotta täyttäneille, joiden kotikunta on {municipality}.",
        "sv": "Sjukskötarens chatt är för personer som fyllt {age} år och bor i {municipality}.",
        "en": "The nurse chat is for people aged {age} or over who live in {municipality}.",
    },
    "identify": {
        "fi": "Tunnistaudut pankkitunnuksilla tai mobiilivarmenteella heti hätäoireita "
        "koskevan kysymyksen jälkeen.",
        "sv": "Du identifierar dig med nätbankskoder eller mobilcertifikat direkt efter frågan "
        "om akuta symtom.",
        "en": "You identify with online banking codes or a mobile certificate right after the "
        "question about danger signs.",
    },
    "ask": {
        "fi": "Kysymme ikäsi ja kotikuntasi heti hätäoireita koskevan kysymyksen jälkeen.",
        "sv": "Vi frågar din ålder och hemkommun direkt efter frågan om akuta symtom.",
        "en": "We ask your age and home municipality right after the question about danger signs.",
    },
    "under_age": {
        "fi": "Alle {age}-vuotiaat: kouluterveydenhoitaja tai opiskeluterveydenhuolto. Huoltaja "
        "voi asioida lapsensa puolesta.",
        "sv": "Under {age} år: skolhälsovårdaren eller studerandehälsovården. En vårdnadshavare "
        "kan sköta ärendet för sitt barn.",
        "en": "Under {age}: your school nurse or student health care. A parent or guardian "
        "can chat on their child's behalf.",
    },
    "elsewhere": {
        "fi": "Muualla asuvat: oman kunnan tai hyvinvointialueen terveyspalvelut.",
        "sv": "Bor du på annat håll: hälsotjänsterna i din egen kommun eller ditt välfärdsområde.",
        "en": "Living elsewhere: the health services of your own municipality or wellbeing "
        "services county.",
    },
    "anonymous": {
        "fi": "Tunnistautumatta: neuvontabotti vastaa yleisiin kysymyksiin.",
        "sv": "Utan identifiering: rådgivningsboten svarar på allmänna frågor.",
        "en": "Without identifying: the advice bot answers general questions.",
    },
    "everyone": {
        "fi": "Kaikille: neuvontabotti vastaa yleisiin kysymyksiin heti.",
        "sv": "För alla: rådgivningsboten svarar genast på allmänna frågor.",
        "en": "For everyone: the advice bot answers general questions at once.",
    },
}


def audience(areas: Areas, lang: str, *, identification: bool, bot: bool) -> dict[str, Any]:
    """Who the nurse chat is for and where the others turn, for the start screen."""
    values = {"age": ADULT_AGE, "municipality": municipality_name(areas, lang)}

    def say(key: str) -> str:
        return _AUDIENCE[key][lang].format(**values)

    who = f"{say('who')} {say('identify' if identification else 'ask')}"
    others = [say("under_age"), say("elsewhere")]
    if bot:
        others.append(say("anonymous" if identification else "everyone"))
    return {"text": who, "others": others, "adult_age": ADULT_AGE}
