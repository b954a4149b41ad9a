from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.roles import Role


class ApiKey(models.Model):
    """A key for the OpenAI-compatible API. It acts as its user: their role, reader groups, rate
    limit and redaction. Only the key's SHA-256 digest is kept; the key is shown once, at
    creation. `prefix` (the key's first characters) names it in lists and in `revoke_api_key`."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the whole key, hex")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Written at most once a minute per key: a busy script must not write a row per question.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class RoleApiAccess(models.Model):
    """Whether a role's members may use the API. No row: they may (as long as the role may ask)."""

    role = models.CharField(max_length=20, unique=True, choices=[(r.value, r.value) for r in Role])
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"API access for {self.role}: {'on' if self.enabled else 'off'}"
