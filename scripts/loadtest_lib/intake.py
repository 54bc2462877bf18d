"""How a simulated citizen goes through Kanava's intake before the chat opens.

A real citizen does not send ``conversation.open``: they choose a topic, answer the
questionnaire one ``intake.step`` at a time (who may chat among the questions, when nobody is
identified), choose their health station and confirm the review; the server then queues the
chat itself (docs/protocol.md, "The intake"). The load tool does the same, so the
intake's cost is part of what it measures.

- Answers are plausible and never a red flag: a simulated citizen must reach the queue, not the
  112 screen. ``answer`` picks them from the question itself (its kind, options and limits),
  with realistic values for the questions Kanava ships (age, temperature, duration...), so it
  also works with a city's own questionnaires.
- The load teams are reached through health stations of their own: the server the tool starts
  reads an areas file (``write_areas_file``) with a station ``load-K`` per load team and
  ``load-wait`` for the waiting room. Against ``--url``, start the server with that file
  (``--seed`` writes it beside the database).
- Identification needs a person at an identity provider, so the server under load must run
  without one (``KANAVA_OIDC_ISSUER`` unset): the intake then asks for the station instead.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

__all__ = [
    "LANGUAGES",
    "WAIT_STATION",
    "answer",
    "areas_file_text",
    "station_of_worker",
    "write_areas_file",
]

WAIT_STATION = "load-wait"
LANGUAGES = ("fi", "sv", "en")

# Realistic values (low, high) for the numbers of the shipped questionnaires. Anything else
# gets a value from the lower part of the question's range.
_NUMBERS: dict[str, tuple[float, float]] = {
    "age": (18, 85),
    "own_age": (18, 85),  # who may chat, asked when nobody is identified: an adult
    "duration_days": (0, 10),
    "temperature": (36.5, 38.6),
    "fever_days": (0, 4),
    "severity": (1, 7),
    "infections_past_year": (0, 3),
}
# Questions a simulated citizen answers "yes": a resident of the municipality.
_YES = frozenset({"home_municipality"})
_TEXT = "Load test: a short description of how I feel and what I would like to ask."


def station_of_worker(worker: int) -> str:
    """The health station whose team is load worker ``worker``'s team (``load-K``)."""
    return f"load-{worker}"


def areas_file_text(procs: int) -> str:
    """An areas file: one station per load team, and the waiting room's station."""
    lines = [
        "# Health stations of the load tool's teams (scripts/loadtest.py).",
        "[municipality]",
        'code = "091"',
        'names = { fi = "Helsinki", sv = "Helsingfors", en = "Helsinki" }',
        'languages = ["fi", "sv"]',
    ]
    stations = [(station_of_worker(k), f"Load station {k}") for k in range(procs)]
    stations.append((WAIT_STATION, "Load waiting room"))
    for i, (station, name) in enumerate(stations):
        lines += [
            "",
            "[[stations]]",
            f'id = "{station}"',
            f'team = "{station}"',
            f'names = {{ fi = "{name}", sv = "{name}", en = "{name}" }}',
            f'postal_codes = ["{99000 + i:05d}"]',
        ]
    return "\n".join(lines) + "\n"


def write_areas_file(path: Path, procs: int) -> Path:
    path.write_text(areas_file_text(procs), encoding="utf-8")
    return path


def _number(detail: dict[str, Any], rng: random.Random) -> float | int | None:
    low, high = float(detail["min"]), float(detail["max"])
    if not detail.get("required", True) and rng.random() < 0.3:
        return None  # "I have not measured it"
    span = _NUMBERS.get(str(detail.get("id")))
    if span is not None:
        lo, hi = max(low, span[0]), min(high, span[1])
    else:
        lo, hi = low, low + (high - low) / 4
    if hi < lo:
        lo, hi = low, high
    value = rng.uniform(lo, hi)
    step = detail.get("step")
    if detail.get("integer"):
        result: float | int = max(int(low), min(int(high), round(value)))
    elif step:
        n = round((value - low) / float(step))
        result = round(low + n * float(step), 6)
        result = min(result, high)
    else:
        result = round(value, 1)
    return result


def answer(detail: dict[str, Any], rng: random.Random) -> Any:
    """A plausible, non-alarming answer to the question ``detail`` of a ``question`` step.

    ``None`` skips an optional question. Multiple choice: "None of these" when the question has
    such an exclusive option (the red-flag screening), else one or two of the first options.
    One choice: the first option, which the shipped questionnaires order mildest first.
    """
    kind = detail.get("kind")
    required = bool(detail.get("required", True))
    if kind == "multi":
        options = detail.get("options") or []
        exclusive = [o["id"] for o in options if o.get("exclusive")]
        if exclusive:
            return [exclusive[0]]
        ids = [o["id"] for o in options]
        count = 1 if len(ids) < 2 or rng.random() < 0.5 else 2
        return ids[:count]
    if kind == "single":
        return detail["options"][0]["id"]
    if kind == "yes_no":
        return detail.get("id") in _YES
    if kind == "number":
        return _number(detail, rng)
    if kind == "text":
        if not required and rng.random() < 0.7:
            return None
        return _TEXT[: int(detail.get("max_length") or len(_TEXT))]
    raise ValueError(f"a question of kind {kind!r} that the load tool cannot answer")
