from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rag.index import embedding_index_check
from rag.lifecycle import VersionDates, VersionError
from rag.models import Document
from rag.services import document_create_from_upload, document_ingest

SKIP_NAMES = {".git", "__pycache__", ".DS_Store"}


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _dates(document: Document) -> str:
    start = f", from {document.effective_from}" if document.effective_from else ""
    return start + (f" until {document.effective_until}" if document.effective_until else "")


def files_under(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, source_path) pairs: source_path is relative to the directory given, or the file name."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if not SKIP_NAMES.intersection(file.relative_to(path).parts):
                    found.append((file, file.relative_to(path).as_posix()))
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise CommandError(f"{path} does not exist")
    return found


class Command(BaseCommand):
    help = "Ingest policy documents from files or directories (recursively)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--wait", action="store_true",
            help="ingest in this process and wait until every document is ready or failed "
                 "(without it, ingestion is queued for the Celery worker)",
        )  # fmt: skip
        versions = parser.add_argument_group("policy versions (docs/policy-versions.md)")
        versions.add_argument(
            "--new-version-of", metavar="SOURCE_PATH",
            help="the file is a new version of this document (its source path), whatever its name",
        )  # fmt: skip
        versions.add_argument("--effective-from", type=_day, metavar="YYYY-MM-DD", help="default: today")
        versions.add_argument(
            "--effective-until", type=_day, metavar="YYYY-MM-DD", help="default: open-ended"
        )
        versions.add_argument(
            "--review-by", type=_day, metavar="YYYY-MM-DD", help="when to review the policy"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            embedding_index_check()  # new vectors must be of the model the index holds
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        wait: bool = options["wait"]
        dates = VersionDates(
            effective_from=options["effective_from"],
            effective_until=options["effective_until"],
            review_by=options["review_by"],
        )
        files = files_under(options["paths"])
        if options["new_version_of"] and len(files) != 1:
            raise CommandError("--new-version-of takes exactly one file")
        failed = 0
        for file, source_path in files:
            try:
                with file.open("rb") as stream:
                    result = document_create_from_upload(
                        stream=stream,
                        file_name=file.name,
                        source_path=source_path,
                        enqueue=not wait,
                        new_version_of=options["new_version_of"],
                        dates=dates,
                    )
            except VersionError as exc:
                raise CommandError(str(exc)) from None
            document = result.document
            if not result.created:
                self.stdout.write(f"unchanged  {source_path} (same content as document {document.pk})")
                continue
            if wait and document.status == Document.Status.QUEUED:
                document = document_ingest(document_id=document.pk)
            failed += document.status == Document.Status.FAILED
            line = f"{document.status:10} {source_path}"
            if document.status == Document.Status.FAILED:
                line += f": {document.failure_reason}"
            elif document.status == Document.Status.READY:
                line += f" ({document.chunks.count()} chunks, v{document.version}{_dates(document)})"
            self.stdout.write(line)
        if failed:
            raise CommandError(f"{failed} document(s) failed")
