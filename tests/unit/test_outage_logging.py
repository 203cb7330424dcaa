"""The rate limits of the outage log lines (kengine.reachability, kengine.failure_log), on a
stepped clock; the real-broker test is tests/integration/test_outage_logs.py."""
from __future__ import annotations

import logging

import pytest

from kengine.errors import DeliveryTimeoutError, InvalidRecordError, NetworkError
from kengine.failure_log import INTERVAL_MS, FailureLog
from kengine.reachability import WARN_INTERVAL_MS, BrokerReachability


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_flapping_broker_is_warned_about_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kengine.network")
    clock = Clock()
    reach = BrokerReachability("c", clock)
    refused = NetworkError("connection to broker h:1 failed: ECONNREFUSED")
    for _ in range(5):                       # five failed attempts: one outage
        reach.failed(1, "h:1", refused)
        clock.ms += 100
    assert reach.describe("h:1").startswith("broker 1 (h:1) unreachable for 0.5 s (5 failed")
    reach.connected("h:1")
    assert reach.describe("h:1") is None
    for _ in range(3):                       # three more outages within the interval
        clock.ms += 1000
        reach.failed(-1, "h:1", refused)     # the bootstrap entry of the same address
        reach.connected("h:1")
    assert warnings(caplog) == [
        "[c] broker 1 (h:1) is unreachable: [NETWORK_EXCEPTION (13)] connection to broker h:1 "
        "failed: ECONNREFUSED; retrying (reconnect.backoff.ms), records for its partitions "
        "wait until delivery.timeout.ms",
        "[c] broker 1 (h:1) is reachable again after 0.5 s (5 failed connection attempt(s), "
        "the last: [NETWORK_EXCEPTION (13)] connection to broker h:1 failed: ECONNREFUSED)"]
    caplog.clear()
    clock.ms += WARN_INTERVAL_MS
    reach.failed(1, "h:1", refused)
    assert len(warnings(caplog)) == 1
    assert "(3 more outage(s) of it since the last warning)" in warnings(caplog)[0]


def test_failed_batches_are_summed_per_topic_and_kind_at_most_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kengine.failures")
    log = FailureLog("c")
    now = 5_000_000
    timeout = DeliveryTimeoutError("8 record(s) for t-0 expired")
    for i in range(100):
        log.failed("t", i % 3, 8, timeout)
    log.failed("t", 0, 1, InvalidRecordError("compacted topic needs keys"))
    log.flush(now)
    assert sorted(warnings(caplog)) == [
        "[c] 1 record(s) in 1 batch(es) for topic t (partition(s) 0) failed with "
        "InvalidRecordError; the first: [INVALID_RECORD (87)] compacted topic needs keys",
        "[c] 800 record(s) in 100 batch(es) for topic t (partition(s) 0, 1, 2) failed with "
        "DeliveryTimeoutError; the first: 8 record(s) for t-0 expired"]
    caplog.clear()
    log.failed("t", 1, 8, timeout)
    log.flush(now + INTERVAL_MS - 1)          # too soon: held back
    assert warnings(caplog) == []
    log.failed("t", 2, 8, timeout)
    log.flush(now + INTERVAL_MS)
    assert warnings(caplog) == [
        "[c] 16 record(s) in 2 batch(es) for topic t (partition(s) 1, 2) failed with "
        "DeliveryTimeoutError; the first: 8 record(s) for t-0 expired"]
    caplog.clear()
    log.failed("t", 0, 8, timeout)
    log.close()                               # what is held back is written at close
    assert len(warnings(caplog)) == 1 and "8 record(s) in 1 batch(es)" in warnings(caplog)[0]
