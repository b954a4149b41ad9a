"""Merge the dev question files into bench/golden/answers-dev.jsonl and mark a random quarter
of them `"split": "check"` (the rest `"tune"`).

    python -m bench.golden.merge_dev /work/data/dev-a.jsonl /work/data/dev-b.jsonl

Tuning looks at the "tune" questions one by one; the "check" quarter is only ever read as
totals (`evaluate_answers --quiet`, bench/evidence_tuning.py prints no check question), to see
whether what was tuned generalises. The draw is seeded and stratified by language and by
answerable/unanswerable, so every group has its quarter; re-running it gives the same split.
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parent / "answers-dev.jsonl"
SEED = 23
CHECK_SHARE = 0.25


def merged(files: list[Path]) -> list[dict[str, object]]:
    cases = [
        json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    strata: dict[tuple[object, bool], list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        strata[(case.get("lang"), bool(case.get("sources")))].append(i)
    rng = random.Random(SEED)
    check: set[int] = set()
    for key in sorted(strata, key=str):
        members = strata[key]
        check.update(rng.sample(members, round(len(members) * CHECK_SHARE)))
    return [{**case, "split": "check" if i in check else "tune"} for i, case in enumerate(cases)]


def main(argv: list[str]) -> int:
    cases = merged([Path(a) for a in argv])
    OUT.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    checked = sum(1 for c in cases if c["split"] == "check")
    print(f"{len(cases)} questions written to {OUT.name}: {len(cases) - checked} tune, {checked} check")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
