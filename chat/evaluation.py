"""Answer quality, scored on what the user finally sees (`manage.py evaluate_answers`).

Each golden line is `{"question", "sources": [...], "facts": [...], "lang", "kind"}`; other
keys are ignored, and empty `sources` marks a question the policies do not answer. The
question runs through the same pipeline as the chat socket, with the configured backends.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chat.events import Done, Started
from chat.pipeline import question_answer
from privacy.services import placeholders_restore

PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
MARKER = re.compile(r"\[(\d{1,3})\]")


class GoldenError(ValueError):
    pass


def golden_load(path: Path) -> list[dict[str, Any]]:
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(case, dict) or not isinstance(case.get("question"), str):
            raise GoldenError(f"{path}:{number}: needs a 'question' string")
        for key in ("sources", "facts"):
            if not isinstance(case.get(key, []), list):
                raise GoldenError(f"{path}:{number}: '{key}' must be a list")
        cases.append(case)
    return cases


def normalised(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass
class Scored:
    question: str
    lang: str
    kind: str
    answerable: bool
    facts_present: bool | None
    declined: bool
    primary_given: bool | None
    primary_cited: bool | None
    verified: bool
    markers_valid: bool
    placeholders: int
    words: int
    first_content_ms: float | None
    total_ms: float | None
    mode: str
    checks: list[str]
    answerability: float
    support: dict[str, Any] = field(default_factory=dict)  # done.support: the model's sentences


def score_answer(*, case: dict[str, Any], shown: str, done: Done) -> Scored:
    sources = case.get("sources", [])
    answerable = bool(sources)
    facts = [normalised(f) for f in case.get("facts", [])]
    text = normalised(shown)
    given = [c for c in done.citations]
    numbers = {c["n"] for c in given}
    primary = sources[0] if sources else None
    return Scored(
        question=case["question"],
        lang=case.get("lang", "en"),
        kind=case.get("kind", "unanswerable" if not answerable else "fact"),
        answerable=answerable,
        facts_present=all(f in text for f in facts) if answerable else None,
        declined=done.declined,
        primary_given=any(c["source_path"] == primary for c in given) if primary else None,
        primary_cited=any(c["source_path"] == primary and c["cited"] for c in given) if primary else None,
        verified=done.verified,
        markers_valid=all(int(n) in numbers for n in MARKER.findall(shown)),
        placeholders=len(PLACEHOLDER.findall(shown)),
        words=len(shown.split()),
        first_content_ms=done.timings.get("first_token_ms"),
        total_ms=done.timings.get("total_ms"),
        mode=done.mode,
        checks=done.checks,
        answerability=done.answerability,
        support=done.support,
    )


async def answer_shown(*, user: Any, question: str) -> tuple[str, Done]:
    """The answer as the asker's page shows it: their own placeholders restored."""
    restorations: dict[str, str] = {}
    done = None
    async for event in question_answer(user=user, question=question, conversation_id=None):
        if isinstance(event, Started):
            restorations = event.restorations
        elif isinstance(event, Done):
            done = event
    if done is None:
        raise RuntimeError("the pipeline ended without an answer")
    return placeholders_restore(text=done.text, restorations=restorations), done


def _rate(values: Iterable[bool | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def summarise(scored: list[Scored]) -> dict[str, Any]:
    answerable = [s for s in scored if s.answerable]
    unanswerable = [s for s in scored if not s.answerable]
    answered = [s for s in scored if not s.declined]
    first = [s.first_content_ms for s in scored if s.first_content_ms is not None]
    total = [s.total_ms for s in scored if s.total_ms is not None]
    return {
        "questions": len(scored),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "facts_present": _rate(s.facts_present for s in answerable),
        "unanswerable_declined": _rate(s.declined for s in unanswerable),
        "answerable_wrongly_declined": _rate(s.declined for s in answerable),
        "primary_source_given": _rate(s.primary_given for s in answerable),
        "primary_source_cited": _rate(s.primary_cited for s in answerable),
        "verified": _rate(s.verified for s in answered),
        "markers_valid": _rate(s.markers_valid for s in scored),
        "answers_with_placeholders": sum(1 for s in scored if s.placeholders),
        "words_median": statistics.median([s.words for s in answered]) if answered else None,
        "first_content_ms_p50": _percentile(first, 50),
        "first_content_ms_p95": _percentile(first, 95),
        "total_ms_p50": _percentile(total, 50),
        "total_ms_p95": _percentile(total, 95),
        **support_totals(scored),
    }


SUPPORT_COUNTS = ("written", "supported", "shown", "marked", "collapsed", "withheld")


def support_totals(scored: list[Scored]) -> dict[str, Any]:
    """The model's sentences, summed over the answers: written, supported by the policy text,
    shown as the answer, shown marked as unsupported, collapsed behind the evidence, withheld;
    and the answers whose shown model text failed the support check (0 by construction)."""
    counts = [s.support.get("model_sentences", {}) for s in scored]
    return {
        **{f"model_sentences_{key}": sum(c.get(key, 0) for c in counts) for key in SUPPORT_COUNTS},
        "answers_showing_unsupported_model_text": sum(1 for c in counts if c.get("shown_unsupported", 0)),
    }


def report(scored: list[Scored]) -> dict[str, Any]:
    """Overall, by language and by kind."""
    by_lang = {
        lang: summarise([s for s in scored if s.lang == lang]) for lang in sorted({s.lang for s in scored})
    }
    by_kind = {
        kind: summarise([s for s in scored if s.kind == kind]) for kind in sorted({s.kind for s in scored})
    }
    return {**summarise(scored), "by_lang": by_lang, "by_kind": by_kind}


def scored_as_json(scored: Scored) -> str:
    return json.dumps(asdict(scored), ensure_ascii=False)
