"""The background processes c360 starts (Airflow services, the Spark Connect server): each is the leader of
its own session, with its PID in ``.state/pids``."""

from __future__ import annotations

import os
import signal
import time


def alive(pid: int) -> bool:
    try:  # reap it first if it is our own exited child (a zombie still answers kill(pid, 0))
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop_group(pid: int, grace_s: float = 30) -> bool:
    """SIGTERM the process group led by ``pid`` (the process and what it spawned), SIGKILL after ``grace_s``;
    True if it was running."""
    if not alive(pid):
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    return True
