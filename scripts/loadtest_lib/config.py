"""The options of a load test, the scenario presets, and each worker process's share.

A run is one of three *modes*:

- ``think``: clients and professionals chat at human pace. Each party waits a random think
  time (exponential, mean ``think`` seconds) before each message, shows typing, sends read
  marks; the professional closes the chat after ``messages`` messages each way and takes the
  next one; the client comes back after a pause with a new conversation. Queue wait matters.
- ``rate``: open-loop load at a fixed rate: ``rate`` chat messages per second in total,
  spread round-robin over every assigned conversation, alternating client and professional.
  Latency is measured from the *scheduled* send time, so a generator that falls behind shows
  up as latency instead of hiding it. ``sweep`` runs several such steps at increasing rates.
- ``idle``: many connected clients, some of them in conversations, nobody typing: for the
  server's memory per connection.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "CODEC_NAMES",
    "DEFAULTS",
    "LOAD_PASSWORD",
    "RATE_DEFAULTS",
    "SCENARIOS",
    "Config",
    "WorkerPlan",
    "parse_sweep",
    "pro_username",
    "split",
    "team_of_worker",
]

LOAD_PASSWORD = "kanava-load"
WAIT_TEAM = "load-wait"  # a pick-mode team nobody works in: idle clients queue here
CODEC_NAMES = {"json": "kanava.v1.json", "msgpack": "kanava.v1.msgpack"}


def pro_username(i: int) -> str:
    """The username of load professional ``i`` (1-based)."""
    return f"load-pro-{i}"


def team_of_worker(worker: int) -> str:
    return f"load-{worker}"


def team_of_pro(i: int, procs: int) -> str:
    """Professional ``i`` (1-based) works in the team of worker ``(i - 1) % procs``.

    Each worker process simulates a team's clients *and* its professionals, so both ends of
    every conversation are in the same process: latency and correctness are checked there.
    """
    return team_of_worker((i - 1) % procs)


# Values used when neither the scenario nor the command line gives one.
DEFAULTS: dict[str, Any] = {
    "target": "kanava",
    "clients": 20,
    "pros": 4,
    "capacity": None,  # None: enough for every client in rate mode, else 4
    "assign": "auto",
    "codec": "json",
    "rate": None,
    "think": 2.0,
    "messages": 6,
    "text_size": 80,
    "typing": 0.5,
    "read_marks": True,
    "ramp": 2.0,
    "pause": 1.0,
    "duration": 10.0,
    "warmup": 0.0,
    "drain": 5.0,
    "setup_timeout": 60.0,
    "sweep": None,
    "step_seconds": 4.0,
    "p99_limit_ms": 50.0,
    "min_delivered": 0.97,
    "sweep_max_fail": 2,
    "idle": False,
    "active": 0,
    "idle_open": "queued",
    "procs": 1,
    "connect_rate": 1000.0,
    "max_messages": 0,
    "rate_limits": "auto",
    "intake": True,
    "intake_think": 0.0,
}

# In rate mode (--rate or --sweep) these replace DEFAULTS: endless chats of plain messages.
RATE_DEFAULTS: dict[str, Any] = {
    "messages": 0,
    "typing": 0.0,
    "read_marks": False,
    "warmup": 1.0,
}

SCENARIOS: dict[str, dict[str, Any]] = {
    "smoke": {
        "_doc": "a few seconds, a few chats, everything checked (used by the test suite)",
        "clients": 20,
        "pros": 4,
        "capacity": 5,
        "think": 0.3,
        "messages": 4,
        "duration": 4.0,
        "ramp": 0.5,
        "pause": 0.2,
        "drain": 5.0,
    },
    "morning-peak": {
        "_doc": "the 8 o'clock rush: 300 citizens for 20 nurses (4 chats each), a long queue, "
        "human think times, typing and read marks, the server's real rate limits",
        "clients": 300,
        "pros": 20,
        "capacity": 4,
        "think": 3.0,
        "messages": 6,
        "duration": 60.0,
        "ramp": 20.0,
        "pause": 5.0,
        "intake_think": 3.0,
        "rate_limits": "default",
    },
    "steady": {
        "_doc": "open-loop chat traffic at a fixed rate over 200 assigned conversations",
        "clients": 200,
        "pros": 20,
        "rate": 2000.0,
        "messages": 0,
        "typing": 0.0,
        "read_marks": False,
        "duration": 20.0,
        "warmup": 2.0,
    },
    "sweep": {
        "_doc": "rate steps from 500 msg/s upwards until p99 > 50 ms twice (scripts/bench)",
        "clients": 200,
        "pros": 20,
        "messages": 0,
        "typing": 0.0,
        "read_marks": False,
        "sweep": "500:20000:500",
        "step_seconds": 4.0,
        "warmup": 1.0,
    },
    "idle-10k": {
        "_doc": "10,000 connected clients, 2,500 of them chatting with 50 professionals "
        "(capacity 50), the rest queued; for memory per idle connection",
        "idle": True,
        "clients": 10_000,
        "active": 2_500,
        "pros": 50,
        "capacity": 50,
        "duration": 10.0,
        "connect_rate": 1000.0,
    },
}


def parse_sweep(text: str) -> list[float]:
    """``START:STOP:STEP`` (msg/s) → the list of rates, or a comma list ``500,1000,4000``."""
    if "," in text or ":" not in text:
        rates = [float(part) for part in text.split(",") if part.strip()]
    else:
        parts = [float(p) for p in text.split(":")]
        if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
            raise ValueError("use START:STOP:STEP with STEP > 0 and STOP >= START")
        start, stop, step = parts
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        rates = [start + i * step for i in range(count)]
    if not rates or any(r <= 0 for r in rates):
        raise ValueError("rates must be positive")
    return rates


def split(total: int, parts: int, index: int) -> int:
    """Share ``index`` of ``total`` split as evenly as possible into ``parts``."""
    return total // parts + (1 if index < total % parts else 0)


@dataclass
class Config:
    """Everything that defines a run (after scenario and command line are combined)."""

    target: str = "kanava"
    url: str | None = None
    scenario: str | None = None
    clients: int = 20
    pros: int = 4
    capacity: int = 4
    assign: str = "auto"
    codec: str = "json"
    rate: float | None = None
    think: float = 2.0
    messages: int = 6
    text_size: int = 80
    typing: float = 0.5
    read_marks: bool = True
    ramp: float = 2.0
    pause: float = 1.0
    duration: float = 10.0
    warmup: float = 0.0
    drain: float = 5.0
    setup_timeout: float = 60.0
    sweep: list[float] | None = None
    step_seconds: float = 4.0
    p99_limit_ms: float = 50.0
    min_delivered: float = 0.97
    sweep_max_fail: int = 2
    idle: bool = False
    active: int = 0
    idle_open: str = "queued"
    procs: int = 1
    connect_rate: float = 1000.0
    max_messages: int = 0
    rate_limits: str = "auto"
    intake: bool = True
    intake_think: float = 0.0
    password: str = LOAD_PASSWORD
    uvloop: bool = True
    server_cpu: str | None = None
    server_loop: str = "uvloop"
    server_env: dict[str, str] = field(default_factory=dict)
    server_pid: int | None = None
    database: str | None = None
    quiet: bool = False
    seed_label: str = ""

    @property
    def mode(self) -> str:
        if self.idle:
            return "idle"
        if self.rate is not None or self.sweep is not None:
            return "rate"
        return "think"

    @property
    def subprotocol(self) -> str:
        return CODEC_NAMES[self.codec]

    def steps(self) -> list[float]:
        """The offered rates (msg/s, all processes together) of the measured steps."""
        if self.sweep is not None:
            return list(self.sweep)
        if self.rate is not None:
            return [self.rate]
        return []

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """Raise ValueError for a combination that cannot run."""
        if self.clients < 1:
            raise ValueError("--clients must be at least 1")
        if self.procs < 1:
            raise ValueError("--procs must be at least 1")
        if self.clients < self.procs:
            raise ValueError("--procs cannot exceed --clients")
        if (
            self.target == "kanava"
            and self.pros < self.procs
            and (self.mode != "idle" or self.active > 0)
        ):
            raise ValueError(
                "every process needs at least one professional: --pros >= --procs "
                "(each process simulates its own team)"
            )
        if self.mode == "think" and self.target == "relay":
            raise ValueError("the relay has no conversations: use --rate, --sweep or --idle")
        if self.duration <= 0:
            raise ValueError("--duration must be positive")
        if self.text_size < 40:
            raise ValueError("--text-size must be at least 40 (the text carries a stamp)")
        if not 0 <= self.typing <= 1:
            raise ValueError("--typing is a fraction from 0 to 1")
        if self.active > self.clients:
            raise ValueError("--active cannot exceed --clients")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("--rate must be positive")
        if self.intake_think < 0:
            raise ValueError("--intake-think cannot be negative")


@dataclass
class WorkerPlan:
    """What one worker process simulates: its share of clients, professionals and rate."""

    index: int
    config: Config
    ws_base: str  # ws://host:port
    http_base: str  # http://host:port
    clients: int
    active: int
    pros: list[tuple[str, str | None]]  # (username, session token or None: sign in)
    team: str
    rate_share: float  # this worker's fraction of the offered rate
    run_id: str
    client_offset: int = 0  # global index of this worker's first client
    max_messages: int = 0  # this worker's share of --max-messages (0: no limit)
    start_at_ns: int = 0  # monotonic start of measurement, set by the runner

    def with_start(self, start_at_ns: int) -> WorkerPlan:
        return replace(self, start_at_ns=start_at_ns)
