"""The producer against a real Kafka broker. Every write is verified by an independent
consumer (confluent-kafka / librdkafka), never by kengine's own decoder."""
from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

import pytest

import kengine_ext
from kengine import Producer
from kengine.errors import KafkaTimeoutError, ProducerClosedError
from tests.support.readback import TimestampType, read_all


def producer(kafka, **settings):
    settings.setdefault("enable_idempotence", False)
    return Producer(bootstrap_servers=kafka.bootstrap_servers, **settings)


def test_keyed_records_land_on_javas_partition_in_order(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=6)
    keys = [f"user-{i % 97}".encode() for i in range(3000)]
    with producer(kafka, linger_ms=2) as p:
        futures = [p.send(topic, b"%d" % i, key=k) for i, k in enumerate(keys)]
        p.flush()
        metas = [f.result() for f in futures]
    records = read_all(kafka.bootstrap_servers, topic)
    assert len(records) == 3000
    for r in records:
        assert r.partition == kengine_ext.partition_for_key(r.key, 6)
    per_partition = defaultdict(list)
    for r in records:
        per_partition[r.partition].append(int(r.value))
    for values in per_partition.values():
        assert values == sorted(values)   # order kept per partition
    assert {(m.partition, m.offset) for m in metas} == {(r.partition, r.offset) for r in records}


def test_headers_null_keys_tombstones_explicit_partitions_and_timestamps(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)
    with producer(kafka) as p:
        p.send(topic, b"v", key=None, headers=[("a", b"1"), ("a", None), ("b", b"")],
               partition=2, timestamp_ms=1_600_000_000_000)
        p.send(topic, None, key=b"deleted", partition=1, timestamp_ms=1_600_000_000_001)
        p.send(topic, b"", key=b"", partition=0, timestamp_ms=1_600_000_000_002)
        md = p.send(topic, "text value", key="text key", partition=0).result(30)
    assert (md.partition, md.offset) == (0, 1)
    recs = {(r.partition, r.offset): r for r in read_all(kafka.bootstrap_servers, topic)}
    r = recs[(2, 0)]
    assert (r.key, r.value, r.headers, r.timestamp_ms) == (
        None, b"v", [("a", b"1"), ("a", None), ("b", b"")], 1_600_000_000_000)
    assert r.timestamp_type == TimestampType.CREATE_TIME
    assert (recs[(1, 0)].key, recs[(1, 0)].value) == (b"deleted", None)
    assert (recs[(0, 0)].key, recs[(0, 0)].value) == (b"", b"")
    assert (recs[(0, 1)].key, recs[(0, 1)].value) == (b"text key", b"text value")


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_levels(kafka, topic_factory, acks):
    topic = topic_factory(kafka, partitions=2)
    # With acks=0 a broker that cannot take a write yet (a new topic's leader still loading)
    # drops it silently, by design: make sure both partitions are writable first.
    with producer(kafka, acks="all") as warm:
        for partition in (0, 1):
            warm.send(topic, b"warm", partition=partition).result(30)
    with producer(kafka, acks=acks) as p:
        futures = [p.send(topic, b"r%d" % i, key=b"%d" % i) for i in range(500)]
        p.flush()
        offsets = [f.result().offset for f in futures]
    if acks == "0":
        assert set(offsets) == {-1}   # the broker says nothing with acks=0
    else:
        assert all(o >= 0 for o in offsets)
    assert sorted(r.value for r in read_all(kafka.bootstrap_servers, topic, at_least=502)) == \
        sorted([b"warm", b"warm"] + [b"r%d" % i for i in range(500)])


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_compression_codec_is_accepted_and_read_back(kafka, topic_factory, codec):
    topic = topic_factory(kafka, partitions=2)
    values = [b'{"event": %d, "payload": "%s"}' % (i, b"abc" * (i % 20)) for i in range(2000)]
    with producer(kafka, compression_type=codec, linger_ms=20) as p:
        result = p.send_many(topic, values, keys=[b"%d" % (i % 10) for i in range(2000)])
        assert result.result(30).ok
    got = read_all(kafka.bootstrap_servers, topic)
    assert sorted(r.value for r in got) == sorted(values)


def test_send_many_headers_and_timestamps_round_trip(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=4)
    n = 5000
    values = [b"v%d" % i for i in range(n)]
    keys = [b"k%d" % (i % 50) for i in range(n)]
    headers = [[("seq", b"%d" % i)] for i in range(n)]
    stamps = [1_700_000_000_000 + i for i in range(n)]
    with producer(kafka) as p:
        res = p.send_many(topic, values, keys=keys, headers=headers, timestamps=stamps).result(30)
    assert res.ok and res.record_count == n
    md = res.metadata()
    got = read_all(kafka.bootstrap_servers, topic)
    assert len(got) == n
    for r in got:
        i = int(r.headers[0][1])
        assert (r.key, r.value, r.timestamp_ms) == (keys[i], values[i], stamps[i])
        assert (md[i].partition, md[i].offset) == (r.partition, r.offset)


def test_log_append_time_is_reported(kafka, topic_factory):
    topic = topic_factory(kafka, config={"message.timestamp.type": "LogAppendTime"})
    with producer(kafka) as p:
        before = int(time.time() * 1000)
        md = p.send(topic, b"x", timestamp_ms=1000).result(30)
    assert md.timestamp_type == 1 and md.timestamp >= before - 1000
    (r,) = read_all(kafka.bootstrap_servers, topic)
    assert r.timestamp_type == TimestampType.LOG_APPEND_TIME and r.timestamp_ms == md.timestamp


def test_send_blocks_then_raises_when_buffer_memory_is_exhausted(kafka, topic):
    with producer(kafka, buffer_memory=4096, batch_size=1024, max_block_ms=500,
                  linger_ms=0, delivery_timeout_ms=60_000, request_timeout_ms=30_000) as p:
        p.send(topic, b"first").result(30)
        kafka.pause(kafka.nodes[0])        # nothing drains: the buffer fills up
        try:
            accepted = []
            t0 = time.monotonic()
            with pytest.raises(KafkaTimeoutError, match="buffer.memory"):
                for _ in range(100):
                    accepted.append(p.send(topic, b"x" * 500))
            assert time.monotonic() - t0 >= 0.45
            assert 1 <= len(accepted) < 100
        finally:
            kafka.resume(kafka.nodes[0])
        p.flush(60)
        assert all(f.exception() is None for f in accepted)   # nothing accepted was lost
    assert len(read_all(kafka.bootstrap_servers, topic)) == 1 + len(accepted)


def test_records_time_out_cleanly_while_the_broker_is_down(kafka, topic):
    with producer(kafka, delivery_timeout_ms=3000, request_timeout_ms=1000, linger_ms=0,
                  reconnect_backoff_max_ms=200) as p:
        p.send(topic, b"warm").result(30)
        kafka.stop(kafka.nodes[0])
        try:
            t0 = time.monotonic()
            futures = [p.send(topic, b"lost-%d" % i) for i in range(10)]
            for f in futures:
                assert isinstance(f.exception(timeout=30), KafkaTimeoutError)
            assert time.monotonic() - t0 < 15
            assert "delivery.timeout.ms" in str(futures[0].exception())
        finally:
            kafka.heal()


def test_records_are_delivered_when_the_broker_returns_in_time(kafka, topic):
    with producer(kafka, delivery_timeout_ms=120_000, request_timeout_ms=5000, linger_ms=0,
                  reconnect_backoff_max_ms=200) as p:
        p.send(topic, b"warm").result(30)
        kafka.stop(kafka.nodes[0])
        futures = [p.send(topic, b"later-%d" % i) for i in range(20)]
        time.sleep(1)
        kafka.heal()
        assert [f.result(timeout=90).offset for f in futures] == list(range(1, 21))
    values = [r.value for r in read_all(kafka.bootstrap_servers, topic)]
    assert values == [b"warm"] + [b"later-%d" % i for i in range(20)]


def test_partitions_added_mid_run_get_traffic(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=2)
    with producer(kafka, metadata_max_age_ms=500) as p:
        for i in range(200):
            p.send(topic, b"%d" % i, key=b"%d" % i)
        p.flush()
        kafka.add_partitions(topic, 4)
        deadline = time.monotonic() + 30
        while p._accumulator.topic_state(topic).num_partitions < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        for i in range(200):
            p.send(topic, b"%d" % i, key=b"%d" % i)
        p.flush()
    parts = Counter(r.partition for r in read_all(kafka.bootstrap_servers, topic))
    assert set(parts) == {0, 1, 2, 3}
    assert sum(parts.values()) == 400


def test_unknown_topic_fails_after_max_block_ms(kafka):
    with producer(kafka, max_block_ms=1000) as p:
        t0 = time.monotonic()
        with pytest.raises(KafkaTimeoutError, match="not present in metadata"):
            p.send("no-such-topic-here", b"x")
        assert 0.9 <= time.monotonic() - t0 < 10


def test_close_delivers_pending_records_and_refuses_more(kafka, topic):
    p = producer(kafka, linger_ms=1000)
    futures = [p.send(topic, b"%d" % i) for i in range(100)]
    p.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(ProducerClosedError):
        p.send(topic, b"late")
    p.close()   # twice is fine
    assert len(read_all(kafka.bootstrap_servers, topic)) == 100


def test_eight_threads_share_one_producer_and_every_record_arrives_once(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=6)
    per_thread = 100_000
    errors = []
    with producer(kafka, retries=0, linger_ms=5, batch_size=65536) as p:
        def work(t):
            try:
                for i in range(per_thread):
                    p.send(topic, b"%d-%d" % (t, i), key=b"%d" % (i % 64))
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        p.flush()
    assert not errors
    values = Counter(r.value for r in read_all(kafka.bootstrap_servers, topic, timeout=180))
    assert len(values) == 8 * per_thread
    assert set(values.values()) == {1}


def test_purge_drops_the_unsent_records_and_fails_their_futures(kafka, topic_factory):
    from kengine.errors import IllegalStateError, RecordPurgedError
    topic = topic_factory(kafka, partitions=2)
    seen = []
    with producer(kafka, enable_idempotence=True) as p:
        p.send(topic, b"delivered-before", partition=0).result(30)
    with producer(kafka, enable_idempotence=True, linger_ms=600_000) as p:
        futures = [p.send(topic, b"purged-%d" % i, partition=i % 2,
                          on_delivery=lambda e, m: seen.append(e)) for i in range(10)]
        bulk = p.send_many(topic, [b"purged-bulk"] * 5, partition=1)
        assert p.purge() == 15
        for f in futures:
            err = f.exception(0)
            assert isinstance(err, RecordPurgedError) and not err.maybe_written
            assert "purge() dropped this record" in str(err)
        assert len(seen) == 10 and all(isinstance(e, RecordPurgedError) for e in seen)
        assert set(type(e) for e in bulk.result(0).errors.values()) == {RecordPurgedError}
        assert len(bulk.result(0).errors) == 5
        assert p.purge() == 0
        p.send(topic, b"after-purge", partition=1)   # the producer carries on (same sequences)
        p.flush()
    values = sorted(r.value for r in read_all(kafka.bootstrap_servers, topic))
    assert values == [b"after-purge", b"delivered-before"]
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  transactional_id=f"purge-{topic}") as t:
        with pytest.raises(IllegalStateError, match="abort_transaction"):
            t.purge()


def test_send_many_metadata_reports_timestamps_and_sizes(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)
    values = [b"v" * i if i % 4 else None for i in range(200)]
    keys = [None if i % 5 == 0 else b"k%d" % i for i in range(200)]
    stamps = [None if i % 7 == 0 else 1_700_000_000_000 + i for i in range(200)]
    with producer(kafka) as p:
        before = int(time.time() * 1000)
        result = p.send_many(topic, values, keys=keys, timestamps=stamps).result(60)
        after = int(time.time() * 1000)
    assert result.ok
    metadata = result.metadata()
    read = {(r.partition, r.offset): r for r in read_all(kafka.bootstrap_servers, topic)}
    for i, md in enumerate(metadata):
        r = read[(md.partition, md.offset)]
        assert (r.key, r.value) == (keys[i], values[i])
        assert md.timestamp == r.timestamp_ms   # what the broker holds
        if stamps[i] is not None:
            assert md.timestamp == stamps[i]
        else:
            assert before <= md.timestamp <= after
        assert md.timestamp_type == 0
        assert md.serialized_key_size == (-1 if keys[i] is None else len(keys[i]))
        assert md.serialized_value_size == (-1 if values[i] is None else len(values[i]))
