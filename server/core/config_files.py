"""Reading Kanava's TOML data files with errors that name the file and the key.

The service hours and the health-station areas are files a city's IT team edits by hand, so
a mistake must say exactly where it is (``hours.toml: weekly.monday.opens: expected …``).
Each file kind subclasses :class:`ConfigError` and :class:`TomlReader` and adds its own
checks; the reading, the error format and the common checks live here once.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["SHIPPED", "ConfigError", "TomlReader", "read_toml"]

#: The configuration Kanava ships (``server/config``): questionnaires, areas, hours, canned
#: responses, the bot's knowledge base. Each setting that names a file or folder overrides one.
SHIPPED = Path(__file__).resolve().parent.parent / "config"


class ConfigError(ValueError):
    """A data file cannot be used; ``source`` and ``key`` say where the problem is."""

    default_source: ClassVar[str] = "<config>"

    def __init__(self, reason: str, *, source: str | None = None, key: str = "") -> None:
        source = self.default_source if source is None else source
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


def read_toml(path: Path, error: type[ConfigError]) -> dict[str, Any]:
    """The parsed file; unreadable or invalid TOML raises ``error`` naming the file."""
    source = str(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"not valid TOML: {exc}", source=source) from None


class TomlReader:
    """Checks on parsed TOML that name the key of the first problem found."""

    error_class: ClassVar[type[ConfigError]] = ConfigError

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, reason: str) -> ConfigError:
        return self.error_class(reason, source=self.source, key=key)

    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {value!r}")
        return value

    def known(self, table: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            prefix = f"{key}." if key else ""
            raise self.error(prefix + unknown[0], f"unknown key; expected one of {sorted(allowed)}")

    def required(self, table: Mapping[str, Any], key: str, name: str) -> Any:
        if name not in table:
            raise self.error(f"{key}.{name}" if key else name, "missing")
        return table[name]
