"""ProducerMetrics without a broker: the histogram, Java's sampled windows, and the hooks the
sender calls, fed with stand-in batches."""
from __future__ import annotations

import logging
import math
import random
from typing import Any

import pytest

from kengine.metrics import (
    CLIENT,
    METRICS,
    NODE,
    SAMPLE_WINDOW_MS,
    TOPIC,
    LogHistogram,
    _Sampled,
)
from tests.support.metric_inputs import Batch, Builder, Partitioner, make


def test_histogram_buckets_are_contiguous_and_exact_below_64() -> None:
    previous = -1
    for value in range(200_000):
        b = LogHistogram.bucket(value)
        assert b in (previous, previous + 1)
        previous = b
        assert LogHistogram.bucket_high(b) >= value
        if value < 64:
            assert LogHistogram.bucket_high(b) == value


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_within_one_bucket_of_the_truth(seed: int) -> None:
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(4, 2)) for _ in range(20_000)]
    h = LogHistogram()
    for v in values:
        h.record(v)
    values.sort()
    for q, got in zip((0.5, 0.9, 0.99, 0.999), h.percentiles((0.5, 0.9, 0.99, 0.999)), strict=True):
        true = values[int(q * len(values))]
        assert true <= got <= true + true / 32 + 1
    assert len(h.counts) < 700


def test_empty_histogram_gives_nan() -> None:
    assert all(math.isnan(v) for v in LogHistogram().percentiles((0.5, 0.99)))


def test_sampled_stat_follows_javas_windows() -> None:
    s = _Sampled(0)
    assert math.isnan(s.avg(0)) and math.isnan(s.max(0)) and s.rate(0) == 0
    s.record(10, 0)
    s.record(20, 1000)
    assert (s.avg(10_000), s.max(10_000)) == (15, 20)
    # a rate's window is never shorter than one full sample: 30 over (10 s + 30 s)
    assert s.rate(10_000) == pytest.approx(30 / 40)
    assert s.rate(10_000, of_count=True) == pytest.approx(2 / 40)
    s.record(30, SAMPLE_WINDOW_MS + 5_000)          # a second sample
    assert s.avg(SAMPLE_WINDOW_MS + 6_000) == 20
    # two windows later the first sample is gone, the totals stay
    later = 2 * SAMPLE_WINDOW_MS + 1_000
    assert (s.avg(later), s.max(later)) == (30, 30)
    assert (s.total, s.total_count) == (60, 3)
    gone = 4 * SAMPLE_WINDOW_MS
    assert math.isnan(s.avg(gone)) and s.rate(gone) == 0


def test_request_batches_responses_errors_and_retries() -> None:
    from kengine_ext import monotonic_ms

    m, memory, client = make(partitioner=Partitioner())
    now = monotonic_ms()
    m.on_request(1, [Batch("a", 10, 1000, now - 5, Builder(0.5)),
                     Batch("b", 30, 3000, now - 15)], now)
    m.on_request(2, [Batch("a", 20, 2000, now - 10, Builder(0.25))], now)
    snap = m.snapshot()
    assert snap["requests-in-flight"] == 2
    m.on_response(1, 40, {"throttle_time_ms": 0}, None)
    m.on_response(2, 80, {"throttle_time_ms": 100}, None)
    m.on_batch_done(Batch("b", 30, 3000, now), _error())
    m.on_batch_done(Batch("a", 10, 1000, now), None)       # success counts at send time
    m.on_retry(Batch("a", 20, 2000, now))
    memory.used_bytes, memory.waiters, memory.wait_ns = 400, 2, 7_000
    client.connections.update({1: object(), 2: object()})
    snap = m.snapshot()
    assert snap["client-id"] == "cid"
    assert snap["record-send-total"] == 60
    assert snap["records-per-request-avg"] == 30
    assert snap["request-total"] == 2 and snap["requests-in-flight"] == 0
    assert (snap["batch-size-avg"], snap["batch-size-max"]) == (2000, 3000)
    assert snap["compression-rate-avg"] == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert (snap["record-queue-time-avg"], snap["record-queue-time-max"]) == (10, 15)
    assert (snap["request-latency-avg"], snap["request-latency-max"]) == (60, 80)
    assert (snap["request-latency-p50"], snap["request-latency-p999"]) == (80, 80)
    assert (snap["produce-throttle-time-avg"], snap["produce-throttle-time-max"]) == (50, 100)
    assert snap["record-error-total"] == 30 and snap["record-retry-total"] == 20
    assert snap["outgoing-byte-total"] == 6000
    assert (snap["buffer-total-bytes"], snap["buffer-available-bytes"]) == (1000, 600)
    assert snap["waiting-threads"] == 2 and snap["connection-count"] == 2
    assert snap["bufferpool-wait-time-ns-total"] == 7_000 and snap["bufferpool-wait-ratio"] > 0
    assert snap["topics"]["a"]["record-send-total"] == 30
    assert snap["topics"]["a"]["byte-total"] == 3000
    assert snap["topics"]["a"]["record-retry-total"] == 20
    assert snap["topics"]["b"]["record-error-total"] == 30
    assert snap["brokers"][1]["request-total"] == 1
    assert snap["brokers"][2]["request-latency-max"] == 80
    assert snap["brokers"][2]["produce-throttle-time-max"] == 100
    assert snap["partitioner"] == {"hot-keys": 3}


def test_running_totals_become_totals_and_rates_and_never_go_back() -> None:
    m, memory, client = make()
    client.connections_created, client.connections_closed = 3, 1
    client.bytes_received, memory.exhausted_total = 5000, 2
    snap = m.snapshot()
    assert (snap["connection-creation-total"], snap["connection-close-total"]) == (3, 1)
    assert (snap["incoming-byte-total"], snap["buffer-exhausted-total"]) == (5000, 2)
    # rates over Java's minimum window (NUM_SAMPLES - 1 samples of SAMPLE_WINDOW_MS)
    assert snap["incoming-byte-rate"] == pytest.approx(5000 / SAMPLE_WINDOW_MS * 1000, rel=0.1)
    assert snap["connection-creation-rate"] > snap["connection-close-rate"] > 0
    assert snap["buffer-exhausted-rate"] > 0
    # a closing connection's bytes move from the open ones to the closed ones' sum: a read in
    # between may see fewer; the metric keeps what it saw
    client.bytes_received = 4000
    assert m.snapshot()["incoming-byte-total"] == 5000
    client.bytes_received = 6500
    assert m.snapshot()["incoming-byte-total"] == 6500


def test_acks_0_and_failed_requests_record_no_latency() -> None:
    m, _, _ = make()
    m.on_request(1, [Batch("a", 1, 100, 0)], 0)
    m.on_request(1, [Batch("a", 1, 100, 0)], 0)
    m.on_response(1, 3, None, None)           # acks=0: written, nothing answered
    m.on_response(1, 30_000, None, _error())  # timed out
    snap = m.snapshot()
    assert snap["requests-in-flight"] == 0 and snap["request-total"] == 2
    assert math.isnan(snap["request-latency-avg"])


def test_every_metric_in_a_snapshot_is_documented() -> None:
    m, _, _ = make()
    m.on_request(1, [Batch("a", 1, 100, 0)], 0)
    snap = m.snapshot()
    documented = {(g, n) for g, n in METRICS}
    extra = {"client-id", "topics", "brokers"}
    assert {(CLIENT, n) for n in snap if n not in extra} <= documented
    assert {(TOPIC, n) for n in snap["topics"]["a"]} <= documented
    assert {(NODE, n) for n in snap["brokers"][1]} <= documented
    for group in (CLIENT, TOPIC, NODE):
        names = {n for g, n in METRICS if g == group}
        shown = {CLIENT: set(snap) - extra, TOPIC: set(snap["topics"]["a"]),
                 NODE: set(snap["brokers"][1])}[group]
        assert names == shown


def test_stats_callback_runs_when_due_and_survives_errors(
        caplog: pytest.LogCaptureFixture) -> None:
    from kengine_ext import monotonic_ms

    calls: list[dict[str, Any]] = []

    def callback(snapshot: dict[str, Any]) -> None:
        calls.append(snapshot)
        if len(calls) == 2:
            raise RuntimeError("boom")

    interval = 60_000    # the test drives the clock; the real one must not make it due
    m, _, _ = make(stats_callback=callback, stats_interval_ms=interval)
    start = monotonic_ms()
    assert 0 < m.poll(start) <= interval and not calls
    assert m.poll(start + interval) == interval and len(calls) == 1
    assert calls[0]["client-id"] == "cid"
    with caplog.at_level(logging.ERROR, logger="kengine.metrics"):
        m.poll(start + 2 * interval)
    assert len(calls) == 2 and "stats_callback raised" in caplog.text
    m.poll(start + 3 * interval)
    assert len(calls) == 3


def test_without_a_callback_poll_never_shortens_the_senders_sleep() -> None:
    m, _, _ = make(stats_callback=print, stats_interval_ms=0)
    assert m.poll(0) >= 86_400_000


def test_a_failing_partitioner_metrics_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def metrics(self) -> dict[str, int]:
            raise ValueError("nope")

    m, _, _ = make(partitioner=Broken())
    with caplog.at_level(logging.WARNING, logger="kengine.metrics"):
        assert "partitioner" not in m.snapshot()
    assert "nope" in caplog.text


def _error() -> Exception:
    from kengine.errors import InvalidRecordError

    return InvalidRecordError("rejected")
