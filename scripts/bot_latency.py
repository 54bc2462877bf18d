#!/usr/bin/env python3
"""How long a resident waits for the advice bot's answer, end to end, on a real server.

Starts ``kanava serve`` on a free loopback port (a fresh SQLite file, the built-in bot with
the shipped knowledge base), opens a bot chat per language over a real websocket, sends every
question of the evaluation set one at a time and times each from ``message.send`` to the
bot's ``message.new``: decoding, storing the question, the bot's understanding, storing and
sending its answer. Prints the median, p95 and max, and the same for the bot's own thinking
(``compose`` with today's hours, measured in-process on the same questions).

    scripts/bot_latency.py            # every question of tests/bot_eval/questions.tsv
    scripts/bot_latency.py --rounds 3 # each question three times
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from bot_eval import EVAL_SET, read_set  # noqa: E402
from loadtest_lib.servers import start_kanava  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from protocol import JSON  # noqa: E402
from protocol.messages import BotStart, MessageNew, MessageSend  # noqa: E402
from server.bot.knowledge import load_knowledge  # noqa: E402
from server.bot.responder import compose  # noqa: E402
from server.bot.today import Today  # noqa: E402
from server.core.texts import HELSINKI  # noqa: E402
from server.intake.hours import load_hours  # noqa: E402


def summary(values_ms: list[float]) -> str:
    ordered = sorted(values_ms)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (
        f"median {statistics.median(ordered):.2f} ms, p95 {p95:.2f} ms, "
        f"max {ordered[-1]:.2f} ms (n={len(ordered)})"
    )


async def ask_all(ws_base: str, questions: list[tuple[str, str, str]], rounds: int) -> list[float]:
    times: list[float] = []
    for lang in ("fi", "sv", "en"):
        mine = [text for q_lang, _, text in questions if q_lang == lang]
        async with connect(
            ws_base + "/ws/client", subprotocols=[JSON.subprotocol], origin=None
        ) as ws:
            await ws.send(JSON.encode(BotStart(language=lang)), text=True)
            cid = ""
            while True:  # opened, assigned, the greeting
                msg = JSON.decode_outbound(await ws.recv())
                if type(msg).__name__ == "ConversationOpened":
                    cid = msg.conversation.conversation_id  # type: ignore[attr-defined]
                if isinstance(msg, MessageNew):
                    break
            for _ in range(rounds):
                for text in mine:
                    t0 = time.perf_counter()
                    await ws.send(
                        JSON.encode(MessageSend(cid, uuid.uuid4().hex[:16], text)), text=True
                    )
                    while True:
                        msg = JSON.decode_outbound(await ws.recv())
                        if isinstance(msg, MessageNew) and msg.message.sender_role != "client":
                            break
                    times.append((time.perf_counter() - t0) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bot_latency.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--set", type=Path, default=EVAL_SET, help="the questions (TSV)")
    parser.add_argument("--rounds", type=int, default=1, help="times each question is asked")
    args = parser.parse_args(argv)
    questions = read_set(args.set)
    kb = load_knowledge()
    hours = load_hours()
    thinking = []
    for lang, _, text in questions * args.rounds:
        t0 = time.perf_counter()
        # As the server does: the hours at this moment, computed for every answer.
        compose(kb, text, lang, Today(hours, datetime.now(HELSINKI), handoff=True))
        thinking.append((time.perf_counter() - t0) * 1000)
    with tempfile.TemporaryDirectory(prefix="kanava-bot-") as tmp:
        server = start_kanava(
            Path(tmp) / "kanava.sqlite3",
            log=Path(tmp) / "server.log",
            raise_rate_limits=True,
            env={"KANAVA_ALLOW_MISSING_ORIGIN": "true"},
        )
        try:
            times = asyncio.run(ask_all(server.ws_base, questions, args.rounds))
        finally:
            server.stop()
    print(f"bot answer, end to end over a websocket: {summary(times)}")
    print(f"bot thinking (compose) alone:            {summary(thinking)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
