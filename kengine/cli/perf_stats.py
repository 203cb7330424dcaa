"""What ``kengine perf`` measures and prints: Java ``ProducerPerformance.Stats`` with its exact
output lines, a window line every 5 s and a total line at the end.

Latencies are whole milliseconds from send to acknowledgement. Percentiles come from an exact
count per millisecond (Java samples at most 500,000 latencies and sorts them; the values it
picks are the same: the one at position ``int(q * n)`` of the sorted latencies).

Not thread-safe by design: one thread (the one delivery reports arrive on) records; others
only read ``count`` for progress.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

__all__ = ["QUANTILES", "PerfStats"]

QUANTILES = (0.5, 0.95, 0.99, 0.999)
_MB = 1024.0 * 1024.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class PerfStats:
    """``print_line`` receives each window line (and, from a steady-state stats object, the
    "In steady state." line)."""

    def __init__(self, print_line: Callable[[str], None], *, steady_state: bool = False,
                 reporting_interval_ms: int = 5000, clock_ms: Callable[[], int] = wall_ms) -> None:
        self._print = print_line
        self._clock = clock_ms
        self.steady_state = steady_state
        self._interval_ms = reporting_interval_ms
        self.start_ms = clock_ms()
        self.count = 0
        self.bytes = 0
        self.total_latency_ms = 0
        self.max_latency_ms = 0
        self.latency_counts: dict[int, int] = {}    # latency ms -> records
        self.suppress_printing = False
        self._window_start_ms = self.start_ms
        self._window_count = 0
        self._window_bytes = 0
        self._window_latency_ms = 0
        self._window_max_ms = 0

    def record(self, latency_ms: int, nbytes: int, now_ms: int, records: int = 1) -> None:
        """``records`` acknowledged at ``now_ms``, each after ``latency_ms``, ``nbytes``
        bytes of payload in all."""
        self.count += records
        self.bytes += nbytes
        self.total_latency_ms += latency_ms * records
        if latency_ms > self.max_latency_ms:
            self.max_latency_ms = latency_ms
        self.latency_counts[latency_ms] = self.latency_counts.get(latency_ms, 0) + records
        self._window_count += records
        self._window_bytes += nbytes
        self._window_latency_ms += latency_ms * records
        if latency_ms > self._window_max_ms:
            self._window_max_ms = latency_ms
        if now_ms - self._window_start_ms >= self._interval_ms:
            if self.steady_state and self.count == self._window_count:
                self._print("In steady state.")
            if not self.suppress_printing:
                self._print(self.window_line(now_ms))
            self._window_start_ms = now_ms
            self._window_count = self._window_bytes = 0
            self._window_latency_ms = self._window_max_ms = 0

    def window_line(self, now_ms: int) -> str:
        elapsed = max(now_ms - self._window_start_ms, 1)
        n = self._window_count
        return (f"{n} records sent, {1000.0 * n / elapsed:.1f} records/sec "
                f"({1000.0 * self._window_bytes / elapsed / _MB:.2f} MB/sec), "
                f"{self._window_latency_ms / n if n else float('nan'):.1f} ms avg latency, "
                f"{float(self._window_max_ms):.1f} ms max latency.")

    def percentiles(self) -> list[int]:
        """The latency at each of QUANTILES (0 when nothing was recorded)."""
        if not self.count:
            return [0] * len(QUANTILES)
        order = sorted(self.latency_counts.items())
        out = []
        for q in QUANTILES:
            rank = min(int(q * self.count), self.count - 1)
            seen = 0
            for latency, n in order:
                seen += n
                if seen > rank:
                    out.append(latency)
                    break
        return out

    def summary(self, now_ms: int | None = None) -> dict[str, Any]:
        """The final figures, for the total line and --json."""
        now = self._clock() if now_ms is None else now_ms
        elapsed = max(now - self.start_ms, 1)
        p50, p95, p99, p999 = self.percentiles()
        return {
            "records": self.count,
            "steady_state": self.steady_state,
            "elapsed_ms": elapsed,
            "records_per_sec": 1000.0 * self.count / elapsed,
            "mb_per_sec": 1000.0 * self.bytes / elapsed / _MB,
            "avg_latency_ms": self.total_latency_ms / self.count if self.count else float("nan"),
            "max_latency_ms": float(self.max_latency_ms),
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "p999_ms": p999,
        }

    @staticmethod
    def total_line(s: dict[str, Any]) -> str:
        avg = "NaN" if math.isnan(s["avg_latency_ms"]) else f"{s['avg_latency_ms']:.2f}"
        return (f"{s['records']}{' steady state' if s['steady_state'] else ''} records sent, "
                f"{s['records_per_sec']:f} records/sec ({s['mb_per_sec']:.2f} MB/sec), "
                f"{avg} ms avg latency, {s['max_latency_ms']:.2f} ms max "
                f"latency, {s['p50_ms']} ms 50th, {s['p95_ms']} ms 95th, {s['p99_ms']} ms 99th, "
                f"{s['p999_ms']} ms 99.9th.")
