from __future__ import annotations

import time
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.utils.crypto import constant_time_compare

from accounts.sessions import oidc_recheck_due, session_holds


def user_has_permission(*, user_id: int, permission: str, session_key: str | None = None) -> bool:
    """From the database, not a cached user: an account disabled or a role removed counts, and
    with `session_key`, so does signing out or changing the password (the session is gone, or
    its auth hash no longer matches, as Django's own check on each request), and so does a
    session past its working day or an OIDC one whose re-check at the provider is due."""
    user = active_user(user_id=user_id)
    if user is None or not user.has_perm(permission):
        return False
    return session_key is None or session_belongs_to(session_key=session_key, user=user)


def active_user(*, user_id: int) -> User | None:
    """The user, unless deactivated: what a session may still belong to (as ModelBackend)."""
    return User.objects.filter(pk=user_id, is_active=True).first()


def session_belongs_to(*, session_key: str, user: User) -> bool:
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    if session.get(SESSION_KEY) != str(user.pk) or not session_holds(session):
        return False
    return constant_time_compare(session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash())


def session_recheck_due(*, session_key: str) -> bool:
    """Whether this session is an OIDC one whose re-check at the provider is due."""
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    return oidc_recheck_due(session, now=time.time())
