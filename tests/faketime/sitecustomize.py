"""Loaded (through PYTHONPATH) by every Python process of `make unit-faketime` only.

The suite runs under libfaketime to prove that no test depends on the day it
runs (DESIGN §6). Debian's libfaketime 0.9.10 has two bugs that are not ours:
with the monotonic clock faked, Python's timed lock waits (sem_clockwait)
never return, so FAKETIME_DONT_FAKE_MONOTONIC=1 is set; with that set, its
clock_nanosleep wrapper turns Python's absolute CLOCK_MONOTONIC deadline into
an invalid time, and every time.sleep() fails with EINVAL. A sleep is a wait
for nothing: waiting on an Event that is never set sleeps correctly and goes
through sem_clockwait, which works. Nothing else is changed.
"""

from __future__ import annotations

import os
import threading
import time

if "faketime" in os.environ.get("LD_PRELOAD", "") and os.environ.get(
    "FAKETIME_DONT_FAKE_MONOTONIC"
):
    _never = threading.Event()

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        _never.wait(seconds)

    time.sleep = _sleep
