"""Kanava as a city's IT team installs it: a wheel, in a virtual environment of its own.

The wheel is built from a copy of the checkout (so no earlier build can leak into it) and must
build without a single warning. It holds every file of ``protocol/``, ``server/`` and
``static_client/`` (code, migrations, configuration, the bot's knowledge base, the pages) and
nothing else: no tests, no scripts. Installed in a fresh virtual environment outside the
checkout, ``kanava serve`` runs from that environment alone, serves its pages, opens a chat
with the bot that answers from its knowledge base, and exits cleanly on SIGTERM. The settings
file and the systemd units that docs/operations.md gives for such an install are checked too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from kanava_testing import free_port

from server.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# The folders that make up the installed Kanava; everything else stays in the checkout.
SHIPPED = ("protocol", "server", "static_client")
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check")


def source_files() -> list[Path]:
    """The checkout's files, relative to it: what git tracks, and new files it does not ignore."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [Path(name) for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file
        skip = {"node_modules", "__pycache__", "var", "build", "dist"}
        names = []
        for folder, subfolders, files in os.walk(ROOT):
            subfolders[:] = [
                d for d in subfolders if d not in skip and d[0] != "." and "egg-info" not in d
            ]
            names += [Path(folder, f).relative_to(ROOT) for f in files if f != ".git"]
    return sorted(name for name in names if (ROOT / name).is_file())


def shipped_files() -> set[str]:
    return {
        name.as_posix()
        for name in source_files()
        if name.parts[0] in SHIPPED and "__pycache__" not in name.parts and name.suffix != ".pyc"
    }


def run(args: list[str] | tuple[str, ...], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that points Python or Kanava elsewhere."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("KANAVA_")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel, built with pip as an IT team would, and what the build printed."""
    source = tmp_path_factory.mktemp("source")
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    done = run([*PIP, "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)], env=clean_env())
    wheels = list(dist.glob("kanava-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], done.stdout + done.stderr


def test_the_wheel_builds_without_a_warning_and_holds_every_file_kanava_needs(
    built: tuple[Path, str],
) -> None:
    wheel, output = built
    # Any warning of the build (setuptools', or pip's about the project) fails; only pip's
    # note on a package index of this machine that lacks a package is not about Kanava.
    warnings = [
        line
        for line in output.splitlines()
        if re.search(r"warn|!!", line, re.I)
        and not re.match(r"WARNING: Location '.*' is ignored", line)
    ]
    assert not warnings, output
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "kanava = server.cli:main" in archive.read(entry_points).decode()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == set(SHIPPED), "the wheel holds other folders than Kanava's own"
    packed = {name for name in names if ".dist-info/" not in name}
    expected = shipped_files()
    # A file missing here is of a kind pyproject.toml's [tool.setuptools.package-data] does
    # not name yet: add its pattern there.
    assert sorted(expected - packed) == [], "files of the checkout missing from the wheel"
    assert sorted(packed - expected) == [], "files in the wheel that the checkout does not have"
    # Wherever they live inside the packages: migrations, configuration, knowledge, pages.
    for must in ("/001_initial.sql", "/hours.toml", "/knowledge/prescription.toml"):
        assert any(name.endswith(must) for name in packed), must
    assert {"static_client/index.html", "static_client/i18n/fi.json"} <= packed


@pytest.fixture(scope="module")
def installed(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the checkout with the wheel and its dependencies
    (the versions of the test environment, so that pip's cache has them)."""
    wheel, _ = built
    venv = tmp_path_factory.mktemp("venv")
    assert not venv.is_relative_to(ROOT), "the virtual environment must be outside the checkout"
    run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)])
    frozen = run([*PIP, "freeze", "--exclude-editable"]).stdout.splitlines()
    constraints = venv / "constraints.txt"
    constraints.write_text(
        "\n".join(
            line
            for line in frozen
            if re.fullmatch(r"[A-Za-z0-9._-]+==\S+", line) and not line.startswith("kanava==")
        ),
        encoding="utf-8",
    )
    run(
        [
            *PIP,
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--root-user-action=ignore",
            "--constraint",
            str(constraints),
            str(wheel),
        ],
        env=clean_env(),
    )
    return venv


def test_the_installed_kanava_runs_from_its_own_environment(
    installed: Path, tmp_path: Path
) -> None:
    where = run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import json, protocol, server, static_client;"
            "print(json.dumps([protocol.__file__, server.__file__, *static_client.__path__]))",
        ],
        cwd=tmp_path,
        env=clean_env(),
    )
    for path in map(Path, json.loads(where.stdout)):
        assert path.is_relative_to(installed), path
        assert not path.resolve().is_relative_to(ROOT), path
    assert (installed / "bin" / "kanava").is_file()


def documented(kind: str) -> dict[str, str]:
    """The files docs/operations.md tells to write, by path: its ``kind`` blocks."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{kind}\n# (/etc/\S+)\n(.*?)```", text, re.S)
    return dict(blocks)


def test_the_documented_settings_are_kanavas_and_fit_a_service() -> None:
    (env_file,) = [body for path, body in documented("sh").items() if path.endswith(".env")]
    environ = {}
    for line in env_file.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert name.startswith("KANAVA_") and name[7:].lower() in Settings.names(), name
            environ[name] = value
    settings = Settings.from_env(environ)
    settings.check()
    assert settings.listens_on_loopback() and not settings.dev_insecure_cookies
    assert not settings.demo and settings.trusted_proxies == ("127.0.0.1",)
    state = Path("/var/lib/kanava")
    for path in (settings.database, settings.identity_key_file, settings.oidc_key_file):
        assert path.parent == state, path


def test_the_documented_systemd_units_are_valid(installed: Path, tmp_path: Path) -> None:
    """``systemd-analyze verify`` on the units of docs/operations.md, with /opt/kanava being
    the virtual environment the wheel was installed in."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = {
        path: body
        for path, body in documented("ini").items()
        if path.startswith("/etc/systemd/system/")
    }
    assert {Path(path).name for path in units} == {
        "kanava.service",
        "kanava-daily.service",
        "kanava-daily.timer",
    }
    for path, body in units.items():
        (tmp_path / Path(path).name).write_text(body.replace("/opt/kanava", str(installed)))
    service = units["/etc/systemd/system/kanava.service"]
    for directive in (
        "User=kanava",
        "StateDirectory=kanava",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/kanava",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "EnvironmentFile=/etc/kanava/kanava.env",
    ):
        assert directive in service.splitlines(), directive
    # Above the server's shutdown timeout (10 s), so systemd never kills a draining server.
    stop = re.search(r"^TimeoutStopSec=(\d+)$", service, re.M)
    assert stop and int(stop[1]) > 10
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / Path(path).name) for path in units)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr


async def test_kanava_serve_from_the_wheel_serves_its_pages_and_the_bot_answers(
    installed: Path, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var = tmp_path / "var"
    log_path = tmp_path / "kanava.log"
    env = clean_env(
        # Plain http on a loopback port, as scripts/serve runs it.
        KANAVA_DEV_INSECURE_COOKIES="true",
        KANAVA_OIDC_KEY_FILE=str(var / "oidc-client-key.json"),
        KANAVA_IDENTITY_KEY_FILE=str(var / "identity-code.key"),
    )
    command = [str(installed / "bin" / "kanava"), "serve", "--port", str(port)]
    command += ["--database", str(var / "kanava.sqlite3")]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        async with aiohttp.ClientSession() as http:
            await _wait_ready(http, base, process, log_path)
            await _check_pages(http, base)
        await _check_bot(base)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    logged = log_path.read_text()
    assert "Traceback" not in logged and '"level": "error"' not in logged, logged
    assert "applying migration 001" in logged  # the migrations came with the wheel


async def _wait_ready(
    http: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"kanava serve exited:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"kanava serve did not get ready:\n{log.read_text()}"
        try:
            async with http.get(base + "/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)


async def _check_pages(http: aiohttp.ClientSession, base: str) -> None:
    pages = {
        "/": "<title>Kanava</title>",
        "/pro": 'src="/static/pro.js"',
        "/client": 'src="/static/client.js"',
        "/widget.js": "Kanava chat widget",
    }
    for path, marker in pages.items():
        async with http.get(base + path) as response:
            body = await response.text()
            assert response.status == 200, (path, response.status, body)
            assert marker in body, (path, body[:500])
    # Every script, style sheet and translation the pages load, byte for byte.
    static = ROOT / "static_client"
    for file in sorted(static.rglob("*")):
        if not file.is_file() or file.suffix in (".html", ".htm") or "__pycache__" in file.parts:
            continue
        path = "/static/" + file.relative_to(static).as_posix()
        async with http.get(base + path) as response:
            assert response.status == 200, path
            assert await response.read() == file.read_bytes(), path


async def _check_bot(base: str) -> None:
    """A chat with the bot: its greeting, then its answer from the knowledge base."""
    url = base.replace("http://", "ws://") + "/ws/client"
    async with websockets.connect(
        url, subprotocols=["kanava.v1.json"], origin=base, open_timeout=10
    ) as ws:
        assert ws.subprotocol == "kanava.v1.json"
        await ws.send(json.dumps({"type": "bot.start", "language": "fi"}))
        opened = await _receive(ws, "conversation.opened")
        conversation = opened["conversation"]
        assert conversation["team"] == "bot"
        greeting = (await _receive(ws, "message.new"))["message"]
        assert greeting["sender_role"] == "professional" and "botti" in greeting["text"]
        await ws.send(
            json.dumps(
                {
                    "type": "message.send",
                    "conversation_id": conversation["conversation_id"],
                    "msg_id": "wheel-question-1",
                    "text": "miten saan uusittua reseptin?",
                }
            )
        )
        while True:
            answer = (await _receive(ws, "message.new"))["message"]
            if answer["sender_role"] == "professional":
                break
        assert "OmaKanna" in answer["text"], answer


async def _receive(ws: Any, kind: str) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping others (state changes, acks)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] != "error", frame
        if frame["type"] == kind:
            return frame
