from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.selectors import api_key_by_prefix
from api.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke the API key with this prefix (as the API keys page lists it, e.g. pd_AbC123xy)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        key = api_key_by_prefix(prefix=options["prefix"].rstrip("…"))
        if key is None:
            raise CommandError(f"no API key with prefix {options['prefix']!r}")
        if key.revoked_at is not None:
            self.stdout.write(f"{key.prefix}… was already revoked at {key.revoked_at.isoformat()}")
            return
        api_key_revoke(key=key, by=None)  # an operator at the command line: no account
        self.stdout.write(f"revoked {key.prefix}… ({key.name}) of {key.user.username}")
