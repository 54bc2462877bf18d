"""A bot's quick replies and actions (protocol.extras): their checks and their wire form."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import JSON, MSGPACK, ErrorCode, ProtocolError, Role
from protocol.extras import (
    MAX_ACTIONS,
    MAX_LABEL_LENGTH,
    MAX_QUICK_REPLIES,
    Action,
    ActionKind,
    BotExtras,
    QuickReply,
)
from protocol.messages import ChatMessage, MessageNew, MessageSend

QUICK_REPLIES = [
    {"id": "prescription", "label": "Reseptin uusiminen"},
    {"id": "hours", "label": "Aukioloajat"},
]
ACTIONS = [
    {
        "kind": "link",
        "label": "Uusi resepti OmaKannassa",
        "value": "https://www.kanta.fi/omakanta",
        "url": "https://www.kanta.fi/omakanta",
    },
    {"kind": "phone", "label": "Hätänumero", "value": "112", "url": "tel:112"},
    {"kind": "handoff", "label": "Siirry hoitajan chattiin", "value": "", "url": ""},
]


def refused(quick_replies: object = None, actions: object = None) -> str:
    """The reason the checks give, with ``invalid_field``, as the sender sees it."""
    with pytest.raises(ProtocolError) as error:
        BotExtras.from_wire(quick_replies, actions)
    assert error.value.code is ErrorCode.INVALID_FIELD
    return error.value.reason


def test_a_valid_message_round_trips_to_the_same_json() -> None:
    extras = BotExtras.from_wire(QUICK_REPLIES, ACTIONS)
    assert extras.quick_replies == (
        QuickReply("prescription", "Reseptin uusiminen"),
        QuickReply("hours", "Aukioloajat"),
    )
    assert extras.actions is not None
    assert [a.kind for a in extras.actions] == [
        ActionKind.LINK,
        ActionKind.PHONE,
        ActionKind.HANDOFF,
    ]
    assert extras.actions[1] == Action(ActionKind.PHONE, "Hätänumero", url="tel:112", value="112")
    assert extras.to_wire() == {"quick_replies": QUICK_REPLIES, "actions": ACTIONS}


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_what_a_bot_sends_arrives_as_it_was_sent(codec: Any) -> None:
    """message.send in, the typed values, and back out in the stored message unchanged."""
    sent = MessageSend("c_1", "b-1", "Hei", quick_replies=QUICK_REPLIES, actions=ACTIONS)
    received = codec.decode_inbound(codec.encode(sent), Role.PROFESSIONAL)
    assert isinstance(received, MessageSend)
    wire = BotExtras.from_wire(received.quick_replies, received.actions).to_wire()
    assert wire == {"quick_replies": QUICK_REPLIES, "actions": ACTIONS}
    stored = ChatMessage("c_1", 1, "b-1", "professional", "Botti", "Hei", 5, **wire)
    delivered = codec.decode_outbound(codec.encode(MessageNew(stored)))
    assert isinstance(delivered, MessageNew)
    assert delivered.message.quick_replies == QUICK_REPLIES
    assert delivered.message.actions == ACTIONS


def test_missing_parts_are_filled_in_as_before() -> None:
    """A quick reply without an id gets an empty one; an action without a value, an empty
    value: every client receives the same keys."""
    extras = BotExtras.from_wire(
        [{"label": "Aukioloajat"}], [{"kind": "phone", "label": "Soita", "url": "tel:112"}]
    )
    assert extras.to_wire() == {
        "quick_replies": [{"id": "", "label": "Aukioloajat"}],
        "actions": [{"kind": "phone", "label": "Soita", "value": "", "url": "tel:112"}],
    }


def test_absent_is_not_empty() -> None:
    assert BotExtras.from_wire(None, None).to_wire() is None
    assert BotExtras().to_wire() is None
    assert BotExtras.from_wire([], None).to_wire() == {"quick_replies": []}


def test_at_most_eight_quick_replies() -> None:
    eight = [{"id": str(i), "label": f"Aihe {i}"} for i in range(MAX_QUICK_REPLIES)]
    assert BotExtras.from_wire(eight, None).quick_replies is not None
    nine = [*eight, {"id": "9", "label": "Aihe 9"}]
    assert refused(quick_replies=nine) == "quick_replies: at most 8"
    assert refused(quick_replies={"id": "a", "label": "A"}) == "quick_replies: at most 8"


def test_at_most_five_actions() -> None:
    link = {"kind": "link", "label": "Linkki", "url": "https://www.hel.fi"}
    assert refused(actions=[link] * (MAX_ACTIONS + 1)) == "actions: at most 5"


@pytest.mark.parametrize("label", ["", "   ", "x" * (MAX_LABEL_LENGTH + 1), None, 5])
def test_a_label_is_1_to_80_characters(label: object) -> None:
    assert refused(quick_replies=[{"id": "a", "label": label}]) == (
        "quick_replies: a label of 1 to 80"
    )
    assert refused(actions=[{"kind": "handoff", "label": label}]) == "actions: a label of 1 to 80"


def test_a_label_of_exactly_80_characters_is_allowed() -> None:
    label = "ä" * MAX_LABEL_LENGTH
    assert BotExtras.from_wire([{"id": "a", "label": label}], None).quick_replies == (
        QuickReply("a", label),
    )


def test_each_entry_is_an_object() -> None:
    assert refused(quick_replies=["Aukioloajat"]) == "quick_replies: each entry is an object"
    assert refused(actions=[["link"]]) == "actions: each entry is an object"


@pytest.mark.parametrize(
    "action",
    [
        {"kind": "link", "label": "x", "url": "javascript:alert(1)"},
        {"kind": "link", "label": "x", "url": "http://www.hel.fi"},
        {"kind": "link", "label": "x", "url": "tel:112"},
        {"kind": "link", "label": "x"},
        {"kind": "phone", "label": "x", "url": "0931010023"},
        {"kind": "phone", "label": "x", "url": "https://www.hel.fi"},
        {"kind": "phone", "label": "x", "url": 112},
        {"kind": "handoff", "label": "x", "url": "https://www.hel.fi"},
        {"kind": "email", "label": "x", "url": "mailto:a@b.fi"},
        {"label": "x", "url": "https://www.hel.fi"},
        {"kind": ["link"], "label": "x", "url": "https://www.hel.fi"},
    ],
)
def test_a_link_is_https_a_phone_tel_and_a_handoff_has_no_url(action: dict[str, Any]) -> None:
    assert refused(actions=[action]) == "actions: a link (https://), a phone (tel:) or a handoff"


def test_a_bad_entry_refuses_the_whole_message() -> None:
    good = {"kind": "phone", "label": "Soita", "url": "tel:112"}
    bad = {"kind": "link", "label": "x", "url": "javascript:alert(1)"}
    assert refused(QUICK_REPLIES, [good, bad]).startswith("actions:")
    assert refused([*QUICK_REPLIES, {"id": "x"}], [good]).startswith("quick_replies:")
