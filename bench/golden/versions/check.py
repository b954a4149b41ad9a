"""Validate the dated policy-version golden set (stdlib only).

Checks
  manifest: every version file exists; versions numbered 1..n; dates parse;
            versions are contiguous (effective_until = next effective_from - 1
            day; last one null); titles identical across versions.
  questions (questions.jsonl, questions-holdout.jsonl):
            required fields and allowed values; source/version exist;
            each fact appears verbatim (normalised) in the expected version;
            each stale fact appears in some other version of the document and
            not in the expected one; the expected version is in effect at as_of;
            kind=current -> as_of == manifest today; date_expression occurs in
            the question; no question text shared between dev and hold-out.
  warnings: a fact that also appears in another version of the document;
            distribution targets (size, >=35% vi, kind mix, >=4 current
            questions on documents with a scheduled version).

Normalisation for "verbatim": Markdown links [text](url) -> text, backslash
escapes dropped, the characters * _ ` removed, whitespace collapsed,
case-folded.

Usage: python3 bench/golden/versions/check.py [--quiet]   (exit status 1 when there are errors)
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FILES = ["questions.jsonl", "questions-holdout.jsonl"]
MIN_QUESTIONS = {"questions.jsonl": 50, "questions-holdout.jsonl": 30}
KINDS = {"current", "as_of", "across"}
LANGS = {"en", "vi"}
REQUIRED = [
    "question",
    "source",
    "expected_version",
    "as_of",
    "facts",
    "stale_facts",
    "lang",
    "kind",
    "date_expression",
]

errors: list[str] = []
warnings: list[str] = []


def err(msg: str) -> None:
    errors.append(msg)


def warn(msg: str) -> None:
    warnings.append(msg)


LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def norm(s: str) -> str:
    s = LINK.sub(r"\1", s)
    s = re.sub(r"\\(.)", r"\1", s)
    s = re.sub(r"[*_`]", "", s)
    s = re.sub(r"\s+", " ", s)
    return s.strip().casefold()


def date(s: Any, where: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(s)
    except (TypeError, ValueError):
        err(f"{where}: bad date {s!r}")
        return None


def load_manifest() -> tuple[dict[str, Any], dt.date | None, dict[str, dict[str, Any]]]:
    m = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    today = date(m.get("today"), "manifest.today")
    docs: dict[str, dict[str, Any]] = {}
    for d in m["documents"]:
        src = d["source"]
        vs = d["versions"]
        if [v["version"] for v in vs] != list(range(1, len(vs) + 1)):
            err(f"{src}: versions not numbered 1..n")
        if not 2 <= len(vs) <= 3:
            warn(f"{src}: {len(vs)} versions (expected 2 or 3)")
        texts: dict[int, str] = {}
        titles: set[str | None] = set()
        spans: dict[int, tuple[dt.date | None, dt.date | None]] = {}
        for i, v in enumerate(vs):
            where = f"{src} v{v['version']}"
            fp = HERE / v["file"]
            if not fp.is_file():
                err(f"{where}: missing file {v['file']}")
                continue
            raw = fp.read_text(encoding="utf-8")
            texts[v["version"]] = norm(raw)
            t = re.search(r"^title:\s*(.+)$", raw, re.M) or re.search(r"^#\s+(.+)$", raw, re.M)
            titles.add(t.group(1).strip() if t else None)
            start = date(v["effective_from"], where + " effective_from")
            until = v["effective_until"]
            end = None if until is None else date(until, where + " effective_until")
            spans[v["version"]] = (start, end)
            if start and end and end < start:
                err(f"{where}: effective_until before effective_from")
            if i + 1 < len(vs):
                nxt = date(vs[i + 1]["effective_from"], f"{src} v{i + 2} effective_from")
                if end is None:
                    err(f"{where}: only the last version may have effective_until null")
                elif nxt and end != nxt - dt.timedelta(days=1):
                    err(f"{where}: gap/overlap: until {end} but next starts {nxt}")
            elif until is not None:
                err(f"{where}: last version must have effective_until null")
            if i > 0 and not v.get("changes"):
                err(f"{where}: no change descriptions")
        if len(titles) != 1:
            err(f"{src}: title differs between versions: {titles}")
        if len(set(texts.values())) != len(texts):
            err(f"{src}: two versions have identical text")
        last_start = spans.get(len(vs), (None, None))[0]
        docs[src] = {
            "texts": texts,
            "spans": spans,
            "scheduled": bool(today and last_start and last_start > today),
        }
    return m, today, docs


def in_effect(spans: dict[int, tuple[dt.date | None, dt.date | None]], day: dt.date) -> int | None:
    for n, (s, e) in spans.items():
        if s and s <= day and (e is None or day <= e):
            return n
    return None


def check_questions(
    fname: str, today: dt.date | None, docs: dict[str, dict[str, Any]]
) -> tuple[list[str], Counter[str], Counter[str], Counter[str]]:
    path = HERE / fname
    if not path.is_file():
        err(f"{fname}: missing")
        return [], Counter(), Counter(), Counter()
    by_lang: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    cur_sched: Counter[str] = Counter()
    questions: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for ln, line in enumerate(lines, 1):
        where = f"{fname}:{ln}"
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            err(f"{where}: invalid JSON ({e})")
            continue
        miss = [k for k in REQUIRED if k not in q]
        if miss:
            err(f"{where}: missing fields {miss}")
            continue
        questions.append(q["question"])
        by_lang[q["lang"]] += 1
        by_kind[q["kind"]] += 1
        if q["lang"] not in LANGS:
            err(f"{where}: lang {q['lang']!r}")
        if q["kind"] not in KINDS:
            err(f"{where}: kind {q['kind']!r}")
        doc = docs.get(q["source"])
        if doc is None:
            err(f"{where}: unknown source {q['source']}")
            continue
        n = q["expected_version"]
        if n not in doc["texts"]:
            err(f"{where}: expected_version {n} not in manifest")
            continue
        day = date(q["as_of"], where + " as_of")
        if day:
            eff = in_effect(doc["spans"], day)
            if eff != n:
                err(f"{where}: version in effect at {day} is v{eff}, expected_version is v{n}")
        if q["kind"] == "current":
            if day != today:
                err(f"{where}: current question must have as_of = today ({today})")
            if doc["scheduled"]:
                cur_sched[q["source"]] += 1
        de = q["date_expression"]
        if de is not None and norm(de) not in norm(q["question"]):
            err(f"{where}: date_expression {de!r} not found in question")
        if q["kind"] in ("as_of", "across") and de is None:
            err(f"{where}: {q['kind']} question without date_expression")
        if not isinstance(q["facts"], list) or not q["facts"]:
            err(f"{where}: facts must be a non-empty list")
            continue
        others = {k: t for k, t in doc["texts"].items() if k != n}
        for fact in q["facts"]:
            nf = norm(fact)
            if nf not in doc["texts"][n]:
                err(f"{where}: fact {fact!r} not verbatim in v{n}")
            also = sorted(k for k, t in others.items() if nf in t)
            if also:
                warn(f"{where}: fact {fact!r} also in v{also}")
        for sf in q["stale_facts"]:
            ns = norm(sf)
            if ns in doc["texts"][n]:
                err(f"{where}: stale fact {sf!r} appears in the expected version v{n}")
            if not any(ns in t for t in others.values()):
                err(f"{where}: stale fact {sf!r} not found in any other version")
        if q.get("note") is not None and not isinstance(q["note"], str):
            err(f"{where}: note must be a string")
    return questions, by_lang, by_kind, cur_sched


def main() -> None:
    quiet = "--quiet" in sys.argv
    _m, today, docs = load_manifest()
    nver = sum(len(d["texts"]) for d in docs.values())
    nsched = sum(d["scheduled"] for d in docs.values())
    print(
        f"manifest: {len(docs)} documents, {nver} versions, "
        f"{nsched} with a scheduled (future) last version; today={today}"
    )
    if len(docs) < 16:
        err(f"only {len(docs)} documents (need >= 16)")
    if nsched < 5:
        err(f"only {nsched} documents with a scheduled version (need >= 5)")
    seen: dict[str, str] = {}
    for fname in FILES:
        qs, by_lang, by_kind, cur_sched = check_questions(fname, today, docs)
        total = len(qs)
        print(
            f"{fname}: {total} questions; lang {dict(sorted(by_lang.items()))}; "
            f"kind {dict(sorted(by_kind.items()))}; "
            f"current-on-scheduled {sum(cur_sched.values())}"
        )
        if total < MIN_QUESTIONS[fname]:
            err(f"{fname}: {total} questions (need >= {MIN_QUESTIONS[fname]})")
        if total:
            if by_lang["vi"] / total < 0.35:
                err(f"{fname}: only {by_lang['vi'] / total:.0%} Vietnamese (need >= 35%)")
            for k, target in (("current", 0.35), ("as_of", 0.45), ("across", 0.20)):
                share = by_kind[k] / total
                if abs(share - target) > 0.10:
                    warn(f"{fname}: kind {k} {share:.0%} (target ~{target:.0%})")
        if sum(cur_sched.values()) < 4:
            err(f"{fname}: {sum(cur_sched.values())} current questions on scheduled documents (need >= 4)")
        for qt in qs:
            key = norm(qt)
            if key in seen and seen[key] != fname:
                err(f"question in both {seen[key]} and {fname}: {qt!r}")
            elif key in seen:
                warn(f"duplicate question in {fname}: {qt!r}")
            seen[key] = fname
    if not quiet:
        for w in warnings:
            print("WARNING:", w)
    for e in errors:
        print("ERROR:", e)
    print(f"{len(errors)} errors, {len(warnings)} warnings")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
