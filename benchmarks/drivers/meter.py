"""Measures a produce window inside a client's process: wall time, CPU time of every thread
(``getrusage(RUSAGE_SELF)``: librdkafka's threads and kengine's sender included), and memory."""
from __future__ import annotations

import resource
import time
from pathlib import Path

from benchmarks.spec import RunResult

__all__ = ["Meter", "peak_rss_bytes", "rss_bytes"]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line (the benchmarks need Linux)")


def rss_bytes() -> int:
    """Resident set size now."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Highest resident set size of the process so far."""
    return _status_kib("VmHWM") * 1024


class Meter:
    """``start()`` when the first measured record is about to be sent, ``stop()`` once the last
    one is acknowledged; ``result()`` then describes the window."""

    def __init__(self) -> None:
        self._wall_start_s = self._wall_stop_s = 0.0
        self._usage_start: resource.struct_rusage | None = None
        self._usage_stop: resource.struct_rusage | None = None
        self._rss_start_bytes = 0

    def start(self) -> None:
        self._rss_start_bytes = rss_bytes()
        self._usage_start = resource.getrusage(resource.RUSAGE_SELF)
        self._wall_start_s = time.perf_counter()

    def stop(self) -> None:
        self._wall_stop_s = time.perf_counter()
        self._usage_stop = resource.getrusage(resource.RUSAGE_SELF)

    def result(self, records: int, *, client_version: str, delivery_errors: int = 0,
               latency_us: dict[str, float] | None = None) -> RunResult:
        if self._usage_start is None or self._usage_stop is None:
            raise RuntimeError("Meter.result() before start() and stop()")
        return RunResult(
            records=records,
            window_s=self._wall_stop_s - self._wall_start_s,
            cpu_user_s=self._usage_stop.ru_utime - self._usage_start.ru_utime,
            cpu_system_s=self._usage_stop.ru_stime - self._usage_start.ru_stime,
            rss_start_bytes=self._rss_start_bytes,
            rss_peak_bytes=peak_rss_bytes(),
            delivery_errors=delivery_errors,
            client_version=client_version,
            latency_us=latency_us or {},
        )
