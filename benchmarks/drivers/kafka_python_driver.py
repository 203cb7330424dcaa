"""kafka-python: ``producer.send()`` per record, ``flush()`` at the end.

kafka-python 3 has no ``buffer.memory``: its accumulator grows with what is queued.
"""
from __future__ import annotations

import warnings
from itertools import cycle, islice

from benchmarks.drivers.meter import Meter
from benchmarks.spec import RunResult, RunSpec
from benchmarks.workload import keys, payload_pool

with warnings.catch_warnings():
    # kafka-python loads its protocol schemas through deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka

__all__ = ["throughput"]


def _send_loop(producer: kafka.KafkaProducer, spec: RunSpec, records: int) -> None:
    pairs = list(zip(payload_pool(spec.record_bytes), keys(), strict=True))
    send, topic = producer.send, spec.topic
    for value, key in islice(cycle(pairs), records):
        send(topic, value=value, key=key)


def throughput(spec: RunSpec) -> RunResult:
    s = spec.settings
    producer = kafka.KafkaProducer(
        bootstrap_servers=spec.bootstrap,
        client_id=f"bench-{spec.client}",
        acks="all" if spec.acks == "all" else int(spec.acks),
        enable_idempotence=spec.idempotent,
        compression_type=None if spec.compression == "none" else spec.compression,
        batch_size=s.batch_bytes,
        linger_ms=s.linger_ms,
        max_in_flight_requests_per_connection=s.max_in_flight,
    )
    meter = Meter()
    try:
        _send_loop(producer, spec, spec.warmup_records)
        producer.flush()
        meter.start()
        _send_loop(producer, spec, spec.records)
        producer.flush()
        meter.stop()
    finally:
        producer.close()
    return meter.result(spec.records, client_version=kafka.__version__)
