"""kengine.eos.ExactlyOncePipeline on one broker, in process: the loop commits outputs and
offsets together, an abortable error aborts and rewinds (the batch is redone, its outputs
appear once), a fenced producer ends run() with ProducerFencedError. Read back by
confluent-kafka (read_committed, committed()). The same loop under kills and a paused worker:
test_eos_pipeline.py."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from kengine import Producer
from kengine.eos import ExactlyOncePipeline, consumer_settings
from kengine.errors import ProducerFencedError
from tests.support.readback import read_all

RECORDS = 3000


def _fill(bootstrap: str, topic: str) -> None:
    with Producer(bootstrap_servers=bootstrap) as p:
        for i in range(RECORDS):
            p.send(topic, b"v-%d" % i, key=b"k-%d" % (i % 50))


#: what librdkafka's committed() raises, without retrying, while the group's coordinator moves
#: or loads (on a broker started for this test, its offsets partitions are still loading)
_COORDINATOR_NOT_READY = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                          KafkaError.COORDINATOR_NOT_AVAILABLE}


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                tps = c.committed([TopicPartition(topic, p) for p in range(partitions)],
                                  timeout=30)
                break
            except KafkaException as e:
                if e.args[0].code() not in _COORDINATOR_NOT_READY \
                        or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        c.close()
    return [tp.offset for tp in tps]


def test_a_refused_record_aborts_the_batch_which_is_redone_once(kafka, topic_factory):
    source = topic_factory(kafka, partitions=3)
    sink = topic_factory(kafka, partitions=3)
    group = f"eos-helper-{uuid.uuid4().hex[:8]}"
    _fill(kafka.bootstrap_servers, source)
    outputs = 0
    refused_once = False
    def transform(messages, producer):
        nonlocal outputs, refused_once
        for m in messages:
            producer.send(sink, m.value().replace(b"v-", b"out-"), key=m.key())
        if outputs >= 1000 and not refused_once:
            refused_once = True
            # refused before it leaves the client: the transaction must be aborted
            producer.send(sink, b"x" * 2_000_000)
        outputs += len(messages)

    consumer = Consumer(consumer_settings(kafka.bootstrap_servers, group, {"log_level": 0}))
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  transactional_id=f"eos-helper-{sink}") as producer:
        pipeline = ExactlyOncePipeline(consumer, producer, [source], transform,
                                       max_records=300, poll_timeout_s=0.5)
        runner = threading.Thread(target=pipeline.run)
        runner.start()
        # every input committed: stop
        deadline = time.monotonic() + 120
        while sum(_committed(kafka.bootstrap_servers, group, source, 3)) < RECORDS:
            assert time.monotonic() < deadline and runner.is_alive(), pipeline.stats
            time.sleep(0.5)
        pipeline.stop()
        runner.join(60)
    stats = pipeline.stats
    assert stats.records == RECORDS
    assert stats.aborted == 1 and stats.rewinds == 1
    assert "RecordTooLargeError" in stats.errors[0]
    out = [r.value for r in read_all(kafka.bootstrap_servers, sink, read_committed=True)]
    assert sorted(out) == sorted(b"out-%d" % i for i in range(RECORDS))
    # Nothing of the aborted batch is visible (above). Its outputs reach the log (hidden) only
    # when the sender had sent them before the abort; unsent ones are dropped by the abort, so
    # their count depends on timing (a CI run found none): only the lower bound is certain.
    # The chaos proof (test_eos_pipeline.py) checks aborted outputs that are in the log.
    assert len(read_all(kafka.bootstrap_servers, sink)) >= RECORDS


def test_a_fenced_producer_ends_run_with_the_fatal_error(kafka, topic_factory):
    source = topic_factory(kafka, partitions=1)
    sink = topic_factory(kafka, partitions=1)
    group = f"eos-fenced-{uuid.uuid4().hex[:8]}"
    txn_id = f"eos-fenced-{sink}"
    _fill(kafka.bootstrap_servers, source)
    fenced_by_successor = threading.Event()

    def transform(messages, producer):
        for m in messages:
            producer.send(sink, m.value(), key=m.key())
        if not fenced_by_successor.is_set():
            # a successor with the same transactional.id takes over mid-transaction
            with Producer(bootstrap_servers=kafka.bootstrap_servers,
                          transactional_id=txn_id) as successor:
                successor.init_transactions()
            fenced_by_successor.set()

    consumer = Consumer(consumer_settings(kafka.bootstrap_servers, group, {"log_level": 0}))
    with Producer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=txn_id) as p:
        pipeline = ExactlyOncePipeline(consumer, p, [source], transform, max_records=100)
        with pytest.raises(ProducerFencedError):
            pipeline.run()
    assert pipeline.stats.transactions == 0
    assert read_all(kafka.bootstrap_servers, sink, read_committed=True) == []
    assert _committed(kafka.bootstrap_servers, group, source, 1) == [-1001]   # none
