"""Teams, professionals and their login sessions: who may work in the console.

Small tables that change seldom, apart from the sessions; kept apart from the chats so that
each module of the store holds one concern.
"""

from __future__ import annotations

from server.core.model import AssignMode, Professional, Team
from server.storage.sqlite.writer import Statement, WriterStore


class AccountsStore(WriterStore):
    """Teams, professionals, sessions."""

    async def save_team(self, team: Team) -> None:
        await self._execute(
            [
                (
                    "INSERT INTO teams (id, name, assign_mode) VALUES (?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                    "assign_mode = excluded.assign_mode",
                    (team.id, team.name, team.assign_mode.value),
                )
            ]
        )

    async def teams(self) -> list[Team]:
        rows = await self._read("SELECT id, name, assign_mode FROM teams ORDER BY id")
        return [Team(r[0], r[1], AssignMode(r[2])) for r in rows]

    async def save_professional(self, pro: Professional) -> None:
        statements: list[Statement] = [
            (
                "INSERT INTO professionals (id, username, display_name, title, password_hash, "
                "capacity, bot, role, oidc_subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET "
                "username = excluded.username, display_name = excluded.display_name, "
                "title = excluded.title, password_hash = excluded.password_hash, "
                "capacity = excluded.capacity, bot = excluded.bot, role = excluded.role, "
                "oidc_subject = excluded.oidc_subject",
                (
                    pro.id,
                    pro.username,
                    pro.display_name,
                    pro.title,
                    pro.password_hash,
                    pro.capacity,
                    int(pro.bot),
                    pro.role,
                    pro.oidc_subject,
                ),
            ),
            ("DELETE FROM professional_teams WHERE professional_id = ?", (pro.id,)),
        ]
        statements += [
            ("INSERT INTO professional_teams (professional_id, team_id) VALUES (?, ?)", (pro.id, t))
            for t in pro.teams
        ]
        await self._execute(statements)

    async def set_password_hash(self, professional_id: str, password_hash: str) -> None:
        await self._execute(
            [
                (
                    "UPDATE professionals SET password_hash = ? WHERE id = ?",
                    (password_hash, professional_id),
                )
            ]
        )

    async def professionals(self) -> list[Professional]:
        rows = await self._read(
            "SELECT p.id, p.username, p.display_name, p.title, p.capacity, p.password_hash, "
            "GROUP_CONCAT(t.team_id), p.bot, p.role, p.oidc_subject FROM professionals p "
            "LEFT JOIN professional_teams t ON t.professional_id = p.id "
            "GROUP BY p.id ORDER BY p.id"
        )
        return [
            Professional(
                id=r[0],
                username=r[1],
                display_name=r[2],
                title=r[3],
                capacity=r[4],
                password_hash=r[5],
                teams=tuple(sorted(r[6].split(","))) if r[6] else (),
                bot=bool(r[7]),
                role=r[8],
                oidc_subject=r[9],
            )
            for r in rows
        ]

    async def create_session(self, token_hash: str, professional_id: str, expires_at: int) -> None:
        await self._execute(
            [
                (
                    "INSERT INTO sessions (token_hash, professional_id, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?)",
                    (token_hash, professional_id, self.clock.now_ms(), expires_at),
                )
            ]
        )

    async def session(self, token_hash: str) -> tuple[str, int] | None:
        """``(professional_id, expires_at)`` of a session, or None."""
        rows = await self._read(
            "SELECT professional_id, expires_at FROM sessions WHERE token_hash = ?", (token_hash,)
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def delete_session(self, token_hash: str) -> None:
        await self._execute([("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))])
