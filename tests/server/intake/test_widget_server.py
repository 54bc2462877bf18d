"""The widget's server side: the pages' security headers and framing, the service state a
citizen sees before typing, and feedback stored for reporting."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from kanava_testing import Chat, KanavaServer, closed_hours_file

from protocol.messages import ConversationClose, FeedbackSaved, FeedbackSend

HELSINKI = ZoneInfo("Europe/Helsinki")


async def get(server: KanavaServer, path: str) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, session.get(server.base + path) as resp:
        body = await (resp.json() if resp.content_type == "application/json" else resp.text())
        return resp.status, resp.headers, body


# --- framing and the pages' policy --------------------------------------------------------


async def test_only_configured_host_pages_may_frame_the_chat(server_factory: Any) -> None:
    server = server_factory(widget_origins=("https://www.hel.example",))
    status, headers, page = await get(server, "/client")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://www.hel.example" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Frame-Options" not in headers  # it cannot name the host page; CSP does
    # The chat page tells its widget bridge which framing pages it may talk to.
    assert '<meta name="kanava-widget-origins"' in page and "https://www.hel.example" in page


async def test_the_console_and_other_pages_are_never_framed(server: KanavaServer) -> None:
    for path in ("/pro", "/demo", "/"):
        status, headers, _ = await get(server, path)
        assert status == 200, path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Frame-Options"] == "DENY", path


async def test_without_configured_hosts_only_the_server_itself_frames_the_chat(
    server: KanavaServer,
) -> None:
    _, headers, _ = await get(server, "/client")
    assert headers["Content-Security-Policy"].endswith("frame-ancestors 'self'")


# --- the state of the service -------------------------------------------------------------


def hours_closing_in(folder: Path, minutes: int) -> Path:
    """Hours under which the chat opened an hour ago and closes ``minutes`` from now, every day
    (eves and holidays included, so the date of the run does not matter)."""
    now = datetime.now(HELSINKI)
    if not 2 <= now.hour < 21:
        pytest.skip("the hours would cross midnight")
    opens = (now - timedelta(hours=1)).strftime("%H:%M")
    closes = (now + timedelta(minutes=minutes)).strftime("%H:%M")
    window = f'{{ opens = "{opens}", closes = "{closes}" }}'
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    text = (
        'timezone = "Europe/Helsinki"\nlast_intake_minutes = 30\noffer_bot = true\n\n'
        "[weekly]\n"
        + "".join(f"{d} = {window}\n" for d in days)
        + f'\n[eve]\nopens = "{opens}"\ncloses = "{closes}"\n'
    )
    path = folder / f"hours-{minutes}.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_the_service_state_says_open_or_closing_soon(
    server_factory: Any, tmp_path: Path
) -> None:
    """Three hours before closing: open; 45 minutes before (15 before new chats stop): soon."""
    server: KanavaServer = server_factory(hours_file=hours_closing_in(tmp_path, 180))
    _, _, body = await get(server, "/api/service?lang=fi")
    assert (body["state"], body["accepting"], body["queue_length"]) == ("open", True, 0)
    chat = Chat(server)
    try:
        await chat.open_client("Odottaja", team="kallio")
        _, _, body = await get(server, "/api/service?lang=fi&team=kallio")
        assert body["queue_length"] == 1
        _, _, body = await get(server, "/api/service?lang=fi&team=vuosaari")
        assert body["queue_length"] == 0
        # A station's widget names the station: it counts its team's queue.
        _, _, body = await get(server, "/api/service?lang=fi&team=kalasatama")
        assert body["queue_length"] == 1
    finally:
        await chat.close_all()
    soon: KanavaServer = server_factory(hours_file=hours_closing_in(tmp_path, 45))
    _, _, body = await get(soon, "/api/service?lang=sv")
    assert (body["state"], body["accepting"]) == ("closing_soon", True)
    last = datetime.now(HELSINKI) + timedelta(minutes=15)
    # The file was written a moment ago: the minute may have turned since.
    assert body["last_intake_at"] in {
        (last - timedelta(minutes=m)).strftime("%H:%M") for m in (0, 1)
    }


async def test_the_service_state_when_closed(server_factory: Any, tmp_path: Path) -> None:
    server: KanavaServer = server_factory(hours_file=closed_hours_file(tmp_path))
    _, _, body = await get(server, "/api/service?lang=en")
    assert (body["state"], body["accepting"], body["last_intake_at"]) == ("closed", False, None)
    assert body["closed"]


async def test_the_start_says_who_the_nurse_chat_is_for_in_three_languages(
    server_factory: Any,
) -> None:
    """From the configuration: adults living in the areas' municipality; without an identity
    provider, asked right after the red flags; and where everyone else turns."""
    server: KanavaServer = server_factory(intake_required=True, always_open=True)
    expected = {
        "fi": ("18 vuotta täyttäneille, joiden kotikunta on Helsinki", "kouluterveydenhoitaja"),
        "sv": ("fyllt 18 år och bor i Helsingfors", "skolhälsovårdaren"),
        "en": ("aged 18 or over who live in Helsinki", "school nurse"),
    }
    for lang, (who, young) in expected.items():
        _, _, body = await get(server, f"/api/service?lang={lang}")
        audience = body["audience"]
        assert body["identification"] is False and audience["adult_age"] == 18
        assert who in audience["text"], audience
        assert any(young in line for line in audience["others"]), audience
    assert (
        "ikäsi ja kotikuntasi" in (await get(server, "/api/service?lang=fi"))[2]["audience"]["text"]
    )


# --- feedback -----------------------------------------------------------------------------


async def test_feedback_after_the_chat_is_stored_for_reporting(chat: Chat) -> None:
    client, pro = await chat.open_chat_with("hoitaja1", "Aino")
    await pro.send(ConversationClose(client.conversation_id, "resolved"))
    await client.send(FeedbackSend(rating=5, comment="Nopea ja ystävällinen apu."))
    saved = await client.expect(FeedbackSaved)
    assert saved.conversation_id == client.conversation_id
    # Given again (changed mind): the newer one counts.
    await client.send(FeedbackSend(rating=4))
    await client.expect(FeedbackSaved)
    rows = await chat.server.acall(lambda: chat.server.storage.feedback())
    assert [(r["conversation_id"], r["rating"], r["comment"]) for r in rows] == [
        (client.conversation_id, 4, None)
    ]
    assert rows[0]["team_id"] == "kallio"


async def test_feedback_that_says_nothing_or_rates_out_of_range_is_refused(chat: Chat) -> None:
    client = await chat.open_client("Aino")
    for bad in (FeedbackSend(), FeedbackSend(rating=6), FeedbackSend(rating=0)):
        await client.send(bad)
        err = await client.expect_error("invalid_field")
        assert err.ref == "feedback.send"
    await client.send(FeedbackSend(comment="x" * 1001))
    await client.expect_error("text_too_long")
    assert await chat.server.acall(lambda: chat.server.storage.feedback()) == []


async def test_a_professional_cannot_send_client_feedback(chat: Chat) -> None:
    pro = await chat.open_pro("hoitaja1")
    await pro.send_wire({"type": "feedback.send", "rating": 1})
    await pro.expect_error("role_forbidden")


async def test_the_feedback_report_summarises_ratings_per_team(server_factory: Any) -> None:
    """``kanava feedback-report`` reads the same database an operator's server writes."""
    import json
    import subprocess
    import sys

    server: KanavaServer = server_factory()
    chat = Chat(server)
    try:
        for rating, comment in ((5, "Hyvä"), (3, None), (None, "Jonotin pitkään")):
            client = await chat.open_client("Asiakas", team="kallio")
            await client.send(FeedbackSend(rating=rating, comment=comment))
            await client.expect(FeedbackSaved)
    finally:
        await chat.close_all()
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "feedback-report", "--database", str(server.database)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["answers"], report["rated"], report["average"]) == (3, 2, 4.0)
    assert report["ratings"] == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
    assert report["teams"]["kallio"]["answers"] == 3
    assert sorted(report["comments"]) == ["Hyvä", "Jonotin pitkään"]


async def test_the_documented_service_answer_has_every_field_the_server_sends(
    server_factory: Any,
) -> None:
    """docs/protocol.md's example of GET /api/service has exactly the fields a real server
    answers with, and the table names each of them: a client written from the document knows
    about every one."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "protocol.md").read_text("utf-8")
    example = re.search(
        r"A `GET /api/service\?lang=en` at night:\s*```json\n(.*?)\n```", text, re.S
    )
    assert example, "protocol.md has no example of GET /api/service"
    documented = json.loads(example.group(1))
    server: KanavaServer = server_factory()
    _, _, body = await get(server, "/api/service?lang=en")
    assert set(documented) == set(body)
    row = next(line for line in text.splitlines() if line.startswith("| `GET /api/service"))
    missing = [key for key in body if f"`{key}`" not in row]
    assert not missing, f"the table row of GET /api/service does not name {missing}"
