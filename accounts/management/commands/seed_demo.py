from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.roles import Role
from accounts.services import user_create
from rag.models import Document

DEMO_CORPUS = settings.BASE_DIR / "demo_corpus"
DEMO_USERS = [("alice", Role.EMPLOYEE), ("pat", Role.POLICY_ADMIN), ("audrey", Role.AUDITOR)]


class Command(BaseCommand):
    help = (
        "On an empty database: create the demo users (random passwords, listed in "
        ".data/demo-logins.txt) and ingest the demo corpus."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self._load_demo_corpus()
        self._create_demo_users()

    def _load_demo_corpus(self) -> None:
        if Document.objects.exists():
            self.stdout.write("documents exist; demo corpus not loaded")
            return
        call_command("ingest", str(DEMO_CORPUS), "--wait", stdout=self.stdout)

    def _create_demo_users(self) -> None:
        logins_file = settings.DATA_DIR / "demo-logins.txt"
        if User.objects.exists():
            self.stdout.write("users exist; demo users not created")
            return
        lines = ["Demo logins (this machine only):"]
        for username, role in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            user_create(username=username, role=role, password=password, validate=False)
            lines.append(f"  {role.value:13} {username:7} {password}")
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        logins_file.write_text("\n".join(lines) + "\n")
        logins_file.chmod(0o600)
        self.stdout.write(f"demo users created; logins in {logins_file}")
