"""Health-station areas: routing by postal code, choosing a station, residency, bad data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.intake.areas import Areas, AreasError, load_areas, normalise_postal_code


@pytest.fixture(scope="module")
def areas() -> Areas:
    return load_areas()


@pytest.mark.parametrize(
    ("code", "station"),
    [
        ("00500", "kallio"),
        ("00530", "kallio"),
        ("00 550", "kallio"),
        (" 00540 ", "kalasatama"),
        ("00980", "vuosaari"),
        ("00 990", "vuosaari"),
        ("00700", "malmi"),
        ("00100", "ruoholahti"),
        ("00200", "lauttasaari"),
        ("00970", "kivikko"),
    ],
)
def test_a_postal_code_routes_to_its_station(areas: Areas, code: str, station: str) -> None:
    """Postal codes, with stray spaces, find the station that serves them."""
    found = areas.station_for_postal_code(code)
    assert found is not None and found.id == station


@pytest.mark.parametrize("code", ["02100", "33100", "0050", "005000", "abcde", "", "00-500"])
def test_an_unknown_or_malformed_postal_code_routes_nowhere(areas: Areas, code: str) -> None:
    """Espoo, Tampere and malformed codes give None rather than a wrong station."""
    assert areas.station_for_postal_code(code) is None


def test_postal_codes_are_normalised_by_removing_spaces() -> None:
    """Spaces inside and around a code are dropped; anything else is not a code."""
    assert normalise_postal_code(" 00 500 ") == "00500"
    assert normalise_postal_code("00500\n") == "00500"
    assert normalise_postal_code("FI-00500") is None


def test_stations_share_teams_as_the_data_says(areas: Areas) -> None:
    """Kalasatama's chats are answered by the Kallio team, Laajasalo's by Herttoniemi's."""
    assert areas.team_for("kallio") == "kallio"
    assert areas.team_for("kalasatama") == "kallio"
    assert areas.team_for("laajasalo") == "herttoniemi"
    assert areas.team_for("vuosaari") == "vuosaari"
    with pytest.raises(KeyError):
        areas.team_for("espoo")


def test_a_station_is_found_by_id_with_its_names(areas: Areas) -> None:
    """A station carries its names in Finnish and Swedish."""
    station = areas.station("vuosaari")
    assert station is not None
    assert station.names["fi"] == "Vuosaaren terveysasema"
    assert station.names["sv"] == "Nordsjö hälsostation"
    assert "00980" in station.postal_codes
    assert areas.station("nowhere") is None


def test_the_station_choices_are_sorted_by_their_finnish_names(areas: Areas) -> None:
    """The Finnish list starts with Haaga and ends with Vuosaari, each an id and a name."""
    choices = areas.choices("fi")
    assert choices[0] == {"id": "haaga", "name": "Haagan terveysasema"}
    assert choices[-1] == {"id": "vuosaari", "name": "Vuosaaren terveysasema"}
    assert len(choices) == len(areas.stations)
    names = [c["name"] for c in choices]
    assert names.index("Töölön terveysasema") > names.index("Ruoholahden terveysasema")


def test_the_swedish_choices_put_a_name_starting_with_o_umlaut_last(areas: Areas) -> None:
    """Swedish names sort in Swedish order: Östra centrum comes after Tölö and Vik."""
    choices = areas.choices("sv")
    assert choices[0] == {"id": "kallio", "name": "Berghälls hälsostation"}
    assert choices[-1] == {"id": "itakeskus", "name": "Östra centrums hälsostation"}
    assert choices[-2]["id"] == "viikki"


def test_choices_in_a_language_without_names_fall_back_to_finnish(areas: Areas) -> None:
    """English names are shipped; a language with none gets the Finnish names."""
    assert {"id": "kallio", "name": "Kallio health station"} in areas.choices("en")
    assert {"id": "kallio", "name": "Kallion terveysasema"} in areas.choices("de")


@pytest.mark.parametrize(
    ("municipality", "expected"),
    [
        ("Helsinki", True),
        ("helsinki", True),
        (" HELSINGFORS ", True),
        ("Helsingfors", True),
        ("091", True),
        ("91", True),
        ("Espoo", False),
        ("Esbo", False),
        ("049", False),
        ("Vantaa", False),
        (None, None),
        ("", None),
        ("  ", None),
    ],
)
def test_residency_is_decided_by_municipality_code_or_name(
    areas: Areas, municipality: str | None, expected: bool | None
) -> None:
    """Helsinki by any of its names or its code is a resident; unknown stays unknown."""
    assert areas.is_resident(municipality) is expected


def test_the_shipped_data_has_slug_teams_and_the_demo_teams(areas: Areas) -> None:
    """Team ids are short ASCII slugs, and the demo's kallio and vuosaari exist."""
    assert areas.municipality == "Helsinki" and areas.municipality_code == "091"
    slug = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
    for station in areas.stations:
        assert slug.match(station.team) and station.team.isascii(), station.team
        assert slug.match(station.id) and station.id.isascii(), station.id
        assert station.names["fi"] and station.names["sv"]
    assert {"kallio", "vuosaari"} <= set(areas.teams())
    assert {"kallio", "vuosaari"} <= {s.id for s in areas.stations}


def test_the_shipped_postal_codes_are_helsinki_codes_each_in_one_station(areas: Areas) -> None:
    """Every code is in 00100-00990 and maps back to the one station that lists it."""
    codes = [code for station in areas.stations for code in station.postal_codes]
    assert len(codes) == len(set(codes))
    for station in areas.stations:
        for code in station.postal_codes:
            assert "00100" <= code <= "00990", code
            assert areas.station_for_postal_code(code) == station


# --- bad data --------------------------------------------------------------------------------

BASE = """
[municipality]
code = "091"
names = { fi = "Helsinki", sv = "Helsingfors" }
languages = ["fi", "sv"]

[[stations]]
id = "kallio"
team = "kallio"
names = { fi = "Kallion terveysasema", sv = "Berghälls hälsostation" }
postal_codes = ["00500", "00530"]

[[stations]]
id = "vuosaari"
team = "vuosaari"
names = { fi = "Vuosaaren terveysasema", sv = "Nordsjö hälsostation" }
postal_codes = ["00980", "00990"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "areas.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_areas_file_loads(tmp_path: Path) -> None:
    """The snippet the error tests start from is itself valid."""
    areas = load_areas(write(tmp_path, BASE))
    assert [s.id for s in areas.stations] == ["kallio", "vuosaari"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('["00980", "00990"]', '["00980", "00530"]', "00530 is already in station 'kallio'"),
        ('["00500", "00530"]', '["00500", "00500"]', "00500 is already in station 'kallio'"),
        ('["00980", "00990"]', '["0098", "00990"]', "five digits"),
        ('["00980", "00990"]', '["00 980"]', "five digits"),
        ('["00980", "00990"]', "[980]", "five digits"),
        ('["00980", "00990"]', "[]", "postal_codes"),
        (', sv = "Nordsjö hälsostation"', "", "names.sv: missing"),
        ('fi = "Vuosaaren terveysasema", ', "", "names.fi: missing"),
        ('fi = "Vuosaaren terveysasema"', 'fi = " "', "names.fi: expected a non-empty name"),
        ('id = "vuosaari"', 'id = "kallio"', "'kallio' is already the id of stations[0]"),
        ('team = "vuosaari"', 'team = "Vuosaari Team"', "team: expected a short slug"),
        ('id = "vuosaari"', 'id = "vuosaari"\nteem = "x"', "teem: unknown key"),
        ('code = "091"', "code = 91", "municipality.code"),
        ('languages = ["fi", "sv"]', "languages = []", "municipality.languages"),
        ('names = { fi = "Helsinki", sv = "Helsingfors" }', "", "municipality.names: missing"),
    ],
)
def test_bad_areas_data_is_refused_with_the_problem_named(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """Each mistake raises AreasError naming the file, the key and the problem."""
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(AreasError) as caught:
        load_areas(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_a_missing_municipality_table_is_refused(tmp_path: Path) -> None:
    """Without a municipality there is no way to decide residency."""
    path = write(tmp_path, "[[stations]]" + BASE.split("[[stations]]", 1)[1])
    with pytest.raises(AreasError, match="municipality: missing"):
        load_areas(path)


def test_a_file_that_is_not_toml_is_reported_by_name(tmp_path: Path) -> None:
    """A syntax error names the file."""
    with pytest.raises(AreasError, match="areas.toml: not valid TOML"):
        load_areas(write(tmp_path, "[[stations]\n"))
