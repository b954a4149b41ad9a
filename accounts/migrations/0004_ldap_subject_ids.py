"""LDAP accounts were keyed by login name; they are now keyed by the entry's entryUUID/objectGUID
(accounts/ldap.py). The directory cannot be read here, so existing subjects are marked as login
names (`name:<login>`): each takes its id at its next sign-in or deprovisioning run."""

from __future__ import annotations

from typing import Any

from django.db import migrations

PREFIX = "name:"


def mark_login_names(apps: Any, schema_editor: Any) -> None:
    DirectoryAccount = apps.get_model("accounts", "DirectoryAccount")
    for account in DirectoryAccount.objects.filter(source="ldap").exclude(subject__startswith=PREFIX):
        account.subject = PREFIX + account.subject
        account.save(update_fields=["subject"])


def unmark_login_names(apps: Any, schema_editor: Any) -> None:
    # Accounts that took their id since cannot go back to a login name; they keep the id.
    DirectoryAccount = apps.get_model("accounts", "DirectoryAccount")
    for account in DirectoryAccount.objects.filter(source="ldap", subject__startswith=PREFIX):
        account.subject = account.subject.removeprefix(PREFIX)
        account.save(update_fields=["subject"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_directory")]

    operations = [migrations.RunPython(mark_login_names, unmark_login_names)]
