"""Redaction on the real Presidio + spaCy + underthesea models, offline."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import psutil
import pytest
from django.core.management import call_command

from privacy.analysis import analyzer
from privacy.language import detect_language
from privacy.logging import RedactingFilter
from privacy.pool import pii_find_pooled, redaction_pool_size, redaction_pool_start, redaction_pool_stop
from privacy.services import PlaceholderVault, text_redact, vault_for

CASES = Path(__file__).resolve().parent.parent / "privacy" / "cases" / "redaction-cases.jsonl"

RECOGNIZED = [
    ("en", "Ask Maria Gonzalez about it.", "Maria Gonzalez", "PERSON"),
    ("en", "Write to j.doe@corp.internal today.", "j.doe@corp.internal", "EMAIL_ADDRESS"),
    ("en", "Call me on (415) 555-0132 please.", "(415) 555-0132", "PHONE_NUMBER"),
    ("en", "Card 4111 1111 1111 1111 was charged.", "4111 1111 1111 1111", "CREDIT_CARD"),
    ("en", "Pay GB82 WEST 1234 5698 7654 32 instead.", "GB82 WEST 1234 5698 7654 32", "IBAN_CODE"),
    ("en", "The SSN 123-45-6789 is on the form.", "123-45-6789", "US_SSN"),
    ("en", "My passport number is 912803456.", "912803456", "US_PASSPORT"),
    ("en", "My driver's license is D1234567.", "D1234567", "US_DRIVER_LICENSE"),
    ("en", "Blocked from 10.1.2.3 again.", "10.1.2.3", "IP_ADDRESS"),
    ("en", "I live at 742 Evergreen Terrace now.", "742 Evergreen Terrace", "LOCATION"),
    ("en", "I was born on 02/11/1984, am I eligible?", "02/11/1984", "DATE_OF_BIRTH"),
    ("en", "My id is EMP-104233.", "EMP-104233", "EMPLOYEE_ID"),
    ("vi", "Tôi là Nguyễn Văn An, tôi muốn nghỉ phép.", "Nguyễn Văn An", "PERSON"),
    ("vi", "Gọi tôi số 0903 123 456 nhé.", "0903 123 456", "PHONE_NUMBER"),
    ("vi", "Hoặc số +84 90 312 3456 cũng được.", "+84 90 312 3456", "PHONE_NUMBER"),
    ("vi", "Số CCCD của tôi là 079203001234.", "079203001234", "VN_CCCD"),
    ("vi", "CMND số 025123456 đã hết hạn.", "025123456", "VN_CMND"),
    ("vi", "Mã số thuế 8012345678 bị sai.", "8012345678", "VN_TAX_CODE"),
    ("vi", "Tôi ở số 12 đường Lý Thường Kiệt, quận 1.", "12 đường Lý Thường Kiệt", "LOCATION"),
]


@pytest.mark.parametrize(("language", "text", "value", "entity"), RECOGNIZED)
def test_each_recognizer_replaces_its_value_with_a_placeholder(
    language: str, text: str, value: str, entity: str
) -> None:
    redaction = text_redact(text=text)
    assert redaction.language == language
    assert value not in redaction.text
    assert f"<{entity}_1>" in redaction.text
    assert redaction.counts.get(entity, 0) >= 1


def test_policy_words_and_cities_are_not_redacted() -> None:
    for text in (
        "How many days of annual leave do I get in Singapore after 3 years?",
        "Chính sách làm việc từ xa ở văn phòng Hà Nội là gì?",
        "Can I expense a taxi from the airport to the Hanoi office on 12 March 2026?",
    ):
        assert text_redact(text=text).text == text


def test_english_ner_never_runs_on_vietnamese_text() -> None:
    # Capitalised Vietnamese words are not names, but the English model tags them.
    text = "Quy định về Làm việc từ xa tại Công ty."
    english_guess = analyzer().analyze(text, language="en")
    assert any(r.entity_type == "PERSON" for r in english_guess), "precondition: spaCy invents names here"
    assert detect_language(text) == "vi"
    assert text_redact(text=text).text == text


def test_placeholders_stay_the_same_across_turns_of_one_conversation() -> None:
    vault = PlaceholderVault(scope="conversation-1")
    first = text_redact(text="My manager John Smith rejected my leave.", vault=vault)
    second = text_redact(text="Can I escalate John Smith's decision to Mary Jones?", vault=vault)
    assert "<PERSON_1>" in first.text and "<PERSON_1>" in second.text
    assert "<PERSON_2>" in second.text
    # Persisting the vault keeps it consistent after a restart, and it holds digests only.
    stored = json.loads(json.dumps(vault.as_json()))
    assert "John" not in json.dumps(stored)
    third = text_redact(text="John Smith again.", vault=vault_for(scope="conversation-1", stored=stored))
    assert third.text.startswith("<PERSON_1>")


def test_another_conversation_numbers_its_own_placeholders() -> None:
    text_redact(text="Ask Mary Jones first.", vault=PlaceholderVault(scope="a"))
    other = text_redact(text="Then ask John Smith.", vault=PlaceholderVault(scope="b"))
    assert "<PERSON_1>" in other.text


def test_the_same_phone_number_written_two_ways_gets_one_placeholder() -> None:
    vault = PlaceholderVault(scope="c")
    text = text_redact(text="Số 0903 123 456 hoặc +84 903 123 456 đều là của tôi.", vault=vault).text
    assert text.count("<PHONE_NUMBER_1>") == 2


def test_placeholders_from_history_are_not_redacted_again() -> None:
    text = "Earlier I said <PERSON_1> was my manager."
    assert text_redact(text=text).text == text


def test_the_logging_filter_scrubs_pii_from_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.pii")
    logger.addHandler(handler)
    try:
        logger.warning("mail %s, phone 0903 123 456, ssn 123-45-6789, id KL-20431", "x.y@corp.example")
        try:
            raise ValueError("card 4111 1111 1111 1111 rejected")
        except ValueError:
            logger.exception("upstream failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    for raw in ("x.y@corp.example", "0903 123 456", "123-45-6789", "KL-20431", "4111 1111 1111 1111"):
        assert raw not in output
    assert "<EMAIL_ADDRESS>" in output and "ValueError" in output


def test_evaluate_redaction_reports_recall_leaks_over_redaction_and_latency() -> None:
    out = io.StringIO()
    call_command("evaluate_redaction", str(CASES), stdout=out)
    report = json.loads(out.getvalue())
    assert report["messages"] >= 60 and set(report["by_lang"]) == {"en", "vi"}
    assert report["recall"] >= 0.95
    assert report["over_redaction_per_100"] <= 5
    assert report["latency_ms"]["p95"] > 0


def test_evaluate_redaction_counts_a_leak(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    # "blue" is not PII to any recognizer, so it stays in the text: one leaked value.
    lines = [
        {"text": "My SSN is 123-45-6789.", "pii": [{"type": "US_SSN", "value": "123-45-6789"}]},
        {"text": "My favourite colour is blue.", "pii": [{"type": "OTHER", "value": "blue"}]},
    ]
    cases.write_text("\n".join(json.dumps(line) for line in lines))
    out = io.StringIO()
    call_command("evaluate_redaction", str(cases), stdout=out)
    report = json.loads(out.getvalue())
    assert report["recall"] == 0.5 and report["leaked"] == 1 and report["leaked_values"] == ["OTHER"]


def _redaction_workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())]


def test_answers_are_redacted_in_a_worker_process_and_a_killed_worker_is_replaced() -> None:
    text = "Ask Maria Garcia on +84 903 123 456 or maria.garcia@example.com about leave."
    inline = text_redact(text=text, vault=PlaceholderVault(scope="pool"))
    redaction_pool_start(processes=1)
    try:
        assert redaction_pool_size() == 1
        [worker] = _redaction_workers()
        pooled = text_redact(text=text, vault=PlaceholderVault(scope="pool"), find=pii_find_pooled)
        assert pooled.text == inline.text
        assert pooled.counts == {"PERSON": 1, "PHONE_NUMBER": 1, "EMAIL_ADDRESS": 1}

        worker.kill()
        worker.wait(10)
        # The answer in flight is redacted here instead; nothing goes out in clear.
        assert (
            text_redact(text=text, vault=PlaceholderVault(scope="pool"), find=pii_find_pooled).text
            == inline.text
        )
        deadline = time.monotonic() + 60
        while not (redaction_pool_size() == 1 and _redaction_workers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        [replacement] = _redaction_workers()
        assert replacement.pid != worker.pid
        assert (
            text_redact(text=text, vault=PlaceholderVault(scope="pool"), find=pii_find_pooled).text
            == inline.text
        )
    finally:
        redaction_pool_stop()
    assert redaction_pool_size() == 0 and not _redaction_workers()
