"""`make run`'s supervisor, on real processes: a crashed one is started again after a growing
back-off, the others are left alone, and stopping ends them all."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from devserver.supervise import FIRST_DELAY, Supervisor


def test_a_crashed_process_is_started_again_with_back_off_and_the_others_keep_running(tmp_path: Path) -> None:
    lines: list[str] = []
    supervisor = Supervisor(env=dict(os.environ), cwd=tmp_path, log_dir=tmp_path / "logs", log=lines.append)
    supervisor.add("crasher", [sys.executable, "-c", "import sys; print('crashing'); sys.exit(3)"])
    supervisor.add("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start_all()
    crasher, steady = supervisor.processes
    steady_pid = steady.process.pid if steady.process else None
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and crasher.restarts < 2:
            supervisor.check()
            time.sleep(0.05)
        assert crasher.restarts >= 2, lines
        assert lines[0].startswith(f"crasher exited with code 3; starting it again in {FIRST_DELAY:g} s")
        assert f"starting it again in {FIRST_DELAY * 2:g} s" in lines[1], "the back-off doubles"
        assert (
            steady.process is not None and steady.process.pid == steady_pid and steady.process.poll() is None
        )
    finally:
        supervisor.stop_all(timeout=5)
    assert all(s.process is None or s.process.poll() is not None for s in supervisor.processes)
    # Each process's output goes to its own log file, kept across restarts.
    assert (tmp_path / "logs" / "crasher.log").read_text().count("crashing") >= 2
