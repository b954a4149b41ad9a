"""The test suite's settings: the app's own (config/settings.py, from the POLICYDESK_* variables
`python -m devserver test` sets) plus what only tests want."""

from __future__ import annotations

import os

# Tests never read a developer's .env: the launcher's variables are the whole configuration.
os.environ["POLICYDESK_ENV_FILE"] = "/dev/null"

from config.settings import *  # noqa: F403

# As healthchecks does: many tests make users, and the real hasher costs a third of a second each.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In-process tests redact inline; the pool has its own test, and the browser tests' Daphne (run
# with config.settings) uses it as production does.
REDACTION_PROCESSES = 0
