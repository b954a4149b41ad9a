from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; names the first broken link. Exit status 1 if broken."

    def handle(self, *args: Any, **options: Any) -> None:
        status = audit_chain_verify()
        self.stdout.write(json.dumps(status.as_dict()))
        if not status.valid:
            self.stderr.write(
                f"broken at event #{status.first_broken_seq} (id {status.first_broken_id}): {status.problem}"
            )
            raise SystemExit(1)
