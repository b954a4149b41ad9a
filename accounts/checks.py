"""Start-up checks (Django's checks framework: `manage.py check`, and every runserver/migrate)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security)
def group_map_by_name(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """POLICYDESK_GROUP_MAP keys that are group names, while a directory sign-in is on: where
    users can create groups, one named like a mapped group would grant its role or documents."""
    if not (settings.AUTH_OIDC or settings.AUTH_LDAP):
        return []
    names = settings.GROUP_MAP.keys_by_name()
    if not names:
        return []
    return [
        Warning(
            f"POLICYDESK_GROUP_MAP matches {len(names)} group(s) by name ({', '.join(names[:5])}"
            f"{', …' if len(names) > 5 else ''}); a group created with the same name would match too.",
            hint="Use immutable ids as keys: the group's LDAP DN, its entryUUID/objectGUID, or the Entra "
            "group's object id (docs/sign-in.md, 'Group map').",
            id="accounts.W001",
        )
    ]
