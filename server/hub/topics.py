"""The names of the bus's topics: the only place that spells them.

- ``conv:<id>``  every client connection of that conversation (a citizen may have two tabs);
- ``pro:<id>``   every connection of that professional;
- ``team:<id>``  every professional connection of that team (queue snapshots).
"""

from __future__ import annotations

__all__ = ["conversation_topic", "professional_topic", "team_topic"]


def conversation_topic(conversation_id: str) -> str:
    return "conv:" + conversation_id


def professional_topic(professional_id: str) -> str:
    return "pro:" + professional_id


def team_topic(team_id: str) -> str:
    return "team:" + team_id
