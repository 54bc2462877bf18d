"""Canned responses: ready texts a professional sends with one click, per team.

The responses are data (``server/config/canned.toml``) that a health station's staff edit by
hand, so loading checks everything that would otherwise show up mid-chat: an unknown key, a
missing language, a placeholder the console cannot fill, a stray brace, a repeated id. Each
error names the file and the entry (``canned.toml: response[3] ("greeting").text.sv: …``).

Texts hold placeholders (``{first_name}``, ``{my_name}``, …) that :func:`fill` replaces with
plain substitution: the values are names typed by people, so ``str.format`` and its format
specs never see them.

Errors::

    ValueError
    └── ConfigError      (server.core.config_files) a data file cannot be used
        └── CannedError  bad canned responses: names the file, the entry and the problem
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from server.core.config_files import SHIPPED, ConfigError, TomlReader, read_toml
from server.core.texts import LANGUAGES

__all__ = [
    "DEFAULT_CANNED_PATH",
    "LANGUAGES",
    "PLACEHOLDERS",
    "CannedError",
    "CannedResponse",
    "canned_for",
    "fill",
    "load_canned",
]

DEFAULT_CANNED_PATH = SHIPPED / "canned.toml"

PLACEHOLDERS = frozenset({"first_name", "client_name", "my_name", "my_title", "station"})
EVERY_TEAM = "*"

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_BRACED = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(sorted(PLACEHOLDERS)) + r")\}")
_MAX_TEXT = 2000

# fill() marks a left-out value with this character, then tidies the text around each mark.
_GAP = "\x00"
_EMPTY_BRACKETS = re.compile(r"[ \t]*\([ \t]*\x00+[ \t]*\)")
_COMMA_BEFORE_PUNCTUATION = re.compile(r",[ \t]*\x00+[ \t]*(?=[,.!?;:])")
_BEFORE_PUNCTUATION = re.compile(r"[ \t]*\x00+[ \t]*(?=[,.!?;:)]|$)", re.MULTILINE)
_LINE_START = re.compile(r"^[ \t]*\x00+[ \t]*", re.MULTILINE)
_BETWEEN = re.compile(r"([ \t]*)\x00+([ \t]*)")


class CannedError(ConfigError):
    """The canned responses cannot be used; ``source`` and ``key`` say where the problem is."""

    default_source = "<canned>"


@dataclass(frozen=True, slots=True)
class CannedResponse:
    id: str
    teams: tuple[str, ...]  # ("*",) for every team
    title: Mapping[str, str]  # language -> title
    text: Mapping[str, str]  # language -> text with placeholders

    def for_teams(self, teams: Iterable[str]) -> bool:
        return EVERY_TEAM in self.teams or not set(self.teams).isdisjoint(teams)


def load_canned(path: Path | None = None) -> tuple[CannedResponse, ...]:
    """The responses of a file, in file order; None reads the shipped one."""
    path = DEFAULT_CANNED_PATH if path is None else path
    data = read_toml(path, CannedError)
    return _Reader(str(path)).responses(data)


def canned_for(responses: Iterable[CannedResponse], teams: Iterable[str]) -> list[dict[str, Any]]:
    """JSON-ready responses for a professional of ``teams``: their teams' and every team's."""
    teams = set(teams)
    return [
        {
            "id": response.id,
            "teams": list(response.teams),
            "title": {lang: response.title[lang] for lang in LANGUAGES},
            "text": {lang: response.text[lang] for lang in LANGUAGES},
        }
        for response in responses
        if response.for_teams(teams)
    ]


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with its placeholders replaced; unknown braces are left as they are.

    A placeholder without a value is left out together with what would dangle: the space
    before a comma, an empty pair of brackets, a doubled space.
    """
    text = text.replace(_GAP, "")

    def value(match: re.Match[str]) -> str:
        given = values.get(match.group(1), "")
        # One line, no control characters: a value must not break the text it goes into.
        cleaned = " ".join("".join(c for c in given if c.isprintable() or c.isspace()).split())
        return cleaned or _GAP

    filled = _PLACEHOLDER.sub(value, text)
    if _GAP not in filled:
        return filled
    filled = _EMPTY_BRACKETS.sub(_GAP, filled)
    filled = _COMMA_BEFORE_PUNCTUATION.sub("", filled)
    filled = _BEFORE_PUNCTUATION.sub("", filled)
    filled = _LINE_START.sub("", filled)
    return _BETWEEN.sub(lambda m: " " if m.group(1) or m.group(2) else "", filled)


class _Reader(TomlReader):
    error_class = CannedError

    def responses(self, data: Mapping[str, Any]) -> tuple[CannedResponse, ...]:
        self.known(data, "", {"response"})
        entries = data.get("response", [])
        if not isinstance(entries, list):
            raise self.error("response", "expected [[response]] entries")
        seen: dict[str, str] = {}
        responses: list[CannedResponse] = []
        for index, entry in enumerate(entries):
            response = self.response(entry, f"response[{index}]")
            where = f'response[{index}] ("{response.id}")'
            if response.id in seen:
                raise self.error(
                    where + ".id", f"duplicate id; already used by {seen[response.id]}"
                )
            seen[response.id] = where
            responses.append(response)
        return tuple(responses)

    def response(self, entry: object, key: str) -> CannedResponse:
        table = self.table(entry, key)
        raw_id = self.required(table, key, "id")
        if not isinstance(raw_id, str) or not _SLUG.match(raw_id):
            raise self.error(
                f"{key}.id", f"expected a short slug (a-z, 0-9, '-', '_'), got {raw_id!r}"
            )
        key = f'{key} ("{raw_id}")'
        self.known(table, key, {"id", "teams", "title", "text"})
        return CannedResponse(
            id=raw_id,
            teams=self.teams(self.required(table, key, "teams"), f"{key}.teams"),
            title=self.languages(self.required(table, key, "title"), f"{key}.title", False),
            text=self.languages(self.required(table, key, "text"), f"{key}.text", True),
        )

    def teams(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(key, f'expected a list of team ids or ["*"], got {value!r}')
        for team in value:
            if team != EVERY_TEAM and not (isinstance(team, str) and _SLUG.match(team)):
                raise self.error(key, f'expected team ids or "*", got {team!r}')
        if EVERY_TEAM in value and len(value) > 1:
            raise self.error(key, '"*" already means every team; list it alone')
        if len(set(value)) != len(value):
            raise self.error(key, "a team is listed twice")
        return tuple(value)

    def languages(self, value: object, key: str, placeholders: bool) -> Mapping[str, str]:
        table = self.table(value, key)
        self.known(table, key, set(LANGUAGES))
        missing = [lang for lang in LANGUAGES if lang not in table]
        if missing:
            raise self.error(key, f"missing language(s): {', '.join(missing)}")
        texts: dict[str, str] = {}
        for lang in LANGUAGES:
            text = table[lang]
            where = f"{key}.{lang}"
            if not isinstance(text, str) or not text.strip():
                raise self.error(where, f"expected a non-empty text, got {text!r}")
            if len(text) > _MAX_TEXT:
                raise self.error(where, f"too long: {len(text)} characters, at most {_MAX_TEXT}")
            if any(not (c.isprintable() or c == "\n") for c in text):
                raise self.error(where, "contains a control character")
            if placeholders:
                self.check_placeholders(text, where)
            elif "{" in text or "}" in text:
                raise self.error(where, "a title cannot hold placeholders or braces")
            texts[lang] = text.strip()
        return MappingProxyType(texts)

    def check_placeholders(self, text: str, key: str) -> None:
        for match in _BRACED.finditer(text):
            if match.group(1) not in PLACEHOLDERS:
                raise self.error(
                    key,
                    f"unknown placeholder {match.group(0)!r}; "
                    f"expected one of {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}",
                )
        stray = _BRACED.sub("", text)
        if "{" in stray or "}" in stray:
            raise self.error(key, "a brace that is not part of a placeholder")
