"""Scoring the redaction engine against labelled cases (`manage.py evaluate_redaction`)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privacy.services import text_redact


@dataclass
class Tally:
    messages: int = 0
    values: int = 0
    caught: int = 0
    over_redactions: int = 0
    latencies: list[float] = field(default_factory=list)
    # entity → [values caught, values labelled]
    by_type: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    # entity the engine gave a span → [spans on a labelled value, spans]
    spans_by_type: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    leaked: list[dict[str, str]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        ordered = sorted(self.latencies) or [0.0]
        return {
            "messages": self.messages,
            "values": self.values,
            "recall": round(self.caught / self.values, 4) if self.values else None,
            "precision": _precision(self.spans_by_type.values()),
            "leaked": self.values - self.caught,
            "over_redaction_per_100": round(100 * self.over_redactions / max(1, self.messages), 2),
            "latency_ms": {
                "p50": round(ordered[len(ordered) // 2], 2),
                "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            },
            "by_type": {
                kind: {
                    "recall": round(caught / total, 4) if total else None,
                    "values": total,
                    "precision": _precision([self.spans_by_type[kind]])
                    if kind in self.spans_by_type
                    else None,
                    "spans": self.spans_by_type[kind][1] if kind in self.spans_by_type else 0,
                }
                for kind, (caught, total) in sorted(
                    {**{k: [0, 0] for k in self.spans_by_type}, **self.by_type}.items()
                )
            },
        }


def _precision(tallies: Iterable[list[int]]) -> float | None:
    """Redacted spans that cover a labelled value, of all redacted spans (a false positive is a
    span on text nobody labelled)."""
    right = sum(t[0] for t in tallies)
    total = sum(t[1] for t in tallies)
    return round(right / total, 4) if total else None


def read_cases(path: Path) -> list[dict[str, Any]]:
    cases = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        case = json.loads(line)
        if not isinstance(case.get("text"), str) or not isinstance(case.get("pii", []), list):
            raise ValueError(f"{path}:{lineno}: needs a text string and a pii list")
        cases.append(case)
    return cases


def _score(
    tally: Tally, case: dict[str, Any], redacted: str, spans: list[tuple[int, int, str]], ms: float
) -> None:
    text = case["text"]
    tally.messages += 1
    tally.latencies.append(ms)
    listed: list[tuple[int, int]] = []
    for item in case.get("pii", []):
        value, kind = item["value"], item["type"]
        caught = value not in redacted
        tally.values += 1
        tally.caught += caught
        tally.by_type[kind][0] += caught
        tally.by_type[kind][1] += 1
        if not caught:
            tally.leaked.append({"type": kind, "value": value})
        start = text.find(value)
        if start >= 0:
            listed.append((start, start + len(value)))
    for start, end, entity in spans:
        on_a_value = any(start < le and end > ls for ls, le in listed)
        tally.over_redactions += not on_a_value
        tally.spans_by_type[entity][0] += on_a_value
        tally.spans_by_type[entity][1] += 1


def redaction_evaluate(*, cases: list[dict[str, Any]]) -> dict[str, Any]:
    overall: Tally = Tally()
    per_lang: defaultdict[str, Tally] = defaultdict(Tally)
    text_redact(text="warm up Jane Doe 0903 123 456")
    for case in cases:
        redaction = text_redact(text=case["text"])
        for tally in (overall, per_lang[case["lang"]] if "lang" in case else None):
            if tally is not None:
                _score(tally, case, redaction.text, list(redaction.spans), redaction.latency_ms)
    report = overall.report()
    report["leaked_values"] = overall.leaked
    if per_lang:
        report["by_lang"] = {lang: tally.report() for lang, tally in sorted(per_lang.items())}
    return report
