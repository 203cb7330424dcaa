"""Reads a topic back with an independent client (confluent-kafka / librdkafka), to verify
what kengine wrote without trusting kengine's own decoder.

    records = read_all(kafka.bootstrap_servers, topic)
    assert [r.value for r in records] == [b"a", b"b"]

Every partition is assigned from its beginning and read until it reaches its end: the high
watermark, or the last stable offset with ``read_committed`` (so aborted and still-open
transactions are not waited for). No consumer group joins or commits. Records written with
``acks=1`` to a replicated topic become visible only once the high watermark passes them: pass
``at_least=n`` to keep reading until n records are there.
"""
from __future__ import annotations

import enum
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kengine.errors import KafkaError, KafkaTimeoutError, error_for_code

__all__ = ["ReadRecord", "TimestampType", "by_partition", "count", "read_all", "values"]


class TimestampType(enum.IntEnum):
    """What a record's timestamp means; values as in Kafka's Java ``TimestampType``."""

    NO_TIMESTAMP_TYPE = -1
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


@dataclass(frozen=True)
class ReadRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    #: in record order; a header may repeat a key and may have a null value
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int
    timestamp_type: TimestampType


def _timestamp_type(librdkafka_type: int) -> TimestampType:
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

    if librdkafka_type == TIMESTAMP_CREATE_TIME:
        return TimestampType.CREATE_TIME
    if librdkafka_type == TIMESTAMP_LOG_APPEND_TIME:
        return TimestampType.LOG_APPEND_TIME
    return TimestampType.NO_TIMESTAMP_TYPE


def read_all(bootstrap: str, topic: str, *, read_committed: bool = False,
             timeout: float = 60.0, at_least: int = 0) -> list[ReadRecord]:
    """Every record of ``topic``, sorted by (partition, offset).

    Raises :class:`KafkaTimeoutError` naming the partitions not read to their end (or the
    shortfall against ``at_least``) after ``timeout`` seconds, and :class:`LookupError` when
    the topic does not exist."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    from confluent_kafka import KafkaError as RdKafkaError

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        # librdkafka requires a group id; assign() never joins the group and nothing commits
        "group.id": f"kengine-readback-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "check.crcs": True,
        "fetch.wait.max.ms": 50,
        "log_level": 4,
    })
    try:
        deadline = time.monotonic() + timeout
        partitions = _partitions(consumer, topic, deadline)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        records: list[ReadRecord] = []
        while pending or len(records) < at_least:
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(_shortfall(topic, consumer, pending, records, at_least,
                                                   timeout))
            for msg in consumer.consume(num_messages=10000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == RdKafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    what = f"reading {topic!r} partition {msg.partition()}: {err.str()}"
                    # positive codes are Kafka's; negative ones are librdkafka's own
                    raise error_for_code(err.code(), what) if err.code() > 0 else KafkaError(what)
                ts_type, ts = msg.timestamp()
                records.append(ReadRecord(
                    topic=topic, partition=msg.partition(), offset=msg.offset(), key=msg.key(),
                    value=msg.value(), headers=list(msg.headers() or ()), timestamp_ms=ts,
                    timestamp_type=_timestamp_type(ts_type)))
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        consumer.close()


def _partitions(consumer: Any, topic: str, deadline: float) -> list[int]:
    while True:
        meta = consumer.list_topics(topic, timeout=max(deadline - time.monotonic(), 1.0))
        t = meta.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            return sorted(t.partitions)
        if time.monotonic() > deadline:
            raise LookupError(f"topic {topic!r} does not exist ({t.error if t else 'no metadata'})")
        time.sleep(0.1)


def _shortfall(topic: str, consumer: Any, pending: set[int], records: list[ReadRecord],
               at_least: int, timeout: float) -> str:
    from confluent_kafka import TopicPartition

    parts = []
    if pending:
        positions = consumer.position([TopicPartition(topic, p) for p in sorted(pending)])
        parts.append("partitions not read to their end: " + ", ".join(
            f"{tp.partition} (at offset {tp.offset})" for tp in positions))
    if len(records) < at_least:
        parts.append(f"{len(records)} records read, expected at least {at_least}")
    return f"reading {topic!r} did not finish in {timeout:.0f} s: " + "; ".join(parts)


def count(bootstrap: str, topic: str, *, read_committed: bool = False,
          timeout: float = 60.0) -> int:
    """How many records a consumer sees (control records and, with ``read_committed``,
    aborted ones excluded, unlike a difference of offsets)."""
    return len(read_all(bootstrap, topic, read_committed=read_committed, timeout=timeout))


def by_partition(records: Iterable[ReadRecord]) -> dict[int, list[ReadRecord]]:
    """Records grouped by partition, each list in offset order."""
    groups: dict[int, list[ReadRecord]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        groups[r.partition].append(r)
    return dict(groups)


def values(records: Iterable[ReadRecord]) -> list[bytes | None]:
    return [r.value for r in records]
