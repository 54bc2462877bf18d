"""The one-address flood (scripts/flood.py) in its short form: the limits refuse the flood and
the real patient at another address is served as before.

The full run's figures are in docs/BENCHMARKS.md; this checks the same contract in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def test_a_one_address_flood_is_refused_and_the_patient_is_served(tmp_path: Path) -> None:
    out = tmp_path / "flood.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "flood.py"), "--short", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    flood = result["flood"]
    # Every kind of flood was refused past its limit, with a documented code.
    for kind in ("bot_chats", "queued_chats", "intakes", "messages", "sockets"):
        assert sum(flood[kind]["refused"].values()) > 0, kind
        assert set(flood[kind]["refused"]) <= {"rate_limited", "address_limit", "http_429"}
    # What got through stays within the shipped limits.
    assert flood["sockets"]["accepted"] <= 200
    assert flood["bot_chats"]["accepted"] <= 30
    assert flood["queued_chats"]["accepted"] <= 5
    assert flood["messages"]["accepted"] <= 20
    # The patient: served every time, every message in their own chat, never behind more
    # than the flood's allowed waiting chats.
    before, during = result["patient"]["baseline"], result["patient"]["during_flood"]
    for figures in (before, during):
        assert figures["served"] == figures["patients"] > 0
        assert figures["delivered_in_own_chat"] == figures["messages"] > 0
    assert before["queue_positions"] == [1] * before["patients"]
    assert all(position <= 1 + 5 for position in during["queue_positions"])
    assert result["ok"] is True
