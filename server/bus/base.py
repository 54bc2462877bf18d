"""Fan-out between connections: a small publish/subscribe interface.

The hub never holds websocket objects. It publishes each event to *topics* and whoever
subscribed gets it:

- ``conv:<id>``  every client connection of that conversation (a citizen may have two tabs);
- ``pro:<id>``   every connection of that professional;
- ``team:<id>``  every professional connection of that team (queue snapshots).

The hub decides the recipients of a conversation event itself, at publish time, from the
current assignment: a professional gets a conversation's events on their own ``pro:`` topic
only while it is theirs. Transport details stay out of the hub, so a Redis-backed bus can
replace :class:`server.bus.local.LocalBus` to spread connections over several processes.

Each event is wrapped in one :class:`Envelope` that caches its encoding per codec: a message
sent to many receivers is encoded once per codec, not once per receiver.
"""

from __future__ import annotations

from typing import Protocol

from protocol import Codec, Message

__all__ = ["Bus", "Envelope", "Subscriber"]


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
