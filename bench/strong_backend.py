"""Answer quality with a capable model: a fake OpenAI-compatible backend on a real socket that
answers from the passages it is sent, as a strong model would, in generate mode.

    python -m bench.strong_backend bench/golden/answers.jsonl            # answers correctly
    python -m bench.strong_backend bench/golden/answers.jsonl --invent   # changes a number
    python -m bench.strong_backend bench/golden/answers.jsonl --move same-passage   # moves a figure
    python -m bench.strong_backend bench/golden/answers.jsonl --move other-passage

The "strong" model stands for one that reads the passages well: it answers with the passage
sentence that holds the golden facts when a passage it was sent holds them (else the sentence
sharing most words with the question, Vietnamese read through the glossary), with its
citation; it says the passages do not cover the question when none shares any word. It shows
whether the pipeline keeps a right answer right: claims pass, citations stay, facts survive. The
inventing one gives the same answer with one number changed (or a deadline added), so the
support check must flag every answer it writes. The moving one restates the same sentence with
one figure replaced by a figure of another sentence of the same passage (`same-passage`) or of
another passage it was sent (`other-passage`): a figure the policy does state, for something
else. Prints evaluate_answers' totals, then one line saying how many answers the model wrote
with an invented or moved figure and how many were flagged (not verified).
Run with the app's settings (`make up` first), against an ingested corpus.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import os
import re
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from bench.fake_llm import FakeOpenAI  # noqa: E402
from chat.claims import claims_in  # noqa: E402
from llm.config import BackendConfig  # noqa: E402
from rag.glossary import english_terms  # noqa: E402

PASSAGE = re.compile(r'<passage n="(\d+)"[^\n]*?trust="untrusted">\n(.*?)\n</passage>', re.S)
WORD = re.compile(r"[a-z0-9]+")
SENTENCE = re.compile(r"(?<=[.!?])\s+")
STOP = set(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "is",
        "are",
        "do",
        "does",
        "i",
        "my",
        "me",
        "can",
        "how",
        "what",
        "when",
        "who",
        "which",
    ]
)


FACTS: dict[str, list[str]] = {}  # question → golden facts, for the model that knows them
MOVED: dict[str, str] = {}  # question → the answer with a moved figure


def _passages(prompt: str) -> list[tuple[int, list[str]]]:
    return [(int(n), SENTENCE.split(" ".join(body.split()))) for n, body in PASSAGE.findall(prompt)]


def _best_sentence(prompt: str) -> tuple[str, int] | None:
    """The passage sentence holding the golden facts, else the one sharing most question words."""
    question = prompt.rsplit("Question:", 1)[-1].strip()
    facts = [f.lower() for f in FACTS.get(question, [])]
    wanted = set(WORD.findall(f"{question} {english_terms(question)}".lower())) - STOP
    best, best_n, best_overlap = "", 0, 0
    for n, sentences in _passages(prompt):
        for sentence in sentences:
            if facts and all(f in sentence.lower() for f in facts):
                return sentence.rstrip(), n
            overlap = len(wanted & set(WORD.findall(sentence.lower())))
            if overlap > best_overlap:
                best, best_n, best_overlap = sentence.rstrip(), n, overlap
    return (best, best_n) if best else None


def strong_answer(messages: list[dict[str, str]]) -> str:
    best = _best_sentence(messages[-1]["content"])
    if best is None:
        return "The policies I was given do not cover this question."
    return f"According to the policy, {best[0]} [{best[1]}]"


def moving_answer(messages: list[dict[str, str]], *, where: str) -> str:
    """The strong answer with its first figure replaced by one stated elsewhere: in another
    sentence of the same passage, or in another passage."""
    prompt = messages[-1]["content"]
    best = _best_sentence(prompt)
    if best is None:
        return strong_answer(messages)
    sentence, n = best
    figures = [c for c in claims_in(sentence) if c.kind == "number"]
    if not figures:
        return strong_answer(messages)
    here = {c.key.split()[0] for c in claims_in(sentence) if c.kind == "number"}
    elsewhere = [
        c
        for m, sentences in _passages(prompt)
        if (m == n) == (where == "same-passage")
        for other in sentences
        if other.rstrip() != sentence
        for c in claims_in(other)
        if c.kind == "number" and c.key.split()[0] not in here
    ]
    if not elsewhere:
        return strong_answer(messages)
    # A figure written in words ("one year") is found as digits: it cannot be replaced as written.
    written = next((f for f in figures if f.text in sentence), None)
    if written is None:
        return strong_answer(messages)
    moved = f"According to the policy, {sentence.replace(written.text, elsewhere[0].text, 1)} [{n}]"
    MOVED[prompt.rsplit("Question:", 1)[-1].strip()] = moved
    return moved


def inventing_answer(messages: list[dict[str, str]]) -> str:
    answer = strong_answer(messages)
    number = re.search(r"(?<!\[)\b\d+\b(?!\])", answer)  # a figure, not a citation marker
    if number:
        return answer[: number.start()] + str(int(number.group(0)) + 7) + answer[number.end() :]
    return answer.replace(" [", " You must do this within 45 days [", 1)


def serve(server: FakeOpenAI, ready: threading.Event, urls: list[str]) -> None:
    async def main() -> None:
        urls.append(await server.start())
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("golden", type=Path)
    parser.add_argument("--invent", action="store_true", help="change a number in every answer")
    parser.add_argument(
        "--move", choices=("same-passage", "other-passage"), help="replace a figure with one stated elsewhere"
    )
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--details", action="store_true", help="print every question's line too")
    args = parser.parse_args()
    for line in args.golden.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        FACTS[case["question"]] = case.get("facts", [])
    answerer = inventing_answer if args.invent else strong_answer
    if args.move:
        answerer = functools.partial(moving_answer, where=args.move)
    server = FakeOpenAI(answerer=answerer)
    ready, urls = threading.Event(), list[str]()
    threading.Thread(target=serve, args=(server, ready, urls), daemon=True).start()
    ready.wait(10)
    backend = BackendConfig(
        name="strong", kind="openai", base_url=urls[0], model=server.model, answer_mode="generate"
    )
    out = io.StringIO()
    options = ["--limit", str(args.limit)] if args.limit else []
    with override_settings(LLM_BACKENDS=(backend,)):
        call_command("evaluate_answers", str(args.golden), *options, stdout=out)
    lines = out.getvalue().splitlines()
    totals = json.loads(lines[-1])
    if args.details:
        print("\n".join(lines[:-1]))
    print(json.dumps(totals, ensure_ascii=False))
    answered = [json.loads(line) for line in lines[:-1]]
    if args.invent:
        written = [a for a in answered if not a["declined"]]
        flagged = [a for a in written if not a["verified"]]
        print(json.dumps({"answers_with_invented_claim": len(written), "flagged": len(flagged)}))
    elif args.move:
        written = [a for a in answered if not a["declined"] and a["question"] in MOVED]
        flagged = [a for a in written if not a["verified"]]
        if args.details:
            for a in written:
                if a["verified"]:
                    print(json.dumps({"moved_not_flagged": a["question"], "answer": MOVED[a["question"]]}))
        print(json.dumps({"answers_with_moved_figure": len(written), "flagged": len(flagged)}))
    else:
        written = [a for a in answered if not a["declined"]]
        verified = [a for a in written if a["verified"]]
        print(json.dumps({"honest_answers": len(written), "verified": len(verified)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
