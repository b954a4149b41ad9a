from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="RolePermission",
            fields=[],
            options={
                "managed": False,
                "default_permissions": (),
                "permissions": [
                    ("ask_questions", "Can ask policy questions"),
                    ("manage_documents", "Can upload, re-index and retire policy documents"),
                    ("view_audit", "Can read and export the audit log"),
                ],
            },
        ),
    ]
