"""Batches a broker refuses as too large (MESSAGE_TOO_LARGE) are split and resent, as Java's
producer does; only a single record over the limit fails. Against the fake broker
(tests/support/fake_broker.py), which keeps idempotent producer state as a real broker does and
refuses batches over a topic's max.message.bytes, then against real Kafka with topics whose
max.message.bytes is far below batch.size, read back with an independent consumer."""
from __future__ import annotations

import logging
import random

import pytest

from kengine import Producer
from kengine.errors import MessageTooLargeError, TransactionAbortableError
from tests.support.fake_broker import PRODUCE, FakeBroker, Fault
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


# ---------------------------------------------------------------- fake broker


def test_a_refused_batch_is_resent_in_smaller_batches_with_its_sequences(caplog):
    heard = {}
    with FakeBroker({"t": 1}) as broker, producer(broker, linger_ms=10_000) as p:
        assert p.config["enable.idempotence"]
        broker.inject(Fault(PRODUCE, error_code=10, error_message="too big for t"))
        futures = [p.send("t", b"v%02d" % i,
                          on_delivery=lambda e, md, i=i: heard.__setitem__(i, (e, md)))
                   for i in range(20)]
        with caplog.at_level(logging.INFO, logger="kengine.sender"):
            p.flush(30)
        offsets = [f.result(0).offset for f in futures]
        assert p.metrics()["batch-split-total"] == 1
    assert offsets == list(range(20))
    assert {i: (e, md.offset) for i, (e, md) in heard.items()} == {i: (None, i) for i in range(20)}
    assert broker.values("t") == [b"v%02d" % i for i in range(20)]
    stored = broker.records("t")
    assert [(r.sequence, r.epoch) for r in stored] == [(i, 0) for i in range(20)]
    # the refused request carried all 20; the pieces follow it, each starting its sequences
    # where the one before ended
    counts = [s.record_counts[("t", 0)] for s in broker.requests(PRODUCE)]
    assert counts[0] == 20 and len(counts) >= 3 and sum(counts[1:]) == 20
    bases = sorted({r.base_sequence for r in stored})
    assert bases == [sum(counts[1:i]) for i in range(1, len(counts))]
    assert "refused a batch of 20 record(s)" in caplog.text


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
@pytest.mark.parametrize("idempotent", [True, False])
def test_batches_over_the_topic_limit_are_split_until_they_fit(idempotent, codec):
    sent = {0: values(b"s0-", 150, 1) + values(b"b0-", 100, 2),
            1: values(b"s1-", 150, 3) + values(b"b1-", 100, 4)}
    with FakeBroker({"t": 2}, max_message_bytes={"t": 700}) as broker, producer(
            broker, enable_idempotence=idempotent, linger_ms=5000, batch_size=16384,
            compression_type=codec,
            # without idempotence, only one request at a time keeps a partition's order
            max_in_flight_requests_per_connection=5 if idempotent else 1) as p:
        futures = {part: [p.send("t", v, partition=part) for v in sent[part][:150]]
                   for part in (0, 1)}
        bulks = {part: p.send_many("t", sent[part][150:], partition=part) for part in (0, 1)}
        p.flush(120)
        assert p.metrics()["batch-split-total"] > 0
        for part in (0, 1):
            offsets = [f.result(0).offset for f in futures[part]]
            result = bulks[part].result(0)
            assert result.ok
            offsets += [md.offset for md in result.metadata()]
            assert offsets == list(range(250))           # consecutive, in send order
    for part in (0, 1):
        stored = broker.records("t", part)
        assert [r.value for r in stored] == sent[part]    # once each, in order
        if idempotent:
            assert [(r.sequence, r.epoch) for r in stored] == [(i, 0) for i in range(250)]
    # batches of far more than fit went out first (7 records of ~100 bytes fit in 700)
    assert max(n for s in broker.requests(PRODUCE) for n in s.record_counts.values()) > 50


@pytest.mark.parametrize("idempotent", [True, False])
def test_only_the_record_over_the_topic_limit_fails(idempotent):
    small = [b"a%03d" % i for i in range(50)] + [b"c%03d" % i for i in range(50)]
    sent = small[:50] + [b"B" * 2000] + small[50:]
    with FakeBroker({"t": 1}, max_message_bytes={"t": 1000}) as broker, producer(
            broker, enable_idempotence=idempotent, linger_ms=5000,
            max_in_flight_requests_per_connection=5 if idempotent else 1) as p:
        futures = [p.send("t", v) for v in sent]
        p.flush(60)
        errors = [f.exception(0) for f in futures]
        assert [i for i, e in enumerate(errors) if e is not None] == [50]
        assert isinstance(errors[50], MessageTooLargeError)
        # the producer carries on
        assert p.send("t", b"after").result(30).offset == 100
    assert broker.values("t") == [*small, b"after"]


def test_a_record_over_the_topic_limit_is_dead_lettered_alone():
    with FakeBroker({"t": 1, "dlq": 1}, max_message_bytes={"t": 1000}) as broker, producer(
            broker, linger_ms=5000, dead_letter_topic="dlq") as p:
        futures = [p.send("t", v) for v in [b"x1", b"B" * 2000, b"x2"]]
        p.flush(60)
        assert [f.exception(0) is None for f in futures] == [True, False, True]
    assert broker.values("t") == [b"x1", b"x2"]
    assert broker.values("dlq") == [b"B" * 2000]


# ---------------------------------------------------------------- real Kafka


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
