"""A citizen's rating and comment on their own chat, stored for the service's reporting
(``feedback.send``; ``kanava feedback-report`` sums them up)."""

from __future__ import annotations

from protocol import ErrorCode, Role
from server.core.clock import Clock
from server.core.errors import HubError
from server.hub.hub import Actor, Hub
from server.storage.base import Store

__all__ = ["save_feedback"]


async def save_feedback(
    hub: Hub,
    storage: Store,
    clock: Clock,
    actor: Actor,
    rating: int | None,
    comment: str | None,
) -> str:
    """A client's rating (1–5) and comment on its own chat, open or ended; its id."""
    if actor.role is not Role.CLIENT or actor.conversation_id is None:
        raise HubError(ErrorCode.FORBIDDEN, "only a client gives feedback on its chat")
    if rating is not None and not 1 <= rating <= 5:
        raise HubError(ErrorCode.INVALID_FIELD, "the rating is a whole number from 1 to 5")
    comment = (comment or "").strip() or None
    if rating is None and comment is None:
        raise HubError(ErrorCode.INVALID_FIELD, "give a rating, a comment or both")
    cid = actor.conversation_id
    conv = hub.recent_conversation(cid) or await storage.conversation(cid)
    if conv is None:
        raise HubError(ErrorCode.NO_CONVERSATION, "this conversation no longer exists")
    await storage.save_feedback(cid, clock.now_ms(), rating, comment, conv.team_id, conv.language)
    return cid
