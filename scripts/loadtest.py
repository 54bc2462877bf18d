#!/usr/bin/env python3
"""Kanava's load tool: simulated clients and professionals over real websockets.

Run ``scripts/loadtest.py --help`` for every option; docs/BENCHMARKS.md for how the project
uses it. The pieces live in ``scripts/loadtest_lib``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from loadtest_lib.config import (  # noqa: E402
    CODEC_NAMES,
    DEFAULTS,
    LOAD_PASSWORD,
    RATE_DEFAULTS,
    SCENARIOS,
    Config,
    parse_sweep,
)

DESCRIPTION = """\
Simulate citizens (clients) and professionals chatting through Kanava's real protocol, with
the `websockets` library, and measure throughput, latency and correctness.

Clients go through the intake (a topic, the questionnaire's questions, the choice of a health
station; see --no-intake), wait in the queue, chat (typing, read marks) and leave;
professionals sign in, take chats up to their capacity (or get them assigned), answer, close
and take the next. Each process simulates one team (`load-<k>`) with both its clients and its
professionals, so every message is checked where it is received: every acknowledged message
must arrive at the other party exactly once, in its own conversation (lost / duplicated /
misplaced, all must be 0).

Without --url the tool starts its own server on a free loopback port with a fresh temporary
SQLite database, seeds the load accounts `load-pro-1..M` into it (with sessions, so no sign-in
is needed) and stops it at the end. With --url it loads a running server, whose database must
have been seeded before it started (see --seed).

Modes: *think* (default: human think times), *rate* (--rate or --sweep: open-loop chat
traffic at a fixed total rate, latency measured from the scheduled send time), *idle*
(--idle: many connected clients, for memory per connection)."""

EPILOG = """\
scenarios (--scenario NAME; explicit options override the preset):
{scenarios}

output: a progress line per second and a report at the end on stderr; --json FILE (or -
for stdout) writes every figure. Exit codes: 0 all messages delivered exactly once; 1 a
message was lost, duplicated or misplaced; 2 bad options; 3 nothing lost but the run was not
clean (messages never answered, invalid frames, unexpected disconnections, setup failed).

examples:
  scripts/loadtest.py --scenario smoke
  scripts/loadtest.py --clients 200 --pros 20 --rate 3000 --duration 20 --codec msgpack
  scripts/loadtest.py --scenario sweep --sweep 1000:12000:1000 --chart var/sweep.png
  scripts/loadtest.py --target relay --scenario sweep       (the bare relay baseline)
  scripts/loadtest.py --scenario idle-10k --json var/idle.json
  scripts/loadtest.py --seed var/kanava.sqlite3 --pros 20   (then:
      KANAVA_AREAS_FILE=var/kanava.sqlite3.areas.toml KANAVA_ALWAYS_OPEN=true kanava serve ...;
      scripts/loadtest.py --url http://127.0.0.1:8080 --pros 20 ...)
"""


def _scenario_help() -> str:
    lines = []
    for name, preset in SCENARIOS.items():
        knobs = ", ".join(
            f"{k.replace('_', '-')}={v}" for k, v in preset.items() if not k.startswith("_")
        )
        lines.append(f"  {name:13} {preset['_doc']}\n  {'':13} ({knobs})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/loadtest.py",
        description=DESCRIPTION,
        epilog=EPILOG.format(scenarios=_scenario_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = DEFAULTS
    what = parser.add_argument_group("what to load")
    what.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        help="start from a preset (listed below); other options override its values",
    )
    what.add_argument(
        "--target",
        choices=("kanava", "relay"),
        help="kanava: the chat server (default); relay: scripts/baseline_relay.py, the bare "
        "websocket relay, with the same frames, rates and number of pairs (no acks)",
    )
    what.add_argument(
        "--url",
        metavar="URL",
        help="load a server that is already running at URL (http://host:port or "
        "ws://host:port) instead of starting one; its database must hold the load accounts "
        "(see --seed) for the same --pros and --procs",
    )
    what.add_argument(
        "--codec",
        choices=sorted(CODEC_NAMES),
        help="wire encoding: json (kanava.v1.json, text frames, default) or msgpack "
        "(kanava.v1.msgpack, binary frames)",
    )

    people = parser.add_argument_group("simulated people")
    people.add_argument(
        "--clients",
        type=int,
        metavar="N",
        help=f"simulated clients (citizens) at a time; against the relay: socket pairs "
        f"(default {d['clients']})",
    )
    people.add_argument(
        "--pros",
        type=int,
        metavar="M",
        help=f"simulated professionals, load-pro-1..M (default {d['pros']}); each process "
        "needs at least one",
    )
    people.add_argument(
        "--capacity",
        type=int,
        metavar="C",
        help="chats each professional takes at once (seeded into a server the tool starts; "
        "default: enough for every client in rate mode, 4 otherwise)",
    )
    people.add_argument(
        "--assign",
        choices=("auto", "pick"),
        help="auto: the load teams assign chats to professionals (default); pick: "
        "professionals take them from the queue with queue.take",
    )

    people.add_argument(
        "--intake",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="clients open their chats as citizens do: intake.start on a topic (cycling "
        "through the server's topics and fi/sv/en), a plausible non-urgent answer to every "
        "question, then the health station of their team (default). --no-intake: "
        "conversation.open straight away, which the server must allow "
        "(KANAVA_INTAKE_REQUIRED=false; set by the tool on a server it starts). The server "
        "must run without an identity provider and take chats now; a server the tool starts "
        "gets KANAVA_ALWAYS_OPEN=true and an areas file with a station per load team",
    )
    people.add_argument(
        "--intake-think",
        type=float,
        metavar="S",
        help="mean seconds (exponential) a client takes to answer each intake question "
        "(default 0: at once; morning-peak 3)",
    )

    traffic = parser.add_argument_group("traffic")
    traffic.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="rate mode: R chat messages per second in total (both directions, all "
        "processes), open loop, round-robin over the assigned conversations; without it "
        "people chat at --think pace",
    )
    traffic.add_argument(
        "--think",
        type=float,
        metavar="S",
        help=f"think mode: mean seconds (exponential) a party waits before each message "
        f"(default {d['think']})",
    )
    traffic.add_argument(
        "--messages",
        type=int,
        metavar="L",
        help=f"chat messages each party sends before the professional closes the chat and "
        f"the client comes back with a new one (default {d['messages']}; in rate mode 0: "
        "chats never end)",
    )
    traffic.add_argument(
        "--text-size",
        type=int,
        metavar="CHARS",
        help=f"characters per chat message, at least 40 (default {d['text_size']})",
    )
    traffic.add_argument(
        "--typing",
        type=float,
        metavar="F",
        help=f"fraction of messages with typing events around them: typing.set true "
        f"before, false after (default {d['typing']}; in rate mode 0)",
    )
    traffic.add_argument(
        "--read-marks",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the receiver of a message answers with read.mark (default on; in rate mode off)",
    )
    traffic.add_argument(
        "--ramp",
        type=float,
        metavar="S",
        help=f"think mode: clients arrive spread over the first S seconds (default {d['ramp']})",
    )
    traffic.add_argument(
        "--pause",
        type=float,
        metavar="S",
        help=f"mean seconds before a client whose chat ended opens a new one (think mode, "
        f"and rate mode with --messages; default {d['pause']})",
    )

    timing = parser.add_argument_group("time and count bounds")
    timing.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help=f"seconds of load (rate mode: of the measured window; idle mode: how long "
        f"everyone stays connected; default {d['duration']})",
    )
    timing.add_argument(
        "--warmup",
        type=float,
        metavar="S",
        help=f"rate mode: seconds of load before each measured window, not counted "
        f"(default {RATE_DEFAULTS['warmup']})",
    )
    timing.add_argument(
        "--drain",
        type=float,
        metavar="S",
        help=f"at the end, wait at most S seconds for messages in flight (default {d['drain']})",
    )
    timing.add_argument(
        "--setup-timeout",
        type=float,
        metavar="S",
        help=f"give up if connecting and assigning everyone takes longer "
        f"(default {d['setup_timeout']})",
    )
    timing.add_argument(
        "--max-messages",
        type=int,
        metavar="N",
        help="send at most N chat messages in all, split over the processes (default: no "
        "limit); the run still ends after --duration",
    )

    sweep = parser.add_argument_group("sweep (throughput at a latency limit)")
    sweep.add_argument(
        "--sweep",
        metavar="START:STOP:STEP",
        help="rate mode in steps of increasing offered msg/s (or a comma list R1,R2,...); "
        "each runs --warmup + --step-seconds; the result is the highest rate whose p99 is "
        "within --p99-limit with --min-delivered of the messages delivered",
    )
    sweep.add_argument(
        "--step-seconds",
        type=float,
        metavar="S",
        help=f"measured seconds per sweep step (default {d['step_seconds']})",
    )
    sweep.add_argument(
        "--p99-limit",
        type=float,
        metavar="MS",
        dest="p99_limit_ms",
        help=f"end-to-end p99 a step must stay within (default {d['p99_limit_ms']:g} ms)",
    )
    sweep.add_argument(
        "--min-delivered",
        type=float,
        metavar="F",
        help=f"fraction of a step's messages that must arrive (default {d['min_delivered']})",
    )
    sweep.add_argument(
        "--sweep-max-fail",
        type=int,
        metavar="N",
        help=f"stop the sweep after N failing steps in a row (default {d['sweep_max_fail']})",
    )
    sweep.add_argument(
        "--chart",
        metavar="PNG",
        help="draw p50/p95/p99 against offered load of the steps to PNG (matplotlib)",
    )

    idle = parser.add_argument_group("idle mode (memory per connection)")
    idle.add_argument(
        "--idle",
        action="store_true",
        default=None,
        help="connect --clients clients and hold them for --duration seconds; --active of "
        "them chat (one message each way), the others wait; report the server's RSS "
        "growth per connection",
    )
    idle.add_argument(
        "--active",
        type=int,
        metavar="A",
        help="idle mode: clients in a conversation with a professional (default 0)",
    )
    idle.add_argument(
        "--idle-open",
        choices=("queued", "none"),
        help="idle mode: the other clients open a conversation that waits in a queue nobody "
        "serves (queued, default) or only connect (none)",
    )
    idle.add_argument(
        "--server-pid",
        type=int,
        metavar="PID",
        help="with --url: the server's process id, to read its memory and CPU from /proc",
    )

    server = parser.add_argument_group("the server the tool starts (without --url)")
    server.add_argument(
        "--server-cpu",
        metavar="CPUS",
        help="pin the server with `taskset -c CPUS` (e.g. 0); pin the tool itself with "
        "`taskset -c 1 scripts/loadtest.py ...`",
    )
    server.add_argument(
        "--server-loop",
        choices=("uvloop", "asyncio"),
        help="event loop of the server (KANAVA_UVLOOP, or the relay's --uvloop; default uvloop)",
    )
    server.add_argument(
        "--rate-limits",
        choices=("auto", "raised", "default"),
        help="per-connection rate limits of the server: raised (far above the load) or the "
        "server's defaults (5/s client, 20/s professional); auto: raised in rate and idle "
        "mode (default). rate_limited refusals are counted and retried either way",
    )
    server.add_argument(
        "--server-env",
        action="append",
        metavar="NAME=VALUE",
        default=[],
        help="an extra setting for the server, e.g. KANAVA_SQLITE_SYNCHRONOUS=normal (repeatable)",
    )
    server.add_argument(
        "--database",
        metavar="PATH",
        help="SQLite file for the server (default: a fresh file in a temporary directory, "
        "deleted afterwards)",
    )

    gen = parser.add_argument_group("the load generator")
    gen.add_argument(
        "--procs",
        type=int,
        metavar="K",
        help="spread the simulated people over K processes, one team each (default 1); "
        "the results are merged",
    )
    gen.add_argument(
        "--connect-rate",
        type=float,
        metavar="N",
        help=f"open at most N websockets per second in all (default {d['connect_rate']:g})",
    )
    gen.add_argument(
        "--no-uvloop",
        dest="uvloop",
        action="store_false",
        default=True,
        help="run the generator on the default asyncio loop (uvloop is used if installed)",
    )
    gen.add_argument(
        "--password",
        default=LOAD_PASSWORD,
        help=f"password of the load accounts (default {LOAD_PASSWORD})",
    )

    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the full result as JSON (- : stdout)")
    out.add_argument(
        "--quiet", action="store_true", help="no progress lines (the final report still)"
    )
    out.add_argument(
        "--seed",
        metavar="DB",
        help="only create the load teams and accounts load-pro-1..--pros (password "
        "--password, capacity --capacity, teams for --procs) in the SQLite file DB, write "
        "DB.areas.toml (a health station per load team, for the intake), and exit; start the "
        "server afterwards with KANAVA_AREAS_FILE=DB.areas.toml KANAVA_ALWAYS_OPEN=true",
    )
    return parser


def make_config(args: argparse.Namespace) -> Config:
    """Defaults, then the scenario, then the explicit options."""
    values = dict(DEFAULTS)
    preset = {k: v for k, v in SCENARIOS.get(args.scenario or "", {}).items() if k[0] != "_"}
    if (
        args.rate is not None
        or args.sweep is not None
        or preset.get("rate") is not None
        or preset.get("sweep") is not None
    ):
        values.update(RATE_DEFAULTS)
    values.update(preset)
    for name in DEFAULTS:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    if isinstance(values["sweep"], str):
        values["sweep"] = parse_sweep(values["sweep"])
    if values["capacity"] is None:
        if values["rate"] is not None or values["sweep"] is not None:
            values["capacity"] = max(1, -(-values["clients"] // max(1, values["pros"])))
        else:
            values["capacity"] = 4
    env = {}
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("KANAVA_"):
            raise ValueError(f"--server-env wants KANAVA_NAME=VALUE, not {item!r}")
        env[name] = value
    return Config(
        **values,
        url=args.url,
        scenario=args.scenario,
        password=args.password,
        uvloop=args.uvloop,
        server_cpu=args.server_cpu,
        server_loop=args.server_loop or "uvloop",
        server_env=env,
        server_pid=args.server_pid,
        database=args.database,
        quiet=args.quiet,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = make_config(args)
        if args.seed:
            cfg.procs = max(1, cfg.procs)
        else:
            cfg.check()
    except ValueError as exc:
        parser.error(str(exc))
    if args.seed:
        from loadtest_lib.seeding import seed_database

        asyncio.run(
            seed_database(
                Path(args.seed),
                pros=cfg.pros,
                procs=cfg.procs,
                capacity=cfg.capacity,
                password=cfg.password,
                assign=cfg.assign,
            )
        )
        from loadtest_lib.intake import write_areas_file

        areas = write_areas_file(Path(args.seed + ".areas.toml"), cfg.procs)
        print(
            f"seeded {cfg.pros} professionals load-pro-1..{cfg.pros} (password "
            f"{cfg.password!r}, capacity {cfg.capacity}) in {cfg.procs} team(s) into "
            f"{args.seed}\nfor the intake, start the server with KANAVA_AREAS_FILE={areas} "
            "KANAVA_ALWAYS_OPEN=true and without KANAVA_OIDC_ISSUER"
        )
        return 0

    from loadtest_lib.report import format_report, plot_sweeps
    from loadtest_lib.runner import run_load

    try:
        result = run_load(cfg)
    except (RuntimeError, ConnectionError, TimeoutError, OSError) as exc:
        print(f"loadtest: failed: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("loadtest: interrupted", file=sys.stderr)
        return 130
    print(format_report(result), file=sys.stderr)
    if args.chart:
        if result["steps"] and any(s["rate"] is not None for s in result["steps"]):
            label = f"{cfg.target} {cfg.codec}"
            plot_sweeps({label: result["steps"]}, args.chart, limit_ms=cfg.p99_limit_ms)
            print(f"chart: {args.chart}", file=sys.stderr)
        else:
            print("chart: only rate mode has steps to draw", file=sys.stderr)
    if args.json:
        text = json.dumps(result, indent=1, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    exit_code: int = result["exit_code"]
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
