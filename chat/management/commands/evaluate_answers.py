from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from datetime import date
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
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
from chat.version_evaluation import (
    VersionScore,
    golden_versioned,
    score_version,
    version_score_json,
    version_summary,
)
from core.clock import clock_fixed
from llm.config import llm_backends

EVALUATOR = "answer-evaluator"


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Ask every question of a golden JSONL file through the chat pipeline and score what the user "
        "sees: facts present (per question and per fact), unanswerable declined, sources, verified, "
        "placeholders, latency. One JSON line per question, then one JSON object with the totals (by "
        "language, kind, phrasing and dev split); for dated lines (expected_version), version accuracy. "
        "--mode answers every question in evidence or generate mode, whatever each backend is "
        "configured for, so both are measured on the same questions; --today answers as if today "
        "were that day."
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
        parser.add_argument(
            "--today", type=_day, default=None, metavar="YYYY-MM-DD",
            help="answer as if today were this day (dated golden sets: 'current' and 'last year' "
                 "mean that day); default: the real today",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cases = golden_load(options["golden"])
        except (OSError, GoldenError) as exc:
            raise CommandError(str(exc)) from None
        if options["limit"] is not None:
            cases = cases[: max(0, options["limit"])]
        cases = [golden_versioned(case) for case in cases]
        user = self._user(options["user"])
        if options["mode"]:
            # Read when the command's event loop builds its gateway; this process only.
            settings.LLM_BACKENDS = [
                dataclasses.replace(backend, answer_mode=options["mode"]) for backend in llm_backends()
            ]
        with clock_fixed(options["today"]):
            scored, versions = asyncio.run(self._run(user, cases, quiet=options["quiet"]))
        totals = report(scored, mode=options["mode"] or "configured")
        if versions:
            totals["versions"] = version_summary(versions)
        self.stdout.write(json.dumps(totals, ensure_ascii=False))

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

    async def _run(
        self, user: Any, cases: list[dict[str, Any]], *, quiet: bool
    ) -> tuple[list[Scored], list[VersionScore]]:
        scored, versions = [], []
        for case in cases:
            shown, done = await answer_shown(user=user, question=case["question"])
            result = score_answer(case=case, shown=shown, done=done)
            scored.append(result)
            version = await sync_to_async(score_version)(case=case, shown=shown, done=done, user=user)
            if version is not None:
                versions.append(version)
            if not quiet:
                line = scored_as_json(result)
                if version is not None:
                    line = json.dumps({**json.loads(line), **version_score_json(version)}, ensure_ascii=False)
                self.stdout.write(line)
        return scored, versions
