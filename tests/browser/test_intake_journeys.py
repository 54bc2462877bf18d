"""New users' journeys through the intake in a real Chromium, on a phone and on a desktop.

Who the nurse chat is for is said on the start screen and settled right after the red flags:
an adult of Helsinki identifies and goes on; someone who does not identify keeps the answers
and may identify after all; a 17-year-old and a resident of Espoo are told at once, with advice
that fits. Then answering fast: Back and Edit on every step, the browser's own Back, a 0–10
scale as a row of buttons, the page's station preselected, and the review before sending. axe
checks every new step; each new view is photographed at both sizes (set KANAVA_SCREENSHOTS to
keep them, see browser_testing.py).

The persons are the development provider's (scripts/dev_idp): Aino (41, Helsinki, 00530), Oona
(17 until tomorrow, Helsinki), Eero (Espoo).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from axe import check as axe_check
from browser_testing import (
    Pages,
    PageServer,
    answer,
    answer_something_else,
    question,
    start_page_server,
)
from idp import provider_for_kanava
from playwright.async_api import Browser, Locator, Page, expect

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[PageServer]:
    """No identity provider: the own age and the home municipality are asked instead."""
    server = start_page_server(tmp_path / "kanava.sqlite3", oidc_issuer="")
    yield server
    server.stop()


@pytest.fixture
def identifying_server(tmp_path: Path) -> Iterator[PageServer]:
    """Identification at the real development provider."""
    with provider_for_kanava(tmp_path, "kanava-journeys") as (port, identification):
        server = start_page_server(tmp_path / "kanava.sqlite3", port, **identification)
        yield server
        server.stop()


async def pages_of(browser: Browser, server: PageServer, tmp_path: Path) -> AsyncIterator[Pages]:
    """Pages of ``server``, closed after the test, which fails on any error in them."""
    pages = Pages(browser, server, tmp_path)
    yield pages
    await pages.close()
    assert not pages.errors, pages.errors


@pytest.fixture
async def plain(browser: Browser, plain_server: PageServer, tmp_path: Path) -> AsyncIterator[Pages]:
    async for pages in pages_of(browser, plain_server, tmp_path):
        yield pages


@pytest.fixture
async def identifying(
    browser: Browser, identifying_server: PageServer, tmp_path: Path
) -> AsyncIterator[Pages]:
    async for pages in pages_of(browser, identifying_server, tmp_path):
        yield pages


# --- what a resident does ----------------------------------------------------------------------


async def identify_as(page: Page, person: str, button: str = "Tunnistaudu") -> None:
    """Press the identify button; the person presses their button at the provider."""
    async with page.context.expect_page() as popup_info:
        await page.get_by_role("button", name=button, exact=True).click()
    popup = await popup_info.value
    async with popup.expect_event("close"):
        await popup.get_by_role("button", name=re.compile(f"^{person}")).click()


async def progress(page: Page) -> str:
    return (await page.locator("#intake .progress-text").text_content()) or ""


async def photograph(pages: Pages, page: Page, name: str, full_page: bool = False) -> None:
    """The view as it is now on a phone and on a desktop: ``name-phone.png``, ``-desktop``."""
    size = page.viewport_size
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(viewport)
        await pages.screenshot(page, f"{name}-{label}.png", full_page=full_page)
    if size is not None:
        await page.set_viewport_size(size)


async def no_sideways_scrolling(page: Page) -> None:
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width[0]} > {width[1]} px"


async def send_and_queue(page: Page) -> None:
    """The review's Send: the chat is queued."""
    await page.get_by_role("button", name="Lähetä ja siirry jonoon").click()
    await expect(page.locator("#chat-status")).to_have_text("Olet jonossa sijalla 1.")


# --- who may chat: said first, settled early ------------------------------------------------------


async def test_an_adult_of_helsinki_identifies_right_after_the_red_flags_then_answers(
    identifying: Pages, identifying_server: PageServer
) -> None:
    """On a phone: the start says who the chat is for; identification is the second section;
    the rest follows; the review shows her station from her address, which she changes
    before sending."""
    pages = identifying
    page = await pages.new("/client", **PHONE, bypass_csp=True)
    audience = page.locator("#audience")
    await expect(audience).to_contain_text(
        "Hoitajan chat on 18 vuotta täyttäneille, joiden kotikunta on Helsinki."
    )
    await expect(audience).to_contain_text("pankkitunnuksilla tai mobiilivarmenteella")
    await expect(audience.locator("li")).to_have_count(3)
    await expect(audience.locator("li").first).to_contain_text("kouluterveydenhoitaja")
    await photograph(pages, page, "intake-start")
    await page.get_by_role("button", name=re.compile("^Jokin muu vaiva")).click()
    await answer(page, "red_flags", choose=("Ei mitään näistä",))

    await expect(page.get_by_role("heading", name="Tunnistautuminen")).to_be_visible()
    assert await progress(page) == "Osio 2/5: Tunnistautuminen"
    await expect(page.locator("#intake")).to_contain_text(
        "Ilman tunnistautumista voit käyttää vain neuvontabottia."
    )
    await axe_check(page, "the identify step")
    await photograph(pages, page, "intake-identify-early")
    await identify_as(page, "Aino")

    # The rest of the questions, the first with a way back to the red flags.
    description = question(page, "description")
    await expect(description).to_be_visible()
    assert await progress(page) == "Osio 3/5: Asiasi"
    await expect(description.get_by_role("button", name="Takaisin")).to_be_visible()
    await answer_something_else(page, "Ihottuma kyynärvarressa viikon ajan.")

    review = page.locator("#intake")
    await expect(review.get_by_role("heading", name="Tarkista vastauksesi")).to_be_visible()
    await expect(review.locator(".review-identity")).to_have_text("Tunnistettu: Aino Testinen")
    station = review.locator(".review-station")
    await expect(station).to_contain_text("Kallion terveysasema")
    await station.get_by_role("button", name="Vaihda: Terveysasema").click()
    select = page.get_by_label(re.compile("^Valittuna on osoitteesi mukainen terveysasema"))
    await expect(select).to_have_value("kallio")
    await select.select_option(label="Kalasataman terveysasema")
    await page.get_by_role("button", name="Jatka").click()
    await expect(page.locator(".review-station")).to_contain_text("Kalasataman terveysasema")
    await send_and_queue(page)
    (view,) = identifying_server.hub.open_conversations()
    assert (view.station_id, view.team_id) == ("kalasatama", "kallio")


async def test_not_identifying_keeps_the_answers_and_identifying_after_all_goes_on(
    identifying: Pages, identifying_server: PageServer
) -> None:
    """In Swedish, on a desktop: "only the advice bot" is said before and after the choice;
    identifying after all needs no starting over, and the red-flag answer is still there."""
    pages = identifying
    page = await pages.new("/client", **DESKTOP, locale="sv-FI", bypass_csp=True)
    await page.get_by_role("button", name=re.compile("^Något annat")).click()
    await answer(page, "red_flags", choose=("Inget av detta",), next_="Nästa")
    anonymous = page.get_by_role(
        "button", name="Fortsätt utan identifiering (endast rådgivningsboten)"
    )
    await anonymous.click()

    await expect(page.get_by_role("heading", name="Endast rådgivningsboten")).to_be_visible()
    await expect(page.locator("#intake")).to_contain_text("Dina svar finns kvar")
    await expect(page.get_by_role("button", name="Chatta med rådgivningsboten")).to_be_visible()
    assert await progress(page) == "Del 2 av 5: Identifiering"
    await axe_check(page, "the choice not to identify")
    await photograph(pages, page, "intake-anonymous")
    assert not identifying_server.hub.open_conversations()

    await page.get_by_role("button", name="Identifiera dig ändå").click()
    await expect(page.get_by_role("heading", name="Identifiering")).to_be_visible()
    await identify_as(page, "Aino", "Identifiera dig")
    description = question(page, "description")
    await expect(description).to_be_visible()
    # One step back: the red-flag question, answered as it was.
    await description.get_by_role("button", name="Tillbaka").click()
    flags = question(page, "red_flags")
    await expect(flags.get_by_label("Inget av detta")).to_be_checked()
    await flags.get_by_role("button", name="Nästa").click()
    await expect(question(page, "description")).to_be_visible()


async def test_a_17_year_old_is_told_at_once_where_to_turn(
    identifying: Pages, identifying_server: PageServer
) -> None:
    """In English, on a phone: Oona is 17. Right after identifying (the red flags only
    answered, a routine matter): school or student health care, a guardian, the bot."""
    pages = identifying
    page = await pages.new("/client", **PHONE, locale="en-GB", bypass_csp=True)
    await expect(page.locator("#audience")).to_contain_text(
        "The nurse chat is for people aged 18 or over who live in Helsinki."
    )
    await page.get_by_role("button", name=re.compile("^Something else")).click()
    await answer(page, "red_flags", choose=("None of these",), next_="Next")
    await identify_as(page, "Oona", "Identify")

    end = page.locator("#intake")
    await expect(end.get_by_role("heading", name="Where to get help")).to_be_visible()
    await expect(end).to_contain_text("Contact your school nurse or, if you are a student")
    await expect(end).not_to_contain_text("116117 now")  # a routine matter so far
    await expect(end.get_by_role("button", name="Chat with the advice bot")).to_be_visible()
    await expect(end.locator(".numbers a").first).to_have_attribute("href", "tel:116117")
    await expect(page.locator("form.question")).to_have_count(0)  # nothing more asked
    await axe_check(page, "the end for a 17-year-old")
    await no_sideways_scrolling(page)
    await photograph(pages, page, "intake-under-age")
    assert not identifying_server.hub.open_conversations()


async def test_a_resident_of_espoo_is_guided_to_their_own_services_at_once(
    identifying: Pages, identifying_server: PageServer
) -> None:
    """In Finnish, on a desktop: Eero lives in Espoo; told right after identifying."""
    pages = identifying
    page = await pages.new("/client", **DESKTOP, bypass_csp=True)
    await page.get_by_role("button", name=re.compile("^Jokin muu vaiva")).click()
    await answer(page, "red_flags", choose=("Ei mitään näistä",))
    await identify_as(page, "Eero")
    end = page.locator("#intake")
    await expect(end.get_by_role("heading", name="Oman kuntasi palvelut")).to_be_visible()
    await expect(end).to_contain_text("joiden kotikunta on Helsinki")
    await expect(end).to_contain_text("oman kuntasi tai hyvinvointialueesi terveysasemaan")
    await expect(page.locator("form.question")).to_have_count(0)
    await axe_check(page, "the guidance for a resident of another municipality")
    await photograph(pages, page, "intake-not-resident")
    assert not identifying_server.hub.open_conversations()


# --- answering fast ---------------------------------------------------------------------------


async def test_back_edit_the_browsers_back_a_scale_and_the_review(
    plain: Pages, plain_server: PageServer
) -> None:
    """On a phone, opened from Kalasatama's page (the widget's ``?team=``): the own age and
    municipality after the red flags; the 0–10 scale by touch and by keyboard; Back and the
    browser's Back keep every answer; the station preselected; the review, an edit from it,
    and Send."""
    pages = plain
    page = await pages.new("/client?team=kalasatama", **PHONE, bypass_csp=True)
    await expect(page.locator("#audience")).to_contain_text("Kysymme ikäsi ja kotikuntasi")
    await page.get_by_role("button", name=re.compile("^Jokin muu vaiva")).click()
    await answer(page, "red_flags", choose=("Ei mitään näistä",))
    age = question(page, "own_age")
    await expect(age.locator("legend")).to_have_text("Kuinka vanha sinä itse olet?")
    assert await progress(page) == "Osio 2/5: Tietoja sinusta"
    await axe_check(page, "the own age")
    await answer(page, "own_age", fill="40")
    await answer(page, "home_municipality", choose=("Kyllä",))
    await answer(page, "description", fill="Selkä on kipeä.")
    await answer(page, "duration", choose=("1–6 päivää",))

    # The scale: a row of radio buttons labelled 0 to 10.
    severity = question(page, "severity")
    scale = severity.get_by_role("radio")
    await expect(scale).to_have_count(11)
    await expect(severity.get_by_role("textbox")).to_have_count(0)
    await severity.get_by_label("3", exact=True).check()
    await axe_check(page, "the 0–10 scale")
    await photograph(pages, page, "intake-scale")
    # By keyboard: the arrow keys move the choice.
    await severity.get_by_label("3", exact=True).focus()
    await page.keyboard.press("ArrowRight")
    await expect(severity.get_by_label("4", exact=True)).to_be_checked()
    await expect(severity.get_by_label("4", exact=True)).to_be_focused()

    # Back on the page: the duration, its answer chosen.
    await severity.get_by_role("button", name="Takaisin").click()
    duration = question(page, "duration")
    await expect(duration.get_by_label("1–6 päivää")).to_be_checked()
    # The browser's Back: one more step, to the description, its text kept.
    await page.go_back()
    description = question(page, "description")
    await expect(description.get_by_role("textbox")).to_have_value("Selkä on kipeä.")
    assert "/client" in page.url  # still in the service
    await answer(page, "description", fill="Selkä on kipeä, säteilee jalkaan.")
    await answer(page, "duration")  # its answer kept: Next goes on
    # The scale was left before Next: not answered yet, so nothing is chosen.
    await expect(question(page, "severity").get_by_role("radio", checked=True)).to_have_count(0)
    await answer(page, "severity", choose=("4",))
    await answer(page, "worsening", choose=("Ei",))
    await answer(page, "age", fill="40")
    await answer(page, "sex", choose=("Mies",))
    for yes_no in ("chronic", "medication", "allergies"):
        await answer(page, yes_no, choose=("Ei",))

    # The widget's station, preselected; the others a choice away.
    select = page.locator("#station-select")
    await expect(select).to_have_value("kalasatama")
    assert await progress(page) == "Osio 5/5: Tarkistus ja lähetys"
    await axe_check(page, "the station, preselected")
    await photograph(pages, page, "intake-station")
    await page.get_by_role("button", name="Jatka").click()

    review = page.locator("#intake")
    await expect(review.get_by_role("heading", name="Tarkista vastauksesi")).to_be_visible()
    rows = review.locator(".review-row")

    def answer_to(label: str) -> Locator:
        return rows.filter(has=page.locator("dt", has_text=label)).locator(".review-answer")

    await expect(answer_to("Kuvaus")).to_have_text("Selkä on kipeä, säteilee jalkaan.")
    await expect(answer_to("Haitta 0–10")).to_have_text("4")
    await expect(answer_to("Oma ikä")).to_have_text("40 v")
    await expect(review.locator(".review-station")).to_contain_text("Kalasataman terveysasema")
    await axe_check(page, "the review")
    await no_sideways_scrolling(page)
    await photograph(pages, page, "intake-review", full_page=True)

    # Edit from the review: the question, then the review again.
    await review.get_by_role("button", name="Muokkaa: Haitta 0–10").click()
    await answer(page, "severity", choose=("9",))
    await expect(answer_to("Haitta 0–10")).to_have_text("9")
    # The browser's Back from the review: the station, then the last question; forward
    # again with Next, nothing lost.
    await page.go_back()
    await expect(page.locator("#station-select")).to_have_value("kalasatama")
    await page.go_back()
    await expect(question(page, "allergies").get_by_label("Ei")).to_be_checked()
    await answer(page, "allergies")
    await expect(page.locator("#station-select")).to_have_value("kalasatama")
    await page.get_by_role("button", name="Jatka").click()
    await expect(answer_to("Haitta 0–10")).to_have_text("9")
    await send_and_queue(page)
    (view,) = plain_server.hub.open_conversations()
    assert (view.station_id, view.triage) == ("kalasatama", "urgent")


async def test_the_browsers_back_from_the_first_question_returns_to_the_topics(
    plain: Pages,
) -> None:
    """Back past the first question leaves the questions, not the service."""
    pages = plain
    page = await pages.new("/client", **DESKTOP)
    await page.get_by_role("button", name=re.compile("^Virtsatieoireet")).click()
    await answer(page, "red_flags", choose=("Ei mitään näistä",))
    await expect(question(page, "own_age")).to_be_visible()
    await page.go_back()
    await expect(question(page, "red_flags").get_by_label("Ei mitään näistä")).to_be_checked()
    await page.go_back()
    await expect(page.get_by_role("heading", name="Mitä asiasi koskee?")).to_be_visible()
    assert "/client" in page.url


async def test_after_a_reload_the_browsers_back_still_goes_one_step_back(plain: Pages) -> None:
    """After a reload mid-intake the browser's Back still moves one step, and Forward does
    not move a step back."""
    page = await plain.new("/client", **PHONE)
    await page.get_by_role("button", name=re.compile("^Jokin muu vaiva")).click()
    await answer(page, "red_flags", choose=("Ei mitään näistä",))
    await answer(page, "own_age", fill="52")
    await expect(question(page, "home_municipality")).to_be_visible()
    await page.reload()
    await expect(question(page, "home_municipality")).to_be_visible()
    await page.go_back()
    age = question(page, "own_age")
    await expect(age.get_by_role("textbox")).to_have_value("52")
    # Forward again does not go back once more: the screen stays where the intake is.
    await page.go_forward()
    await page.wait_for_timeout(300)
    await expect(age.get_by_role("textbox")).to_have_value("52")
    await answer(page, "own_age")
    await expect(question(page, "home_municipality")).to_be_visible()
