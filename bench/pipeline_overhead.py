"""The pipeline's own cost before the first token: redaction + retrieval + prompt building.

    make up && .venv/bin/python -m bench.pipeline_overhead [--questions 200] [--local] [--mode generate]

Runs `question_answer()` (the code path of the socket and `manage.py ask`) as the first
demo user against the database in .env. By default the LLM is a fast fake backend on a real
socket, so the numbers are PolicyDesk's own; `--local` uses the configured backends instead,
which adds the model's time to first token. `--mode` is the fake backend's answer mode
(evidence, the local kind's default, shows the quotes before the model's first token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("POLICYDESK_LOG_LEVEL", "WARNING")
django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from bench.common import percentiles  # noqa: E402
from bench.fake_llm import DEFAULT_TEXT, FakeOpenAI  # noqa: E402
from bench.ws_load import DEFAULT_QUESTIONS  # noqa: E402
from chat.events import Done  # noqa: E402
from chat.pipeline import question_answer  # noqa: E402
from llm.config import BackendConfig  # noqa: E402
from rag.index import sentence_cache_clear  # noqa: E402


async def run(count: int, local: bool, mode: str = "evidence", cold: bool = False) -> dict[str, object]:
    questions = [q.strip() for q in DEFAULT_QUESTIONS.read_text().splitlines() if q.strip()]
    user = await sync_to_async(lambda: User.objects.filter(groups__name="employee").first())()
    assert user is not None, "no employee: run `make up` and `manage.py seed_demo` first"
    server = None
    overrides = {}
    if not local:
        server = FakeOpenAI(text=DEFAULT_TEXT)
        url = await server.start()
        overrides["LLM_BACKENDS"] = (
            BackendConfig(name="fake", kind="openai", base_url=url, model="fake-model", answer_mode=mode),
        )
    timings: list[dict[str, float | None]] = []
    with override_settings(CHAT_RATE_LIMIT_PER_MINUTE=10**6, **overrides):
        for i in range(count + 3):
            if cold:
                sentence_cache_clear()  # as for a question about sentences not asked about before
            async for event in question_answer(
                user=user, question=questions[i % len(questions)], conversation_id=None
            ):
                if isinstance(event, Done) and i >= 3:  # the first three warm caches and pools
                    timings.append(event.timings)
    if server:
        await server.stop()
    keys = ("redaction_ms", "retrieval_ms", "evidence_ms", "prompt_ms", "overhead_ms", "first_token_ms")
    return {
        "questions": count,
        "backend": "configured" if local else f"fake (fast), {mode} mode",
        **{key: percentiles([float(t[key] or 0) for t in timings]) for key in keys},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--local", action="store_true", help="use the configured LLM backends")
    parser.add_argument("--mode", choices=("evidence", "generate"), default="evidence")
    parser.add_argument(
        "--cold", action="store_true", help="empty the sentence-vector cache before each question"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.questions, args.local, args.mode, args.cold)), indent=2))
