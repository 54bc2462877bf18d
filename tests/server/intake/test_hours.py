"""Service hours on a fixed clock: weekdays, eves, holidays, exceptions, DST, and the texts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.intake.hours import (
    DEFAULT_HOURS_PATH,
    HoursError,
    HoursReason,
    ServiceHours,
    closed_message,
    describe_next_opening,
    load_hours,
)

HELSINKI = ZoneInfo("Europe/Helsinki")


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=HELSINKI)


@pytest.fixture(scope="module")
def hours() -> ServiceHours:
    return load_hours()


def with_exceptions(tmp_path: Path, snippet: str) -> ServiceHours:
    path = tmp_path / "hours.toml"
    path.write_text(DEFAULT_HOURS_PATH.read_text(encoding="utf-8") + snippet, encoding="utf-8")
    return load_hours(path)


# --- ordinary weeks --------------------------------------------------------------------------


def test_a_weekday_is_closed_before_eight(hours: ServiceHours) -> None:
    """A minute before eight on a Monday the chat is closed and opens at eight."""
    status = hours.status(at(2026, 1, 12, 7, 59))
    assert (status.open, status.accepting, status.reason) == (False, False, "before_opening")
    assert status.opens_at == at(2026, 1, 12, 8)
    assert status.next_intake_at == at(2026, 1, 12, 8)
    assert status.closes_at is None


def test_a_weekday_opens_at_eight_sharp(hours: ServiceHours) -> None:
    """At 8:00 the chat is open and takes new chats until half an hour before 16:00."""
    status = hours.status(at(2026, 1, 12, 8, 0))
    assert (status.open, status.accepting, status.reason) == (True, True, HoursReason.OPEN)
    assert status.opens_at == at(2026, 1, 12, 8)
    assert status.closes_at == at(2026, 1, 12, 16)
    assert status.last_intake_at == at(2026, 1, 12, 15, 30)
    assert status.next_intake_at is None


def test_new_chats_stop_half_an_hour_before_closing(hours: ServiceHours) -> None:
    """At 15:29 new chats are taken; at 15:30 the chat is still open but takes none."""
    assert hours.status(at(2026, 1, 13, 15, 29)).accepting
    status = hours.status(at(2026, 1, 13, 15, 30))
    assert (status.open, status.accepting, status.reason) == (True, False, "last_intake_passed")


def test_at_a_minute_to_four_the_chat_is_open_but_not_accepting(hours: ServiceHours) -> None:
    """At 15:59 chats in progress go on, and new ones are next taken tomorrow at eight."""
    status = hours.status(at(2026, 1, 14, 15, 59))
    assert status.open and not status.accepting
    assert status.opens_at == at(2026, 1, 14, 8)
    assert status.next_intake_at == at(2026, 1, 15, 8)


def test_a_weekday_closes_at_four(hours: ServiceHours) -> None:
    """At 16:00 the chat is closed for the day and opens the next morning."""
    status = hours.status(at(2026, 1, 15, 16, 0))
    assert (status.open, status.reason) == (False, "after_closing")
    assert status.opens_at == at(2026, 1, 16, 8)


def test_friday_is_open_from_eight_to_three(hours: ServiceHours) -> None:
    """On Fridays the chat closes at 15:00 and opens again on Monday."""
    assert hours.day_hours(date(2026, 1, 16)) == (time(8), time(15))
    assert hours.status(at(2026, 1, 16, 14, 29)).accepting
    assert not hours.status(at(2026, 1, 16, 14, 30)).accepting
    status = hours.status(at(2026, 1, 16, 15, 0))
    assert (status.open, status.reason) == (False, "after_closing")
    assert status.opens_at == at(2026, 1, 19, 8)


def test_the_weekend_is_closed_until_monday_morning(hours: ServiceHours) -> None:
    """Saturday and Sunday are closed; the next opening is Monday at eight."""
    for day in (17, 18):
        status = hours.status(at(2026, 1, day, 11))
        assert (status.open, status.reason, status.holiday_name) == (False, "weekend", None)
        assert status.opens_at == at(2026, 1, 19, 8)
    assert hours.day_hours(date(2026, 1, 17)) is None


def test_next_opening_while_open_is_the_next_morning(hours: ServiceHours) -> None:
    """Asked during opening hours, next_opening gives the following opening, not the current."""
    assert hours.next_opening(at(2026, 1, 12, 8)) == at(2026, 1, 12, 8)
    assert hours.next_opening(at(2026, 1, 12, 10)) == at(2026, 1, 13, 8)


# --- holidays and their eves -----------------------------------------------------------------


def test_epiphany_is_closed_and_named_in_three_languages(hours: ServiceHours) -> None:
    """Epiphany on a Tuesday closes the chat; its Monday eve is open 8-15."""
    status = hours.status(at(2026, 1, 6, 10))
    assert (status.open, status.reason) == (False, "holiday")
    assert status.holiday_name == {"fi": "Loppiainen", "sv": "Trettondag", "en": "Epiphany"}
    assert status.opens_at == at(2026, 1, 7, 8)
    assert hours.day_hours(date(2026, 1, 5)) == (time(8), time(15))


def test_independence_day_is_closed_and_the_day_before_is_short(hours: ServiceHours) -> None:
    """6 December on a Friday is closed; Thursday 5 December is an eve, open 8-15."""
    status = hours.status(at(2024, 12, 6, 9))
    assert status.reason == "holiday"
    assert status.holiday_name is not None
    assert status.holiday_name["fi"] == "Itsenäisyyspäivä"
    assert hours.day_hours(date(2024, 12, 5)) == (time(8), time(15))
    assert hours.status(at(2024, 12, 5, 15)).opens_at == at(2024, 12, 9, 8)


def test_midsummer_eve_is_closed_and_the_thursday_before_is_short(hours: ServiceHours) -> None:
    """Midsummer Eve is a holiday in the data; the Thursday before is an eve, open 8-15."""
    assert hours.day_hours(date(2026, 6, 18)) == (time(8), time(15))
    assert hours.day_hours(date(2026, 6, 19)) is None
    status = hours.status(at(2026, 6, 19, 10))
    assert status.reason == "holiday"
    assert status.holiday_name is not None
    assert status.holiday_name["en"] == "Midsummer Eve"
    assert hours.next_opening(at(2026, 6, 18, 15)) == at(2026, 6, 22, 8)


def test_christmas_is_closed_from_christmas_eve_to_boxing_day(hours: ServiceHours) -> None:
    """23 December is an eve (8-15); 24, 25 and 26 December are closed holidays."""
    assert hours.day_hours(date(2025, 12, 23)) == (time(8), time(15))
    for day, fi in ((24, "Jouluaatto"), (25, "Joulupäivä"), (26, "Tapaninpäivä")):
        status = hours.status(at(2025, 12, day, 10))
        assert (status.reason, status.holiday_name and status.holiday_name["fi"]) == (
            "holiday",
            fi,
        )


def test_the_next_opening_skips_the_christmas_period(hours: ServiceHours) -> None:
    """From 23 December at 15:00 the chat opens next on Monday 29 December, then 2 January."""
    assert hours.next_opening(at(2025, 12, 23, 15)) == at(2025, 12, 29, 8)
    assert hours.day_hours(date(2025, 12, 31)) == (time(8), time(15))
    assert hours.day_hours(date(2026, 1, 1)) is None
    assert hours.next_opening(at(2025, 12, 31, 15)) == at(2026, 1, 2, 8)


def test_the_next_opening_skips_easter(hours: ServiceHours) -> None:
    """Maundy Thursday is an eve; the chat opens again on the Tuesday after Easter Monday."""
    assert hours.day_hours(date(2026, 4, 2)) == (time(8), time(15))
    assert hours.day_hours(date(2026, 4, 3)) is None
    assert hours.day_hours(date(2026, 4, 6)) is None
    assert hours.next_opening(at(2026, 4, 2, 15)) == at(2026, 4, 7, 8)


def test_may_day_eve_and_new_years_eve_are_short_working_days(hours: ServiceHours) -> None:
    """30 April and 31 December are not holidays but eves of one, so open 8-15."""
    assert hours.day_hours(date(2026, 4, 30)) == (time(8), time(15))
    assert hours.day_hours(date(2026, 5, 1)) is None
    assert hours.day_hours(date(2026, 12, 31)) == (time(8), time(15))


def test_the_day_before_ascension_day_is_short(hours: ServiceHours) -> None:
    """The Wednesday before Ascension Day is an eve, open 8-15."""
    assert hours.day_hours(date(2026, 5, 13)) == (time(8), time(15))
    assert hours.day_hours(date(2026, 5, 14)) is None


# --- time zones ------------------------------------------------------------------------------


def test_opening_stays_at_eight_local_across_the_spring_change(hours: ServiceHours) -> None:
    """Before the last Sunday of March 8:00 is 06:00 UTC; after it, 05:00 UTC."""
    assert hours.status(datetime(2026, 3, 27, 6, 0, tzinfo=UTC)).open
    assert not hours.status(datetime(2026, 3, 27, 5, 59, tzinfo=UTC)).open
    opening = hours.next_opening(datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert opening == datetime(2026, 3, 30, 5, 0, tzinfo=UTC)
    assert opening is not None and opening.utcoffset() == timedelta(hours=3)
    assert not hours.status(datetime(2026, 3, 30, 4, 59, tzinfo=UTC)).open
    assert hours.status(datetime(2026, 3, 30, 5, 0, tzinfo=UTC)).open


def test_opening_stays_at_eight_local_across_the_autumn_change(hours: ServiceHours) -> None:
    """After the last Sunday of October 8:00 is 06:00 UTC, and the repeated hour is weekend."""
    assert hours.status(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)).reason == "weekend"
    opening = hours.next_opening(datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert opening == datetime(2026, 10, 26, 6, 0, tzinfo=UTC)
    assert not hours.status(datetime(2026, 10, 26, 5, 59, tzinfo=UTC)).open
    status = hours.status(datetime(2026, 10, 26, 6, 0, tzinfo=UTC))
    assert status.open and status.closes_at == datetime(2026, 10, 26, 14, 0, tzinfo=UTC)


def test_a_status_asked_in_utc_is_given_in_helsinki_time(hours: ServiceHours) -> None:
    """Times come back in the service's zone whatever zone the question used."""
    status = hours.status(datetime(2026, 1, 12, 9, 0, tzinfo=UTC))
    assert status.at == at(2026, 1, 12, 11)
    assert status.at.tzinfo == HELSINKI
    assert status.closes_at is not None and status.closes_at.tzinfo == HELSINKI


def test_a_naive_time_is_refused(hours: ServiceHours) -> None:
    """A time without a zone is ambiguous, so it is an error rather than a guess."""
    with pytest.raises(ValueError, match="timezone-aware"):
        hours.status(datetime(2026, 1, 12, 9, 0))


# --- local exceptions ------------------------------------------------------------------------

EXCEPTIONS = """
[[exceptions]]
date = 2026-03-12
closed = true
note = { fi = "Koulutuspäivä", sv = "Utbildningsdag", en = "Training day" }

[[exceptions]]
date = "2026-03-13"
opens = "10:00"
closes = "14:00"

[[exceptions]]
date = 2026-04-06
opens = "09:00"
closes = "12:00"
"""


def test_a_training_day_closes_the_chat_with_its_note(tmp_path: Path) -> None:
    """An exception closes an ordinary Thursday; the next opening is the special Friday hours."""
    hours = with_exceptions(tmp_path, EXCEPTIONS)
    status = hours.status(at(2026, 3, 12, 10))
    assert (status.open, status.reason) == (False, "exception")
    assert status.note == {"fi": "Koulutuspäivä", "sv": "Utbildningsdag", "en": "Training day"}
    assert status.opens_at == at(2026, 3, 13, 10)
    assert "Koulutuspäivä" in closed_message(status, "fi")["text"]


def test_special_hours_move_the_last_intake_too(tmp_path: Path) -> None:
    """On a day open 10-14 new chats stop at 13:30."""
    hours = with_exceptions(tmp_path, EXCEPTIONS)
    assert hours.day_hours(date(2026, 3, 13)) == (time(10), time(14))
    assert hours.status(at(2026, 3, 13, 9, 59)).reason == "before_opening"
    assert hours.status(at(2026, 3, 13, 13, 29)).accepting
    assert hours.status(at(2026, 3, 13, 13, 30)).reason == "last_intake_passed"


def test_an_exception_can_open_the_chat_on_a_holiday(tmp_path: Path) -> None:
    """Exceptions come before holidays: Easter Monday can be opened for the morning."""
    hours = with_exceptions(tmp_path, EXCEPTIONS)
    assert hours.status(at(2026, 4, 6, 10)).accepting
    assert hours.next_opening(at(2026, 4, 2, 15)) == at(2026, 4, 6, 9)


def test_the_last_intake_margin_is_configurable(tmp_path: Path) -> None:
    """With no margin, new chats are taken until the closing minute."""
    path = tmp_path / "hours.toml"
    text = DEFAULT_HOURS_PATH.read_text(encoding="utf-8")
    path.write_text(text.replace("last_intake_minutes = 30", "last_intake_minutes = 0"))
    assert load_hours(path).status(at(2026, 1, 12, 15, 59)).accepting


# --- bad data --------------------------------------------------------------------------------

BASE = """
timezone = "Europe/Helsinki"
last_intake_minutes = 30
[holidays]
country = "FI"
[weekly]
monday = { opens = "08:00", closes = "16:00" }
tuesday = "closed"
wednesday = "closed"
thursday = "closed"
friday = "closed"
saturday = "closed"
sunday = "closed"
"""


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('opens = "08:00"', 'opens = "8"', "weekly.monday.opens"),
        ('closes = "16:00"', 'closes = "07:00"', "weekly.monday"),
        ('sunday = "closed"\n', "", "weekly.sunday"),
        ('sunday = "closed"', 'sunday = "closed"\nmunday = "closed"', "weekly.munday"),
        ('tuesday = "closed"', 'tuesday = "shut"', "weekly.tuesday"),
        ('"Europe/Helsinki"', '"Europe/Helsinky"', "timezone"),
        ("last_intake_minutes = 30", "last_intake_minutes = -5", "last_intake_minutes"),
        ("last_intake_minutes = 30", 'last_intake_minutes = "30"', "last_intake_minutes"),
        ('country = "FI"', 'country = "XX"', "holidays.country"),
        ('country = "FI"', 'country = "FI"\nsubdivision = "99"', "holidays.subdivision"),
        ("timezone =", 'opening = "08:00"\ntimezone =', "opening"),
    ],
)
def test_bad_hours_data_names_the_file_and_the_key(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    """Each mistake in the data raises HoursError naming the file and the key at fault."""
    assert old in BASE
    path = tmp_path / "hours.toml"
    path.write_text(BASE.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(HoursError) as caught:
        load_hours(path)
    assert caught.value.key == key
    assert str(path) in str(caught.value) and key in str(caught.value)


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('[[exceptions]]\ndate = "2026-02-30"\nclosed = true\n', "exceptions[0].date"),
        ("[[exceptions]]\nclosed = true\n", "exceptions[0].date"),
        ('[[exceptions]]\ndate = 2026-03-12\nclosed = true\nopens = "10:00"\n', "exceptions[0]"),
        ("[[exceptions]]\ndate = 2026-03-12\n", "exceptions[0]"),
        ('[[exceptions]]\ndate = 2026-03-12\nopens = "10:00"\n', "exceptions[0].closes"),
        (
            "[[exceptions]]\ndate = 2026-03-12\nclosed = true\n"
            "[[exceptions]]\ndate = 2026-03-12\nclosed = true\n",
            "exceptions[1].date",
        ),
        (
            '[[exceptions]]\ndate = 2026-03-12\nclosed = true\nnote = { de = "Schulung" }\n',
            "exceptions[0].note.de",
        ),
        (
            '[[helplines]]\nnumber = "116117"\nname = { fi = "a", sv = "b", en = "c" }\n'
            'advice = { fi = "a", en = "c" }\n',
            "helplines[0].advice.sv",
        ),
        (
            '[[helplines]]\nnumber = "call us"\nname = { fi = "a", sv = "b", en = "c" }\n'
            'advice = { fi = "a", sv = "b", en = "c" }\n',
            "helplines[0].number",
        ),
    ],
)
def test_bad_exceptions_and_helplines_name_the_key(tmp_path: Path, snippet: str, key: str) -> None:
    """A broken exception or helpline entry is reported with its index."""
    path = tmp_path / "hours.toml"
    path.write_text(BASE + snippet, encoding="utf-8")
    with pytest.raises(HoursError) as caught:
        load_hours(path)
    assert caught.value.key == key


def test_a_file_that_is_not_toml_is_reported_by_name(tmp_path: Path) -> None:
    """A syntax error names the file rather than surfacing a bare parser error."""
    path = tmp_path / "broken.toml"
    path.write_text("weekly = [\n", encoding="utf-8")
    with pytest.raises(HoursError, match="broken.toml: not valid TOML"):
        load_hours(path)


def test_a_missing_file_is_an_hours_error(tmp_path: Path) -> None:
    """A wrong path is reported as such."""
    with pytest.raises(HoursError, match="missing.toml: cannot read"):
        load_hours(tmp_path / "missing.toml")


# --- texts -----------------------------------------------------------------------------------


def test_the_next_opening_is_described_in_finnish_swedish_and_english(
    hours: ServiceHours,
) -> None:
    """On a Saturday the texts name Monday's date and time in each language's own style."""
    status = hours.status(at(2026, 1, 3, 12))
    assert (
        describe_next_opening(status, "fi")
        == "Chat avataan seuraavan kerran maanantaina 5.1. klo 8.00"
    )
    assert describe_next_opening(status, "sv") == "Chatten öppnar nästa gång måndag 5.1 kl. 8.00"
    assert describe_next_opening(status, "en") == "The chat opens next on Monday 5 January at 8:00"


def test_an_opening_today_or_tomorrow_is_said_so(hours: ServiceHours) -> None:
    """Before opening the text says "today"; after closing on a weekday, "tomorrow"."""
    early = hours.status(at(2026, 1, 12, 7))
    assert describe_next_opening(early, "fi") == "Chat avataan tänään klo 8.00"
    assert describe_next_opening(early, "sv") == "Chatten öppnar i dag kl. 8.00"
    assert describe_next_opening(early, "en") == "The chat opens today at 8:00"
    late = hours.status(at(2026, 1, 12, 17))
    assert describe_next_opening(late, "fi") == "Chat avataan huomenna klo 8.00"
    assert describe_next_opening(late, "sv") == "Chatten öppnar i morgon kl. 8.00"
    assert describe_next_opening(late, "en") == "The chat opens tomorrow at 8:00"


def test_an_open_chat_says_until_when_it_takes_new_chats(hours: ServiceHours) -> None:
    """While accepting, the description gives the last intake time instead."""
    status = hours.status(at(2026, 1, 16, 9))
    assert describe_next_opening(status, "fi").endswith("klo 14.30 asti")
    assert describe_next_opening(status, "sv").endswith("till kl. 14.30")
    assert describe_next_opening(status, "en").endswith("until 14:30")


def test_after_the_last_intake_the_text_speaks_of_new_chats(hours: ServiceHours) -> None:
    """Still open for chats in progress, the text says when new chats are taken again."""
    status = hours.status(at(2026, 1, 16, 14, 45))
    assert describe_next_opening(status, "fi") == (
        "Uusia keskusteluja otetaan taas vastaan maanantaina 19.1. klo 8.00"
    )
    assert describe_next_opening(status, "en") == (
        "New conversations are taken again on Monday 19 January at 8:00"
    )


def test_a_service_that_never_opens_says_the_time_is_not_known(tmp_path: Path) -> None:
    """With no opening within the search window, the text says so instead of guessing."""
    path = tmp_path / "hours.toml"
    path.write_text(BASE.replace('{ opens = "08:00", closes = "16:00" }', '"closed"'))
    status = load_hours(path).status(at(2026, 1, 12, 9))
    assert status.opens_at is None and status.next_intake_at is None
    assert describe_next_opening(status, "en") == (
        "The next opening time of the chat is not yet known"
    )
    assert closed_message(status, "fi")["next_opening"] is None


def test_the_closed_message_offers_the_bot_and_the_round_the_clock_numbers(
    hours: ServiceHours,
) -> None:
    """Outside hours the client gets the reason, the next opening and 116117 and 112."""
    message = closed_message(hours.status(at(2025, 12, 24, 10)), "fi")
    assert message["reason"] == "holiday"
    assert message["holiday"] == "Jouluaatto"
    assert message["text"] == (
        "Tänään on jouluaatto, ja chat on suljettu. "
        "Chat avataan seuraavan kerran maanantaina 29.12. klo 8.00."
    )
    assert message["next_opening"] == "2025-12-29T08:00:00+02:00"
    assert message["bot"] is True
    assert [n["number"] for n in message["numbers"]] == ["116117", "112"]
    assert message["numbers"][0] == {
        "number": "116117",
        "tel": "tel:116117",
        "name": "Päivystysapu",
    }
    assert "chatbot" in message["advice"] and "116117" in message["advice"]


def test_the_closed_message_is_written_in_swedish_and_english(hours: ServiceHours) -> None:
    """The same status reads naturally in Swedish and English."""
    status = hours.status(at(2026, 6, 19, 10))
    sv = closed_message(status, "sv")
    assert sv["text"] == (
        "I dag är det midsommarafton och chatten är stängd. "
        "Chatten öppnar nästa gång måndag 22.6 kl. 8.00."
    )
    assert sv["numbers"][0]["name"] == "Jourhjälpen"
    assert "Jourhjälpen" in sv["advice"]
    en = closed_message(status, "en")
    assert en["text"] == (
        "Today is Midsummer Eve, and the chat is closed. "
        "The chat opens next on Monday 22 June at 8:00."
    )
    assert "Medical Helpline on 116117" in en["advice"]


def test_language_tags_are_understood_and_others_get_english(hours: ServiceHours) -> None:
    """ "sv-FI" is Swedish, "FI" Finnish; a language without texts falls back to English."""
    status = hours.status(at(2026, 1, 17, 10))
    assert closed_message(status, "sv-FI")["lang"] == "sv"
    assert closed_message(status, "FI")["lang"] == "fi"
    assert closed_message(status, "de")["lang"] == "en"
    assert closed_message(status, "de")["text"].startswith("The chat is closed at weekends.")
