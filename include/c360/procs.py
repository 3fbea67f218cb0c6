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


def group_alive(pgid: int) -> bool:
    """True while any process of the group ``pgid`` is left (the leader may be gone while what it spawned is
    not)."""
    alive(pgid)  # reap the leader if it is our exited child: a zombie still counts as a member
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: someone else's group, not ours to stop
        return False


def stop_group(pid: int, grace_s: float = 30, reap_s: float = 10) -> bool:
    """SIGTERM the process group led by ``pid`` (the process and what it spawned), SIGKILL after ``grace_s``;
    True if any of it was running.

    The whole group is signalled even when its leader already died, and the call returns once no member is
    left (or ``reap_s`` after the SIGKILL): a process that held files open (e.g. deleted Spark spill files
    after a disk-full write) has let go of them when this returns. The caller's duty: ``pid`` must be the
    leader of a group c360 started (``start_new_session=True``), never a pid that may have been reused.
    """
    if not group_alive(pid):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_alive(pid):
        if time.monotonic() > deadline:
            _signal_group(pid, signal.SIGKILL)
            reap_deadline = time.monotonic() + reap_s
            while group_alive(pid) and time.monotonic() < reap_deadline:
                time.sleep(0.1)
            break
        time.sleep(0.2)
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # gone in the meantime
        pass
