"""Who trains a run: an id for this process that other processes can check.

`hostname:pid:start` names a process uniquely even when the pid is reused later; a process on the
same host can tell that another one is gone (its pid no longer runs, or runs another program
started later), which is how a restarted server fails its own interrupted runs at once instead of
waiting for their heartbeat to go stale.
"""
from __future__ import annotations

import os
import socket
import time

_START = int(time.time())


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_START}"


def is_dead_here(worker: str) -> bool:
    """True when `worker` is a process of this host that no longer runs."""
    try:
        host, pid, started = worker.rsplit(":", 2)
        pid_i, started_i = int(pid), int(started)
    except ValueError:
        return False  # not an id of ours (e.g. empty): leave it to the heartbeat
    if host != socket.gethostname():
        return False
    if (pid_i, started_i) == (os.getpid(), _START):
        return False
    try:
        os.kill(pid_i, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    # The pid runs: the same process only if it started no later than the id says.
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid_i}/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + start_ticks / ticks > started_i + 1
    except (OSError, ValueError, StopIteration):
        return False
