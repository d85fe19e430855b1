"""Processes named by PID and start time (a reused PID is not taken for a dead process), and pool workers that
watch the command that started them: ``qrl study`` and ``qrl tune`` workers exit once it is gone, and a
study's workers register so that the next ``qrl study`` of the folder waits for the orphans of a killed one."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from qrl.errors import QRLError


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux; empty elsewhere or when gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def process_start(pid: int) -> str:
    """A process's start time (Linux ``/proc``; empty elsewhere): with its PID it names one process."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def this_process() -> str:
    """This process as a ``PID START`` line, as lock and registration files hold it (read by :func:`holder`)."""
    return f"{os.getpid()} {process_start(os.getpid())}\n"


def process_alive(pid: int, start: str = "") -> bool:
    """Whether the process ``pid`` (started at ``start``, if known) is still running (a zombie, exited but not
    yet reaped by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False
    now = fields[19] if len(fields) > 19 else ""
    return not (start and now and start != now)


def watch_parent(parent_pid: int, register: str | None = None, period_s: float = 1.0) -> None:
    """Pool-worker initializer: exit when the command that started the pool is gone (a killed command's workers
    would otherwise train on as orphans). With ``register`` (a folder), the worker's ``PID START`` is kept in
    ``register/<pid>`` while it lives, for :func:`wait_for_workers`."""
    mine = None
    if register is not None:
        Path(register).mkdir(parents=True, exist_ok=True)
        mine = Path(register) / str(os.getpid())
        mine.write_text(this_process())

    def watch() -> None:
        while True:
            time.sleep(period_s)
            if os.getppid() != parent_pid:
                if mine is not None:
                    with contextlib.suppress(OSError):
                        mine.unlink()
                os._exit(1)

    threading.Thread(target=watch, name="qrl-parent-watch", daemon=True).start()


def holder(path: Path) -> int | None:
    """The live process a ``PID START`` file names (a study's lock, a registered worker): its PID; ``-1`` for a
    file still being written (unreadable, under 5 s old); ``None`` if that process is gone or there is no file."""
    try:
        pid, *start = path.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        if path.exists() and time.time() - path.stat().st_mtime < 5:
            return -1
        return None
    return pid if process_alive(pid, start[0] if start else "") else None  # a reused PID is not the holder


def registered_workers(register: Path) -> list[int]:
    """The PIDs of the live workers registered in ``register`` (see :func:`watch_parent`; ``-1`` for one
    registering now); the files of workers that are gone are removed."""
    alive = []
    for path in sorted(Path(register).glob("*")) if Path(register).is_dir() else []:
        pid = holder(path)
        if pid is None:
            with contextlib.suppress(OSError):
                path.unlink()
        else:
            alive.append(pid)
    return alive


def wait_for_workers(register: Path, timeout_s: float, log: Callable[[str], None], what: str) -> None:
    """Wait until no worker registered in ``register`` lives (the orphans of a killed command, which exit
    within ``watch_parent``'s period); a :class:`QRLError` naming them after ``timeout_s``. The folder is
    removed once empty."""
    deadline, told = time.monotonic() + timeout_s, False
    while alive := registered_workers(register):
        if time.monotonic() > deadline:
            pids = " ".join(str(p) for p in alive if p > 0)
            raise QRLError(f"worker processes of an earlier {what} are still running after {timeout_s:g} s "
                           f"(PIDs {pids or 'unknown'}, registered in {register}); expected them to exit once "
                           f"their command was gone; try `kill {pids or 'PID'}`, then run the command again")
        if not told:
            log(f"{what}: waiting for {len(alive)} worker process(es) of an earlier invocation to exit")
            told = True
        time.sleep(0.2)
    with contextlib.suppress(OSError):
        Path(register).rmdir()
