"""A professional's unsent text of each chat, kept on the server so that it survives a reload
and follows them to another computer (``draft.set``; read back in ``welcome``)."""

from __future__ import annotations

from server.core.clock import Clock
from server.hub.hub import Actor, Hub
from server.storage.base import Store

__all__ = ["set_draft"]


async def set_draft(
    hub: Hub, storage: Store, clock: Clock, actor: Actor, conversation_id: str, text: str
) -> None:
    """Keep ``text`` for ``actor``'s conversation (only one assigned to them)."""
    conv = hub.assigned(actor, conversation_id)
    await storage.set_draft(conv.id, actor.id, text, clock.now_ms())
