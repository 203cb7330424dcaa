"""aiokafka: ``await producer.send()`` per record (enqueue; delivery awaited by ``flush()``).

aiokafka has no ``buffer.memory`` or in-flight setting: it keeps one batch per partition
queued and one request per broker in flight, and ``send()`` waits while the partition's batch
is full.
"""
from __future__ import annotations

import asyncio
from itertools import cycle, islice

import aiokafka

from benchmarks.drivers.meter import Meter
from benchmarks.spec import RunResult, RunSpec
from benchmarks.workload import keys, payload_pool

__all__ = ["throughput"]


async def _send_loop(producer: aiokafka.AIOKafkaProducer, spec: RunSpec, records: int) -> None:
    pairs = list(zip(payload_pool(spec.record_bytes), keys(), strict=True))
    send, topic = producer.send, spec.topic
    for value, key in islice(cycle(pairs), records):
        await send(topic, value, key)


async def _throughput(spec: RunSpec) -> RunResult:
    s = spec.settings
    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=spec.bootstrap,
        client_id=f"bench-{spec.client}",
        acks="all" if spec.acks == "all" else int(spec.acks),
        enable_idempotence=spec.idempotent,
        compression_type=None if spec.compression == "none" else spec.compression,
        max_batch_size=s.batch_bytes,
        linger_ms=s.linger_ms,
    )
    await producer.start()
    meter = Meter()
    try:
        await _send_loop(producer, spec, spec.warmup_records)
        await producer.flush()
        meter.start()
        await _send_loop(producer, spec, spec.records)
        await producer.flush()
        meter.stop()
    finally:
        await producer.stop()
    return meter.result(spec.records, client_version=aiokafka.__version__)


def throughput(spec: RunSpec) -> RunResult:
    return asyncio.run(_throughput(spec))
