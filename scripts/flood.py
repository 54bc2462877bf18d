#!/usr/bin/env python3
"""A stranger with one machine against a real patient: Kanava's one-address flood.

Starts ``kanava serve`` with the shipped limits per address (the intake required, open at any
hour, without identification), a team with one nurse, and then:

1. **Baseline.** Patients, each at an address of its own (127.0.1.x), go through the
   intake, are queued, are taken by the nurse (at 127.0.0.3), and they exchange messages.
   Every step is timed.
2. **Flood.** From 127.0.0.1, all at once and each bounded in count and time: bot chats,
   urgent-looking chats queued through the intake, unfinished intakes, long messages into
   one chat over many sockets resuming it, and sockets held open.
3. **The same patients' journeys during the flood** (from 127.0.2.x), one after another
   while it goes on.

The report gives what the limits refused (by kind and error code), what got through, and the
patient's figures with and without the flood (intake time, queue position, message latency),
with the CPU time of the load generator and of the server. Exit 0 when the patient was
served and nothing of theirs was lost; 1 otherwise.

    scripts/flood.py                      # the full run (about 40 seconds)
    scripts/flood.py --short --json -     # the short form the test suite runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from loadtest_lib.intake import answer, station_of_worker, write_areas_file  # noqa: E402
from loadtest_lib.seeding import seed_database  # noqa: E402
from loadtest_lib.servers import cpu_seconds, start_kanava  # noqa: E402

SUBPROTOCOL = "kanava.v1.json"
STRANGER = "127.0.0.1"
NURSE = "127.0.0.3"
TEAM = station_of_worker(0)
TIMEOUT = 10.0
#: Flood attempts that ended without an answer (the connection closed or timed out).
FAILURES: Counter[str] = Counter()


@dataclass
class Plan:
    """At most so many attempts of each kind, and for at most ``seconds``."""

    bot_chats: int = 5000
    queued_chats: int = 1000
    intakes: int = 5000
    messages: int = 2000
    message_sockets: int = 20
    sockets: int = 2000
    concurrency: int = 20
    patients: int = 10
    patient_messages: int = 10
    seconds: float = 30.0


SHORT = Plan(
    bot_chats=80,
    queued_chats=30,
    intakes=80,
    messages=60,
    message_sockets=6,
    sockets=260,
    concurrency=8,
    patients=3,
    patient_messages=5,
    seconds=4.0,
)


@dataclass
class Tally:
    """What one kind of flood achieved: accepted, and refusals by error code."""

    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def count(self, msg: dict[str, Any]) -> bool:
        """Count an answer: an ``error`` is a refusal by its code; True when accepted."""
        if msg["type"] == "error":
            self.refused[msg["code"]] += 1
            return False
        self.accepted += 1
        return True

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "refused": dict(self.refused)}


class Socket:
    """A JSON websocket of the client protocol, from a chosen loopback address."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, base: str, path: str, address: str) -> Socket:
        ws = await websockets.connect(
            base + path,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            local_addr=(address, 0),
            open_timeout=TIMEOUT,
            max_queue=None,
        )
        return cls(ws)

    async def send(self, **msg: Any) -> None:
        await self.ws.send(json.dumps(msg))

    async def expect(self, *types: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message of one of ``types`` (or an ``error``)."""
        deadline = time.monotonic() + timeout
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
            msg: dict[str, Any] = json.loads(raw)
            if msg["type"] in types or msg["type"] == "error":
                return msg

    async def close(self) -> None:
        await self.ws.close()


async def intake_to_queue(sock: Socket, rng: random.Random, urgent: bool) -> dict[str, Any]:
    """Answer the intake (urgent answers or calm ones), choose the station and confirm the
    review; returns the ``conversation.opened`` or the ``error`` that refused it."""
    await sock.send(type="intake.start", topic="other", language="fi")
    while True:
        msg = await sock.expect("intake.step", "conversation.opened")
        if msg["type"] != "intake.step":
            return msg
        if msg["step"] == "question":
            detail = msg["detail"]
            value = answer(detail, rng)
            if urgent and detail["id"] == "severity":
                value = 10
            if urgent and detail["id"] == "worsening":
                value = True
            await sock.send(type="intake.answer", question_id=detail["id"], value=value)
        elif msg["step"] == "station":
            await sock.send(type="intake.station", station=TEAM)
        elif msg["step"] == "review":
            await sock.send(type="intake.confirm")
        else:
            return msg


# --- the patient and the nurse -------------------------------------------------------------


async def patient_journey(
    base: str, token: str, plan: Plan, label: str, address: str
) -> dict[str, Any]:
    """A real patient at ``address``: intake, queue, taken by the nurse, a conversation.
    All timed."""
    rng = random.Random(7)
    nurse = await Socket.open(base, "/ws/pro", NURSE)
    await nurse.send(type="auth", token=token)
    await nurse.expect("welcome")
    started = time.monotonic()
    patient = await Socket.open(base, "/ws/client", address)
    opened = await intake_to_queue(patient, rng, urgent=False)
    intake_seconds = time.monotonic() - started
    result: dict[str, Any] = {"label": label, "intake_seconds": round(intake_seconds, 3)}
    if opened["type"] != "conversation.opened":
        result["refused"] = opened.get("code")
        await patient.close()
        await nurse.close()
        return result
    view = opened["conversation"]
    cid = view["conversation_id"]
    result["queue_position"] = view.get("queue_position")
    result["queue_length"] = view.get("queue_length")
    await nurse.send(type="queue.take", conversation_id=cid)
    # Queue positions may come first; the chat is the nurse's once the patient hears so.
    while True:
        state = await patient.expect("conversation.state")
        if state["type"] == "error" or state["conversation"]["state"] == "assigned":
            break
    latencies: list[float] = []
    delivered = 0
    for i in range(plan.patient_messages):
        for sender, receiver, who in ((patient, nurse, "p"), (nurse, patient, "n")):
            msg_id = f"{label}-{who}{i}"
            sent = time.monotonic()
            await sender.send(
                type="message.send", conversation_id=cid, msg_id=msg_id, text=f"{who} {i}"
            )
            while True:
                got = await receiver.expect("message.new")
                if got["type"] == "message.new" and got["message"]["msg_id"] == msg_id:
                    break
            latencies.append((time.monotonic() - sent) * 1000)
            delivered += got["message"]["conversation_id"] == cid
    result["messages"] = 2 * plan.patient_messages
    result["delivered_in_own_chat"] = delivered
    result["latency_ms_median"] = round(statistics.median(latencies), 2)
    result["latency_ms_max"] = round(max(latencies), 2)
    await nurse.send(type="conversation.close", conversation_id=cid)
    await patient.close()
    await nurse.close()
    return result


# --- the flood -----------------------------------------------------------------------------


async def bounded(count: int, concurrency: int, deadline: float, one: Any) -> None:
    """Run ``one(i)`` ``count`` times, ``concurrency`` at once, until ``deadline``."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while time.monotonic() < deadline:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await one(i)
            except (OSError, TimeoutError, websockets.ConnectionClosed) as exc:
                # The server dropped or stalled one flooding socket: that is its right.
                FAILURES[type(exc).__name__] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def connect_or_tally(base: str, path: str, tally: Tally) -> Socket | None:
    try:
        return await Socket.open(base, path, STRANGER)
    except websockets.InvalidStatus as exc:
        tally.refused[f"http_{exc.response.status_code}"] += 1
    except (OSError, TimeoutError):
        tally.refused["connect_failed"] += 1
    return None


async def flood(base: str, plan: Plan) -> dict[str, Any]:
    deadline = time.monotonic() + plan.seconds
    tallies = {k: Tally() for k in ("bot_chats", "queued_chats", "intakes", "messages", "sockets")}
    held: list[Socket] = []
    rng = random.Random(1)

    async def start_and_leave(kind: str, answer: str, **start: Any) -> None:
        """Start something on a fresh socket and leave it there (abandoned)."""
        tally = tallies[kind]
        sock = await connect_or_tally(base, "/ws/client", tally)
        if sock is None:
            return
        await sock.send(**start)
        tally.count(await sock.expect(answer))
        await sock.close()

    async def bot_chat(i: int) -> None:
        await start_and_leave("bot_chats", "conversation.opened", type="bot.start", language="fi")

    async def unfinished_intake(i: int) -> None:
        await start_and_leave(
            "intakes", "intake.step", type="intake.start", topic="other", language="fi"
        )

    async def queued_chat(i: int) -> None:
        tally = tallies["queued_chats"]
        sock = await connect_or_tally(base, "/ws/client", tally)
        if sock is None:
            return
        if tally.count(await intake_to_queue(sock, rng, urgent=True)):
            held.append(sock)  # stays connected, holding its place
            return
        await sock.close()

    async def message_flood() -> None:
        tally = tallies["messages"]
        first = await connect_or_tally(base, "/ws/client", tally)
        if first is None:
            return
        await first.send(type="bot.start", language="fi")
        opened = await first.expect("conversation.opened")
        if opened["type"] == "error":
            tally.refused["no_chat_" + opened["code"]] += 1
            return
        token, cid = opened["token"], opened["conversation"]["conversation_id"]
        socks = [first]
        for _ in range(plan.message_sockets - 1):
            sock = await connect_or_tally(base, "/ws/client", tally)
            if sock is None:
                continue
            await sock.send(type="conversation.resume", token=token, last_seq=0)
            answer = await sock.expect("conversation.state")
            if answer["type"] == "error":  # a chat is open in a few windows at most
                tally.refused[answer["code"]] += 1
                await sock.close()
            else:
                socks.append(sock)

        async def one_socket(k: int, sock: Socket) -> None:
            # Each socket sends its share in turn; together they go as fast as they can.
            for i in range(k, plan.messages, len(socks)):
                if time.monotonic() > deadline:
                    return
                msg_id = f"flood-{i}"
                await sock.send(
                    type="message.send", conversation_id=cid, msg_id=msg_id, text="x" * 3000
                )
                while True:
                    msg = await sock.expect("message.ack")
                    if msg.get("msg_id") == msg_id or msg.get("ref") == msg_id:
                        break
                tally.count(msg)

        await asyncio.gather(*(one_socket(k, sock) for k, sock in enumerate(socks)))
        for sock in socks:
            await sock.close()

    async def hold_socket(i: int) -> None:
        tally = tallies["sockets"]
        sock = await connect_or_tally(base, "/ws/client", tally)
        if sock is not None:
            tally.accepted += 1
            held.append(sock)

    await asyncio.gather(
        bounded(plan.bot_chats, plan.concurrency, deadline, bot_chat),
        bounded(plan.queued_chats, plan.concurrency, deadline, queued_chat),
        bounded(plan.intakes, plan.concurrency, deadline, unfinished_intake),
        message_flood(),
        bounded(plan.sockets, plan.concurrency, deadline, hold_socket),
    )
    result = {k: t.as_dict() for k, t in tallies.items()}
    for sock in held:
        await sock.close()
    return result


# --- the run -------------------------------------------------------------------------------


async def run(plan: Plan, workdir: Path) -> dict[str, Any]:
    database = workdir / "kanava.sqlite3"
    tokens = await seed_database(
        database, pros=1, procs=1, capacity=4, password="flood-only", assign="pick", sessions=True
    )
    token = next(iter(tokens.values()))
    areas = write_areas_file(workdir / "areas.toml", 1)
    server = start_kanava(
        database,
        log=workdir / "server.log",
        intake_areas=areas,
        raise_rate_limits=False,  # the limits as shipped
        address_limits=True,
        env={"KANAVA_OIDC_KEY_FILE": str(workdir / "oidc.json")},
    )
    try:
        base = server.ws_base
        cpu0, server_cpu0 = time.process_time(), cpu_seconds(server.pid) or 0.0
        baseline = [
            await patient_journey(base, token, plan, f"baseline-{i}", f"127.0.1.{i + 1}")
            for i in range(plan.patients)
        ]
        # The flood runs in a process of its own, so that its busy event loop does not
        # delay the patients' measurements; both share this machine's two cores.
        loop = asyncio.get_running_loop()
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        started = time.monotonic()
        flood_future = loop.run_in_executor(pool, flood_in_process, base, plan)
        during = []
        gap = plan.seconds / (plan.patients + 1)
        for i in range(plan.patients):
            # Patients arrive one after another while the flood goes on.
            await asyncio.sleep(max(0.0, started + gap * (i + 1) - time.monotonic()))
            during.append(
                await patient_journey(base, token, plan, f"flood-{i}", f"127.0.2.{i + 1}")
            )
        refused, flood_cpu = await flood_future
        pool.shutdown()
        flood_seconds = time.monotonic() - started
        cpu = time.process_time() - cpu0 + flood_cpu
        server_cpu = (cpu_seconds(server.pid) or 0.0) - server_cpu0
    finally:
        server.stop()
    journeys = baseline + during
    ok = all(
        "refused" not in j and j.get("delivered_in_own_chat") == j.get("messages") for j in journeys
    )
    return {
        "plan": plan.__dict__,
        "patient": {"baseline": summary(baseline), "during_flood": summary(during)},
        "journeys": journeys,
        "flood_seconds": round(flood_seconds, 2),
        "flood": refused,
        "load_generator_cpu_seconds": round(cpu, 2),
        "server_cpu_seconds": round(server_cpu, 2),
        "ok": ok,
    }


def flood_in_process(base: str, plan: Plan) -> tuple[dict[str, Any], float]:
    """The flood in a process of its own; returns what it tallied and its CPU seconds."""
    result = asyncio.run(flood(base, plan))
    result["failed_attempts"] = dict(FAILURES)
    return result, time.process_time()


def summary(journeys: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the patients' journeys, and what none of them may lack."""
    served = [j for j in journeys if "refused" not in j]
    return {
        "patients": len(journeys),
        "served": len(served),
        "intake_ms_median": round(1000 * statistics.median(j["intake_seconds"] for j in served), 1)
        if served
        else None,
        "queue_positions": [j.get("queue_position") for j in served],
        "latency_ms_median": round(statistics.median(j["latency_ms_median"] for j in served), 2)
        if served
        else None,
        "latency_ms_max": max((j["latency_ms_max"] for j in served), default=None),
        "messages": sum(j["messages"] for j in served),
        "delivered_in_own_chat": sum(j["delivered_in_own_chat"] for j in served),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="the short form (about 8 s)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON (- for stdout)")
    args = parser.parse_args()
    plan = SHORT if args.short else Plan()
    with tempfile.TemporaryDirectory(prefix="kanava-flood-") as tmp:
        result = asyncio.run(run(plan, Path(tmp)))
    text = json.dumps(result, indent=2)
    if args.json == "-":
        print(text)
    elif args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    if args.json != "-":
        print(text, file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
