"""Batches a broker refuses as too large (MESSAGE_TOO_LARGE) are split and resent, as Java's
producer does; only a single record over the limit fails. Against real Kafka with topics whose
max.message.bytes is far below batch.size, read back with an independent consumer
(tests/fakebroker/test_split.py: the same against the fake broker, with faults)."""
from __future__ import annotations

import random

import pytest

from kengine import Producer
from kengine.errors import MessageTooLargeError, TransactionAbortableError
from tests.support.readback import by_partition, read_all


def producer(broker, **settings):
    settings.setdefault("retry_backoff_ms", 10)
    settings.setdefault("retry_backoff_max_ms", 100)
    settings.setdefault("request_timeout_ms", 5000)
    return Producer(bootstrap_servers=broker.bootstrap_servers, **settings)


def values(prefix, n, seed):
    # half random (so lz4 and zstd have something to do but cannot shrink it to nothing)
    rnd = random.Random(seed)
    return [b"%s%04d-" % (prefix, i) + rnd.randbytes(24).hex().encode() + b"." * 40
            for i in range(n)]


def check_sends(records_sent, futures, bulks):
    """Every future succeeded; offsets are consecutive per partition, in send order."""
    per_partition: dict[int, list[int]] = {}
    for f in futures:
        md = f.result(0)
        per_partition.setdefault(md.partition, []).append(md.offset)
    for bulk in bulks:
        result = bulk.result(0)
        assert result.ok, list(result.errors.values())[:3]
        for md in result.metadata():
            per_partition.setdefault(md.partition, []).append(md.offset)
    for offsets in per_partition.values():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    assert sum(len(o) for o in per_partition.values()) == records_sent


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
@pytest.mark.parametrize("idempotent", [True, False])
def test_kafka_topic_limit_below_batch_size(kafka, topic_factory, idempotent, codec):
    topic = topic_factory(kafka, partitions=2, config={"max.message.bytes": 2048})
    heard = []
    sent = {0: values(b"s0-", 150, 1) + values(b"b0-", 100, 2),
            1: values(b"s1-", 150, 3) + values(b"b1-", 100, 4)}
    with Producer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=idempotent,
                  batch_size=64 * 1024, linger_ms=2000, compression_type=codec, acks="all",
                  max_in_flight_requests_per_connection=5 if idempotent else 1) as p:
        futures = []
        for i in range(150):
            for part in (0, 1):
                futures.append(p.send(topic, sent[part][i], partition=part,
                                      on_delivery=lambda e, md: heard.append(e)))
        bulks = [p.send_many(topic, sent[part][150:], partition=part) for part in (0, 1)]
        p.flush(120)
        check_sends(500, futures, bulks)
        assert p.metrics()["batch-split-total"] > 0
    assert heard == [None] * 300      # (callbacks run after the futures are done: once closed)
    records = by_partition(read_all(kafka.bootstrap_servers, topic))
    for part in (0, 1):
        assert [r.value for r in records[part]] == sent[part]   # all once, in order


@pytest.mark.parametrize("idempotent", [True, False])
def test_kafka_only_the_record_over_the_topic_limit_fails(kafka, topic_factory, idempotent):
    topic = topic_factory(kafka, config={"max.message.bytes": 4096})
    small = values(b"x", 200, 5)
    sent = small[:100] + [b"B" * 8000] + small[100:]
    with Producer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=idempotent,
                  batch_size=64 * 1024, linger_ms=2000,
                  max_in_flight_requests_per_connection=5 if idempotent else 1) as p:
        futures = [p.send(topic, v) for v in sent]
        p.flush(120)
        errors = [f.exception(0) for f in futures]
        assert [i for i, e in enumerate(errors) if e is not None] == [100]
        assert isinstance(errors[100], MessageTooLargeError)
        offsets = [f.result(0).offset for i, f in enumerate(futures) if i != 100]
        assert offsets == list(range(200))
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic)] == small


def test_kafka_transaction_with_split_batches_commits_every_record_once(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=2, config={"max.message.bytes": 2048})
    sent = {0: values(b"t0-", 250, 6), 1: values(b"t1-", 250, 7)}
    with Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=topic,
                  batch_size=64 * 1024, linger_ms=2000, compression_type="lz4") as p:
        p.init_transactions()
        p.begin_transaction()
        futures = [p.send(topic, sent[part][i], partition=part)
                   for i in range(150) for part in (0, 1)]
        bulks = [p.send_many(topic, sent[part][150:], partition=part) for part in (0, 1)]
        p.commit_transaction()
        check_sends(500, futures, bulks)
        assert p.metrics()["batch-split-total"] > 0
    records = by_partition(read_all(kafka.bootstrap_servers, topic, read_committed=True))
    for part in (0, 1):
        assert [r.value for r in records[part]] == sent[part]


def test_kafka_a_record_failing_during_commit_fails_the_commit_and_abort_recovers(
        kafka, topic_factory):
    topic = topic_factory(kafka, config={"max.message.bytes": 4096})
    small = values(b"c", 50, 8)
    with Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=topic,
                  linger_ms=5000) as p:
        p.init_transactions()
        p.begin_transaction()
        futures = [p.send(topic, v) for v in small[:25]]
        oversized = p.send(topic, b"B" * 8000)    # fails only once commit flushes it
        # the commit waits for every batch, sees one fail for good and is never sent: the 25
        # records that did reach the log must not become visible without it
        with pytest.raises(TransactionAbortableError, match="abort_transaction") as info:
            p.commit_transaction()
        assert isinstance(info.value.__cause__, MessageTooLargeError)
        assert isinstance(oversized.exception(0), MessageTooLargeError)
        assert all(f.done() for f in futures)
        p.abort_transaction()
        with p.transaction():
            for v in small[25:]:
                p.send(topic, v)
    committed = read_all(kafka.bootstrap_servers, topic, read_committed=True)
    assert [r.value for r in committed] == small[25:]


def test_kafka_the_transaction_block_aborts_when_its_commit_finds_a_failed_record(
        kafka, topic_factory):
    topic = topic_factory(kafka, config={"max.message.bytes": 4096})
    with Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=topic,
                  linger_ms=5000) as p:
        p.init_transactions()
        with pytest.raises(TransactionAbortableError), p.transaction():
            p.send(topic, b"lost with its transaction")
            p.send(topic, b"B" * 8000)
        with p.transaction():      # aborted already: the producer carries on
            p.send(topic, b"next")
    committed = read_all(kafka.bootstrap_servers, topic, read_committed=True)
    assert [r.value for r in committed] == [b"next"]
