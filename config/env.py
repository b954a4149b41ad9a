"""Typed readers for POLICYDESK_* environment variables.

Every reader fails loudly with the variable's name when a value cannot be parsed,
so a typo in a deployment stops the process at start instead of misbehaving later.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

PREFIX = "POLICYDESK_"
_UNSET: Any = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def load_dotenv(path: Path) -> None:
    """Read KEY=VALUE lines from `path` into os.environ without overriding real variables."""
    if not path.is_file():
        return
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ImproperlyConfigured(f"{path}:{lineno}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        os.environ.setdefault(key.strip(), value)


def _raw(name: str) -> str | None:
    return os.environ.get(PREFIX + name)


def _missing(name: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{PREFIX}{name} is required but not set")


def env_str(name: str, default: str | None = _UNSET) -> str:
    value = _raw(name)
    if value is None:
        if default is _UNSET or default is None:
            raise _missing(name)
        return default
    return value


def env_optional_str(name: str) -> str | None:
    value = _raw(name)
    return value if value else None


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{PREFIX}{name}={value!r} is not a boolean (use true/false)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{PREFIX}{name}={value!r} is not an integer") from None
    _check_range(name, number, minimum, maximum)
    return number


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{PREFIX}{name}={value!r} is not a number") from None
    _check_range(name, number, minimum, maximum)
    return number


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{PREFIX}{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{PREFIX}{name}={number} is above the maximum {maximum}")


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{PREFIX}{name}={value!r} must be one of {', '.join(choices)}")
    return value


def env_json(name: str, default: Any) -> Any:
    value = _raw(name)
    if value is None:
        return default
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{PREFIX}{name} is not valid JSON: {exc}") from None


def parse_database_url(url: str, *, setting: str = "DATABASE_URL") -> dict[str, Any]:
    """Turn postgresql://user:pass@host:port/name?host=/socket/dir into Django's DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            f"{PREFIX}{setting} must start with postgresql://, got scheme {parts.scheme!r}"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured(f"{PREFIX}{setting} names no database")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = query.pop("host", None) or (unquote(parts.hostname) if parts.hostname else "")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{PREFIX}{setting} has an invalid port") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "OPTIONS": query,
    }


def validate_redis_url(url: str, *, setting: str = "REDIS_URL") -> str:
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(f"{PREFIX}{setting} must be a redis://, rediss:// or unix:// URL")
    return url


_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,16}")


def audit_keyring(ring: str | None, *, legacy: str | None) -> dict[str, str]:
    """The audit keyring, oldest first: the single POLICYDESK_AUDIT_HMAC_KEY as key id "" (what
    events written before key ids existed were signed with), then POLICYDESK_AUDIT_HMAC_KEYS,
    "id1:secret1,id2:secret2". The last key is the current one. Error messages name ids, never
    secrets."""
    keys: dict[str, str] = {}
    if legacy:
        keys[""] = legacy
    for position, entry in enumerate((ring or "").split(","), start=1):
        if not entry.strip():
            continue
        key_id, sep, secret = entry.strip().partition(":")
        if not sep or not _KEY_ID.fullmatch(key_id) or not secret:
            raise ImproperlyConfigured(
                f"{PREFIX}AUDIT_HMAC_KEYS entry {position} is not id:secret "
                "(an id is 1-16 letters, digits, '_', '.' or '-')"
            )
        if key_id in keys:
            raise ImproperlyConfigured(f"{PREFIX}AUDIT_HMAC_KEYS names key id {key_id!r} twice")
        keys[key_id] = secret
    return keys
