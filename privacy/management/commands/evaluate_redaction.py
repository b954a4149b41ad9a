from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from privacy.evaluation import read_cases, redaction_evaluate


class Command(BaseCommand):
    help = "Score PII redaction on labelled cases: recall per type, leaks, over-redaction, latency."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "cases", type=Path, help='JSONL: {"text": ..., "pii": [{"type", "value"}], "lang"?}'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cases = read_cases(options["cases"])
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        report = redaction_evaluate(cases=cases)
        # Leaked values are the raw PII of the test file itself; print their types only.
        report["leaked_values"] = [item["type"] for item in report["leaked_values"]]
        self.stdout.write(json.dumps(report, ensure_ascii=False))
