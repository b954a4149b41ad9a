from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from audit.heads import audit_heads_verify
from audit.services import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain from end to end and compare its end with the signed heads "
        "in POLICYDESK_AUDIT_HEAD_FILE; names the first broken link, a truncated tail and reused "
        "sequence numbers. Exit status 1 if anything is wrong."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        chain = audit_chain_verify()
        heads = audit_heads_verify()
        report = chain.as_dict() | heads.as_dict()
        report["valid"] = chain.valid and heads.valid
        self.stdout.write(json.dumps(report))
        if not chain.valid:
            self.stderr.write(
                f"broken at event #{chain.first_broken_seq} (id {chain.first_broken_id}): {chain.problem}"
            )
        if not heads.valid:
            self.stderr.write(heads.problem)
        elif heads.heads == 0 and chain.checked:
            self.stderr.write(
                f"warning: no signed heads in {report['head_file']}: a deleted tail would not show "
                "(the beat task writes them; see docs/audit-and-security.md)"
            )
        if not report["valid"]:
            raise SystemExit(1)
