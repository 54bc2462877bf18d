"""Progress lines while a load test runs; the verdict, the text report and the chart after.

Exit codes of ``scripts/loadtest.py`` (decided in :func:`judge`):

- 0  every acknowledged message arrived exactly once, in its own conversation;
- 1  a message was lost, duplicated or misplaced;
- 3  nothing lost, but the run was not clean: messages never answered, requests the server
     failed with ``internal``, invalid frames from the server, unexpected disconnections, or a
     planned step that did not complete.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .config import Config
from .histogram import Histogram
from .stats import STEP_HISTOGRAMS

__all__ = ["Progress", "format_report", "judge", "plot_sweeps", "sweep_result"]

EXIT_OK, EXIT_CORRUPT, EXIT_UNCLEAN = 0, 1, 3


class Progress:
    """Prints one line per second while workers run (to stderr, so JSON can go to stdout)."""

    def __init__(self, cfg: Config, quiet: bool = False, out: TextIO | None = None) -> None:
        self.cfg = cfg
        self.quiet = quiet
        self.out = out or sys.stderr
        self.latest: dict[int, dict[str, Any]] = {}
        self.intervals: dict[int, Histogram] = {}
        self.last: tuple[float, int, int] | None = None
        self.warnings: list[str] = []

    def note(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def handle(self, worker: int, kind: str, data: Any) -> None:
        if kind == "warning":
            self.warnings.append(str(data))
            self.note(f"warning: {data}")
        elif kind == "failed":
            self.note(f"error: {data}")
        elif kind == "ready":
            self.last = (time.monotonic(), 0, 0)
            self.note("loadtest: set up; running")
        elif kind == "progress":
            self.latest[worker] = data
            interval = self.intervals.setdefault(worker, Histogram())
            interval.merge(Histogram.from_dict(data["interval"]))
            if worker == 0:
                self._line()

    def _line(self) -> None:
        snaps = list(self.latest.values())
        t = snaps[0]["t"] if snaps else 0.0
        sent = sum(s["sent"] for s in snaps)
        delivered = sum(s["delivered"] for s in snaps)
        interval = Histogram()
        for h in self.intervals.values():
            interval.merge(h)
        self.intervals.clear()
        now = time.monotonic()
        if self.last is None:
            sent_rate = delivered_rate = 0.0
        else:
            dt = max(1e-6, now - self.last[0])
            sent_rate = (sent - self.last[1]) / dt
            delivered_rate = (delivered - self.last[2]) / dt
        self.last = (now, sent, delivered)
        steps = self.cfg.steps()
        step = snaps[0]["step"] if snaps else -1
        where = ""
        if steps and 0 <= step < len(steps):
            where = f"step {step + 1}/{len(steps)} @{steps[step]:g}/s | "
        p50, p99 = interval.percentile_ms(50), interval.percentile_ms(99)
        lat = f"e2e p50 {_ms(p50)} p99 {_ms(p99)}" if interval.count else "e2e -"
        self.note(
            f"[{t:6.1f}s] {where}sent {sent_rate:7.0f}/s delivered {delivered_rate:7.0f}/s | "
            f"{lat} | in flight {sum(s['inflight'] for s in snaps)} | "
            f"chats {sum(s['active'] for s in snaps)} waiting {sum(s['waiting'] for s in snaps)}"
            f" | errors {sum(s['errors'] for s in snaps)}"
            f" | dup+misplaced {sum(s['bad'] for s in snaps)}"
        )


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}ms" if value < 100 else f"{value:.0f}ms"


def _step_view(cfg: Config, step: dict[str, Any], gen_procs: int) -> dict[str, Any]:
    counts = step["counts"]
    seconds = step["seconds"] or 1.0
    e2e: Histogram = step["e2e"]
    sent, delivered = counts.get("sent", 0), counts.get("delivered", 0)
    p99 = e2e.percentile_ms(99)
    view: dict[str, Any] = {
        "rate": step["rate"],
        "seconds": seconds,
        "completed": step["completed"],
        "sent": sent,
        "delivered": delivered,
        "acked": counts.get("acked", 0),
        "refused": counts.get("refused", 0),
        "rate_limited": counts.get("rate_limited", 0),
        "sent_per_s": round(sent / seconds, 1),
        "delivered_per_s": round(delivered / seconds, 1),
        "delivered_fraction": round(delivered / sent, 5) if sent else None,
        "generator_cpu": round(step["cpu_s"] / seconds, 3),
        "server_cpu": round(step.get("server_cpu_s", 0.0) / seconds, 3)
        if step.get("server_cpu_s")
        else None,
        # CPU per chat message: robust to a noisy machine, comparable between targets.
        "server_us_per_msg": round(step["server_cpu_s"] * 1e6 / sent, 1)
        if sent and step.get("server_cpu_s")
        else None,
        "generator_us_per_msg": round(step["cpu_s"] * 1e6 / sent, 1) if sent else None,
        "errors": step["errors"],
    }
    for name in STEP_HISTOGRAMS:
        view[name] = step[name].summary()
    if step["rate"] is not None:
        view["pass"] = bool(
            step["completed"]
            and sent > 0
            and p99 is not None
            and p99 <= cfg.p99_limit_ms
            and delivered >= cfg.min_delivered * sent
            and sent >= 0.9 * step["rate"] * seconds
        )
    return view


def sweep_result(cfg: Config, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest offered rate that passed, before ``sweep_max_fail`` failures in a row."""
    best = None
    best_step = None
    fails = 0
    for step in steps:
        if not step["completed"]:
            break
        if step.get("pass"):
            fails = 0
            best, best_step = step["rate"], step
        else:
            fails += 1
            if fails >= cfg.sweep_max_fail:
                break
    return {
        "p99_limit_ms": cfg.p99_limit_ms,
        "min_delivered": cfg.min_delivered,
        "max_rate": best,
        "max_rate_delivered_per_s": best_step["delivered_per_s"] if best_step else None,
        "max_rate_p99_ms": best_step["e2e"]["p99_ms"] if best_step else None,
    }


def judge(cfg: Config, merged: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The result document: figures, correctness verdict and exit code."""
    totals = merged["totals"]
    correctness = dict(merged["correctness"])
    steps = [_step_view(cfg, s, cfg.procs) for s in merged["steps"]]
    all_steps = Histogram()
    hists = {name: Histogram() for name in STEP_HISTOGRAMS}
    for step in merged["steps"]:
        all_steps.merge(step["e2e"])
        for name in STEP_HISTOGRAMS:
            hists[name].merge(step[name])
    seconds = sum(s["seconds"] for s in steps if s["completed"]) or cfg.duration
    # All the time load was offered (warm-ups included), for the totals' rates.
    load_seconds = seconds + (cfg.warmup * len(steps) if cfg.mode == "rate" else 0.0)
    corrupt = correctness["lost"] + correctness["duplicated"] + correctness["misplaced"]
    unclean = []
    if correctness["unanswered"]:
        unclean.append(f"{correctness['unanswered']} messages never answered")
    server_faults = sum(n for code, n in merged["errors"].items() if code.startswith("internal"))
    if server_faults:
        unclean.append(f"{server_faults} requests failed inside the server (error internal)")
    if totals.get("invalid_frames"):
        unclean.append(f"{totals['invalid_frames']} invalid frames from the server")
    if merged["disconnects"]:
        unclean.append(f"unexpected disconnections: {merged['disconnects']}")
    if any(not s["completed"] for s in steps) and cfg.sweep is None:
        unclean.append("the run did not complete")
    if totals.get("open_failures"):
        unclean.append(f"{totals['open_failures']} clients could not open a chat")
    if cfg.mode != "idle" and totals.get("sent", 0) == 0:
        unclean.append("no chat message was sent")
    if (
        cfg.target == "kanava"
        and info.get("started_by_tool")
        and totals.get("foreign_conversations")
    ):
        unclean.append(f"{totals['foreign_conversations']} conversations nobody opened")
    if corrupt:
        exit_code = EXIT_CORRUPT
    elif unclean:
        exit_code = EXIT_UNCLEAN
    else:
        exit_code = EXIT_OK
    result: dict[str, Any] = {
        "tool": "kanava-loadtest",
        "format": 1,
        "mode": cfg.mode,
        "config": cfg.to_dict(),
        "server": info,
        "seconds": round(seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "totals": {
            **totals,
            "sent_per_s": round(totals.get("sent", 0) / load_seconds, 1),
            "delivered_per_s": round(totals.get("delivered", 0) / load_seconds, 1),
        },
        "latency": {
            "e2e": hists["e2e"].summary(),
            "client_to_pro": hists["c2p"].summary(),
            "pro_to_client": hists["p2c"].summary(),
            "ack": hists["ack"].summary(),
            "queue_wait": merged["queue_wait"].summary(),
            "open": merged["open"].summary(),
            "connect": merged["connect"].summary(),
            "intake_step": merged["intake_step"].summary(),
        },
        "errors": merged["errors"],
        "rate_limited": totals.get("rate_limited", 0),
        "correctness": {**correctness, "ok": corrupt == 0},
        "disconnects": merged["disconnects"],
        "problems": merged["problems"][:20],
        "unclean": unclean,
        "generator": {
            "procs": cfg.procs,
            "lag": hists["lag"].summary(),
        },
        "steps": steps,
        "exit_code": exit_code,
    }
    if cfg.sweep is not None:
        result["sweep"] = sweep_result(cfg, steps)
    if cfg.mode == "idle":
        empty = info.get("rss_empty_kb")
        loaded = merged["extra"].get("rss_loaded_kb")
        connections = totals.get("connections", 0)
        memory: dict[str, Any] = {
            "rss_empty_kb": empty,
            "rss_loaded_kb": loaded,
            "rss_after_kb": info.get("rss_after_kb"),
            "connections": connections,
            "clients": cfg.clients,
            "active_conversations": totals.get("conversations_assigned", 0),
            "idle_open": cfg.idle_open,
        }
        if empty and loaded and connections:
            memory["kb_per_connection"] = round((loaded - empty) / connections, 2)
        result["memory"] = memory
    return result


def _fmt_lat(summary: dict[str, Any]) -> str:
    if not summary.get("count"):
        return "-"
    return (
        f"p50 {_ms(summary['p50_ms'])}  p95 {_ms(summary['p95_ms'])}  "
        f"p99 {_ms(summary['p99_ms'])}  max {_ms(summary['max_ms'])}  (n={summary['count']})"
    )


def format_report(result: dict[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    cfg = result["config"]
    totals = result["totals"]
    lines = [
        "",
        f"== Kanava load test: {cfg['target']}, {cfg['codec']}, {result['mode']} mode, "
        f"{cfg['clients']} clients, {cfg['pros'] if cfg['target'] == 'kanava' else 0} "
        f"professionals, {cfg['procs']} process(es)",
        f"messages     sent {totals.get('sent', 0)} ({totals['sent_per_s']}/s), delivered "
        f"{totals.get('delivered', 0)} ({totals['delivered_per_s']}/s), acknowledged "
        f"{totals.get('acked', 0)}, refused {totals.get('refused', 0)}, "
        f"rate limited {result['rate_limited']} (retried)",
        f"events       typing {totals.get('typing', 0)}, read marks {totals.get('reads', 0)}, "
        f"frames received {totals.get('frames_received', 0)}",
    ]
    if cfg["target"] == "relay":
        lines.append(f"pairs        {totals.get('conversations_opened', 0)}")
    elif result["mode"] != "idle" or totals.get("conversations_opened"):
        lines.append(
            f"chats        opened {totals.get('conversations_opened', 0)}, assigned "
            f"{totals.get('conversations_assigned', 0)}, closed "
            f"{totals.get('conversations_closed', 0)}, still waiting at the end "
            f"{totals.get('conversations_unassigned', 0)} (with "
            f"{totals.get('waiting_in_queue', 0)} stored messages nobody has read yet)"
        )
    lat = result["latency"]
    lines += [
        f"end to end   {_fmt_lat(lat['e2e'])}",
        f"  client→pro {_fmt_lat(lat['client_to_pro'])}",
        f"  pro→client {_fmt_lat(lat['pro_to_client'])}",
        f"to ack       {_fmt_lat(lat['ack'])}",
        f"queue wait   {_fmt_lat(lat['queue_wait'])}",
        f"open chat    {_fmt_lat(lat['open'])}"
        + ("  (the whole intake)" if cfg.get("intake") else ""),
    ]
    if cfg.get("intake") and totals.get("conversations_opened"):
        lines.append(
            f"intake       {totals.get('intake_answers', 0)} answers, "
            f"{totals.get('intake_stations', 0)} stations chosen, "
            f"{totals.get('intake_ends', 0)} ended without a chat; "
            f"each step {_fmt_lat(lat['intake_step'])}"
        )
    errors = result["errors"]
    lines.append(
        "errors       "
        + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) if errors else "none")
    )
    if result["disconnects"]:
        lines.append(f"disconnects  {result['disconnects']}")
    if len(result["steps"]) > 1 or result["mode"] == "rate":
        lines.append("")
        lines.append(
            "   offered     sent/s  delivered/s     p50      p95      p99      max   "
            "ack p99  gen lag p99  gen cpu  server cpu  pass"
        )
        for s in result["steps"]:
            if s["rate"] is None:
                continue
            e, a, g = s["e2e"], s["ack"], s["lag"]
            server_cpu = f"{s['server_cpu']:.2f}" if s["server_cpu"] is not None else "-"
            lines.append(
                f"{s['rate']:10.0f} {s['sent_per_s']:10.0f} {s['delivered_per_s']:12.0f} "
                f"{_ms(e['p50_ms']):>8} {_ms(e['p95_ms']):>8} {_ms(e['p99_ms']):>8} "
                f"{_ms(e['max_ms']):>8} {_ms(a['p99_ms']):>9} {_ms(g['p99_ms']):>12} "
                f"{s['generator_cpu']:8.2f} {server_cpu:>11}  "
                f"{'yes' if s.get('pass') else ('no' if s['completed'] else 'cut')}"
            )
    if "sweep" in result:
        sw = result["sweep"]
        lines.append(
            f"sweep        highest offered rate with p99 <= {sw['p99_limit_ms']:g} ms: "
            f"{sw['max_rate'] if sw['max_rate'] is not None else 'none'}"
            + (f" msg/s (delivered {sw['max_rate_delivered_per_s']}/s)" if sw["max_rate"] else "")
        )
    if "memory" in result:
        m = result["memory"]
        lines.append(
            f"memory       server RSS empty {m['rss_empty_kb']} KiB, loaded {m['rss_loaded_kb']} "
            f"KiB with {m['connections']} connections ({m['active_conversations']} chats), "
            f"after {m['rss_after_kb']} KiB: "
            f"{m.get('kb_per_connection', '?')} KiB per connection"
        )
    server = result["server"]
    if server.get("cpu_s") is not None:
        lines.append(
            f"server       pid {server['pid']}, CPU {server['cpu_s']} s in "
            f"{server['cpu_wall_s']} s of run"
        )
    c = result["correctness"]
    lines.append(
        f"correctness  lost {c['lost']}, duplicated {c['duplicated']}, misplaced "
        f"{c['misplaced']}  (unanswered {c['unanswered']}, reordered {c['reordered']})"
        f"  -> {'OK' if c['ok'] else 'FAILED'}"
    )
    for problem in result["problems"][:10]:
        lines.append(f"  problem: {problem}")
    for item in result["unclean"]:
        lines.append(f"  not clean: {item}")
    lines.append(f"exit code    {result['exit_code']}")
    return "\n".join(lines)


def plot_sweeps(
    series: dict[str, list[dict[str, Any]]],
    path: str,
    *,
    limit_ms: float = 50.0,
    title: str = "Kanava: end-to-end latency against offered load",
) -> None:
    """A PNG of p50/p95/p99 against offered msg/s, one colour per series (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    styles = {"p50_ms": ":", "p95_ms": "--", "p99_ms": "-"}
    colours = ["#444444", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    for i, (label, steps) in enumerate(series.items()):
        done = [s for s in steps if s.get("completed") and s["e2e"]["count"]]
        if not done:
            continue
        rates = [s["rate"] for s in done]
        for key, style in styles.items():
            ax.plot(
                rates,
                [s["e2e"][key] for s in done],
                style,
                marker="o" if key == "p99_ms" else None,
                markersize=3,
                color=colours[i % len(colours)],
                label=f"{label} {key[:3]}",
            )
    ax.axhline(limit_ms, color="black", linewidth=0.8, alpha=0.6)
    ax.text(ax.get_xlim()[0], limit_ms * 1.05, f" {limit_ms:g} ms", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("offered load (chat messages per second)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
