"""`python -m devserver up|down|status|run|test`: see devserver/embedded.py."""

from __future__ import annotations

import sys

from devserver.embedded import main

sys.exit(main())
