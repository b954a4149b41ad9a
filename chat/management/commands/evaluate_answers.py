from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.roles import Role
from accounts.services import user_set_role
from chat.evaluation import (
    GoldenError,
    Scored,
    answer_shown,
    golden_load,
    report,
    score_answer,
    scored_as_json,
)
from llm.config import llm_backends

EVALUATOR = "answer-evaluator"


class Command(BaseCommand):
    help = (
        "Ask every question of a golden JSONL file through the chat pipeline and score what the user "
        "sees: facts present (per question and per fact), unanswerable declined, sources, verified, "
        "placeholders, latency. One JSON line per question, then one JSON object with the totals (by "
        "language, kind, phrasing and dev split). --mode answers every question in evidence or generate "
        "mode, whatever each backend is configured for, so both are measured on the same questions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("golden", type=Path)
        parser.add_argument(
            "--user", default=None, help=f"ask as this user (default: an employee {EVALUATOR!r})"
        )
        parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
        parser.add_argument("--quiet", action="store_true", help="print only the totals")
        parser.add_argument(
            "--mode", choices=["evidence", "generate"], default=None,
            help="answer in this mode with every backend (default: each backend's answer_mode)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cases = golden_load(options["golden"])
        except (OSError, GoldenError) as exc:
            raise CommandError(str(exc)) from None
        if options["limit"] is not None:
            cases = cases[: max(0, options["limit"])]
        user = self._user(options["user"])
        if options["mode"]:
            # Read when the command's event loop builds its gateway; this process only.
            settings.LLM_BACKENDS = [
                dataclasses.replace(backend, answer_mode=options["mode"]) for backend in llm_backends()
            ]
        scored = asyncio.run(self._run(user, cases, quiet=options["quiet"]))
        self.stdout.write(
            json.dumps(report(scored, mode=options["mode"] or "configured"), ensure_ascii=False)
        )

    def _user(self, username: str | None) -> Any:
        model = get_user_model()
        if username is not None:
            try:
                return model.objects.get(username=username)
            except model.DoesNotExist:
                raise CommandError(f"no user {username!r}") from None
        user, created = model.objects.get_or_create(username=EVALUATOR)
        if created:
            user.set_unusable_password()
            user.save()
            user_set_role(user=user, role=Role.EMPLOYEE)
        return user

    async def _run(self, user: Any, cases: list[dict[str, Any]], *, quiet: bool) -> list[Scored]:
        scored = []
        for case in cases:
            shown, done = await answer_shown(user=user, question=case["question"])
            result = score_answer(case=case, shown=shown, done=done)
            scored.append(result)
            if not quiet:
                self.stdout.write(scored_as_json(result))
        return scored
