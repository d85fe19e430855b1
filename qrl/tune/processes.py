"""Which process runs a trial: PIDs with their start times (so a reused PID is not taken for the dead
process), and the pool workers' watch on the `qrl tune` process that started them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def process_start(pid: int) -> str:
    """A process's start time (Linux ``/proc``; empty elsewhere): with its PID it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, start: str = "") -> bool:
    """Whether the process ``pid`` (started at ``start``, if known) is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = process_start(pid)
    return not (start and now and start != now)


def watch_parent(parent_pid: int, period_s: float = 1.0) -> None:
    """Pool-worker initializer: exit when the `qrl tune` process is gone (a killed command's workers would
    otherwise train on as orphans); the trial left running is failed by the next `qrl tune`."""

    def watch() -> None:
        while True:
            time.sleep(period_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="qrl-parent-watch", daemon=True).start()
