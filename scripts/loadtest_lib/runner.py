"""Run a load test: start the server if needed, run the workers, merge and judge the results.

With ``--procs 1`` the worker runs in this process. With more, each worker is a separate
process (``multiprocessing``, spawn) with its own event loop; they report through a queue,
start together once all are set up (a shared monotonic start time: CLOCK_MONOTONIC is the
same for every process of the machine) and share a flag that stops a sweep early.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import platform
import queue
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import Config, WorkerPlan, pro_username, split
from .intake import write_areas_file
from .report import Progress, judge
from .seeding import seed_database
from .servers import cpu_seconds, rss_kb, start_kanava, start_relay
from .sim import Shared, Worker
from .stats import merge_results

__all__ = ["machine", "raise_file_limit", "run_load", "ws_and_http_bases"]


def raise_file_limit() -> int:
    """Raise the open-files limit to its hard limit (10,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_mb": mem_kb // 1024,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
    }


def ws_and_http_bases(url: str) -> tuple[str, str]:
    """``ws://host:port`` and ``http://host:port`` from any of ws, wss, http or https URLs."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    secure = parts.scheme in ("https", "wss")
    host = parts.netloc
    if not host:
        raise ValueError(f"cannot read a host from {url!r}")
    return ("wss://" if secure else "ws://") + host, ("https://" if secure else "http://") + host


def make_plans(
    cfg: Config, ws_base: str, http_base: str, tokens: dict[str, str]
) -> list[WorkerPlan]:
    run_id = os.urandom(3).hex()
    plans = []
    offset = 0
    for k in range(cfg.procs):
        clients = split(cfg.clients, cfg.procs, k)
        pros = [
            (pro_username(i), tokens.get(pro_username(i)))
            for i in range(1, cfg.pros + 1)
            if (i - 1) % cfg.procs == k
        ]
        if cfg.target == "relay" or (cfg.mode == "idle" and cfg.active == 0):
            pros = []
        plans.append(
            WorkerPlan(
                index=k,
                config=cfg,
                ws_base=ws_base,
                http_base=http_base,
                clients=clients,
                active=split(cfg.active, cfg.procs, k),
                pros=pros,
                team=f"load-{k}",
                rate_share=clients / cfg.clients,
                run_id=run_id,
                client_offset=offset,
                max_messages=split(cfg.max_messages, cfg.procs, k) if cfg.max_messages else 0,
            )
        )
        offset += clients
    return plans


# --- workers ------------------------------------------------------------------------------


def _use_uvloop(enabled: bool) -> str:
    if enabled:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            return "uvloop"
        except ImportError:
            pass
    return "asyncio"


class _ProcessShared(Shared):
    def __init__(self, go: Any, start_at: Any, stop_step: Any, timeout: float) -> None:
        super().__init__()
        self.go, self.start_at, self._stop, self.timeout = go, start_at, stop_step, timeout

    def get_stop_step(self) -> int:
        value: int = self._stop.value
        return value

    def set_stop_step(self, step: int) -> None:
        with self._stop.get_lock():
            if self._stop.value < 0 or step < self._stop.value:
                self._stop.value = step

    async def wait_start(self) -> int:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.go.wait, self.timeout):
            raise TimeoutError("the other workers did not get ready in time")
        value: int = self.start_at.value
        return value


def _worker_main(
    plan: WorkerPlan,
    channel: Any,
    go: Any,
    start_at: Any,
    stop_step: Any,
    server_pid: int | None,
) -> None:
    """Entry point of a worker process."""
    raise_file_limit()
    _use_uvloop(plan.config.uvloop)

    def emit(kind: str, data: Any) -> None:
        channel.put((plan.index, kind, data))

    shared = _ProcessShared(go, start_at, stop_step, plan.config.setup_timeout * 2 + 60)
    try:
        result = asyncio.run(Worker(plan, emit, shared, server_pid).run())
    except BaseException as exc:  # reported to the parent, which stops everything
        emit("failed", f"worker {plan.index}: {exc!r}")
        return
    emit("result", result)


def _run_workers(
    cfg: Config, plans: list[WorkerPlan], server_pid: int | None, progress: Progress
) -> list[dict[str, Any]]:
    if len(plans) == 1:
        failures: list[str] = []

        def emit(kind: str, data: Any) -> None:
            if kind == "failed":
                failures.append(data)
            progress.handle(0, kind, data)

        try:
            result = asyncio.run(Worker(plans[0], emit, Shared(), server_pid).run())
        except Exception as exc:
            raise RuntimeError(failures[0] if failures else repr(exc)) from exc
        return [result]
    ctx = mp.get_context("spawn")
    channel = ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("q", 0)
    stop_step = ctx.Value("i", -1)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(plan, channel, go, start_at, stop_step, server_pid),
            name=f"loadtest-worker-{plan.index}",
            daemon=True,
        )
        for plan in plans
    ]
    for p in procs:
        p.start()
    results: dict[int, dict[str, Any]] = {}
    ready: set[int] = set()
    limit = time.monotonic() + cfg.setup_timeout * 2 + _planned_seconds(cfg) + cfg.drain + 60
    try:
        while len(results) < len(plans):
            if time.monotonic() > limit:
                raise RuntimeError("the workers did not finish in time")
            try:
                index, kind, data = channel.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise RuntimeError(
                        f"{dead[0].name} died with exit code {dead[0].exitcode}"
                    ) from None
                continue
            if kind == "failed":
                raise RuntimeError(data)
            if kind == "result":
                results[index] = data
            elif kind == "ready":
                ready.add(index)
                if len(ready) == len(plans):
                    start_at.value = time.monotonic_ns() + 200_000_000
                    go.set()
                    progress.handle(index, kind, data)
            else:
                progress.handle(index, kind, data)
    finally:
        for p in procs:
            p.join(timeout=20)
            if p.is_alive():
                p.terminate()
                p.join(5)
    return [results[i] for i in sorted(results)]


def _planned_seconds(cfg: Config) -> float:
    if cfg.mode == "rate":
        per_step = cfg.warmup + (cfg.step_seconds if cfg.sweep is not None else cfg.duration)
        return per_step * len(cfg.steps()) + 2.0
    return cfg.duration


# --- a whole run --------------------------------------------------------------------------


def run_load(cfg: Config, progress: Progress | None = None) -> dict[str, Any]:
    """Run the load test ``cfg`` and return the result (see :func:`report.judge`)."""
    cfg.check()
    progress = progress or Progress(cfg, quiet=cfg.quiet)
    files_limit = raise_file_limit()
    needed = cfg.clients * (2 if cfg.target == "relay" else 1) + cfg.pros + 64
    if needed > files_limit * cfg.procs:
        progress.note(
            f"warning: {needed} sockets but the open-files limit is {files_limit} per process"
        )
    loop_name = _use_uvloop(cfg.uvloop)
    tmp: Path | None = None
    server = None
    info: dict[str, Any] = {"target": cfg.target, "started_by_tool": cfg.url is None}
    t_start = time.time()
    try:
        if cfg.url:
            ws_base, http_base = ws_and_http_bases(cfg.url)
            tokens: dict[str, str] = {}
            server_pid = cfg.server_pid
            info["url"] = cfg.url
        else:
            tmp = Path(tempfile.mkdtemp(prefix="kanava-load-"))
            log = tmp / "server.log"
            uvloop = cfg.server_loop == "uvloop"
            if cfg.target == "kanava":
                database = Path(cfg.database) if cfg.database else tmp / "kanava.sqlite3"
                tokens = asyncio.run(
                    seed_database(
                        database,
                        pros=cfg.pros,
                        procs=cfg.procs,
                        capacity=cfg.capacity,
                        password=cfg.password,
                        assign=cfg.assign,
                        sessions=True,
                    )
                )
                raised = cfg.rate_limits == "raised" or (
                    cfg.rate_limits == "auto" and cfg.mode != "think"
                )
                info["rate_limits"] = "raised" if raised else "server defaults"
                server = start_kanava(
                    database,
                    log=log,
                    cpu=cfg.server_cpu,
                    uvloop=uvloop,
                    raise_rate_limits=raised,
                    intake_areas=(
                        write_areas_file(tmp / "load-areas.toml", cfg.procs) if cfg.intake else None
                    ),
                    env=cfg.server_env,
                )
                info["database"] = str(database)
            else:
                tokens = {}
                server = start_relay(log=log, cpu=cfg.server_cpu, uvloop=uvloop)
            info["loop"] = cfg.server_loop
            info["cpu"] = cfg.server_cpu
            ws_base, http_base = server.ws_base, server.http_base
            server_pid = server.pid
            info["url"] = http_base
        info["pid"] = server_pid
        if server_pid is not None:
            time.sleep(0.3)
            info["rss_empty_kb"] = rss_kb(server_pid)
        cpu0 = cpu_seconds(server_pid) if server_pid else None
        plans = make_plans(cfg, ws_base, http_base, tokens)
        progress.note(_describe(cfg, info, loop_name))
        t_run = time.monotonic()
        results = _run_workers(cfg, plans, server_pid, progress)
        wall = time.monotonic() - t_run
        if server_pid is not None:
            cpu1 = cpu_seconds(server_pid)
            if cpu0 is not None and cpu1 is not None:
                info["cpu_s"] = round(cpu1 - cpu0, 3)
                info["cpu_wall_s"] = round(wall, 3)
            time.sleep(1.0)
            info["rss_after_kb"] = rss_kb(server_pid)
    except BaseException:
        if server is not None:
            tail = server.tail()
            if tail:
                progress.note(f"--- the last lines of the {server.kind} server's log:\n{tail}")
        raise
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    merged = merge_results(results)
    result = judge(cfg, merged, info)
    result["machine"] = machine()
    result["generator"]["loop"] = loop_name
    result["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start))
    result["command"] = " ".join(sys.argv)
    return result


def _describe(cfg: Config, info: dict[str, Any], loop_name: str) -> str:
    if cfg.mode == "think":
        what = f"think time {cfg.think}s, {cfg.messages} messages per party per chat"
    elif cfg.mode == "rate":
        what = f"{', '.join(f'{r:g}' for r in cfg.steps())} msg/s"
    else:
        what = f"{cfg.active} chatting, the rest {cfg.idle_open}"
    origin = "started here" if cfg.url is None else "external"
    pinned = f", cpu {cfg.server_cpu}" if cfg.server_cpu else ""
    return (
        f"loadtest: {cfg.target} at {info.get('url')} ({origin}{pinned}), codec {cfg.codec}, "
        f"{cfg.clients} clients, {cfg.pros if cfg.target == 'kanava' else 0} professionals, "
        f"{cfg.mode} mode: {what}; {cfg.procs} process(es) on {loop_name}"
    )
