"""What /proc says about a process, for the benchmarks (no dockd, no test helpers)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def children(proc: str) -> list[int]:
    """Child pids of every thread of the process at `proc` (/proc/PID, or
    /proc/self/fd/N for a pidfd-like /proc/PID directory fd): dockd forks
    from worker threads, and /proc/PID/children lists only the main one's."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"{proc}/task"):
            with contextlib.suppress(OSError):
                found += map(int, Path(f"{proc}/task/{task}/children").read_text().split())
    return found
