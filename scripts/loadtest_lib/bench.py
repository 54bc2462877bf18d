"""``scripts/bench``: Kanava against the bare relay, the same way, repeated; medians and ratios.

For each repetition and codec it runs, with ``scripts/loadtest.py`` as a subprocess pinned to
the generator CPU (``taskset -c 1``) and the server it starts pinned to the server CPU
(``--server-cpu 0``), each on a fresh server:

1. the **relay** sweep, then the **Kanava** sweep: a coarse sweep of offered rates that stops
   after two failing steps in a row (a step fails when its p99 exceeds the limit or messages
   are missing), then a fine sweep between the last passing and the next (failing) rate.
   The figure is the highest offered rate whose end-to-end p99 is within the limit with
   (nearly) every message delivered;
2. a constant run at ``--fixed-rate`` against each, for latency at the same load;
3. (once per repetition) the memory run: ``--memory-clients`` idle clients, of which
   ``--memory-active`` chat with professionals, the server's RSS above its empty footprint.

It prints medians, the ratios Kanava / relay and the budget verdicts, and writes every run's
JSON, a summary and a latency chart under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .report import plot_sweeps
from .runner import machine
from .servers import ROOT

LOADTEST = ROOT / "scripts" / "loadtest.py"
COARSE = (
    "1000,2000,3000,4000,5000,6000,8000,10000,12000,14000,17000,20000,24000,28000,32000,"
    "36000,40000,45000,50000"
)
BUDGET_RATIO = 0.5
BUDGET_KB = 40.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark Kanava against the bare aiohttp relay on this machine: "
        "throughput at p99 <= 50 ms (sweeps), latency at a fixed rate, memory per idle "
        "connection; medians of --reps runs and the ratios Kanava / relay.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="one repetition, short steps, 2,000 "
        "idle clients: a few minutes, for checking the tools, not for figures",
    )
    p.add_argument("--reps", type=int, help="repetitions of everything (default 3; quick 1)")
    p.add_argument("--codecs", default="json,msgpack", help="codecs to measure (json,msgpack)")
    p.add_argument("--coarse", default=COARSE, help="offered rates of the coarse sweep, msg/s")
    p.add_argument("--fine-steps", type=int, default=5, help="steps of the fine sweep (5)")
    p.add_argument("--step-seconds", type=float, help="measured seconds per step (3; quick 2)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per step (1; quick 0.5)")
    p.add_argument("--clients", type=int, default=200, help="conversations (relay: pairs; 200)")
    p.add_argument("--pros", type=int, default=20, help="professionals for Kanava (20)")
    p.add_argument("--p99-limit", type=float, default=50.0, help="latency limit, ms (50)")
    p.add_argument(
        "--fixed-rate",
        type=float,
        default=2000.0,
        help="offered msg/s of the fixed-rate latency run (2000)",
    )
    p.add_argument("--fixed-seconds", type=float, help="length of that run (10; quick 4)")
    p.add_argument("--memory-clients", type=int, help="idle clients (10000; quick 2000)")
    p.add_argument("--memory-active", type=int, help="of which chatting (2500; quick 500)")
    p.add_argument("--memory-pros", type=int, default=50, help="professionals (50)")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("throughput", "fixed", "memory"),
        help="leave a part out",
    )
    p.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of both the server and the relay (uvloop, Kanava's default)",
    )
    p.add_argument("--server-cpu", default="0", help="CPU for the server (0)")
    p.add_argument("--gen-cpu", default="1", help="CPU(s) for the load generator (1)")
    p.add_argument(
        "--procs",
        type=int,
        default=1,
        help="load generator processes (1; more only helps with more generator CPUs)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra KANAVA_* setting for the Kanava server (repeatable)",
    )
    p.add_argument("--out", help="directory for the results (var/bench/<date-time>)")
    return p


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.reps = args.reps or (1 if args.quick else 3)
        self.step_seconds = args.step_seconds or (2.0 if args.quick else 3.0)
        self.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
        self.fixed_seconds = args.fixed_seconds or (4.0 if args.quick else 10.0)
        self.memory_clients = args.memory_clients or (2000 if args.quick else 10_000)
        self.memory_active = args.memory_active or (500 if args.quick else 2_500)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = Path(args.out or ROOT / "var" / "bench" / stamp)
        self.out.mkdir(parents=True, exist_ok=True)
        self.pin = not args.no_pin and shutil.which("taskset") is not None
        self.codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
        self.runs: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[bench {time.monotonic() - self.t0:6.0f}s] {text}", flush=True)

    # --- one load test --------------------------------------------------------------------

    def loadtest(self, name: str, args: list[str], timeout: float) -> dict[str, Any] | None:
        out = self.out / f"{name}.json"
        command = [sys.executable, str(LOADTEST), *args, "--quiet", "--json", str(out)]
        command += ["--procs", str(self.args.procs), "--server-loop", self.args.loop]
        if self.pin:
            command = [
                "taskset",
                "-c",
                self.args.gen_cpu,
                *command,
                "--server-cpu",
                self.args.server_cpu,
            ]
        for item in self.args.server_env:
            command += ["--server-env", item]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            self.say(f"{name}: timed out after {timeout:.0f}s")
            return None
        (self.out / f"{name}.log").write_text(proc.stderr, encoding="utf-8")
        if not out.exists():
            self.say(f"{name}: failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
            return None
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        result["bench_name"] = name
        result["bench_seconds"] = round(time.monotonic() - started, 1)
        if result["exit_code"] != 0:
            self.say(
                f"{name}: exit {result['exit_code']}: {result['correctness']} {result['unclean']}"
            )
        self.runs.append(result)
        return result

    def common(self, target: str, codec: str) -> list[str]:
        args = [
            "--target",
            target,
            "--codec",
            codec,
            "--clients",
            str(self.args.clients),
            "--warmup",
            str(self.warmup),
            "--p99-limit",
            str(self.args.p99_limit),
            "--setup-timeout",
            "120",
        ]
        if target == "kanava":
            args += ["--pros", str(self.args.pros)]
        return args

    # --- parts ----------------------------------------------------------------------------

    def sweep_run(
        self, name: str, target: str, codec: str, rates: list[float]
    ) -> dict[str, Any] | None:
        """One loadtest.py sweep over ``rates``, stopping after two failing steps in a row."""
        per_step = self.warmup + self.step_seconds
        return self.loadtest(
            name,
            [
                *self.common(target, codec),
                "--sweep",
                ",".join(f"{r:g}" for r in rates),
                "--step-seconds",
                str(self.step_seconds),
                "--sweep-max-fail",
                "2",
            ],
            timeout=180 + per_step * len(rates),
        )

    def sweep(self, rep: int, target: str, codec: str) -> dict[str, Any]:
        """Coarse sweep until two failures in a row, then a fine one between pass and fail."""
        coarse = [float(r) for r in self.args.coarse.split(",")]
        name = f"r{rep}-{target}-{codec}"
        first = self.sweep_run(f"{name}-coarse", target, codec, coarse)
        if first is None:
            return {"max_rate": None, "steps": [], "failed": True}
        steps = list(first["steps"])
        best = first["sweep"]["max_rate"]
        done = [s["rate"] for s in steps if s["completed"]]
        above = [r for r in coarse if best is not None and r > best]
        capped = best is not None and not above
        if best is None:
            low, high = coarse[0] / 4, coarse[0]
        elif above and above[0] in done:
            low, high = best, above[0]
        else:
            low = high = best
        fine: list[float] = []
        if high > low and self.args.fine_steps > 0:
            n = self.args.fine_steps
            fine = [round(low + (high - low) * (i + 1) / (n + 1), -1) for i in range(n)]
            fine = sorted({r for r in fine if low < r < high})
        if fine:
            second = self.sweep_run(f"{name}-fine", target, codec, fine)
            if second is not None:
                steps += second["steps"]
                fine_best = second["sweep"]["max_rate"]
                if fine_best is not None and (best is None or fine_best > best):
                    best = fine_best
        steps.sort(key=lambda s: s["rate"])
        at_best = next((s for s in steps if s["rate"] == best and s.get("pass")), None)
        over = next((s for s in steps if best is not None and s["rate"] > best), None)
        return {
            "max_rate": best,
            "capped": capped,
            "steps": steps,
            "at_max": _brief(at_best),
            "first_over": _brief(over),
            "generator_bound": _generator_bound(at_best) or _generator_bound(over),
        }

    def fixed(self, rep: int, target: str, codec: str) -> dict[str, Any] | None:
        result = self.loadtest(
            f"r{rep}-{target}-{codec}-fixed",
            [
                *self.common(target, codec),
                "--rate",
                str(self.args.fixed_rate),
                "--duration",
                str(self.fixed_seconds),
            ],
            timeout=240 + self.fixed_seconds,
        )
        if result is None or not result["steps"]:
            return None
        step = result["steps"][0]
        return {**_brief(step), "pass": step.get("pass")}

    def memory(self, rep: int) -> dict[str, Any] | None:
        hold = 8.0 if self.quick else 10.0
        result = self.loadtest(
            f"r{rep}-memory",
            [
                "--idle",
                "--clients",
                str(self.memory_clients),
                "--active",
                str(self.memory_active),
                "--pros",
                str(self.args.memory_pros),
                "--capacity",
                str(-(-self.memory_active // self.args.memory_pros)),
                "--duration",
                str(hold),
                "--connect-rate",
                "1000",
                "--setup-timeout",
                "300",
                "--no-read-marks",
            ],
            timeout=600,
        )
        return None if result is None else result.get("memory")

    # --- all ------------------------------------------------------------------------------

    def run(self) -> int:
        a = self.args
        self.say(
            f"{self.reps} repetition(s), codecs {', '.join(self.codecs)}, loop {a.loop}, "
            + (
                f"server on CPU {a.server_cpu}, generator on CPU {a.gen_cpu}"
                if self.pin
                else "not pinned"
            )
            + f"; results in {self.out}"
        )
        sweeps: dict[str, list[dict[str, Any]]] = {}
        fixed: dict[str, list[dict[str, Any]]] = {}
        memory: list[dict[str, Any]] = []
        for rep in range(1, self.reps + 1):
            for codec in self.codecs:
                for target in ("relay", "kanava"):
                    key = f"{target} {codec}"
                    if "throughput" not in a.skip:
                        s = self.sweep(rep, target, codec)
                        sweeps.setdefault(key, []).append(s)
                        self.say(
                            f"rep {rep} {key}: max {s['max_rate']} msg/s at p99 <= "
                            f"{a.p99_limit:g} ms"
                            + (" (generator-bound)" if s.get("generator_bound") else "")
                            + (" (capped: raise --coarse)" if s.get("capped") else "")
                        )
                    if "fixed" not in a.skip:
                        f = self.fixed(rep, target, codec)
                        if f is not None:
                            fixed.setdefault(key, []).append(f)
                            self.say(
                                f"rep {rep} {key}: at {a.fixed_rate:g} msg/s p50 "
                                f"{f['p50_ms']} ms p99 {f['p99_ms']} ms"
                            )
            if "memory" not in a.skip:
                m = self.memory(rep)
                if m is not None:
                    memory.append(m)
                    self.say(f"rep {rep} memory: {m.get('kb_per_connection')} KiB/connection")
        summary = self.summarize(sweeps, fixed, memory)
        (self.out / "summary.json").write_text(
            json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8"
        )
        print(self.format(summary))
        budget = summary["budget"]
        return 0 if budget.get("all_met") and budget.get("complete") else 1

    def summarize(
        self,
        sweeps: dict[str, list[dict[str, Any]]],
        fixed: dict[str, list[dict[str, Any]]],
        memory: list[dict[str, Any]],
    ) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {
            "machine": machine(),
            "settings": {
                "reps": self.reps,
                "quick": self.quick,
                "loop": a.loop,
                "pinned": self.pin,
                "server_cpu": a.server_cpu,
                "gen_cpu": a.gen_cpu,
                "clients": a.clients,
                "pros": a.pros,
                "step_seconds": self.step_seconds,
                "warmup": self.warmup,
                "p99_limit_ms": a.p99_limit,
                "fixed_rate": a.fixed_rate,
                "fixed_seconds": self.fixed_seconds,
                "server_env": a.server_env,
            },
            "throughput": {},
            "fixed": {},
            "memory": {},
            "ratios": {},
            "budget": {},
        }
        for key, runs in sweeps.items():
            rates = [r["max_rate"] for r in runs if r.get("max_rate") is not None]
            out["throughput"][key] = {
                "median": statistics.median(rates) if rates else None,
                "runs": rates,
                "generator_bound": any(r.get("generator_bound") for r in runs),
                "capped": any(r.get("capped") for r in runs),
                "at_max": [r.get("at_max") for r in runs],
            }
        for key, runs in fixed.items():
            out["fixed"][key] = {
                name: _median([r.get(name) for r in runs])
                for name in (
                    "p50_ms",
                    "p95_ms",
                    "p99_ms",
                    "max_ms",
                    "delivered_per_s",
                    "server_cpu",
                    "generator_cpu",
                    "server_us_per_msg",
                    "generator_us_per_msg",
                )
            }
            out["fixed"][key]["runs"] = runs
        if memory:
            out["memory"] = {
                "median_kb_per_connection": _median([m.get("kb_per_connection") for m in memory]),
                "median_rss_empty_kb": _median([m.get("rss_empty_kb") for m in memory]),
                "median_rss_loaded_kb": _median([m.get("rss_loaded_kb") for m in memory]),
                "runs": memory,
            }
        verdicts: list[bool] = []
        for codec in self.codecs:
            relay = out["throughput"].get(f"relay {codec}", {}).get("median")
            kanava = out["throughput"].get(f"kanava {codec}", {}).get("median")
            ratio: dict[str, Any] = {}
            if relay and kanava is not None:
                ratio["throughput"] = round(kanava / relay, 3)
                verdicts.append(ratio["throughput"] >= BUDGET_RATIO)
            fr = out["fixed"].get(f"relay {codec}")
            fk = out["fixed"].get(f"kanava {codec}")
            if fr and fk:
                for q in ("p50_ms", "p99_ms"):
                    if fr.get(q) and fk.get(q) is not None:
                        ratio[f"fixed_{q[:3]}"] = round(fk[q] / fr[q], 2)
                # Server CPU per message at the same rate: Kanava's share of the relay's
                # efficiency, independent of the load generator's own limit.
                if fr.get("server_us_per_msg") and fk.get("server_us_per_msg"):
                    ratio["cpu_efficiency"] = round(
                        fr["server_us_per_msg"] / fk["server_us_per_msg"], 3
                    )
            out["ratios"][codec] = ratio
        budget = out["budget"]
        for codec in self.codecs:
            if "throughput" in out["ratios"][codec]:
                budget[f"throughput_ratio_{codec}"] = out["ratios"][codec]["throughput"]
        tj = out["throughput"].get("kanava json", {}).get("median")
        tm = out["throughput"].get("kanava msgpack", {}).get("median")
        if tj is not None and tm is not None:
            budget["msgpack_not_slower"] = tm >= tj
            verdicts.append(tm >= tj)
        kb = out["memory"].get("median_kb_per_connection") if memory else None
        if kb is not None:
            budget["kb_per_connection"] = kb
            budget["memory_ok"] = kb < BUDGET_KB
            verdicts.append(kb < BUDGET_KB)
        budget["all_met"] = bool(verdicts) and all(verdicts)
        budget["complete"] = not a.skip and set(self.codecs) >= {"json", "msgpack"}
        series = {}
        for key, runs in sweeps.items():
            done = [r for r in runs if r.get("max_rate") is not None]
            if done:
                median_run = sorted(done, key=lambda r: r["max_rate"])[len(done) // 2]
                series[key] = median_run["steps"]
        if series:
            chart = self.out / "latency.png"
            plot_sweeps(
                series,
                str(chart),
                limit_ms=a.p99_limit,
                title=f"Kanava vs bare relay, one core ({a.loop}); median run",
            )
            out["chart"] = str(chart)
        out["loadtest_runs"] = [r["bench_name"] for r in self.runs]
        return out

    def format(self, s: dict[str, Any]) -> str:
        m = s["machine"]
        st = s["settings"]
        lines = [
            "",
            f"== Kanava bench: medians of {st['reps']} run(s)"
            + (" (QUICK: not for figures)" if st["quick"] else ""),
            f"machine   {m['nproc']} x {m['cpu_model']}, {m['memory_mb']} MB, Python "
            f"{m['python']}, load {m['loadavg'][0]:.2f}",
            f"setup     loop {st['loop']}; "
            + (
                f"server on CPU {st['server_cpu']}, generator on CPU {st['gen_cpu']}"
                if st["pinned"]
                else "not pinned"
            )
            + f"; {st['clients']} conversations; steps {st['warmup']:g}+{st['step_seconds']:g}s",
        ]
        if s["throughput"]:
            lines.append("")
            lines.append(f"throughput at p99 <= {st['p99_limit_ms']:g} ms (msg/s)   median   runs")
        for key, t in s["throughput"].items():
            flags = (" generator-bound" if t["generator_bound"] else "") + (
                " capped" if t["capped"] else ""
            )
            lines.append(f"  {key:28} {_num(t['median']):>8}   {t['runs']}{flags}")
        if s["fixed"]:
            lines.append("")
            lines.append(
                f"latency at {st['fixed_rate']:g} msg/s          p50      p99      max   "
                "server cpu   server µs/msg"
            )
            for key, f in s["fixed"].items():
                lines.append(
                    f"  {key:28} {_num(f['p50_ms']):>6}ms {_num(f['p99_ms']):>6}ms "
                    f"{_num(f['max_ms']):>6}ms   {_num(f.get('server_cpu')):>10}   "
                    f"{_num(f.get('server_us_per_msg')):>13}"
                )
        lines.append("")
        for codec, r in s["ratios"].items():
            parts = []
            if "throughput" in r:
                ok = "meets" if r["throughput"] >= BUDGET_RATIO else "MISSES"
                parts.append(
                    f"throughput {r['throughput']:.2f} ({ok} the budget >= {BUDGET_RATIO:g})"
                )
            if "fixed_p50" in r:
                parts.append(f"latency p50 x{r['fixed_p50']}, p99 x{r['fixed_p99']}")
            if "cpu_efficiency" in r:
                parts.append(f"server CPU efficiency {r['cpu_efficiency']:.2f}")
            if parts:
                lines.append(f"ratio kanava/relay {codec:8} " + "; ".join(parts))
        b = s["budget"]
        if "msgpack_not_slower" in b:
            lines.append(
                "msgpack vs json: "
                + ("msgpack is not slower" if b["msgpack_not_slower"] else "msgpack is SLOWER")
            )
        if s["memory"]:
            mem = s["memory"]
            kb = mem["median_kb_per_connection"]
            lines.append(
                f"memory    {mem['runs'][0].get('connections')} connections "
                f"({mem['runs'][0].get('active_conversations')} chats): {_num(kb)} KiB per "
                f"connection above an empty {_num(mem['median_rss_empty_kb'])} KiB "
                f"({'meets' if kb is not None and kb < BUDGET_KB else 'MISSES'} < {BUDGET_KB:g})"
            )
        verdict = "all met" if b.get("all_met") else "NOT all met"
        if not b.get("complete"):
            verdict += " (of the parts measured: not every part of the budget was run)"
        lines.append(f"budget    {verdict}")
        if any(t["generator_bound"] for t in s["throughput"].values()):
            lines.append(
                "note      generator-bound: the load generator used most of its CPU or fell "
                "behind at that target's limit, so that figure is a lower bound (a relay "
                "lower bound makes the ratio an upper bound)"
            )
        if s.get("chart"):
            lines.append(f"chart     {s['chart']}")
        lines.append(f"details   {self.out}")
        return "\n".join(lines)


def _brief(step: dict[str, Any] | None) -> dict[str, Any]:
    if not step:
        return {}
    e2e = step["e2e"]
    return {
        "rate": step["rate"],
        "delivered_per_s": step["delivered_per_s"],
        "p50_ms": e2e["p50_ms"],
        "p95_ms": e2e["p95_ms"],
        "p99_ms": e2e["p99_ms"],
        "max_ms": e2e["max_ms"],
        "generator_cpu": step["generator_cpu"],
        "server_cpu": step["server_cpu"],
        "server_us_per_msg": step.get("server_us_per_msg"),
        "generator_us_per_msg": step.get("generator_us_per_msg"),
        "lag_p99_ms": step["lag"]["p99_ms"],
    }


def _generator_bound(step: dict[str, Any] | None) -> bool:
    """The generator (one process per core) was nearly saturated or fell behind schedule."""
    if not step:
        return False
    lag = step["lag"]["p99_ms"] if "lag" in step else step.get("lag_p99_ms")
    return step["generator_cpu"] >= 0.85 or (lag is not None and lag > 10.0)


def _median(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if value < 100 else f"{value:.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (os.cpu_count() or 1) < 2 and not args.no_pin:
        print("bench: fewer than 2 CPUs: running without pinning", file=sys.stderr)
        args.no_pin = True
    return Bench(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
