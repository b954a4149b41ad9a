from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from llm.services import backends_status


class Command(BaseCommand):
    help = "Print each LLM backend's health, model list and circuit-breaker state."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = backends_status()
        if options["json"]:
            self.stdout.write(json.dumps({"backends": rows}))
        else:
            for row in rows:
                health = "healthy" if row["healthy"] else f"DOWN ({row['probe_error']})"
                self.stdout.write(
                    f"{row['name']:12} {row['kind']:7} {row['base_url']:40} {health:28} "
                    f"breaker={row['breaker']} models={','.join(row['models']) or '-'}"
                )
        if not any(row["healthy"] for row in rows):
            self.stderr.write("no LLM backend is healthy: answers will use the extractive fallback")
            raise SystemExit(1)
