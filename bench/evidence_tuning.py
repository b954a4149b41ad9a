"""Evidence selection and answerability, scored in seconds on the dev questions (for tuning).

    .venv/bin/python -m bench.evidence_tuning snapshot [GOLDEN ...]
    .venv/bin/python -m bench.evidence_tuning score [--split tune|check|all] [--misses] [--set NAME=VALUE ...]
    .venv/bin/python -m bench.evidence_tuning curve [--split ...]

`snapshot` runs each question as the pipeline does up to evidence (redaction, then retrieval on
the kept handbook database of bench/devdb.py) and stores the redacted question and what
retrieval returned. `score` then runs evidence selection (`rag.selectors.question_evidence`,
the pipeline's own function) on the stored retrievals and scores what evidence mode shows
before any model writes: the quoted sentences, or the decline. That is what `evaluate_answers`
scores for facts, minus the model's one-line summary, so it is the cheap, faithful loop for
tuning selection; final numbers come from `manage.py evaluate_answers` with the real model.

`--set` overrides a module constant for one run (`--set rag.evidence.scoring.WEIGHTS.lexical=0.4`,
`--set rag.evidence.answerability.ANSWERABLE=1.1`). `curve` prints, for a range of answerability
thresholds, the share of unanswerable questions declined and of answerable ones wrongly declined.

The "check" split (bench/golden/merge_dev.py) is printed as totals only: `--misses` lists tune
questions alone.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import pickle
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, kept_django
from bench.devdb import DEFAULT_DATA_DIR

GOLDEN = [ROOT / "bench" / "golden" / "answers-dev.jsonl", ROOT / "bench" / "golden" / "answers.jsonl"]
SNAPSHOT = ROOT / ".data" / "tuning" / "retrievals.pkl"


@dataclass
class Case:
    golden: str  # file name
    case: dict[str, Any]
    redacted: str
    retrieval: Any  # rag.selectors.Retrieval

    @property
    def split(self) -> str:
        return str(self.case.get("split", "tune"))  # the older sets were tuned on already

    @property
    def answerable(self) -> bool:
        return bool(self.case.get("sources"))


def snapshot(files: list[Path], out: Path) -> None:
    from django.conf import settings

    from chat.evaluation import golden_load
    from privacy.services import text_redact, vault_for
    from rag.selectors import retrieve_for_question

    cases = []
    started = time.perf_counter()
    for path in files:
        for case in golden_load(path):
            redacted = text_redact(text=case["question"], vault=vault_for(scope="tuning", stored=None)).text
            retrieval = retrieve_for_question(query=redacted, user=None, k=settings.RETRIEVAL_K)
            cases.append({"golden": path.name, "case": case, "redacted": redacted, "retrieval": retrieval})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pickle.dumps(cases))
    print(f"{len(cases)} questions retrieved in {time.perf_counter() - started:.0f} s → {out}")


def override(assignment: str) -> None:
    """NAME=VALUE, NAME a dotted module constant, or a key of a dict constant (WEIGHTS.lexical)."""
    name, _, raw = assignment.partition("=")
    value = json.loads(raw)
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        target: Any = module
        for attribute in parts[cut:-1]:
            target = getattr(target, attribute)
        if isinstance(target, dict):
            if parts[-1] not in target:
                raise SystemExit(f"{name}: no such key")
            target[parts[-1]] = value
        else:
            if not hasattr(target, parts[-1]):
                raise SystemExit(f"{name}: no such constant")
            setattr(target, parts[-1], value)
        return
    raise SystemExit(f"{name}: no such module")


@dataclass
class Outcome:
    case: Case
    shown: str
    declined: bool
    answerability: float
    facts_found: int
    facts_total: int
    words: int
    ms: float
    facts_quoted: int  # facts in the quotes, declined or not: what selection alone achieved
    evidence: Any  # rag.evidence.Evidence

    @property
    def page_given(self) -> bool:
        """Whether retrieval gave a passage of the question's first source."""
        sources = self.case.case.get("sources") or [None]
        return any(p.source_path == sources[0] for p in self.case.retrieval.passages)


def run(cases: list[Case]) -> list[Outcome]:
    from chat.answers import evidence_text, frame, numbered_evidence
    from chat.evaluation import facts_found
    from rag.evidence import evidence_answerable
    from rag.selectors import question_evidence

    outcomes = []
    for case in cases:
        started = time.perf_counter()
        evidence = question_evidence(question=case.redacted, retrieval=case.retrieval)
        took = (time.perf_counter() - started) * 1000
        declined = not evidence_answerable(evidence)
        passages = case.retrieval.passages
        numbering = {p: n for n, p in enumerate(evidence.passages, start=1)}
        lang = "vi" if case.case.get("lang") == "vi" else "en"
        quotes = evidence_text(numbered_evidence(evidence, numbering, passages)) if evidence.sentences else ""
        shown = "" if declined else frame(lang, "evidence") + "\n\n" + quotes
        found, total = facts_found(case=case.case, shown=shown)
        quoted, _ = facts_found(case=case.case, shown=quotes)
        words = sum(len(s.text.split()) for s in evidence.sentences)
        outcomes.append(
            Outcome(
                case, shown, declined, evidence.answerability, found, total, words, took, quoted, evidence
            )
        )
    return outcomes


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    answerable = [o for o in outcomes if o.case.answerable]
    unanswerable = [o for o in outcomes if not o.case.answerable]
    answered = [o for o in answerable if not o.declined]

    def rate(values: list[bool]) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    facts = sum(o.facts_total for o in answerable)
    found = [o for o in answerable if o.page_given]
    return {
        "n": len(answerable),
        "page_given": rate([o.page_given for o in answerable]),
        "facts_if_page": rate([o.facts_found == o.facts_total for o in found]),
        "quoted": rate([o.facts_quoted == o.facts_total for o in answerable]),
        "facts_present": rate([o.facts_found == o.facts_total for o in answerable]),
        "fact_level": round(sum(o.facts_found for o in answerable) / facts, 3) if facts else None,
        "wrongly_declined": rate([o.declined for o in answerable]),
        "unanswerable": len(unanswerable),
        "unanswerable_declined": rate([o.declined for o in unanswerable]),
        "words_median": statistics.median([o.words for o in answered]) if answered else None,
    }


def groups(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
    by: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        c = o.case.case
        by["all"].append(o)
        by[f"file {o.case.golden}"].append(o)
        by[f"split {o.case.split}"].append(o)
        if o.case.golden == "answers-dev.jsonl":
            by[f"lang {c.get('lang')}"].append(o)
            if o.case.answerable:
                by[f"kind {c.get('kind')}"].append(o)
                by[f"phrasing {c.get('lang')}/{c.get('phrasing')}"].append(o)
    return dict(sorted(by.items()))


def print_table(outcomes: list[Outcome]) -> None:
    keys = {
        "n": "n",
        "page": "page_given",  # the first source among the passages retrieval gave
        "f|page": "facts_if_page",  # facts present when it was
        "quoted": "quoted",  # facts in the quotes, had nothing been declined
        "facts": "facts_present",
        "f-lvl": "fact_level",
        "wr.dec": "wrongly_declined",
        "unans": "unanswerable",
        "declnd": "unanswerable_declined",
        "words": "words_median",
    }
    print(f"{'group':28} " + " ".join(f"{h:>6}" for h in keys))
    for name, members in groups(outcomes).items():
        s = summary(members)
        cells = [s[key] for key in keys.values()]
        print(f"{name:28} " + " ".join(f"{'-' if v is None else v!s:>6}" for v in cells))
    ms = sorted(o.ms for o in outcomes)
    print(f"evidence selection ms p50 {ms[len(ms) // 2]:.1f} p95 {ms[int(len(ms) * 0.95)]:.1f}")


def print_misses(outcomes: list[Outcome], only: Callable[[Outcome], bool]) -> None:
    for o in outcomes:
        if o.case.split == "check" or not only(o):
            continue
        c = o.case.case
        print(f"\n--- [{c.get('lang')}/{c.get('kind')}/{c.get('phrasing')}] {c['question']}")
        print(f"    sources {c.get('sources')} facts {c.get('facts')}  answerability {o.answerability}")
        given = [p.source_path for p in o.case.retrieval.passages]
        print(f"    passages {given}")
        print("    " + (o.shown.replace("\n", "\n    ") if not o.declined else "(declined)"))


def scan(cases: list[Case], assignments: list[str]) -> None:
    """Every combination of the listed constants, scored on the dev questions given."""
    axes = []
    for assignment in assignments:
        name, _, values = assignment.partition("=")
        axes.append([f"{name}={v}" for v in values.split(";")])
    for combination in itertools.product(*axes):
        for assignment in combination:
            override(assignment)
        outcomes = [o for o in run(cases) if o.case.golden == "answers-dev.jsonl"]
        s = summary(outcomes)
        by_lang = {
            lang: summary([o for o in outcomes if o.case.case.get("lang") == lang])["quoted"]
            for lang in ("en", "vi")
        }
        label = " ".join(a.rpartition(".")[2] for a in combination)
        print(
            f"{label:60} quoted {s['quoted']} (en {by_lang['en']} vi {by_lang['vi']}) facts {s['facts_present']} "
            f"wr.dec {s['wrongly_declined']} declined {s['unanswerable_declined']} words {s['words_median']}",
            flush=True,
        )


def fit(outcomes: list[Outcome], target: float) -> None:
    """Per language, the signal weights and threshold that decline `target` of the unanswerable
    dev questions while wrongly declining the fewest answerable ones (grid over the weights)."""
    from rag.evidence.answerability import COSINE_FLOOR, COSINE_SPAN

    outcomes = [o for o in outcomes if o.case.golden == "answers-dev.jsonl"]  # the unseen-style set
    grid = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0]
    for lang in ("en", "vi"):
        group = [o for o in outcomes if o.evidence.lang == lang]
        results = []
        for passage, evidence in itertools.product(grid, grid):

            def value(o: Outcome, passage: float = passage, evidence: float = evidence) -> float:
                s = o.evidence.signals
                return (s.cosine - COSINE_FLOOR) / COSINE_SPAN + passage * s.passage + evidence * s.evidence

            unanswerable = sorted(value(o) for o in group if not o.case.answerable)
            answerable = [value(o) for o in group if o.case.answerable]
            if not unanswerable or not answerable:
                continue
            cut = unanswerable[min(len(unanswerable) - 1, int(target * len(unanswerable)))] + 1e-4
            wrong = sum(a < cut for a in answerable) / len(answerable)
            results.append((wrong, passage, evidence, round(cut, 3)))
        for wrong, passage, evidence, cut in sorted(results)[:3]:
            print(
                f"{lang}: passage {passage} evidence {evidence} threshold {cut}: answerable wrongly declined {wrong:.3f}"
            )


def curve(outcomes: list[Outcome]) -> None:
    answerable = [o.answerability for o in outcomes if o.case.answerable]
    unanswerable = [o.answerability for o in outcomes if not o.case.answerable]
    near = [o.answerability for o in outcomes if not o.case.answerable and o.case.case.get("near_miss")]
    print(f"{len(answerable)} answerable, {len(unanswerable)} unanswerable ({len(near)} near misses)")
    print(f"{'threshold':>9} {'unans declined':>14} {'near declined':>13} {'ans wrongly declined':>20}")
    low = min(answerable + unanswerable)
    high = max(answerable + unanswerable)
    steps = 40
    for i in range(steps + 1):
        t = low + (high - low) * i / steps
        u = sum(a < t for a in unanswerable) / max(1, len(unanswerable))
        n = sum(a < t for a in near) / max(1, len(near))
        w = sum(a < t for a in answerable) / max(1, len(answerable))
        print(f"{t:9.3f} {u:14.3f} {n:13.3f} {w:20.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["snapshot", "score", "curve", "fit"])
    parser.add_argument("--target", type=float, default=0.9, help="fit: share of unanswerable to decline")
    parser.add_argument("golden", type=Path, nargs="*", default=GOLDEN)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT)
    parser.add_argument("--split", choices=["tune", "check", "all"], default="all")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--scan", nargs="+", default=None, help="NAME=v1;v2 … (values split by ';')")
    parser.add_argument("--misses", choices=["facts", "given", "declined", "unanswerable"], default=None)
    args = parser.parse_args()
    with kept_django(args.data_dir):
        if args.command == "snapshot":
            snapshot(args.golden, args.snapshot)
            return
        for assignment in args.overrides:
            override(assignment)
        stored = pickle.loads(args.snapshot.read_bytes())  # noqa: S301  (written by `snapshot` above)
        cases = [Case(**fields) for fields in stored]
        if args.split != "all":
            cases = [c for c in cases if c.split == args.split]
        if args.scan:
            scan(cases, args.scan)
            return
        outcomes = run(cases)
        if args.command == "curve":
            for lang in ("en", "vi"):
                print(f"\n{lang}:")
                curve([o for o in outcomes if o.evidence.lang == lang])
            return
        if args.command == "fit":
            fit(outcomes, args.target)
            return
        print_table(outcomes)
        if args.misses == "facts":
            print_misses(outcomes, lambda o: o.case.answerable and o.facts_found < o.facts_total)
        elif args.misses == "given":  # the page was among the passages, and not declined
            print_misses(
                outcomes,
                lambda o: (
                    o.case.answerable and o.page_given and not o.declined and o.facts_found < o.facts_total
                ),
            )
        elif args.misses == "declined":
            print_misses(outcomes, lambda o: o.case.answerable and o.declined)
        elif args.misses == "unanswerable":
            print_misses(outcomes, lambda o: not o.case.answerable and not o.declined)


if __name__ == "__main__":
    main()
