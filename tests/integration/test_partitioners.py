"""Partitioners against a real broker. Placement is compared with what other clients do on the
same broker (Kafka's own console producer, librdkafka through confluent-kafka), and every
write is read back with an independent consumer (tests/support/readback.py)."""
from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Producer as LibrdkafkaProducer

import kengine_ext
from kengine import Producer
from kengine.errors import PartitionerError
from kengine.partitioners import encode_composite_key, salted_subkeys
from tests.support.kafka_tools import run_tool
from tests.support.readback import read_all

# Text keys the console producer can carry (no tab, no newline): ASCII, multi-byte UTF-8, long.
KEYS = ([f"user-{i}" for i in range(300)] + [f"clé-{i}-ü€" for i in range(100)]
        + ["x" * n for n in range(1, 65)] + [f"order:2024:{i}" for i in range(36)])


def producer(kafka, **settings):
    settings.setdefault("enable_idempotence", False)
    return Producer(bootstrap_servers=kafka.bootstrap_servers, **settings)


def partitions_by_key(records, prefix):
    out = defaultdict(set)
    for r in records:
        if r.value.startswith(prefix):
            out[r.key].add(r.partition)
    return out


def test_keyed_records_of_kengine_and_kafkas_console_producer_share_partitions(kafka,
                                                                              topic_factory):
    topic = topic_factory(kafka, partitions=12)
    with producer(kafka) as p:
        for i, key in enumerate(KEYS):
            p.send(topic, b"kengine-%d" % i, key=key)
        p.flush(60)
    lines = "".join(f"{key}\tconsole-{i}\n" for i, key in enumerate(KEYS))
    run_tool(kafka, "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server",
             kafka.bootstrap_servers, "--topic", topic, "--reader-property", "parse.key=true",
             "--reader-property", "key.separator=\t", stdin=lines.encode(), check=True)
    records = read_all(kafka.bootstrap_servers, topic, at_least=2 * len(KEYS))
    assert len(records) == 2 * len(KEYS)
    ours = partitions_by_key(records, b"kengine-")
    java = partitions_by_key(records, b"console-")
    assert set(ours) == set(java) == {k.encode() for k in KEYS}
    for key in ours:
        assert len(ours[key]) == 1 and ours[key] == java[key], key
    assert len({p for ps in ours.values() for p in ps}) == 12


@pytest.mark.parametrize("name", ["consistent_random", "murmur2_random"])
def test_librdkafka_partitioners_place_keys_as_confluent_kafka_does(kafka, topic_factory, name):
    topic = topic_factory(kafka, partitions=7)
    theirs = LibrdkafkaProducer({"bootstrap.servers": kafka.bootstrap_servers,
                                 "partitioner": name, "linger.ms": 5})
    for i, key in enumerate(KEYS):
        theirs.produce(topic, b"librdkafka-%d" % i, key=key.encode())
    assert theirs.flush(60) == 0
    with producer(kafka, partitioner=name) as p:
        for i, key in enumerate(KEYS):
            p.send(topic, b"kengine-%d" % i, key=key)
        p.flush(60)
    records = read_all(kafka.bootstrap_servers, topic, at_least=2 * len(KEYS))
    ours = partitions_by_key(records, b"kengine-")
    librdkafka = partitions_by_key(records, b"librdkafka-")
    assert set(ours) == set(librdkafka) == {k.encode() for k in KEYS}
    for key in ours:
        assert len(ours[key]) == 1 and ours[key] == librdkafka[key], key


def test_round_robin_writes_the_same_number_of_records_to_every_partition(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=6)
    with producer(kafka, partitioner="round_robin") as p:
        for i in range(600):
            p.send(topic, b"%d" % i, key=b"one key for all")
        p.flush(60)
    counts = Counter(r.partition for r in read_all(kafka.bootstrap_servers, topic, at_least=600))
    assert counts == {p: 100 for p in range(6)}


def test_unkeyed_records_move_between_partitions_batch_by_batch(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=4)
    with producer(kafka, batch_size=4096, linger_ms=20) as p:
        futures = [p.send(topic, b"v" * 100) for _ in range(4000)]
        p.flush(60)
    placed = [f.result(0).partition for f in futures]
    switches = sum(1 for a, b in itertools.pairwise(placed) if a != b)
    assert 20 <= switches <= len(placed) // 10   # batch-sized runs, not record by record
    counts = Counter(r.partition for r in read_all(kafka.bootstrap_servers, topic,
                                                   at_least=4000))
    assert sum(counts.values()) == 4000 and set(counts) == {0, 1, 2, 3}


def test_composite_and_salted_partitioners_selected_by_name(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=16)
    with producer(kafka, partitioner="composite", value_serializer="json",
                  partitioner_composite_fields=["header:tenant", "value:order"]) as p:
        for i in range(200):
            p.send(topic, {"order": i % 20}, key=b"k%d" % i,
                   headers=[("tenant", b"t%d" % (i % 3))])
        p.flush(60)
    for r in read_all(kafka.bootstrap_servers, topic, at_least=200):
        composite = encode_composite_key([r.headers[0][1], json.loads(r.value)["order"]])
        assert r.partition == kengine_ext.partition_for_key(composite, 16)

    topic = topic_factory(kafka, partitions=16)
    with producer(kafka, partitioner="salted_hot_key", partitioner_salted_hot_keys=["hot"],
                  partitioner_salted_buckets=4) as p:
        for i in range(400):
            p.send(topic, b"%d" % i, key=b"hot" if i % 10 else b"cold-%d" % i)
        p.flush(60)
        metrics = p.metrics()["partitioner"]
    assert metrics["salted_keys"] == {"hot": {"source": "configured", "records": 360}}
    records = read_all(kafka.bootstrap_servers, topic, at_least=400)
    hot = Counter(r.partition for r in records if r.key == b"hot")
    assert set(hot) == {kengine_ext.partition_for_key(s, 16) for s in salted_subkeys(b"hot", 4)}
    for r in records:
        if r.key != b"hot":
            assert r.partition == kengine_ext.partition_for_key(r.key, 16)


def test_a_failing_partitioner_fails_only_its_records(kafka, topic_factory):
    class EvenOnly:
        def partition(self, topic, key, value, headers, num_partitions, available):
            if int(value) % 5 == 0:
                raise KeyError("no partition for multiples of five")
            return int(value) % num_partitions

    topic = topic_factory(kafka, partitions=3)
    failed = []
    with producer(kafka, partitioner=EvenOnly()) as p:
        for i in range(100):
            try:
                p.send(topic, b"%d" % i)
            except PartitionerError as e:
                failed.append((i, e))
        p.flush(60)
    assert [i for i, _ in failed] == list(range(0, 100, 5))
    assert all("KeyError" in str(e) and "EvenOnly" in str(e) for _, e in failed)
    records = read_all(kafka.bootstrap_servers, topic, at_least=80)
    assert sorted(int(r.value) for r in records) == [i for i in range(100) if i % 5]
    assert all(r.partition == int(r.value) % 3 for r in records)
