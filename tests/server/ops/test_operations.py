"""Operating Kanava: readiness for load balancers, a SIGTERM that drains and a restart that
takes everyone back, retention with counts, online backups that restore, and logs that carry
ids but never what people wrote."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from kanava_testing import Chat, KanavaServer, free_port, login_token

from protocol import JSON, to_wire
from protocol.messages import (
    Auth,
    ConversationClose,
    ConversationOpen,
    ConversationOpened,
    ConversationResume,
    ConversationStateChanged,
    DraftSet,
    MessageAck,
    MessageHistory,
    MessageNew,
    MessageSend,
    QueueTake,
    Welcome,
)
from server.logs import JsonFormatter, Redact
from server.ws.endpoint import DRAINING

ROOT = Path(__file__).resolve().parents[3]


def http_status(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def kanava(*args: str, timeout: float = 60) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- readiness ----------------------------------------------------------------------------


async def test_ready_means_storage_takes_writes_and_not_draining(server_factory: Any) -> None:
    server: KanavaServer = server_factory()
    assert http_status(server.base + "/healthz") == (200, {"status": "ok"})
    assert http_status(server.base + "/readyz") == (200, {"status": "ready"})

    async def drain() -> None:
        assert server.app is not None
        server.app[DRAINING].set()

    await server.acall(drain)
    assert http_status(server.base + "/readyz") == (503, {"status": "draining"})
    assert http_status(server.base + "/healthz")[0] == 200  # alive, just not taking more


async def test_not_ready_when_storage_cannot_write(server_factory: Any) -> None:
    server: KanavaServer = server_factory()
    await server.acall(lambda: server.storage.close())
    assert http_status(server.base + "/readyz") == (503, {"status": "storage_unavailable"})


# --- SIGTERM drains; the restarted server takes everyone back ----------------------------


class ServerProcess:
    def __init__(self, database: Path, port: int) -> None:
        self.database, self.port = database, port
        self.process: subprocess.Popen[str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "KANAVA_INTAKE_REQUIRED": "false",
            "KANAVA_GRACE_SECONDS": "120",
            "KANAVA_UVLOOP": "false",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--demo",
                "--port",
                str(self.port),
                "--database",
                str(self.database),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_status(self.base + "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            assert self.process.poll() is None, "the server exited at start"
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "k.sqlite3", free_port())
    yield proc
    proc.stop()


async def recv(ws: Any, kind: type[Any], timeout: float = 10) -> Any:
    while True:
        msg = JSON.decode_outbound(await asyncio.wait_for(ws.recv(), timeout))
        if isinstance(msg, kind):
            return msg


async def send(ws: Any, msg: Any) -> None:
    await ws.send(JSON.dumps(to_wire(msg)).decode())


async def test_sigterm_drains_and_the_restarted_server_takes_everyone_back(
    server_process: ServerProcess,
) -> None:
    proc = server_process
    proc.start()
    origin = proc.base
    connect = dict(subprotocols=[JSON.subprotocol], origin=origin)
    token = await login_token(proc.base, "hoitaja1")
    client = await websockets.connect(proc.base.replace("http", "ws") + "/ws/client", **connect)
    await send(client, ConversationOpen(client_name="Aino", team="kallio", open_id="o" * 20))
    opened = await recv(client, ConversationOpened)
    cid = opened.conversation.conversation_id
    pro = await websockets.connect(proc.base.replace("http", "ws") + "/ws/pro", **connect)
    await send(pro, Auth(token=token))
    await recv(pro, Welcome)
    await send(pro, QueueTake(conversation_id=cid))
    await recv(pro, MessageHistory)
    for i in range(5):
        await send(client, MessageSend(cid, f"c{i}", f"ennen {i}"))
        await recv(client, MessageAck)
    await recv(pro, MessageNew)

    started = time.monotonic()
    assert proc.process is not None
    proc.process.send_signal(signal.SIGTERM)
    for ws in (client, pro):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert "reconnect" in closed.value.rcvd.reason
    assert proc.process.wait(timeout=15) == 0
    assert time.monotonic() - started < 12  # bounded: aiohttp's 10-second shutdown timeout

    proc.start()
    client = await websockets.connect(proc.base.replace("http", "ws") + "/ws/client", **connect)
    await send(client, ConversationResume(token=opened.token, last_seq=5))
    await send(client, MessageSend(cid, "c5", "jälkeen"))
    ack = await recv(client, MessageAck)
    assert ack.seq == 6 and not ack.duplicate
    pro = await websockets.connect(proc.base.replace("http", "ws") + "/ws/pro", **connect)
    await send(pro, Auth(token=token, cursors={cid: 5}))
    welcome = await recv(pro, Welcome)
    assert [v.conversation_id for v in welcome.conversations] == [cid]  # still hers
    texts: list[str] = []
    while "jälkeen" not in texts:
        msg = JSON.decode_outbound(await asyncio.wait_for(pro.recv(), 10))
        if isinstance(msg, MessageHistory):
            texts += [m.text for m in msg.messages]
        elif isinstance(msg, MessageNew):
            texts.append(msg.message.text)
    assert texts == ["jälkeen"]  # exactly what she missed
    await client.close()
    await pro.close()
    proc.stop()
    db = sqlite3.connect(proc.database)
    seqs = [s for (s,) in db.execute("SELECT seq FROM messages ORDER BY seq")]
    db.close()
    assert seqs == [1, 2, 3, 4, 5, 6]


# --- retention ----------------------------------------------------------------------------


DAY_MS = 86_400_000

# Intakes that ended without a chat: their answers are health data too.
_ENDS = ("emergency", "bot", "guidance", "closed")


def _add_intake(db: sqlite3.Connection, intake_id: str, at: int, outcome: str, cid: Any) -> None:
    db.execute(
        "INSERT INTO intakes (id, started_at, finished_at, topic, language, triage, outcome, "
        "answers, conversation_id) VALUES (?, ?, ?, 'headache', 'fi', 'routine', ?, ?, ?)",
        (intake_id, at - 60_000, at, outcome, json.dumps({"pain": "kova päänsärky"}), cid),
    )
    db.execute(
        "INSERT INTO audit_events (at, conversation_id, actor_role, actor_id, action, detail) "
        "VALUES (?, NULL, 'client', ?, ?, 'headache')",
        (at, intake_id, f"intake_{outcome}"),
    )


def _rows(database: Path, sql: str, *params: Any) -> list[Any]:
    db = sqlite3.connect(database)
    try:
        return list(db.execute(sql, params))
    finally:
        db.close()


async def test_retention_deletes_every_kind_past_its_time_and_keeps_the_rest(
    server: KanavaServer,
) -> None:
    """Ended chats, chats that never ended, intakes that never became a chat, expired
    sessions and unsent texts of ended chats: the dry run counts each kind, the real run
    deletes exactly those and reports the same counts."""
    chat = Chat(server)
    kinds = {}
    for name in ("vanha anonyymi", "vanha tunnistettu", "vanha kirjattu", "tuore"):
        client, pro = await chat.open_chat_with("hoitaja1", name)
        await client.say(f"viesti: {name}")
        await pro.say(client.conversation_id, "vastaus")
        if name == "tuore":  # an unsent text, left behind when the chat ends
            await pro.send(DraftSet(client.conversation_id, "luonnos: verenpaine 150/95"))
            await asyncio.sleep(0.2)
        await pro.send(ConversationClose(client.conversation_id, "resolved"))
        await client.expect(ConversationStateChanged, lambda m: m.conversation.state == "closed")
        kinds[name] = client.conversation_id
    for name in ("hylätty", "hiljainen"):  # never ended
        client, pro = await chat.open_chat_with("hoitaja2", name)
        await client.say(f"viesti: {name}")
        kinds[name] = client.conversation_id
    await chat.close_all()
    old = int(time.time() * 1000) - 40 * DAY_MS
    db = sqlite3.connect(server.database)
    with db:
        for name in ("vanha anonyymi", "vanha tunnistettu", "vanha kirjattu"):
            db.execute("UPDATE conversations SET closed_at = ? WHERE id = ?", (old, kinds[name]))
        db.execute(
            "UPDATE conversations SET identity = '{}' WHERE id = ?", (kinds["vanha tunnistettu"],)
        )
        db.execute(
            "INSERT INTO records VALUES ('r_1', 1, ?, 'p_hoitaja1', 0, 'resolved', 'a', 'b', "
            "'c', 'd')",
            (kinds["vanha kirjattu"],),
        )
        # Abandoned 40 days ago; the quiet one was changed then too, but written in today.
        for name in ("hylätty", "hiljainen"):
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (old, kinds[name]))
        db.execute(
            "UPDATE messages SET sent_at = ? WHERE conversation_id = ?", (old, kinds["hylätty"])
        )
        for i, outcome in enumerate(_ENDS):
            _add_intake(db, f"i_old{i}", old, outcome, None)
        _add_intake(db, "i_fresh", old + 39 * DAY_MS, "emergency", None)
        _add_intake(db, "i_chat", old, "queued", kinds["vanha kirjattu"])  # its chat is kept
        db.execute(
            "UPDATE sessions SET expires_at = ? WHERE rowid = (SELECT MIN(rowid) FROM sessions)",
            (old,),
        )
    access_before = db.execute("SELECT COUNT(*) FROM access_log").fetchone()[0]
    sessions_before = db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    db.close()
    database = str(server.database)
    expected = {
        "anonymous": 1,
        "bot_only": 0,
        "identified": 0,
        "never_closed": 1,
        "intakes_without_chat": 4,
        "expired_sessions": 1,
        "drafts_of_closed_chats": 1,
    }

    counted = kanava("retention", "--dry-run", "--database", database)
    assert counted["would_delete"] == expected
    assert _rows(server.database, "SELECT COUNT(*) FROM intakes") == [(6,)]  # nothing went
    done = kanava("retention", "--database", database)
    assert done["deleted"] == expected
    assert done["messages_deleted"] == 3  # two in the anonymous chat, one in the abandoned
    assert done["kept"] == {
        "conversations": 4,
        "identified": 1,
        "intakes": 2,
        "sessions": sessions_before - 1,
    }

    left = {r for (r,) in _rows(server.database, "SELECT id FROM conversations")}
    texts = {t for (t,) in _rows(server.database, "SELECT text FROM messages")}
    assert kinds["vanha anonyymi"] not in left and "viesti: vanha anonyymi" not in texts
    assert kinds["hylätty"] not in left and "viesti: hylätty" not in texts
    kept = ("vanha tunnistettu", "vanha kirjattu", "tuore", "hiljainen")
    assert {kinds[n] for n in kept} <= left
    intakes = {r for (r,) in _rows(server.database, "SELECT id FROM intakes")}
    assert intakes == {"i_fresh", "i_chat"}
    audit = {r for (r,) in _rows(server.database, "SELECT actor_id FROM audit_events")}
    assert not {f"i_old{i}" for i in range(len(_ENDS))} & audit  # what they were about
    assert {"i_fresh", "i_chat"} <= audit
    assert _rows(
        server.database, "SELECT COUNT(*) FROM sessions WHERE expires_at < ?", old + 1
    ) == [(0,)]
    assert _rows(server.database, "SELECT text FROM drafts") == []
    # Who saw what stays on record, and the log still refuses to be changed.
    assert _rows(server.database, "SELECT COUNT(*) FROM access_log") == [(access_before,)]
    db = sqlite3.connect(server.database)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM access_log")
    db.close()


async def test_a_chat_deleted_by_retention_while_the_server_runs_is_ended_there_too(
    server: KanavaServer,
) -> None:
    """The running server still holds an abandoned chat that retention deleted: it lets go
    of it (both parties are told it ended), so a late message is refused as for any ended
    chat, and the other chats go on."""
    chat = Chat(server)
    try:
        gone_client, nurse = await chat.open_chat_with("hoitaja1", "hylätty")
        await gone_client.say("viesti ennen kuukauden taukoa")
        other, _ = await chat.open_chat_with("hoitaja2", "toinen")
        old = int(time.time() * 1000) - 40 * DAY_MS
        db = sqlite3.connect(server.database)
        with db:
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?",
                (old, gone_client.conversation_id),
            )
            db.execute(
                "UPDATE messages SET sent_at = ? WHERE conversation_id = ?",
                (old, gone_client.conversation_id),
            )
        db.close()
        done = await asyncio.to_thread(kanava, "retention", "--database", str(server.database))
        assert done["deleted"]["never_closed"] == 1

        assert await server.acall(server.hub.drop_deleted) == [gone_client.conversation_id]
        ended = await gone_client.expect(
            ConversationStateChanged, lambda m: m.conversation.state == "closed"
        )
        assert ended.conversation.closed_by == "server"
        await nurse.expect(ConversationStateChanged, lambda m: m.conversation.state == "closed")
        await gone_client.send(MessageSend(gone_client.conversation_id, "late", "vielä yksi"))
        await gone_client.expect_error("conversation_closed")
        assert await other.say("muut jatkavat")
        assert _rows(
            server.database,
            "SELECT COUNT(*) FROM messages WHERE conversation_id = ?",
            gone_client.conversation_id,
        ) == [(0,)]
    finally:
        await chat.close_all()


# --- online backup and restore ------------------------------------------------------------


async def test_an_online_backup_is_consistent_and_restores(
    chat: Chat, server_factory: Any, tmp_path: Path
) -> None:
    client, pro = await chat.open_chat_with("hoitaja1", "Aino")
    sent = 0

    async def keep_writing() -> None:
        nonlocal sent
        while True:
            await client.say(f"viesti {sent}")
            sent += 1

    writer = asyncio.create_task(keep_writing())
    try:
        while sent < 20:
            await asyncio.sleep(0.05)
        backup = tmp_path / "backup" / "kanava-copy.sqlite3"
        done = await asyncio.to_thread(
            kanava, "backup", str(backup), "--database", str(chat.server.database)
        )
        assert done["messages"] >= 20
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    db = sqlite3.connect(backup)
    seqs = [s for (s,) in db.execute("SELECT seq FROM messages ORDER BY seq")]
    db.close()
    assert seqs == list(range(1, len(seqs) + 1))  # a snapshot: no gap, nothing half-written

    restored = tmp_path / "restored.sqlite3"
    counts = kanava("restore", str(backup), "--database", str(restored))
    assert counts["messages"] == len(seqs)
    again: KanavaServer = server_factory(database=restored)
    reader = Chat(again)
    try:
        nurse = await reader.open_pro("hoitaja1")
        assert [v.conversation_id for v in nurse.welcome.conversations] == [client.conversation_id]
        history = await nurse.history(client.conversation_id)
        assert [m.text for m in history] == [f"viesti {i}" for i in range(len(seqs))]
    finally:
        await reader.close_all()


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common default umask (group and others may read): what a service gets unless
    it sets its own."""
    old = os.umask(0o022)
    yield
    os.umask(old)


async def test_the_database_its_wal_and_shm_and_backups_are_the_service_users_alone(
    server_factory: Any, tmp_path: Path, usual_umask: None
) -> None:
    database = tmp_path / "var" / "kanava.sqlite3"
    server: KanavaServer = server_factory(database=database)
    chat = Chat(server)
    try:
        client, _ = await chat.open_chat_with("hoitaja1", "Aino")
        await client.say("päänsärkyä")
        wal, shm = (database.with_name(database.name + end) for end in ("-wal", "-shm"))
        assert wal.exists() and shm.exists()
        for path in (database, wal, shm):
            assert _mode(path) == "0o600", path
        assert _mode(database.parent) == "0o700"  # made for it

        backup = tmp_path / "backups" / "kanava-copy.sqlite3"
        await asyncio.to_thread(kanava, "backup", str(backup), "--database", str(database))
        assert _mode(backup) == "0o600"
        restored = tmp_path / "restored.sqlite3"
        await asyncio.to_thread(kanava, "restore", str(backup), "--database", str(restored))
        assert _mode(restored) == "0o600"
    finally:
        await chat.close_all()
    server.stop()

    # A database made before this (or copied with a looser mode) is made private on open.
    for path in (database, wal, shm):
        path.touch()
        os.chmod(path, 0o644)
    server.start()
    try:
        for path in (database, wal, shm):
            assert _mode(path) == "0o600", path
    finally:
        server.stop()


def test_a_damaged_backup_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "restore",
            str(bad),
            "--database",
            str(tmp_path / "x"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert not (tmp_path / "x").exists() or (tmp_path / "x").stat().st_size == 0


# --- logs ---------------------------------------------------------------------------------


def test_log_lines_are_json_with_ids_and_identity_codes_are_redacted() -> None:
    record = logging.LogRecord(
        "kanava.test", logging.INFO, __file__, 1, "record %s for %s", ("r_1", "131052-308T"), None
    )
    record.conversation_id = "c_abc"
    assert Redact().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "record r_1 for [identity code]"
    assert line["conversation_id"] == "c_abc" and line["level"] == "info"


@pytest.mark.parametrize(
    "written", ["131052 - 308T", "131052\u2013308T", "131052\u2212308T", "131052\uff0d308T"]
)
def test_identity_codes_with_other_dashes_or_spaces_are_redacted_from_logs(written: str) -> None:
    record = logging.LogRecord(
        "kanava.test", logging.INFO, __file__, 1, "lookup of %s failed", (written,), None
    )
    assert Redact().filter(record)
    assert json.loads(JsonFormatter().format(record))["message"] == (
        "lookup of [identity code] failed"
    )


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.raw: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("websockets"):
            return  # the test's own clients, not the server
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.raw.append(text)


@pytest.fixture
def provider_server(server_factory: Any, tmp_path: Path) -> Iterator[KanavaServer]:
    from idp import provider_for_kanava

    with provider_for_kanava(tmp_path, "kanava-logs") as (port, identification):
        yield server_factory(port=port, always_open=True, intake_required=True, **identification)


async def test_a_full_run_logs_ids_but_no_message_text_or_identity_code(
    provider_server: KanavaServer,
) -> None:
    """Aino identifies, chats, is transferred with a note, gets a record entry and gives
    feedback; nothing she or the nurses wrote, and not her identity code, is in the log."""
    from console_testing import Browser
    from intake_testing import identified_intake

    from protocol.messages import ConversationTransfer, FeedbackSend

    keep = _Keep()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    secrets_used = [
        "Minulla on kovaa päänsärkyä ja huimausta",
        "Oletko ottanut särkylääkettä tänään",
        "Siirto: tarvitsee lääkärin arvion",
        "Kiitos avusta, oli selkeä vastaus",
        "Aino Testinen",
    ]
    try:
        desk, client, opened = await identified_intake(provider_server, JSON, "aino")
        assert isinstance(opened, ConversationOpened)
        cid = opened.conversation.conversation_id
        nurse = await desk.open_pro("hoitaja1")
        await nurse.send(QueueTake(conversation_id=cid))
        await nurse.history(cid)
        client.conversation_id = cid
        await client.say(secrets_used[0])
        await nurse.say(cid, secrets_used[1])
        other = await desk.open_pro("hoitaja2")
        await nurse.send(ConversationTransfer(cid, to_professional=other.id, note=secrets_used[2]))
        await other.history(cid)
        browser = Browser(provider_server)
        try:
            await browser.sign_in("hoitaja2")
            status, body = await browser.get(f"/api/conversations/{cid}/record")
            assert status == 200
            status, body = await browser.post(
                f"/api/conversations/{cid}/record", {**body["draft"], "close": True}
            )
            assert status == 200, body
            status, _ = await browser.get(body["saved"]["text_url"])
            assert status == 200
        finally:
            await browser.close()
        await client.send(FeedbackSend(rating=5, comment=secrets_used[3]))
        await desk.close_all()
    finally:
        root.removeHandler(keep)
        root.setLevel(old_level)
    log_text = "\n".join(keep.raw)
    assert len(keep.raw) > 10 and cid in log_text  # the run was logged, by ids
    for secret in secrets_used:
        assert secret not in log_text, secret
    # Aino's fictitious identity code, in any spelling.
    digits = "150385904"
    code = f"150385-904{'0123456789ABCDEFHJKLMNPRSTUVWXY'[int(digits) % 31]}"
    assert code not in log_text and code.replace("-", "") not in log_text
