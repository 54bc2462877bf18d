"""The ``kanava`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from aiohttp import web

from .app import build_app
from .demo import DEMO_ACCOUNTS
from .settings import Settings

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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 0 if args.command is None and argv is not None else 2
    overrides = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    if "allowed_origins" in overrides:
        overrides["allowed_origins"] = tuple(overrides["allowed_origins"])
    settings = Settings.from_env(**overrides)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    if settings.demo:
        print("Kanava demo accounts (password 'kanava-demo'):")
        for _, username, _, name, title, teams in DEMO_ACCOUNTS:
            print(f"  {username:10} {name} ({title}; teams: {', '.join(teams)})")
        base = f"http://{settings.host}:{settings.port}"
        print(f"Client page: {base}/client   Professional page: {base}/pro   Demo: {base}/demo")
    web.run_app(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        print=lambda text: print(text, file=sys.stderr),
        shutdown_timeout=10,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
