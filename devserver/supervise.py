"""`make run` keeps what it started running: a process that exits is started again.

One dead Celery worker used to stop everything (Daphne, beat, PostgreSQL, Redis, the LLM). Now a
process that exits is logged and started again after a back-off (1 s, doubling up to 60 s, back
to 1 s once it has stayed up for a minute), and an embedded service whose process is gone is
started again on its old port (devserver.embedded.service_port).

Each process writes to its own log file (`<log_dir>/<name>.log`, appended across restarts), so
the terminal shows only what a person needs: the URL, the logins and one line per process.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FIRST_DELAY = 1.0
MAX_DELAY = 60.0
HEALTHY_AFTER = 60.0  # seconds up before the back-off starts again from FIRST_DELAY


@dataclass
class Supervised:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = FIRST_DELAY
    start_after: float | None = None  # when a crashed process may start again
    restarts: int = 0

    @property
    def log_name(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") + ".log"


@dataclass
class Supervisor:
    env: dict[str, str]
    cwd: Path
    log_dir: Path
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    processes: list[Supervised] = field(default_factory=list)

    def add(self, name: str, command: list[str]) -> None:
        self.processes.append(Supervised(name, command))

    def start_all(self) -> None:
        for supervised in self.processes:
            self._start(supervised)

    def check(self, now: float | None = None) -> None:
        """Notice exits and start crashed processes once their back-off has passed."""
        now = time.monotonic() if now is None else now
        for supervised in self.processes:
            process = supervised.process
            if process is not None and process.poll() is not None:
                if now - supervised.started_at >= HEALTHY_AFTER:
                    supervised.delay = FIRST_DELAY
                self.log(
                    f"{supervised.name} exited with code {process.returncode}; "
                    f"starting it again in {supervised.delay:g} s (log: {self.log_file(supervised)})"
                )
                supervised.process, supervised.start_after = None, now + supervised.delay
                supervised.delay = min(supervised.delay * 2, MAX_DELAY)
            if (
                supervised.process is None
                and supervised.start_after is not None
                and now >= supervised.start_after
            ):
                supervised.restarts += 1
                self._start(supervised)

    def stop_all(self, timeout: float = 15.0) -> None:
        running = [s.process for s in self.processes if s.process is not None and s.process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()

    def log_file(self, supervised: Supervised) -> Path:
        return self.log_dir / supervised.log_name

    def _start(self, supervised: Supervised) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(supervised).open("ab") as output:  # the child keeps its own copy
            supervised.process = subprocess.Popen(
                supervised.command, cwd=self.cwd, env=self.env, stdout=output, stderr=subprocess.STDOUT
            )
        supervised.started_at, supervised.start_after = time.monotonic(), None
