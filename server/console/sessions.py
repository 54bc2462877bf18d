"""Which professional a session token belongs to: the console's cookie, or the token a script
or a bot got from ``POST /api/login``. Only the token's hash is stored."""

from __future__ import annotations

from protocol import ErrorCode
from server.core.clock import Clock
from server.core.errors import HubError
from server.core.ids import hash_token
from server.core.model import Professional
from server.hub.hub import Hub
from server.storage.base import Store

__all__ = ["professional_for_session"]


async def professional_for_session(
    hub: Hub, storage: Store, clock: Clock, token: str
) -> Professional:
    """The signed-in professional; raises ``auth_failed`` or ``session_expired``."""
    session = await storage.session(hash_token(token))
    if session is None:
        raise HubError(ErrorCode.AUTH_FAILED, "unknown session: sign in again")
    pro_id, expires_at = session
    if expires_at <= clock.now_ms():
        raise HubError(ErrorCode.SESSION_EXPIRED, "the session has expired: sign in again")
    pro = hub.professional(pro_id)
    if pro is None:
        raise HubError(ErrorCode.AUTH_FAILED, "this account no longer exists")
    return pro
