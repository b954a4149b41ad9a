"""The last line of defence: a logging filter that scrubs PII-shaped text from every record.

Log calls carry ids and measurements, never message text; this filter catches the mistake
(an exception message quoting user input, a third-party library logging a payload). It uses
the pattern recognizers only: running NER on every log line would cost more than it saves.
"""

from __future__ import annotations

import logging
import re
from functools import cache

_PATTERNS = [
    ("EMAIL_ADDRESS", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    ("CREDIT_CARD", r"\b(?:\d[ -]?){13,19}\b"),
    ("US_SSN", r"\b\d{3}-\d{2}-\d{4}\b"),
    ("IBAN_CODE", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b"),
    # International (+…) or trunk-prefixed (0…) numbers, and US (415) 555-0132 style.
    ("PHONE_NUMBER", r"(?<![\w+])(?:\+\d{1,3}[ .\-]?\d{2,4}|0\d{2,3})(?:[ .\-]?\d{2,4}){2,3}(?!\d)"),
    ("PHONE_NUMBER", r"(?<!\d)\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}(?!\d)"),
    ("VN_ID", r"\b\d{9}(?:\d{3})?\b"),
]


@cache
def _combined() -> list[tuple[str, re.Pattern[str]]]:
    from django.conf import settings

    patterns = [(name, re.compile(p)) for name, p in _PATTERNS]
    patterns.insert(0, ("EMPLOYEE_ID", re.compile(settings.EMPLOYEE_ID_PATTERN)))
    return patterns


def scrub(text: str) -> str:
    for name, pattern in _combined():
        text = pattern.sub(f"<{name}>", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not drop the record
            message = str(record.msg)
        record.msg, record.args = scrub(message), None
        if record.exc_info and record.exc_info[1] is not None:
            # Exception text is formatted later by the handler; scrub it now into exc_text.
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, scrub(value))
        return True


_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}
