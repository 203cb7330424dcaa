"""confluent-kafka (librdkafka): a ``produce()`` loop with delivery reports only on error.

librdkafka's ``delivery.report.only.error`` keeps successful deliveries from queueing a report
(and a Python callback) per record, which is how a throughput-minded user runs it. Its default
partitioner hashes keys with CRC32; ``murmur2_random`` places keyed records where Java's (and
every other client here) does. ``queue.buffering.max.kbytes`` plays ``buffer.memory``; the
message-count limit is disabled (0) so that only bytes bound the queue, as in Java. When the
queue is full ``produce()`` raises BufferError: the loop then polls and retries, as
confluent-kafka's documentation does. In transactional runs each ``transaction_records``
records are produced between ``begin_transaction()`` and ``commit_transaction()``, which flushes
them first, as confluent-kafka's transactional examples do. With several threads each produces
its share (:mod:`benchmarks.drivers.shares`) through the one producer, as librdkafka allows.
"""
from __future__ import annotations

import functools
import importlib.metadata
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

import confluent_kafka

from benchmarks.drivers.latency import LatencyProbe
from benchmarks.drivers.meter import Meter
from benchmarks.drivers.shares import record_shares, run_in_threads, workload
from benchmarks.spec import RunResult, RunSpec
from benchmarks.workload import keys, payload_pool

__all__ = ["latency", "throughput"]

_FULL_QUEUE_WAIT_S = 0.001
# init_transactions() and commit_transaction() block up to this long
_TRANSACTION_TIMEOUT_S = 120
_VERSION = importlib.metadata.version("confluent-kafka")


class _Errors:
    def __init__(self) -> None:
        self.count = 0

    def on_delivery(self, error: Any, message: Any) -> None:
        if error is not None:
            self.count += 1


def _producer(spec: RunSpec, *, only_errors: bool, errors: _Errors) -> confluent_kafka.Producer:
    s = spec.settings
    config: dict[str, Any] = {
        "bootstrap.servers": spec.bootstrap,
        "client.id": f"bench-{spec.client}",
        "acks": spec.acks,
        "enable.idempotence": spec.idempotent,
        "compression.type": spec.compression,
        "batch.size": s.batch_bytes,
        "linger.ms": s.linger_ms,
        "max.in.flight.requests.per.connection": s.max_in_flight,
        "queue.buffering.max.kbytes": s.buffer_memory_bytes // 1024,
        "queue.buffering.max.messages": 0,
        "partitioner": "murmur2_random",
        "delivery.report.only.error": only_errors,
        "on_delivery": errors.on_delivery,
        "log_level": 4,
    }
    if spec.transaction_records:
        # one id per run (its topic's name is unique): no run fences or recovers another
        config["transactional.id"] = f"bench-{spec.topic}"
    producer = confluent_kafka.Producer(config)
    if spec.transaction_records:
        producer.init_transactions(_TRANSACTION_TIMEOUT_S)
    return producer


def _send(producer: confluent_kafka.Producer, spec: RunSpec,
          records: int) -> Callable[[], None]:
    """Returns what produces ``records`` and waits for them (flush(), or the commit of every
    transaction), its pieces built now, before a window opens."""
    triples = workload(spec)
    per_transaction = spec.transaction_records
    if not per_transaction:
        shares = record_shares(triples, records, spec.threads)

        def plain() -> None:
            run_in_threads([functools.partial(_produce_loop, producer, share)
                            for share in shares])
            _flush(producer)
        return plain
    todo = record_shares(triples, records, 1)[0]

    def transactional() -> None:
        for _ in range(0, records, per_transaction):
            producer.begin_transaction()
            _produce_loop(producer, islice(todo, per_transaction))
            producer.commit_transaction(_TRANSACTION_TIMEOUT_S)
    return transactional


def _produce_loop(producer: confluent_kafka.Producer,
                  todo: Iterable[tuple[str, bytes, bytes]]) -> None:
    produce, poll = producer.produce, producer.poll
    for topic, value, key in todo:
        try:
            produce(topic, value, key)
        except BufferError:
            while True:
                poll(_FULL_QUEUE_WAIT_S)
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    continue


def _flush(producer: confluent_kafka.Producer) -> None:
    left = producer.flush(300)
    if left:
        raise RuntimeError(f"confluent-kafka flush() left {left} records undelivered after 300 s")


def throughput(spec: RunSpec) -> RunResult:
    errors = _Errors()
    producer = _producer(spec, only_errors=True, errors=errors)
    meter = Meter()
    _send(producer, spec, spec.warmup_records)()
    measured = _send(producer, spec, spec.records)
    meter.start()
    measured()
    meter.stop()
    return meter.result(spec.records, client_version=_VERSION,
                        delivery_errors=errors.count)


def latency(spec: RunSpec) -> RunResult:
    # every record reports, to its own callback: that is what is measured
    producer = _producer(spec, only_errors=False, errors=_Errors())
    pairs = list(zip(payload_pool(spec.record_bytes), keys(), strict=True))
    probe = LatencyProbe(spec.warmup_records + spec.records, spec.warmup_records)
    produce, poll, topic, delivered = producer.produce, producer.poll, spec.topic, probe.delivered

    def send_one(i: int) -> None:
        value, key = pairs[i % len(pairs)]
        produce(topic, value, key, on_delivery=functools.partial(delivered, i))

    def idle(seconds: float) -> None:
        # callbacks run inside poll(); its timeout has millisecond resolution, so serve what
        # is ready without blocking and sleep the rest
        poll(0)
        time.sleep(seconds)

    producer.list_topics(topic, timeout=30)  # metadata before the clock starts
    meter = Meter()
    meter.start()
    probe.run(spec.rate_per_s, send_one, idle)
    _flush(producer)
    meter.stop()
    return meter.result(spec.warmup_records + spec.records,
                        client_version=_VERSION,
                        delivery_errors=probe.errors, latency_us=probe.percentiles_us())
