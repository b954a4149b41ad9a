"""Retrieval recall on the dev questions, and a scan of the fusion weights (for tuning).

    .venv/bin/python -m bench.retrieval_tuning [--split tune|check|all] [--set NAME=VALUE ...]
    .venv/bin/python -m bench.retrieval_tuning --scan text_weight=0.1,0.3 sentence_weight=0.5,1

Runs `manage.py evaluate_retrieval` (hybrid) on the kept handbook database of bench/devdb.py,
over the answerable questions of bench/golden/answers-dev.jsonl (the split asked for) and the
older golden sets, and prints recall@1/@5 and MRR by language and phrasing. `--set` overrides a
module constant as in bench/evidence_tuning.py (`--set rag.selectors.SENTENCE_WEIGHT=0.5`);
`--scan` runs every combination of the listed rag.selectors weights (upper-cased names) on the
tune split. Choose on the tune split; look at the check split's totals only afterwards.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, kept_django
from bench.devdb import DEFAULT_DATA_DIR
from bench.evidence_tuning import override

DEV = ROOT / "bench" / "golden" / "answers-dev.jsonl"
OLDER = [ROOT / "bench" / "golden" / "answers.jsonl", ROOT / "bench" / "golden" / "tts-handbook.jsonl"]


def split_file(split: str, directory: Path) -> Path:
    lines = DEV.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if split == "all" or json.loads(line).get("split") == split]
    path = directory / f"dev-{split}.jsonl"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def evaluate(path: Path) -> dict[str, Any]:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("evaluate_retrieval", str(path), stdout=out)
    return json.loads(out.getvalue())


def cells(result: dict[str, Any]) -> str:
    return f"n={result['count']:>3} r@1={result['recall@1']:.3f} r@5={result['recall@5']:.3f} mrr={result['mrr']:.3f}"


def report(name: str, result: dict[str, Any]) -> None:
    print(f"{name:24} {cells(result)}")
    for label, group in result.get("by_lang_phrasing", {}).items():
        print(f"  {label:22} {cells(group)}")


def scan(assignments: list[str], path: Path) -> None:
    axes = []
    for assignment in assignments:
        name, _, values = assignment.partition("=")
        axes.append([(name, v) for v in values.split(",")])
    for combination in itertools.product(*axes):
        for name, value in combination:
            override(f"rag.selectors.{name.upper()}={value}")
        result = evaluate(path)
        label = " ".join(f"{name}={value}" for name, value in combination)
        by = result.get("by_lang_phrasing", {})
        groups = " ".join(f"{k}:{v['recall@5']:.2f}/{v['recall@1']:.2f}" for k, v in by.items())
        print(f"{label:44} {cells(result)}  r@5/r@1 {groups}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--split", choices=["tune", "check", "all"], default="tune")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--scan", nargs="+", default=None)
    args = parser.parse_args()
    with kept_django(args.data_dir), tempfile.TemporaryDirectory() as directory:
        for assignment in args.overrides:
            override(assignment)
        path = split_file("tune" if args.scan else args.split, Path(directory))
        if args.scan:
            scan(args.scan, path)
            return
        report(f"dev ({args.split})", evaluate(path))
        for older in OLDER:
            report(older.name, evaluate(older))


if __name__ == "__main__":
    main()
