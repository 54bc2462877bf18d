"""The schema: the numbered SQL files in ``migrations/``, applied in order when the store opens.

A module of its own because it is no part of the store's daily work: it runs once per start,
on the writer's connection, before the writer's loop begins.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from importlib import resources

from server.storage.sqlite.writer import WriterStore

log = logging.getLogger("kanava.storage")


class MigrationsStore(WriterStore):
    """Applies the migrations and tells the schema's version."""

    async def _migrate(self) -> None:
        assert self._writer is not None
        db = self._writer
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        rows = await db.execute("SELECT MAX(version) FROM schema_version")
        current = rows[0][0] or 0
        for version, name, sql in self.migrations():
            if version <= current:
                continue
            log.info("applying migration %03d %s", version, name)
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                await db.execute("COMMIT")
            except Exception:
                await db.execute("ROLLBACK")
                raise

    @staticmethod
    def migrations() -> list[tuple[int, str, str]]:
        """The numbered SQL files, in order."""
        found = []
        folder = resources.files("server.storage.sqlite") / "migrations"
        for entry in folder.iterdir():
            match = re.fullmatch(r"(\d+)_(\w+)\.sql", entry.name)
            if match:
                found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
        return sorted(found)

    async def schema_version(self) -> int:
        rows = await self._read("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0)


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file; a trigger's body (BEGIN … END) stays whole."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements: list[str] = []
    pending = ""
    for part in "\n".join(lines).split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip().removesuffix(";").strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip().removesuffix(";").strip())
    return statements
