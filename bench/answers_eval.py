"""`manage.py evaluate_answers` on the kept handbook database (bench/devdb.py) with the real default
configuration: the embedded local model (SmolLM2 on llama.cpp) started for the run.

    .venv/bin/python -m bench.answers_eval GOLDEN [--mode evidence|generate] [--limit N]

Prints the totals only (`--quiet`): the dev set's check split and any hold-out are read as totals.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from bench.common import kept_django
from bench.devdb import DEFAULT_DATA_DIR


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("golden", type=Path)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--mode", choices=["evidence", "generate"], default="evidence")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    golden = args.golden.resolve()
    with kept_django(args.data_dir, with_llm=True):
        from django.core.management import call_command

        out = io.StringIO()
        extra = ["--limit", str(args.limit)] if args.limit is not None else []
        call_command("evaluate_answers", str(golden), "--quiet", "--mode", args.mode, *extra, stdout=out)
        print(json.dumps(json.loads(out.getvalue().splitlines()[-1]), ensure_ascii=False))


if __name__ == "__main__":
    main()
