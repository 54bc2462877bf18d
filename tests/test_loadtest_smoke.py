"""The load tool itself: short runs against a server it starts, nothing lost, clean exit.

``scripts/loadtest.py`` runs as a subprocess exactly as people run it; its JSON output is the
contract checked here. Each run takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOADTEST = ROOT / "scripts" / "loadtest.py"


def run_loadtest(tmp_path: Path, *args: str, timeout: float = 60) -> dict[str, Any]:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(LOADTEST), *args, "--quiet", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def assert_clean(result: dict[str, Any]) -> None:
    correctness = result["correctness"]
    assert correctness["lost"] == 0
    assert correctness["duplicated"] == 0
    assert correctness["misplaced"] == 0
    assert correctness["unanswered"] == 0
    assert correctness["ok"] is True
    assert result["exit_code"] == 0
    assert result["unclean"] == []
    totals = result["totals"]
    assert totals["sent"] > 0
    assert totals["delivered"] == totals["sent"] - totals["refused"]
    assert totals["invalid_frames"] == 0


def test_smoke_scenario_chats_and_loses_nothing(tmp_path: Path) -> None:
    """Think-time chats: clients queue, get assigned, chat with typing, get closed, return."""
    result = run_loadtest(
        tmp_path, "--scenario", "smoke", "--clients", "20", "--pros", "4", "--duration", "3"
    )
    assert_clean(result)
    assert result["mode"] == "think"
    totals = result["totals"]
    assert totals["conversations_closed"] > 0  # the professionals closed and took the next
    assert totals["typing"] > 0 and totals["reads"] > 0
    assert result["latency"]["e2e"]["count"] > 0
    assert result["latency"]["ack"]["p99_ms"] is not None


def test_rate_mode_in_two_processes_with_msgpack(tmp_path: Path) -> None:
    """Open-loop traffic at a fixed rate, spread over two processes, merged."""
    result = run_loadtest(
        tmp_path,
        "--clients",
        "20",
        "--pros",
        "4",
        "--rate",
        "200",
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--procs",
        "2",
        "--codec",
        "msgpack",
    )
    assert_clean(result)
    assert result["mode"] == "rate"
    (step,) = result["steps"]
    assert step["completed"]
    assert step["sent"] == pytest.approx(400, rel=0.05)
    assert step["delivered"] == step["sent"]
    assert result["latency"]["client_to_pro"]["count"] > 0
    assert result["latency"]["pro_to_client"]["count"] > 0


def test_help_explains_every_option() -> None:
    spec = importlib.util.spec_from_file_location("loadtest_cli", LOADTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    parser = module.build_parser()
    for action in parser._actions:
        assert action.help and len(action.help) > 15, f"{action.option_strings} has no help"
    text = parser.format_help()
    for name in module.SCENARIOS:
        assert name in text
