"""The fixed-rate latency probe shared by the clients in the latency runs.

Records are sent on a schedule (record ``i`` is due ``i / rate`` seconds after the start); the
time of each ``send()`` call and of its delivery callback are kept per record, and latency is
their difference. The first ``warmup`` records (connections, first batches) are left out of the
percentiles.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

__all__ = ["LatencyProbe"]

PERCENTILES = {"p50": 50.0, "p99": 99.0, "p99.9": 99.9}


class LatencyProbe:
    def __init__(self, records: int, warmup: int) -> None:
        self.records = records
        self.warmup = warmup
        self._sent_ns = np.zeros(records, dtype=np.int64)
        # written by the delivery callbacks (kengine's sender thread, or confluent's poll())
        self._acked_ns = np.zeros(records, dtype=np.int64)
        self.errors = 0

    def delivered(self, index: int, error: object, _detail: object = None) -> None:
        """The delivery callback of record ``index``: bind the index with functools.partial;
        the client then passes its error (None on success) and its metadata or message."""
        self._acked_ns[index] = time.perf_counter_ns()
        if error is not None:
            self.errors += 1

    def run(self, rate_per_s: int, send: Callable[[int], object],
            idle: Callable[[float], object]) -> float:
        """Sends every record on schedule with ``send(i)``; between due records calls
        ``idle(seconds until the next one)``. Returns the seconds the sending took."""
        period_ns = 1e9 / rate_per_s
        sent_ns = self._sent_ns
        clock = time.perf_counter_ns
        start = clock()
        i = 0
        while i < self.records:
            due = min(self.records, int((clock() - start) / period_ns) + 1)
            while i < due:
                sent_ns[i] = clock()
                send(i)
                i += 1
            idle(max(0.0, (start + i * period_ns - clock()) / 1e9))
        return (clock() - start) / 1e9

    def percentiles_us(self) -> dict[str, float]:
        """p50/p99/p99.9/max of the measured records, in microseconds; ``missing`` counts
        measured records without a delivery callback (should be 0 after a flush)."""
        acked = self._acked_ns[self.warmup:]
        sent = self._sent_ns[self.warmup:]
        done = acked > 0
        lat_us = (acked[done] - sent[done]) / 1000.0
        out = {name: float(np.percentile(lat_us, q)) for name, q in PERCENTILES.items()}
        out["max"] = float(lat_us.max())
        out["missing"] = float(np.count_nonzero(~done))
        return out
