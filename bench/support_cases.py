"""The labelled pairs of the support check (bench/golden/support/), built in two steps.

    # 1. the model's real sentences, to be labelled by reading them (writes the sheet to label)
    .venv/bin/python -m bench.support_cases sheet bench/golden/support/raw.jsonl --out /tmp/support_sheet.txt
    # 2. labelled real sentences + scripted adversarial edits, split by question into dev and hold-out
    .venv/bin/python -m bench.support_cases build bench/golden/support/raw.jsonl bench/golden/support/labels.tsv

`raw` comes from bench/support_collect.py (what SmolLM2 was given and wrote, both modes).
Adversarial edits of policy sentences the model was given, each written as a model would cite it:
  - figure-same-passage: one figure replaced by a figure of another sentence of the same passage;
  - figure-other-passage: replaced by a figure of another passage;
  - negation-flip: a negation removed, or one added after the first modal verb;
  - entity-swap: a name (a capitalised phrase, an acronym, an e-mail address, a form) replaced by
    one from another passage;
  - verbatim / near-verbatim: the sentence restated honestly (as is; or framed, contracted, with
    an everyday word for a policy word).
Each case records the whole model text, the sentence's offsets, what the model was given and the
label. Questions are split once (seeded) into dev and hold-out, so no question's sentences sit
on both sides; the hold-out is written once and frozen (the script refuses to overwrite it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.claims import claims_in  # noqa: E402
from chat.support import passage_source, text_sentences  # noqa: E402

OUT = ROOT / "bench" / "golden" / "support"
HOLDOUT_SHARE = 0.35
SEED = 23
MAX_SENTENCES_PER_ANSWER = 4  # a long generated answer: its first sentences (what is read)

NEGATED = [
    (
        re.compile(r"\b(do|does|did|must|should|may|can|will|is|are|was|were|could|would)\s+not\b", re.I),
        r"\1",
    ),
    (re.compile(r"\bcannot\b", re.I), "can"),
    (re.compile(r"\b(do|does|is|are|can|must|should|was|were|wo)n[\u2019']t\b", re.I), r"\1"),
    (re.compile(r"\bnever\b", re.I), "always"),
]
MODAL = re.compile(r"\b(must|should|may|can|will|is|are)\b(?!\s+not\b)", re.I)
ENTITY = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b(?:SF|OF|GSA|DD|OPM)[- ]?\d{1,4}[A-Z]?\b|"
    r"\b(?:[A-Z][a-z]+\s+){1,3}(?:Office|Team|Portal|Division|Program|Service|Center|Act|Form|Desk)\b|"
    r"\b[A-Z]{2,6}s?\b"
)
PARAPHRASE = [
    (re.compile(r"\bemployees\b"), "staff"),
    (re.compile(r"\breceive\b"), "get"),
    (re.compile(r"\bdo not\b"), "don't"),
    (re.compile(r"\bcannot\b"), "can't"),
    (re.compile(r"\bis not\b"), "isn't"),
    (re.compile(r"\bmust\b"), "have to"),
    (re.compile(r"\bsupervisor\b"), "manager"),
]
FRAMES = ["According to the policy, {s}", "The policy says that {s}", "{S}", "Per the handbook, {s}"]


def sources_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """What the check is given for this record, as JSON (chat.support.Source's fields)."""
    whole = record["mode"] == "generate"
    out = []
    for p in record["sources"]:
        if not whole and not p["quoted"]:
            continue  # evidence mode gives the model its quoted passages only
        source = passage_source(
            n=p["n"],
            text=p["text"],
            quoted=p["quoted"],
            context=" \u203a ".join(x for x in (p["title"], p["heading"]) if x),
            whole=whole,
        )
        out.append(
            {
                "n": source.n,
                "sentences": list(source.sentences),
                "quoted": list(source.quoted),
                "context": source.context,
            }
        )
    return out


def record_id(record: dict[str, Any]) -> str:
    digest = hashlib.sha256(f"{record['question']}|{record['mode']}".encode()).hexdigest()[:8]
    return f"{record['mode'][0]}-{digest}"


def real_answers(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = []
    for record in raw:
        text = record["model_text"]
        if record.get("fallback") or not text.strip():
            continue
        spans = text_sentences(text)[:MAX_SENTENCES_PER_ANSWER]
        answers.append(
            {
                "id": record_id(record),
                "origin": "real",
                "mode": record["mode"],
                "question": record["question"],
                "lang": record["lang"],
                "text": text,
                "sources": sources_of(record),
                "sentences": [{"span": list(span), "text": text[span[0] : span[1]]} for span in spans],
            }
        )
    return answers


# --- the sheet to label ------------------------------------------------------------------------


def sheet(answers: list[dict[str, Any]]) -> str:
    """One block per answer: the question, the quoted evidence, each sentence to label, and
    the whole text of any passage a sentence cites (what a citing sentence is judged on)."""
    lines = []
    for answer in answers:
        lines.append("=" * 100)
        lines.append(f"{answer['id']}  [{answer['mode']}, {answer['lang']}]  Q: {answer['question']}")
        for source in answer["sources"]:
            for quote in source["quoted"]:
                lines.append(f"  [{source['n']}] QUOTED: {' '.join(quote.split())}")
        cited = {
            int(n) for sentence in answer["sentences"] for n in re.findall(r"\[(\d+)\]", sentence["text"])
        }
        for source in answer["sources"]:
            if source["n"] in cited:
                body = " | ".join(" ".join(s.split()) for s in source["sentences"])
                lines.append(f"  [{source['n']}] PASSAGE ({source['context']}): {body}")
        for i, sentence in enumerate(answer["sentences"]):
            lines.append(f"  >> {answer['id']}\t{i}\t{sentence['text']!r}")
    return "\n".join(lines)


# --- adversarial edits ---------------------------------------------------------------------------


def _cite(sentence: str, n: int | None) -> str:
    body = " ".join(sentence.split()).rstrip()
    body = re.sub(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+", "", body)
    if not body.endswith((".", "!", "?")):
        body += "."
    return body if n is None else body[:-1] + f" [{n}]" + body[-1]


def _figures(sentence: str) -> list[Any]:
    return [c for c in claims_in(sentence) if c.kind == "number" and " " in c.key]


def _replace_once(sentence: str, old: str, new: str) -> str | None:
    """`old` replaced where it stands as a whole word (not "HR" inside "OHRM")."""
    match = re.search(rf"(?<!\w){re.escape(old)}(?!\w)", sentence)
    if match is None:
        return None
    return sentence[: match.start()] + new + sentence[match.end() :]


def adversarial(answers: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Edits of the sentences each record's model was given; one of each kind per record at most."""
    cases = []
    for answer in answers:
        sources = answer["sources"]
        cite = answer["mode"] == "generate"
        # Sentences an honest model would restate: the quoted evidence first.
        pool = [(s["n"], q) for s in sources for q in s["quoted"]] or [
            (s["n"], q) for s in sources for q in s["sentences"]
        ]
        pool = [(n, q) for n, q in pool if 6 <= len(q.split()) <= 60]
        if not pool:
            continue
        made: list[tuple[str, str, bool, str]] = []  # kind, sentence, supported, note
        n, honest = rng.choice(pool)
        made.append(("verbatim", _cite(honest, n if cite else None), True, "the policy sentence as it is"))
        near = _near_verbatim(honest, rng)
        if near:
            made.append(
                ("near-verbatim", _cite(near, n if cite else None), True, "framed or reworded, same meaning")
            )
        made.extend(_figure_swaps(pool, sources, cite, rng))
        flipped = _negation_flip(pool, rng)
        if flipped:
            fn, text, note = flipped
            made.append(("negation-flip", _cite(text, fn if cite else None), False, note))
        swapped = _entity_swap(pool, sources, rng)
        if swapped:
            sn, text, note = swapped
            made.append(("entity-swap", _cite(text, sn if cite else None), False, note))
        for number, (kind, text, supported, note) in enumerate(made):
            cases.append(
                {
                    "id": f"{answer['id']}-{kind}-{number}",
                    "origin": "adversarial",
                    "mode": answer["mode"],
                    "question": answer["question"],
                    "lang": answer["lang"],
                    "text": text,
                    "sources": sources,
                    "sentences": [
                        {
                            "span": [0, len(text)],
                            "text": text,
                            "supported": supported,
                            "kind": kind,
                            "note": note,
                        }
                    ],
                }
            )
    return cases


def _near_verbatim(sentence: str, rng: random.Random) -> str | None:
    body = " ".join(sentence.split())
    body = re.sub(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+", "", body)
    for pattern, replacement in rng.sample(PARAPHRASE, len(PARAPHRASE)):
        if pattern.search(body):
            return pattern.sub(replacement, body, count=1)
    frame = rng.choice(FRAMES)
    if body[:1].isupper() and not re.match(r"^[A-Z]{2,}|^[A-Z][a-z]+\s+[A-Z]", body):
        lowered = body[0].lower() + body[1:]
    else:
        lowered = body
    return frame.format(s=lowered, S=body) if frame != "{S}" else None


SWAPS_PER_KIND = 2  # figure swaps of each kind per record, from different sentences


def _figure_swaps(
    pool: list[tuple[int, str]], sources: list[dict[str, Any]], cite: bool, rng: random.Random
) -> list[tuple[str, str, bool, str]]:
    made: list[tuple[str, str, bool, str]] = []
    with_figures = [(n, q) for n, q in pool if _figures(q)]
    chosen = rng.sample(with_figures, min(SWAPS_PER_KIND, len(with_figures)))
    for n, sentence in chosen:
        figure = rng.choice(_figures(sentence))
        keys_here = {c.key.split()[0] for c in claims_in(sentence)}
        source = next(s for s in sources if s["n"] == n)
        same = [
            c for other in source["sentences"] if other != sentence for c in _figures(other)
            if c.key.split()[0] not in keys_here
        ]  # fmt: skip
        others = [
            c for s in sources if s["n"] != n for other in s["sentences"] for c in _figures(other)
            if c.key.split()[0] not in keys_here and c.key not in {f.key for f in same}
        ]  # fmt: skip
        for kind, choices in (("figure-same-passage", same), ("figure-other-passage", others)):
            if not choices:
                continue
            replacement = rng.choice(choices)
            edited = _replace_once(" ".join(sentence.split()), figure.text, replacement.text)
            if edited:
                where = "the same passage" if kind == "figure-same-passage" else "another passage"
                note = f"{figure.text} → {replacement.text} (from {where})"
                made.append((kind, _cite(edited, n if cite else None), False, note))
    return made


def _negation_flip(pool: list[tuple[int, str]], rng: random.Random) -> tuple[int, str, str] | None:
    shuffled = rng.sample(pool, len(pool))
    for n, sentence in shuffled:
        body = " ".join(sentence.split())
        for pattern, replacement in NEGATED:
            if pattern.search(body):
                return n, pattern.sub(replacement, body, count=1), "negation removed"
    for n, sentence in shuffled:
        body = " ".join(sentence.split())
        if MODAL.search(body) and not re.search(r"\b(no|not|never|without)\b|n't", body, re.I):
            return n, MODAL.sub(lambda m: m.group(1) + " not", body, count=1), "negation added"
    return None


def _entity_swap(
    pool: list[tuple[int, str]], sources: list[dict[str, Any]], rng: random.Random
) -> tuple[int, str, str] | None:
    names = {m.group(0) for s in sources for sentence in s["sentences"] for m in ENTITY.finditer(sentence)}
    for n, sentence in rng.sample(pool, len(pool)):
        body = " ".join(sentence.split())
        mine = [m.group(0) for m in ENTITY.finditer(body)]
        if not mine:
            continue
        old = rng.choice(mine)
        lowered = body.lower()
        choices = sorted(
            name for name in names
            if name.lower() not in lowered and old.lower() not in name.lower() and _same_shape(old, name)
        )  # fmt: skip
        if choices:
            new = rng.choice(choices)
            edited = _replace_once(body, old, new)
            if edited:
                return n, edited, f"{old} → {new}"
    return None


def _same_shape(old: str, new: str) -> bool:
    """An address for an address, an acronym for an acronym, a name for a name."""

    def shape(name: str) -> str:
        if "@" in name:
            return "email"
        if re.fullmatch(r"[A-Z]{2,6}s?", name):
            return "acronym"
        if re.search(r"\d", name):
            return "form"
        return "name"

    return shape(old) == shape(new)


# --- labels and the split ----------------------------------------------------------------------------


def labels_read(path: Path) -> dict[tuple[str, int], tuple[bool, str, str]]:
    """`id<TAB>index<TAB>Y|N<TAB>kind<TAB>note` lines (# comments allowed)."""
    labels = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 4 or parts[2] not in ("Y", "N"):
            raise SystemExit(f"{path}:{number}: expected id, index, Y|N, kind, note")
        labels[(parts[0], int(parts[1]))] = (parts[2] == "Y", parts[3], parts[4] if len(parts) > 4 else "")
    return labels


VI_NEGATIONS = [
    ("có thể", "không thể"),
    ("được", "không được"),
    ("Hãy", "Đừng"),
    ("hãy", "đừng"),
    ("là", "không phải là"),
]


def vietnamese(answers: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """The hand-written Vietnamese restatements (supported), and from each a figure swap and a
    negation flip (unsupported), made by script."""
    by_id = {a["id"]: a for a in answers}
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        answer_id, text = line.split("\t")
        answer = by_id[answer_id]
        n = int(re.findall(r"\[(\d+)\]", text)[-1])
        source = next((s for s in answer["sources"] if s["n"] == n), None)
        if source is None:
            raise SystemExit(f"{path}:{number}: {answer_id} has no passage [{n}]")
        made = [("vi-restatement", text, True, "written by hand from the quoted sentence")]
        figures = [c for c in claims_in(text) if c.kind == "number"]
        if figures:
            here = {c.key.split()[0] for c in claims_in(text) if c.kind == "number"}
            others = [
                c.key.split()[0] for other in source["sentences"] for c in _figures(other)
                if c.key.split()[0] not in here
            ]  # fmt: skip
            if others:
                old = figures[0].key.split()[0]
                made.append(
                    ("vi-figure-swap", text.replace(old, others[0], 1), False, f"{old} → {others[0]}")
                )
        for old, new in VI_NEGATIONS:
            if old in text:
                made.append(("vi-negation-flip", text.replace(old, new, 1), False, f"{old} → {new}"))
                break
        for kind, sentence, supported, note in made:
            cases.append(
                {
                    "id": f"{answer_id}-{kind}",
                    "origin": "adversarial",
                    "mode": answer["mode"],
                    "question": answer["question"],
                    "lang": answer["lang"],
                    "text": sentence,
                    "sources": answer["sources"],
                    "sentences": [
                        {
                            "span": [0, len(sentence)],
                            "text": sentence,
                            "supported": supported,
                            "kind": kind,
                            "note": note,
                        }
                    ],
                }
            )
    return cases


def build(raw_path: Path, labels_path: Path, out: Path) -> dict[str, int]:
    raw = [json.loads(line) for line in raw_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    answers = real_answers(raw)
    labels = labels_read(labels_path)
    labelled = []
    for answer in answers:
        sentences = []
        for i, sentence in enumerate(answer["sentences"]):
            if (answer["id"], i) not in labels:
                continue
            supported, kind, note = labels[(answer["id"], i)]
            sentences.append({**sentence, "supported": supported, "kind": kind, "note": note})
        if sentences:
            labelled.append({**answer, "sentences": sentences})
    rng = random.Random(SEED)
    cases = (
        labelled + adversarial(answers, rng) + vietnamese(answers, labels_path.parent / "vi-restatements.tsv")
    )
    questions = sorted({c["question"] for c in cases})
    holdout_questions = set(random.Random(SEED).sample(questions, round(len(questions) * HOLDOUT_SHARE)))
    split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        split["holdout" if case["question"] in holdout_questions else "dev"].append(case)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, items in split.items():
        path = out / f"{name}.jsonl"
        if name == "holdout" and path.exists():
            raise SystemExit(f"{path} is frozen: it was written before any calibration")
        path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in items), encoding="utf-8")
        counts[name] = sum(len(c["sentences"]) for c in items)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sheet_parser = commands.add_parser("sheet")
    sheet_parser.add_argument("raw", type=Path)
    sheet_parser.add_argument("--out", type=Path, required=True)
    build_parser = commands.add_parser("build")
    build_parser.add_argument("raw", type=Path)
    build_parser.add_argument("labels", type=Path)
    build_parser.add_argument("--out-dir", type=Path, default=OUT)
    args = parser.parse_args()
    raw = [json.loads(line) for line in args.raw.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.command == "sheet":
        args.out.write_text(sheet(real_answers(raw)), encoding="utf-8")
        return 0
    print(json.dumps(build(args.raw, args.labels, args.out_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
