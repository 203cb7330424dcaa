"""Bounded memory under a long outage (issue 24): one broker unreachable from the client (its
proxy disabled, the brokers still see it, it stays leader) for ``OUTAGE_S`` seconds (300 by
default; ``KENGINE_OUTAGE_S`` shortens it) while the producer is fed without pause.

``delivery.timeout.ms`` is longer than the outage, so nothing expires: the buffer fills with the
unreachable broker's records and stays full, and from then on every ``send()`` (for any
partition: ``buffer.memory`` is shared) blocks for ``max.block.ms`` and raises
``KafkaTimeoutError``. Throughout, the process's RSS stays under its value before the producer
was created plus ``buffer.memory`` plus ``OVERHEAD_MIB`` (the producer's own structures and
Python's allocator slack). When the broker is reachable again, everything queued is delivered
(none failed, every acknowledged record read back once) and every partition takes new records.
"""
from __future__ import annotations

import ctypes
import gc
import os
import threading
import time

import pytest

from kengine import Producer
from kengine.errors import KafkaError, KafkaTimeoutError
from tests.conftest import ProxiedCluster, TopicFactory
from tests.support.ledger import key_for, value_for
from tests.support.readback import read_all

pytestmark = pytest.mark.netfaults

OUTAGE_S = float(os.environ.get("KENGINE_OUTAGE_S", "300"))
BUFFER_MEMORY = 16 * 1024 * 1024
MAX_BLOCK_MS = 3000
#: what RSS may exceed buffer.memory by (stated in the README's failure section)
OVERHEAD_MIB = 64
# an upper bound for "send() blocked for at most max.block.ms": the wake-up after the deadline
# may be late on a loaded machine, but not by seconds
BLOCK_SLACK_S = 5.0


def _release_free_memory() -> None:
    """Hand memory freed by earlier tests back to the OS, so that the baseline is what the
    process holds, not what its allocator keeps for reuse (which a new producer would take
    without growing RSS, hiding its cost)."""
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise LookupError("VmRSS")


class Outcomes:
    """Counts delivery reports (one bound method for every record: no closure per record)."""

    def __init__(self) -> None:
        self.acked = 0
        self.failed: list[KafkaError] = []

    def on_delivery(self, error: KafkaError | None, metadata: object) -> None:
        if error is None:
            self.acked += 1
        elif len(self.failed) < 100:
            self.failed.append(error)


def test_memory_stays_bounded_while_a_broker_is_unreachable_for_long(
        proxied_cluster: ProxiedCluster, topic_factory: TopicFactory) -> None:
    pc = proxied_cluster
    topic = topic_factory(pc.cluster, 6)
    victim = pc.cluster.leader_of(topic, 0)
    cut_off = {p.partition for p in pc.cluster.topic(topic).partitions if p.leader == victim}
    _release_free_memory()
    baseline = _rss_mib()
    producer = Producer(bootstrap_servers=pc.bootstrap_servers, acks="all",
                        enable_idempotence=True, buffer_memory=BUFFER_MEMORY,
                        max_block_ms=MAX_BLOCK_MS,
                        # nothing expires during the outage: the buffer stays full
                        delivery_timeout_ms=int(OUTAGE_S * 1000) + 300_000,
                        request_timeout_ms=10_000, reconnect_backoff_max_ms=1000,
                        retry_backoff_max_ms=1000, client_id="long-outage")
    peak = [baseline]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], _rss_mib())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    refusals: list[tuple[float, KafkaTimeoutError]] = []
    outcomes = Outcomes()
    sent = 0
    accepted = 0
    try:
        producer.partitions_for(topic)
        pc.proxies[victim].disable()
        began = time.monotonic()
        while time.monotonic() - began < OUTAGE_S:
            t0 = time.monotonic()
            try:
                producer.send(topic, value_for(sent), key=key_for(sent, 1000),
                              on_delivery=outcomes.on_delivery)
                accepted += 1
            except KafkaTimeoutError as e:
                refusals.append((time.monotonic() - t0, e))
            sent += 1
        m = producer.metrics()   # buffer.memory in use, by the Java-named metrics
        used_during = m["buffer-total-bytes"] - m["buffer-available-bytes"]
        pc.proxies[victim].enable()
        # recovery: every partition, the unreachable broker's too, takes records again
        after = [producer.send(topic, b"after-%d" % p, partition=p) for p in range(6)]
        offsets = {f.result(120).partition for f in after}
        producer.flush(600)
    finally:
        stop.set()
        watcher.join()
        producer.close(120)
    peak_over = peak[0] - baseline
    print(f"\n{OUTAGE_S:.0f} s outage of broker {victim} (partitions {sorted(cut_off)}): "
          f"{sent} send() calls, {accepted} accepted, {len(refusals)} refused after max.block.ms "
          f"(longest block {max((d for d, _ in refusals), default=0):.2f} s), buffer in use "
          f"at the end {used_during} of {BUFFER_MEMORY} bytes, RSS peak {peak_over:.1f} MiB "
          f"over the baseline {baseline:.1f} MiB")
    assert offsets == set(range(6))
    assert outcomes.failed == [], outcomes.failed[:3]
    assert outcomes.acked == accepted, (outcomes.acked, accepted)
    assert refusals, "send() never blocked: the buffer did not fill during the outage"
    for duration, error in refusals:
        assert "max.block.ms" in str(error), error
        assert duration <= MAX_BLOCK_MS / 1000 + BLOCK_SLACK_S, (duration, error)
    assert peak_over <= BUFFER_MEMORY / 2**20 + OVERHEAD_MIB, (
        f"RSS grew by {peak_over:.1f} MiB: more than buffer.memory "
        f"({BUFFER_MEMORY / 2**20:.0f} MiB) + {OVERHEAD_MIB} MiB")
    records = read_all(pc.direct_bootstrap_servers, topic, timeout=300)
    after_read = [r for r in records if r.value is not None and r.value.startswith(b"after-")]
    assert sorted(r.partition for r in after_read) == list(range(6))
    values = [r.value for r in records]
    assert len(values) == len(set(values)), "duplicates in the log"
    # everything queued during the outage was delivered once the broker came back
    assert len(values) == accepted + 6, (len(values), accepted)
