"""What a worker measured, as plain data that merges over processes.

A *step* is one measurement window: a whole run in think mode, one rate of a sweep in rate
mode. Chat messages count in the step in which they were (scheduled to be) sent, whenever they
arrive, so an overloaded step cannot push its late messages into the next step's figures.

Correctness counters are kept per run: every acknowledged message must reach the other party
exactly once, in its own conversation.

- ``lost``: acknowledged (stored) but never received by the other party (a client's message
  in a conversation no professional has had yet is not lost but ``waiting_in_queue``);
- ``duplicated``: received a second time;
- ``misplaced``: received by a party that is not in its conversation, in the wrong
  conversation, with a text or msg_id of another conversation, from the wrong role, or a
  message that was refused or never sent;
- ``unanswered``: sent but neither acknowledged nor refused by the end of the drain;
- ``reordered``: received after a later message of the same sender (allowed after a retry).
"""

from __future__ import annotations

from typing import Any

from .histogram import Histogram

__all__ = ["CORRECTNESS", "STEP_HISTOGRAMS", "StepStats", "WorkerStats", "merge_results"]

STEP_HISTOGRAMS = ("e2e", "c2p", "p2c", "ack", "lag")
STEP_COUNTERS = ("sent", "delivered", "acked", "refused", "rate_limited", "typing", "reads")
CORRECTNESS = ("lost", "duplicated", "misplaced", "unanswered", "reordered")
TOTAL_COUNTERS = (
    "sent",
    "acked",
    "delivered",
    "delivered_history",
    "waiting_in_queue",
    "refused",
    "rate_limited",
    "retries",
    "typing",
    "reads",
    "frames_received",
    "invalid_frames",
    "send_failures",
    "backpressure",
    "conversations_opened",
    "conversations_assigned",
    "conversations_closed",
    "conversations_unassigned",
    "stale_conversations",
    "foreign_conversations",
    "duplicate_acks",
    "queue_updates",
    "takes",
    "connections",
    "connect_failures",
    "intake_answers",
    "intake_stations",
    "intake_ends",
    "open_failures",
)
RUN_HISTOGRAMS = ("queue_wait", "open", "connect", "intake_step")


class StepStats:
    """One measurement window of one worker."""

    def __init__(self, rate: float | None, seconds: float) -> None:
        self.rate = rate  # offered msg/s of all workers together (None: think mode)
        self.seconds = seconds
        self.completed = False
        self.cpu_s = 0.0  # the worker's CPU time in the window
        self.server_cpu_s = 0.0  # the server's (measured by worker 0 only)
        self.counts: dict[str, int] = dict.fromkeys(STEP_COUNTERS, 0)
        self.errors: dict[str, int] = {}
        self.e2e = Histogram()
        self.c2p = Histogram()
        self.p2c = Histogram()
        self.ack = Histogram()
        self.lag = Histogram()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "completed": self.completed,
            "cpu_s": self.cpu_s,
            "server_cpu_s": self.server_cpu_s,
            "counts": dict(self.counts),
            "errors": dict(self.errors),
            **{name: getattr(self, name).to_dict() for name in STEP_HISTOGRAMS},
        }


class WorkerStats:
    """Everything one worker measured in a run."""

    def __init__(self) -> None:
        self.steps: list[StepStats] = []
        self.totals: dict[str, int] = dict.fromkeys(TOTAL_COUNTERS, 0)
        self.correctness: dict[str, int] = dict.fromkeys(CORRECTNESS, 0)
        self.errors: dict[str, int] = {}
        self.disconnects: dict[str, int] = {}
        self.problems: list[str] = []  # the first few correctness problems, for people
        self.queue_wait = Histogram()
        self.open = Histogram()
        self.connect = Histogram()
        self.intake_step = Histogram()  # an intake message sent → the server's next step
        self.extra: dict[str, Any] = {}

    def problem(self, kind: str, text: str) -> None:
        self.correctness[kind] += 1
        if len(self.problems) < 20:
            self.problems.append(f"{kind}: {text}")

    def error(self, code: str, step: StepStats | None) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1
        if step is not None:
            step.errors[code] = step.errors.get(code, 0) + 1

    def disconnect(self, what: str) -> None:
        self.disconnects[what] = self.disconnects.get(what, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.to_dict() for s in self.steps],
            "totals": dict(self.totals),
            "correctness": dict(self.correctness),
            "errors": dict(self.errors),
            "disconnects": dict(self.disconnects),
            "problems": list(self.problems),
            **{name: getattr(self, name).to_dict() for name in RUN_HISTOGRAMS},
            "extra": dict(self.extra),
        }


def _add(into: dict[str, int], other: dict[str, int]) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0) + value


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge workers' ``WorkerStats.to_dict()``: counts add, histograms merge.

    Histograms come back as :class:`Histogram` objects; a step is ``completed`` only if it
    was in every worker.
    """
    merged: dict[str, Any] = {
        "totals": {},
        "correctness": dict.fromkeys(CORRECTNESS, 0),
        "errors": {},
        "disconnects": {},
        "problems": [],
        "extra": {},
        "steps": [],
    }
    for name in RUN_HISTOGRAMS:
        merged[name] = Histogram()
    steps: list[dict[str, Any]] = []
    for result in results:
        _add(merged["totals"], result["totals"])
        _add(merged["correctness"], result["correctness"])
        _add(merged["errors"], result["errors"])
        _add(merged["disconnects"], result["disconnects"])
        merged["problems"].extend(result["problems"])
        for key, value in result["extra"].items():
            merged["extra"].setdefault(key, value)
        for name in RUN_HISTOGRAMS:
            merged[name].merge(Histogram.from_dict(result[name]))
        for i, step in enumerate(result["steps"]):
            if i == len(steps):
                steps.append(
                    {
                        "rate": step["rate"],
                        "seconds": step["seconds"],
                        "completed": True,
                        "cpu_s": 0.0,
                        "server_cpu_s": 0.0,
                        "counts": {},
                        "errors": {},
                        "workers": 0,
                        **{name: Histogram() for name in STEP_HISTOGRAMS},
                    }
                )
            into = steps[i]
            into["workers"] += 1
            into["completed"] = into["completed"] and step["completed"]
            into["cpu_s"] += step["cpu_s"]
            into["server_cpu_s"] += step["server_cpu_s"]
            _add(into["counts"], step["counts"])
            _add(into["errors"], step["errors"])
            for name in STEP_HISTOGRAMS:
                into[name].merge(Histogram.from_dict(step[name]))
    for step in steps:
        if step["workers"] != len(results):
            step["completed"] = False
    merged["steps"] = steps
    return merged
