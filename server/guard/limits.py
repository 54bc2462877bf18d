"""Limits per client address: how fast new things may be started, and how many held at once.

A stranger with one machine must not be able to crowd out real patients: open thousands of
bot chats, queue hundreds of urgent-looking chats, keep thousands of intake sessions or
pending identifications in memory. Each of those is counted per client address (see
:mod:`server.guard.client_address`: the address behind a trusted proxy, IPv6 per /64) and refused
past its limit with a documented error and a retry time. The defaults are sized so that a
school or library network behind one address still works (docs/settings.md).

Two kinds of limit:

- **rates** (:meth:`AddressLimits.take`): a token bucket per (kind, key) — ``burst`` at once,
  then ``per_hour`` spread over the hour. Used for starts of chats, intakes and sign-ins, and
  for messages per conversation.
- **holds** (:meth:`AddressLimits.hold`): how many of a kind one key holds at the same time
  (sockets, intake sessions, pending identifications). The holder releases it.

Pure bookkeeping: time comes in as monotonic seconds, nothing here does I/O. Tables are
bounded: a bucket that has refilled completely is the same as no bucket and is forgotten, and
the least recently used buckets go first when the table is full.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from protocol import ErrorCode
from server.core.errors import HubError
from server.guard.ratelimit import TokenBucket
from server.settings import Settings

__all__ = [
    "LIMITS",
    "NO_ADDRESS_LIMITS",
    "AddressLimits",
    "Hold",
    "LimitError",
    "Rate",
    "check_joining_a_queue",
    "limits_from",
    "no_address_limits_env",
]

#: Buckets remembered at most, per kind; past it the least recently used are dropped (which
#: errs towards letting people in, never towards refusing them).
MAX_KEYS = 100_000


#: How many times the limits of one IPv6 /64 its /48 may use together.
WIDE_FACTOR = 8


def wide_key(key: str) -> str | None:
    """The /48 an IPv6 /64 key belongs to (``2001:db8:1::/48``); None for anything else."""
    if not key.endswith("/64"):
        return None
    try:
        network = ipaddress.IPv6Network(key)
    except ValueError:
        return None
    return str(network.supernet(new_prefix=48))


class LimitError(HubError):
    """A limit per address (or a full table) refused this; try again after ``retry_after``."""

    def __init__(self, code: ErrorCode, reason: str, retry_after: float) -> None:
        super().__init__(code, reason, max(1, math.ceil(retry_after * 1000)))
        self.retry_after = max(0.001, retry_after)


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` at once, refilled at ``per_hour`` an hour; ``per_hour`` 0 means no limit."""

    burst: int
    per_hour: float

    @property
    def unlimited(self) -> bool:
        return self.per_hour <= 0 or self.burst <= 0


class Hold:
    """One held unit of a kind for a key; :meth:`release` is idempotent."""

    __slots__ = ("_limits", "kind", "key", "released")

    def __init__(self, limits: AddressLimits, kind: str, key: str) -> None:
        self._limits = limits
        self.kind = kind
        self.key = key
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._limits._release(self.kind, self.key)


class AddressLimits:
    """The rates and holds of one server, by kind; see the module's docstring."""

    def __init__(
        self,
        rates: dict[str, Rate],
        holds: dict[str, int],
        *,
        reasons: dict[str, str] | None = None,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.rates = dict(rates)
        self.holds = dict(holds)
        self.reasons = dict(reasons or {})
        self.max_keys = max_keys
        self._buckets: dict[str, OrderedDict[str, TokenBucket]] = {k: OrderedDict() for k in rates}
        self._held: dict[str, dict[str, int]] = {k: {} for k in holds}
        self.refused: dict[str, int] = dict.fromkeys([*rates, *holds], 0)

    # --- rates ----------------------------------------------------------------------------

    def wait(self, kind: str, key: str, now: float) -> float:
        """Take one start of ``kind`` for ``key``: 0 if allowed, else seconds to wait.

        An IPv6 /64 also counts towards its /48 (a home or office gets a /56 or a /48, one
        /64 for each of its networks), which may have ``WIDE_FACTOR`` times as many.
        """
        rate = self.rates[kind]
        if rate.unlimited:
            return 0.0
        waits = [self._wait_one(kind, key, rate, now)]
        wide = wide_key(key)
        if wide is not None:
            wide_rate = Rate(rate.burst * WIDE_FACTOR, rate.per_hour * WIDE_FACTOR)
            waits.append(self._wait_one(kind, wide, wide_rate, now))
        wait = max(waits)
        if wait:
            self.refused[kind] += 1
        return wait

    def _wait_one(self, kind: str, key: str, rate: Rate, now: float) -> float:
        buckets = self._buckets[kind]
        bucket = buckets.get(key)
        if bucket is None:
            self._forget_full(buckets, rate, now)
            bucket = buckets[key] = TokenBucket(rate.per_hour / 3600, rate.burst, now)
        else:
            buckets.move_to_end(key)
        return bucket.take(now)

    def take(self, kind: str, key: str, now: float) -> None:
        """As :meth:`wait`, raising :class:`LimitError` (``rate_limited``) when refused."""
        wait = self.wait(kind, key, now)
        if wait:
            raise LimitError(ErrorCode.RATE_LIMITED, self._reason(kind), wait)

    def _forget_full(self, buckets: OrderedDict[str, TokenBucket], rate: Rate, now: float) -> None:
        # Least recently used first: a bucket untouched for burst/rate seconds is full again,
        # the same as a new one, so dropping it changes nothing. Only the head is looked at.
        refill = rate.burst / (rate.per_hour / 3600)
        while buckets:
            key, oldest = next(iter(buckets.items()))
            if now - oldest.updated < refill and len(buckets) < self.max_keys:
                return
            del buckets[key]

    # --- holds ----------------------------------------------------------------------------

    def hold(self, kind: str, key: str) -> Hold:
        """Hold one of ``kind`` for ``key`` (and its /48, see :meth:`wait`), or raise
        ``address_limit`` when it holds enough."""
        limit = self.holds[kind]
        held = self._held[kind]
        wide = wide_key(key)
        if limit > 0 and (
            held.get(key, 0) >= limit
            or (wide is not None and held.get(wide, 0) >= limit * WIDE_FACTOR)
        ):
            self.refused[kind] += 1
            raise LimitError(ErrorCode.ADDRESS_LIMIT, self._reason(kind), 60.0)
        for each in (key, wide):
            if each is not None:
                held[each] = held.get(each, 0) + 1
        return Hold(self, kind, key)

    def held(self, kind: str, key: str) -> int:
        return self._held[kind].get(key, 0)

    def _release(self, kind: str, key: str) -> None:
        held = self._held[kind]
        for each in (key, wide_key(key)):
            if each is None:
                continue
            count = held.get(each, 0) - 1
            if count > 0:
                held[each] = count
            else:
                held.pop(each, None)

    def _reason(self, kind: str) -> str:
        return self.reasons.get(kind, f"too many {kind.replace('_', ' ')}: try again later")


#: Every limit per address turned off: for load tests and test servers, where thousands of
#: simulated people share one loopback address. Never for a service.
NO_ADDRESS_LIMITS: dict[str, int | float] = {
    "max_sockets_per_address": 0,
    "bot_chats_per_hour": 0,
    "queued_chats_per_hour": 0,
    "max_waiting_per_address": 0,
    "intakes_per_hour": 0,
    "max_intakes_per_address": 0,
    "max_identifications_per_address": 0,
    "sign_in_starts_per_hour": 0,
    "client_messages_per_minute": 0,
    "max_sockets_per_conversation": 0,
    "login_checks_waiting_per_address": 0,
}


def no_address_limits_env() -> dict[str, str]:
    """:data:`NO_ADDRESS_LIMITS` as ``KANAVA_*`` variables, for a server started as a process."""
    return {f"KANAVA_{name.upper()}": str(value) for name, value in NO_ADDRESS_LIMITS.items()}


def check_joining_a_queue(
    limits: AddressLimits, address: str, waiting: int, max_waiting: int, now: float
) -> None:
    """Limits per address on chats waiting for people: so many at once (``waiting`` is how
    many of ``address`` wait now), so many an hour. Raises :class:`LimitError`."""
    if max_waiting and waiting >= max_waiting:
        raise LimitError(
            ErrorCode.ADDRESS_LIMIT,
            "too many chats from your network are waiting already: try again later",
            60.0,
        )
    limits.take("queued_chats", address, now)


def limits_from(settings: Settings) -> AddressLimits:
    """The limits a server runs with, from its settings."""
    per_minute = settings.client_messages_per_minute
    return AddressLimits(
        rates={
            "bot_chats": Rate(settings.bot_chats_burst, settings.bot_chats_per_hour),
            "queued_chats": Rate(settings.queued_chats_burst, settings.queued_chats_per_hour),
            "intakes": Rate(settings.intakes_burst, settings.intakes_per_hour),
            "sign_in_starts": Rate(settings.sign_in_starts_burst, settings.sign_in_starts_per_hour),
            "messages": Rate(settings.client_messages_burst, per_minute * 60),
        },
        holds={
            "sockets": settings.max_sockets_per_address,
            "open_intakes": settings.max_intakes_per_address,
            "identifications": settings.max_identifications_per_address,
        },
        reasons={
            "bot_chats": "too many new chats with the bot from your network: try again later",
            "queued_chats": "too many new chats from your network: try again later",
            "intakes": "too many chats started from your network: try again later",
            "sign_in_starts": "too many identifications or sign-ins started from your network: "
            "try again later",
            "messages": "too many messages in this chat: wait a moment and send this again",
            "sockets": "too many connections from your network: try again later",
            "open_intakes": "too many unfinished chat starts from your network: "
            "finish or close one, or try again later",
            "identifications": "too many identifications in progress from your network: "
            "try again in a few minutes",
        },
    )


LIMITS = web.AppKey("limits", AddressLimits)
