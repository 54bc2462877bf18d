"""One crash-test run: seed, start, chat under faults, drain, resume once more, stop, check."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from server.guard.limits import no_address_limits_env

from .check import CORRECTNESS, HEALTH, check_database, summarise
from .peers import ClientPeer, Ledger, Peer, PeerConfig, ProPeer
from .proxy import FaultyProxy
from .server import KanavaProcess, free_port, seed_accounts

__all__ = ["RunConfig", "run"]

TEAM = "crashtest"
PASSWORD = "crashtest-password"
# The moment of a fault, after its random pause: at once; the instant sends are in flight;
# or the instant the server's WAL file changes (a commit is being
# written: its acknowledgements are about to go out). Waits for the moment at most MOMENT_WAIT.
MOMENTS = ("random", "in_flight", "wal_write")
MOMENT_WAIT = 1.0


@dataclass
class RunConfig:
    clients: int = 40
    pros: int = 4
    kills: int = 20
    mode: str = "process"  # process, network or both
    seed: int = 0
    between: tuple[float, float] = (0.5, 2.0)
    downtime: tuple[float, float] = (0.0, 0.3)
    synchronous: str = "full"
    port: int | None = None
    warmup: float = 1.0
    settle: float = 2.0
    drain_timeout: float = 60.0
    keep: bool = False
    quiet: bool = False
    workdir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


def server_env(cfg: RunConfig, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANAVA_")}
    env.update(
        {
            # Chats open with conversation.open (no intake), at any hour.
            "KANAVA_INTAKE_REQUIRED": "false",
            "KANAVA_ALWAYS_OPEN": "true",
            # Chats stay with their professional across every restart and cut.
            "KANAVA_GRACE_SECONDS": "86400",
            **no_address_limits_env(),
            "KANAVA_SQLITE_SYNCHRONOUS": cfg.synchronous,
            "KANAVA_LOG_LEVEL": "warning",
            "KANAVA_OIDC_KEY_FILE": str(workdir / "oidc-client-key.json"),
            "KANAVA_IDENTITY_KEY_FILE": str(workdir / "identity-code.key"),
        }
    )
    env.update(cfg.extra_env)
    return env


def _say(cfg: RunConfig, text: str) -> None:
    if not cfg.quiet:
        print(text, file=sys.stderr, flush=True)


async def run(cfg: RunConfig) -> dict[str, Any]:
    started = time.monotonic()
    rng = random.Random(cfg.seed)
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="kanava-crashtest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "kanava.sqlite3"
    port = cfg.port or free_port()
    env = server_env(cfg, workdir)
    usernames = [f"crash-nurse-{i}" for i in range(1, cfg.pros + 1)]
    capacity = -(-cfg.clients // cfg.pros) + 1
    await asyncio.to_thread(
        seed_accounts,
        database,
        env,
        team=TEAM,
        usernames=usernames,
        password=PASSWORD,
        capacity=capacity,
    )
    server = KanavaProcess(database, port, env, workdir / "server.log")
    t0 = time.monotonic()
    server.spawn()
    first_start = await server.wait_ready() - t0
    proxy: FaultyProxy | None = None
    if cfg.mode in ("network", "both"):
        proxy = await FaultyProxy(port, random.Random(rng.random())).start()
    ws_port = proxy.port if proxy else port
    _say(
        cfg,
        f"kanava crashtest: mode {cfg.mode}, seed {cfg.seed}, synchronous={cfg.synchronous}, "
        f"{cfg.clients} clients, {cfg.pros} professionals (capacity {capacity}), "
        f"server pid {server.pid} on port {port}"
        + (f", proxy on port {proxy.port}" if proxy else "")
        + f"; files in {workdir}",
    )

    ledger = Ledger()
    peer_cfg = PeerConfig(
        ws_base=f"ws://127.0.0.1:{ws_port}", http_base=server.base, team=TEAM, password=PASSWORD
    )
    pros = [
        ProPeer(f"p{i}", u, ledger, peer_cfg, random.Random(f"{cfg.seed}/p{i}"))
        for i, u in enumerate(usernames, 1)
    ]
    clients = [
        ClientPeer(f"c{i:03d}", ledger, peer_cfg, random.Random(f"{cfg.seed}/c{i}"))
        for i in range(1, cfg.clients + 1)
    ]
    peers: list[Peer] = [*pros, *clients]
    # Clients arrive during the first half of the faults, so that chats are opened (and
    # their open retried) and taken from the queue around crashes too.
    spread = cfg.kills * sum(cfg.between) / 2 / 2
    tasks = [
        asyncio.create_task(
            p.run(rng.uniform(0, spread) if isinstance(p, ClientPeer) else 0.0), name=p.name
        )
        for p in peers
    ]

    restarts: list[dict[str, Any]] = []
    cuts: list[dict[str, Any]] = []
    kills = 0
    exit_code: int | None = None
    try:
        await asyncio.sleep(cfg.warmup)
        for n in range(1, cfg.kills + 1):
            await asyncio.sleep(rng.uniform(*cfg.between))
            if cfg.mode == "process":
                kind = "kill"
            elif cfg.mode == "network":
                kind = "cut"
            else:
                kind = rng.choice(("kill", "cut"))
            # Where a crash hurts is around a commit: besides plain random moments, a fault
            # may wait (a little) for sends in flight, or for the server writing its WAL.
            moment = rng.choice(MOMENTS)
            if moment == "in_flight":
                await _until_in_flight(ledger, MOMENT_WAIT)
            elif moment == "wal_write":
                await _until_wal_write(database, MOMENT_WAIT)
            in_flight = ledger.pending()
            acked = sum(1 for s in ledger.sends.values() if s.acked_seq is not None)
            if kind == "kill":
                t_kill = time.monotonic()
                server.kill()
                kills += 1
                await asyncio.sleep(rng.uniform(*cfg.downtime))
                t_spawn = time.monotonic()
                server.spawn()
                t_ready = await server.wait_ready()
                restarts.append(
                    {
                        "kill_to_accepting_s": round(t_ready - t_kill, 3),
                        "start_to_accepting_s": round(t_ready - t_spawn, 3),
                        "in_flight_at_kill": in_flight,
                        "moment": moment,
                    }
                )
                _say(
                    cfg,
                    f"  fault {n}/{cfg.kills}: SIGKILL ({moment}) with {in_flight} sends in flight "
                    f"({acked} acknowledged so far); accepting again after "
                    f"{t_ready - t_kill:.2f} s (start {t_ready - t_spawn:.2f} s)",
                )
            else:
                assert proxy is not None
                fraction = rng.choice((1.0, 0.5))
                count = proxy.cut(fraction)
                cuts.append(
                    {
                        "connections": count,
                        "fraction": fraction,
                        "in_flight": in_flight,
                        "moment": moment,
                    }
                )
                _say(
                    cfg,
                    f"  fault {n}/{cfg.kills}: cut {count} connections ({moment}) "
                    f"({'all' if fraction == 1 else 'half'}) with {in_flight} sends in flight "
                    f"({acked} acknowledged so far)",
                )
        await asyncio.sleep(cfg.settle)

        # Stop sending; every outbox empties (retries go on until acknowledged).
        for peer in peers:
            peer.sending = False
        deadline = time.monotonic() + cfg.drain_timeout
        while time.monotonic() < deadline:
            if not any(p.outbox for p in peers if not p.finished):
                break
            await asyncio.sleep(0.05)
        # Everyone resumes once more on a fresh connection and reads until caught up.
        for peer in peers:
            peer.final_requested.set()
        done, _ = await asyncio.wait(tasks, timeout=60)
        for task in tasks:
            if task not in done:
                ledger.note("peer_failures", f"{task.get_name()}: no final resume in 60 s")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        exit_code = server.stop()
        if proxy is not None:
            await proxy.close()

    counts, examples = check_database(database, TEAM, ledger, clients, pros)
    counts["kills"] = kills
    counts["cuts"] = len(cuts)
    counts["faults"] = kills + len(cuts)
    counts["restarts"] = len(restarts)
    counts["faults_with_sends_in_flight"] = sum(
        1 for f in (*restarts, *cuts) if f.get("in_flight_at_kill", f.get("in_flight", 0)) > 0
    )
    counts["server_clean_stop"] = int(exit_code == 0)
    counts["server_log_errors"] = len(server.logged_errors())
    if proxy is not None:
        for key, value in proxy.stats.items():
            counts[f"proxy_{key}"] = value
    correct, clean = summarise(counts)
    clean = clean and exit_code == 0
    result: dict[str, Any] = {
        "ok": correct and clean,
        "correct": correct,
        "clean": clean,
        "exit_code": 0 if correct and clean else (1 if not correct else 3),
        "config": {
            **{k: v for k, v in asdict(cfg).items() if k not in ("workdir", "extra_env")},
            "capacity": capacity,
            "workdir": str(workdir),
        },
        "counts": counts,
        "restart": _restart_summary(first_start, restarts),
        "ack_wait_ms": _percentiles(ledger.ack_waits),
        "restarts": restarts,
        "cuts": cuts,
        "examples": {k: v for k, v in examples.items() if v},
        "server_log_errors": server.logged_errors()[:10],
        "wall_time_s": round(time.monotonic() - started, 2),
    }
    if not result["ok"]:
        result["server_log_tail"] = server.tail(60)
    if not cfg.keep and result["ok"] and cfg.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


async def _until_in_flight(ledger: Ledger, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ledger.pending() and time.monotonic() < deadline:
        await asyncio.sleep(0.0002)


async def _until_wal_write(database: Path, timeout: float) -> None:
    wal = Path(f"{database}-wal")

    def signature() -> tuple[int, int] | None:
        try:
            st = wal.stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    before = signature()
    deadline = time.monotonic() + timeout
    while signature() == before and time.monotonic() < deadline:
        await asyncio.sleep(0.0002)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1] * 1000, 1)}


def _restart_summary(first_start: float, restarts: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"first_start_s": round(first_start, 3)}
    for key in ("kill_to_accepting_s", "start_to_accepting_s"):
        values = [r[key] for r in restarts]
        if values:
            summary[key] = {
                "min": round(min(values), 3),
                "median": round(statistics.median(values), 3),
                "max": round(max(values), 3),
            }
    return summary


def report(result: dict[str, Any]) -> str:
    """The human summary: the counts the issue asks for first, then everything checked."""
    c = result["counts"]
    cfg = result["config"]
    lines = [
        f"kanava crashtest: mode {cfg['mode']}, seed {cfg['seed']}, "
        f"synchronous={cfg['synchronous']}, {cfg['clients']} clients, {cfg['pros']} professionals",
        f"  faults       {c['faults']} ({c['kills']} kills, {c['cuts']} network cuts; "
        f"{c['faults_with_sends_in_flight']} with sends in flight), restarts {c['restarts']}",
        f"  sent         {c['sent']}",
        f"  acknowledged {c['acknowledged']}",
        f"  retried      {c['retried']} (unacknowledged when a connection ended: "
        f"{c['interrupted']}; answered as duplicates: {c.get('duplicate_acks', 0)}; "
        f"stored once: {c.get('retried_stored_once', 0)})",
        f"  stored       {c['stored']} in {c['conversations']} conversations",
        f"  lost         {c['lost']}",
        f"  duplicated   {c['duplicated']}",
        f"  misplaced    {c['misplaced']}",
        f"  unseen       {c['unseen']} (views checked: {c['checked_views']})",
        f"  unresolved   {c['unresolved']}   refused {c['refused']}   gaps {c['gaps']}",
    ]
    restart = result["restart"]
    if "kill_to_accepting_s" in restart:
        k, s = restart["kill_to_accepting_s"], restart["start_to_accepting_s"]
        lines.append(
            f"  restart      kill → accepting: min {k['min']:.2f} s, median {k['median']:.2f} s, "
            f"max {k['max']:.2f} s (process start → accepting: median {s['median']:.2f} s)"
        )
    if c["cuts"]:
        lines.append(
            f"  network      {c.get('proxy_cut_connections', 0)} connections cut, "
            f"{c.get('proxy_cut_mid_chunk', 0)} in the middle of a chunk, "
            f"{c.get('proxy_resets', 0)} with a TCP reset"
        )
    others = [
        k
        for k in (*CORRECTNESS, *HEALTH)
        if c.get(k) and k not in ("lost", "duplicated", "misplaced", "unseen", "unresolved", "gaps")
    ]
    if others:
        lines.append("  also         " + ", ".join(f"{k} {c[k]}" for k in others))
    lines.append(
        f"  connections  {c.get('connection_failures', 0)} failed or dropped, "
        f"resume cursor gaps {c.get('resume_cursor_gaps', 0)}, "
        f"rate limited {c.get('rate_limited', 0)}"
    )
    lines.append(
        f"  opens        {c.get('opens_dropped', 0)} dropped just after conversation.open, "
        f"{c.get('opens_reopened', 0)} retries found the chat already opened "
        f"({c.get('reopened_with_messages', 0)} with messages in it); "
        f"{c['conversations']} conversations for {cfg['clients']} clients"
    )
    if result["ack_wait_ms"]:
        a = result["ack_wait_ms"]
        lines.append(
            f"  ack wait     p50 {a['p50']:.1f} ms, p99 {a['p99']:.1f} ms, max {a['max']:.1f} ms "
            "(from the last transmission)"
        )
    lines.append(f"  wall time    {result['wall_time_s']:.1f} s")
    verdict = "OK" if result["ok"] else ("FAILED" if not result["correct"] else "NOT CLEAN")
    lines.append(f"RESULT: {verdict}")
    if not result["ok"]:
        lines.append(f"  (database and server log kept in {cfg['workdir']})")
    for kind, items in result["examples"].items():
        if kind in CORRECTNESS or kind in HEALTH or not result["ok"]:
            for item in items:
                lines.append(f"  {kind}: {item}")
    return "\n".join(lines)
