from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_ensure_role_groups, sender=self)
        # Connect the lockout event and the sign-in stamp; register the group map's check.
        from accounts import checks, sessions, throttle  # noqa: F401

        # Also in every process's log at start: Daphne and Celery do not run the checks.
        for warning in checks.group_map_by_name():
            logging.getLogger("accounts").warning("%s (%s) %s", warning.msg, warning.id, warning.hint)


def _ensure_role_groups(sender: AppConfig, **kwargs: Any) -> None:
    # The data migration creates the groups once; a flush (tests, `manage.py flush`)
    # empties auth tables and then sends post_migrate, so recreate them here too.
    from accounts.services import role_groups_ensure

    role_groups_ensure(using=kwargs.get("using", "default"))
