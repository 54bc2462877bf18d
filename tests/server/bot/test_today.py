"""The bot is right about today: hours, holidays and eves from the intake's own hours, and the
nurses' chat offered while it is open; symptoms, young people and nonsense find their answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from protocol.extras import BotExtras
from server.bot.knowledge import KnowledgeBase, load_knowledge, normalize
from server.bot.responder import BotReply, compose
from server.bot.today import Today, asked_day
from server.core.texts import HELSINKI
from server.intake.hours import ServiceHours, SpecialDay, load_hours


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge()


@pytest.fixture(scope="module")
def hours() -> ServiceHours:
    return load_hours()


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=HELSINKI)


MIDSUMMER_EVE_2027 = at(2027, 6, 25, 10)  # a Friday: the `holidays` calendar closes it
A_TUESDAY = at(2026, 12, 8, 10)  # an ordinary weekday, open 8-16
THE_NIGHT = at(2026, 12, 8, 2)


def kinds(reply: BotReply) -> list[str]:
    return [a.kind.value for a in reply.actions]


def urls(reply: BotReply) -> list[str]:
    return [a.url for a in reply.actions]


# --- opening hours -----------------------------------------------------------------------------


def test_on_midsummer_eve_the_hours_answer_says_closed_and_names_the_next_opening(
    kb: KnowledgeBase, hours: ServiceHours
) -> None:
    today = Today(hours, MIDSUMMER_EVE_2027, handoff=True)
    fi = compose(kb, "onko terveysasema auki tänään", "fi", today)
    assert fi.label == "opening_hours"
    assert "Tänään on juhannusaatto, ja chat on suljettu." in fi.text
    assert "maanantaina 28.6. klo 8.00" in fi.text
    assert "handoff" not in kinds(fi)
    sv = compose(kb, "är hälsostationen öppen i dag", "sv", today)
    assert "midsommarafton" in sv.text and "måndag 28.6 kl. 8.00" in sv.text
    en = compose(kb, "is the health station open today", "en", today)
    assert "Today is Midsummer Eve, and the chat is closed." in en.text
    assert "on Monday 28 June at 8:00" in en.text


def test_asked_months_ahead_about_midsummer_eve_it_says_closed_that_day(
    kb: KnowledgeBase, hours: ServiceHours
) -> None:
    today = Today(hours, A_TUESDAY, handoff=True)
    fi = compose(kb, "Onko terveysasema auki juhannusaattona?", "fi", today)
    assert fi.text.startswith(
        "Perjantaina 25.6. (juhannusaatto) terveysasemat ja chat ovat kiinni. "
        "Seuraavan kerran ne aukeavat maanantaina 28.6. klo 8.00."
    )
    en = compose(kb, "are you open on midsummer eve", "en", today)
    assert en.text.startswith("On Friday 25 June (Midsummer Eve) the health stations and the")
    sv = compose(kb, "har ni öppet på midsommarafton", "sv", today)
    assert sv.text.startswith("På fredag 25.6 (midsommarafton) är hälsostationerna")
    # An eve that is not a holiday itself is open, with the eve's hours.
    eve = compose(kb, "ootteko auki aatonaattona", "fi", today)
    assert eve.text.startswith(
        "Keskiviikkona 23.12. (arkipyhän aatto) terveysasemat ja chat ovat auki klo 8–15."
    )


def test_on_an_ordinary_weekday_it_says_open_now_and_offers_the_handoff(
    kb: KnowledgeBase, hours: ServiceHours
) -> None:
    today = Today(hours, A_TUESDAY, handoff=True)
    reply = compose(kb, "onko chat auki nyt", "fi", today)
    assert reply.label == "opening_hours"
    assert "Tänään terveysasemat ja chat ovat auki klo 8–16." in reply.text
    assert "Chat on auki, ja uusia keskusteluja otetaan vastaan klo 15.30 asti." in reply.text
    assert "ma–to klo 8–16, pe klo 8–15, la–su suljettu" in reply.text
    assert kinds(reply)[0] == "handoff"
    # Without an intake to start there is no button, and after closing none either.
    assert "handoff" not in kinds(compose(kb, "onko chat auki nyt", "fi", Today(hours, A_TUESDAY)))
    evening = compose(kb, "is the chat open now", "en", Today(hours, at(2026, 12, 8, 17), True))
    assert "The chat has closed for today. The chat opens tomorrow at 8:00." in evening.text
    assert "handoff" not in kinds(evening)


def test_the_coming_holidays_and_eves_are_listed(kb: KnowledgeBase, hours: ServiceHours) -> None:
    reply = compose(kb, "aukioloajat", "fi", Today(hours, at(2026, 12, 20, 12)))
    assert (
        "Lähipäivien poikkeukset: keskiviikkona 23.12. (arkipyhän aatto) klo 8–15, "
        "torstaina 24.12. (jouluaatto) suljettu, perjantaina 25.12. (joulupäivä) suljettu"
    ) in reply.text


def test_the_hours_follow_the_hours_file_not_the_knowledge_base(
    kb: KnowledgeBase, hours: ServiceHours
) -> None:
    """A training day in hours.toml is in the bot's answer the moment it is there."""
    training = SpecialDay(date(2026, 12, 9), None, {"fi": "koulutuspäivä", "sv": "x", "en": "y"})
    closed = replace(hours, exceptions={training.day: training})
    reply = compose(kb, "onko terveysasema auki huomenna", "fi", Today(closed, A_TUESDAY))
    assert reply.text.startswith(
        "Huomenna (koulutuspäivä) terveysasemat ja chat ovat kiinni. "
        "Seuraavan kerran ne aukeavat torstaina 10.12. klo 8.00."
    )
    assert "(koulutuspäivä)" not in compose(kb, "aukioloajat", "fi", Today(hours, A_TUESDAY)).text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("onko auki juhannuksena", date(2027, 6, 25)),
        ("är ni öppna på julafton", date(2026, 12, 24)),
        ("open on new year's eve?", date(2026, 12, 31)),
        ("vapunaattona auki?", date(2027, 4, 30)),
        ("onko auki lauantaina", date(2026, 12, 12)),
        ("open tomorrow?", date(2026, 12, 9)),
        ("onko auki 6.1.", date(2027, 1, 6)),
        ("onko auki joulukuussa", None),  # December is not Christmas
        ("milloin olette auki", None),
    ],
)
def test_the_day_a_question_names(hours: ServiceHours, text: str, expected: date | None) -> None:
    assert asked_day(text, normalize(text), hours, A_TUESDAY.date()) == expected


# --- the nurses' chat ---------------------------------------------------------------------------

FEVERISH_TODDLER = {
    "fi": "taaperolla on ollut kuumetta eilisestä, mitä teen",
    "sv": "min tvååring har haft feber sedan i går, vad gör jag",
    "en": "my toddler has had a fever since yesterday, what should i do",
}


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_at_night_a_feverish_toddler_gets_advice_and_the_after_hours_number(
    kb: KnowledgeBase, hours: ServiceHours, lang: str
) -> None:
    reply = compose(kb, FEVERISH_TODDLER[lang], lang, Today(hours, THE_NIGHT, handoff=True))
    assert reply.label == "symptoms"
    assert reply.text.startswith(kb.topics["symptoms"].answers[lang])  # the advice first
    assert "116117" in reply.text and "tel:116117" in urls(reply)
    assert "handoff" not in kinds(reply)
    opens = {
        "fi": "Chat avataan tänään klo 8.00",
        "sv": "Chatten öppnar i dag kl. 8.00",
        "en": "The chat opens today at 8:00",
    }
    assert opens[lang] in reply.text


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_while_the_chat_is_open_a_feverish_toddler_is_also_offered_the_nurse(
    kb: KnowledgeBase, hours: ServiceHours, lang: str
) -> None:
    reply = compose(kb, FEVERISH_TODDLER[lang], lang, Today(hours, A_TUESDAY, handoff=True))
    assert reply.label == "symptoms"
    assert reply.text.startswith(kb.topics["symptoms"].answers[lang])
    assert kinds(reply)[0] == "handoff" and "tel:116117" in urls(reply)
    wire = [a.to_wire() for a in reply.actions]
    assert BotExtras.from_wire(None, wire).actions == reply.actions  # what a client accepts


def test_whom_to_call_at_night_offers_the_nurse_while_the_chat_is_open(
    kb: KnowledgeBase, hours: ServiceHours
) -> None:
    question = "kenelle soitan kun lapsella on kova kuume"
    open_now = compose(kb, question, "fi", Today(hours, A_TUESDAY, handoff=True))
    assert open_now.label in ("night_care", "symptoms")
    assert kinds(open_now)[0] == "handoff" and "Chat on auki" in open_now.text
    closed = compose(kb, question, "fi", Today(hours, THE_NIGHT, handoff=True))
    assert "handoff" not in kinds(closed) and "116117" in closed.text


# --- young people and nonsense ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("oon 14 kenelle voin puhua", "fi"),
        ("olen 14-vuotias, kenelle voin kertoa huolistani", "fi"),
        ("jag är 15 vem kan jag prata med", "sv"),
        ("im 16 who can i talk to", "en"),
        ("I'm 14, who can I talk to", "en"),
    ],
)
def test_a_young_person_asking_whom_to_talk_to_gets_youth_services(
    kb: KnowledgeBase, hours: ServiceHours, text: str, lang: str
) -> None:
    reply = compose(kb, text, "fi", Today(hours, A_TUESDAY, handoff=True))
    assert (reply.label, reply.lang) == ("youth_health", lang)
    assert "https://sekasin.fi" in urls(reply)


@pytest.mark.parametrize(
    "text",
    [
        "this pizza is poison lol",
        "tää pizza on ihan myrkkyä",
        "asdfgh qwerty zxcvb",
        "jkjkjk hhhh myrkky",
        "lorem ipsum dolor sit amet",
        "Wo ist der Bahnhof?",
        "Где находится вокзал?",
        "why did the chicken cross the road",
        "den här pizzan är rena giftet haha",
    ],
)
def test_nonsense_is_not_understood_and_never_an_emergency(
    kb: KnowledgeBase, hours: ServiceHours, text: str
) -> None:
    reply = compose(kb, text, "en", Today(hours, A_TUESDAY, handoff=True))
    assert not reply.label.startswith("emergency")
    assert reply.label == "unknown" and reply.quick_replies
    assert kb.understand(text).label == "unknown"
