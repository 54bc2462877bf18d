"""Rate limits: a token bucket per connection, and failed sign-ins per account and address."""

from __future__ import annotations

from collections import deque

__all__ = ["LoginLimiter", "TokenBucket"]


class TokenBucket:
    """Allows ``rate`` events per second on average and ``burst`` at once.

    Time is passed in (seconds on a monotonic clock), so tests decide what time it is.
    """

    __slots__ = ("burst", "rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    @property
    def updated(self) -> float:
        """When the bucket last took a token or refilled (monotonic seconds)."""
        return self._updated

    def take(self, now: float) -> float:
        """Take one token. Returns 0 if allowed, else the seconds until one is available."""
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate if self.rate > 0 else float("inf")


class LoginLimiter:
    """Failed sign-ins per key (a username, an address) within a sliding window.

    After ``attempts`` failures within ``window`` seconds a key is refused until the oldest
    of them leaves the window; a successful sign-in clears its username. Guessing passwords
    thus costs hours per account, while a nurse who mistypes twice is not locked out. Time is
    passed in (monotonic seconds). Keys are forgotten when their failures expire, so the
    table holds at most the keys that failed within the window.
    """

    def __init__(self, attempts: int, window: float) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now: float) -> float:
        """0 if ``key`` may try now, else the seconds until it may."""
        failures = self._failures.get(key)
        if failures is None:
            return 0.0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0.0
        if len(failures) < self.attempts:
            return 0.0
        return failures[0] + self.window - now

    def failed(self, key: str, now: float) -> None:
        self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
