"""Answer quality with a capable model: a fake OpenAI-compatible backend on a real socket that
answers from the passages it is sent, as a strong model would, in generate mode.

    python -m bench.strong_backend bench/golden/answers.jsonl            # answers correctly
    python -m bench.strong_backend bench/golden/answers.jsonl --invent   # changes a number

The "strong" model stands for one that reads the passages well: it answers with the passage
sentence that holds the golden facts when a passage it was sent holds them (else the sentence
sharing most words with the question, Vietnamese read through the glossary), with its
citation; it says the passages do not cover the question when none shares any word. It shows
whether the pipeline keeps a right answer right: claims pass, citations stay, facts survive. The
inventing one gives the same answer with one number changed (or a deadline added), so the
claim check must flag every answer it writes. Prints evaluate_answers' totals, then one line
saying how many answers the model wrote with an invented claim and how many were flagged.
Run with the app's settings (`make up` first), against an ingested corpus.
"""

from __future__ import annotations

import argparse
import asyncio
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


def strong_answer(messages: list[dict[str, str]]) -> str:
    prompt = messages[-1]["content"]
    question = prompt.rsplit("Question:", 1)[-1].strip()
    facts = [f.lower() for f in FACTS.get(question, [])]
    wanted = set(WORD.findall(f"{question} {english_terms(question)}".lower())) - STOP
    best, best_n, best_overlap = "", 0, 0
    for n, body in PASSAGE.findall(prompt):
        for sentence in SENTENCE.split(" ".join(body.split())):
            if facts and all(f in sentence.lower() for f in facts):
                return f"According to the policy, {sentence.rstrip()} [{n}]"
            overlap = len(wanted & set(WORD.findall(sentence.lower())))
            if overlap > best_overlap:
                best, best_n, best_overlap = sentence.rstrip(), int(n), overlap
    if not best:
        return "The policies I was given do not cover this question."
    return f"According to the policy, {best} [{best_n}]"


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
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--details", action="store_true", help="print every question's line too")
    args = parser.parse_args()
    for line in args.golden.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        FACTS[case["question"]] = case.get("facts", [])
    server = FakeOpenAI(answerer=inventing_answer if args.invent else strong_answer)
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
    if args.invent:
        answered = [json.loads(line) for line in lines[:-1]]
        written = [a for a in answered if not a["declined"]]
        flagged = [a for a in written if not a["verified"]]
        print(json.dumps({"answers_with_invented_claim": len(written), "flagged": len(flagged)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
