"""Load accounts in a Kanava database: teams ``load-0..K-1``, professionals ``load-pro-1..M``.

Professional ``i`` works in team ``load-((i-1) % K)``, where K is the number of load generator
processes: each process simulates one team, its clients and its professionals. A pick-mode
team ``load-wait`` that nobody works in holds the queued conversations of idle clients.

The password is hashed once (Argon2 is slow on purpose) and the hash reused for every account.
When the load tool starts its own server it also creates a session per account here, so no
time is spent on sign-ins; against a server given with ``--url`` the professionals sign in
with ``POST /api/login``.

Seed a server's database *before* starting it: the server loads accounts at start-up.
"""

from __future__ import annotations

import time
from pathlib import Path

from server.console.auth import hash_password
from server.core.ids import hash_token, new_token
from server.core.model import AssignMode, Professional, Team
from server.storage.sqlite.store import Storage

from .config import WAIT_TEAM, pro_username, team_of_pro, team_of_worker

__all__ = ["seed_database"]


async def seed_database(
    path: Path,
    *,
    pros: int,
    procs: int,
    capacity: int,
    password: str,
    assign: str = "auto",
    sessions: bool = False,
    session_hours: float = 12.0,
) -> dict[str, str]:
    """Create (or update) the load teams and accounts; returns username → session token.

    Sessions are created only when ``sessions`` is true (else the dictionary is empty).
    """
    mode = AssignMode.AUTO if assign == "auto" else AssignMode.PICK
    storage = await Storage.open(path)
    tokens: dict[str, str] = {}
    try:
        for k in range(procs):
            await storage.save_team(Team(team_of_worker(k), f"Load team {k}", mode))
        await storage.save_team(Team(WAIT_TEAM, "Load waiting room", AssignMode.PICK))
        password_hash = hash_password(password)
        expires_at = int(time.time() * 1000 + session_hours * 3_600_000)
        for i in range(1, pros + 1):
            username = pro_username(i)
            pro = Professional(
                id=f"p_load_{i}",
                username=username,
                display_name=f"Load Professional {i}",
                title="nurse",
                capacity=capacity,
                teams=(team_of_pro(i, procs),),
                password_hash=password_hash,
            )
            await storage.save_professional(pro)
            if sessions:
                token = new_token()
                await storage.create_session(hash_token(token), pro.id, expires_at)
                tokens[username] = token
    finally:
        await storage.close()
    return tokens
