"""Service hours: when residents can chat with a nurse, and what to tell them when they cannot.

The hours are data (``server/config/hours.toml``), not code, because every health station
organisation has its own, and they change with a training day or an epidemic. One day's hours
are decided in this order, first match wins:

1. a local exception for that date (closed, or special hours);
2. a public holiday (closed), computed with the ``holidays`` package; for Finland it includes
   Midsummer Eve and Christmas Eve, but not May Day Eve or New Year's Eve;
3. the weekly hours of that weekday;
4. the eve hours, within the weekly ones, when the next calendar day is a public holiday.

Times are wall-clock times in the configured zone (Europe/Helsinki), so a service open 8-16
opens at 8:00 local time on both sides of a daylight-saving change. ``now`` must be aware; all
returned datetimes are in the configured zone.

New chats stop ``last_intake_minutes`` before closing: the service is then still *open* (chats
in progress go on) but no longer *accepting*. Everything here is pure: the caller passes the
time, which keeps the module free of clocks and tests free of sleeping.

Errors::

    ValueError
    └── ConfigError      (server.core.config_files) a data file cannot be used
        └── HoursError   bad hours data: names the file and the key
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from server.core.config_files import SHIPPED, ConfigError, TomlReader, read_toml
from server.core.texts import HELSINKI

__all__ = [
    "DEFAULT_HOURS_PATH",
    "LANGUAGES",
    "DayHours",
    "Helpline",
    "HoursError",
    "HoursReason",
    "HoursStatus",
    "ServiceHours",
    "SpecialDay",
    "closed_message",
    "describe_day",
    "describe_next_opening",
    "describe_span",
    "describe_when",
    "holiday_in_text",
    "load_hours",
]

DEFAULT_HOURS_PATH = SHIPPED / "hours.toml"

# The languages texts are written in, and the locale the `holidays` package names them in.
LANGUAGES: Mapping[str, str] = {"fi": "fi", "sv": "sv_FI", "en": "en_US"}

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Long enough to cross Christmas to Epiphany or an Easter with a closure next to it, short
# enough that a service closed for good does not make every status search a year.
SEARCH_DAYS = 31

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class HoursError(ConfigError):
    """The hours data cannot be used; ``source`` and ``key`` say where the problem is."""

    default_source = "<hours>"


class HoursReason(StrEnum):
    """Why the service is, or is not, taking chats at a given moment."""

    OPEN = "open"
    BEFORE_OPENING = "before_opening"
    AFTER_CLOSING = "after_closing"
    WEEKEND = "weekend"
    HOLIDAY = "holiday"
    EXCEPTION = "exception"
    LAST_INTAKE_PASSED = "last_intake_passed"
    # A weekday the weekly hours leave closed (none in the Helsinki model).
    CLOSED_DAY = "closed_day"


@dataclass(frozen=True)
class DayHours:
    opens: time
    closes: time


@dataclass(frozen=True)
class SpecialDay:
    """A local exception for one date: closed (``hours`` None) or special hours."""

    day: date
    hours: DayHours | None
    note: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Helpline:
    """A number to call when the chat is closed, with a sentence of advice per language."""

    number: str
    name: Mapping[str, str]
    advice: Mapping[str, str]


@dataclass(frozen=True)
class HoursStatus:
    """The service at one moment (``at``, in local time)."""

    at: datetime
    open: bool
    accepting: bool
    reason: HoursReason
    # The current opening when open, else the next one (None: none within SEARCH_DAYS).
    opens_at: datetime | None
    closes_at: datetime | None = None  # today's closing, when open
    last_intake_at: datetime | None = None  # when new chats stop today, when open
    # When new chats are next taken; None while accepting (or none within SEARCH_DAYS).
    next_intake_at: datetime | None = None
    holiday_name: Mapping[str, str] | None = None  # per language, when closed for a holiday
    note: Mapping[str, str] | None = None  # the exception's note, when an exception applies
    # What to offer instead while not accepting, carried here so that a status is enough to
    # write the closed message.
    helplines: tuple[Helpline, ...] = ()
    offer_bot: bool = False


@dataclass(frozen=True)
class ServiceHours:
    """Opening hours as loaded from the data; ask it about any aware moment or local date."""

    weekly: tuple[DayHours | None, ...]  # Monday first, seven entries
    eve: DayHours | None = None
    exceptions: Mapping[date, SpecialDay] = field(default_factory=dict)
    last_intake_minutes: int = 30
    timezone: ZoneInfo = HELSINKI
    country: str = "FI"
    subdivision: str | None = None
    helplines: tuple[Helpline, ...] = ()
    offer_bot: bool = True
    _calendars: dict[str, holidays.HolidayBase] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if len(self.weekly) != 7:
            raise HoursError(f"expected hours for 7 weekdays, got {len(self.weekly)}")
        for lang, locale in LANGUAGES.items():
            # Years are filled in lazily by the package as dates are looked up.
            self._calendars[lang] = holidays.country_holidays(
                self.country, subdiv=self.subdivision, language=locale
            )

    # --- days -----------------------------------------------------------------------------

    def holiday_name(self, d: date) -> Mapping[str, str] | None:
        """The public holiday on ``d``, named in each language, or None."""
        if d not in self._calendars["fi"]:
            return None
        return {lang: str(cal.get(d)) for lang, cal in self._calendars.items()}

    def is_holiday(self, d: date) -> bool:
        return d in self._calendars["fi"]

    def is_eve(self, d: date) -> bool:
        """Whether ``d`` is open by the weekly hours and the next day is a public holiday."""
        return (
            self.weekly[d.weekday()] is not None
            and not self.is_holiday(d)
            and self.is_holiday(d + timedelta(days=1))
        )

    def day_hours(self, d: date) -> tuple[time, time] | None:
        """Opening and closing time on ``d``, or None when closed all day."""
        hours = self._hours(d)
        return None if hours is None else (hours.opens, hours.closes)

    def _hours(self, d: date) -> DayHours | None:
        exception = self.exceptions.get(d)
        if exception is not None:
            return exception.hours
        if self.is_holiday(d):
            return None
        weekly = self.weekly[d.weekday()]
        if weekly is None:
            return None
        if self.eve is not None and self.is_eve(d):
            opens, closes = max(weekly.opens, self.eve.opens), min(weekly.closes, self.eve.closes)
            return DayHours(opens, closes) if opens < closes else None
        return weekly

    def closed_reason(self, d: date) -> HoursReason:
        """Why ``d`` is closed all day (when it is): an exception, a holiday, the weekly hours."""
        if d in self.exceptions:
            return HoursReason.EXCEPTION
        if self.is_holiday(d):
            return HoursReason.HOLIDAY
        return HoursReason.WEEKEND if d.weekday() >= 5 else HoursReason.CLOSED_DAY

    def _bounds(self, d: date) -> tuple[datetime, datetime] | None:
        hours = self._hours(d)
        if hours is None:
            return None
        return (
            datetime.combine(d, hours.opens, tzinfo=self.timezone),
            datetime.combine(d, hours.closes, tzinfo=self.timezone),
        )

    # --- moments --------------------------------------------------------------------------

    def _local(self, now: datetime) -> datetime:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        return now.astimezone(self.timezone)

    def next_opening(self, now: datetime, *, within_days: int = SEARCH_DAYS) -> datetime | None:
        """The first opening at or after ``now``; None if there is none within ``within_days``."""
        return self._next(self._local(now), within_days, intake=False)

    def _next(self, local: datetime, within_days: int, *, intake: bool) -> datetime | None:
        for offset in range(within_days + 1):
            bounds = self._bounds(local.date() + timedelta(days=offset))
            if bounds is None:
                continue
            opens, closes = bounds
            if intake and closes - self._last_intake <= opens:
                continue  # a day too short to take anyone new
            if opens >= local:
                return opens
        return None

    @property
    def _last_intake(self) -> timedelta:
        return timedelta(minutes=self.last_intake_minutes)

    def status(self, now: datetime) -> HoursStatus:
        """Whether the service is open and taking new chats at ``now``, and if not, why."""
        local = self._local(now)
        today = local.date()
        exception = self.exceptions.get(today)
        note = exception.note if exception is not None and exception.note else None
        bounds = self._bounds(today)
        if bounds is None:
            reason = self.closed_reason(today)
            return HoursStatus(
                at=local,
                open=False,
                accepting=False,
                reason=reason,
                opens_at=self._next(local, SEARCH_DAYS, intake=False),
                next_intake_at=self._next(local, SEARCH_DAYS, intake=True),
                holiday_name=self.holiday_name(today) if reason is HoursReason.HOLIDAY else None,
                note=note,
                helplines=self.helplines,
                offer_bot=self.offer_bot,
            )
        opens, closes = bounds
        if not opens <= local < closes:
            return HoursStatus(
                at=local,
                open=False,
                accepting=False,
                reason=HoursReason.BEFORE_OPENING if local < opens else HoursReason.AFTER_CLOSING,
                opens_at=self._next(local, SEARCH_DAYS, intake=False),
                next_intake_at=self._next(local, SEARCH_DAYS, intake=True),
                note=note,
                helplines=self.helplines,
                offer_bot=self.offer_bot,
            )
        last_intake = closes - self._last_intake
        accepting = local < last_intake
        return HoursStatus(
            at=local,
            open=True,
            accepting=accepting,
            reason=HoursReason.OPEN if accepting else HoursReason.LAST_INTAKE_PASSED,
            opens_at=opens,
            closes_at=closes,
            last_intake_at=last_intake,
            next_intake_at=None if accepting else self._next(local, SEARCH_DAYS, intake=True),
            note=note,
            helplines=self.helplines,
            offer_bot=self.offer_bot,
        )


# --- texts -------------------------------------------------------------------------------------

_FI_WEEKDAYS = (
    "maanantaina",
    "tiistaina",
    "keskiviikkona",
    "torstaina",
    "perjantaina",
    "lauantaina",
    "sunnuntaina",
)
_SV_WEEKDAYS = ("måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag")
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _language(lang: str) -> str:
    """``fi``, ``sv`` or ``en`` from a tag such as ``sv-FI``.

    Anything else gets English: who reads neither national language more likely reads it.
    """
    base = lang.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else "en"


def _clock(t: datetime | time, lang: str) -> str:
    # Finnish and Finland-Swedish write 8.00; English 8:00.
    sep = ":" if lang == "en" else "."
    return f"{t.hour}{sep}{t.minute:02d}"


def describe_span(opens: time, closes: time, lang: str) -> str:
    """Opening hours as written: "klo 8–16", "kl. 8.30–16", "8:00–16:00"."""
    lang = _language(lang)
    if lang == "en":
        return f"{_clock(opens, lang)}–{_clock(closes, lang)}"
    short = "–".join(_clock(t, lang).removesuffix(".00") for t in (opens, closes))
    return f"klo {short}" if lang == "fi" else f"kl. {short}"


def describe_day(day: date, today: date, lang: str) -> str:
    """``day`` as words relative to ``today``: "tänään", "i morgon", "on Monday 5 January".

    Finnish gives the essive ("maanantaina 5.1."), which reads as "on Monday" in a sentence.
    """
    lang = _language(lang)
    days = (day - today).days
    if lang == "fi":
        return {0: "tänään", 1: "huomenna"}.get(
            days, f"{_FI_WEEKDAYS[day.weekday()]} {day.day}.{day.month}."
        )
    if lang == "sv":
        return {0: "i dag", 1: "i morgon"}.get(
            days, f"{_SV_WEEKDAYS[day.weekday()]} {day.day}.{day.month}"
        )
    return {0: "today", 1: "tomorrow"}.get(
        days, f"on {_EN_WEEKDAYS[day.weekday()]} {day.day} {_EN_MONTHS[day.month - 1]}"
    )


def describe_when(target: datetime, at: datetime, lang: str) -> str:
    """``target`` as a time expression relative to the day of ``at``: "huomenna klo 8.00"."""
    lang = _language(lang)
    day = describe_day(target.date(), at.date(), lang)
    clock = _clock(target, lang)
    return {"fi": f"{day} klo {clock}", "sv": f"{day} kl. {clock}", "en": f"{day} at {clock}"}[lang]


def describe_next_opening(status: HoursStatus, lang: str) -> str:
    """When new chats are next taken, as a sentence in ``lang`` (``fi``, ``sv`` or ``en``).

    E.g. "Chat avataan seuraavan kerran maanantaina 5.1. klo 8.00". While the service takes
    chats, says until when instead.
    """
    lang = _language(lang)
    if status.accepting and status.last_intake_at is not None:
        until = _clock(status.last_intake_at, lang)
        return {
            "fi": f"Chat on auki, ja uusia keskusteluja otetaan vastaan klo {until} asti",
            "sv": f"Chatten är öppen och tar emot nya samtal till kl. {until}",
            "en": f"The chat is open and takes new conversations until {until}",
        }[lang]
    target = status.next_intake_at
    if target is None:
        return {
            "fi": "Chatin seuraava aukioloaika ei ole vielä tiedossa",
            "sv": "Chattens nästa öppettid är ännu inte känd",
            "en": "The next opening time of the chat is not yet known",
        }[lang]
    when = describe_when(target, status.at, lang)
    if status.open:
        # Still open for the conversations in progress: "opens" would read oddly.
        return {
            "fi": f"Uusia keskusteluja otetaan taas vastaan {when}",
            "sv": f"Nya samtal tas emot igen {when}",
            "en": f"New conversations are taken again {when}",
        }[lang]
    next_time = (target.date() - status.at.date()).days > 1
    if lang == "fi":
        return f"Chat avataan {'seuraavan kerran ' if next_time else ''}{when}"
    if lang == "sv":
        return f"Chatten öppnar {'nästa gång ' if next_time else ''}{when}"
    if next_time:
        return f"The chat opens next {when}"
    return f"The chat opens {when}"


def holiday_in_text(name: str, lang: str) -> str:
    """A holiday name as written inside a sentence in ``lang``.

    The package capitalises them as headings; in Finnish and Swedish running text they are
    lower case, except where a name begins with a proper noun (Kristi himmelsfärdsdag).
    """
    if _language(lang) == "en" or name.startswith("Kristi "):
        return name
    return name[:1].lower() + name[1:]


def _why_closed(status: HoursStatus, lang: str) -> str:
    reason = status.reason
    if reason is HoursReason.HOLIDAY and status.holiday_name:
        name = status.holiday_name[lang]
        return {
            "fi": f"Tänään on {holiday_in_text(name, lang)}, ja chat on suljettu.",
            "sv": f"I dag är det {holiday_in_text(name, lang)} och chatten är stängd.",
            "en": f"Today is {name}, and the chat is closed.",
        }[lang]
    detail = None
    if reason is HoursReason.EXCEPTION and status.note:
        detail = status.note.get(lang) or status.note.get("fi")
    suffix = f" ({detail})" if detail else ""
    texts: dict[HoursReason, dict[str, str]] = {
        HoursReason.OPEN: {
            "fi": "Chat on auki.",
            "sv": "Chatten är öppen.",
            "en": "The chat is open.",
        },
        HoursReason.BEFORE_OPENING: {
            "fi": "Chat ei ole vielä auki.",
            "sv": "Chatten är inte öppen ännu.",
            "en": "The chat is not open yet.",
        },
        HoursReason.AFTER_CLOSING: {
            "fi": "Chat on suljettu tältä päivältä.",
            "sv": "Chatten har stängt för i dag.",
            "en": "The chat has closed for today.",
        },
        HoursReason.LAST_INTAKE_PASSED: {
            "fi": "Chat ei ota tänään enää vastaan uusia keskusteluja.",
            "sv": "Chatten tar inte emot nya samtal mer i dag.",
            "en": "The chat takes no more new conversations today.",
        },
        HoursReason.WEEKEND: {
            "fi": "Chat on suljettu viikonloppuisin.",
            "sv": "Chatten är stängd under veckoslut.",
            "en": "The chat is closed at weekends.",
        },
        HoursReason.HOLIDAY: {
            "fi": "Chat on suljettu juhlapyhinä.",
            "sv": "Chatten är stängd under helgdagar.",
            "en": "The chat is closed on public holidays.",
        },
        HoursReason.EXCEPTION: {
            "fi": f"Chat on tänään poikkeuksellisesti suljettu{suffix}.",
            "sv": f"Chatten är i dag undantagsvis stängd{suffix}.",
            "en": f"The chat is exceptionally closed today{suffix}.",
        },
        HoursReason.CLOSED_DAY: {
            "fi": "Chat on tänään suljettu.",
            "sv": "Chatten är stängd i dag.",
            "en": "The chat is closed today.",
        },
    }
    return texts[reason][lang]


_BOT = {
    "fi": "Sillä välin voit kysyä neuvoa chatbotilta.",
    "sv": "Under tiden kan du fråga chattboten om råd.",
    "en": "Meanwhile, you can ask the chatbot for advice.",
}


def closed_message(status: HoursStatus, lang: str) -> dict[str, Any]:
    """What a client shows when it cannot start a chat now: JSON-ready, in ``lang``.

    ``text`` says why and when the chat opens; ``advice`` offers the bot and the helplines,
    which are also listed in ``numbers`` so the client can render them as links.
    """
    lang = _language(lang)
    next_intake = status.next_intake_at
    advice = [_BOT[lang]] if status.offer_bot else []
    advice += [line.advice[lang] for line in status.helplines]
    return {
        "lang": lang,
        "open": status.open,
        "accepting": status.accepting,
        "reason": status.reason.value,
        "text": f"{_why_closed(status, lang)} {describe_next_opening(status, lang)}.",
        "advice": " ".join(advice),
        "next_opening": None if next_intake is None else next_intake.isoformat(),
        "holiday": None if status.holiday_name is None else status.holiday_name[lang],
        "bot": status.offer_bot,
        "numbers": [
            {"number": line.number, "tel": f"tel:{line.number}", "name": line.name[lang]}
            for line in status.helplines
        ],
    }


# --- loading -----------------------------------------------------------------------------------


def load_hours(path: Path | None = None) -> ServiceHours:
    """Read service hours from a TOML file (default ``server/config/hours.toml``)."""
    path = DEFAULT_HOURS_PATH if path is None else path
    return _Reader(str(path)).service_hours(read_toml(path, HoursError))


class _Reader(TomlReader):
    """Turns parsed TOML into a ServiceHours, naming the key of the first problem it finds."""

    error_class = HoursError

    def clock(self, value: object, key: str) -> time:
        if isinstance(value, time):
            return value
        if not isinstance(value, str) or not _HHMM.match(value):
            raise self.error(key, f"expected a time as 'HH:MM', got {value!r}")
        return time.fromisoformat(value)

    def hours(self, value: object, key: str) -> DayHours | None:
        if value == "closed":
            return None
        if not isinstance(value, dict):
            raise self.error(key, "expected { opens = 'HH:MM', closes = 'HH:MM' } or 'closed'")
        table: dict[str, Any] = value
        self.known(table, key, {"opens", "closes"})
        for part in ("opens", "closes"):
            if part not in table:
                raise self.error(f"{key}.{part}", "missing")
        opens = self.clock(table["opens"], f"{key}.opens")
        closes = self.clock(table["closes"], f"{key}.closes")
        if closes <= opens:
            raise self.error(key, f"closes ({closes:%H:%M}) must be after opens ({opens:%H:%M})")
        return DayHours(opens, closes)

    def texts(self, value: object, key: str, *, required: bool) -> dict[str, str]:
        table = self.table(value, key)
        self.known(table, key, set(LANGUAGES))
        for lang, text in table.items():
            if not isinstance(text, str) or not text.strip():
                raise self.error(f"{key}.{lang}", "expected a non-empty string")
        missing = [lang for lang in LANGUAGES if lang not in table]
        if required and missing:
            raise self.error(f"{key}.{missing[0]}", "missing; every language needs a text")
        return dict(table)

    def day(self, value: object, key: str) -> date:
        if isinstance(value, datetime):
            raise self.error(key, f"expected a date, got a date and time {value!r}")
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(key, f"expected a date as YYYY-MM-DD, got {value!r}")

    def exception(self, value: object, key: str) -> SpecialDay:
        table = self.table(value, key)
        self.known(table, key, {"date", "closed", "opens", "closes", "note"})
        if "date" not in table:
            raise self.error(f"{key}.date", "missing")
        day = self.day(table["date"], f"{key}.date")
        closed = table.get("closed", False)
        if not isinstance(closed, bool):
            raise self.error(f"{key}.closed", f"expected true or false, got {closed!r}")
        has_hours = "opens" in table or "closes" in table
        if closed == has_hours:
            raise self.error(key, "give either closed = true or opens and closes")
        given = {k: table[k] for k in ("opens", "closes") if k in table}
        hours = None if closed else self.hours(given, key)
        note = self.texts(table["note"], f"{key}.note", required=False) if "note" in table else {}
        return SpecialDay(day, hours, note)

    def helpline(self, value: object, key: str) -> Helpline:
        table = self.table(value, key)
        self.known(table, key, {"number", "name", "advice"})
        number = table.get("number")
        if not isinstance(number, str) or not re.fullmatch(r"\+?\d{3,15}", number):
            raise self.error(f"{key}.number", f"expected a phone number of digits, got {number!r}")
        for part in ("name", "advice"):
            if part not in table:
                raise self.error(f"{key}.{part}", "missing")
        return Helpline(
            number,
            self.texts(table["name"], f"{key}.name", required=True),
            self.texts(table["advice"], f"{key}.advice", required=True),
        )

    def service_hours(self, data: dict[str, Any]) -> ServiceHours:
        top = {
            "timezone",
            "last_intake_minutes",
            "offer_bot",
            "holidays",
            "weekly",
            "eve",
            "exceptions",
            "helplines",
        }
        self.known(data, "", top)

        zone_name = data.get("timezone", "Europe/Helsinki")
        try:
            zone = ZoneInfo(zone_name) if isinstance(zone_name, str) else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            raise self.error("timezone", f"not a known time zone: {zone_name!r}")

        intake = data.get("last_intake_minutes", 30)
        if isinstance(intake, bool) or not isinstance(intake, int) or not 0 <= intake < 24 * 60:
            raise self.error("last_intake_minutes", f"expected minutes 0-1439, got {intake!r}")

        offer_bot = data.get("offer_bot", True)
        if not isinstance(offer_bot, bool):
            raise self.error("offer_bot", f"expected true or false, got {offer_bot!r}")

        hol = self.table(data.get("holidays", {}), "holidays")
        self.known(hol, "holidays", {"country", "subdivision"})
        country = hol.get("country", "FI")
        subdivision = hol.get("subdivision")
        if not isinstance(country, str):
            raise self.error("holidays.country", f"expected a country code, got {country!r}")
        if subdivision is not None and not isinstance(subdivision, str):
            raise self.error("holidays.subdivision", f"expected a string, got {subdivision!r}")
        try:
            holidays.country_holidays(country, subdiv=subdivision)
        except NotImplementedError as exc:
            key = "holidays.subdivision" if "subdivision" in str(exc) else "holidays.country"
            raise self.error(key, str(exc)) from None

        if "weekly" not in data:
            raise self.error("weekly", "missing")
        weekly_table = self.table(data["weekly"], "weekly")
        self.known(weekly_table, "weekly", set(WEEKDAYS))
        weekly: list[DayHours | None] = []
        for name in WEEKDAYS:
            if name not in weekly_table:
                raise self.error(f"weekly.{name}", 'missing; write "closed" for a closed day')
            weekly.append(self.hours(weekly_table[name], f"weekly.{name}"))

        eve = self.hours(data["eve"], "eve") if "eve" in data else None

        exceptions: dict[date, SpecialDay] = {}
        raw_exceptions = data.get("exceptions", [])
        if not isinstance(raw_exceptions, list):
            raise self.error("exceptions", "expected [[exceptions]] entries")
        for index, raw in enumerate(raw_exceptions):
            special = self.exception(raw, f"exceptions[{index}]")
            if special.day in exceptions:
                raise self.error(f"exceptions[{index}].date", f"{special.day} is listed twice")
            exceptions[special.day] = special

        raw_lines = data.get("helplines", [])
        if not isinstance(raw_lines, list):
            raise self.error("helplines", "expected [[helplines]] entries")
        helplines = tuple(self.helpline(raw, f"helplines[{i}]") for i, raw in enumerate(raw_lines))

        return ServiceHours(
            weekly=tuple(weekly),
            eve=eve,
            exceptions=exceptions,
            last_intake_minutes=intake,
            timezone=zone,
            country=country,
            subdivision=subdivision,
            helplines=helplines,
            offer_bot=offer_bot,
        )
