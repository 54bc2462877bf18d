"""Storage on real SQLite files: migrations, group commit, idempotency, durability."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from protocol import ConversationState
from server.core.clock import ManualClock
from server.core.model import AssignMode, Conversation, Team
from server.storage.sqlite.store import Storage


def conversation(cid: str, now: int = 1) -> Conversation:
    return Conversation(
        id=cid,
        token_hash="h-" + cid,
        team_id="kallio",
        state=ConversationState.QUEUED,
        created_at=now,
        updated_at=now,
        queue_rank=float(now),
        queued_at=now,
    )


@pytest.fixture
async def storage(tmp_path: Path) -> Storage:
    store = await Storage.open(tmp_path / "k.sqlite3", ManualClock())
    await store.save_team(Team("kallio", "Kallio", AssignMode.PICK))
    yield store  # type: ignore[misc]
    await store.close()


async def test_migrations_create_the_schema_and_record_the_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    store = await Storage.open(path)
    latest = max(v for v, _, _ in Storage.migrations())
    assert await store.schema_version() == latest
    await store.close()
    # Opening again applies nothing twice.
    store = await Storage.open(path)
    assert await store.schema_version() == latest
    await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == latest
    db.close()


async def test_concurrent_sends_share_few_transactions(storage: Storage) -> None:
    """Group commit: 500 messages sent at once cost a handful of commits, not 500."""
    await storage.save_changes(new=[conversation(f"c{i}") for i in range(10)])
    before = storage.transactions
    results = await asyncio.gather(
        *(
            storage.append_message(f"c{i % 10}", "client", "client", "Matti", f"m{i}", f"t{i}")
            for i in range(500)
        )
    )
    commits = storage.transactions - before
    assert commits <= 5, commits
    for cid in range(10):
        seqs = [r.message.seq for i, r in enumerate(results) if i % 10 == cid]
        assert seqs == list(range(1, 51))  # in order of sending, gap-free


async def test_a_retry_returns_the_original_and_stores_nothing(storage: Storage) -> None:
    await storage.save_changes(new=[conversation("c1")])
    first, retry = await asyncio.gather(
        storage.append_message("c1", "client", "client", "Matti", "m1", "Hei"),
        storage.append_message("c1", "client", "client", "Matti", "m1", "Hei"),
    )
    assert (first.duplicate, retry.duplicate) == (False, True)
    assert first.message.seq == retry.message.seq == 1
    # The same msg_id from another sender is a different message.
    other = await storage.append_message("c1", "professional", "p1", "Hanna", "m1", "Moi")
    assert (other.message.seq, other.duplicate) == (2, False)
    assert await storage.count_messages("c1") == 2


async def test_messages_survive_reopening_with_their_idempotency(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite3"
    store = await Storage.open(path)
    await store.save_team(Team("kallio", "Kallio"))
    await store.save_changes(new=[conversation("c1")])
    await store.append_message("c1", "client", "client", "Matti", "m1", "Hei")
    await store.close()
    store = await Storage.open(path)
    [restored] = await store.open_conversations()
    assert (restored.id, restored.last_seq) == ("c1", 1)
    retry = await store.append_message("c1", "client", "client", "Matti", "m1", "Hei")
    nxt = await store.append_message("c1", "client", "client", "Matti", "m2", "Moi")
    assert (retry.duplicate, retry.message.seq, nxt.message.seq) == (True, 1, 2)
    assert [m.text for m in await store.history("c1", 0, 10)] == ["Hei", "Moi"]
    await store.close()


async def test_a_failed_transaction_takes_its_sequence_numbers_back(storage: Storage) -> None:
    """A commit that fails stores nothing and leaves no gap for the next message."""
    await storage.save_changes(new=[conversation("c1")])
    await storage.append_message("c1", "client", "client", "Matti", "m1", "Hei")
    # A message for a conversation that does not exist violates the foreign key.
    storage._logs["ghost"] = type(storage._logs["c1"])(next_seq=1, ids={})
    good = storage.append_message("c1", "client", "client", "Matti", "m2", "yksi")
    bad = storage.append_message("ghost", "client", "client", "X", "m1", "kaksi")
    outcomes = await asyncio.gather(good, bad, return_exceptions=True)
    assert all(isinstance(o, Exception) for o in outcomes)  # one transaction, both failed
    again = await storage.append_message("c1", "client", "client", "Matti", "m2", "yksi")
    assert (again.message.seq, again.duplicate) == (2, False)
    assert [m.seq for m in await storage.history("c1", 0, 10)] == [1, 2]


async def test_close_flushes_pending_writes(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite3"
    store = await Storage.open(path)
    await store.save_team(Team("kallio", "Kallio"))
    await store.save_changes(new=[conversation("c1")])
    futures = [
        store.submit_message("c1", "client", "client", "M", f"m{i}", f"t{i}")[0] for i in range(50)
    ]
    await store.close()
    assert all(f.done() and not f.exception() for f in futures)
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 50
    db.close()


async def _write_steadily_for_a_second(path: Path) -> tuple[int, int, int]:
    """(largest WAL file seen, rounds written, WAL restarts) for one second of writes."""
    store = await Storage.open(path, ManualClock())
    await store.save_team(Team("kallio", "Kallio", AssignMode.PICK))
    await store.save_changes(new=[conversation(f"c{i}") for i in range(50)])
    wal = path.with_name(path.name + "-wal")
    largest = rounds = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + 1.0
    while loop.time() < until:  # never idle: the next write is always waiting
        await asyncio.gather(
            *(
                store.append_message(f"c{i}", "client", "client", "Matti", f"m{rounds}-{i}", "x")
                for i in range(50)
            )
        )
        rounds += 1
        largest = max(largest, wal.stat().st_size)
    restarts = store.wal_restarts
    await store.close()
    reopened = await Storage.open(path, ManualClock())
    assert await reopened.count_messages("c7") == rounds
    await reopened.close()
    return largest, rounds, restarts


async def test_the_wal_starts_over_under_steady_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that never pauses writing keeps a bounded WAL instead of one that grows forever."""
    import server.storage.sqlite.writer as writer_module

    monkeypatch.setattr(writer_module, "CHECKPOINT_SECONDS", 0.05)
    monkeypatch.setattr(writer_module, "WAL_RESTART_PAGES", 10**9)
    unbounded, rounds_unbounded, none = await _write_steadily_for_a_second(tmp_path / "a.sqlite3")
    monkeypatch.setattr(writer_module, "WAL_RESTART_PAGES", 20)
    bounded, rounds, restarts = await _write_steadily_for_a_second(tmp_path / "b.sqlite3")
    assert none == 0 and restarts >= 5
    # Per round written, the restarted WAL's high-water mark is a fraction of the other's.
    assert bounded / rounds < 0.3 * unbounded / rounds_unbounded, (bounded, unbounded)
