"""Trace ids that follow one question (or one HTTP request) through every log line.

A ContextVar survives `await`, asyncio tasks and asgiref's sync_to_async threads, so a
value set when a question arrives is still there when the audit event is written.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

trace_id_var: ContextVar[str] = ContextVar("trace_id", default="")
request_id_var: ContextVar[str] = ContextVar("request_id", default="")


def new_id() -> str:
    return uuid.uuid4().hex[:16]
