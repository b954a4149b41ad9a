"""Answer quality, scored on what the user finally sees (`manage.py evaluate_answers`).

Each golden line is `{"question", "sources": [...], "facts": [...], "lang", "kind"}`, optionally
with `"phrasing"` (keyword / paraphrase), `"near_miss"` (an unanswerable question whose topic
the policies cover) and `"split"` (tune / check); other keys are ignored, and empty `sources`
marks a question the policies do not answer. The question runs through the same pipeline as
the chat socket, with the configured backends.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chat.events import Done, Started
from chat.pipeline import question_answer
from chat.state import Asking
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


def facts_found(*, case: dict[str, Any], shown: str) -> tuple[int, int]:
    """How many of the case's facts the shown answer holds (verbatim, case and spacing aside),
    of how many."""
    facts = [normalised(f) for f in case.get("facts", [])]
    text = normalised(shown)
    return sum(1 for f in facts if f in text), len(facts)


@dataclass
class Scored:
    question: str
    lang: str
    kind: str
    answerable: bool
    facts_present: bool | None
    facts_found: int
    facts_total: int
    phrasing: str
    near_miss: bool | None
    split: str
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
    found, total = facts_found(case=case, shown=shown)
    given = [c for c in done.citations]
    numbers = {c["n"] for c in given}
    primary = sources[0] if sources else None
    return Scored(
        question=case["question"],
        lang=case.get("lang", "en"),
        kind=case.get("kind", "unanswerable" if not answerable else "fact"),
        answerable=answerable,
        facts_present=found == total if answerable else None,
        facts_found=found,
        facts_total=total,
        phrasing=str(case.get("phrasing", "")),
        near_miss=bool(case["near_miss"]) if not answerable and "near_miss" in case else None,
        split=str(case.get("split", "")),
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
    asking = Asking(channel="evaluation")
    async for event in question_answer(user=user, question=question, conversation_id=None, asking=asking):
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
    facts = sum(s.facts_total for s in answerable)
    return {
        "questions": len(scored),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "facts_present": _rate(s.facts_present for s in answerable),
        # Share of all facts of all answerable questions that were shown.
        "facts_level": round(sum(s.facts_found for s in answerable) / facts, 3) if facts else None,
        "unanswerable_declined": _rate(s.declined for s in unanswerable),
        "near_miss_declined": _rate(s.declined for s in unanswerable if s.near_miss),
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


def report(scored: list[Scored], *, mode: str | None = None) -> dict[str, Any]:
    """Overall, by language, kind, phrasing (alone and with the language) and dev split."""
    breakdowns: dict[str, Callable[[Scored], str]] = {
        "by_lang": lambda s: s.lang,
        "by_kind": lambda s: s.kind,
        "by_phrasing": lambda s: s.phrasing,
        "by_lang_phrasing": lambda s: f"{s.lang}/{s.phrasing}" if s.phrasing else "",
        "by_split": lambda s: s.split,
    }
    result: dict[str, Any] = {"mode": mode, **summarise(scored)} if mode else summarise(scored)
    for name, label_of in breakdowns.items():
        labels = sorted({label_of(s) for s in scored} - {""})
        if labels or name in ("by_lang", "by_kind"):
            result[name] = {label: summarise([s for s in scored if label_of(s) == label]) for label in labels}
    return result


def scored_as_json(scored: Scored) -> str:
    return json.dumps(asdict(scored), ensure_ascii=False)
