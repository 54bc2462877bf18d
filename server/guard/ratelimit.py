"""Rate limits: a token bucket per connection, and the slowing of failed sign-ins.

Sign-in never locks an account: others' failures must not keep a nurse out. Instead
:class:`SignInThrottle` counts failures per (username, client address) pair and holds each
further attempt of that pair for a growing delay before its password is checked; a correct
password then signs in. Attempts of one pair wait their turn one after another, so parallel
requests do not multiply the guessing rate. A browser with a device cookie of the username
(``server.console.device``) is exempt from the pair: its attempts are counted, and take turns,
per device cookie. :class:`FairGate` bounds the password checks (Argon2, a CPU core each)
running at once, serves the waiting ones in turn per address (or device cookie) and refuses
an address that already has too many waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

__all__ = [
    "FailureCounts",
    "FairGate",
    "GateFull",
    "PairBusy",
    "SignInThrottle",
    "TokenBucket",
    "backoff",
]


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


class FailureCounts:
    """Recent failures per key, forgotten ``window`` seconds after the key's last failure.

    Keys are kept in the order of their last failure, so the expired ones are dropped from the
    front without scanning the table; beyond ``max_keys`` the key that failed longest ago is
    dropped first. Time is passed in (monotonic seconds).
    """

    def __init__(self, window: float, max_keys: int) -> None:
        self.window = window
        self.max_keys = max_keys
        self._keys: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def count(self, key: Hashable, now: float) -> int:
        self._expire(now)
        entry = self._keys.get(key)
        return entry[0] if entry is not None else 0

    def failed(self, key: Hashable, now: float) -> None:
        self._expire(now)
        count, _ = self._keys.pop(key, (0, now))
        self._keys[key] = (count + 1, now)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def clear(self, key: Hashable) -> None:
        self._keys.pop(key, None)

    def _expire(self, now: float) -> None:
        keys = self._keys
        while keys:
            oldest = next(iter(keys.values()))
            if oldest[1] > now - self.window:
                return
            keys.popitem(last=False)


def backoff(failures: int, free: int, first: float, cap: float) -> float:
    """0 for the first ``free`` failures, then ``first`` doubling with each one, at most ``cap``."""
    if failures < free or first <= 0:
        return 0.0
    return min(cap, first * 2.0 ** min(failures - free, 32))


class PairBusy(Exception):
    """Too many attempts of one (username, address) pair, or of one device cookie, are
    waiting at once."""


class GateFull(Exception):
    """Too many password checks of one key (an address) are waiting in the :class:`FairGate`."""


class _Line:
    """The attempts of one pair (or device cookie): one at a time, in order of arrival."""

    __slots__ = ("lock", "present")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.present = 0  # waiting, and the one being checked


class SignInThrottle:
    """How long a sign-in attempt waits before its password is checked.

    - Failures of a (username, address) pair: the first ``free`` cost nothing, then each
      further attempt of the pair waits ``delay`` seconds, doubling per failure, at most
      ``max_delay``. A success clears the pair.
    - Failures of the username from every address, and of the address for every username:
      past ten times ``free`` they add a small delay, at most ``shared_max_delay``.
    - Nothing here refuses an attempt for its failures: it waits, and its password decides.
    - An attempt with a device cookie of its username waits for nothing of the above while the
      cookie is :meth:`trusted` (fewer than ``free`` failures of its own, at least one allowed,
      in the window); it takes its turn per device cookie (:meth:`device_turn`), not per pair.
      Its failures count for the pair, the username and the address too; its success clears
      only its own count, as the pair's failures may be someone else's at that address.

    Usernames enter the tables hashed (a fixed 16 bytes, whatever length was sent), and each
    table holds at most ``max_keys`` keys, so memory stays bounded under any flood.
    """

    SHARED_FACTOR = 10
    MAX_PRESENT = 3  # attempts of one pair at once: one person typing a password has one

    def __init__(
        self,
        free: int,
        delay: float,
        max_delay: float,
        shared_max_delay: float,
        window: float,
        max_keys: int = 100_000,
    ) -> None:
        self.free = free
        self.delay = delay
        self.max_delay = max_delay
        self.shared_max_delay = shared_max_delay
        self.pairs = FailureCounts(window, max_keys)
        self.users = FailureCounts(window, max_keys)
        self.addresses = FailureCounts(window, max_keys)
        self.devices = FailureCounts(window, max_keys)
        self._lines: dict[Hashable, _Line] = {}

    @staticmethod
    def _user(username: str) -> bytes:
        return hashlib.blake2b(username.encode("utf-8"), digest_size=16).digest()

    def wait(self, username: str, address: str, now: float) -> float:
        """Seconds the next attempt of this pair waits before its password is checked."""
        user = self._user(username)
        own = backoff(self.pairs.count((user, address), now), self.free, self.delay, self.max_delay)
        shared = max(self.users.count(user, now), self.addresses.count(address, now))
        others = backoff(shared, self.free * self.SHARED_FACTOR, self.delay, self.shared_max_delay)
        return max(own, others)

    def trusted(self, device: str, now: float) -> bool:
        """Whether the device cookie ``device`` (its id) still exempts its attempts."""
        return self.devices.count(device, now) < max(1, self.free)

    def failed(self, username: str, address: str, now: float, device: str | None = None) -> None:
        user = self._user(username)
        self.pairs.failed((user, address), now)
        self.users.failed(user, now)
        self.addresses.failed(address, now)
        if device is not None:
            self.devices.failed(device, now)

    def succeeded(self, username: str, address: str) -> None:
        """A correct password without a device cookie's exemption: clears the pair."""
        self.pairs.clear((self._user(username), address))

    def device_succeeded(self, device: str) -> None:
        self.devices.clear(device)

    def turn(self, username: str, address: str) -> AbstractAsyncContextManager[None]:
        """Wait for the pair's earlier attempts to finish; raises :class:`PairBusy` when
        ``MAX_PRESENT`` of them are already there."""
        return self._turn((self._user(username), address))

    def device_turn(self, device: str) -> AbstractAsyncContextManager[None]:
        """The same per device cookie: only the browser that holds it can fill its line."""
        return self._turn(("device", device))

    @asynccontextmanager
    async def _turn(self, key: Hashable) -> AsyncIterator[None]:
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line()
        if line.present >= self.MAX_PRESENT:
            raise PairBusy
        line.present += 1
        try:
            async with line.lock:
                yield
        finally:
            line.present -= 1
            if not line.present:
                del self._lines[key]


class FairGate:
    """At most ``limit`` holders at once; the waiting ones are served in turn per key.

    A flood from one address queues behind itself: each other address waiting gets the next
    free place before that address gets its second one. A key that already has
    ``max_waiting_per_key`` waiting (0: no cap) is refused with :class:`GateFull`.
    """

    def __init__(self, limit: int, max_waiting_per_key: int = 0) -> None:
        self.limit = max(1, limit)
        self.max_waiting_per_key = max(0, max_waiting_per_key)
        self.active = 0
        self._waiting: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    def waiting(self, key: Hashable) -> int:
        return len(self._waiting.get(key, ()))

    @asynccontextmanager
    async def place(self, key: Hashable) -> AsyncIterator[None]:
        if self.active < self.limit and not self._waiting:
            self.active += 1
        else:
            if 0 < self.max_waiting_per_key <= self.waiting(key):
                raise GateFull
            future = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, deque()).append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # given a place just as it was cancelled
                else:
                    self._leave(key, future)  # no longer counts as waiting
                raise
        try:
            yield
        finally:
            self._release()

    def _leave(self, key: Hashable, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._waiting[key]

    def _release(self) -> None:
        self.active -= 1
        while self.active < self.limit and self._waiting:
            key, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            if queue:
                self._waiting.move_to_end(key)
            else:
                del self._waiting[key]
            if not future.done():  # a cancelled waiter is skipped
                self.active += 1
                future.set_result(None)
