"""The bus contract: envelopes that cross a process boundary unchanged, subscribers named by
id (so a bus can leave one out without holding it), and a failing subscriber logged while the
others still receive."""

from __future__ import annotations

import logging

import pytest

from protocol import JSON, MSGPACK, ProtocolError
from protocol.messages import (
    ChatMessage,
    ConversationStateChanged,
    ConversationView,
    Error,
    MessageNew,
    QueueEntry,
    QueueSnapshot,
    Typing,
)
from server.bus.base import Envelope
from server.bus.local import LocalBus


class Keeper:
    def __init__(self, name: str) -> None:
        self.subscriber_id = name
        self.got: list[str] = []

    def deliver(self, envelope: Envelope) -> None:
        self.got.append(envelope.message.type)


class Broken(Keeper):
    def deliver(self, envelope: Envelope) -> None:
        raise RuntimeError("this receiver is broken")


MESSAGES = [
    MessageNew(ChatMessage("c_1", 3, "m-3", "client", "Åsa", "Hej! 🌡️ 39,2 °C", 1_767_225_600_123)),
    Typing(conversation_id="c_1", role="professional", typing=True),
    QueueSnapshot(
        team="kallio",
        entries=(QueueEntry("c_2", 1, 1_767_225_600_000, "Matti", "Kuume", "fi", "urgent"),),
        length=1,
    ),
    Error(code="rate_limited", reason="slow down", ref="m-4", retry_after_ms=200),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_an_envelope_crosses_a_process_boundary_unchanged(message: object) -> None:
    envelope = Envelope(message)  # type: ignore[arg-type]
    again = Envelope.from_bytes(envelope.to_bytes())
    assert again.message == message
    assert again.encoded(JSON) == envelope.encoded(JSON)
    assert again.encoded(MSGPACK) == envelope.encoded(MSGPACK)


def test_bytes_that_are_no_envelope_are_refused() -> None:
    with pytest.raises(ProtocolError):
        Envelope.from_bytes(b'{"type": "message.send", "conversation_id": "c_1"}')


def test_one_subscriber_is_left_out_by_its_id_and_each_gets_an_event_once() -> None:
    bus = LocalBus()
    a, b = Keeper("a"), Keeper("b")
    for topic in ("conv:c_1", "pro:p_1"):
        bus.subscribe(topic, a)
        bus.subscribe(topic, b)
    event = Envelope(Typing(conversation_id="c_1", role="client", typing=True))
    assert bus.publish(("conv:c_1", "pro:p_1"), event, exclude="a") == 1
    assert (a.got, b.got) == ([], ["typing"])


def test_a_failing_subscriber_is_logged_and_the_others_still_receive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = LocalBus()
    broken, fine = Broken("broken-1"), Keeper("fine")
    bus.subscribe("conv:c_1", broken)
    bus.subscribe("conv:c_1", fine)
    with caplog.at_level(logging.ERROR, logger="kanava.bus"):
        delivered = bus.publish(
            ("conv:c_1",), Envelope(Typing(conversation_id="c_1", role="client", typing=False))
        )
    assert delivered == 1 and fine.got == ["typing"]
    (record,) = [r for r in caplog.records if "broken-1" in r.getMessage()]
    assert record.exc_info is not None and "this receiver is broken" in str(record.exc_info[1])


def test_a_view_in_an_envelope_keeps_every_field() -> None:
    view = ConversationView(
        conversation_id="c_1", state="queued", team="kallio", created_at=1, last_seq=0
    )
    message = ConversationStateChanged(view)
    assert Envelope.from_bytes(Envelope(message).to_bytes()).message == message
