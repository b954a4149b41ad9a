from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.roles import ASK_QUESTIONS
from api.selectors import user_api_access
from api.services import KeyRefused, api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for USER and print it once, alone on stdout (for scripts and CI). "
        "PolicyDesk keeps only its hash; `revoke_api_key PREFIX` revokes it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="created with manage.py", help="what the key is for")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="expire after N days (default: never)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user {options['username']!r}")
        if not user.is_active or not user.has_perm(ASK_QUESTIONS):
            raise CommandError(f"{user.username} may not ask questions, so a key would be refused")
        try:
            created = api_key_create(user=user, name=options["name"], expires_days=options["expires_days"])
        except KeyRefused as exc:
            raise CommandError(str(exc)) from None
        if not user_api_access(user=user):
            self.stderr.write("warning: API access is off for this user's role; the key works once it is on")
        self.stderr.write(f"created key {created.key.prefix}… for {user.username} (shown once)")
        self.stdout.write(created.secret)
