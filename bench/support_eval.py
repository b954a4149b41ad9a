"""How well the support check tells supported sentences from unsupported ones, on the labelled
pairs of bench/golden/support/ (built by bench/support_cases.py).

    .venv/bin/python -m bench.support_eval                 # dev: the pairs thresholds were calibrated on
    .venv/bin/python -m bench.support_eval --split holdout # frozen before calibration; score it once
    .venv/bin/python -m bench.support_eval --details       # also every pair the check got wrong

Runs chat.support.support_check on each case's whole model text with the real e5 model (as the
pipeline does) and compares each labelled sentence's verdict with its label. "Supported" is the
positive class: precision is the share of sentences the check passes that are truly supported
(what an employee may trust), recall the share of truly supported sentences it passes. Also:
adversarial figure swaps, negation flips and entity swaps flagged; honest restatements passed;
real model sentences of each degenerate kind passed (should be none); the check's time per case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.support import Source, support_check  # noqa: E402

SUPPORT_DIR = ROOT / "bench" / "golden" / "support"
DEGENERATE = ("template", "echo", "repetition", "fragment", "code", "wrong-language")


class CachedEmbedder:
    """e5 (int8 ONNX, the index's model) with each text embedded once per run."""

    def __init__(self) -> None:
        from rag.e5 import OnnxE5Embedder

        cache = Path(os.environ.get("POLICYDESK_EMBEDDER_CACHE_DIR", ROOT / ".data" / "models"))
        self.model = OnnxE5Embedder(threads=max(1, (os.cpu_count() or 2) // 2), cache_dir=cache)
        self.vectors: dict[str, list[float]] = {}

    def __call__(self, texts: list[str]) -> Sequence[Sequence[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.model.embed_documents(missing), strict=True))
        return [self.vectors[t] for t in texts]


def load(split: str) -> list[dict[str, Any]]:
    path = SUPPORT_DIR / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def judged(cases: list[dict[str, Any]], embed: CachedEmbedder) -> tuple[list[dict[str, Any]], list[float]]:
    """Each labelled sentence with the check's verdict, and the check's time per case as the
    pipeline pays it: policy sentences' vectors cached (ingestion stored them), the model's
    sentences embedded afresh."""
    rows, timings = [], []
    for case in cases:
        sources = [
            Source(n=s["n"], sentences=tuple(s["sentences"]), quoted=tuple(s["quoted"]), context=s["context"])
            for s in case["sources"]
        ]
        embed([t for s in sources for t in s.sentences])  # the cache the pipeline reads from
        started = time.perf_counter()
        report = support_check(
            text=case["text"],
            question=case["question"],
            language=case["lang"],
            sources=sources,
            embed=embed,
            embed_new=embed.model.embed_documents,
        )
        timings.append((time.perf_counter() - started) * 1000)
        for labelled in case["sentences"]:
            start, end = labelled["span"]
            # An edited policy sentence may read as two to the splitter: it passes when both do.
            parts = [s for s in report.sentences if s.start >= start and s.end <= end]
            if not parts:
                raise SystemExit(f"{case['id']}: no sentence in {labelled['span']} (the splitter changed?)")
            verdict = next((s for s in parts if not s.supported), parts[0])
            rows.append(
                {
                    "id": case["id"],
                    "origin": case["origin"],
                    "mode": case["mode"],
                    "lang": case["lang"],
                    "kind": labelled["kind"],
                    "label": labelled["supported"],
                    "passed": verdict.supported,
                    "text": labelled["text"],
                    "reasons": verdict.reasons,
                    "aligned": verdict.aligned,
                    "cosine": verdict.cosine,
                    "coverage": verdict.coverage,
                    "note": labelled.get("note", ""),
                }
            )
    return rows, timings


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(1 for r in rows if r["passed"] and r["label"])
    fp = sum(1 for r in rows if r["passed"] and not r["label"])
    fn = sum(1 for r in rows if not r["passed"] and r["label"])
    return {
        "pairs": len(rows),
        "supported": sum(1 for r in rows if r["label"]),
        "precision": _rate(tp, tp + fp),
        "recall": _rate(tp, tp + fn),
        "false_passes": fp,
        "false_flags": fn,
    }


def report(rows: list[dict[str, Any]], timings: list[float]) -> dict[str, Any]:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)

    def flagged(kinds: Sequence[str]) -> dict[str, Any]:
        chosen = [r for r in rows if r["origin"] == "adversarial" and r["kind"] in kinds]
        return {
            "pairs": len(chosen),
            "flagged": _rate(sum(1 for r in chosen if not r["passed"]), len(chosen)),
        }

    honest = [r for r in rows if r["origin"] == "adversarial" and r["kind"] in ("verbatim", "near-verbatim")]
    degenerate = [r for r in rows if r["origin"] == "real" and r["kind"] in DEGENERATE]
    ordered = sorted(timings)
    return {
        **scores(rows),
        "real": scores([r for r in rows if r["origin"] == "real"]),
        "real_by_mode": {
            mode: scores([r for r in rows if r["origin"] == "real" and r["mode"] == mode])
            for mode in ("evidence", "generate")
        },
        "adversarial": scores([r for r in rows if r["origin"] == "adversarial"]),
        "figure_swaps": flagged(["figure-same-passage", "figure-other-passage"]),
        "figure_same_passage": flagged(["figure-same-passage"]),
        "figure_other_passage": flagged(["figure-other-passage"]),
        "negation_flips": flagged(["negation-flip"]),
        "entity_swaps": flagged(["entity-swap"]),
        "honest_restatements": {
            "pairs": len(honest),
            "not_flagged": _rate(sum(1 for r in honest if r["passed"]), len(honest)),
        },
        "real_degenerate": {"pairs": len(degenerate), "passed": sum(1 for r in degenerate if r["passed"])},
        "by_kind": {
            kind: {"pairs": len(items), "passed": sum(1 for r in items if r["passed"])}
            for kind, items in sorted(by_kind.items())
        },
        "check_ms_per_case_p50": round(ordered[len(ordered) // 2], 1) if ordered else None,
        "check_ms_per_case_p95": round(ordered[int(len(ordered) * 0.95)], 1) if ordered else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=("dev", "holdout"), default="dev")
    parser.add_argument("--details", action="store_true", help="print every pair the check got wrong")
    args = parser.parse_args()
    rows, timings = judged(load(args.split), CachedEmbedder())
    if args.details:
        for row in rows:
            if row["passed"] != row["label"]:
                print(json.dumps(row, ensure_ascii=False))
    print(json.dumps({"split": args.split, **report(rows, timings)}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
