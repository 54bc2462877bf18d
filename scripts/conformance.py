#!/usr/bin/env python3
"""WebSocket conformance of Kanava's endpoint: the Autobahn TestSuite cases, run by kosoku.

``kosoku`` (PyPI) drives the Autobahn TestSuite's own *fuzzingclient* case files from Python 3
against a websocket server and gives Autobahn's verdicts. Two runs, against one real Kanava
server on a loopback port (``tests/kanava_testing.KanavaServer``, ``build_app`` as served):

``framing``
    Every case not excluded, against ``/ws/client`` answered by the production handler
    (``server.ws.endpoint._websocket``: Origin check, subprotocols, the ``WebSocketResponse``
    options, the final close) with only Kanava's protocol layer, ``Connection``, swapped for
    an echo: the cases send messages and expect them back, which Kanava's protocol does not
    do. What is tested is the framing layer exactly as Kanava configures and runs it.
``client``
    The cases that expect no message back (pings and pongs, reserved bits and opcodes,
    fragmented control frames, invalid UTF-8, the close handshake and its codes), against the
    real ``/ws/client``, protocol layer and all.

Not run: the compression cases (12.*, 13.*: Kanava's websockets never negotiate compression)
and those whose messages are larger than ``max_frame_bytes``, 64 KiB (``OVER_LIMIT``).

Every known failure has an owner and a reason: ``AIOHTTP_FAILURES`` (the framing library) or
``KANAVA_FAILURES`` (Kanava's own code). Any other failure is unexpected.

    .venv/bin/python scripts/conformance.py              # both runs, a table of every case
    .venv/bin/python scripts/conformance.py --failures   # only the cases that did not pass

Exits 1 when a case fails that aiohttp does not own. kosoku runs in a child process (it
changes its interpreter's import path and ``binascii``); the server runs in this one.
``tests/test_websocket_conformance.py`` runs the same in ``scripts/test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from aiohttp import WSMsgType, web  # noqa: E402
from kanava_testing import KanavaServer  # noqa: E402

import server.ws.endpoint  # noqa: E402
from server.ws.connection import _is_utf8  # noqa: E402

__all__ = [
    "AIOHTTP_FAILURES",
    "COMPRESSION",
    "EXCLUDED",
    "KANAVA_FAILURES",
    "OVER_LIMIT",
    "Case",
    "Outcome",
    "all_case_ids",
    "conformance_server",
    "expects_invalid_utf8_close",
    "owner",
    "run_client",
    "run_framing",
    "verdict",
]

# Cases run at once, each on its own connection; the slowest ones wait for timeouts.
CONCURRENCY = 8

# permessage-deflate: Kanava's websockets never negotiate it (compress=False).
COMPRESSION = ("12.*", "13.*")

# Cases whose messages are larger than max_frame_bytes (64 KiB): the server answers 1009.
OVER_LIMIT: dict[str, str] = {"7.1.6": "a 256 KiB text message, then a close and a ping"}
for _i, _size in enumerate(("256 KiB", "1 MiB", "4 MiB", "8 MiB", "16 MiB"), start=2):
    OVER_LIMIT[f"9.1.{_i}"] = f"a {_size} text message"
    OVER_LIMIT[f"9.2.{_i}"] = f"a {_size} binary message"
_FRAGMENTS = ("64 B", "256 B", "1 KiB", "4 KiB", "16 KiB", "64 KiB", "256 KiB", "1 MiB", "4 MiB")
for _i, _fragment in enumerate(_FRAGMENTS, start=1):
    OVER_LIMIT[f"9.3.{_i}"] = f"a 4 MiB text message in fragments of {_fragment}"
    OVER_LIMIT[f"9.4.{_i}"] = f"a 4 MiB binary message in fragments of {_fragment}"
for _i, _chop in enumerate(("64", "128", "256", "512", "1024", "2048"), start=1):
    OVER_LIMIT[f"9.5.{_i}"] = f"a 1 MiB text message written in chops of {_chop} bytes"
    OVER_LIMIT[f"9.6.{_i}"] = f"a 1 MiB binary message written in chops of {_chop} bytes"

EXCLUDED = (*COMPRESSION, *OVER_LIMIT)

# Failures that belong to aiohttp, the framing library, each with its reason.
AIOHTTP_FAILURES: dict[str, str] = {
    # A close frame with the code 1006, which RFC 6455 7.4.1 reserves and forbids on the wire:
    # aiohttp's reader accepts every member of its WSCloseCode enum, ABNORMAL_CLOSURE (1006)
    # among them, and answers with a normal close (1000) instead of failing with 1002.
    "7.9.5": (
        "a close frame with the reserved code 1006 is accepted (aiohttp's WSCloseCode holds "
        "ABNORMAL_CLOSURE) and answered with 1000 instead of 1002"
    ),
}

# Failures that belong to Kanava: none. (The 6.x cases that send invalid UTF-8 in a text
# message expect the connection to fail with 1007, RFC 6455 8.1. Kanava's websockets use
# ``decode_text=False``, so that check is the protocol layer's: ``Connection.receive`` closes
# with 1007, and the echo below does the same.)
KANAVA_FAILURES: dict[str, str] = {}


@dataclass(frozen=True)
class Case:
    """One case's result, as kosoku reported it."""

    case_id: str
    description: str
    passed: bool
    behavior: str  # OK, NON-STRICT, INFORMATIONAL, FAILED, ...: the message exchange
    behavior_close: str  # OK, INFORMATIONAL, WRONG CODE, FAILED BY CLIENT, ...: the close
    remote_close_code: int | None  # the server's close code
    expected_close_codes: tuple[int, ...]
    # Event kinds ("message", "pong", "timeout", ...) of each outcome the case accepts.
    expected_events: tuple[tuple[str, ...], ...]
    agent: str

    @classmethod
    def from_kosoku(cls, result: Any) -> Case:
        expected = result.expected or {}
        return cls(
            case_id=result.case_id,
            description=result.description,
            passed=result.passed,
            behavior=result.behavior.value,
            behavior_close=result.behavior_close.value,
            remote_close_code=result.remote_close_code,
            expected_close_codes=tuple((result.expected_close or {}).get("closeCode") or ()),
            expected_events=tuple(
                tuple(str(event[0]) for event in events) for events in expected.values()
            ),
            agent=result.agent,
        )

    @property
    def needs_no_echo(self) -> bool:
        """The case states what it accepts, and no message is in it.

        The 9.x cases state nothing: they check the echoed messages themselves.
        """
        return bool(self.expected_events) and all(
            "message" not in kinds for kinds in self.expected_events
        )


def expects_invalid_utf8_close(case: Case) -> bool:
    """Whether the case sends invalid UTF-8 in a text message and expects 1007 for it."""
    return case.case_id.startswith("6.") and 1007 in case.expected_close_codes


def owner(case: Case, run: str) -> tuple[str, str] | None:
    """Who a failed case of ``run`` belongs to, and why; None if it passed or is unexplained."""
    if case.passed:
        return None
    if case.case_id in AIOHTTP_FAILURES:
        return "aiohttp", AIOHTTP_FAILURES[case.case_id]
    if expects_invalid_utf8_close(case) and run in KANAVA_FAILURES:
        return "kanava", KANAVA_FAILURES[run]
    return None


def verdict(case: Case) -> str:
    """pass, non-strict, informational or fail: Autobahn's verdict of the whole case."""
    if not case.passed:
        return "fail"
    labels = {case.behavior, case.behavior_close}
    if "INFORMATIONAL" in labels:
        return "informational"
    if "NON-STRICT" in labels:
        return "non-strict"
    return "pass"


# --- the server's side --------------------------------------------------------------------


class EchoConnection:
    """Stands in for ``server.ws.connection.Connection``: sends every message back as it came.

    Its loop is the production one (``Connection.run``): data frames are handled, an error
    ends it; aiohttp itself answers pings and the close handshake.
    """

    def __init__(self, ws: web.WebSocketResponse, *args: Any, **kwargs: Any) -> None:
        self.ws = ws

    async def run(self) -> None:
        async for frame in self.ws:
            if frame.type is WSMsgType.TEXT:
                data = frame.data
                if isinstance(data, str):
                    await self.ws.send_str(data)
                elif not _is_utf8(data):  # as Connection.receive does
                    await self.close(1007, "a text frame must be UTF-8")
                    break
                else:  # decode_text=False: the text frame's bytes, as received
                    await self.ws.send_frame(data, WSMsgType.TEXT)
            elif frame.type is WSMsgType.BINARY:
                await self.ws.send_bytes(frame.data)
            elif frame.type is WSMsgType.ERROR:
                break

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode("utf-8"))


@contextmanager
def echo_protocol_layer() -> Iterator[None]:
    """While open, Kanava's websocket endpoints echo instead of speaking Kanava's protocol."""
    with mock.patch.object(server.ws.endpoint, "Connection", EchoConnection):
        yield


@contextmanager
def conformance_server(folder: Path) -> Iterator[KanavaServer]:
    """A Kanava server with its default websocket settings (no Origin needed, 64 KiB frames)."""
    kanava = KanavaServer(folder / "conformance.sqlite3").start()
    try:
        yield kanava
    finally:
        kanava.stop()


# --- the client's side: kosoku, in a child process ----------------------------------------


async def _child(*args: str) -> Any:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"kosoku's run failed ({process.returncode}):\n{err.decode()[-3000:]}")
    return json.loads(out)


async def _fuzz(url: str, cases: Sequence[str], exclude: Sequence[str], concurrency: int) -> Any:
    """In the child: run the cases against ``url``; their results, as JSON-ready dicts."""
    import kosoku

    try:
        results = await kosoku.run_fuzzingclient(
            url, list(cases), list(exclude), concurrency=concurrency
        )
    except kosoku.FailureError as failure:  # some case failed: the results are all there
        results = failure.results
    return [asdict(Case.from_kosoku(r)) for r in results]


async def _run(
    url: str, cases: Sequence[str], exclude: Sequence[str], concurrency: int
) -> list[Case]:
    args = [url, "--concurrency", str(concurrency)]
    args += [f"--cases={c}" for c in cases] + [f"--exclude={c}" for c in exclude]
    rows = await _child(*args)
    return [
        Case(
            **{
                **row,
                "expected_close_codes": tuple(row["expected_close_codes"]),
                "expected_events": tuple(tuple(kinds) for kinds in row["expected_events"]),
            }
        )
        for row in rows
    ]


async def all_case_ids() -> list[str]:
    """Every case id kosoku has, in order."""
    ids: list[str] = await _child("--list")
    return ids


async def run_framing(
    kanava: KanavaServer, cases: Sequence[str] = ("*",), concurrency: int = CONCURRENCY
) -> list[Case]:
    """The selected cases against ``/ws/client`` with the protocol layer swapped for an echo."""
    with echo_protocol_layer():
        return await _run(kanava.ws_base + "/ws/client", cases, EXCLUDED, concurrency)


async def run_client(
    kanava: KanavaServer, cases: Sequence[str], concurrency: int = CONCURRENCY
) -> list[Case]:
    """The given cases against the real ``/ws/client``."""
    if not cases:
        return []
    return await _run(kanava.ws_base + "/ws/client", cases, (), concurrency)


# --- the report -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """One run's results, sorted into verdicts and owners."""

    name: str
    cases: list[Case]

    def counts(self) -> Counter[str]:
        return Counter(verdict(c) for c in self.cases)

    def failures(self) -> list[Case]:
        return [c for c in self.cases if not c.passed]

    def unexpected(self) -> list[Case]:
        return [c for c in self.failures() if owner(c, self.name) is None]

    def owned_by(self, who: str) -> list[Case]:
        return [c for c in self.failures() if (owner(c, self.name) or ("", ""))[0] == who]


def row(case: Case, run: str) -> str:
    who = owner(case, run)
    note = who[0] if who else ("UNEXPECTED" if not case.passed else "")
    code = "" if case.remote_close_code is None else str(case.remote_close_code)
    return (
        f"{case.case_id:<8} {verdict(case):<13} {case.behavior:<13} "
        f"{case.behavior_close:<16} {code:>5}  {note}"
    )


def print_outcome(outcome: Outcome, only_failures: bool = False) -> None:
    """A table of the run's cases (all, or those that did not simply pass), then a summary."""
    agent = outcome.cases[0].agent if outcome.cases else "?"
    print(f"\n== {outcome.name}: {len(outcome.cases)} cases against {agent}")
    print(f"{'case':<8} {'verdict':<13} {'behavior':<13} {'close':<16} {'code':>5}  owner")
    for case in outcome.cases:
        if not only_failures or verdict(case) != "pass":
            print(row(case, outcome.name))
    counts = outcome.counts()
    print(
        f"{outcome.name}: {counts['pass']} pass, {counts['non-strict']} non-strict, "
        f"{counts['informational']} informational, {counts['fail']} fail"
    )
    reasons: dict[tuple[str, str], list[str]] = {}
    for case in outcome.failures():
        who = owner(case, outcome.name) or ("UNEXPECTED", "no known reason")
        reasons.setdefault(who, []).append(case.case_id)
    for (who, reason), ids in reasons.items():
        count = f"{len(ids)} case" + ("s" if len(ids) > 1 else "")
        print(f"  {who}, {count} ({', '.join(ids)}):\n    {reason}")


async def run_all(cases: Sequence[str], concurrency: int) -> tuple[Outcome, Outcome]:
    """Both runs against one Kanava server: the framing run, then the client run."""
    with tempfile.TemporaryDirectory(prefix="kanava-conformance-") as tmp:
        with conformance_server(Path(tmp)) as kanava:
            framing = await run_framing(kanava, cases, concurrency)
            direct = [c.case_id for c in framing if c.needs_no_echo]
            client = await run_client(kanava, direct, concurrency)
    return Outcome("framing", framing), Outcome("client", client)


def _child_main(args: argparse.Namespace) -> int:
    if args.list:
        import kosoku.cases

        print(json.dumps(list(kosoku.cases.CASES)))
        return 0
    rows = asyncio.run(_fuzz(args.url, args.cases or ["*"], args.exclude or [], args.concurrency))
    print(json.dumps(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases",
        action="append",
        metavar="ID",
        help="a case id or '*' glob to run (repeatable; default: every case not excluded)",
    )
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="cases at once")
    parser.add_argument(
        "--failures", action="store_true", help="list only the cases that did not simply pass"
    )
    # The child process that runs kosoku.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--exclude", action="append", help=argparse.SUPPRESS)
    parser.add_argument("url", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child_main(args)

    started = time.monotonic()
    framing, client = asyncio.run(run_all(args.cases or ["*"], args.concurrency))
    for outcome in (framing, client):
        print_outcome(outcome, args.failures)
    print(f"\nnot run: {', '.join(COMPRESSION)} (compression, which Kanava does not negotiate)")
    over = sorted(OVER_LIMIT, key=lambda case_id: [int(part) for part in case_id.split(".")])
    print(f"not run, over 64 KiB: {', '.join(over)}")
    print(f"took {time.monotonic() - started:.1f} s")
    # Failing: anything unexplained, and Kanava's own failures where Kanava itself answers.
    failing = framing.unexpected() + client.unexpected() + client.owned_by("kanava")
    passed = sum(len(o.cases) - len(o.failures()) for o in (framing, client))
    failed = sum(len(o.failures()) for o in (framing, client))
    print(f"{passed} passed, {failed} failed")
    if failing:
        print("failed, not owned by aiohttp: " + ", ".join(c.case_id for c in failing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
