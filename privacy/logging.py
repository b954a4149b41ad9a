"""The last line of defence: a logging filter that scrubs PII-shaped text from every record.

Log calls carry ids and measurements, never message text; this filter catches the mistake
(an exception message quoting user input, a third-party library logging a payload). It uses
the recognizers' own regexes (privacy.recognizers.scrub_patterns), not a second copy of them;
running NER on every log line would cost more than it saves.
"""

from __future__ import annotations

import logging
import re
from functools import cache


@cache
def _combined() -> list[tuple[str, re.Pattern[str]]]:
    from django.conf import settings

    from privacy.recognizers import scrub_patterns

    return scrub_patterns(employee_id_pattern=settings.EMPLOYEE_ID_PATTERN)


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
