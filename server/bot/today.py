"""What the bot says about today: the service hours at the moment it answers.

A knowledge base written once cannot know that today is Midsummer Eve, that the chat closes
in twenty minutes or that Christmas falls on a Thursday this year. So the bot states no hours
from its knowledge base: what it says about opening hours, holidays and eves, and whether the
nurses' chat is open now, is computed when it answers, from the same
:class:`~server.intake.hours.ServiceHours` the intake decides with (``hours.toml``), in Helsinki
time. A :class:`Today` is that moment: the hours, the time, and whether a handoff to the nurses'
chat can start the intake now.

- :meth:`Today.hours_text`: the hours of a day the resident names ("juhannusaattona",
  "på lördag", "tomorrow", "24.12."), today's hours, whether the chat takes new chats now and
  when it opens next, the weekly hours and the holidays and eves of the coming two weeks.
- :meth:`Today.nurse_text`: one or two sentences on the nurses' chat now, for answers that
  depend on it (symptoms, reaching a nurse): open and until when, or when it opens next and
  the numbers to call meanwhile.

Pure: the caller passes the time (tests pass any moment they like).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from protocol.extras import Action, ActionKind
from server.intake.hours import (
    HoursStatus,
    ServiceHours,
    closed_message,
    describe_day,
    describe_next_opening,
    describe_span,
    describe_when,
    holiday_in_text,
)

__all__ = ["Today", "asked_day"]

# How far ahead the bot looks for the next Midsummer Eve or the coming holidays and eves.
_YEAR = 400
_COMING_DAYS = 14
_MOST_COMING = 4

# --- the day a question names -----------------------------------------------------------------

# Holidays and their eves, by their Finnish name in the `holidays` package (the calendar of
# hours.toml): the words residents use for them in fi/sv/en, and the day they mean relative to
# that holiday (-1: its eve). The more specific words first ("juhannuspäivä" before
# "juhannus"). Patterns are tried on the normalized message.
_HOLIDAYS: tuple[tuple[str, int, str], ...] = (
    ("Uudenvuodenpäivä", -1, r"uudenvuodenaat\w*|nyårsafton\w*|new years? eve|new year s eve"),
    ("Uudenvuodenpäivä", 0, r"uudenvuodenpäiv\w*|nyårsdag\w*|new years? day|new year s day"),
    ("Loppiainen", -1, r"loppiaisaat\w*|trettondagsafton\w*"),
    ("Loppiainen", 0, r"loppiai\w*|trettondag\w*|epiphany"),
    ("Pitkäperjantai", -1, r"kiirastor\w*|skärtorsdag\w*|maundy thursday|holy thursday"),
    ("Pitkäperjantai", 0, r"pitkä\w*perjantai\w*|långfredag\w*|good friday"),
    ("Toinen pääsiäispäivä", 0, r"(toinen|2) pääsiäispäiv\w*|annandag påsk\w*|easter monday"),
    ("Pääsiäispäivä", 0, r"pääsiäi\w*|påsk\w*|easter\w*"),
    ("Vappu", -1, r"vapunaat\w*|vappuaat\w*|valborg\w*|may day eve|walpurgis\w*"),
    ("Vappu", 0, r"vappu\w*|vapun\w*|vappuna|första maj|1 maj|may day|may 1st|1st of may"),
    ("Helatorstai", 0, r"helatorsta\w*|kristi himmelsfärd\w*|himmelsfärd\w*|ascension\w*"),
    ("Helluntaipäivä", 0, r"helluntai\w*|pingst\w*|pentecost|whitsun\w*"),
    ("Juhannuspäivä", 0, r"juhannuspäiv\w*|midsommardag\w*|midsummer( s)? day"),
    ("Juhannusaatto", 0, r"juhannu\w*|midsommar\w*|midsummer\w*"),
    ("Pyhäinpäivä", 0, r"pyhäinpäiv\w*|alla helgons\w*|all saints\w*|all hallows"),
    ("Itsenäisyyspäivä", 0, r"itsenäisyyspäiv\w*|självständighetsdag\w*|independence day"),
    ("Jouluaatto", -1, r"aatonaat\w*|dan före julafton|lillajul\w*"),
    ("Joulupäivä", 0, r"joulupäiv\w*|juldag\w*|christmas day|xmas day"),
    ("Tapaninpäivä", 0, r"tapanin\w*|annandag jul\w*|boxing day|second day of christmas"),
    ("Jouluaatto", 0, r"jouluaat\w*|julafton\w*|christmas eve|xmas eve"),
    ("Jouluaatto", 0, r"joulu(?!kuu)\w*|jul|julen|christmas|xmas"),
)
_HOLIDAY_PATTERNS = tuple(
    (name, offset, re.compile(rf"\b(?:{words})\b")) for name, offset, words in _HOLIDAYS
)
_WEEKDAY_PATTERNS = tuple(
    re.compile(rf"\b(?:{words})\b")
    for words in (
        r"maanantai\w*|måndag\w*|monday",
        r"tiistai\w*|tisdag\w*|tuesday",
        r"keskiviik\w*|onsdag\w*|wednesday",
        r"torstai\w*|torsdag\w*|thursday",
        r"perjantai\w*|fredag\w*|friday",
        r"lauantai\w*|lördag\w*|saturday",
        r"sunnuntai\w*|söndag\w*|sunday",
    )
)
_WEEKEND = re.compile(r"\b(?:viikonlop\w*|veckoslut\w*|helgen|weekend\w*)\b")
_RELATIVE = (
    (re.compile(r"\b(?:ylihuom\w*|i övermorgon|day after tomorrow)\b"), 2),
    (re.compile(r"\b(?:huomen\w*|huomis\w*|i morgon\w*|imorgon\w*|tomorrow|tmrw)\b"), 1),
)
# 24.12. or 24.12.2027 in the message as written (normalizing drops the dots).
_DATE = re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})?(?!\d)")


def asked_day(text: str, normalized: str, hours: ServiceHours, today: date) -> date | None:
    """The day a question about opening hours names, the next one from ``today``; or None.

    ``text`` is the message as written (for dates), ``normalized`` the same normalized.
    """
    for name, offset, pattern in _HOLIDAY_PATTERNS:
        if pattern.search(normalized):
            found = _next_holiday(hours, name, today - timedelta(days=offset))
            return None if found is None else found + timedelta(days=offset)
    written = _DATE.search(text)
    if written is not None:
        day, month, year = int(written[1]), int(written[2]), written[3]
        for candidate_year in (int(year),) if year else (today.year, today.year + 1):
            try:
                candidate = date(candidate_year, month, day)
            except ValueError:
                return None
            if year or candidate >= today:
                return candidate
    for weekday, pattern in enumerate(_WEEKDAY_PATTERNS):
        if pattern.search(normalized):
            return today + timedelta(days=(weekday - today.weekday()) % 7)
    if _WEEKEND.search(normalized):
        return today + timedelta(days=max(0, 5 - today.weekday()))
    for pattern, days in _RELATIVE:
        if pattern.search(normalized):
            return today + timedelta(days=days)
    return None


def _next_holiday(hours: ServiceHours, name: str, start: date) -> date | None:
    for offset in range(_YEAR):
        day = start + timedelta(days=offset)
        names = hours.holiday_name(day)
        if names is not None and names.get("fi") == name:
            return day
    return None


# --- texts ------------------------------------------------------------------------------------

_ABBREVIATIONS: Mapping[str, tuple[str, ...]] = {
    "fi": ("ma", "ti", "ke", "to", "pe", "la", "su"),
    "sv": ("mån", "tis", "ons", "tors", "fre", "lör", "sön"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_CLOSED = {"fi": "suljettu", "sv": "stängt", "en": "closed"}
_WEEK = {
    "fi": "Terveysasemat ja hoitajan chat palvelevat {week}.",
    "sv": "Hälsostationerna och skötarens chatt betjänar {week}.",
    "en": "The health stations and the nurse's chat are open {week}.",
}
_EVE_RULE = {
    "fi": "Arkipyhien aattoina {span} ja arkipyhinä suljettu.",
    "sv": "Dagar före helgdagar {span} och på helgdagar stängt.",
    "en": "On the eves of public holidays {span}, and closed on public holidays.",
}
_HOLIDAY_RULE = {
    "fi": "Arkipyhinä suljettu.",
    "sv": "På helgdagar stängt.",
    "en": "Closed on public holidays.",
}
_DAY_OPEN = {
    "fi": "{day}{why} terveysasemat ja chat ovat auki {span}.",
    "sv": "{day}{why} är hälsostationerna och chatten öppna {span}.",
    "en": "{day}{why} the health stations and the chat are open {span}.",
}
_DAY_CLOSED = {
    "fi": "{day}{why} terveysasemat ja chat ovat kiinni.",
    "sv": "{day}{why} är hälsostationerna och chatten stängda.",
    "en": "{day}{why} the health stations and the chat are closed.",
}
_NEXT_OPEN = {
    "fi": "Seuraavan kerran ne aukeavat {when}.",
    "sv": "Nästa gång öppnar de {when}.",
    "en": "They next open {when}.",
}
_EVE = {"fi": "arkipyhän aatto", "sv": "dag före helgdag", "en": "eve of a public holiday"}
_COMING = {
    "fi": "Lähipäivien poikkeukset: {days}.",
    "sv": "Avvikande dagar framöver: {days}.",
    "en": "Coming exceptions: {days}.",
}
_ALWAYS_OPEN = {
    "fi": "Hoitajan chat ottaa nyt uusia keskusteluja.",
    "sv": "Skötarens chatt tar emot nya samtal nu.",
    "en": "The nurse's chat is taking new conversations now.",
}
_TO_THE_NURSE = {
    "fi": "Jos haluat, hoitaja voi arvioida tilanteen kanssasi chatissa: valitse ”{button}”.",
    "sv": "Om du vill kan en skötare bedöma situationen med dig i chatten: välj ”{button}”.",
    "en": 'If you like, a nurse can assess the situation with you in the chat: choose "{button}".',
}
_FROM_THE_START_PAGE = {
    "fi": "Keskustelun hoitajan kanssa voit aloittaa etusivulta.",
    "sv": "Ett samtal med en skötare kan du börja på startsidan.",
    "en": "You can start a chat with a nurse from the start page.",
}
_HANDOFF_BUTTON = {
    "fi": "Siirry hoitajan chattiin",
    "sv": "Gå till skötarens chatt",
    "en": "Go to the nurse's chat",
}


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Today:
    """The service at the moment the bot answers.

    ``handoff``: this server runs the intake, so the bot's handoff button can start it;
    ``always_open``: the intake does not check the hours (a server for trying Kanava).
    """

    hours: ServiceHours
    now: datetime  # aware
    handoff: bool = False
    always_open: bool = False
    status: HoursStatus = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", self.hours.status(self.now))

    @property
    def chat_open(self) -> bool:
        """Whether the nurses' chat takes new chats now."""
        return self.always_open or self.status.accepting

    @property
    def can_hand_over(self) -> bool:
        """Whether the bot's handoff button can take the resident to a nurse now."""
        return self.handoff and self.chat_open

    def handoff_action(self, lang: str) -> Action:
        return Action(ActionKind.HANDOFF, _HANDOFF_BUTTON[lang])

    # --- the chat now ---------------------------------------------------------------------

    def chat_now(self, lang: str) -> str:
        """Whether the chat takes new chats now and until when; if not, why and when it will."""
        if self.status.accepting:
            return describe_next_opening(self.status, lang) + "."
        if self.always_open:
            return _ALWAYS_OPEN[lang]
        return str(closed_message(self.status, lang)["text"])

    def closed_advice(self, lang: str) -> str:
        """While the chat is closed: the round-the-clock numbers of hours.toml."""
        return " ".join(line.advice[lang] for line in self.status.helplines)

    def helpline_actions(self, lang: str) -> tuple[Action, ...]:
        return tuple(
            Action(ActionKind.PHONE, f"{line.name[lang]} {line.number}", f"tel:{line.number}")
            for line in self.status.helplines
        )

    def nurse_text(self, lang: str) -> str:
        """For an answer that depends on the nurses' chat: open now, or when it opens next."""
        if not self.chat_open:
            return f"{self.chat_now(lang)} {self.closed_advice(lang)}".strip()
        if self.can_hand_over:
            offer = _TO_THE_NURSE[lang].format(button=_HANDOFF_BUTTON[lang])
        else:
            offer = _FROM_THE_START_PAGE[lang]
        return f"{self.chat_now(lang)} {offer}"

    # --- the hours ------------------------------------------------------------------------

    def hours_text(self, lang: str, text: str = "", normalized: str = "") -> str:
        """The hours, as an answer to ``text``: the day it names, today, now, the week."""
        today = self.status.at.date()
        asked = asked_day(text, normalized, self.hours, today) if normalized else None
        parts = []
        if asked is not None and asked != today:
            parts.append(self.day_text(asked, lang, next_opening=True))
        if self.hours.day_hours(today) is not None:
            parts.append(self.day_text(today, lang))
        parts += [self.chat_now(lang), self.week_text(lang), self.coming_text(lang)]
        return " ".join(p for p in parts if p)

    def day_text(self, day: date, lang: str, *, next_opening: bool = False) -> str:
        """One day's hours: "Perjantaina 25.6. (juhannusaatto) … ovat kiinni." and, when
        closed and asked, when they next open."""
        today = self.status.at.date()
        words = describe_day(day, today, lang)
        if lang == "sv" and (day - today).days > 1:
            words = "på " + words  # "på fredag 25.6", as "i dag" and "i morgon"
        words = _capital(words)
        span = self.hours.day_hours(day)
        why = self._why(day, lang)
        why = f" ({why})" if why else ""
        if span is not None:
            return _DAY_OPEN[lang].format(day=words, why=why, span=describe_span(*span, lang))
        text = _DAY_CLOSED[lang].format(day=words, why=why)
        if next_opening:
            start = datetime.combine(day, datetime.min.time(), tzinfo=self.hours.timezone)
            opens = self.hours.next_opening(max(start, self.status.at))
            if opens is not None:
                text += " " + _NEXT_OPEN[lang].format(
                    when=describe_when(opens, self.status.at, lang)
                )
        return text

    def _why(self, day: date, lang: str) -> str:
        exception = self.hours.exceptions.get(day)
        if exception is not None:
            return exception.note.get(lang) or exception.note.get("fi") or ""
        names = self.hours.holiday_name(day)
        if names is not None:
            return holiday_in_text(names[lang], lang)
        if self.hours.is_eve(day) and self.hours.eve is not None:
            return _EVE[lang]
        return ""

    def week_text(self, lang: str) -> str:
        """The weekly hours, weekdays with the same hours together, and the eve rule."""
        groups: list[tuple[int, int]] = []
        for i, hours in enumerate(self.hours.weekly):
            if groups and self.hours.weekly[groups[-1][0]] == hours:
                groups[-1] = (groups[-1][0], i)
            else:
                groups.append((i, i))
        names = _ABBREVIATIONS[lang]
        parts = []
        for first, last in groups:
            days = names[first] if first == last else f"{names[first]}–{names[last]}"
            hours = self.hours.weekly[first]
            span = (
                _CLOSED[lang] if hours is None else describe_span(hours.opens, hours.closes, lang)
            )
            parts.append(f"{days} {span}")
        text = _WEEK[lang].format(week=", ".join(parts))
        eve = self.hours.eve
        rule = (
            _HOLIDAY_RULE[lang]
            if eve is None
            else _EVE_RULE[lang].format(span=describe_span(eve.opens, eve.closes, lang))
        )
        return f"{text} {rule}"

    def coming_text(self, lang: str) -> str:
        """Holidays, eves and exceptions of the coming two weeks that change open days."""
        today = self.status.at.date()
        found = []
        for offset in range(1, _COMING_DAYS + 1):
            day = today + timedelta(days=offset)
            weekly = self.hours.weekly[day.weekday()]
            span = self.hours.day_hours(day)
            usual = None if weekly is None else (weekly.opens, weekly.closes)
            if span == usual and day not in self.hours.exceptions:
                continue
            why = self._why(day, lang)
            what = _CLOSED[lang] if span is None else describe_span(*span, lang)
            words = describe_day(day, today, lang)
            found.append(f"{words} ({why}) {what}" if why else f"{words} {what}")
            if len(found) == _MOST_COMING:
                break
        return _COMING[lang].format(days=", ".join(found)) if found else ""
