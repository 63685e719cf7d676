"""The shared bandwidth limit, on an injected clock."""

from __future__ import annotations

from dockd.replicate.throttle import Throttle


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_no_limit_never_waits() -> None:
    clock = _Clock()
    throttle = Throttle(0, clock.monotonic, clock.sleep)
    assert throttle.take(1 << 30) == 0.0 and clock.slept == []


def test_bytes_are_spread_at_the_rate() -> None:
    clock = _Clock()
    throttle = Throttle(1000, clock.monotonic, clock.sleep)
    for _ in range(10):
        throttle.take(500)
    # 5,000 bytes at 1,000 B/s: the last piece starts 4.5 s after the first
    # (the first second of credit is idle time, which cannot pile up).
    assert abs(clock.now - 100.0 - 4.5) < 1e-9


def test_idle_time_gives_at_most_one_second_of_burst() -> None:
    clock = _Clock()
    throttle = Throttle(1000, clock.monotonic, clock.sleep)
    clock.now += 3600  # an hour idle
    throttle.take(1000)
    throttle.take(1000)
    throttle.take(1000)
    # One second of credit, then the rate: 3,000 bytes take 1 s more than 2 s.
    assert abs(sum(clock.slept) - 1.0) < 1e-9
