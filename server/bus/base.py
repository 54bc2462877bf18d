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

from protocol import JSON, OUTBOUND, Codec, Message

__all__ = ["Bus", "Envelope", "Subscriber"]


class Envelope:
    """An event on its way to subscribers, with its encodings cached by codec.

    An envelope can cross a process boundary: :meth:`to_bytes` and :meth:`from_bytes` carry
    its message in the protocol's own JSON encoding, so a bus between processes (Redis)
    sends exactly what a client would receive.
    """

    __slots__ = ("_encoded", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self._encoded: dict[str, bytes] = {}

    def encoded(self, codec: Codec) -> bytes:
        data = self._encoded.get(codec.subprotocol)
        if data is None:
            data = self._encoded[codec.subprotocol] = codec.encode(self.message)
        return data

    def to_bytes(self) -> bytes:
        return self.encoded(JSON)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """The envelope :meth:`to_bytes` made (raises ProtocolError for anything else)."""
        envelope = cls(JSON.decode(data, registry=OUTBOUND))
        envelope._encoded[JSON.subprotocol] = data
        return envelope


class Subscriber(Protocol):
    """Whoever receives a topic's events: a connection, the bot. Named by ``subscriber_id``
    (unique in its process), so that a bus, a remote one too, can leave one out."""

    @property
    def subscriber_id(self) -> str: ...

    def deliver(self, envelope: Envelope) -> None:
        """Take an event; must not block (queue it)."""


class Bus(Protocol):
    def subscribe(self, topic: str, subscriber: Subscriber) -> None: ...

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None: ...

    def publish(
        self, topics: tuple[str, ...], envelope: Envelope, exclude: str | None = None
    ) -> int:
        """Deliver to every subscriber of any of ``topics`` once, except the one whose
        ``subscriber_id`` is ``exclude``; returns how many got it here."""
        ...

    def subscriber_count(self, topic: str) -> int: ...
