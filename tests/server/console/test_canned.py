"""Canned responses: the shipped file, the checks on bad files, team filtering, filling in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from server.console.canned import (
    DEFAULT_CANNED_PATH,
    LANGUAGES,
    PLACEHOLDERS,
    CannedError,
    CannedResponse,
    canned_for,
    fill,
    load_canned,
)

GOOD = """
[[response]]
id = "greeting"
teams = ["*"]
title = { fi = "Tervehdys", sv = "Hälsning", en = "Greeting" }
text = { fi = "Hei {first_name}!", sv = "Hej {first_name}!", en = "Hello {first_name}!" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "canned.toml"
    path.write_text(text, encoding="utf-8")
    return path


def entry(
    id: str = "extra",
    teams: str = '["kallio"]',
    title: str = '{ fi = "Otsikko", sv = "Rubrik", en = "Title" }',
    text: str = '{ fi = "Teksti", sv = "Text", en = "Text" }',
    more: str = "",
) -> str:
    return f'\n[[response]]\nid = "{id}"\nteams = {teams}\ntitle = {title}\ntext = {text}\n{more}'


@pytest.fixture(scope="module")
def shipped() -> tuple[CannedResponse, ...]:
    return load_canned()


# -- The shipped file --------------------------------------------------------------------------


def test_the_shipped_file_loads(shipped: tuple[CannedResponse, ...]) -> None:
    assert 8 <= len(shipped) <= 12
    assert len({r.id for r in shipped}) == len(shipped)
    assert load_canned(DEFAULT_CANNED_PATH) == shipped


def test_every_shipped_response_speaks_finnish_swedish_and_english(
    shipped: tuple[CannedResponse, ...],
) -> None:
    for response in shipped:
        assert tuple(response.title) == LANGUAGES and tuple(response.text) == LANGUAGES
        for lang in LANGUAGES:
            assert response.title[lang].strip() and response.text[lang].strip()
        # The three versions carry the same placeholders, so none is forgotten in translation.
        used = {lang: set(re.findall(r"\{(\w+)\}", response.text[lang])) for lang in LANGUAGES}
        assert used["fi"] == used["sv"] == used["en"], response.id
        assert used["fi"] <= PLACEHOLDERS


def test_the_shipped_responses_cover_safety_and_send_no_links(
    shipped: tuple[CannedResponse, ...],
) -> None:
    by_id = {r.id: r for r in shipped}
    assert "112" in by_id["emergency-112"].text["fi"]
    assert all("116 117" in by_id["self-care-follow-up"].text[lang] for lang in LANGUAGES)
    every = " ".join(r.text[lang] for r in shipped for lang in LANGUAGES)
    assert "http" not in every and "www." not in every
    assert {r.teams for r in shipped} >= {("*",), ("kallio",), ("vuosaari",)}


# -- Bad files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        (entry(more='colour = "red"'), 'response[1] ("extra").colour', "unknown key"),
        (
            entry(text='{ fi = "Teksti", en = "Text" }'),
            'response[1] ("extra").text',
            "missing language(s): sv",
        ),
        (
            entry(title='{ fi = "Otsikko", sv = "Rubrik", en = "Title", de = "Titel" }'),
            'response[1] ("extra").title.de',
            "unknown key",
        ),
        (
            entry(text='{ fi = "Hei {etunimi}", sv = "Hej", en = "Hello" }'),
            'response[1] ("extra").text.fi',
            "unknown placeholder '{etunimi}'",
        ),
        (
            entry(text='{ fi = "Hei", sv = "Hej", en = "Hello {first_name:>20}" }'),
            'response[1] ("extra").text.en',
            "unknown placeholder",
        ),
        (
            entry(text='{ fi = "Hei", sv = "Hej {", en = "Hello" }'),
            'response[1] ("extra").text.sv',
            "brace",
        ),
        (entry(id="greeting"), 'response[1] ("greeting").id', "duplicate id; already used by"),
        (entry(id="Hello there"), "response[1].id", "slug"),
        (entry(teams="[]"), 'response[1] ("extra").teams', "list of team ids"),
        (entry(teams='["*", "kallio"]'), 'response[1] ("extra").teams', "list it alone"),
        (entry(teams='["Kallio!"]'), 'response[1] ("extra").teams', "team ids"),
        (
            entry(text='{ fi = "", sv = "Hej", en = "Hello" }'),
            'response[1] ("extra").text.fi',
            "non-empty",
        ),
        (
            entry(title='{ fi = "Hei {first_name}", sv = "Hej", en = "Hi" }'),
            'response[1] ("extra").title.fi',
            "placeholders",
        ),
        ('\n[[responses]]\nid = "x"\n', "responses", "unknown key"),
        ('\n[[response]]\nteams = ["*"]\n', "response[1].id", "missing"),
    ],
)
def test_a_bad_file_names_the_file_and_the_entry(
    tmp_path: Path, extra: str, key: str, reason: str
) -> None:
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(CannedError) as caught:
        load_canned(path)
    assert caught.value.source == str(path)
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert isinstance(caught.value, ValueError)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[[response]\n")
    with pytest.raises(CannedError, match=re.escape(str(path)) + ": not valid TOML"):
        load_canned(path)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CannedError, match="cannot read"):
        load_canned(tmp_path / "nowhere.toml")


def test_a_good_small_file_loads(tmp_path: Path) -> None:
    (response,) = load_canned(write(tmp_path, GOOD))
    assert response == CannedResponse(
        id="greeting",
        teams=("*",),
        title={"fi": "Tervehdys", "sv": "Hälsning", "en": "Greeting"},
        text={"fi": "Hei {first_name}!", "sv": "Hej {first_name}!", "en": "Hello {first_name}!"},
    )
    with pytest.raises(TypeError):
        response.text["fi"] = "changed"  # type: ignore[index]


# -- Choosing by team --------------------------------------------------------------------------


def test_a_professional_gets_their_teams_and_every_teams_responses(
    shipped: tuple[CannedResponse, ...],
) -> None:
    kallio = {r["id"] for r in canned_for(shipped, ["kallio"])}
    vuosaari = {r["id"] for r in canned_for(shipped, ["vuosaari"])}
    both = {r["id"] for r in canned_for(shipped, iter(["vuosaari", "kallio"]))}
    shared = {r.id for r in shipped if r.teams == ("*",)}
    assert kallio == shared | {"kallio-welcome"}
    assert vuosaari == shared | {"vuosaari-visit"}
    assert both == kallio | vuosaari
    assert {r["id"] for r in canned_for(shipped, [])} == shared


def test_the_choice_is_json_ready_and_in_file_order(shipped: tuple[CannedResponse, ...]) -> None:
    chosen = canned_for(shipped, ["kallio"])
    assert json.loads(json.dumps(chosen)) == chosen
    assert [r["id"] for r in chosen] == [r.id for r in shipped if r.id in {c["id"] for c in chosen}]
    greeting = chosen[0]
    assert set(greeting) == {"id", "teams", "title", "text"}
    assert greeting["teams"] == ["*"]
    assert list(greeting["text"]) == ["fi", "sv", "en"]


# -- Filling in --------------------------------------------------------------------------------


def test_fill_replaces_every_placeholder() -> None:
    values = {
        "first_name": "Maija",
        "client_name": "Maija Meikäläinen",
        "my_name": "Anna",
        "my_title": "sairaanhoitaja",
        "station": "Kallion terveysasema",
    }
    text = "{first_name} / {client_name} / {my_name} / {my_title} / {station} / {first_name}"
    assert fill(text, values) == (
        "Maija / Maija Meikäläinen / Anna / sairaanhoitaja / Kallion terveysasema / Maija"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hei {first_name}, olen {my_name}. Miten voin auttaa?",
            "Hei, olen Anna. Miten voin auttaa?",
        ),
        (
            "Kiitos yhteydenotosta, {first_name}, ja hyvää jatkoa!",
            "Kiitos yhteydenotosta, ja hyvää jatkoa!",
        ),
        ("Tack, {first_name}.", "Tack."),
        ("Hello {first_name}!", "Hello!"),
        ("at your health station ({station}). You will", "at your health station. You will"),
        ("Olen {my_name} {my_title} tänään.", "Olen Anna tänään."),
        ("{first_name} {client_name}", ""),
        ("Rivi {station}\n{first_name} toinen", "Rivi\ntoinen"),
    ],
)
def test_a_missing_value_leaves_no_gap(text: str, expected: str) -> None:
    assert fill(text, {"my_name": "Anna", "first_name": "", "station": "  "}) == expected


def test_the_shipped_texts_read_well_without_any_value(
    shipped: tuple[CannedResponse, ...],
) -> None:
    for response in shipped:
        for lang in LANGUAGES:
            filled = fill(response.text[lang], {})
            assert "{" not in filled and "  " not in filled, (response.id, lang)
            assert not re.search(r" [,.!?]|\(\)|,,|^\s|\s$", filled), (response.id, lang, filled)


def test_fill_never_formats_or_expands_what_it_inserts() -> None:
    values = {"first_name": "{my_name} {0} {__class__}", "my_name": "Anna"}
    assert fill("Hei {first_name}, olen {my_name}.", values) == (
        "Hei {my_name} {0} {__class__}, olen Anna."
    )
    # Unknown braces and format specs in the text are not touched.
    assert fill("{first_name!r:>10} {0} {unknown}", values) == "{first_name!r:>10} {0} {unknown}"


def test_fill_keeps_a_value_on_one_line() -> None:
    assert fill("Hei {first_name}!", {"first_name": "Mai\nja\x1b[31m "}) == "Hei Mai ja[31m!"
