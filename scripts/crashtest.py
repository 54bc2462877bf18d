#!/usr/bin/env python3
"""Kanava's crash-safety test: a set test in the manner of Jepsen, with real processes.

What it shows
-------------
Every message the server acknowledged is stored exactly once, in order, in its own
conversation, and every client and professional has seen it, however often the server process
is killed or the network cut; and a message sent again after a lost acknowledgement (same
``msg_id``) is stored once.

Method
------
1. A fresh SQLite file in a temporary folder gets a pick-mode team ``crashtest`` and the
   professionals ``crash-nurse-1..M`` with the ``kanava add-team`` and
   ``kanava add-professional`` commands (password on standard input), with room for all the
   chats. ``kanava serve`` is started on it as a separate process (``python -m server.cli
   serve``) with ``KANAVA_INTAKE_REQUIRED=false`` (chats open with ``conversation.open``),
   ``KANAVA_ALWAYS_OPEN=true``, ``KANAVA_GRACE_SECONDS=86400`` (a chat stays with its
   professional across every restart) and ``KANAVA_SQLITE_SYNCHRONOUS`` from
   ``--synchronous``.
2. N clients arrive during the first half of the faults and open a conversation each
   (``conversation.open`` with an ``open_id``; half of them lose the connection right after
   their first ``conversation.open``, so that the retry with the same ``open_id`` is
   exercised whether or not the first one was stored). The professionals sign in once
   (``GET /api/session``, then ``POST /api/login`` with ``"token": true``) and take chats
   from the queue until every chat has its professional. Everyone sends messages
   continuously, several at a time without waiting for acknowledgements, each with a
   ``msg_id`` of its own and a text that names its conversation and ``msg_id``
   (``crashtest conversation=c_… msg=c007-000042 from=c007``), so that a message stored in
   the wrong conversation or at the wrong place shows.
3. At random moments (``--duration-between-kills`` of traffic, then, drawn for each fault:
   at once; as soon as sends are in flight; or the instant the server's WAL file changes,
   that is while a commit is being written and its acknowledgements are about to go out),
   a fault:

   - ``--mode process``: ``SIGKILL`` to the server, a short random pause (``--downtime``),
     and ``kanava serve`` again on the same database and port. SIGKILL runs no shutdown code
     at all: what the server had not committed is gone, as after a crash.
   - ``--mode network``: the peers talk to the server through a TCP proxy in this script
     (``crashtest_lib/proxy.py``), which cuts all connections, or a random half, abruptly:
     it forwards only part of the next chunk towards the server, towards the peer, or either
     (in the middle of a websocket frame: a request half sent, an acknowledgement half
     received) and closes both sockets, with a TCP reset or a bare FIN, never a websocket
     close. The server keeps running.
   - ``--mode both``: either, at random, through the proxy.
4. Every peer reconnects with a growing, randomised delay (50 ms to 0.5 s here, shorter
   than the protocol's advice of 1 to 30 s, to keep the test short), resumes
   (``conversation.resume`` with its token and cursor; ``auth`` with ``cursors``), reads until
   caught up, and sends every unacknowledged message again with the same ``msg_id``. A client
   that never saw ``conversation.opened`` sends ``conversation.open`` again with the same
   ``open_id``; if the answer names a chat that already has messages (taken and written to
   meanwhile), the client resumes it on a new connection, because ``conversation.opened``
   brings no history (counted as ``reopened_with_messages``). Professionals take any chat
   that is back in the queue.
5. After the last fault and a few seconds of traffic, sending stops; the outboxes are
   retried until every message is acknowledged; every peer resumes once more on a fresh
   connection and reads until caught up; the server is stopped with SIGTERM, as an operator
   stops it.
6. The SQLite file is opened read-only with Python's ``sqlite3`` module and checked against
   what the peers were told and saw (see ``crashtest_lib/check.py``).

The counts
----------
``sent`` messages (distinct ``msg_id``s), ``acknowledged``, ``retried`` (sent more than once:
their acknowledgement had not arrived when a connection ended), ``stored`` (rows in the
database), and the failures, all of which must be 0:

- ``lost``: acknowledged, not stored;
- ``duplicated``: each stored copy of a ``msg_id`` beyond the first;
- ``misplaced``: stored in a conversation its text does not name, or at another ``seq`` than
  its acknowledgement said; the ``seq``s of each conversation must be 1..n without gaps;
- ``unseen``: a stored message a peer never received. The claim checked: each client has
  every message of its conversation; each professional has every message of every
  conversation its final ``welcome`` lists (those it answers for at the end: a professional
  who lost a chat to the queue is not expected to follow it any more). With the long grace
  period every chat is, at the end, with the professional who took it; a chat that is not
  counts as ``unassigned_conversations`` and makes the run not clean.

Also checked while the run goes on: no two different messages seen at one ``seq`` (``view
conflicts``; an acknowledged message that vanished in a crash and whose ``seq`` went to
another message shows here first), no acknowledgement contradicting an earlier one, no message
delivered under another conversation, every connection delivering a conversation's messages
in increasing ``seq``, sessions and tokens still valid after every restart. ``resume cursor
gaps`` counts the resumes where a peer had a message above a missing one: it resumes from the
highest ``seq`` below which it has everything (a client resuming from the highest ``seq`` it
had would have lost the missing ones). The restart time is measured from the SIGKILL to the
first answer of ``GET /healthz`` of the new process.

The durability setting
----------------------
Kanava keeps SQLite in WAL mode and acknowledges a message only after the transaction that
stores it has committed. With ``synchronous=FULL`` (the default, setting
``sqlite_synchronous``), SQLite syncs the WAL file at every commit, before the commit
returns: an acknowledged message is on stable storage (on a disk that honours flushes) and
survives a crash of the process, a crash of the operating system and a power cut. This is
the setting that makes "acknowledged ⇒ stored" hold, and the one to run in production.

With ``synchronous=NORMAL`` in WAL mode, SQLite syncs the WAL only before a checkpoint: when a
commit returns, its pages may still be only in the operating system's page cache. SQLite's
documentation (PRAGMA synchronous) says: "A transaction committed in WAL mode with
synchronous=NORMAL might roll back following a power loss or system crash", and
"Transactions are durable across application crashes regardless of the synchronous setting":
the page cache belongs to the kernel, which writes it out after the process died. So
against SIGKILL alone NORMAL loses nothing either, and this test, which kills only the
process, cannot tell the two apart: with ``--synchronous normal`` it passes too. The
difference is a power cut or a kernel crash, where NORMAL could lose the last acknowledged
messages (a real loss: their senders were told they were stored and will not send them
again), and FULL cannot. Showing that needs a machine that really loses power, or a file
system that drops unsynced writes on command (as LazyFS does for Jepsen); a process kill
never does. FULL costs one fsync per transaction, shared by every message of a group commit.

Exit codes: 0 everything held and every peer saw every acknowledged message; 1 something the
server promised did not hold (a finding: the output and ``--json`` say what, and the seed
repeats the run's choices); 2 bad options; 3 nothing was wrong but the run was not clean
(e.g. a message still unacknowledged after the drain, a chat without a professional).

Examples::

    scripts/crashtest.py                                  (40 clients, 4 professionals, 20 kills)
    scripts/crashtest.py --mode network --kills 20
    scripts/crashtest.py --mode both --seed 7 --json var/crashtest.json
    scripts/crashtest.py --synchronous normal
    scripts/crashtest.py --kills 5 --clients 12 --pros 2 --duration-between-kills 0.4:1.2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from crashtest_lib.runner import RunConfig, report, run  # noqa: E402


def _range(text: str) -> tuple[float, float]:
    try:
        low, _, high = text.partition(":")
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give LOW:HIGH seconds, not {text!r}") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"need 0 <= LOW <= HIGH, not {text!r}")
    return pair


def build_parser() -> argparse.ArgumentParser:
    first_line, _, _ = (__doc__ or "").partition("\n")
    parser = argparse.ArgumentParser(
        prog="scripts/crashtest.py",
        description=first_line
        + " Kills the server (or cuts the network) at random moments while clients and "
        "professionals chat, lets everyone resume and retry, then checks the SQLite file: "
        "nothing acknowledged lost, duplicated or misplaced, and everyone saw everything. "
        "The method and the durability setting are explained at the top of this file.",
    )
    parser.add_argument(
        "--clients", type=int, default=40, help="simulated citizens, one chat each (40)"
    )
    parser.add_argument(
        "--pros", type=int, default=4, help="simulated professionals taking and answering chats (4)"
    )
    parser.add_argument(
        "--kills",
        type=int,
        default=20,
        help="number of faults: server kills in process mode, network cuts in network mode, "
        "either in both (20)",
    )
    parser.add_argument(
        "--mode",
        choices=("process", "network", "both"),
        default="process",
        help="process: SIGKILL the server and restart it; network: cut connections in a "
        "proxy (mid-frame too) while the server runs; both: either at random (process)",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the run's random choices (default: a random one, printed)"
    )
    parser.add_argument(
        "--duration-between-kills",
        type=_range,
        default=(0.5, 2.0),
        metavar="LOW:HIGH",
        help="seconds of traffic before each fault, drawn uniformly (0.5:2)",
    )
    parser.add_argument(
        "--downtime",
        type=_range,
        default=(0.0, 0.3),
        metavar="LOW:HIGH",
        help="seconds the killed server stays down before it is started again (0:0.3)",
    )
    parser.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="the server's SQLite synchronous setting, KANAVA_SQLITE_SYNCHRONOUS (full)",
    )
    parser.add_argument(
        "--port", type=int, help="the server's port (default: a free one; it keeps it)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds of traffic after the last fault before sending stops (2)",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="write every figure as JSON to FILE (- for stdout)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary database and server log"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.pros < 1 or args.kills < 0:
        print("crashtest: need --clients >= 1, --pros >= 1, --kills >= 0", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    cfg = RunConfig(
        clients=args.clients,
        pros=args.pros,
        kills=args.kills,
        mode=args.mode,
        seed=seed,
        between=args.duration_between_kills,
        downtime=args.downtime,
        synchronous=args.synchronous,
        port=args.port,
        settle=args.settle,
        keep=args.keep,
        quiet=args.quiet,
    )
    try:
        result = asyncio.run(run(cfg))
    except RuntimeError as failure:  # the server would not start, an account not save, …
        print(f"crashtest: the run could not go on: {failure}", file=sys.stderr)
        return 3
    print(report(result), flush=True)
    if args.json == "-":
        print(json.dumps(result, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    code: int = result["exit_code"]
    return code


if __name__ == "__main__":
    raise SystemExit(main())
