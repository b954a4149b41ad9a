from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest


class RolePermissionsBackend(ModelBackend):
    """The roles' permissions, through Django's group rules, while local accounts are off: every
    user's permissions come from their role groups, however they signed in (the LDAP backend
    grants none of its own). It signs nobody in."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> None:  # fmt: skip
        return None
