"""Time, injected: the hub and storage ask a :class:`Clock`, so tests can set the time."""

from __future__ import annotations

import time

from aiohttp import web

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock:
    def now_ms(self) -> int:
        """Wall-clock time in milliseconds since the epoch (timestamps users see)."""
        raise NotImplementedError

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (timeouts, rates)."""
        raise NotImplementedError


class SystemClock(Clock):
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock(Clock):
    """A clock that moves only when told to."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._ms = start_ms
        self._mono = 1000.0

    def now_ms(self) -> int:
        return self._ms

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._ms += int(seconds * 1000)
        self._mono += seconds


# The clock of a running application (``app[CLOCK]``); tests give a ManualClock.
CLOCK = web.AppKey("clock", Clock)
