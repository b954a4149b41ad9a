from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required, permission_required

View = TypeVar("View", bound=Callable[..., Any])


def role_required(permission: str) -> Callable[[View], View]:
    """Anonymous users go to the login page; logged-in users without the permission get 403."""

    def decorator(view: View) -> View:
        guarded = permission_required(permission, raise_exception=True)(view)
        return login_required(guarded)

    return decorator
