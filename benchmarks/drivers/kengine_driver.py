"""kengine: ``send()``, ``send()`` with a per-record callback, and ``send_many()``.

In transactional runs each ``transaction_records`` records are sent between
``begin_transaction()`` and ``commit_transaction()`` (which sends what is buffered and waits for
it, so no ``flush()``); ``send_many()`` then passes one transaction's records per call. With
several topics a ``send_many()`` block of records becomes one call per topic; with several
threads each sends its share (:mod:`benchmarks.drivers.shares`) through the one producer."""
from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice

import kengine
from benchmarks.drivers.latency import LatencyProbe
from benchmarks.drivers.meter import Meter
from benchmarks.drivers.shares import BulkCall, bulk_calls, record_shares, run_in_threads, workload
from benchmarks.spec import RunResult, RunSpec
from benchmarks.workload import keys, payload_pool
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
               on_delivery: Callable[[object, object], None] | None) -> Callable[[], None]:
    """Returns what sends ``records`` and waits for them (flush(), or the commit of every
    transaction), its pieces built now, before a window opens."""
    triples = workload(spec)
    send = producer.send
    per_transaction = spec.transaction_records
    if not per_transaction:
        shares = record_shares(triples, records, spec.threads)

        def plain() -> None:
            run_in_threads([functools.partial(_send_each, send, share, on_delivery)
                            for share in shares])
            producer.flush()
        return plain
    todo = record_shares(triples, records, 1)[0]

    def transactional() -> None:
        for _ in range(0, records, per_transaction):
            producer.begin_transaction()
            _send_each(send, islice(todo, per_transaction), on_delivery)
            producer.commit_transaction()
    return transactional


def _send_each(send: Callable[..., object], todo: Iterable[tuple[str, bytes, bytes]],
               on_delivery: Callable[[object, object], None] | None) -> None:
    if on_delivery is None:
        for topic, value, key in todo:
            send(topic, value, key)
    else:
        for topic, value, key in todo:
            send(topic, value, key, on_delivery=on_delivery)


class _BulkSender:
    """Sends prepared send_many() calls from one thread, settling finished calls as it goes
    (as an ingest job would), and counts the records their futures report as failed."""

    def __init__(self, producer: Producer, calls: list[BulkCall]) -> None:
        self._producer = producer
        self._calls = calls
        self.failed = 0

    def run(self) -> None:
        send_many = self._producer.send_many
        pending: deque[kengine.BulkFuture] = deque()
        for topic, values, chunk_keys in self._calls:
            pending.append(send_many(topic, values, chunk_keys))
            while pending and pending[0].done():
                self.failed += pending.popleft().result().failed_count
        self._producer.flush()
        for fut in pending:
            self.failed += fut.result().failed_count


def _send_many_loop(producer: Producer, spec: RunSpec,
                    records: int) -> tuple[Callable[[], None], Callable[[], int]]:
    """Returns what sends ``records`` in send_many() calls of SEND_MANY_CHUNK records, split
    by topic (transactional: one transaction's records per call, each committed) and waits
    for them, and what then says how many records the calls' futures reported as failed."""
    per_transaction = spec.transaction_records
    calls = bulk_calls(workload(spec), records, per_transaction or SEND_MANY_CHUNK)
    if not per_transaction:
        senders = [_BulkSender(producer, calls[t::spec.threads]) for t in range(spec.threads)]
        return (lambda: run_in_threads([s.run for s in senders]),
                lambda: sum(s.failed for s in senders))
    futures: list[kengine.BulkFuture] = []

    def transactional() -> None:
        for topic, values, chunk_keys in calls:
            producer.begin_transaction()
            futures.append(producer.send_many(topic, values, chunk_keys))
            producer.commit_transaction()
    return transactional, lambda: sum(f.result().failed_count for f in futures)


def throughput(spec: RunSpec) -> RunResult:
    variant = _VARIANTS[spec.client]
    producer = _producer(spec)
    errors = _Errors()
    on_delivery = errors.on_delivery if variant == "send-callback" else None
    failed = 0
    meter = Meter()
    try:
        if variant == "send-many":
            _send_many_loop(producer, spec, spec.warmup_records)[0]()
            measured, count_failed = _send_many_loop(producer, spec, spec.records)
            meter.start()
            measured()
            meter.stop()
            failed = count_failed()
        else:
            _send_loop(producer, spec, spec.warmup_records, on_delivery)()
            measured = _send_loop(producer, spec, spec.records, on_delivery)
            meter.start()
            measured()
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
