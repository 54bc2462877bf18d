"""The bus of one process: subscribers in a dictionary, delivery by a direct call."""

from __future__ import annotations

import logging
from collections.abc import Callable

from server.bus.base import Envelope, Subscriber

__all__ = ["LocalBus"]

log = logging.getLogger("kanava.bus")


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
        self, topics: tuple[str, ...], envelope: Envelope, exclude: str | None = None
    ) -> int:
        seen: set[Subscriber] = set()
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
                if exclude is not None and subscriber.subscriber_id == exclude:
                    continue
                try:
                    subscriber.deliver(envelope)
                    delivered += 1
                except Exception as exc:  # one broken receiver must not stop the others
                    log.exception(
                        "subscriber %s failed to take a %s: the others still get it",
                        subscriber.subscriber_id,
                        envelope.message.type,
                    )
                    if self._on_error is not None:
                        self._on_error(subscriber, exc)
        return delivered
