"""kengine: ``send()``, ``send()`` with a per-record callback, and ``send_many()``.

In transactional runs each ``transaction_records`` records are sent between
``begin_transaction()`` and ``commit_transaction()`` (which sends what is buffered and waits for
it, so no ``flush()``); ``send_many()`` then passes one transaction's records per call."""
from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterable
from itertools import cycle, islice

import kengine
from benchmarks.drivers.latency import LatencyProbe
from benchmarks.drivers.meter import Meter
from benchmarks.spec import RunResult, RunSpec
from benchmarks.workload import KEY_SPACE, keys, payload_pool
from kengine import Producer

__all__ = ["SEND_MANY_CHUNK", "latency", "throughput"]

#: records per send_many() call: what an ingest job reading 10,000-row chunks would pass
SEND_MANY_CHUNK = 10_000

_VARIANTS = {"kengine-send": "send", "kengine-send-callback": "send-callback",
             "kengine-send-many": "send-many"}


def _producer(spec: RunSpec) -> Producer:
    s = spec.settings
    config: dict[str, object] = {
        "bootstrap.servers": spec.bootstrap,
        "client.id": f"bench-{spec.client}",
        "acks": spec.acks,
        "enable.idempotence": spec.idempotent,
        "compression.type": spec.compression,
        "batch.size": s.batch_bytes,
        "linger.ms": s.linger_ms,
        "max.in.flight.requests.per.connection": s.max_in_flight,
        "buffer.memory": s.buffer_memory_bytes,
    }
    if spec.transaction_records:
        # one id per run (its topic's name is unique): no run fences or recovers another
        config["transactional.id"] = f"bench-{spec.topic}"
    producer = Producer(config)
    if spec.transaction_records:
        producer.init_transactions()
    return producer


class _Errors:
    """Counts failed deliveries reported to per-record callbacks (on the sender thread)."""

    def __init__(self) -> None:
        self.count = 0

    def on_delivery(self, error: object, metadata: object) -> None:
        if error is not None:
            self.count += 1


def _send_loop(producer: Producer, spec: RunSpec, records: int,
               on_delivery: Callable[[object, object], None] | None) -> None:
    """Sends ``records`` and waits for them: flush(), or the commit of every transaction."""
    pairs = list(zip(payload_pool(spec.record_bytes), keys(), strict=True))
    send, topic = producer.send, spec.topic
    todo = islice(cycle(pairs), records)
    per_transaction = spec.transaction_records
    if not per_transaction:
        _send_each(send, topic, todo, on_delivery)
        producer.flush()
        return
    for _ in range(0, records, per_transaction):
        producer.begin_transaction()
        _send_each(send, topic, islice(todo, per_transaction), on_delivery)
        producer.commit_transaction()


def _send_each(send: Callable[..., object], topic: str, todo: Iterable[tuple[bytes, bytes]],
               on_delivery: Callable[[object, object], None] | None) -> None:
    if on_delivery is None:
        for value, key in todo:
            send(topic, value, key)
    else:
        for value, key in todo:
            send(topic, value, key, on_delivery=on_delivery)


def _send_many_loop(producer: Producer, spec: RunSpec, records: int) -> int:
    """Sends ``records`` in calls of SEND_MANY_CHUNK records (transactional: one transaction's
    records per call, each committed) and waits for them. Returns how many records the
    send_many() futures reported as failed."""
    per_transaction = spec.transaction_records
    chunk = per_transaction or SEND_MANY_CHUNK
    if chunk % KEY_SPACE:
        # every call reuses the same lists: record i of a run keeps key i % KEY_SPACE, as with
        # every other client, only if a call holds whole cycles of the keys
        raise ValueError(f"send_many() chunks of {chunk} records: a multiple of {KEY_SPACE} "
                         "is needed")
    pool = payload_pool(spec.record_bytes)
    all_keys = keys()
    values = [pool[i % len(pool)] for i in range(chunk)]
    chunk_keys = [all_keys[i % KEY_SPACE] for i in range(chunk)]
    pending: deque[kengine.BulkFuture] = deque()
    failed = 0
    for start in range(0, records, chunk):
        n = min(chunk, records - start)
        if per_transaction:
            producer.begin_transaction()
        if n == chunk:
            pending.append(producer.send_many(spec.topic, values, chunk_keys))
        else:
            pending.append(producer.send_many(spec.topic, values[:n], chunk_keys[:n]))
        if per_transaction:
            producer.commit_transaction()
        # as an ingest job would: settle finished calls as it goes, keep the rest
        while pending and pending[0].done():
            failed += pending.popleft().result().failed_count
    if not per_transaction:
        producer.flush()
    for fut in pending:
        failed += fut.result().failed_count
    return failed


def throughput(spec: RunSpec) -> RunResult:
    variant = _VARIANTS[spec.client]
    producer = _producer(spec)
    errors = _Errors()
    on_delivery = errors.on_delivery if variant == "send-callback" else None
    failed = 0
    meter = Meter()
    try:
        if variant == "send-many":
            _send_many_loop(producer, spec, spec.warmup_records)
            meter.start()
            failed = _send_many_loop(producer, spec, spec.records)
            meter.stop()
        else:
            _send_loop(producer, spec, spec.warmup_records, on_delivery)
            meter.start()
            _send_loop(producer, spec, spec.records, on_delivery)
            meter.stop()
    finally:
        producer.close()
    return meter.result(spec.records, client_version=kengine.__version__,
                        delivery_errors=errors.count + failed)


def latency(spec: RunSpec) -> RunResult:
    producer = _producer(spec)
    pairs = list(zip(payload_pool(spec.record_bytes), keys(), strict=True))
    probe = LatencyProbe(spec.warmup_records + spec.records, spec.warmup_records)
    send, topic, delivered = producer.send, spec.topic, probe.delivered

    def send_one(i: int) -> None:
        value, key = pairs[i % len(pairs)]
        send(topic, value, key, on_delivery=functools.partial(delivered, i))

    meter = Meter()
    try:
        producer.partitions_for(topic)  # metadata before the clock starts
        meter.start()
        probe.run(spec.rate_per_s, send_one, time.sleep)
        producer.flush()
        meter.stop()
    finally:
        producer.close()
    return meter.result(spec.warmup_records + spec.records, client_version=kengine.__version__,
                        delivery_errors=probe.errors, latency_us=probe.percentiles_us())
