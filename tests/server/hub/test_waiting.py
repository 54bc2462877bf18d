"""A waiting client always knows its place and its wait, over real websockets: from its first
message on, after a reconnect, back in a queue after a transfer; the wait arrives as soon as
it can be estimated, and goes when nobody is left to answer."""

from __future__ import annotations

from typing import Any

from kanava_testing import Chat, ClientPeer

from protocol import JSON
from protocol.messages import (
    ConversationStateChanged,
    ConversationTransfer,
    ConversationView,
    QueueTake,
)


def wait(view: ConversationView) -> tuple[int | None, int | None]:
    return view.wait_min_minutes, view.wait_max_minutes


async def queued(client: ClientPeer, **where: Any) -> ConversationView:
    """The next queued view the client is sent (matching ``where``'s fields)."""
    message = await client.expect(
        ConversationStateChanged,
        lambda m: (
            m.conversation.state == "queued"
            and all(getattr(m.conversation, k) == v for k, v in where.items())
        ),
    )
    return message.conversation


async def test_the_place_and_the_wait_from_the_first_message_to_a_transfer(chat: Chat) -> None:
    # Nobody of Kallio online: the place, and no estimate (the page says it cannot be made).
    client = await chat.open_client("Liisa Laine", team="kallio")
    assert client.view.queue_position == 1
    assert wait(client.view) == (None, None)
    # A nurse signs in: the client hears its wait, though its place did not change.
    nurse = await chat.open_pro("hoitaja1")
    view = await queued(client, queue_position=1)
    low, high = wait(view)
    assert low is not None and high is not None and low < high
    # A reload: the first thing the resumed page hears is its place and its wait.
    await client.close()
    again = await chat.resume_client(client.token)
    resumed = (await again.expect(ConversationStateChanged)).conversation
    assert (resumed.state, resumed.queue_position, wait(resumed)) == ("queued", 1, (low, high))
    # Taken, then sent to Vuosaari's queue, where nobody is online: the place, why, no wait.
    await nurse.send(QueueTake(conversation_id=client.conversation_id))
    await again.expect(ConversationStateChanged, lambda m: m.conversation.state == "assigned")
    await nurse.send(ConversationTransfer(client.conversation_id, to_team="vuosaari"))
    moved = await queued(again, team="vuosaari")
    assert (moved.reason, moved.queue_position, wait(moved)) == ("transferred", 1, (None, None))


async def test_the_wait_goes_when_the_last_nurse_has_been_away_a_grace_period(
    server_factory: Any,
) -> None:
    server = server_factory(grace_seconds=0.6, client_rate_burst=1000, pro_rate_burst=1000)
    chat = Chat(server, JSON)
    try:
        nurse = await chat.open_pro("hoitaja1")
        client = await chat.open_client("Liisa Laine", team="kallio")
        assert client.view.queue_position == 1 and wait(client.view)[0] is not None
        # A reload of the console (gone less than the grace period) changes nothing.
        await nurse.close()
        await chat.open_pro("hoitaja1")
        await client.nothing_more(0.8, ConversationStateChanged)
        # Gone for good: once the grace period is over, the wait cannot be estimated.
        for peer in chat.peers:
            if peer is not client:
                await peer.close()
        view = await queued(client, wait_min_minutes=None)
        assert (view.queue_position, wait(view)) == (1, (None, None))
    finally:
        await chat.close_all()
