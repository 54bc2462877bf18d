"""The verdict: the SQLite file, read directly, against what the peers were told and saw.

After the server has stopped cleanly, the database is opened read-only with Python's own
``sqlite3`` module (not through Kanava) and every claim is checked:

- **lost**: an acknowledged message that is not stored at all;
- **duplicated**: every stored copy of a ``msg_id`` beyond the first (retries included);
- **misplaced**: a stored message in a conversation its text does not name, or not at the
  ``seq`` its acknowledgement gave;
- **gaps**: missing numbers in a conversation's ``seq`` 1..n;
- **unseen**: a stored message of a peer's conversation that the peer never received (a
  client: every message of its conversation; a professional: every message of each
  conversation its final ``welcome`` lists, the ones it answers for at the end);
- **view conflicts**: a peer received message X at a ``seq`` where the database has Y.

Messages sent but never acknowledged (only if the final drain timed out) must be stored at
most once, which ``duplicated`` covers; they are counted as ``unresolved``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .peers import ClientPeer, Ledger, ProPeer, parse_text

__all__ = ["CORRECTNESS", "HEALTH", "SUMMARY", "check_database", "summarise"]

# Counts every report shows.
SUMMARY = (
    "sent",
    "acknowledged",
    "retried",
    "retried_stored_once",
    "interrupted",
    "duplicate_acks",
    "refused",
    "stored",
    "conversations",
    "checked_views",
)
# Counts that must be 0 for the run to pass: something the server promised did not hold.
CORRECTNESS = (
    "lost",
    "duplicated",
    "misplaced",
    "gaps",
    "unseen",
    "view_conflicts",
    "unknown_rows",
    "refused_but_stored",
    "duplicate_conversations",
    "ack_conflicts",
    "misplaced_acks",
    "misplaced_deliveries",
    "foreign_deliveries",
    "order_violations",
    "sessions_lost",
    "integrity_errors",
)
# Counts that must be 0 for the run to be clean (else the checks above covered less).
HEALTH = (
    "unresolved",
    "peer_failures",
    "unassigned_conversations",
    "assignment_mismatches",
    "conversations_left_professional",
    "clients_without_conversation",
    "stalled_resumes",
    "unexpected_exceptions",
)


def check_database(
    database: Path,
    team: str,
    ledger: Ledger,
    clients: list[ClientPeer],
    pros: list[ProPeer],
) -> tuple[dict[str, int], dict[str, list[str]]]:
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)

    def note(kind: str, example: str, n: int = 1) -> None:
        counts[kind] += n
        if len(examples[kind]) < 5:
            examples[kind].append(example)

    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            note("integrity_errors", integrity)
        conversations = {
            cid: (state, professional_id)
            for cid, state, professional_id in db.execute(
                "SELECT id, state, professional_id FROM conversations WHERE team_id = ?", (team,)
            )
        }
        rows = db.execute(
            "SELECT m.conversation_id, m.seq, m.msg_id, m.sender_role, m.sender_id, m.text "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE c.team_id = ? ORDER BY m.conversation_id, m.seq",
            (team,),
        ).fetchall()
        # conversation.open retried with its open_id and answered with the earlier chat.
        reopened = db.execute(
            "SELECT count(*) FROM audit_events a JOIN conversations c "
            "ON c.id = a.conversation_id WHERE c.team_id = ? AND a.action = 'reopened'",
            (team,),
        ).fetchone()[0]
    finally:
        db.close()
    counts["opens_reopened"] = reopened

    stored: dict[str, dict[int, str]] = defaultdict(dict)
    copies: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for cid, seq, msg_id, _role, _sender_id, text in rows:
        stored[cid][seq] = msg_id
        copies[msg_id].append((cid, seq))
        named = parse_text(text)
        send = ledger.sends.get(msg_id)
        if send is None:
            note("unknown_rows", f"{cid} seq {seq}: {msg_id} {text!r}")
        if named is None or named[0] != cid or named[1] != msg_id:
            note("misplaced", f"stored in {cid} seq {seq}: {text!r}")
    counts["stored"] = len(rows)
    counts["conversations"] = len(conversations)

    for cid, messages in stored.items():
        top = max(messages)
        if len(messages) != top:
            note(
                "gaps", f"{cid}: {top - len(messages)} of seq 1..{top} missing", top - len(messages)
            )

    for msg_id, where in copies.items():
        if len(where) > 1:
            note("duplicated", f"{msg_id} stored {len(where)} times: {where}", len(where) - 1)

    for send in ledger.sends.values():
        counts["sent"] += 1
        where = copies.get(send.msg_id, [])
        if send.attempts > 1:
            counts["retried"] += 1
            if len(where) == 1:
                counts["retried_stored_once"] += 1
        if send.interrupted:
            counts["interrupted"] += 1
        if send.refused is not None:
            counts["refused"] += 1
            if where:
                note("refused_but_stored", f"{send.msg_id} refused ({send.refused}) yet {where}")
            continue
        if send.acked_seq is None:
            counts["unresolved"] += 1
            continue
        counts["acknowledged"] += 1
        if not where:
            note("lost", f"{send.msg_id} acked as {send.conversation_id} seq {send.acked_seq}")
        elif (send.conversation_id, send.acked_seq) not in where:
            note(
                "misplaced",
                f"{send.msg_id} acked as {send.conversation_id} seq {send.acked_seq}, "
                f"stored at {where}",
            )

    def compare(peer: str, cid: str, have: dict[int, str]) -> None:
        for seq, msg_id in stored.get(cid, {}).items():
            got = have.get(seq)
            if got is None:
                note("unseen", f"{peer} never got {cid} seq {seq} ({msg_id})")
            elif got != msg_id:
                note("view_conflicts", f"{peer} has {got} at {cid} seq {seq}, stored: {msg_id}")
        for seq, msg_id in have.items():
            if seq not in stored.get(cid, {}):
                note("view_conflicts", f"{peer} has {msg_id} at {cid} seq {seq}, not stored")

    own: Counter[str] = Counter()
    for client in clients:
        if client.conversation_id is None:
            note("clients_without_conversation", client.name)
            continue
        own[client.conversation_id] += 1
        compare(client.name, client.conversation_id, client.seen[client.conversation_id])
    for cid in conversations:
        if own[cid] != 1:
            note("duplicate_conversations", f"{cid} belongs to {own[cid]} clients")

    answered: dict[str, str] = {}
    for pro in pros:
        for cid in sorted(pro.final_assigned or ()):
            if cid in answered:
                note("assignment_mismatches", f"{cid} listed by {answered[cid]} and {pro.name}")
            answered[cid] = pro.name
            compare(pro.name, cid, pro.seen.get(cid, {}))
            if conversations.get(cid, ("", None))[1] != pro.pro_id:
                note(
                    "assignment_mismatches",
                    f"{cid}: {pro.name} has it, the database says {conversations.get(cid)}",
                )
    for cid, (state, _professional) in conversations.items():
        if state != "assigned":
            note("unassigned_conversations", f"{cid} is {state} at the end")
        elif cid not in answered:
            note("assignment_mismatches", f"{cid} is assigned but no professional listed it")
    counts["checked_views"] = len(clients) + len(answered)

    for kind, n in ledger.stats.items():
        counts[kind] += n
        for example in ledger.examples.get(kind, []):
            if len(examples[kind]) < 5:
                examples[kind].append(example)
    for kind in (*CORRECTNESS, *HEALTH, *SUMMARY):
        counts.setdefault(kind, 0)
    return dict(counts), dict(examples)


def summarise(counts: dict[str, Any]) -> tuple[bool, bool]:
    """(correct, clean): nothing the server promised was broken; the run covered everything."""
    correct = all(counts.get(k, 0) == 0 for k in CORRECTNESS) and counts.get("acknowledged", 0) > 0
    clean = all(counts.get(k, 0) == 0 for k in HEALTH)
    return correct, clean
