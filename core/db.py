"""Database connections around slow work."""

from __future__ import annotations

from django.db import connection


def release_db_connection() -> None:
    """Close this thread's connection before slow work (an LLM stream, embedding a document),
    unless a transaction still needs it: a pooled connection goes back to the pool instead of
    idling through the wait."""
    if not connection.in_atomic_block:
        connection.close()
