"""The ``kanava`` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from server.app import build_app
from server.bot.accounts import BOT_TEAM, bot_account, bot_team
from server.console.auth import hash_password, normalise_username
from server.core.ids import hash_token, new_token
from server.core.model import AssignMode, Professional, Team
from server.logs import AccessLog, configure_logging
from server.ops.demo import DEMO_ACCOUNTS
from server.settings import Settings
from server.storage.sqlite.store import Storage

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kanava",
        description="Kanava: real-time chat for public health stations.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the chat server",
        description="Run the chat server. Every option can also be set as KANAVA_<NAME>; "
        "see docs/settings.md.",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--database", type=Path, help="SQLite file (default var/kanava.sqlite3)")
    serve.add_argument(
        "--demo", action="store_true", default=None, help="create demo teams and accounts"
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        dest="allowed_origins",
        metavar="ORIGIN",
        help="a web origin allowed to open websockets (repeat for several)",
    )
    serve.add_argument("--log-level", help="debug, info, warning or error (default info)")

    team = commands.add_parser(
        "add-team",
        help="create or update a team",
        description="Create or update a team (a health station's chat queue).",
    )
    team.add_argument("id", help="short id, e.g. kallio")
    team.add_argument("name", help="name shown to professionals")
    team.add_argument(
        "--mode",
        choices=["pick", "auto"],
        default="pick",
        help="pick: professionals choose from the queue; auto: the hub assigns (default pick)",
    )
    team.add_argument("--database", type=Path, help="SQLite file (default var/kanava.sqlite3)")

    pro = commands.add_parser(
        "add-professional",
        help="create or update a professional's account",
        description="Create or update a professional's account. The password is read from "
        "standard input (one line), so it never appears in the process list.",
    )
    pro.add_argument("username")
    pro.add_argument("--name", required=True, help="full name shown to clients")
    pro.add_argument("--title", default="nurse", help="e.g. nurse or doctor (default nurse)")
    pro.add_argument(
        "--role",
        choices=["nurse", "doctor", "supervisor", "admin"],
        help="what the account may do (default: doctor for --title doctor, else nurse); "
        "a supervisor and an admin also read the access log",
    )
    pro.add_argument(
        "--oidc-subject",
        help="the account's subject (sub) at the OpenID Connect provider, so that the "
        "professional can sign in with the organisation's account",
    )
    pro.add_argument(
        "--team", action="append", required=True, dest="teams", help="team id (repeatable)"
    )
    pro.add_argument(
        "--capacity", type=int, help="concurrent chats (default: the default_capacity setting)"
    )
    pro.add_argument("--database", type=Path, help="SQLite file (default var/kanava.sqlite3)")

    report = commands.add_parser(
        "feedback-report",
        help="summarise the clients' feedback",
        description="The clients' feedback of the last DAYS days as JSON: how many gave it, "
        "the average rating and its distribution, per team, and the comments (without names).",
    )
    report.add_argument("--days", type=int, default=30, help="how far back (30)")
    report.add_argument("--database", type=Path, help="SQLite file (default var/kanava.sqlite3)")

    retention = commands.add_parser(
        "retention",
        help="delete what is past its retention time, and report counts",
        description="Delete chats of clients who did not identify, and chats with the bot "
        "only, retention_anonymous_days after they ended; identified clients' chats after "
        "retention_identified_days (0: never). A chat that never ended counts from its last "
        "activity. Intakes that never became a chat go after retention_anonymous_days, "
        "expired sessions and unsent texts of ended chats at once. A chat with a "
        "patient-record entry is kept. Prints the counts by kind as JSON. Safe while the "
        "server runs.",
    )
    retention.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    retention.add_argument("--database", type=Path, help="SQLite file (default var/kanava.sqlite3)")

    backup = commands.add_parser(
        "backup",
        help="copy the database consistently while the server runs",
        description="Take a consistent online copy of the SQLite database (SQLite's backup "
        "API) into FILE, check it, and print its counts as JSON.",
    )
    backup.add_argument("file", type=Path)
    backup.add_argument("--database", type=Path, help="SQLite file (default var/kanava.sqlite3)")

    restore = commands.add_parser(
        "restore",
        help="replace the database with a backup (stop the server first)",
        description="Check the backup FILE and copy it over the database. Stop the server "
        "first; start it again afterwards.",
    )
    restore.add_argument("file", type=Path)
    restore.add_argument("--database", type=Path, help="SQLite file (default var/kanava.sqlite3)")

    bot = commands.add_parser(
        "add-bot",
        help="create a bot account and print its token",
        description="Create (or renew) an advice-bot account for a health service's own bot "
        "engine. It connects to /ws/pro with the printed token (auth), gets the chats of team "
        "'bot' (created if missing, automatic assignment) and is always shown to clients as "
        "a bot. The token is printed once: store it as a secret. Set KANAVA_BOT=false to "
        "leave the chats to this bot instead of the built-in one.",
    )
    bot.add_argument("username")
    bot.add_argument("--name", required=True, help="name shown to clients, e.g. Terveysbotti")
    bot.add_argument("--capacity", type=int, default=1000, help="concurrent chats (1000)")
    bot.add_argument("--days", type=int, default=365, help="days the token is valid (365)")
    bot.add_argument("--database", type=Path, help="SQLite file (default var/kanava.sqlite3)")
    return parser


async def _add_team(settings: Settings, args: argparse.Namespace) -> str:
    storage = await Storage.open(settings.database, synchronous=settings.sqlite_synchronous)
    try:
        await storage.save_team(Team(args.id, args.name, AssignMode(args.mode)))
    finally:
        await storage.close()
    return f"team {args.id} saved ({args.mode} mode)"


async def _add_professional(settings: Settings, args: argparse.Namespace, password: str) -> str:
    storage = await Storage.open(settings.database, synchronous=settings.sqlite_synchronous)
    try:
        known_teams = {t.id for t in await storage.teams()}
        unknown = [t for t in args.teams if t not in known_teams]
        if unknown:
            raise SystemExit(f"kanava: no such team: {', '.join(unknown)} (add it first)")
        username = _username(args.username)
        # Compared in their normal form: "Sanna" updates the account "sanna" (its role, its
        # organisation sign-in link) instead of making a second one.
        existing = {normalise_username(p.username): p for p in await storage.professionals()}
        known = existing.get(username)
        capacity = settings.default_capacity if args.capacity is None else args.capacity
        if capacity < 0:
            raise SystemExit("kanava: capacity cannot be negative")
        await storage.save_professional(
            Professional(
                id=known.id if known else "p_" + username,
                username=username,
                display_name=args.name,
                title=args.title,
                capacity=capacity,
                teams=tuple(args.teams),
                password_hash=hash_password(password),
                # Left out on an update: the account keeps its role and its link.
                role=args.role
                or (known.role if known else ("doctor" if args.title == "doctor" else "nurse")),
                oidc_subject=args.oidc_subject or (known.oidc_subject if known else None),
            )
        )
    finally:
        await storage.close()
    return f"professional {username} saved (capacity {capacity}; restart the server)"


def _username(given: str) -> str:
    """The username as stored and compared (see ``normalise_username``); never empty."""
    username = normalise_username(given)
    if not username:
        raise SystemExit("kanava: the username is empty")
    return username


async def _retention(settings: Settings, dry_run: bool) -> dict[str, Any]:
    now = int(time.time() * 1000)
    day = 86_400_000
    identified_days = settings.retention_identified_days
    cutoffs = (
        now - settings.retention_anonymous_days * day,
        now - identified_days * day if identified_days > 0 else None,
    )
    storage = await Storage.open(settings.database, synchronous=settings.sqlite_synchronous)
    try:
        due = await storage.retention_candidates(*cutoffs, now)
        if not dry_run:
            due = await storage.delete_retained(due, *cutoffs, now)
        kept = await storage.count_kept()
    finally:
        await storage.close()
    return {
        "dry_run": dry_run,
        "anonymous_days": settings.retention_anonymous_days,
        "identified_days": identified_days or None,
        "deleted" if not dry_run else "would_delete": due.counts(),
        "messages_deleted": due.messages,
        "kept": kept,
    }


async def _feedback_report(settings: Settings, days: int) -> dict[str, Any]:
    storage = await Storage.open(settings.database, synchronous=settings.sqlite_synchronous)
    try:
        since = int(time.time() * 1000) - days * 86_400_000
        rows = await storage.feedback(since)
    finally:
        await storage.close()

    def summary(items: list[dict[str, Any]]) -> dict[str, Any]:
        ratings = [r["rating"] for r in items if r["rating"] is not None]
        return {
            "answers": len(items),
            "rated": len(ratings),
            "average": round(sum(ratings) / len(ratings), 2) if ratings else None,
            "ratings": {str(n): ratings.count(n) for n in range(1, 6)},
        }

    teams = sorted({r["team_id"] for r in rows if r["team_id"]})
    return {
        "days": days,
        **summary(rows),
        "teams": {t: summary([r for r in rows if r["team_id"] == t]) for t in teams},
        "comments": [r["comment"] for r in rows if r["comment"]],
    }


async def _add_bot(settings: Settings, args: argparse.Namespace) -> str:
    if args.capacity < 1 or args.days < 1:
        raise SystemExit("kanava: capacity and days must be at least 1")
    storage = await Storage.open(settings.database, synchronous=settings.sqlite_synchronous)
    try:
        if BOT_TEAM not in {t.id for t in await storage.teams()}:
            await storage.save_team(bot_team())
        username = _username(args.username)
        existing = {normalise_username(p.username): p.id for p in await storage.professionals()}
        # No password: the token is its only way in.
        pro = bot_account(
            existing.get(username) or "p_" + username, username, args.name, args.capacity
        )
        await storage.save_professional(pro)
        token = new_token()
        expires_at = storage.clock.now_ms() + args.days * 86_400_000
        await storage.create_session(hash_token(token), pro.id, expires_at)
    finally:
        await storage.close()
    return token


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Whatever Kanava creates (the database and its companions, backups, keys) is the
    # service user's alone; storage also sets each file's mode itself.
    os.umask(0o077)
    if args.command == "add-bot":
        settings = Settings.from_env(database=args.database)
        token = asyncio.run(_add_bot(settings, args))
        print(
            f"bot {args.username} saved (team {BOT_TEAM}; restart the server). Its token, "
            f"valid {args.days} days, shown only now:\n{token}"
        )
        return 0
    if args.command in ("retention", "backup", "restore"):
        settings = Settings.from_env(database=args.database)
        if args.command == "retention":
            result = asyncio.run(_retention(settings, args.dry_run))
        elif args.command == "backup":
            result = asyncio.run(Storage.backup(settings.database, args.file))
        else:
            if not args.file.exists():
                raise SystemExit(f"kanava: no backup at {args.file}")
            result = asyncio.run(Storage.restore(args.file, settings.database))
        print(json.dumps(result))
        return 0
    if args.command == "feedback-report":
        settings = Settings.from_env(database=args.database)
        print(json.dumps(asyncio.run(_feedback_report(settings, args.days)), ensure_ascii=False))
        return 0
    if args.command in ("add-team", "add-professional"):
        settings = Settings.from_env(database=args.database)
        if args.command == "add-team":
            print(asyncio.run(_add_team(settings, args)))
        else:
            password = sys.stdin.readline().rstrip("\n")
            if len(password) < 8:
                raise SystemExit("kanava: give a password of at least 8 characters on stdin")
            print(asyncio.run(_add_professional(settings, args, password)))
        return 0
    if args.command != "serve":
        parser.print_help()
        return 0 if args.command is None and argv is not None else 2
    overrides = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    if "allowed_origins" in overrides:
        overrides["allowed_origins"] = tuple(overrides["allowed_origins"])
    settings = Settings.from_env(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    if settings.uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    try:
        app = build_app(settings)
    except ValueError as exc:  # settings that cannot work: say which, do not start
        raise SystemExit(f"kanava: {exc}") from None
    if settings.demo:
        print("Kanava demo accounts (password 'kanava-demo'):")
        for _, username, _, name, title, role, teams in DEMO_ACCOUNTS:
            print(f"  {username:11} {name} ({title}, role {role}; teams: {', '.join(teams)})")
        base = f"http://{settings.host}:{settings.port}"
        print(f"Client page: {base}/client   Professional page: {base}/pro   Demo: {base}/demo")
    # The collector's full passes stall every chat for tens of milliseconds on a busy
    # server (they showed as p99 spikes in scripts/bench): start-up objects are frozen out
    # of its reach, and collections run on larger batches of allocations.
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log_class=AccessLog,
        print=lambda text: print(text, file=sys.stderr),
        shutdown_timeout=10,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
