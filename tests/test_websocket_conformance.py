"""WebSocket conformance: the Autobahn TestSuite cases against Kanava's endpoint, by kosoku.

The runs, the excluded cases and the owner of every known failure live in
``scripts/conformance.py`` (which also prints the whole table). Here, against one Kanava server:

- the framing run: every case not excluded, against ``/ws/client`` with Kanava's protocol layer
  swapped for an echo, so that the framing layer is tested exactly as Kanava configures it;
- the client run: the cases that need no echo, against the real ``/ws/client``, while a chat
  goes on, which must go on unharmed (and a new client must still be served) afterwards.

No case may fail except those aiohttp owns (``AIOHTTP_FAILURES``, each with its reason), and
each of those must still fail, so that the list follows aiohttp. Invalid UTF-8 in a text
message must fail the connection with 1007. Both runs take about 15 seconds.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kanava_testing import Chat, KanavaServer, texts

from protocol.messages import MessageNew

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("kosoku") is None, reason="needs kosoku, the conformance runner"
)


def _load_runner() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "scripts" / "conformance.py"
    spec = importlib.util.spec_from_file_location("kanava_conformance", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


conformance = _load_runner()


@dataclass
class Runs:
    all_case_ids: list[str]
    framing: Any  # conformance.Outcome
    client: Any
    # What the chat that was open during the client run said afterwards, both ways, and a
    # client that connected after the run; or why it could not.
    chat_after: list[str] = field(default_factory=list)
    chat_error: str | None = None


async def _chat_after_the_run(chat: Chat, client: Any, pro: Any) -> list[str]:
    await client.say("Kuuluuko vielä?")
    heard = await pro.expect(MessageNew, lambda m: m.message.text == "Kuuluuko vielä?")
    await pro.say(client.conversation_id, "Kuuluu.")
    answer = await client.expect(MessageNew, lambda m: m.message.text == "Kuuluu.")
    newcomer = await chat.open_client("Uusi asiakas")
    ack = await newcomer.say("Hei")
    return [*texts([heard, answer]), f"new client's message {ack.seq}"]


async def _run_both(kanava: KanavaServer) -> Runs:
    framing = await conformance.run_framing(kanava)
    chat = Chat(kanava)
    try:
        client, pro = await chat.open_chat_with("hoitaja1")
        direct = [case.case_id for case in framing if case.needs_no_echo]
        runs = Runs(
            await conformance.all_case_ids(),
            conformance.Outcome("framing", framing),
            conformance.Outcome("client", await conformance.run_client(kanava, direct)),
        )
        try:
            runs.chat_after = await asyncio.wait_for(
                _chat_after_the_run(chat, client, pro), timeout=15
            )
        except Exception as exc:
            runs.chat_error = repr(exc)
        return runs
    finally:
        await chat.close_all()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    with conformance.conformance_server(tmp_path_factory.mktemp("conformance")) as kanava:
        result: Runs = asyncio.run(_run_both(kanava))
        return result


def _table(cases: list[Any], run: str) -> str:
    return "\n".join(conformance.row(case, run) for case in cases)


def test_every_case_but_the_excluded_ones_ran(runs: Runs) -> None:
    def excluded(case_id: str) -> bool:
        return any(fnmatch.fnmatchcase(case_id, pattern) for pattern in conformance.EXCLUDED)

    wanted = [case_id for case_id in runs.all_case_ids if not excluded(case_id)]
    assert [case.case_id for case in runs.framing.cases] == wanted
    assert (len(runs.all_case_ids), len(wanted)) == (517, 260)  # less 216 compression, 41 large
    # The client run: control frames, protocol violations and the close handshake.
    ran = {case.case_id for case in runs.client.cases}
    assert {"2.5", "3.1", "4.1.1", "5.1", "5.9", "6.3.1", "7.3.1", "7.5.1", "7.9.1"} <= ran
    assert len(ran) == 140
    utf8 = [case for case in runs.client.cases if conformance.expects_invalid_utf8_close(case)]
    assert len(utf8) == 75


def test_the_framing_layer_fails_nothing_that_aiohttp_does_not_own(runs: Runs) -> None:
    # The invalid UTF-8 cases count as Kanava's here (decode_text=False leaves them to the
    # protocol layer, which the echo replaces): the client run judges them.
    unexpected = runs.framing.unexpected()
    assert not unexpected, "\n" + _table(unexpected, "framing")


def test_the_client_endpoint_fails_nothing_that_aiohttp_does_not_own(runs: Runs) -> None:
    unexpected = runs.client.unexpected()
    assert not unexpected, "\n" + _table(unexpected, "client")


# Client run cases that the server must fail with 1002 (protocol error): an oversized or
# fragmented control frame, reserved bits, reserved opcodes, continuation frames that continue
# nothing, a close frame of 1 byte or with a reason over 123 bytes, an invalid close code.
PROTOCOL_ERRORS = (
    *("2.5", "3.1", "3.5", "3.6", "3.7", "4.1.1", "4.1.2", "4.2.1", "4.2.2", "5.1", "5.2"),
    *("5.9", "5.10", "5.11", "5.12", "5.13", "5.14", "5.16", "5.17", "5.18", "7.3.2", "7.3.6"),
    *("7.9.1", "7.9.2", "7.9.3", "7.9.4", "7.9.6", "7.9.7", "7.9.8", "7.9.9"),
)


def test_the_client_endpoint_closes_with_the_right_codes(runs: Runs) -> None:
    by_id = {case.case_id: case for case in runs.client.cases}
    codes = {case_id: by_id[case_id].remote_close_code for case_id in PROTOCOL_ERRORS}
    assert codes == dict.fromkeys(PROTOCOL_ERRORS, 1002)
    assert by_id["7.5.1"].remote_close_code == 1007  # a close reason of invalid UTF-8
    # Pings answered, then a normal close: the connection was not failed.
    for case_id in ("2.1", "2.6", "2.10", "2.11", "7.1.2", "7.1.3", "7.3.1", "7.7.13"):
        assert (by_id[case_id].passed, by_id[case_id].remote_close_code) == (True, 1000)


def test_the_server_keeps_serving_others_after_the_run(runs: Runs) -> None:
    assert runs.chat_error is None, runs.chat_error
    assert runs.chat_after == ["Kuuluuko vielä?", "Kuuluu.", "new client's message 1"]


def test_aiohttp_s_known_failures_still_fail(runs: Runs) -> None:
    """An entry aiohttp has fixed must leave ``AIOHTTP_FAILURES``."""
    failed = {case.case_id for case in runs.framing.failures()}
    fixed = sorted(set(conformance.AIOHTTP_FAILURES) - failed)
    assert not fixed, f"aiohttp passes these now: remove them from AIOHTTP_FAILURES: {fixed}"


def test_invalid_utf8_in_a_text_message_fails_the_connection_with_1007(runs: Runs) -> None:
    utf8 = [case for case in runs.client.cases if conformance.expects_invalid_utf8_close(case)]
    failed = [case for case in utf8 if not case.passed]
    assert not failed, f"{len(failed)} of {len(utf8)} fail:\n" + _table(failed, "client")
