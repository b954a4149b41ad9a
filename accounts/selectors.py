from __future__ import annotations

from django.contrib.auth.models import User


def user_has_permission(*, user_id: int, permission: str) -> bool:
    """From the database, not a cached user: an account disabled or a role removed counts."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    return user is not None and user.has_perm(permission)
