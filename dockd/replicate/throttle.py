"""A shared byte-rate limit for all uploads of a dock (`replicate.bandwidth_limit`).

A token bucket: each upload takes its bytes before it sends them, and waits
while the bucket is empty, so that the uploads together stay under the
rate. The clock and the sleep are injected, so that it is tested without
waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    def __init__(
        self,
        rate: int,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate  # bytes per second; 0: no limit
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        # When the bytes taken so far will have been sent at `rate`.
        self._free_at = monotonic()

    def take(self, n: int) -> float:
        """Wait until `n` more bytes fit in the rate; return the seconds waited."""
        if self.rate <= 0 or n <= 0:
            return 0.0
        with self._lock:
            now = self._monotonic()
            # Idle time does not pile up into a burst of more than one second.
            start = max(self._free_at, now - 1.0)
            self._free_at = start + n / self.rate
            wait = max(0.0, start - now)
        if wait:
            self._sleep(wait)
        return wait
