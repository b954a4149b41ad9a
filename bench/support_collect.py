"""Real outputs of the embedded model, for the support check's labelled set.

    .venv/bin/python -m bench.support_collect bench/golden/answers.jsonl bench/golden/tts-handbook.jsonl \
        --out bench/golden/support/raw.jsonl

Starts its own PostgreSQL, Redis and llama.cpp server (SmolLM2-135M) in /tmp, ingests the
handbook, then asks every question the pipeline would answer (not declined) in both answer
modes, exactly as chat/pipeline.py composes them: evidence mode asks for the one-sentence
summary of the quotes (English questions only, as the pipeline does), generate mode sends the
full prompt with the passages. Writes one JSON line per (question, mode): what the model was
given (each passage's number, text and quoted evidence sentences) and what it wrote, before
any check. Nothing here is labelled: bench/support_cases.py turns these into pairs to label.
Never give it a hold-out file of the answer sets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def _collect(question: str, user: Any) -> list[dict[str, Any]]:
    from asgiref.sync import sync_to_async

    from chat.answers import SUMMARY_TOKENS, summary_complete, summary_messages
    from chat.pipeline import _plan, _prepare
    from chat.state import Asking
    from llm.gateway import Generation, Token, get_gateway

    prepared = await sync_to_async(_prepare, thread_sensitive=False)(
        user=user, question=question, conversation_id=None, asking=Asking()
    )
    if not prepared.answerable:
        return []
    language = prepared.question.language
    records = []
    for mode in ("evidence", "generate"):
        if mode == "evidence" and language != "en":
            continue  # the pipeline does not ask the small model to write Vietnamese
        plan = _plan(prepared, mode)
        if mode == "evidence":
            messages, max_tokens = (
                summary_messages(question=prepared.question.text, groups=plan.groups),
                SUMMARY_TOKENS,
            )
        else:
            messages, max_tokens = plan.messages, None
        generation = get_gateway().generate(messages, extractive="", max_tokens=max_tokens)

        async def run(generation: Generation = generation, mode: str = mode) -> str:
            written = ""
            async with contextlib.aclosing(generation.events()) as events:
                async for event in events:
                    if isinstance(event, Token):
                        written += event.text
                        if mode == "evidence" and summary_complete(written):
                            generation.enough()
                            break
            return written

        started = time.perf_counter()
        written = await run()
        quoted = {g.n: [s.text for s in g.sentences] for g in plan.groups}
        records.append(
            {
                "question": prepared.question.text,
                "lang": language,
                "mode": mode,
                "model_text": written if mode == "generate" else " ".join(written.split()),
                "fallback": generation.result.fallback,
                "sources": [
                    {
                        "n": n,
                        "title": p.title,
                        "heading": p.heading_path,
                        "source_path": p.source_path,
                        "text": p.text,
                        "quoted": quoted.get(n, []),
                    }
                    for n, p in enumerate(plan.given, start=1)
                ],
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    return records


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("golden", type=Path, nargs="+")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "tts-handbook")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "pd-support", help="kept between runs"
    )
    args = parser.parse_args()
    if any("holdout" in path.name for path in args.golden):
        parser.error("hold-out files are never used here")
    questions = [
        json.loads(line)["question"]
        for path in args.golden
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    from devserver.embedded import services_down, services_up

    # A kept data directory: the handbook is ingested once (~5 minutes), later runs reuse it.
    args.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        urls = services_up(data_dir=args.data_dir, with_llm=True, fast=True, honour_env=False)
        os.environ.update(urls.as_env())
        os.environ.update(
            {
                "POLICYDESK_SECRET_KEY": secrets.token_urlsafe(32),
                "POLICYDESK_AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
                "POLICYDESK_ENV_FILE": "/dev/null",
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "POLICYDESK_LOG_LEVEL": "WARNING",
            }
        )
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.core.management import CommandError, call_command

        from accounts.roles import Role
        from accounts.services import user_create
        from rag.models import Document

        call_command("migrate", verbosity=0)
        if not Document.objects.exists():
            started = time.perf_counter()
            with contextlib.suppress(CommandError):  # pages without text make `ingest` exit non-zero
                call_command("ingest", str(args.corpus), "--wait", verbosity=0, stdout=io.StringIO())
            print(f"ingested in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        user = User.objects.filter(username="support-collector").first() or user_create(
            username="support-collector",
            role=Role.EMPLOYEE,
            password=secrets.token_urlsafe(16),
            validate=False,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)

        async def collect_all() -> None:
            with args.out.open("w", encoding="utf-8") as out:
                for number, question in enumerate(questions, start=1):
                    for record in await _collect(question, user):
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                        out.flush()
                    print(f"{number}/{len(questions)}", file=sys.stderr, flush=True)

        asyncio.run(collect_all())
    finally:
        services_down(data_dir=args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
