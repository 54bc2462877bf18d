"""``kanava serve`` as a child process: seeded with the ``kanava`` command, killed, restarted.

The accounts are created the way an operator creates them (``kanava add-team``,
``kanava add-professional`` with the password on standard input) before the first start.
The server is started with ``python -m server.cli serve`` on a fixed port and database, so
that every restart finds the same file and the peers the same address. It is ready when
``GET /healthz`` answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

__all__ = ["ROOT", "KanavaProcess", "free_port", "seed_accounts"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _kanava(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kanava {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def seed_accounts(
    database: Path,
    env: dict[str, str],
    *,
    team: str,
    usernames: list[str],
    password: str,
    capacity: int,
) -> None:
    """One pick-mode team and its professionals, with the ``kanava`` command."""
    _kanava(
        ["add-team", team, "Crash test station", "--mode", "pick", "--database", str(database)], env
    )
    for i, username in enumerate(usernames, 1):
        _kanava(
            [
                "add-professional",
                username,
                "--name",
                f"Crash Test Nurse {i}",
                "--team",
                team,
                "--capacity",
                str(capacity),
                "--database",
                str(database),
            ],
            env,
            stdin=password + "\n",
        )


class KanavaProcess:
    """``kanava serve`` on 127.0.0.1:``port`` with ``database``; its output goes to ``log``."""

    def __init__(self, database: Path, port: int, env: dict[str, str], log: Path) -> None:
        self.database = database
        self.port = port
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> None:
        args = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database",
            str(self.database),
        ]
        with open(self.log, "ab") as out:
            out.write(f"\n==== kanava crashtest: start {self.starts + 1} ====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1

    async def wait_ready(self, timeout: float = 30.0) -> float:
        """Poll ``/healthz`` until it answers; returns the monotonic time it first did."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        client_timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"kanava serve exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                try:
                    async with session.get(self.base + "/healthz") as response:
                        if response.status == 200:
                            return time.monotonic()
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass
                await asyncio.sleep(0.01)
        self.stop()
        raise RuntimeError(f"kanava serve did not answer /healthz in {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, no buffer is flushed, no socket closed politely."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, as an operator stops it; the exit code (0 for a clean stop)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def logged_errors(self) -> list[str]:
        """Lines of the server's log at level ERROR or with a traceback."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
