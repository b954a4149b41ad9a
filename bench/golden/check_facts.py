"""Check the answer golden sets against the corpus: every fact is copied verbatim from one of
its question's source pages, and every unanswerable question's topic (`absent`) appears on no
page at all.

    python -m bench.golden.check_facts ../shared/corpus/tts-handbook bench/golden/answers*.jsonl

Pages are compared as a reader sees them: Markdown links reduced to their text, emphasis and
escapes dropped, whitespace collapsed, case ignored. Exits 1 on the first kind of problem.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def readable(text: str) -> str:
    text = LINK.sub(r"\1", text)
    text = re.sub(r"[*_`\\]", "", text)
    return " ".join(text.lower().split())


def problems(corpus: Path, golden: Path) -> list[str]:
    pages = {
        str(p.relative_to(corpus)): readable(p.read_text(encoding="utf-8")) for p in corpus.rglob("*.md")
    }
    everything = " ".join(pages.values())
    found = []
    for number, line in enumerate(golden.read_text(encoding="utf-8").splitlines(), start=1):
        case = json.loads(line)
        where = f"{golden.name}:{number}"
        for source in case["sources"]:
            if source not in pages:
                found.append(f"{where}: no page {source}")
        for fact in case.get("facts", []):
            if not any(" ".join(fact.lower().split()) in pages.get(s, "") for s in case["sources"]):
                found.append(f"{where}: fact {fact!r} is on none of its source pages")
        if not case["sources"]:
            if case.get("facts"):
                found.append(f"{where}: an unanswerable question has facts")
            for topic in case.get("absent", []):
                if re.search(rf"\b{re.escape(topic.lower())}", everything):
                    found.append(f"{where}: {topic!r} does appear in the corpus")
            if not case.get("absent"):
                found.append(f"{where}: an unanswerable question names no absent topic")
    return found


def main(argv: list[str]) -> int:
    corpus, files = Path(argv[0]), [Path(a) for a in argv[1:]]
    found = [p for f in files for p in problems(corpus, f)]
    for problem in found:
        print(problem)
    total = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
    print(f"{total} questions checked, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
