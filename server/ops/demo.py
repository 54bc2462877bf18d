"""Demo data for ``scripts/serve``: two teams, three professionals and a supervisor.

The passwords are printed by ``kanava serve --demo``; they are for trying Kanava on one's own
machine, never for a real deployment.
"""

from __future__ import annotations

import functools

from server.console.auth import hash_password
from server.core.model import AssignMode, Professional, Team
from server.settings import Settings
from server.storage.sqlite.store import Storage

__all__ = ["DEMO_ACCOUNTS", "DEMO_TEAMS", "seed_demo"]

DEMO_TEAMS = (
    Team("kallio", "Kallio health station", AssignMode.PICK),
    Team("vuosaari", "Vuosaari health station", AssignMode.AUTO),
)

# (id, username, password, name, title, role, teams)
DEMO_ACCOUNTS = (
    ("p_hoitaja1", "hoitaja1", "kanava-demo", "Hanna Hoitaja", "nurse", "nurse", ("kallio",)),
    (
        "p_hoitaja2",
        "hoitaja2",
        "kanava-demo",
        "Ville Virtanen",
        "nurse",
        "nurse",
        ("kallio", "vuosaari"),
    ),
    ("p_laakari1", "laakari1", "kanava-demo", "Laura Lääkäri", "doctor", "doctor", ("vuosaari",)),
    (
        "p_esihenkilo1",
        "esihenkilo1",
        "kanava-demo",
        "Sari Salo",
        "head nurse",
        "supervisor",
        ("kallio", "vuosaari"),
    ),
)
# The demo password's hash, made once per process: Argon2 is slow on purpose.
_demo_hash = functools.cache(hash_password)


async def seed_demo(storage: Storage, settings: Settings) -> None:
    """Create the demo teams and accounts if they are missing (keeps existing data)."""
    for team in DEMO_TEAMS:
        await storage.save_team(team)
    known = {p.id for p in await storage.professionals()}
    for pro_id, username, password, name, title, role, teams in DEMO_ACCOUNTS:
        if pro_id in known:
            continue
        await storage.save_professional(
            Professional(
                id=pro_id,
                username=username,
                display_name=name,
                title=title,
                capacity=settings.default_capacity,
                teams=teams,
                password_hash=_demo_hash(password),
                role=role,
            )
        )
