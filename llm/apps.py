from __future__ import annotations

from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "llm"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from llm.config import llm_backends

        llm_backends()  # a bad POLICYDESK_LLM_BACKENDS stops the process here, naming the field
