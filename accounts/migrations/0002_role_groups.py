"""Create the employee, policy_admin and auditor groups with their permissions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_CODENAMES = {
    "employee": ["ask_questions"],
    "policy_admin": ["ask_questions", "manage_documents"],
    "auditor": ["view_audit"],
}


def create_role_groups(apps: Any, schema_editor: Any) -> None:
    # Permissions are normally created after all migrations (post_migrate);
    # create them now so the groups can point at them.
    app_config = apps.get_app_config("accounts")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLE_CODENAMES.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
        group.permissions.set(perms)


def remove_role_groups(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_CODENAMES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
