from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rag.selectors import retrieve

DEPTH = 60  # chunks fetched per question, enough to find 10 distinct documents
# Breakdowns reported when the golden lines carry the keys: language, phrasing ("keyword": in
# the page's words; "paraphrase": as people talk), the two together, and the dev split.
BREAKDOWNS = ("by_lang", "by_phrasing", "by_lang_phrasing", "by_split")


def case_groups(case: dict[str, Any]) -> dict[str, str]:
    """The groups a golden question counts in, by breakdown ("by_lang" → "vi", …)."""
    lang, phrasing, split = (case.get(key) for key in ("lang", "phrasing", "split"))
    groups = {}
    if isinstance(lang, str):
        groups["by_lang"] = lang
    if isinstance(phrasing, str):
        groups["by_phrasing"] = phrasing
        if isinstance(lang, str):
            groups["by_lang_phrasing"] = f"{lang}/{phrasing}"
    if isinstance(split, str):
        groups["by_split"] = split
    return groups


def first_relevant_rank(ranked_documents: list[str], sources: set[str]) -> int | None:
    """1-based position of the first relevant document among the distinct documents retrieved."""
    for position, source in enumerate(ranked_documents, start=1):
        if source in sources:
            return position
    return None


def summarize(ranks: list[int | None], ks: list[int]) -> dict[str, Any]:
    count = len(ranks)
    summary: dict[str, Any] = {"count": count}
    for k in ks:
        hits = sum(1 for r in ranks if r is not None and r <= k)
        summary[f"recall@{k}"] = round(hits / count, 4) if count else None
    summary["mrr"] = round(sum(1 / r for r in ranks if r) / count, 4) if count else None
    return summary


class Command(BaseCommand):
    help = "Score retrieval against a golden JSONL set: recall@k over distinct documents, and MRR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("golden", type=Path)
        parser.add_argument("--k", default="1,3,5,10", help="comma-separated cut-offs")
        parser.add_argument("--mode", choices=["hybrid", "vector", "text", "sentence"], default="hybrid")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            ks = sorted({int(k) for k in options["k"].split(",") if k.strip()})
        except ValueError:
            raise CommandError("--k takes comma-separated integers, e.g. 1,3,5,10") from None
        cases = self._load(options["golden"])
        ranks: list[int | None] = []
        groups: dict[str, dict[str, list[int | None]]] = {name: defaultdict(list) for name in BREAKDOWNS}
        for case in cases:
            chunks = retrieve(query=case["question"], user=None, k=DEPTH, mode=options["mode"])
            ranked = list(dict.fromkeys(c.source_path for c in chunks))
            rank = first_relevant_rank(ranked, set(case["sources"]))
            ranks.append(rank)
            for name, label in case_groups(case).items():
                groups[name][label].append(rank)
        result = {"mode": options["mode"], **summarize(ranks, ks)}
        for name, by_label in groups.items():
            if by_label:
                result[name] = {label: summarize(r, ks) for label, r in sorted(by_label.items())}
        self.stdout.write(json.dumps(result))

    def _load(self, path: Path) -> list[dict[str, Any]]:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        cases = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CommandError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(case, dict) or not isinstance(case.get("question"), str):
                raise CommandError(f"{path}:{number}: needs a 'question' string")
            sources = case.get("sources", [])
            if not isinstance(sources, list):
                raise CommandError(f"{path}:{number}: 'sources' must be a list")
            if sources:  # an empty list marks an unanswerable question: not scored for recall
                cases.append(case)
        return cases
