from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_json, env_list, load_dotenv, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value", ["maybe", "2", "tru"])
def test_it_rejects_a_boolean_that_is_not_one(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("POLICYDESK_FLAG", value)
    with pytest.raises(ImproperlyConfigured, match="POLICYDESK_FLAG"):
        env_bool("FLAG", False)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("Off", False), ("1", True), ("no", False)])
def test_it_reads_booleans(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("POLICYDESK_FLAG", value)
    assert env_bool("FLAG", not expected) is expected


def test_it_rejects_a_non_integer_and_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICYDESK_RATE", "12x")
    with pytest.raises(ImproperlyConfigured, match=r"POLICYDESK_RATE='12x' is not an integer"):
        env_int("RATE", 5)


def test_it_rejects_an_integer_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICYDESK_RATE", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum 1"):
        env_int("RATE", 5, minimum=1)


def test_it_rejects_a_value_outside_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICYDESK_LOG_LEVEL", "LOUD")
    with pytest.raises(ImproperlyConfigured, match="must be one of"):
        env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO"))


def test_it_rejects_invalid_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICYDESK_LLM_BACKENDS", "[{name: vllm}]")
    with pytest.raises(ImproperlyConfigured, match="POLICYDESK_LLM_BACKENDS is not valid JSON"):
        env_json("LLM_BACKENDS", None)


def test_it_splits_lists_and_drops_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICYDESK_ALLOWED_HOSTS", " a.example , ,b.example")
    assert env_list("ALLOWED_HOSTS", []) == ["a.example", "b.example"]


def test_it_parses_a_socket_database_url() -> None:
    config = parse_database_url("postgresql://postgres@/policydesk?host=/tmp/pd/pg&sslmode=disable")
    assert config["NAME"] == "policydesk"
    assert config["HOST"] == "/tmp/pd/pg"
    assert config["USER"] == "postgres"
    assert config["OPTIONS"] == {"sslmode": "disable"}


def test_it_parses_a_tcp_database_url_with_escaped_password() -> None:
    config = parse_database_url("postgresql://app:p%40ss@db.internal:6543/policy")
    assert (config["HOST"], config["PORT"], config["PASSWORD"]) == ("db.internal", "6543", "p@ss")


@pytest.mark.parametrize("url", ["mysql://x@h/db", "postgresql://x@h/", "postgresql://x@h:port/db"])
def test_it_rejects_bad_database_urls(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="POLICYDESK_DATABASE_URL"):
        parse_database_url(url)


def test_dotenv_does_not_override_the_real_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nPOLICYDESK_A=from-file\nexport POLICYDESK_B='quoted value'\n")
    monkeypatch.setenv("POLICYDESK_A", "from-env")
    monkeypatch.delenv("POLICYDESK_B", raising=False)
    load_dotenv(env_file)
    assert os.environ["POLICYDESK_A"] == "from-env"
    assert os.environ["POLICYDESK_B"] == "quoted value"


def test_dotenv_rejects_a_line_without_equals(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("POLICYDESK_OK=1\nthis is not a setting\n")
    with pytest.raises(ImproperlyConfigured, match=":2: expected KEY=VALUE"):
        load_dotenv(env_file)


def _load_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYDESK_")}
    env.update({"POLICYDESK_ENV_FILE": "/dev/null", "DJANGO_SETTINGS_MODULE": "config.settings", **overrides})
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('loaded')"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off() -> None:
    result = _load_settings(POLICYDESK_DEBUG="false")
    assert result.returncode != 0
    assert "POLICYDESK_SECRET_KEY is required" in result.stderr


def test_it_refuses_to_start_without_an_audit_key_when_debug_is_off() -> None:
    result = _load_settings(POLICYDESK_SECRET_KEY="k" * 50)
    assert result.returncode != 0
    assert "POLICYDESK_AUDIT_HMAC_KEY is required" in result.stderr


def test_it_starts_with_a_secret_key_and_an_audit_key() -> None:
    result = _load_settings(POLICYDESK_SECRET_KEY="k" * 50, POLICYDESK_AUDIT_HMAC_KEY="a" * 50)
    assert result.returncode == 0, result.stderr
    assert "loaded" in result.stdout


def test_it_refuses_a_backend_list_with_a_bad_field_at_start() -> None:
    result = _load_settings(
        POLICYDESK_SECRET_KEY="k" * 50,
        POLICYDESK_AUDIT_HMAC_KEY="a" * 50,
        POLICYDESK_LLM_BACKENDS='[{"kind":"openai","base_url":"http://gpu:8000/v1"}]',
    )
    assert result.returncode != 0
    assert "POLICYDESK_LLM_BACKENDS[0].model: is required" in result.stderr


def test_it_refuses_to_start_with_a_malformed_setting() -> None:
    result = _load_settings(
        POLICYDESK_SECRET_KEY="k" * 50,
        POLICYDESK_AUDIT_HMAC_KEY="a" * 50,
        POLICYDESK_WS_MAX_MESSAGE_BYTES="lots",
    )
    assert result.returncode != 0
    assert "POLICYDESK_WS_MAX_MESSAGE_BYTES='lots' is not an integer" in result.stderr


LLM_CONFIG_ERRORS = [
    ('{"name":"x"}', "must be a non-empty JSON list"),
    ('[{"kind":"grpc","base_url":"http://a","model":"m"}]', "[0].kind"),
    ('[{"kind":"openai","model":"m"}]', "[0].base_url: is required"),
    ('[{"kind":"openai","base_url":"ftp://a","model":"m"}]', "[0].base_url: must be an http(s) URL"),
    ('[{"kind":"ollama","base_url":"http://a"}]', "[0].model: is required"),
    (
        '[{"kind":"local"},{"kind":"openai","base_url":"http://a","model":"m","idle_timeout":-1}]',
        "[1].idle_timeout",
    ),
    ('[{"kind":"local","max_concurrency":2.5}]', "[0].max_concurrency: must be a whole number"),
    ('[{"kind":"local","temprature":0.1}]', "[0].temprature: unknown field"),
    ('[{"kind":"local"},{"kind":"local"}]', "[1].name: 'local' is used twice"),
    (
        '[{"kind":"openai","base_url":"http://a","model":"m","api_key_env":"NO_SUCH_KEY_VAR"}]',
        "[0].api_key_env",
    ),
    ('[{"kind":"local","idle_timeout":1,"stream_interval":1}]', "[0].stream_interval"),
]


@pytest.mark.parametrize(("raw", "message"), LLM_CONFIG_ERRORS)
def test_an_invalid_llm_backend_list_names_the_bad_field(raw: str, message: str) -> None:
    from llm.config import BackendDefaults, parse_backends

    with pytest.raises(ImproperlyConfigured) as error:
        parse_backends(json.loads(raw), defaults=BackendDefaults(), local_url="http://127.0.0.1:1/v1")
    assert message in str(error.value)


def test_backend_fields_default_to_the_global_settings() -> None:
    from llm.config import BackendDefaults, parse_backends

    raw = [{"name": "v", "kind": "openai", "base_url": "http://gpu:8000/v1/", "model": "q", "max_tokens": 64}]
    (backend,) = parse_backends(raw, defaults=BackendDefaults(idle_timeout=7.0), local_url="http://x/v1")
    assert backend.idle_timeout == 7.0 and backend.max_tokens == 64
    assert backend.base_url == "http://gpu:8000/v1"
