from __future__ import annotations

from django.contrib.auth.models import Group, Permission, User
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from accounts.roles import ROLE_NAMES, ROLE_PERMISSIONS, Role


@transaction.atomic
def user_create(*, username: str, role: Role, password: str, validate: bool = True) -> User:
    """Create a user in exactly one role group. Raises ValidationError for a weak password."""
    user = User(username=username)
    if validate:
        validate_password(password, user=user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    user_set_role(user=user, role=role)
    return user


def user_set_role(*, user: User, role: Role) -> None:
    role_groups = Group.objects.filter(name__in=ROLE_NAMES)
    user.groups.remove(*role_groups)
    user.groups.add(Group.objects.get(name=role.value))


def user_roles(*, user: User) -> set[Role]:
    names = set(user.groups.values_list("name", flat=True))
    return {role for role in Role if role.value in names}


def role_groups_ensure(*, using: str = "default") -> None:
    """Create the role groups with exactly their permissions (idempotent)."""
    for role, permissions in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role.value)
        codenames = [name.split(".", 1)[1] for name in permissions]
        group.permissions.set(
            Permission.objects.using(using).filter(content_type__app_label="accounts", codename__in=codenames)
        )
