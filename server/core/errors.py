"""Errors the server raises for well-formed messages it refuses, and their wire form.

::

    protocol.KanavaError
    ├── protocol.ProtocolError   bad bytes or message (decoding)
    └── HubError                 valid message, not allowed now (state, access, capacity…)

:func:`error_message` is the one place that turns any of them into the ``error`` message a
connection receives; close codes are chosen in ``server.ws.connection``.
"""

from __future__ import annotations

from protocol import ErrorCode, KanavaError
from protocol.messages import Error

__all__ = ["HubError", "error_message"]


class HubError(KanavaError):
    """A request the hub refuses; the connection stays open.

    ``retry_after_ms`` says when trying again may succeed (limits), else None.
    """

    def __init__(self, code: ErrorCode, reason: str, retry_after_ms: int | None = None) -> None:
        super().__init__(code, reason)
        self.retry_after_ms = retry_after_ms


def error_message(
    exc: KanavaError, ref: str | None = None, retry_after_ms: int | None = None
) -> Error:
    if retry_after_ms is None and isinstance(exc, HubError):
        retry_after_ms = exc.retry_after_ms
    return Error(code=exc.code.value, reason=exc.reason, ref=ref, retry_after_ms=retry_after_ms)


def internal_error(ref: str | None = None) -> Error:
    return Error(
        code=ErrorCode.INTERNAL.value,
        reason="the server could not complete this; nothing was stored, try again",
        ref=ref,
    )
