"""Whether the retrieved passages answer the question at all: below the threshold the policies
are taken not to cover it, and no model is asked to guess.

The signals, all from evidence selection:
  - cosine: how near the best sentence is to the question (e5, in its passage's context);
  - passage: how much of the question's vocabulary (by rarity) the best sentence's passage holds;
  - evidence: how much of it the chosen sentences and their headings hold: a near miss ("the
    topic is covered, the asked detail is not") shares the topic's words, not the detail's.
Their weighted sum is compared with a threshold per language: a Vietnamese question's
vocabulary is only its glossary words, so its coverage runs lower.

Weights and thresholds: bench/evidence_tuning.py `curve` and `fit` on the tune split of
bench/golden/answers-dev.jsonl (docs/answers-and-retrieval.md has the curve).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# cosine is rescaled so that COSINE_FLOOR → 0 and COSINE_FLOOR + COSINE_SPAN → 1.
COSINE_FLOOR, COSINE_SPAN = 0.80, 0.10
# Per language, chosen with `bench.evidence_tuning fit` on the tune split (334 answerable, 48
# unanswerable of which 25 near misses). At any weights, declining 90% of the unanswerable
# questions also declined about half of the answerable ones, so the operating point is lower:
#   - English: all three signals; declines ~60% of the unanswerable, ~13% of the answerable;
#   - Vietnamese: no weighting separated better than the earlier one (cosine + passage); its
#     curve is flat (declining 60% of the unanswerable declined 37% of the answerable), so the
#     threshold stays where it declines about a third of them and a fifth of the answerable.
# docs/answers-and-retrieval.md has both curves.
SIGNAL_WEIGHTS = {
    "en": {"cosine": 1.0, "passage": 1.0, "evidence": 1.0},
    "vi": {"cosine": 1.0, "passage": 1.0, "evidence": 0.0},
}
ANSWERABLE = {"en": 1.08, "vi": 0.9}


@dataclass(frozen=True)
class Signals:
    cosine: float  # the best sentence's e5 cosine with the question
    passage: float  # share of the question's vocabulary its passage holds (0..1)
    evidence: float  # share the chosen sentences and their headings hold (0..1)
    lang: str  # the question's language


def answerability_score(signals: Signals) -> float:
    weights = SIGNAL_WEIGHTS.get(signals.lang, SIGNAL_WEIGHTS["en"])
    cosine = (signals.cosine - COSINE_FLOOR) / COSINE_SPAN
    return round(
        weights["cosine"] * cosine
        + weights["passage"] * signals.passage
        + weights["evidence"] * signals.evidence,
        4,
    )


def threshold(lang: str) -> float:
    return ANSWERABLE.get(lang, ANSWERABLE["en"])


def answerable(signals: Signals) -> bool:
    return answerability_score(signals) >= threshold(signals.lang)


@contextmanager
def override_weights(**weights: float) -> Iterator[None]:
    """Every language's SIGNAL_WEIGHTS changed for the block (bench/evidence_tuning.py fits them)."""
    saved = {lang: dict(w) for lang, w in SIGNAL_WEIGHTS.items()}
    for language_weights in SIGNAL_WEIGHTS.values():
        language_weights.update(weights)
    try:
        yield
    finally:
        for lang, w in saved.items():
            SIGNAL_WEIGHTS[lang] = w
