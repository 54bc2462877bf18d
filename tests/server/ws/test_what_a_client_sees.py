"""What a client's own connection is told of its chat, over real websockets: its own name and
station once identified, never the identity document; the outcome of the end as a code only;
never anything of another client's chat; and no words of a professional's as the outcome."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_testing import Browser
from idp import provider_for_kanava
from intake_testing import identified_intake
from kanava_testing import Chat, ClientPeer, KanavaServer, ProPeer

from protocol import JSON, to_wire
from protocol.messages import (
    ConversationClose,
    ConversationOpened,
    ConversationStateChanged,
    Identified,
    MessageNew,
    QueueTake,
)


@pytest.fixture
def identifying_server(server_factory: Any, tmp_path: Path) -> Iterator[KanavaServer]:
    """The intake with identification at the real development provider."""
    with provider_for_kanava(tmp_path, "kanava-client-view") as (port, identification):
        server: KanavaServer = server_factory(
            port=port,
            intake_required=True,
            always_open=True,
            client_rate_burst=1000,
            pro_rate_burst=1000,
            **identification,
        )
        yield server


def frames(peer: ClientPeer) -> str:
    """Everything ``peer`` was sent, as one JSON text."""
    return "\n".join(json.dumps(to_wire(m), ensure_ascii=False) for m in peer.received)


def closed(peer: ClientPeer | ProPeer, cid: str) -> Any:
    return peer.expect(
        ConversationStateChanged,
        lambda m: m.conversation.conversation_id == cid and m.conversation.state == "closed",
    )


async def test_each_client_hears_only_its_own_name_station_and_outcome(
    identifying_server: KanavaServer,
) -> None:
    """Aino (routed by her address) and Matti (no address: he chooses Kalasatama) wait in
    the same queue and talk with the same nurse. Each is told their own name and station;
    Aino's chat ends with the record entry's outcome, Matti's with the nurse's own words.
    Neither ever receives the other's name, station or outcome, nor any identity code."""
    server = identifying_server
    desk, aino, opened = await identified_intake(server, JSON, "aino")
    his_desk, matti, his_opened = await identified_intake(server, JSON, "matti", "kalasatama")
    nurse_page = Browser(server)
    try:
        assert isinstance(opened, ConversationOpened)
        assert isinstance(his_opened, ConversationOpened)
        his = his_opened.conversation
        hers = opened.conversation
        assert hers.identified == Identified("Aino Testinen", "kallio", "Kallion terveysasema")
        assert his.identified == Identified(
            "Matti Ulkomaalainen", "kalasatama", "Kalasataman terveysasema"
        )

        nurse = await desk.open_pro("hoitaja1")
        for cid in (hers.conversation_id, his.conversation_id):
            await nurse.send(QueueTake(conversation_id=cid))
            taken = await nurse.expect(
                ConversationStateChanged, lambda m, cid=cid: m.conversation.conversation_id == cid
            )
            # The nurse reads the identity document, the code masked; the client does not.
            assert isinstance(taken.conversation.identity, dict)
            assert taken.conversation.identity["masked_code"].endswith("****")
            assert taken.conversation.identified is None
        for client in (aino, matti):
            assigned = await client.expect(
                ConversationStateChanged, lambda m: m.conversation.state == "assigned"
            )
            assert assigned.conversation.identity is None
            assert assigned.conversation.identified is not None

        # Aino's chat ends with the record entry, outcome "Appointment booked".
        await nurse_page.sign_in("hoitaja1")
        path = f"/api/conversations/{hers.conversation_id}/record"
        status, body = await nurse_page.get(path)
        assert status == 200, body
        entry = {**body["draft"], "outcome": "booked_appointment", "close": True}
        entry["advice"] = "Vastaanotto torstaina klo 10 Kalliossa. Salainen merkintä."
        status, body = await nurse_page.post(path, entry)
        assert status == 200, body
        her_end = (await closed(aino, hers.conversation_id)).conversation
        assert (her_end.outcome, her_end.reason) == ("booked_appointment", "booked_appointment")
        # Matti's with the nurse's own words: no outcome, and not those words either.
        words = "Soita numeroon 0700 123 456"
        await nurse.send(ConversationClose(his.conversation_id, reason=words))
        his_end = (await closed(matti, his.conversation_id)).conversation
        assert (his_end.outcome, his_end.reason) == (None, "closed_by_professional")
        assert (await closed(nurse, his.conversation_id)).conversation.reason == words

        await aino.nothing_more(0.3)
        await matti.nothing_more(0.3)
        sent_to_aino, sent_to_matti = frames(aino), frames(matti)
        for secret in ("Matti", "Ulkomaalainen", "kalasatama", his.conversation_id, words):
            assert secret not in sent_to_aino, secret
        for secret in ("Aino", "Testinen", "booked_appointment", hers.conversation_id, words):
            assert secret not in sent_to_matti, secret
        for sent in (sent_to_aino, sent_to_matti):
            for secret in (
                "masked_code",
                "fingerprint",
                "150385",
                "300690",
                '"intake"',
                "Salainen",
            ):
                assert secret not in sent, secret
        # The only identity a client reads is its own name, in the intake's review.
        for sent, name in ((sent_to_aino, "Aino Testinen"), (sent_to_matti, "Matti Ulkomaalainen")):
            shown = set(re.findall(r'"identity": (\{[^}]*\})', sent))
            assert shown <= {json.dumps({"name": name})}, shown
    finally:
        await nurse_page.close()
        await desk.close_all()
        await his_desk.close_all()


async def test_a_professional_cannot_give_the_client_an_outcome_of_their_own(chat: Chat) -> None:
    """The record entry takes only the outcome codes: anything else is refused and the chat
    goes on; a client cannot claim an outcome by its own reason either."""
    client, nurse = await chat.open_chat_with("hoitaja1", "Liisa Laine")
    cid = client.conversation_id
    page = Browser(chat.server)
    try:
        await page.sign_in("hoitaja1")
        status, body = await page.get(f"/api/conversations/{cid}/record")
        draft = body["draft"]
        for outcome in ("<b>Tule heti päivystykseen</b>", "RESOLVED", "", 7):
            status, body = await page.post(
                f"/api/conversations/{cid}/record", {**draft, "outcome": outcome, "close": True}
            )
            assert status == 400 and body["error"]["code"] == "invalid_field", body
        await client.say("Olenko vielä jonossa?")  # the chat goes on
        assert (await nurse.expect(MessageNew)).message.text == "Olenko vielä jonossa?"
        states = [m for m in client.received if isinstance(m, ConversationStateChanged)]
        assert [m.conversation.state for m in states] == ["assigned"]
    finally:
        await page.close()

    other = await chat.open_client("Kalle Kokeilija")
    await other.send(ConversationClose(other.conversation_id, reason="booked_appointment"))
    own = (await closed(other, other.conversation_id)).conversation
    assert own.closed_by == "client" and own.outcome is None


async def test_the_outcome_is_told_again_after_a_reload_and_a_restart(
    chat: Chat, server: KanavaServer
) -> None:
    """The outcome is kept with the chat: a client resuming its closed chat (a reload, the
    next day within closed_token_hours, after a restart) is told it again."""
    client, nurse = await chat.open_chat_with("hoitaja1", "Liisa Laine")
    cid = client.conversation_id
    await nurse.send(ConversationClose(cid, reason="referred"))
    assert (await closed(client, cid)).conversation.outcome == "referred"
    server.restart()
    again = await chat.resume_client(client.token)
    view = (await again.expect(ConversationStateChanged)).conversation
    assert (view.state, view.outcome, view.reason) == ("closed", "referred", "referred")
