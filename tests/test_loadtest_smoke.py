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
    """Think-time chats: clients go through the intake, queue, get assigned, chat with typing,
    get closed, return."""
    result = run_loadtest(
        tmp_path, "--scenario", "smoke", "--clients", "20", "--pros", "4", "--duration", "3"
    )
    assert_clean(result)
    assert result["mode"] == "think"
    totals = result["totals"]
    # Every chat was opened by the intake: questions answered, the station chosen.
    assert totals["conversations_opened"] >= 20
    # (A client may have chosen its station just as the run ended: its chat opens after it.)
    opened = totals["conversations_opened"]
    assert opened <= totals["intake_stations"] <= opened + 20
    assert totals["intake_answers"] >= 4 * totals["conversations_opened"]
    assert totals["intake_ends"] == 0 and totals["open_failures"] == 0
    assert result["latency"]["intake_step"]["count"] > totals["intake_answers"]
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


def test_without_the_intake_clients_open_chats_directly(tmp_path: Path) -> None:
    result = run_loadtest(
        tmp_path, "--scenario", "smoke", "--no-intake", "--clients", "8", "--duration", "2"
    )
    assert_clean(result)
    totals = result["totals"]
    assert totals["conversations_opened"] >= 8
    assert totals["intake_answers"] == 0 and totals["intake_stations"] == 0


def test_an_intake_that_cannot_reach_the_queue_fails_the_run_clearly(tmp_path: Path) -> None:
    """The server's own areas have no load stations: no chat opens, the tool says why."""
    proc = subprocess.run(
        [
            sys.executable,
            str(LOADTEST),
            "--scenario",
            "smoke",
            "--clients",
            "4",
            "--duration",
            "1",
            "--quiet",
            "--server-env",
            f"KANAVA_AREAS_FILE={ROOT / 'server' / 'config' / 'areas.toml'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "no health station 'load-0'" in proc.stderr
    assert "clients could not open a chat" in proc.stderr


def test_the_load_answers_reach_the_queue_in_every_shipped_topic() -> None:
    """The simulated citizens' answers are valid and never a red flag, whatever the draw."""
    import random

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from loadtest_lib.intake import LANGUAGES, answer
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from server.intake.questionnaire import TriageLevel, load_topics

    topics = load_topics(None)
    rng = random.Random(7)
    for topic_id in topics:
        for trial in range(60):
            intake = topics.start(topic_id, LANGUAGES[trial % 3])
            asked = 0
            while (question := intake.next_question()) is not None:
                intake.answer(question.id, answer(intake.question_view(question), rng))
                asked += 1
                assert not intake.emergency, (topic_id, intake.answers())
            assert asked >= 4
            assert intake.triage().level in (TriageLevel.ROUTINE, TriageLevel.URGENT)


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
