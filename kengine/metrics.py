"""Producer metrics with the Java client's names and meanings.

``Producer.metrics()`` returns a :class:`ProducerMetrics` snapshot: the client-level metrics of
Java's ``producer-metrics`` group at the top (``record-send-rate``, ``request-latency-avg``...),
``topics`` (``producer-topic-metrics``) and ``brokers`` (``producer-node-metrics``) breakdowns,
and latency percentiles that Java does not have. :data:`METRICS` gives every name's meaning.

Everything is counted per produce request or per batch, on the sender thread, never per
record. Rates, averages and maxima cover a sliding window of two 30 s samples, as Java's
defaults (``metrics.sample.window.ms``, ``metrics.num.samples``) do; ``*-total`` metrics count
since the producer started. An average or maximum with nothing recorded in the window is NaN,
as in Java.
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kengine_ext import monotonic_ms

if TYPE_CHECKING:
    from kengine_ext import BufferMemory, ProducerBatch

    from .errors import KafkaError
    from .network import NetworkClient

__all__ = ["CLIENT", "METRICS", "NODE", "NUM_SAMPLES", "PERCENTILES", "SAMPLE_WINDOW_MS", "TOPIC",
           "LogHistogram", "MetricInfo", "ProducerMetrics"]

_log = logging.getLogger("kengine.metrics")

#: Length of one sample of the sliding window (Java's metrics.sample.window.ms default).
SAMPLE_WINDOW_MS = 30_000
#: Samples in the window (Java's metrics.num.samples default).
NUM_SAMPLES = 2
#: The latency percentiles reported next to each histogram, as (suffix, quantile).
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))

_NAN = float("nan")
#: The blocking calls' time totals (Java's names), fed by Producer through add_call_time().
_CALL_TIMES = ("metadata-wait-time-ns-total", "flush-time-ns-total", "txn-init-time-ns-total",
               "txn-begin-time-ns-total", "txn-send-offsets-time-ns-total",
               "txn-commit-time-ns-total", "txn-abort-time-ns-total")


@dataclass(frozen=True)
class MetricInfo:
    """A metric's Java group (``producer-metrics``, ``producer-topic-metrics`` or
    ``producer-node-metrics``), what it means, and whether it only ever grows."""

    group: str
    description: str
    cumulative: bool = False


CLIENT = "producer-metrics"
TOPIC = "producer-topic-metrics"
NODE = "producer-node-metrics"


def _m(group: str, name: str, description: str,
       cumulative: bool = False) -> tuple[tuple[str, str], MetricInfo]:
    return (group, name), MetricInfo(group, description, cumulative)


def _percentiles(group: str, stem: str, what: str) -> list[tuple[tuple[str, str], MetricInfo]]:
    return [_m(group, f"{stem}-{suffix}",
               f"The {q * 100:g}th percentile of {what} in ms (log-bucketed: within 1/32)")
            for suffix, q in PERCENTILES]


#: Every metric a snapshot holds, by (group, name): client-level ones (``producer-metrics``),
#: per topic (``producer-topic-metrics``) and per broker (``producer-node-metrics``). Some
#: names repeat across groups, as in Java.
METRICS: dict[tuple[str, str], MetricInfo] = dict([
    _m(CLIENT, "record-send-rate", "The average number of records sent per second "
                                   "(counted per produce request, so retries count again)"),
    _m(CLIENT, "record-send-total", "The total number of records sent (counted per produce "
                                    "request, so retries count again)", True),
    _m(CLIENT, "record-error-rate", "The average per-second number of record sends that "
                                    "resulted in errors"),
    _m(CLIENT, "record-error-total", "The total number of record sends that resulted in errors",
       True),
    _m(CLIENT, "record-retry-rate", "The average per-second number of retried record sends"),
    _m(CLIENT, "record-retry-total", "The total number of retried record sends", True),
    _m(CLIENT, "batch-split-rate", "The average number of batch splits per second (batches "
                                   "the broker refused as too large, resent in smaller ones)"),
    _m(CLIENT, "batch-split-total", "The total number of batch splits", True),
    _m(CLIENT, "request-rate", "The number of produce requests sent per second"),
    _m(CLIENT, "request-total", "The total number of produce requests sent", True),
    _m(CLIENT, "request-latency-avg", "The average produce request latency in ms"),
    _m(CLIENT, "request-latency-max", "The maximum produce request latency in ms"),
    _m(CLIENT, "requests-in-flight", "The current number of produce requests awaiting a "
                                     "response"),
    _m(CLIENT, "outgoing-byte-rate", "The number of record batch bytes sent per second"),
    _m(CLIENT, "outgoing-byte-total", "The total number of record batch bytes sent", True),
    _m(CLIENT, "batch-size-avg", "The average number of bytes sent per partition per-request"),
    _m(CLIENT, "batch-size-max", "The max number of bytes sent per partition per-request"),
    _m(CLIENT, "compression-rate-avg", "The average compression rate of record batches, defined "
                                       "as the average ratio of the compressed batch size over "
                                       "the uncompressed size"),
    _m(CLIENT, "record-queue-time-avg", "The average time in ms record batches spent in the "
                                        "send buffer"),
    _m(CLIENT, "record-queue-time-max", "The maximum time in ms record batches spent in the "
                                        "send buffer"),
    _m(CLIENT, "records-per-request-avg", "The average number of records per request"),
    _m(CLIENT, "produce-throttle-time-avg", "The average time in ms a request was throttled by "
                                            "a broker"),
    _m(CLIENT, "produce-throttle-time-max", "The maximum time in ms a request was throttled by "
                                            "a broker"),
    _m(CLIENT, "buffer-total-bytes", "The maximum amount of buffer memory the client can use "
                                     "(buffer.memory)"),
    _m(CLIENT, "buffer-available-bytes", "The total amount of buffer memory that is not being "
                                         "used by queued or in-flight batches"),
    _m(CLIENT, "bufferpool-wait-ratio", "The fraction of time an appender waits for space "
                                        "allocation"),
    _m(CLIENT, "bufferpool-wait-time-ns-total", "The total time in ns an appender waits for "
                                                "space allocation", True),
    _m(CLIENT, "waiting-threads", "The number of user threads blocked waiting for buffer memory "
                                  "to enqueue their records"),
    _m(CLIENT, "connection-count", "The current number of active connections"),
    _m(CLIENT, "connection-creation-rate", "New connections established per second (ready: "
                                           "TCP, TLS, SASL and ApiVersions done)"),
    _m(CLIENT, "connection-creation-total", "The total number of new connections established",
       True),
    _m(CLIENT, "connection-close-rate", "Connections closed per second (of those established)"),
    _m(CLIENT, "connection-close-total", "The total number of connections closed (of those "
                                         "established)", True),
    _m(CLIENT, "incoming-byte-rate", "The number of bytes read from all brokers per second "
                                     "(responses, after TLS decryption)"),
    _m(CLIENT, "incoming-byte-total", "The total number of bytes read from all brokers", True),
    _m(CLIENT, "buffer-exhausted-rate", "The average per-second number of sends that failed "
                                        "because buffer.memory stayed full for max.block.ms (a "
                                        "send_many() or send_arrow() call counts once)"),
    _m(CLIENT, "buffer-exhausted-total", "The total number of sends that failed because "
                                         "buffer.memory stayed full for max.block.ms", True),
    _m(CLIENT, "request-size-avg", "The average size in bytes of the record batches of a "
                                   "produce request (Java counts the request's header too)"),
    _m(CLIENT, "request-size-max", "The maximum size in bytes of the record batches of a "
                                   "produce request"),
    _m(CLIENT, "record-size-avg", "The average record size in bytes (of the record batches "
                                  "sent: batch bytes over records)"),
    _m(CLIENT, "record-size-max", "The largest average record size of one batch sent, in bytes "
                                  "(sizes are known per batch, not per record)"),
    _m(CLIENT, "response-rate", "The number of produce responses received per second"),
    _m(CLIENT, "response-total", "The total number of produce responses received", True),
    _m(CLIENT, "metadata-age", "The age in seconds of the current producer metadata (since its "
                               "last full refresh; NaN before the first)"),
    _m(CLIENT, "metadata-wait-time-ns-total", "The total time in ns send() calls spent waiting "
                                              "for topic metadata", True),
    _m(CLIENT, "flush-time-ns-total", "The total time in ns spent in flush()", True),
    _m(CLIENT, "txn-init-time-ns-total", "The total time in ns spent in init_transactions()",
       True),
    _m(CLIENT, "txn-begin-time-ns-total", "The total time in ns spent in begin_transaction()",
       True),
    _m(CLIENT, "txn-send-offsets-time-ns-total", "The total time in ns spent in "
                                                 "send_offsets_to_transaction()", True),
    _m(CLIENT, "txn-commit-time-ns-total", "The total time in ns spent in "
                                           "commit_transaction()", True),
    _m(CLIENT, "txn-abort-time-ns-total", "The total time in ns spent in abort_transaction()",
       True),
    *_percentiles(CLIENT, "request-latency", "produce request latency"),
    *_percentiles(CLIENT, "record-queue-time", "the time record batches spent in the send "
                                               "buffer"),
    _m(TOPIC, "record-send-rate", "The average number of records sent per second for a topic"),
    _m(TOPIC, "record-send-total", "The total number of records sent for a topic", True),
    _m(TOPIC, "byte-rate", "The average number of bytes sent per second for a topic"),
    _m(TOPIC, "byte-total", "The total number of bytes sent for a topic", True),
    _m(TOPIC, "compression-rate", "The average compression rate of record batches for a topic, "
                                  "defined as the average ratio of the compressed batch size "
                                  "over the uncompressed size"),
    _m(TOPIC, "record-retry-rate", "The average per-second number of retried record sends for "
                                   "a topic"),
    _m(TOPIC, "record-retry-total", "The total number of retried record sends for a topic",
       True),
    _m(TOPIC, "record-error-rate", "The average per-second number of record sends that "
                                   "resulted in errors for a topic"),
    _m(TOPIC, "record-error-total", "The total number of record sends that resulted in errors "
                                    "for a topic", True),
    _m(NODE, "request-rate", "The number of produce requests sent per second to the broker"),
    _m(NODE, "request-total", "The total number of produce requests sent to the broker", True),
    _m(NODE, "request-latency-avg", "The average produce request latency in ms of the broker"),
    _m(NODE, "request-latency-max", "The maximum produce request latency in ms of the broker"),
    _m(NODE, "outgoing-byte-rate", "The number of record batch bytes sent per second to the "
                                   "broker"),
    _m(NODE, "outgoing-byte-total", "The total number of record batch bytes sent to the broker",
       True),
    _m(NODE, "produce-throttle-time-avg", "The average time in ms the broker throttled a "
                                          "request"),
    _m(NODE, "produce-throttle-time-max", "The maximum time in ms the broker throttled a "
                                          "request"),
    *_percentiles(NODE, "request-latency", "the broker's produce request latency"),
])


class LogHistogram:
    """Counts of non-negative integers in log-linear buckets, like HdrHistogram with two
    significant binary digits more: values below 64 exactly, larger ones in buckets 1/32 of
    their power of two wide, so a reported percentile is within ~3% of the true value whatever
    the range, in a few hundred counters. Not thread-safe."""

    __slots__ = ("count", "counts")

    _SUB_BITS = 5
    _SUB = 1 << _SUB_BITS          # buckets per power of two
    _EXACT = 2 * _SUB              # values below this have a bucket each

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0

    @classmethod
    def bucket(cls, value: int) -> int:
        if value < cls._EXACT:
            return max(0, value)
        shift = value.bit_length() - cls._SUB_BITS - 1
        return cls._EXACT + (shift - 1) * cls._SUB + ((value >> shift) - cls._SUB)

    @classmethod
    def bucket_high(cls, index: int) -> int:
        """The largest value that lands in bucket ``index``."""
        if index < cls._EXACT:
            return index
        shift = (index - cls._EXACT) // cls._SUB + 1
        mantissa = (index - cls._EXACT) % cls._SUB + cls._SUB
        return ((mantissa + 1) << shift) - 1

    def record(self, value: int, n: int = 1) -> None:
        b = self.bucket(value)
        self.counts[b] = self.counts.get(b, 0) + n
        self.count += n

    def merge(self, other: LogHistogram) -> None:
        for b, n in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + n
        self.count += other.count

    def clear(self) -> None:
        self.counts.clear()
        self.count = 0

    def percentiles(self, quantiles: Iterable[float]) -> list[float]:
        """The value at each quantile (the highest value of its bucket), NaN when empty."""
        qs = list(quantiles)
        if not self.count:
            return [_NAN] * len(qs)
        order = sorted(self.counts.items())
        out = []
        for q in qs:
            # the element at sorted position floor(q * n), as Java's perf tool picks it
            rank = min(int(q * self.count), self.count - 1)
            seen = 0
            for b, n in order:
                seen += n
                if seen > rank:
                    out.append(float(self.bucket_high(b)))
                    break
        return out


class _Sampled:
    """Count, sum and maximum of the values recorded in the last NUM_SAMPLES samples of
    SAMPLE_WINDOW_MS each (Java's SampledStat), an optional histogram of them, and all-time
    totals. Guarded by ProducerMetrics._lock."""

    __slots__ = (
        "_counts",
        "_created_ms",
        "_current",
        "_hists",
        "_maxes",
        "_starts",
        "_sums",
        "total",
        "total_count",
    )

    def __init__(self, now_ms: int, histogram: bool = False) -> None:
        self._starts = [now_ms] + [-(1 << 62)] * (NUM_SAMPLES - 1)
        self._counts = [0] * NUM_SAMPLES
        self._sums = [0.0] * NUM_SAMPLES
        self._maxes = [-math.inf] * NUM_SAMPLES
        self._hists = [LogHistogram() for _ in range(NUM_SAMPLES)] if histogram else None
        self._current = 0
        self._created_ms = now_ms
        self.total = 0.0            # sum of every value ever recorded
        self.total_count = 0        # values ever recorded

    def record(self, value: float, now_ms: int) -> None:
        i = self._current
        if now_ms - self._starts[i] >= SAMPLE_WINDOW_MS:
            i = self._roll(now_ms)
        self._counts[i] += 1
        self._sums[i] += value
        if value > self._maxes[i]:
            self._maxes[i] = value
        if self._hists is not None:
            self._hists[i].record(int(value))
        self.total += value
        self.total_count += 1

    def record_values(self, values: Sequence[float], now_ms: int) -> None:
        """record() of each value (a request's batches) in one call."""
        i = self._current
        if now_ms - self._starts[i] >= SAMPLE_WINDOW_MS:
            i = self._roll(now_ms)
        total = sum(values)
        top = max(values)
        self._counts[i] += len(values)
        self._sums[i] += total
        if top > self._maxes[i]:
            self._maxes[i] = top
        if self._hists is not None:
            hist = self._hists[i]
            for v in values:
                hist.record(int(v))
        self.total += total
        self.total_count += len(values)

    def _roll(self, now_ms: int) -> int:
        i = self._current = (self._current + 1) % NUM_SAMPLES
        self._starts[i] = now_ms
        self._counts[i] = 0
        self._sums[i] = 0.0
        self._maxes[i] = -math.inf
        if self._hists is not None:
            self._hists[i].clear()
        return i

    def _live(self, now_ms: int) -> list[int]:
        # Java purges samples older than the whole window before measuring
        return [i for i in range(NUM_SAMPLES)
                if now_ms - self._starts[i] < NUM_SAMPLES * SAMPLE_WINDOW_MS]

    def avg(self, now_ms: int) -> float:
        live = self._live(now_ms)
        count = sum(self._counts[i] for i in live)
        return sum(self._sums[i] for i in live) / count if count else _NAN

    def max(self, now_ms: int) -> float:
        live = [self._maxes[i] for i in self._live(now_ms) if self._counts[i]]
        return float(max(live)) if live else _NAN

    def rate(self, now_ms: int, of_count: bool = False) -> float:
        """Per second: the sum of the values (or their number) in the window over the window's
        length, which Java never lets fall below (NUM_SAMPLES - 1) samples, so a rate does not
        spike right after start."""
        live = self._live(now_ms)
        amount = sum((self._counts if of_count else self._sums)[i] for i in live)
        oldest = min((self._starts[i] for i in live), default=now_ms)
        elapsed_ms = now_ms - max(oldest, self._created_ms)
        full = elapsed_ms // SAMPLE_WINDOW_MS
        if full < NUM_SAMPLES - 1:
            elapsed_ms += (NUM_SAMPLES - 1 - full) * SAMPLE_WINDOW_MS
        return amount / (max(elapsed_ms, 1) / 1000.0)

    def percentiles(self, now_ms: int) -> list[float]:
        assert self._hists is not None
        merged = LogHistogram()
        for i in self._live(now_ms):
            merged.merge(self._hists[i])
        # a bucket's highest value may exceed every value recorded in it
        top = self.max(now_ms)
        return [min(v, top) for v in merged.percentiles(q for _, q in PERCENTILES)]


class _Total:
    """A running total kept by someone else (a count, bytes), turned into a rate by
    recording each increase when it is noticed. Guarded by the owner's lock."""

    __slots__ = ("seen", "_sampled")

    def __init__(self, now_ms: int) -> None:
        #: the highest total noticed (a total read mid-update may lag; it never goes back)
        self.seen = 0
        self._sampled = _Sampled(now_ms)

    def note(self, total: int, now_ms: int) -> None:
        if total > self.seen:
            self._sampled.record(total - self.seen, now_ms)
            self.seen = total

    def rate(self, now_ms: int) -> float:
        return self._sampled.rate(now_ms)


class _TopicStats:
    __slots__ = ("bytes", "compression", "errors", "records", "retries")

    def __init__(self, now_ms: int) -> None:
        self.records = _Sampled(now_ms)
        self.bytes = _Sampled(now_ms)
        self.compression = _Sampled(now_ms)
        self.retries = _Sampled(now_ms)
        self.errors = _Sampled(now_ms)

    def snapshot(self, now: int) -> dict[str, float]:
        return {
            "record-send-rate": self.records.rate(now),
            "record-send-total": int(self.records.total),
            "byte-rate": self.bytes.rate(now),
            "byte-total": int(self.bytes.total),
            "compression-rate": self.compression.avg(now),
            "record-retry-rate": self.retries.rate(now),
            "record-retry-total": int(self.retries.total),
            "record-error-rate": self.errors.rate(now),
            "record-error-total": int(self.errors.total),
        }


class _BrokerStats:
    __slots__ = ("latency", "requests", "throttle")

    def __init__(self, now_ms: int) -> None:
        self.requests = _Sampled(now_ms)            # one value per request: its batch bytes
        self.latency = _Sampled(now_ms, histogram=True)
        self.throttle = _Sampled(now_ms)

    def snapshot(self, now: int) -> dict[str, float]:
        out = {
            "request-rate": self.requests.rate(now, of_count=True),
            "request-total": self.requests.total_count,
            "request-latency-avg": self.latency.avg(now),
            "request-latency-max": self.latency.max(now),
            "outgoing-byte-rate": self.requests.rate(now),
            "outgoing-byte-total": int(self.requests.total),
            "produce-throttle-time-avg": self.throttle.avg(now),
            "produce-throttle-time-max": self.throttle.max(now),
        }
        for (suffix, _), value in zip(PERCENTILES, self.latency.percentiles(now), strict=True):
            out[f"request-latency-{suffix}"] = value
        return out


class ProducerMetrics:
    """The producer's metrics: fed by the sender thread's hooks (per request and per batch),
    read by any thread with :meth:`snapshot`; calls ``stats_callback(snapshot)`` every
    ``stats_interval_ms`` on the sender thread (:meth:`poll`).

    Hooks: ``on_request`` when a produce request is handed to a connection (its batches are
    sealed), ``on_response`` when it is answered or failed, ``on_batch_done`` when a batch
    finally fails (success is counted at send time, as in Java), ``on_retry`` when a batch is
    queued again, ``on_split`` when a batch the broker refused as too large is split."""

    def __init__(self, client_id: str, memory: BufferMemory, client: NetworkClient, *,
                 partitioner: Any = None,
                 stats_callback: Callable[[dict[str, Any]], None] | None = None,
                 stats_interval_ms: int = 0,
                 metadata_refreshed_ms: Callable[[], int] | None = None) -> None:
        self.client_id = client_id
        #: monotonic ms of the last full metadata refresh (0: none yet), for metadata-age
        self._metadata_refreshed_ms = metadata_refreshed_ms
        self._memory = memory
        self._client = client
        self._partitioner_metrics = getattr(partitioner, "metrics", None)
        if not callable(self._partitioner_metrics):
            self._partitioner_metrics = None
        self._stats_callback = stats_callback if stats_interval_ms > 0 else None
        self._stats_interval_ms = stats_interval_ms
        now = monotonic_ms()
        self._next_stats_ms = now + stats_interval_ms   # sender thread only
        # Everything below is guarded by _lock: hooks run on the sender thread, snapshots on
        # any thread. One acquisition per request or batch, never per record.
        self._lock = threading.Lock()
        self._records_per_request = _Sampled(now)
        self._requests = _Sampled(now)                 # one value per request: its batch bytes
        self._latency = _Sampled(now, histogram=True)
        self._batch_size = _Sampled(now)
        self._compression = _Sampled(now)
        self._queue_time = _Sampled(now, histogram=True)
        self._throttle = _Sampled(now)
        self._errors = _Sampled(now)
        self._retries = _Sampled(now)
        self._splits = _Sampled(now)                   # one value (1) per split batch
        self._memory_wait = _Sampled(now)              # ns blocked, attributed when noticed
        self._memory_wait_seen_ns = 0
        # counters kept elsewhere as running totals, sampled as they move (see _note_totals)
        self._created = _Total(now)         # connections established
        self._closed = _Total(now)          # connections closed
        self._incoming = _Total(now)        # bytes read from brokers
        self._exhausted = _Total(now)       # sends that gave up on buffer.memory
        self._in_flight = 0
        self._record_size = _Sampled(now)              # per batch: its bytes over its records
        self._responses = _Sampled(now)                # one value (1) per produce response
        #: the *-time-ns-total of the blocking calls, by metric name (user threads add)
        self._call_ns: dict[str, int] = dict.fromkeys(_CALL_TIMES, 0)
        self._topics: dict[str, _TopicStats] = {}
        self._brokers: dict[int, _BrokerStats] = {}

    # ------------------------------------------------------------------ sender-thread hooks

    def on_request(self, node: int, batches: list[ProducerBatch], now_ms: int) -> None:
        sizes, ratios, queue_times, record_sizes = [], [], [], []
        by_topic: dict[str, tuple[int, int, list[float]]] = {}
        records = 0
        for b in batches:       # gathered outside the lock, recorded per request inside it
            size = b.size_bytes
            builder = b.builder_or_none
            ratio = builder.compression_ratio if builder is not None else 1.0
            count = b.record_count
            sizes.append(size)
            if count:
                record_sizes.append(size / count)
            ratios.append(ratio)
            queue_times.append(now_ms - b.created_ms)
            records += count
            seen = by_topic.get(b.topic)
            if seen is None:
                by_topic[b.topic] = (count, size, [ratio])
            else:
                seen[2].append(ratio)
                by_topic[b.topic] = (seen[0] + count, seen[1] + size, seen[2])
        request_bytes = sum(sizes)
        with self._lock:
            self._batch_size.record_values(sizes, now_ms)
            self._record_size.record_values(record_sizes, now_ms)
            self._compression.record_values(ratios, now_ms)
            self._queue_time.record_values(queue_times, now_ms)
            self._records_per_request.record(records, now_ms)
            self._requests.record(request_bytes, now_ms)
            for topic, (count, nbytes, topic_ratios) in by_topic.items():
                t = self._topic(topic, now_ms)
                t.records.record(count, now_ms)
                t.bytes.record(nbytes, now_ms)
                t.compression.record_values(topic_ratios, now_ms)
            broker = self._brokers.get(node)
            if broker is None:
                broker = self._brokers[node] = _BrokerStats(now_ms)
            broker.requests.record(request_bytes, now_ms)
            self._in_flight += 1
            self._note_memory_wait(now_ms)
            self._note_totals(now_ms)

    def on_response(self, node: int, latency_ms: int, response: Mapping[str, Any] | None,
                    error: KafkaError | None) -> None:
        now = monotonic_ms()
        with self._lock:
            self._in_flight -= 1
            if response is not None:
                self._responses.record(1, now)
            broker = self._brokers.get(node)
            if broker is None:
                broker = self._brokers[node] = _BrokerStats(now)
            # acks=0 "responses" (None) arrive when the bytes are written: no latency to speak of
            if error is None and response is not None:
                self._latency.record(latency_ms, now)
                broker.latency.record(latency_ms, now)
                throttle = response.get("throttle_time_ms", 0)
                self._throttle.record(throttle, now)
                broker.throttle.record(throttle, now)

    def on_batch_done(self, batch: ProducerBatch, error: KafkaError | None) -> None:
        if error is None:
            return
        now = monotonic_ms()
        with self._lock:
            self._errors.record(batch.record_count, now)
            self._topic(batch.topic, now).errors.record(batch.record_count, now)

    def on_retry(self, batch: ProducerBatch) -> None:
        now = monotonic_ms()
        with self._lock:
            self._retries.record(batch.record_count, now)
            self._topic(batch.topic, now).retries.record(batch.record_count, now)

    def on_split(self, batch: ProducerBatch) -> None:
        now = monotonic_ms()
        with self._lock:
            self._splits.record(1, now)

    # ------------------------------------------------------------------ user-thread hooks

    def add_call_time(self, metric: str, ns: int) -> None:
        """Time a blocking call took (flush(), the transaction calls, a metadata wait)."""
        with self._lock:
            self._call_ns[metric] += ns

    def poll(self, now_ms: int) -> int:
        """Runs the stats callback when it is due; returns ms until it is due next (a day when
        there is none), for the sender's sleep."""
        if self._stats_callback is None:
            return 86_400_000
        if now_ms >= self._next_stats_ms:
            self._next_stats_ms = now_ms + self._stats_interval_ms
            try:
                self._stats_callback(self.snapshot())
            except Exception:
                _log.exception("[%s] stats_callback raised; it is called again in %d ms",
                               self.client_id, self._stats_interval_ms)
        return max(0, int(self._next_stats_ms - now_ms))

    def _topic(self, topic: str, now: int) -> _TopicStats:
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = _TopicStats(now)
        return t

    def _note_totals(self, now: int) -> None:
        # The network client and BufferMemory keep running totals; what moved since the last
        # look is recorded now, in the right 30 s sample to within one request or snapshot.
        client = self._client
        self._created.note(client.connections_created, now)
        self._closed.note(client.connections_closed, now)
        self._incoming.note(client.bytes_received, now)
        self._exhausted.note(self._memory.exhausted_total, now)

    def _note_memory_wait(self, now: int) -> None:
        # BufferMemory only keeps a running total of ns spent blocked; the part not seen yet is
        # recorded now, which places it in the right 30 s sample to within one request.
        waited = self._memory.wait_ns
        if waited != self._memory_wait_seen_ns:
            self._memory_wait.record(waited - self._memory_wait_seen_ns, now)
            self._memory_wait_seen_ns = waited

    # ------------------------------------------------------------------ any thread

    def snapshot(self) -> dict[str, Any]:
        """Every metric now: client-level ones by their Java names, plus ``client-id``,
        ``topics`` ({topic: {name: value}}), ``brokers`` ({node id: {name: value}}) and, when
        the partitioner has a ``metrics()`` method, ``partitioner`` (what it returns)."""
        now = monotonic_ms()
        memory = self._memory
        with self._lock:
            self._note_memory_wait(now)
            self._note_totals(now)
            out: dict[str, Any] = {
                "client-id": self.client_id,
                "record-send-rate": self._records_per_request.rate(now),
                "record-send-total": int(self._records_per_request.total),
                "record-error-rate": self._errors.rate(now),
                "record-error-total": int(self._errors.total),
                "record-retry-rate": self._retries.rate(now),
                "record-retry-total": int(self._retries.total),
                "batch-split-rate": self._splits.rate(now),
                "batch-split-total": int(self._splits.total),
                "request-rate": self._requests.rate(now, of_count=True),
                "request-total": self._requests.total_count,
                "request-latency-avg": self._latency.avg(now),
                "request-latency-max": self._latency.max(now),
                "requests-in-flight": self._in_flight,
                "outgoing-byte-rate": self._requests.rate(now),
                "outgoing-byte-total": int(self._requests.total),
                "batch-size-avg": self._batch_size.avg(now),
                "batch-size-max": self._batch_size.max(now),
                "compression-rate-avg": self._compression.avg(now),
                "record-queue-time-avg": self._queue_time.avg(now),
                "record-queue-time-max": self._queue_time.max(now),
                "records-per-request-avg": self._records_per_request.avg(now),
                "produce-throttle-time-avg": self._throttle.avg(now),
                "produce-throttle-time-max": self._throttle.max(now),
                "buffer-total-bytes": memory.total_bytes,
                "buffer-available-bytes": memory.total_bytes - memory.used_bytes,
                "bufferpool-wait-ratio": self._memory_wait.rate(now) / 1e9,
                "bufferpool-wait-time-ns-total": self._memory_wait_seen_ns,
                "waiting-threads": memory.waiters,
                "connection-count": len(self._client.connections),
                "connection-creation-rate": self._created.rate(now),
                "connection-creation-total": self._created.seen,
                "connection-close-rate": self._closed.rate(now),
                "connection-close-total": self._closed.seen,
                "incoming-byte-rate": self._incoming.rate(now),
                "incoming-byte-total": self._incoming.seen,
                "buffer-exhausted-rate": self._exhausted.rate(now),
                "buffer-exhausted-total": self._exhausted.seen,
                "request-size-avg": self._requests.avg(now),
                "request-size-max": self._requests.max(now),
                "record-size-avg": self._record_size.avg(now),
                "record-size-max": self._record_size.max(now),
                "response-rate": self._responses.rate(now, of_count=True),
                "response-total": self._responses.total_count,
                **self._call_ns,
            }
            refreshed = self._metadata_refreshed_ms() if self._metadata_refreshed_ms else 0
            out["metadata-age"] = (now - refreshed) / 1000.0 if refreshed > 0 else _NAN
            for (suffix, _), value in zip(PERCENTILES, self._latency.percentiles(now), strict=True):
                out[f"request-latency-{suffix}"] = value
            queue_time = self._queue_time.percentiles(now)
            for (suffix, _), value in zip(PERCENTILES, queue_time, strict=True):
                out[f"record-queue-time-{suffix}"] = value
            out["topics"] = {name: t.snapshot(now) for name, t in self._topics.items()}
            out["brokers"] = {node: b.snapshot(now) for node, b in self._brokers.items()}
        if self._partitioner_metrics is not None:
            try:
                out["partitioner"] = self._partitioner_metrics()
            except Exception as e:
                _log.warning("[%s] the partitioner's metrics() raised: %s", self.client_id, e)
        return out
