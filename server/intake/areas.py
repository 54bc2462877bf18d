"""Health-station areas: which station serves a resident, and which chat team answers for it.

The areas are data (``server/config/areas.toml``): a municipality, its health stations with
their names in the municipality's languages, the postal codes each one serves, and the team
whose professionals answer its chats. Several stations may share one team. A resident is
routed by the postal code of their address; one whose identity gives no address chooses from
:meth:`Areas.choices`. Residency is decided by the municipality the identity reports, given as
a code ("091") or a name in any of its languages.

Loading checks what would otherwise misroute silently: a postal code claimed by two stations,
a malformed code, a station without a name in one of the languages.

Errors::

    ValueError
    └── ConfigError      (server.core.config_files) a data file cannot be used
        └── AreasError   bad areas data: names the file, the key and the problem
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.core.config_files import SHIPPED, ConfigError, TomlReader, read_toml

__all__ = [
    "DEFAULT_AREAS_PATH",
    "Areas",
    "AreasError",
    "Station",
    "load_areas",
    "normalise_postal_code",
]

DEFAULT_AREAS_PATH = SHIPPED / "areas.toml"

_POSTAL_CODE = re.compile(r"^\d{5}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_MUNICIPALITY_CODE = re.compile(r"^\d{3}$")

# Finnish and Swedish put å, ä, ö after z, in that order; code points put ä before å.
_COLLATION = str.maketrans({"å": "z\u0001", "ä": "z\u0002", "ö": "z\u0003", "ü": "y", "é": "e"})


class AreasError(ConfigError):
    """The areas data cannot be used; ``source`` and ``key`` say where the problem is."""

    default_source = "<areas>"


def normalise_postal_code(code: str) -> str | None:
    """``"00 500"`` or ``" 00500 "`` as ``"00500"``; None if it is not a Finnish postal code."""
    compact = "".join(code.split())
    return compact if _POSTAL_CODE.match(compact) else None


def _sort_key(name: str) -> str:
    return name.casefold().translate(_COLLATION)


@dataclass(frozen=True)
class Station:
    id: str
    names: Mapping[str, str]  # language code -> name, e.g. {"fi": "Kallion terveysasema"}
    team: str
    postal_codes: tuple[str, ...]

    def name(self, lang: str, fallback: str = "fi") -> str:
        return self.names.get(lang) or self.names.get(fallback) or self.id


@dataclass(frozen=True)
class Areas:
    municipality: str  # its name in the first language, e.g. "Helsinki"
    municipality_code: str  # e.g. "091"
    municipality_names: Mapping[str, str]
    languages: tuple[str, ...]  # every station has a name in each, the first is the fallback
    stations: tuple[Station, ...]
    _by_id: dict[str, Station] = field(init=False, repr=False, compare=False)
    _by_postal_code: dict[str, Station] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.id: s for s in self.stations})
        by_code = {code: s for s in self.stations for code in s.postal_codes}
        object.__setattr__(self, "_by_postal_code", by_code)

    def station_for_postal_code(self, code: str) -> Station | None:
        """The station serving ``code`` (spaces allowed); None for codes outside the areas."""
        normal = normalise_postal_code(code)
        return None if normal is None else self._by_postal_code.get(normal)

    def station(self, station_id: str) -> Station | None:
        return self._by_id.get(station_id)

    def team_for(self, station_id: str) -> str:
        """The team answering for the station; KeyError for an unknown station."""
        station = self._by_id.get(station_id)
        if station is None:
            raise KeyError(f"no station {station_id!r}")
        return station.team

    def teams(self) -> tuple[str, ...]:
        """Every team some station routes to, each once, in the order of the data."""
        return tuple(dict.fromkeys(s.team for s in self.stations))

    def choices(self, lang: str) -> list[dict[str, str]]:
        """Stations to choose from, named in ``lang``, in alphabetical order of that language."""
        lang = _language(lang, self.languages)
        fallback = self.languages[0]
        rows = [{"id": s.id, "name": s.name(lang, fallback)} for s in self.stations]
        return sorted(rows, key=lambda row: (_sort_key(row["name"]), row["id"]))

    def is_resident(self, municipality: str | None) -> bool | None:
        """Whether a home municipality (code or name, any case) is this one; None if unknown."""
        if municipality is None or not municipality.strip():
            return None
        given = municipality.strip()
        if given.isdigit():
            # Registers sometimes drop the leading zeros of "091".
            return given.zfill(3) == self.municipality_code
        names = {self.municipality, *self.municipality_names.values()}
        return given.casefold() in {name.casefold() for name in names}


def _language(lang: str, languages: tuple[str, ...]) -> str:
    base = lang.strip().lower().replace("_", "-").split("-")[0]
    return base or languages[0]


# --- loading -----------------------------------------------------------------------------------


def load_areas(path: Path | None = None) -> Areas:
    """Read the areas from a TOML file (default ``server/config/areas.toml``)."""
    path = DEFAULT_AREAS_PATH if path is None else path
    return _Reader(str(path)).areas(read_toml(path, AreasError))


class _Reader(TomlReader):
    """Turns parsed TOML into Areas, naming the key of the first problem it finds."""

    error_class = AreasError

    def slug(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not _SLUG.match(value):
            raise self.error(key, f"expected a short slug of a-z, 0-9, '-' and '_', got {value!r}")
        return value

    def names(self, value: object, key: str, languages: tuple[str, ...]) -> dict[str, str]:
        table = self.table(value, key)
        for lang, name in table.items():
            if not isinstance(name, str) or not name.strip():
                raise self.error(f"{key}.{lang}", "expected a non-empty name")
        for lang in languages:
            if lang not in table:
                raise self.error(f"{key}.{lang}", f"missing; a name is needed in {lang!r}")
        return {lang: name.strip() for lang, name in table.items()}

    def areas(self, data: dict[str, Any]) -> Areas:
        self.known(data, "", {"municipality", "stations"})
        muni = self.table(self.required(data, "", "municipality"), "municipality")
        self.known(muni, "municipality", {"code", "names", "languages"})

        code = self.required(muni, "municipality", "code")
        if not isinstance(code, str) or not _MUNICIPALITY_CODE.match(code):
            raise self.error(
                "municipality.code", f"expected three digits as a string, got {code!r}"
            )

        languages = self.required(muni, "municipality", "languages")
        if (
            not isinstance(languages, list)
            or not languages
            or not all(isinstance(lang, str) and _SLUG.match(lang) for lang in languages)
        ):
            raise self.error("municipality.languages", "expected a list of language codes")
        langs = tuple(languages)

        muni_names = self.names(
            self.required(muni, "municipality", "names"), "municipality.names", langs
        )

        raw_stations = self.required(data, "", "stations")
        if not isinstance(raw_stations, list) or not raw_stations:
            raise self.error("stations", "expected [[stations]] entries")
        stations: list[Station] = []
        station_ids: dict[str, str] = {}
        owners: dict[str, str] = {}
        for index, raw in enumerate(raw_stations):
            key = f"stations[{index}]"
            table = self.table(raw, key)
            self.known(table, key, {"id", "team", "names", "postal_codes"})
            station_id = self.slug(self.required(table, key, "id"), f"{key}.id")
            if station_id in station_ids:
                raise self.error(
                    f"{key}.id", f"{station_id!r} is already the id of {station_ids[station_id]}"
                )
            station_ids[station_id] = key
            key = f"stations[{index}] ({station_id})"
            team = self.slug(self.required(table, key, "team"), f"{key}.team")
            names = self.names(self.required(table, key, "names"), f"{key}.names", langs)
            raw_codes = self.required(table, key, "postal_codes")
            if not isinstance(raw_codes, list) or not raw_codes:
                raise self.error(f"{key}.postal_codes", "expected a list of postal codes")
            for code_value in raw_codes:
                if not isinstance(code_value, str) or not _POSTAL_CODE.match(code_value):
                    raise self.error(
                        f"{key}.postal_codes",
                        f"a postal code is five digits in quotes, got {code_value!r}",
                    )
                if code_value in owners:
                    raise self.error(
                        f"{key}.postal_codes",
                        f"postal code {code_value} is already in station {owners[code_value]!r}",
                    )
                owners[code_value] = station_id
            stations.append(Station(station_id, names, team, tuple(raw_codes)))

        return Areas(
            municipality=muni_names[langs[0]],
            municipality_code=code,
            municipality_names=muni_names,
            languages=langs,
            stations=tuple(stations),
        )
