"""Consumer offsets committed through kengine transactions, with the group metadata of a real
confluent-kafka consumer in a live group: the generation and member id reach the broker
(TxnOffsetCommit v3+), so the group coordinator commits for the current member and refuses a
stale one (KIP-447). The offsets are read back with confluent-kafka's ``committed()``, the
outputs with a read_committed confluent-kafka consumer."""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from kengine import Producer
from kengine.errors import IllegalGenerationError, UnknownMemberIdError
from kengine.group_metadata import group_metadata
from tests.support.readback import read_all


def _consumer(bootstrap: str, group: str, **extra: object) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "isolation.level": "read_committed",
                     "auto.offset.reset": "earliest", "session.timeout.ms": 10_000,
                     "heartbeat.interval.ms": 500, "log_level": 3, **extra})


def _poll_until(consumers: list[Consumer], done, timeout: float = 60.0) -> None:
    """Polls every consumer (which is what moves a classic-protocol rebalance on) until
    done() holds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the consumer group did not settle"
        for c in consumers:
            msg = c.poll(0.1)
            assert msg is None or msg.error() is None, msg.error()


def _fill(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    with Producer(bootstrap_servers=bootstrap) as p:
        for part in range(partitions):
            for i in range(per_partition):
                p.send(topic, b"in-%d-%d" % (part, i), partition=part)


def test_offsets_committed_in_a_transaction_are_the_groups_committed_offsets(kafka,
                                                                              topic_factory):
    source = topic_factory(kafka, partitions=3)
    sink = topic_factory(kafka, partitions=1)
    group = f"txn-offsets-{uuid.uuid4().hex[:8]}"
    _fill(kafka.bootstrap_servers, source, 3, 100)
    consumer = _consumer(kafka.bootstrap_servers, group)
    consumer.subscribe([source])
    try:
        seen: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(seen) < 300:
            assert time.monotonic() < deadline, f"consumed {len(seen)} of 300"
            for msg in consumer.consume(500, 0.5):
                assert msg.error() is None, msg.error()
                seen.append(msg.value())
        md = group_metadata(consumer.consumer_group_metadata())
        # a member of a live group: the fields that fencing needs are there to be sent
        assert md.group_id == group and md.generation_id >= 1 and md.member_id
        assignment = consumer.assignment()
        with Producer(bootstrap_servers=kafka.bootstrap_servers,
                      transactional_id=f"txn-offsets-{sink}") as p:
            p.init_transactions()
            with p.transaction():
                for v in seen:
                    p.send(sink, v.replace(b"in-", b"out-"))
                # the consumer's positions (TopicPartition list) and librdkafka's metadata
                p.send_offsets_to_transaction(consumer.position(assignment),
                                              consumer.consumer_group_metadata())
            # an aborted transaction's offsets never become the group's
            p.begin_transaction()
            p.send(sink, b"aborted")
            p.send_offsets_to_transaction({(source, 0): 1, (source, 1): 1, (source, 2): 1},
                                          consumer)
            p.abort_transaction()
        committed = consumer.committed(assignment, timeout=30)
    finally:
        consumer.close()
    assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 100), (1, 100),
                                                                     (2, 100)]
    # a consumer that joins later starts where the transaction left the group
    later = _consumer(kafka.bootstrap_servers, group)
    try:
        parts = [TopicPartition(source, i) for i in range(3)]
        assert [tp.offset for tp in later.committed(parts, timeout=30)] == [100, 100, 100]
    finally:
        later.close()
    out = [r.value for r in read_all(kafka.bootstrap_servers, sink, read_committed=True)]
    assert sorted(out) == sorted(v.replace(b"in-", b"out-") for v in seen)


def test_a_member_of_an_older_generation_is_refused_by_the_broker(kafka, topic_factory):
    """The zombie case: member A took its group metadata, then the group rebalanced (B joined)
    and A's generation is gone. A transaction committing offsets with A's old metadata is
    refused by the group coordinator (ILLEGAL_GENERATION) with a message that says what
    happened and what to do; the producer aborts and carries on, and the group's offsets are
    untouched."""
    source = topic_factory(kafka, partitions=2)
    sink = topic_factory(kafka, partitions=1)
    group = f"txn-zombie-{uuid.uuid4().hex[:8]}"
    _fill(kafka.bootstrap_servers, source, 2, 10)
    a = _consumer(kafka.bootstrap_servers, group)
    b = _consumer(kafka.bootstrap_servers, group)
    try:
        a.subscribe([source])
        _poll_until([a], lambda: len(a.assignment()) == 2)
        stale = a.consumer_group_metadata()
        old = group_metadata(stale)
        b.subscribe([source])
        _poll_until([a, b], lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1)
        fresh = group_metadata(a.consumer_group_metadata())
        assert fresh.member_id == old.member_id and fresh.generation_id > old.generation_id
        mine = a.assignment()[0].partition
        with Producer(bootstrap_servers=kafka.bootstrap_servers,
                      transactional_id=f"txn-zombie-{sink}") as p:
            p.init_transactions()
            p.begin_transaction()
            p.send(sink, b"from-the-zombie")
            with pytest.raises(IllegalGenerationError) as refused:
                p.send_offsets_to_transaction({(source, mine): 5}, stale)
            message = str(refused.value)
            assert f"generation {old.generation_id}" in message
            assert group in message and "abort the transaction" in message
            p.abort_transaction()
            # the same member with its current metadata commits
            with p.transaction():
                p.send(sink, b"current")
                p.send_offsets_to_transaction({(source, mine): 7}, a.consumer_group_metadata())
            # a member id the group never had is refused as well
            p.begin_transaction()
            with pytest.raises(UnknownMemberIdError, match="no longer knows this member"):
                p.send_offsets_to_transaction(
                    {(source, mine): 9},
                    type(old)(group, fresh.generation_id, "never-a-member", None))
            p.abort_transaction()
        committed = a.committed([TopicPartition(source, mine)], timeout=30)
    finally:
        a.close()
        b.close()
    assert [tp.offset for tp in committed] == [7]
    assert [r.value for r in read_all(kafka.bootstrap_servers, sink,
                                      read_committed=True)] == [b"current"]


def test_aiokafka_and_kafka_python_consumers_in_a_live_group(kafka, topic_factory):
    """aiokafka's consumer (read from its group coordinator) and kafka-python's
    ``group_metadata()`` give the broker the member's generation: the commit is accepted for
    the current member and shows in committed()."""
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTopicPartition

    source = topic_factory(kafka, partitions=1)
    sink = topic_factory(kafka, partitions=1)
    _fill(kafka.bootstrap_servers, source, 1, 20)
    ai_group, kp_group = (f"txn-{n}-{uuid.uuid4().hex[:8]}" for n in ("aio", "kp"))

    async def aiokafka_metadata():
        consumer = AIOKafkaConsumer(source, bootstrap_servers=kafka.bootstrap_servers,
                                    group_id=ai_group, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=10_000)
            deadline = time.monotonic() + 60
            while not consumer.assignment():
                assert time.monotonic() < deadline, "aiokafka never joined"
                await consumer.getmany(timeout_ms=500)
            return group_metadata(consumer)
        finally:
            await consumer.stop()

    ai_md = asyncio.run(aiokafka_metadata())
    assert ai_md.group_id == ai_group and ai_md.generation_id >= 1 and ai_md.member_id

    kp = KafkaConsumer(source, bootstrap_servers=kafka.bootstrap_servers, group_id=kp_group,
                       enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        deadline = time.monotonic() + 60
        while not kp.assignment():
            assert time.monotonic() < deadline, "kafka-python never joined"
            kp.poll(timeout_ms=500)
        kp_md = group_metadata(kp.group_metadata())
        assert kp_md.group_id == kp_group and kp_md.generation_id >= 1 and kp_md.member_id
        with Producer(bootstrap_servers=kafka.bootstrap_servers,
                      transactional_id=f"txn-libs-{sink}") as p:
            p.init_transactions()
            with p.transaction():
                p.send(sink, b"kafka-python")
                p.send_offsets_to_transaction({(source, 0): 11}, kp)   # the consumer itself
        # EndTxn returns once the commit is decided; the coordinator writes the markers after
        # that. Until they land, an OffsetFetch that does not ask for stable offsets (kafka-python
        # never does) answers "no offset": wait for the marker, as a consumer would.
        deadline = time.monotonic() + 30
        committed = kp.committed(KpTopicPartition(source, 0))
        while committed is None and time.monotonic() < deadline:
            time.sleep(0.1)
            committed = kp.committed(KpTopicPartition(source, 0))
    finally:
        kp.close()
    assert committed == 11
    # aiokafka's member left the group when it stopped: its old generation is refused
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  transactional_id=f"txn-aio-{sink}") as p:
        p.init_transactions()
        p.begin_transaction()
        with pytest.raises((UnknownMemberIdError, IllegalGenerationError)):
            p.send_offsets_to_transaction({(source, 0): 3}, ai_md)
        p.abort_transaction()
