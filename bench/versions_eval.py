"""The dated golden set (bench/golden/versions/) end to end: the handbook and every version of
the manifest's pages, with their effective dates, in a fresh embedded PostgreSQL; then
`manage.py evaluate_answers --today <manifest today>` on the questions.

    .venv/bin/python -m bench.versions_eval                      # dev questions, one line each
    .venv/bin/python -m bench.versions_eval --holdout --quiet    # the hold-out: totals only

The handbook's other pages are loaded as in effect since --baseline-from (distractors on every
date), and each manifest page's last version again as a document only a group the evaluator is
not in may read (an answer quoting one would quote a version the asker may not read); each
manifest page is loaded version by version (`ingest --new-version-of --effective-from
--effective-until`), so their numbers are the manifest's. Answers use the configured LLM
backends; with none reachable, evidence mode quotes without a summary (facts are in the quotes).
`load_versions()` loads the same into whatever database Django is configured for.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import ROOT, scratch_django

VERSIONS = ROOT / "bench" / "golden" / "versions"
HANDBOOK = ROOT.parent / "shared" / "corpus" / "tts-handbook"
BASELINE = date(2020, 1, 1)


RESTRICTED_GROUP = "eval-restricted"


def load_versions(
    *, manifest: Path, handbook: Path | None, baseline: date, restricted: bool = True
) -> dict[str, Any]:
    """Ingest the handbook (less the manifest's pages) and the manifest's versions, in order.

    With `restricted`, each page's last version is also loaded as another document, in effect on
    every date but readable only by RESTRICTED_GROUP (which the evaluator is not in): an answer
    that quoted it would be an answer from a version the asker may not read.
    """
    from django.contrib.auth.models import Group

    from rag.lifecycle import VersionDates
    from rag.models import Document, DocumentStatus
    from rag.services import document_create_from_upload, document_ingest

    data = json.loads(manifest.read_text(encoding="utf-8"))
    versioned = {d["source"] for d in data["documents"]}
    started = time.perf_counter()

    def ingest(
        path: Path,
        source_path: str,
        dates: VersionDates,
        version_of: str | None = None,
        groups: list[Group] | None = None,
        data: bytes | None = None,
    ) -> Document:
        with path.open("rb") as stream:
            result = document_create_from_upload(
                stream=io.BytesIO(data) if data is not None else stream,
                file_name=path.name,
                source_path=source_path,
                enqueue=False,
                new_version_of=version_of,
                dates=dates,
                allowed_groups=groups,
            )
        document = result.document
        if document.status == DocumentStatus.QUEUED:
            document = document_ingest(document_id=document.pk)
        return document

    if handbook is not None:
        for page in sorted(handbook.rglob("*.md")):
            source = page.relative_to(handbook).as_posix()
            if source not in versioned:
                ingest(page, source, VersionDates(effective_from=baseline))
    for entry in data["documents"]:
        for version in entry["versions"]:
            until = version["effective_until"]
            document = ingest(
                manifest.parent / version["file"],
                entry["source"],
                VersionDates(
                    effective_from=date.fromisoformat(version["effective_from"]),
                    effective_until=date.fromisoformat(until) if until else None,
                ),
                version_of=entry["source"] if version["version"] > 1 else None,
            )
            if (document.version, document.status) != (version["version"], DocumentStatus.READY):
                raise SystemExit(
                    f"{entry['source']} v{version['version']} loaded as v{document.version} ({document.status})"
                )
    if restricted:
        group, _ = Group.objects.get_or_create(name=RESTRICTED_GROUP)
        for entry in data["documents"]:
            last = manifest.parent / entry["versions"][-1]["file"]
            # Not byte-identical (content hashes are unique): a marker line at the end.
            copy = last.read_bytes() + b"\n<!-- restricted copy -->\n"
            ingest(
                last,
                "restricted/" + entry["source"],
                VersionDates(effective_from=baseline),
                groups=[group],
                data=copy,
            )
    return {
        "documents_ready": Document.objects.filter(status=DocumentStatus.READY).count(),
        "restricted_copies": Document.objects.filter(allowed_groups__name=RESTRICTED_GROUP).count(),
        "versions_loaded": sum(len(d["versions"]) for d in data["documents"]),
        "load_s": round(time.perf_counter() - started, 1),
        "today": data["today"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--holdout", action="store_true", help="score questions-holdout.jsonl (once, at the end)"
    )
    parser.add_argument("--questions", type=Path, default=None, help="another question file")
    parser.add_argument("--handbook", type=Path, default=HANDBOOK, help="the other pages (distractors)")
    parser.add_argument("--no-handbook", action="store_true", help="only the manifest's pages")
    parser.add_argument("--baseline-from", type=date.fromisoformat, default=BASELINE)
    parser.add_argument("--quiet", action="store_true", help="print only the totals")
    parser.add_argument(
        "--then-holdout", action="store_true",
        help="after the dev questions, score the hold-out on the same load (its totals only)",
    )  # fmt: skip
    args = parser.parse_args()
    questions = args.questions or VERSIONS / (
        "questions-holdout.jsonl" if args.holdout else "questions.jsonl"
    )
    with scratch_django():
        from django.core.management import call_command

        loaded = load_versions(
            manifest=VERSIONS / "manifest.json",
            handbook=None if args.no_handbook else args.handbook,
            baseline=args.baseline_from,
        )
        print(json.dumps({"loaded": loaded}), flush=True)
        out = io.StringIO()
        flags = ["--quiet"] if args.quiet else []
        call_command("evaluate_answers", str(questions), "--today", loaded["today"], *flags, stdout=out)
        print(out.getvalue(), end="", flush=True)
        if args.then_holdout:
            out = io.StringIO()
            holdout = VERSIONS / "questions-holdout.jsonl"
            call_command("evaluate_answers", str(holdout), "--today", loaded["today"], "--quiet", stdout=out)
            print(json.dumps({"holdout": json.loads(out.getvalue())}))


if __name__ == "__main__":
    main()
