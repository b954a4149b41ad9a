"""The company's today: dates in the company time zone (POLICYDESK_TIME_ZONE), which decide
which policy version is in effect. Retrieval compares stored dates with this day in SQL, so a
version scheduled for 1 July is answered from on 1 July with no job at midnight.

A test clock: POLICYDESK_TEST_CLOCK_FILE names a file holding an ISO date; while that file
holds one, that date is today (the browser scenario moves past a version's effective date by
rewriting it). Unset, as it is by default, the real clock is used. `manage.py evaluate_answers
--today` fixes the day for its own process with `clock_fixed`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)
_fixed: date | None = None


def company_today() -> date:
    """Today in the company time zone, or the test clock's day when one is set."""
    if _fixed is not None:
        return _fixed
    path = getattr(settings, "TEST_CLOCK_FILE", "")
    if path:
        override = _clock_file_day(Path(path))
        if override is not None:
            return override
    return timezone.localdate()


def _clock_file_day(path: Path) -> date | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        logger.warning("the test clock file does not hold an ISO date; using the real clock")
        return None


@contextmanager
def clock_fixed(day: date | None) -> Iterator[None]:
    """Today is `day` in this process while the block runs (None: the real clock)."""
    global _fixed
    before, _fixed = _fixed, day
    try:
        yield
    finally:
        _fixed = before
