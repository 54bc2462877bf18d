"""Start a Kanava server or the bare relay as a child process on a loopback port.

The child is started with ``python -m server.cli serve`` (or ``scripts/baseline_relay.py``),
optionally under ``taskset -c CPU``, with its output in a log file, and is ready when
``/healthz`` answers. :func:`rss_kb` reads a process's resident memory from ``/proc``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from server.guard.limits import no_address_limits_env

__all__ = ["ROOT", "ServerProcess", "free_port", "rss_kb", "start_kanava", "start_relay"]

ROOT = Path(__file__).resolve().parents[2]

# Per-connection rate limits for throughput runs: high enough never to be the limit.
RAISED_RATE_LIMITS = {
    "KANAVA_CLIENT_RATE_PER_SECOND": "1000000",
    "KANAVA_CLIENT_RATE_BURST": "1000000",
    "KANAVA_PRO_RATE_PER_SECOND": "1000000",
    "KANAVA_PRO_RATE_BURST": "1000000",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kb(pid: int) -> int | None:
    """Resident set size of a process in KiB (VmRSS), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError):
        return None


class ServerProcess:
    """A started child server; ``stop()`` ends it (SIGINT, then SIGKILL after a timeout)."""

    def __init__(self, kind: str, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.kind = kind
        self.proc = proc
        self.port = port
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the {self.kind} server exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(self.http_base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the {self.kind} server did not start in {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _command(args: list[str], cpu: str | None) -> list[str]:
    if cpu is None:
        return args
    if shutil.which("taskset") is None:
        raise RuntimeError("--server-cpu needs taskset (util-linux)")
    return ["taskset", "-c", cpu, *args]


def start_kanava(
    database: Path,
    *,
    log: Path,
    port: int | None = None,
    cpu: str | None = None,
    uvloop: bool = True,
    raise_rate_limits: bool = True,
    address_limits: bool = False,
    intake_areas: Path | None = None,
    env: dict[str, str] | None = None,
    log_level: str = "warning",
) -> ServerProcess:
    """Start ``kanava serve`` on 127.0.0.1 with ``database`` (seed it first).

    With ``intake_areas`` (the load tool's areas file) the simulated citizens go through the
    intake: it is required, open at any hour, and without identification, which needs a
    person at an identity provider. Without it they send ``conversation.open``. Limits per
    client address are off unless ``address_limits``.
    """
    port = port or free_port()
    child_env = dict(os.environ)
    child_env["KANAVA_UVLOOP"] = "1" if uvloop else "0"
    child_env.pop("KANAVA_OIDC_ISSUER", None)
    if intake_areas is not None:
        child_env["KANAVA_INTAKE_REQUIRED"] = "true"
        child_env["KANAVA_ALWAYS_OPEN"] = "true"
        child_env["KANAVA_AREAS_FILE"] = str(intake_areas)
    else:
        child_env["KANAVA_INTAKE_REQUIRED"] = "false"
    if raise_rate_limits:
        child_env.update(RAISED_RATE_LIMITS)
    if not address_limits:
        # Every simulated person comes from this machine's address: limits per address
        # would count them all as one (scripts/flood.py is the run that wants them).
        child_env.update(no_address_limits_env())
    child_env.update(env or {})
    args = [
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database",
        str(database),
        "--log-level",
        log_level,
    ]
    out = open(log, "ab")  # noqa: SIM115 - handed to the child, closed by the OS at exit
    proc = subprocess.Popen(
        _command(args, cpu), cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT
    )
    out.close()
    server = ServerProcess("kanava", proc, port, log)
    server.wait_ready()
    return server


def start_relay(
    *, log: Path, port: int | None = None, cpu: str | None = None, uvloop: bool = True
) -> ServerProcess:
    """Start ``scripts/baseline_relay.py`` on 127.0.0.1."""
    port = port or free_port()
    args = [sys.executable, str(ROOT / "scripts" / "baseline_relay.py"), "--port", str(port)]
    if uvloop:
        args.append("--uvloop")
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen(_command(args, cpu), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    server = ServerProcess("relay", proc, port, log)
    server.wait_ready()
    return server
