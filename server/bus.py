"""Fan-out between connections: a small publish/subscribe interface.

The hub never holds websocket objects. It publishes each event to *topics* and whoever
subscribed gets it:

- ``conv:<id>``  every client connection of that conversation (a citizen may have two tabs);
- ``pro:<id>``   every connection of that professional;
- ``team:<id>``  every professional connection of that team (queue snapshots).

The hub decides the recipients of a conversation event itself, at publish time, from the
current assignment: a professional gets a conversation's events on their own ``pro:`` topic
only while it is theirs. Transport details stay out of the hub, so a Redis-backed bus can
replace :class:`LocalBus` to spread connections over several processes.

Each event is wrapped in one :class:`Envelope` that caches its encoding per codec: a message
sent to many receivers is encoded once per codec, not once per receiver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from protocol import Codec, Message

__all__ = ["Bus", "Envelope", "LocalBus", "Subscriber"]


class Envelope:
    """An event on its way to subscribers, with its encodings cached by codec."""

    __slots__ = ("_encoded", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self._encoded: dict[str, bytes] = {}

    def encoded(self, codec: Codec) -> bytes:
        data = self._encoded.get(codec.subprotocol)
        if data is None:
            data = self._encoded[codec.subprotocol] = codec.encode(self.message)
        return data


class Subscriber(Protocol):
    def deliver(self, envelope: Envelope) -> None:
        """Take an event; must not block (queue it)."""


class Bus(Protocol):
    def subscribe(self, topic: str, subscriber: Subscriber) -> None: ...

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None: ...

    def publish(
        self, topics: tuple[str, ...], envelope: Envelope, exclude: Subscriber | None = None
    ) -> int:
        """Deliver to every subscriber of any of ``topics`` once; returns how many got it."""
        ...

    def subscriber_count(self, topic: str) -> int: ...


class LocalBus:
    """The in-process bus: dictionaries of sets, delivery by direct call."""

    def __init__(self, on_error: Callable[[Subscriber, BaseException], None] | None = None) -> None:
        self._topics: dict[str, set[Subscriber]] = {}
        self._on_error = on_error

    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        self._topics.setdefault(topic, set()).add(subscriber)

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        subscribers = self._topics.get(topic)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._topics[topic]

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def publish(
        self, topics: tuple[str, ...], envelope: Envelope, exclude: Subscriber | None = None
    ) -> int:
        seen: set[Subscriber] = set()
        if exclude is not None:
            seen.add(exclude)
        delivered = 0
        for topic in topics:
            subscribers = self._topics.get(topic)
            if not subscribers:
                continue
            # A copy: delivering may disconnect a slow subscriber, which unsubscribes it.
            for subscriber in tuple(subscribers):
                if subscriber in seen:
                    continue
                seen.add(subscriber)
                try:
                    subscriber.deliver(envelope)
                    delivered += 1
                except Exception as exc:  # one broken receiver must not stop the others
                    if self._on_error is not None:
                        self._on_error(subscriber, exc)
        return delivered
