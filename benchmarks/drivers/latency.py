"""The fixed-rate latency probe shared by the clients in the latency runs.

Records are sent on a schedule (record ``i`` is due ``i / rate`` seconds after the start); the
time of each ``send()`` call and of its delivery callback are kept per record, and latency is
their difference. The first ``warmup`` records (connections, first batches) are left out of the
percentiles.
"""
from __future__ import annotations

import statistics
import time
from array import array
from collections.abc import Callable

__all__ = ["LatencyProbe"]

# indexes into statistics.quantiles(n=1000): the 500th, 990th and 999th permille
PERCENTILES = {"p50": 499, "p99": 989, "p99.9": 998}


class LatencyProbe:
    def __init__(self, records: int, warmup: int) -> None:
        self.records = records
        self.warmup = warmup
        self._sent_ns = array("q", bytes(8 * records))
        # written by the delivery callbacks (kengine's sender thread, or confluent's poll())
        self._acked_ns = array("q", bytes(8 * records))
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
        measured = zip(self._sent_ns[self.warmup:], self._acked_ns[self.warmup:], strict=True)
        lat_us = [(acked - sent) / 1000.0 for sent, acked in measured if acked]
        missing = self.records - self.warmup - len(lat_us)
        if len(lat_us) < 2:
            raise RuntimeError(f"only {len(lat_us)} of {self.records - self.warmup} measured "
                               "records were delivered: no percentiles")
        # linear interpolation between closest ranks, as numpy.percentile does by default
        permille = statistics.quantiles(lat_us, n=1000, method="inclusive")
        out = {name: permille[i] for name, i in PERCENTILES.items()}
        out["max"] = max(lat_us)
        out["missing"] = float(missing)
        return out
