"""confluent-kafka (librdkafka): a ``produce()`` loop with delivery reports only on error.

librdkafka's ``delivery.report.only.error`` keeps successful deliveries from queueing a report
(and a Python callback) per record, which is how a throughput-minded user runs it. Its default
partitioner hashes keys with CRC32; ``murmur2_random`` places keyed records where Java's (and
every other client here) does. ``queue.buffering.max.kbytes`` plays ``buffer.memory``; the
message-count limit is disabled (0) so that only bytes bound the queue, as in Java. When the
queue is full ``produce()`` raises BufferError: the loop then polls and retries, as
confluent-kafka's documentation does.
"""
from __future__ import annotations

import functools
import importlib.metadata
import time
from itertools import cycle, islice
from typing import Any

import confluent_kafka

from benchmarks.drivers.latency import LatencyProbe
from benchmarks.drivers.meter import Meter
from benchmarks.spec import RunResult, RunSpec
from benchmarks.workload import keys, payload_pool

__all__ = ["latency", "throughput"]

_FULL_QUEUE_WAIT_S = 0.001
_VERSION = importlib.metadata.version("confluent-kafka")


class _Errors:
    def __init__(self) -> None:
        self.count = 0

    def on_delivery(self, error: Any, message: Any) -> None:
        if error is not None:
            self.count += 1


def _producer(spec: RunSpec, *, only_errors: bool, errors: _Errors) -> confluent_kafka.Producer:
    s = spec.settings
    return confluent_kafka.Producer({
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
    })


def _produce_loop(producer: confluent_kafka.Producer, spec: RunSpec, records: int) -> None:
    pairs = list(zip(payload_pool(spec.record_bytes), keys(), strict=True))
    produce, poll, topic = producer.produce, producer.poll, spec.topic
    for value, key in islice(cycle(pairs), records):
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
    _produce_loop(producer, spec, spec.warmup_records)
    _flush(producer)
    meter.start()
    _produce_loop(producer, spec, spec.records)
    _flush(producer)
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
