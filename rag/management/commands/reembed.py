from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from rag.embedding import MODEL_OF_CHOICE, load_embedder
from rag.index import ReembedProgress, index_reembed, sentence_vectors_fill


class Command(BaseCommand):
    help = (
        "Re-embed every passage and title with another embedding model, then swap the index to it "
        "in one transaction. Search keeps using the old vectors until then; an interrupted run "
        "resumes where it stopped. Does nothing when the index already holds that model, but "
        "stores sentence vectors for passages that lack them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--embedder", choices=sorted(MODEL_OF_CHOICE), default=None,
            help="the POLICYDESK_EMBEDDER choice to move to (default: the configured one)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        embedder = load_embedder(options["embedder"] or settings.EMBEDDER)
        started = time.monotonic()
        last_print = 0.0

        def report(progress: ReembedProgress) -> None:
            nonlocal last_print
            now = time.monotonic()
            if progress.done < progress.total and now - last_print < 2:
                return
            last_print = now
            rate = progress.done / max(now - started, 1e-6)
            eta = (progress.total - progress.done) / rate if rate else 0
            self.stdout.write(
                f"{progress.stage}: {progress.done}/{progress.total} ({rate:.1f}/s, about {eta:.0f} s left)"
            )

        self.stdout.write(index_reembed(embedder=embedder, on_progress=report))
        # Evidence selection reads each sentence's vector from ingestion: fill any missing.
        filled = sentence_vectors_fill(embedder=embedder, on_progress=report)
        if filled:
            self.stdout.write(f"stored sentence vectors for {filled} passages")
