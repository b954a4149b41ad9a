from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.clock import company_today
from rag.versions import documents_due_for_review


class Command(BaseCommand):
    help = (
        "List the policies whose review-by date has passed or falls within POLICYDESK_REVIEW_DUE_DAYS "
        "(the version in effect today), most overdue first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object: today and the list")

    def handle(self, *args: Any, **options: Any) -> None:
        today = company_today()
        due = documents_due_for_review(today=today)
        if options["json"]:
            payload = {"today": today.isoformat(), "documents": [d.as_dict() for d in due]}
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        if not due:
            self.stdout.write("No policy is due for review.")
        for item in due:
            state = "OVERDUE" if item.overdue else "due    "
            self.stdout.write(f"{state} {item.review_by}  {item.source_path} (v{item.version}, {item.title})")
