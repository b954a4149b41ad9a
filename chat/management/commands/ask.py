from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.events import AskError, Done, HandoverOut, Started, TokenOut, citation_as_json, event_as_json
from chat.pipeline import question_answer
from chat.state import Asking


class Command(BaseCommand):
    help = "Ask a question through the same pipeline as the chat page; the answer streams to stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question")
        parser.add_argument("--user", required=True, help="the username to ask as (their access applies)")
        parser.add_argument("--conversation", default=None, help="continue this conversation id")
        parser.add_argument(
            "--json", action="store_true", help="end with one JSON line describing the answer"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {options['user']!r}") from None
        try:
            done = asyncio.run(self._ask(user, options["question"], options["conversation"]))
        except AskError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        if options["json"] and done is not None:
            # The socket's `done` event, with what a script needs besides: the text and sources.
            summary = {
                **event_as_json(done),
                "answer": done.text,
                "citations": [
                    {**citation_as_json(c), "source_path": c["source_path"]} for c in done.citations
                ],
                "attempts": done.attempts,
            }
            self.stdout.write(json.dumps(summary, ensure_ascii=False))

    async def _ask(self, user: Any, question: str, conversation: str | None) -> Done | None:
        done = None
        asking = Asking(channel="cli")
        async for event in question_answer(
            user=user, question=question, conversation_id=conversation, asking=asking
        ):
            if isinstance(event, TokenOut):
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, HandoverOut):
                self.stderr.write(f"\n[handover: {event.from_backend} → {event.to_backend}]")
            elif isinstance(event, Started):
                self.stderr.write(f"[conversation {event.conversation_id}]")
            elif isinstance(event, Done):
                done = event
        sys.stdout.write("\n")
        return done
