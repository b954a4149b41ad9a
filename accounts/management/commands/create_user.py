from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.roles import Role
from accounts.services import user_create


class Command(BaseCommand):
    help = "Create a PolicyDesk user in one role (employee, policy_admin or auditor)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument("--password-file", type=Path, help="read the password from this file")

    def handle(self, *args: Any, **options: Any) -> None:
        password = self._read_password(options["password_file"])
        try:
            user = user_create(username=options["username"], role=Role(options["role"]), password=password)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"created {user.username} ({options['role']})")

    def _read_password(self, password_file: Path | None) -> str:
        if password_file is not None:
            try:
                password = password_file.read_text().strip()
            except OSError as exc:
                raise CommandError(f"cannot read password file: {exc}") from None
            if not password:
                raise CommandError("the password file is empty")
            return password
        if not sys.stdin.isatty():
            raise CommandError("no terminal to prompt on: pass --password-file")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("the passwords do not match")
        return first
