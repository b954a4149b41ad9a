"""Version accuracy for `manage.py evaluate_answers` (docs/policy-versions.md, "Evaluation"):
a golden line with `expected_version` (and `as_of`, `stale_facts`) is scored on whether the
answer quotes the version of its `source` that was in effect on the asked day, and on the
failures that must never happen: quoting a version not in effect on the day answered for (a
scheduled one as current), and citing a document the asker may not read."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from chat.evaluation import normalised
from chat.events import Done
from rag.selectors import document_visible_to


@dataclass
class VersionScore:
    question: str
    lang: str
    kind: str
    expected_version: int
    cited_versions: list[int | None]  # versions of the expected source the answer cites
    version_correct: bool  # cites the source, and only its expected version
    as_of: str  # the day the answer was given for
    out_of_effect_cited: int  # cited passages of versions not in effect on that day
    unreadable_cited: int  # cited documents the asker may not read
    stale_facts_shown: bool  # a figure of another version appears in the answer


def golden_versioned(case: dict[str, Any]) -> dict[str, Any]:
    """A dated golden line names one `source`: as the undated scoring expects, `sources`."""
    if isinstance(case.get("source"), str) and "sources" not in case:
        return {**case, "sources": [case["source"]]}
    return case


def score_version(*, case: dict[str, Any], shown: str, done: Done, user: Any) -> VersionScore | None:
    """None for a line without `expected_version`."""
    if "expected_version" not in case:
        return None
    source = case.get("source") or (case.get("sources") or [None])[0]
    cited = [c for c in done.citations if c.get("cited")]
    of_source = [c.get("version") for c in cited if c.get("source_path") == source]
    answered_for = date.fromisoformat(done.as_of) if done.as_of else None
    text = normalised(shown)
    return VersionScore(
        question=case["question"],
        lang=case.get("lang", "en"),
        kind=case.get("kind", "current"),
        expected_version=int(case["expected_version"]),
        cited_versions=of_source,
        version_correct=bool(of_source) and all(v == case["expected_version"] for v in of_source),
        as_of=done.as_of,
        out_of_effect_cited=sum(1 for c in cited if not _in_effect(c, answered_for)),
        unreadable_cited=sum(
            1 for c in cited if document_visible_to(user=user, document_id=c["document_id"]) is None
        ),
        stale_facts_shown=any(normalised(f) in text for f in case.get("stale_facts", [])),
    )


def _in_effect(citation: dict[str, Any], day: date | None) -> bool:
    if day is None:
        return True
    start, end = citation.get("effective_from"), citation.get("effective_until")
    return (start is None or date.fromisoformat(start) <= day) and (
        end is None or day <= date.fromisoformat(end)
    )


def _rate(values: Iterable[bool]) -> float | None:
    known = list(values)
    return round(sum(known) / len(known), 3) if known else None


def version_summary(scores: list[VersionScore]) -> dict[str, Any]:
    def block(items: list[VersionScore]) -> dict[str, Any]:
        citing = [s for s in items if s.cited_versions]
        return {
            "questions": len(items),
            "version_accuracy": _rate(s.version_correct for s in items),
            # Of the answers that quote their source page at all: quoted the right version.
            "answers_citing_the_source": len(citing),
            "version_accuracy_when_cited": _rate(s.version_correct for s in citing),
            "stale_facts_shown": sum(s.stale_facts_shown for s in items),
            "answers_quoting_a_version_not_in_effect": sum(1 for s in items if s.out_of_effect_cited),
            "answers_citing_an_unreadable_document": sum(1 for s in items if s.unreadable_cited),
        }

    return {
        **block(scores),
        # A current-rule answer that quotes a version not yet in effect quotes a scheduled one.
        "scheduled_quoted_as_current": sum(
            1 for s in scores if s.kind == "current" and s.out_of_effect_cited
        ),
        "by_kind": {k: block([s for s in scores if s.kind == k]) for k in sorted({s.kind for s in scores})},
        "by_lang": {k: block([s for s in scores if s.lang == k]) for k in sorted({s.lang for s in scores})},
    }


def version_score_json(score: VersionScore) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(score), ensure_ascii=False))
