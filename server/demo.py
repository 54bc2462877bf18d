"""Demo data for ``scripts/serve``: two teams and three professional accounts.

The passwords are printed by ``kanava serve --demo``; they are for trying Kanava on one's own
machine, never for a real deployment.
"""

from __future__ import annotations

from .auth import hash_password
from .conversations import AssignMode, Professional, Team
from .settings import Settings
from .storage import Storage

__all__ = ["DEMO_ACCOUNTS", "DEMO_TEAMS", "seed_demo"]

DEMO_TEAMS = (
    Team("kallio", "Kallio health station", AssignMode.PICK),
    Team("vuosaari", "Vuosaari health station", AssignMode.AUTO),
)

# (id, username, password, name, title, teams)
DEMO_ACCOUNTS = (
    ("p_hoitaja1", "hoitaja1", "kanava-demo", "Hanna Hoitaja", "nurse", ("kallio",)),
    ("p_hoitaja2", "hoitaja2", "kanava-demo", "Ville Virtanen", "nurse", ("kallio", "vuosaari")),
    ("p_laakari1", "laakari1", "kanava-demo", "Laura Lääkäri", "doctor", ("vuosaari",)),
)


async def seed_demo(storage: Storage, settings: Settings) -> None:
    """Create the demo teams and accounts if they are missing (keeps existing data)."""
    for team in DEMO_TEAMS:
        await storage.save_team(team)
    known = {p.id for p in await storage.professionals()}
    for pro_id, username, password, name, title, teams in DEMO_ACCOUNTS:
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
                password_hash=hash_password(password),
            )
        )
