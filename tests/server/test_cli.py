"""The ``kanava`` command as an operator runs it: a separate process, then SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import websockets
from kanava_testing import Chat, KanavaServer, free_port, login_token

from protocol import JSON, to_wire
from protocol.messages import ConversationOpen, ConversationOpened, ConversationStateChanged

ROOT = Path(__file__).resolve().parents[2]


def kanava(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,  # type: ignore[call-overload]
    )


def wait_until_healthy(
    process: subprocess.Popen[str], port: int, output: Callable[[], str]
) -> None:
    """Wait for a started ``kanava serve`` to answer /healthz; ``output`` tells why not."""
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                assert json.load(r) == {"status": "ok"}
                return
        except OSError:
            assert process.poll() is None, output()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)


def test_help_lists_the_serve_command_and_its_options() -> None:
    top = kanava("--help")
    assert top.returncode == 0
    assert "serve" in top.stdout
    serve = kanava("serve", "--help")
    assert serve.returncode == 0
    for option in ("--host", "--port", "--database", "--demo", "--allowed-origin"):
        assert option in serve.stdout


async def test_serve_runs_chats_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "KANAVA_GRACE_SECONDS": "5", "KANAVA_INTAKE_REQUIRED": "false"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--demo",
            "--port",
            str(port),
            "--database",
            str(tmp_path / "k.sqlite3"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_healthy(process, port, lambda: process.stdout.read() if process.stdout else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/client", timeout=5) as page:
            assert b"<html" in page.read().lower()
        # The shipped default, even on loopback: the console's cookies are Secure, __Host-.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/session", timeout=5) as r:
            cookie = r.headers["Set-Cookie"]
            assert cookie.startswith("__Host-kanava_login_csrf=") and "Secure" in cookie
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/client",
            subprotocols=[JSON.subprotocol],
            origin=f"http://127.0.0.1:{port}",
        ) as ws:
            await ws.send(JSON.dumps(to_wire(ConversationOpen(client_name="Operaattori"))).decode())
            opened = JSON.decode_outbound(await ws.recv())
            assert isinstance(opened, ConversationOpened)
            process.send_signal(signal.SIGTERM)
            try:
                await ws.recv()
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1001  # going away
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output, _ = process.communicate(timeout=20)
    assert "demo accounts" in output.lower()


def test_plain_http_cookies_are_refused_off_loopback(tmp_path: Path) -> None:
    """dev_insecure_cookies on an address others reach: the server does not start, and says
    what to change."""
    env = {**os.environ, "KANAVA_DEV_INSECURE_COOKIES": "true"}
    database = str(tmp_path / "k.sqlite3")
    refused = kanava("serve", "--host", "0.0.0.0", "--database", database, env=env)
    assert refused.returncode != 0
    assert "dev_insecure_cookies" in refused.stderr and "127.0.0.1" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not Path(database).exists()  # refused before anything started


async def test_operators_add_teams_and_professionals_with_their_own_capacity(
    tmp_path: Path,
) -> None:
    database = str(tmp_path / "k.sqlite3")
    made = kanava(
        "add-team", "malmi", "Malmin terveysasema", "--mode", "auto", "--database", database
    )
    assert made.returncode == 0, made.stderr
    added = kanava(
        "add-professional",
        "sanna",
        "--name",
        "Sanna Sairaanhoitaja",
        "--team",
        "malmi",
        "--capacity",
        "2",
        "--database",
        database,
        input="salasana-123\n",
    )
    assert added.returncode == 0, added.stderr
    assert "capacity 2" in added.stdout
    refused = kanava(
        "add-professional",
        "x",
        "--name",
        "X",
        "--team",
        "nowhere",
        "--database",
        database,
        input="salasana-123\n",
    )
    assert refused.returncode != 0 and "no such team" in refused.stderr
    short = kanava(
        "add-professional",
        "y",
        "--name",
        "Y",
        "--team",
        "malmi",
        "--database",
        database,
        input="lyhyt\n",
    )
    assert short.returncode != 0
    supervisor = kanava(
        "add-professional",
        "saara",
        "--name",
        "Saara Salo",
        "--team",
        "malmi",
        "--role",
        "supervisor",
        "--oidc-subject",
        "org-4711",
        "--database",
        database,
        input="salasana-456\n",
    )
    assert supervisor.returncode == 0, supervisor.stderr
    # Updating the account (a new name) keeps its role and its organisation sign-in.
    renamed = kanava(
        "add-professional",
        "saara",
        "--name",
        "Saara Salo-Virta",
        "--team",
        "malmi",
        "--database",
        database,
        input="salasana-456\n",
    )
    assert renamed.returncode == 0, renamed.stderr
    db = sqlite3.connect(database)
    row = db.execute(
        "SELECT display_name, role, oidc_subject FROM professionals WHERE username = 'saara'"
    ).fetchone()
    db.close()
    assert row == ("Saara Salo-Virta", "supervisor", "org-4711")

    server = KanavaServer(Path(database), demo=False).start()
    chat = Chat(server)
    try:
        pro = await chat.open_pro("sanna", token=await chat.login("sanna", "salasana-123"))
        assert (pro.welcome.capacity, pro.welcome.teams) == (2, ("malmi",))
        clients = [await chat.open_client(f"Asiakas {i}", team="malmi") for i in range(3)]
        states = [
            await c.expect(ConversationStateChanged, lambda m: m.conversation.state == "assigned")
            for c in clients[:2]
        ]
        assert {
            s.conversation.professional.name for s in states if s.conversation.professional
        } == {"Sanna Sairaanhoitaja"}
        await clients[2].nothing_more(cls=ConversationStateChanged)  # capacity 2 reached
    finally:
        await chat.close_all()
        server.stop()


SIGN_IN_PATHS = ("/identity/start", "/identity/callback", "/pro/oidc/start", "/api/login")


def test_the_access_log_names_paths_but_never_query_strings(tmp_path: Path) -> None:
    """Tickets, authorization codes and states of sign-in and identification reach the
    access log of a running ``kanava serve`` neither in the request line nor in a Referer."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_file = tmp_path / "stderr.log"
    env = {
        **os.environ,
        "KANAVA_LOG_LEVEL": "info",
        "KANAVA_LOG_FORMAT": "text",
        "KANAVA_TRUSTED_PROXIES": "127.0.0.1",
    }
    secrets = {
        "ticket": "SECRET-TICKET-7f3a9c",
        "code": "SECRET-CODE-41be2d",
        "state": "SECRET-STATE-9d0c11",
        "hint": "SECRET-HINT-55aa01",
        "login": "SECRET-LOGIN-c0ffee",
        "referer": "SECRET-REFERER-abcdef",
    }
    requests = [
        ("GET", f"/identity/start?ticket={secrets['ticket']}&lang=fi"),
        ("GET", f"/identity/callback?code={secrets['code']}&state={secrets['state']}"),
        ("GET", f"/pro/oidc/start?login_hint={secrets['hint']}"),
        ("POST", f"/api/login?token={secrets['login']}"),
        ("GET", "/healthz"),
    ]
    with log_file.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--database"]
            + [str(tmp_path / "k.sqlite3")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        try:
            wait_until_healthy(process, port, log_file.read_text)
            for method, path in requests:
                request = urllib.request.Request(
                    base + path,
                    method=method,
                    data=b"{}" if method == "POST" else None,
                    headers={
                        "Referer": f"{base}/client?ticket={secrets['referer']}",
                        # As a trusted proxy in front of Kanava would say who asked.
                        "X-Forwarded-For": "198.51.100.23",
                    },
                )
                try:
                    urllib.request.urlopen(request, timeout=5).close()
                except urllib.error.HTTPError:
                    pass  # refused or unknown here: what matters is what the log says
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    logged = log_file.read_text()
    for name, secret in secrets.items():
        assert secret not in logged, (name, logged)
    for path in SIGN_IN_PATHS:
        assert f' {path}" ' in logged, (path, logged)  # the access log is on, and has the path
    access = [line for line in logged.splitlines() if "aiohttp.access" in line]
    assert "?" not in "".join(access)
    # The person's address behind the trusted proxy, not the proxy's.
    asked = [line for line in access if any(f" {path}" in line for path in SIGN_IN_PATHS)]
    assert asked and all("198.51.100.23" in line for line in asked), access


async def test_a_username_is_one_account_whatever_its_case_width_or_spaces(
    tmp_path: Path,
) -> None:
    """Usernames are stored and compared normalised (NFKC, case-folded, stripped): a second
    add-professional with another spelling updates the account, and links it to the
    organisation's sign-in, and every spelling signs in to it."""
    database = str(tmp_path / "k.sqlite3")
    assert kanava("add-team", "malmi", "Malmi", "--database", database).returncode == 0
    common = ("--team", "malmi", "--database", database)
    first = kanava(
        "add-professional", "  Sanna ", "--name", "Sanna S", *common, input="salasana-123\n"
    )
    assert first.returncode == 0, first.stderr
    assert "professional sanna saved" in first.stdout
    again = kanava(
        "add-professional",
        "ＳＡＮＮＡ",  # full-width capitals
        "--name",
        "Sanna Sairaanhoitaja",
        "--oidc-subject",
        "org-4712",
        *common,
        input="salasana-456\n",
    )
    assert again.returncode == 0, again.stderr
    empty = kanava("add-professional", " \u3000 ", "--name", "X", *common, input="salasana-789\n")
    assert empty.returncode != 0 and "username is empty" in empty.stderr
    db = sqlite3.connect(database)
    rows = db.execute(
        "SELECT id, username, display_name, oidc_subject FROM professionals"
    ).fetchall()
    db.close()
    assert rows == [("p_sanna", "sanna", "Sanna Sairaanhoitaja", "org-4712")]

    server = KanavaServer(Path(database), demo=False).start()
    try:
        for spelling in ("sanna", "Sanna", " SANNA ", "ｓａｎｎａ"):
            assert await login_token(server.base, spelling, "salasana-456")
    finally:
        server.stop()
