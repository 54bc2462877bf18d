"""The crash test in short: a few SIGKILLs, a few network cuts, nothing acknowledged lost.

``scripts/crashtest.py`` runs as a subprocess exactly as people run it (it starts ``kanava
serve`` as a process of its own, kills and restarts it); its JSON output is the contract
checked here; the full run is the script with its defaults (40 clients, 4 professionals,
20 kills). A last test feeds the checker a damaged database, to show that it does see a lost,
a duplicated and a misplaced message.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CRASHTEST = ROOT / "scripts" / "crashtest.py"


def run_crashtest(tmp_path: Path, *args: str, timeout: float = 120) -> dict[str, Any]:
    out = tmp_path / "crashtest.json"
    proc = subprocess.run(
        [sys.executable, str(CRASHTEST), *args, "--quiet", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}"
    assert "RESULT: OK" in proc.stdout
    for line in ("sent", "acknowledged", "lost", "duplicated", "misplaced"):
        assert f"  {line} " in proc.stdout
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def assert_nothing_lost(counts: dict[str, int]) -> None:
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["misplaced"] == 0
    assert counts["gaps"] == 0
    assert counts["unseen"] == 0
    assert counts["view_conflicts"] == 0
    assert counts["unresolved"] == 0
    assert counts["acknowledged"] > 0
    assert counts["acknowledged"] == counts["sent"] == counts["stored"]
    # Every client and every professional with chats was checked.
    assert counts["unassigned_conversations"] == 0


@pytest.mark.slow
def test_killed_and_restarted_server_loses_nothing_acknowledged(tmp_path: Path) -> None:
    result = run_crashtest(
        tmp_path,
        "--kills",
        "5",
        "--clients",
        "12",
        "--pros",
        "2",
        "--mode",
        "process",
        "--duration-between-kills",
        "0.3:1.0",
        "--settle",
        "1",
        "--seed",
        "11",
    )
    counts = result["counts"]
    assert_nothing_lost(counts)
    assert counts["kills"] >= 5 and counts["restarts"] == counts["kills"]
    assert counts["conversations"] == 12
    # Each chat was checked on both sides: its client's and its professional's.
    assert counts["checked_views"] == 2 * 12
    assert counts["server_clean_stop"] == 1
    restart = result["restart"]["kill_to_accepting_s"]
    assert 0 < restart["min"] <= restart["max"]


@pytest.mark.slow
def test_connections_cut_mid_frame_lose_nothing_and_retries_store_once(tmp_path: Path) -> None:
    result = run_crashtest(
        tmp_path,
        "--kills",
        "5",
        "--clients",
        "12",
        "--pros",
        "2",
        "--mode",
        "network",
        "--duration-between-kills",
        "0.3:1.0",
        "--settle",
        "1",
        "--seed",
        "12",
    )
    counts = result["counts"]
    assert_nothing_lost(counts)
    assert counts["faults"] >= 5 and counts["cuts"] == counts["faults"]
    assert counts["kills"] == 0
    assert counts["proxy_cut_connections"] > 0
    assert counts["proxy_cut_mid_chunk"] > 0
    # Messages were sent again after a cut, and each was stored once.
    assert counts["retried"] > 0
    assert counts["retried_stored_once"] == counts["retried"]


def test_the_checker_sees_lost_duplicated_misplaced_and_unseen_messages(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from crashtest_lib.check import check_database, summarise
        from crashtest_lib.peers import ClientPeer, Ledger, PeerConfig, ProPeer, Send
    finally:
        sys.path.remove(str(ROOT / "scripts"))

    database = tmp_path / "damaged.sqlite3"
    db = sqlite3.connect(database)
    db.executescript(
        """
        CREATE TABLE conversations (id TEXT PRIMARY KEY, team_id TEXT, state TEXT,
                                    professional_id TEXT);
        CREATE TABLE messages (conversation_id TEXT, seq INTEGER, msg_id TEXT,
                               sender_role TEXT, sender_id TEXT, text TEXT,
                               PRIMARY KEY (conversation_id, seq));
        CREATE TABLE audit_events (conversation_id TEXT, action TEXT);
        INSERT INTO conversations VALUES ('c_A', 'crashtest', 'assigned', 'p_1'),
                                         ('c_B', 'crashtest', 'assigned', 'p_1');
        """
    )
    ledger = Ledger()
    cfg = PeerConfig("ws://127.0.0.1:1", "http://127.0.0.1:1", "crashtest", "x")
    rng = random.Random(1)
    a, b = ClientPeer("a", ledger, cfg, rng), ClientPeer("b", ledger, cfg, rng)
    a.conversation_id, b.conversation_id = "c_A", "c_B"
    pro = ProPeer("p", "nurse", ledger, cfg, rng)
    pro.pro_id, pro.final_assigned = "p_1", {"c_A", "c_B"}

    def acked(peer: ClientPeer, msg_id: str, seq: int) -> str:
        assert peer.conversation_id is not None
        text = f"crashtest conversation={peer.conversation_id} msg={msg_id} from={peer.name}"
        send = Send(msg_id, peer.conversation_id, peer.name, "client", text, 1, seq)
        ledger.sends[msg_id] = send
        for viewer in (peer, pro):
            viewer.seen[peer.conversation_id][seq] = msg_id
        return text

    rows = [
        ("c_A", 1, "a-1", acked(a, "a-1", 1)),
        # a-2 was acknowledged as c_A seq 2 and is not stored: lost, and a gap.
        ("c_A", 3, "a-3", acked(a, "a-3", 3)),
        ("c_B", 1, "b-1", acked(b, "b-1", 1)),
        # a-3 a second time, in the other conversation: duplicated and misplaced.
        ("c_B", 2, "a-3", "crashtest conversation=c_A msg=a-3 from=a"),
    ]
    acked(a, "a-2", 2)
    db.executemany(
        "INSERT INTO messages VALUES (?, ?, ?, 'client', 'client', ?)",
        [(c, s, m, t) for c, s, m, t in rows],
    )
    db.commit()
    db.close()
    del b.seen["c_B"][1]  # b never got its own message back

    counts, examples = check_database(database, "crashtest", ledger, [a, b], [pro])
    assert counts["lost"] == 1 and "a-2" in examples["lost"][0]
    assert counts["duplicated"] == 1 and "a-3" in examples["duplicated"][0]
    assert counts["misplaced"] == 1 and "c_B seq 2" in examples["misplaced"][0]
    assert counts["gaps"] == 1
    # b misses its own b-1 and the misplaced copy; the professional misses the copy too.
    assert counts["unseen"] == 3
    # a and the professional hold a-2 at c_A seq 2, which the database does not have.
    assert counts["view_conflicts"] == 2
    assert summarise(counts) == (False, True)


def test_help_explains_every_option() -> None:
    proc = subprocess.run(
        [sys.executable, str(CRASHTEST), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    for option in (
        "--clients",
        "--pros",
        "--kills",
        "--mode",
        "--seed",
        "--duration-between-kills",
        "--synchronous",
        "--json",
        "--port",
    ):
        assert option in proc.stdout
