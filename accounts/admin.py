from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from accounts.models import DirectoryAccount

if TYPE_CHECKING:  # generic for mypy only: ModelAdmin is not subscriptable at run time
    _ModelAdmin = admin.ModelAdmin[DirectoryAccount]
else:
    _ModelAdmin = admin.ModelAdmin


@admin.register(DirectoryAccount)
class DirectoryAccountAdmin(_ModelAdmin):
    """Which directory identity each user signs in as. Read-only: sign-in and deprovisioning
    write it; deleting a row unlinks the user (their next sign-in makes a new account)."""

    list_display = ("user", "source", "issuer", "subject", "synced_at", "deprovisioned_at")
    list_filter = ("source",)
    search_fields = ("user__username", "subject")
    readonly_fields = ("user", "source", "issuer", "subject", "synced_at", "deprovisioned_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DirectoryAccount | None = None) -> bool:
        return False
