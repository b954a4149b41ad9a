"""Backend configuration for the LLM gateway: `POLICYDESK_LLM_BACKENDS`, validated at start.

Settings hold the raw JSON list and the global defaults; `llm_backends()` turns them into
`BackendConfig`s, and the app's `ready()` calls it once so a bad value stops every process
(Daphne, Celery, manage.py) at start with the field's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

KINDS = ("openai", "ollama", "local")
# How far an answer trusts the model (docs/answers-and-retrieval.md, "Answer modes"): "evidence" quotes the policy
# sentences first and lets the model add at most a short summary of them; "generate" lets the
# model answer from the passages, followed by the quoted evidence. Both are claim-checked.
ANSWER_MODES = ("evidence", "generate")
LOCAL_MODEL = "smollm2-135m-instruct"
# The CPU runtime reads prompts at ~150 tokens/s per thread: a smaller context keeps the
# first token within seconds (fewer, shorter passages). Explicit values still win.
LOCAL_LIMITS = {"context_tokens": 1536, "max_tokens": 256}


@dataclass(frozen=True)
class BackendDefaults:
    connect_timeout: float = 2.0
    first_token_timeout: float = 30.0
    idle_timeout: float = 15.0
    total_timeout: float = 180.0
    max_concurrency: int = 8
    queue_timeout: float = 2.0
    max_tokens: int = 512
    temperature: float = 0.2
    context_tokens: int = 4096
    # Read the stream at most this often after the first token: tokens that arrive meanwhile
    # are relayed as one piece. Each read, event and WebSocket frame costs the web process CPU;
    # at 20 tokens/s a 0.1 s interval halves them (the reader still sees ~10 updates a second).
    stream_interval: float = 0.1


# The tunables come from BackendDefaults; keyword-only so the required fields may follow them.
@dataclass(frozen=True, kw_only=True)
class BackendConfig(BackendDefaults):
    name: str
    kind: str
    base_url: str
    model: str
    api_key_env: str | None = None
    # vLLM continues a partial assistant turn natively; others get a plain instruction.
    continue_final_message: bool = False
    answer_mode: str = ""  # "" → evidence for the local kind, generate for the others

    def __post_init__(self) -> None:
        if not self.answer_mode:
            object.__setattr__(self, "answer_mode", "evidence" if self.kind == "local" else "generate")

    @property
    def wire(self) -> str:
        """The protocol spoken: the local runtime is llama.cpp's OpenAI-compatible server."""
        return "ollama" if self.kind == "ollama" else "openai"

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


_NUMBER_FIELDS = {
    "connect_timeout": (float, 0.05, 600.0),
    "first_token_timeout": (float, 0.05, 3600.0),
    "idle_timeout": (float, 0.05, 3600.0),
    "total_timeout": (float, 0.1, 7200.0),
    "max_concurrency": (int, 1, 10_000),
    "queue_timeout": (float, 0.0, 600.0),
    "max_tokens": (int, 1, 131_072),
    "temperature": (float, 0.0, 2.0),
    "context_tokens": (int, 256, 1_048_576),
    "stream_interval": (float, 0.0, 2.0),
}
_KNOWN = {f.name for f in fields(BackendConfig)}


def _bad(index: int, field: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"POLICYDESK_LLM_BACKENDS[{index}].{field}: {problem}")


def _number(index: int, field: str, value: Any) -> float | int:
    kind, low, high = _NUMBER_FIELDS[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(index, field, f"must be a number, got {value!r}")
    if kind is int and not float(value).is_integer():
        raise _bad(index, field, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise _bad(index, field, f"must be between {low} and {high}, got {value!r}")
    return kind(value)


def _string(index: int, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(index, field, "must be a non-empty string")
    return value.strip()


def _backend(index: int, raw: Any, defaults: BackendDefaults, local_url: str) -> BackendConfig:
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(f"POLICYDESK_LLM_BACKENDS[{index}] must be an object")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise _bad(index, unknown[0], "unknown field")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _bad(index, "kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    values: dict[str, Any] = {f: getattr(defaults, f) for f in _NUMBER_FIELDS}
    values["kind"] = kind
    values["name"] = _string(index, "name", raw.get("name", kind))
    if kind == "local":
        for field, limit in LOCAL_LIMITS.items():
            values[field] = min(values[field], limit)
        values["base_url"] = raw.get("base_url", local_url)
        values["model"] = raw.get("model", LOCAL_MODEL)
    else:
        for required in ("base_url", "model"):
            if required not in raw:
                raise _bad(index, required, "is required")
        values["base_url"] = raw["base_url"]
        values["model"] = raw["model"]
    values["base_url"] = _string(index, "base_url", values["base_url"]).rstrip("/")
    parts = urlsplit(values["base_url"])
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad(index, "base_url", f"must be an http(s) URL, got {values['base_url']!r}")
    values["model"] = _string(index, "model", values["model"])
    if "api_key_env" in raw and raw["api_key_env"] is not None:
        values["api_key_env"] = _string(index, "api_key_env", raw["api_key_env"])
    values["answer_mode"] = raw.get("answer_mode", "")
    if "answer_mode" in raw and raw["answer_mode"] not in ANSWER_MODES:
        raise _bad(
            index, "answer_mode", f"must be one of {', '.join(ANSWER_MODES)}, got {values['answer_mode']!r}"
        )
    if "continue_final_message" in raw:
        if not isinstance(raw["continue_final_message"], bool):
            raise _bad(index, "continue_final_message", "must be true or false")
        values["continue_final_message"] = raw["continue_final_message"]
    for field in _NUMBER_FIELDS:
        if field in raw:
            values[field] = _number(index, field, raw[field])
    return BackendConfig(**values)


def parse_backends(raw: Any, *, defaults: BackendDefaults, local_url: str) -> tuple[BackendConfig, ...]:
    """Validate the JSON list; the error names the first bad field, e.g. `[1].base_url`."""
    if raw is None:
        raw = [{"name": "local", "kind": "local"}]
    if not isinstance(raw, list) or not raw:
        raise ImproperlyConfigured("POLICYDESK_LLM_BACKENDS must be a non-empty JSON list")
    backends = tuple(_backend(i, item, defaults, local_url) for i, item in enumerate(raw))
    names = [b.name for b in backends]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _bad(i, "name", f"{name!r} is used twice")
    for i, backend in enumerate(backends):
        if backend.api_key_env and backend.api_key_env not in os.environ:
            raise _bad(i, "api_key_env", f"environment variable {backend.api_key_env} is not set")
        if backend.first_token_timeout > backend.total_timeout:
            raise _bad(i, "first_token_timeout", "must not exceed total_timeout")
        if backend.stream_interval >= backend.idle_timeout:
            raise _bad(i, "stream_interval", "must be shorter than idle_timeout")
    return backends


_parsed: dict[str, tuple[BackendConfig, ...]] = {}


def llm_backends() -> tuple[BackendConfig, ...]:
    """The configured backends in priority order, parsed once per process.

    `settings.LLM_BACKENDS` is the raw JSON list (None: the local runtime alone); tests and
    benches may put ready-made `BackendConfig`s there with `override_settings`.
    """
    raw = settings.LLM_BACKENDS
    if isinstance(raw, list | tuple) and all(isinstance(item, BackendConfig) for item in raw):
        return tuple(raw)
    if "backends" not in _parsed:
        defaults = BackendDefaults(**cast("dict[str, Any]", settings.LLM_DEFAULTS))
        _parsed["backends"] = parse_backends(raw, defaults=defaults, local_url=settings.LOCAL_LLM_URL)
    return _parsed["backends"]


def _forget_parsed(*, setting: str, **_: Any) -> None:
    if setting in ("LLM_BACKENDS", "LLM_DEFAULTS", "LOCAL_LLM_URL"):
        _parsed.clear()


setting_changed.connect(_forget_parsed)
