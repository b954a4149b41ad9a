"""Daphne, started as `python -m core.daphne` with Daphne's own arguments, with an access log
that never carries a query string.

Daphne's access log writes each request's full path to stdout; a query string can hold an
e-mail address or a card number typed into a search box, and that log does not pass through
the logging filter (privacy/logging.py). Here the query string is left out and the path is
scrubbed like any log line.
"""

from __future__ import annotations

import datetime
import sys
from typing import Any

from daphne import cli
from daphne.access import AccessLogGenerator


class ScrubbedAccessLog(AccessLogGenerator):
    def write_entry(
        self,
        host: Any,
        date: datetime.datetime,
        request: str,
        status: Any = None,
        length: Any = None,
        ident: Any = None,
        user: Any = None,
    ) -> None:
        super().write_entry(host, date, scrub_request(request), status, length, ident, user)


def scrub_request(request: str) -> str:
    """ "GET /audit/?q=jane@x.example" → "GET /audit/?…": the path stays, the query does not."""
    from privacy.logging import scrub

    head, question_mark, _query = request.partition("?")
    return scrub(head) + ("?…" if question_mark else "")


def main() -> None:
    if any(arg.startswith("--proxy-headers") for arg in sys.argv[1:]):
        # Daphne's own reading takes the left-most X-Forwarded-For, which the client writes.
        sys.exit(
            "core.daphne: --proxy-headers is refused; set POLICYDESK_TRUSTED_PROXIES to the proxies in "
            "front instead (docs/audit-and-security.md)"
        )
    cli.AccessLogGenerator = ScrubbedAccessLog
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
