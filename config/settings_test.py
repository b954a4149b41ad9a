"""The test suite's settings: the app's own (config/settings.py, from the POLICYDESK_* variables
`python -m devserver test` sets) plus what only tests want."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Tests never read a developer's .env: the launcher's variables are the whole configuration.
os.environ["POLICYDESK_ENV_FILE"] = "/dev/null"

from config.settings import *  # noqa: F403

# As healthchecks does: many tests make users, and the real hasher costs a third of a second each.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In-process tests redact inline; the pool has its own test, and the browser tests' Daphne (run
# with config.settings) uses it as production does.
REDACTION_PROCESSES = 0
# Signed audit heads go to a file of this run's own, not the data dir: each run starts a fresh
# database, whose log would otherwise end "before" a previous run's heads (audit/heads.py).
AUDIT_HEAD_FILE = Path(tempfile.mkdtemp(prefix="policydesk-test-heads-")) / "signed-heads.jsonl"
