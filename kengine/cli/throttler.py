"""Kafka's ``ThroughputThrottler``: holds a sender to about a target number of things (records
or bytes) per second by sleeping, on average, 1/target seconds per thing, in sleeps of at
least 2 ms."""
from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ThroughputThrottler"]

_MIN_SLEEP_NS = 2_000_000


class ThroughputThrottler:
    """``target_per_sec`` < 0 never throttles. Between sends::

        if throttler.should_throttle(sent_so_far, now_ms):
            throttler.throttle()
    """

    def __init__(self, target_per_sec: float, start_ms: int, *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        if target_per_sec == 0:
            raise ValueError("a target throughput of 0 would never send; use -1 for no limit")
        self.target_per_sec = target_per_sec
        self._start_ms = start_ms
        self._sleep_ns_per_thing = int(1e9 / target_per_sec) if target_per_sec > 0 else 0
        self._deficit_ns = 0
        self._sleep = sleep
        self._clock_ns = clock_ns

    def should_throttle(self, amount_so_far: int, send_start_ms: int) -> bool:
        if self.target_per_sec < 0:
            return False
        elapsed_s = (send_start_ms - self._start_ms) / 1000.0
        return elapsed_s > 0 and amount_so_far / elapsed_s > self.target_per_sec

    def throttle(self, amount: int = 1) -> None:
        """Owes 1/target seconds of sleep per thing (``amount`` things at once for a bulk
        send) and sleeps once the debt reaches 2 ms."""
        self._deficit_ns += amount * self._sleep_ns_per_thing
        if self._deficit_ns < _MIN_SLEEP_NS:
            return
        started = self._clock_ns()
        remaining = self._deficit_ns
        while remaining > 0:
            self._sleep(remaining / 1e9)
            remaining = self._deficit_ns - (self._clock_ns() - started)
        self._deficit_ns = 0
