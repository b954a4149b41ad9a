"""`python -m tests.oidc_provider PORT`: migrate the provider's throwaway database, then serve."""

from __future__ import annotations

import os
import sys

import django
from django.core.management import call_command


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("runserver", f"127.0.0.1:{sys.argv[1]}", use_reloader=False, verbosity=0)


if __name__ == "__main__":
    main()
