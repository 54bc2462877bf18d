"""Going through the intake as a citizen would, in tests: benign answers to every question,
the station and the review, and identification at the real development provider with the
one-time code redeemed over the intake's own websocket."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import aiohttp
from idp import login
from kanava_testing import Chat, ClientPeer, KanavaServer

from protocol import Codec
from protocol.messages import (
    ConversationOpened,
    IntakeAnswer,
    IntakeConfirm,
    IntakeIdentify,
    IntakeStart,
    IntakeStation,
    IntakeStep,
)

__all__ = [
    "BENIGN",
    "after_identifying",
    "answer_all",
    "benign",
    "browser_identifies",
    "identification_result",
    "identified_intake",
    "identify_as",
    "queue_through_intake",
    "send_reviewed",
]

# Benign answers to the shipped questionnaires, by question id; others get a default by kind.
BENIGN: dict[str, Any] = {
    "red_flags": ["none"],
    "own_age": 40,  # who may chat, asked when nobody is identified: an adult of Helsinki
    "home_municipality": True,
    "age": 40,
    "temperature": 37.6,
    "duration_days": 2,
    "fever_days": 1,
}


def benign(detail: dict[str, Any], **overrides: Any) -> Any:
    qid = detail["id"]
    if qid in overrides:
        return overrides[qid]
    if qid in BENIGN:
        return BENIGN[qid]
    kind = detail["kind"]
    if kind == "single":
        return detail["options"][0]["id"]
    if kind == "multi":
        ids = [o["id"] for o in detail["options"]]
        return ["none"] if "none" in ids else [ids[0]]
    if kind == "yes_no":
        return False
    if kind == "number":
        return detail["min"]
    return None if not detail.get("required", True) else "ei muuta"


async def answer_all(client: ClientPeer, step: IntakeStep, **overrides: Any) -> IntakeStep:
    """Answer questions until the intake asks something else; returns that step."""
    while step.step == "question":
        assert isinstance(step.detail, dict)
        await client.send(IntakeAnswer(step.detail["id"], benign(step.detail, **overrides)))
        step = await client.expect(IntakeStep)
    return step


async def send_reviewed(
    client: ClientPeer, step: IntakeStep, station: str | None = "kallio"
) -> IntakeStep | ConversationOpened:
    """From the station step or the review: choose ``station`` when asked, confirm the review;
    the chat that opens (or the step that came instead)."""
    if step.step == "station" and station is not None:
        await client.send(IntakeStation(station))
        step = await client.expect(IntakeStep)
    if step.step != "review":
        return step
    await client.send(IntakeConfirm())
    return await client.expect(ConversationOpened)


async def queue_through_intake(
    client: ClientPeer, step: IntakeStep, station: str | None = "kallio", **overrides: Any
) -> IntakeStep | ConversationOpened:
    """Every question answered benignly, the station chosen, the review confirmed."""
    return await send_reviewed(client, await answer_all(client, step, **overrides), station)


async def identify_as(server: KanavaServer, step: IntakeStep, person: str) -> str:
    """Open the identify step's URL as the resident's browser would, log in as ``person``,
    and return the one-time code the callback page hands to the chat page that opened it."""
    assert isinstance(step.detail, dict)
    jar = aiohttp.CookieJar(unsafe=True)  # the binding cookie of a loopback server
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        return await browser_identifies(browser, server, step.detail["url"], person)


async def browser_identifies(
    browser: aiohttp.ClientSession, server: KanavaServer, link: str, person: str
) -> str:
    """``browser`` opens ``link`` and logs in as ``person``; the code its page received ("" if
    none), after checking the page's status."""
    async with browser.get(server.base + link, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        provider_url = resp.headers["Location"]
    redirect = f"{server.base}/identity/callback"
    query = await login(provider_url, redirect, person=person)
    async with browser.get(redirect, params=query) as resp:
        page = await resp.text()
        result = identification_result(page)
        assert resp.status == (200 if result["ok"] else 400), page
    return str(result["code"] or "")


def identification_result(page: str) -> dict[str, Any]:
    """What the callback page would post to its opener."""
    match = re.search(r'<meta name="kanava-identification" content="([^"]*)">', page)
    assert match, page
    result: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return result


async def identified_intake(
    server: KanavaServer, codec: Codec, person: str, station: str = "kallio"
) -> tuple[Chat, ClientPeer, IntakeStep | ConversationOpened]:
    """Red flags, identification as ``person``, then (if let on) the rest, the review and
    the queue: the chat opened, or the step that ended the intake instead."""
    desk = Chat(server, codec)
    client = await desk.raw_client()
    await client.send(IntakeStart("other", "fi"))
    step = await answer_all(client, await client.expect(IntakeStep))
    assert step.step == "identify"
    code = await identify_as(server, step, person)
    await client.send(IntakeIdentify(code))
    return desk, client, await after_identifying(client, station)


async def after_identifying(
    client: ClientPeer, station: str = "kallio"
) -> IntakeStep | ConversationOpened:
    """After ``intake.identify``: the step that follows, and (when the person may go on) the
    rest of the questions, the station and the review up to the chat that opens."""
    nxt = await client.expect(IntakeStep, lambda m: m.step != "identify")
    # The identify step came again with a fresh link when the link was opened: superseded.
    client.drop_unread(lambda m: isinstance(m, IntakeStep) and m.step == "identify")
    if nxt.step not in ("question", "station", "review"):
        return nxt
    return await queue_through_intake(client, nxt, station)
