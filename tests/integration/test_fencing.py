"""A transactional producer fenced by a newer one with the same transactional.id, on a real
broker: the first error its transactional calls (and its sends) raise is ProducerFencedError,
fatal, as in Java, not a request to abort. The record that met the fence fails with the
partition leader's INVALID_PRODUCER_EPOCH (InvalidProducerEpochError, as Java's
InvalidProducerEpochException); the newer producer's transaction is the one that commits."""
from __future__ import annotations

import pytest

from kengine import Producer
from kengine.errors import (
    InvalidProducerEpochError,
    ProducerFencedError,
    TransactionAbortableError,
)
from tests.support.readback import read_all
from tests.support.wait import wait_until


def _fenced_pair(kafka, topic):
    """A (in a transaction, one record acknowledged) and B, which fenced it."""
    txn_id = f"fence-{topic}"
    a = Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=txn_id)
    a.init_transactions()
    a.begin_transaction()
    a.send(topic, b"a-before-fence").result(60)
    b = Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=txn_id)
    b.init_transactions()   # fences A; the coordinator aborts A's transaction
    return a, b


def _b_commits(kafka, b, topic):
    with b.transaction():
        b.send(topic, b"b-after-fence")
    b.close()
    values = [r.value for r in read_all(kafka.bootstrap_servers, topic, read_committed=True)]
    assert values == [b"b-after-fence"]


def test_commit_after_a_fenced_send_raises_producer_fenced(kafka, topic_factory):
    topic = topic_factory(kafka)
    a, b = _fenced_pair(kafka, topic)
    try:
        fut = a.send(topic, b"a-after-fence")
        with pytest.raises(ProducerFencedError) as first:
            a.commit_transaction()
        assert not isinstance(first.value, TransactionAbortableError)
        assert f"fence-{topic}" in str(first.value)
        assert isinstance(fut.exception(60), InvalidProducerEpochError)
        # fatal: every later call says the same
        with pytest.raises(ProducerFencedError):
            a.abort_transaction()
        with pytest.raises(ProducerFencedError):
            a.send(topic, b"a-later")
        with pytest.raises(ProducerFencedError):
            a.begin_transaction()
    finally:
        a.close()
    _b_commits(kafka, b, topic)


def test_a_send_after_the_fence_is_known_raises_producer_fenced(kafka, topic_factory):
    topic = topic_factory(kafka)
    a, b = _fenced_pair(kafka, topic)
    try:
        assert isinstance(a.send(topic, b"a-after-fence").exception(60),
                          InvalidProducerEpochError)
        with pytest.raises(ProducerFencedError):
            a.send(topic, b"a-next")
        with pytest.raises(ProducerFencedError):
            a.send_many(topic, [b"a-next"])
    finally:
        a.close()
    _b_commits(kafka, b, topic)


def test_the_transaction_block_of_a_fenced_producer_raises_producer_fenced(kafka, topic_factory):
    topic = topic_factory(kafka)
    txn_id = f"fence-{topic}"
    a = Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=txn_id)
    b = Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=txn_id)
    try:
        a.init_transactions()
        with pytest.raises(ProducerFencedError):
            with a.transaction():
                a.send(topic, b"a-before-fence").result(60)
                b.init_transactions()
                a.send(topic, b"a-after-fence")
    finally:
        a.close()
    _b_commits(kafka, b, topic)


def _end_offset(kafka, topic: str) -> int:
    """Partition 0's high watermark, as confluent-kafka's consumer reads it."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "end-offset"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def test_a_commit_after_the_coordinator_aborted_a_timed_out_transaction_is_fenced(
        kafka, topic_factory):
    """The coordinator aborts a transaction older than transaction.timeout.ms by itself and
    bumps the epoch. A commit sent afterwards carries the epoch just below it, which a
    transactions-v2 coordinator (Kafka 4.x) takes for a retried EndTxn and, before
    KAFKA-20785, answers INVALID_TXN_STATE; later ones answer PRODUCER_FENCED. Either way the
    user is told the transaction was aborted for its age and the producer is fenced."""
    topic = topic_factory(kafka, partitions=1)
    txn_id = f"timeout-{topic}"
    a = Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=txn_id,
                 transaction_timeout_ms=1000)
    try:
        a.init_transactions()
        a.begin_transaction()
        assert a._transactions().transactions_v2   # Kafka 4.x: the INVALID_TXN_STATE case
        a.send(topic, b"too-late").result(60)
        # the abort marker the coordinator writes (after its cleanup interval, 10 s by
        # default) moves the end offset past the record
        wait_until(lambda: _end_offset(kafka, topic) == 2,
                   what="the coordinator to abort the timed-out transaction", timeout=60)
        with pytest.raises(ProducerFencedError) as fenced:
            a.commit_transaction()
        message = str(fenced.value)
        assert not isinstance(fenced.value, TransactionAbortableError)
        assert "transaction.timeout.ms=1000" in message and "the coordinator aborted it" in message
        assert txn_id in message and "init_transactions()" in message
        with pytest.raises(ProducerFencedError):
            a.begin_transaction()
    finally:
        a.close()
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic, read_committed=True,
                                      timeout=5)] == []
    # what the message says to do works: a new producer with the same transactional.id
    b = Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=txn_id)
    b.init_transactions()
    _b_commits(kafka, b, topic)
