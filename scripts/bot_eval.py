#!/usr/bin/env python3
"""How well Kanava's advice bot understands residents: accuracy, emergency recall, latency.

Runs every question of the evaluation set (``tests/bot_eval/questions.tsv``: language,
expected label, text) through the bot's understanding of a message and prints, per language,
the top-1 accuracy (the label is the expected topic, ``handoff``, ``unknown`` or
``emergency:<kind>``), the emergency recall (every emergency must be caught: a caught
emergency of the wrong kind still gets 112, but is reported), false emergencies on ordinary
questions, and the time per question. Exits 1 when a target is missed:

- top-1 accuracy at least 85 % in each language;
- emergency recall 100 %, and no false emergency;
- median time per question under 20 ms.

    scripts/bot_eval.py                 # the figures, and the misses
    scripts/bot_eval.py --json -        # everything as JSON
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.bot.knowledge import LANGUAGES, KnowledgeBase, load_knowledge  # noqa: E402

EVAL_SET = ROOT / "tests" / "bot_eval" / "questions.tsv"
TARGET_ACCURACY = 0.85
TARGET_MEDIAN_MS = 20.0


def read_set(path: Path) -> list[tuple[str, str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(row["lang"], row["expected"], row["text"]) for row in rows]


def evaluate(kb: KnowledgeBase, questions: list[tuple[str, str, str]]) -> dict[str, Any]:
    per_lang: dict[str, Counter[str]] = defaultdict(Counter)
    misses: list[dict[str, Any]] = []
    times_ms: list[float] = []
    emergencies = caught = wrong_kind = false_alarms = ordinary = 0
    for lang, expected, text in questions:
        t0 = time.perf_counter()
        match = kb.understand(text, default_lang=lang)
        times_ms.append((time.perf_counter() - t0) * 1000)
        got = match.label
        counts = per_lang[lang]
        counts["total"] += 1
        if got == expected:
            counts["correct"] += 1
        else:
            misses.append(
                {
                    "lang": lang,
                    "expected": expected,
                    "got": got,
                    "score": round(match.score, 3),
                    "text": text,
                }
            )
        if match.lang == lang:
            counts["language_right"] += 1
        if expected.startswith("emergency:"):
            emergencies += 1
            if got.startswith("emergency:"):
                caught += 1
                wrong_kind += got != expected
        else:
            ordinary += 1
            false_alarms += got.startswith("emergency:")
    languages = {
        lang: {
            "questions": c["total"],
            "accuracy": round(c["correct"] / c["total"], 4) if c["total"] else None,
            "language_detected": round(c["language_right"] / c["total"], 4) if c["total"] else None,
        }
        for lang, c in sorted(per_lang.items())
    }
    median_ms = statistics.median(times_ms) if times_ms else 0.0
    result = {
        "questions": len(questions),
        "languages": languages,
        "emergencies": emergencies,
        "emergency_recall": round(caught / emergencies, 4) if emergencies else None,
        "emergency_wrong_kind": wrong_kind,
        "false_emergencies": false_alarms,
        "ordinary_questions": ordinary,
        "median_ms": round(median_ms, 3),
        "p95_ms": round(sorted(times_ms)[int(0.95 * (len(times_ms) - 1))], 3) if times_ms else 0,
        "threshold": kb.threshold,
        "misses": misses,
    }
    failures = [
        f"{lang}: accuracy {v['accuracy']:.1%} < {TARGET_ACCURACY:.0%}"
        for lang, v in languages.items()
        if v["accuracy"] is not None and v["accuracy"] < TARGET_ACCURACY
    ]
    missing = [lang for lang in LANGUAGES if lang not in languages]
    failures += [f"{lang}: no questions in the set" for lang in missing]
    if emergencies == 0 or caught < emergencies:
        failures.append(f"emergency recall {caught}/{emergencies}")
    if false_alarms:
        failures.append(f"{false_alarms} ordinary questions taken for emergencies")
    if median_ms >= TARGET_MEDIAN_MS:
        failures.append(f"median {median_ms:.1f} ms >= {TARGET_MEDIAN_MS:g} ms")
    result["failures"] = failures
    result["ok"] = not failures
    return result


def report(result: dict[str, Any]) -> str:
    lines = [f"Kanava bot evaluation: {result['questions']} questions"]
    for lang, v in result["languages"].items():
        lines.append(
            f"  {lang}: top-1 accuracy {v['accuracy']:.1%} of {v['questions']}"
            f"  (language recognised {v['language_detected']:.0%})"
        )
    lines.append(
        f"  emergencies: recall {result['emergency_recall']:.0%} of {result['emergencies']}"
        f" ({result['emergency_wrong_kind']} of another kind), false emergencies "
        f"{result['false_emergencies']} of {result['ordinary_questions']} ordinary questions"
    )
    lines.append(
        f"  time per question: median {result['median_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms"
    )
    if result["misses"]:
        lines.append(f"  misses ({len(result['misses'])}):")
        for m in result["misses"]:
            lines.append(
                f"    [{m['lang']}] expected {m['expected']}, got {m['got']} "
                f"({m['score']}): {m['text']}"
            )
    lines.append(
        "targets met" if result["ok"] else "TARGETS MISSED: " + "; ".join(result["failures"])
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bot_eval.py", description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=EVAL_SET, help="the evaluation set (TSV)")
    parser.add_argument(
        "--knowledge", type=Path, default=None, help="knowledge folder (default: the shipped one)"
    )
    parser.add_argument("--threshold", type=float, help="the confidence threshold to try")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON (- : stdout)")
    args = parser.parse_args(argv)
    kb = load_knowledge(args.knowledge, threshold=args.threshold)
    result = evaluate(kb, read_set(args.set))
    print(report(result), file=sys.stderr)
    if args.json:
        text = json.dumps(result, indent=1, ensure_ascii=False)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
