"""`manage.py evaluate_answers`: the mode switch, fact-level recall and the breakdowns by
phrasing and dev split (the pipeline it drives is tested in test_answers.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings

from llm.config import BackendConfig
from tests.test_chat import employee

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["employee"]

CASES = [
    {
        "question": "How many days of paid annual leave do full-time employees receive?",
        "sources": ["leave-policy.md"],
        "facts": ["20 days", "a fact no policy holds"],
        "lang": "en",
        "kind": "multi",
        "phrasing": "keyword",
        "split": "tune",
    },
    {
        "question": "What is the dress code for the office?",
        "sources": [],
        "facts": [],
        "lang": "en",
        "kind": "unanswerable",
        "phrasing": "paraphrase",
        "near_miss": False,
        "split": "check",
    },
]


def evaluate(golden: Path, *args: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    # Every backend is down (nothing listens on port 9), and configured for evidence mode.
    down = BackendConfig(
        name="local", kind="local", base_url="http://127.0.0.1:9/v1", model="m", connect_timeout=0.2
    )
    out = io.StringIO()
    with override_settings(LLM_BACKENDS=(down,), LLM_PROBE_INTERVAL=0):
        call_command("evaluate_answers", str(golden), "--user", "emp", *args, stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return lines[:-1], lines[-1]


def test_it_answers_in_the_mode_asked_whatever_the_backend_is_configured_for(
    employee: User, tmp_path: Path
) -> None:
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps(case) + "\n" for case in CASES))
    per_question, totals = evaluate(golden, "--mode", "generate")
    assert per_question[0]["mode"] == "generate" and totals["mode"] == "generate"
    per_question, totals = evaluate(golden, "--mode", "evidence")
    assert per_question[0]["mode"] == "evidence" and totals["mode"] == "evidence"
    _, configured = evaluate(golden)
    assert configured["mode"] == "configured"


def test_it_counts_each_fact_and_breaks_totals_down_by_phrasing_and_split(
    employee: User, tmp_path: Path
) -> None:
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps(case) + "\n" for case in CASES))
    per_question, totals = evaluate(golden, "--mode", "evidence")
    assert (per_question[0]["facts_found"], per_question[0]["facts_total"]) == (1, 2)
    assert per_question[0]["facts_present"] is False, "not every fact is there"
    assert totals["facts_present"] == 0.0 and totals["facts_level"] == 0.5
    assert set(totals["by_phrasing"]) == {"keyword", "paraphrase"}
    assert set(totals["by_lang_phrasing"]) == {"en/keyword", "en/paraphrase"}
    assert totals["by_split"]["check"]["unanswerable_declined"] == 1.0
    assert totals["by_split"]["tune"]["facts_level"] == 0.5
    assert totals["near_miss_declined"] is None, "no near miss among the questions"
