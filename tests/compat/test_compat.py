"""kengine against one Kafka version of the matrix (``--kafka-version``): every write read back
with confluent-kafka (librdkafka), read_committed where transactions are involved.

Each test backs one row of the README's compatibility table (``compat_feature``). Nothing here
depends on the version except what the protocol says must differ: which versions are
negotiated and whether transactions v2 (KIP-890) is used, asserted in
``test_negotiated_versions`` against what each release's brokers offer.
"""
from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict

import pytest

from kengine import Producer
from kengine.connection import API
from kengine.errors import KafkaError, ProducerFencedError
from kengine.localkafka import KafkaCluster
from kengine_ext import pick_version
from tests.compat.conftest import SCRAM_USERS
from tests.support.readback import by_partition, read_all

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

#: The highest version each release's brokers offer (their ApiVersions answer), from Kafka's
#: message schemas at that release; ``transaction.version`` is the level a fresh cluster of
#: that release finalizes (absent before 3.9: no such feature).
BROKER_MAXIMA: dict[str, dict[str, int]] = {
    "3.0.2": {"Produce": 9, "InitProducerId": 4, "EndTxn": 3, "ApiVersions": 3,
              "transaction.version": 0},
    "3.9.1": {"Produce": 11, "InitProducerId": 5, "EndTxn": 4, "ApiVersions": 4,
              "transaction.version": 0},
    "4.0.2": {"Produce": 12, "InitProducerId": 5, "EndTxn": 5, "ApiVersions": 4,
              "transaction.version": 2},
    "4.4.0": {"Produce": 13, "InitProducerId": 6, "EndTxn": 5, "ApiVersions": 4,
              "transaction.version": 2},
}
_API_KEYS = {"Produce": API.PRODUCE, "InitProducerId": API.INIT_PRODUCER_ID,
             "EndTxn": API.END_TXN, "ApiVersions": API.API_VERSIONS}


def _txn_id(topic: str) -> str:
    return f"compat-{topic}-{uuid.uuid4().hex[:6]}"


def _uses_transactions_v2(producer: Producer) -> bool:
    txn = producer._txn
    assert txn is not None
    return bool(txn._transactions_v2)


def _negotiated(producer: Producer) -> dict[str, int]:
    """What the producer's connections settled on: the API version of every request kind, and
    the ApiVersions version the connection set-up used."""
    found: dict[str, set[int]] = defaultdict(set)
    for conn in producer._client.connections.values():
        for name, key in _API_KEYS.items():
            if key == API.API_VERSIONS:
                found[name].add(conn.api_versions_version)
            elif key in conn.versions:
                found[name].add(conn.versions[key])
    assert all(len(v) == 1 for v in found.values()), f"brokers disagree: {dict(found)}"
    return {name: versions.pop() for name, versions in found.items()}


# --------------------------------------------------------------------------- produce


@pytest.mark.compat_feature("Produce and read back, every codec")
@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_reads_back(compat_kafka, topic_factory, codec):
    topic = topic_factory(compat_kafka, partitions=3)
    sent = [(b"key-%d" % (i % 17), b"%s-value-%d-" % (codec.encode(), i) * (1 + i % 5))
            for i in range(600)]
    with Producer(bootstrap_servers=compat_kafka.bootstrap_servers, compression_type=codec,
                  linger_ms=20) as p:
        futures = [p.send(topic, v, key=k, headers=[("i", b"%d" % i), ("codec", codec)])
                   for i, (k, v) in enumerate(sent)]
        p.flush(60)
        assert [f.exception(0) for f in futures] == [None] * len(sent)
    records = read_all(compat_kafka.bootstrap_servers, topic)
    assert len(records) == len(sent)
    for part in by_partition(records).values():
        indices = [int(dict(r.headers)["i"]) for r in part]
        assert indices == sorted(indices)          # order kept per partition
        for r, i in zip(part, indices, strict=True):
            assert (r.key, r.value) == sent[i]
            assert dict(r.headers)["codec"] == codec.encode()


@pytest.mark.compat_feature("Keyed placement = Java's (murmur2), checked against librdkafka")
def test_keyed_placement_matches_librdkafka_murmur2(compat_kafka, topic_factory):
    from confluent_kafka import Producer as RdProducer

    ours = topic_factory(compat_kafka, partitions=7)
    theirs = topic_factory(compat_kafka, partitions=7)
    keys = [b"user-%d" % i for i in range(300)] + [uuid.uuid4().bytes for _ in range(100)]
    with Producer(bootstrap_servers=compat_kafka.bootstrap_servers) as p:
        for k in keys:
            p.send(ours, k, key=k)
    rd = RdProducer({"bootstrap.servers": compat_kafka.bootstrap_servers,
                     "partitioner": "murmur2_random"})   # librdkafka's Java-compatible one
    for k in keys:
        rd.produce(theirs, k, key=k)
    assert rd.flush(60) == 0
    placed = {name: {r.key: r.partition for r in read_all(compat_kafka.bootstrap_servers, name)}
              for name in (ours, theirs)}
    assert len(placed[ours]) == len(keys)
    assert placed[ours] == placed[theirs]


@pytest.mark.compat_feature("Idempotent produce through a leader SIGKILL (3 brokers)")
def test_idempotent_produce_through_leader_kill(compat_cluster, topic_factory):
    """Keyed records with per-key sequence numbers while the leader of partition 0 is
    SIGKILLed, then brought back: nothing lost, nothing twice, order kept per key."""
    cluster: KafkaCluster = compat_cluster
    topic = topic_factory(cluster, partitions=6, replication_factor=3)
    total, keys = 60_000, 300
    failures: list[BaseException] = []
    halfway = threading.Event()

    def on_delivery(err, md):
        if err is not None:
            failures.append(err)

    def chaos() -> None:
        halfway.wait(120)
        victim = cluster.leader_of(topic, 0)
        cluster.kill(victim)
        time.sleep(2.0)
        cluster.start(victim)

    with Producer(bootstrap_servers=cluster.bootstrap_servers, acks="all", linger_ms=5,
                  request_timeout_ms=10_000, delivery_timeout_ms=300_000,
                  max_block_ms=300_000) as p:
        assert p.config["enable.idempotence"]
        killer = threading.Thread(target=chaos, daemon=True)
        killer.start()
        seq = [0] * keys
        started = time.monotonic()
        for i in range(total):
            k = i % keys
            p.send(topic, b"%d:%d" % (k, seq[k]), key=b"key-%d" % k, on_delivery=on_delivery)
            seq[k] += 1
            if i == total // 3:
                halfway.set()
            if i % 2_000 == 1_999:
                # paced (~12 s) so that the kill lands while records are in flight
                ahead = (i + 1) / 5_000 - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        p.flush(300)
        killer.join(120)
    assert not failures, failures[:3]
    records = read_all(cluster.bootstrap_servers, topic, at_least=total, timeout=180)
    seen = [tuple(map(int, r.value.split(b":"))) for r in records]
    assert len(seen) == total, f"{len(seen) - total:+d} records"
    assert len(set(seen)) == total
    per_key: dict[int, list[int]] = defaultdict(list)
    for r in records:   # sorted by (partition, offset)
        k, s = map(int, r.value.split(b":"))
        per_key[k].append(s)
    for k, seqs in per_key.items():
        assert seqs == list(range(len(seqs))), f"key {k} out of order"


@pytest.mark.compat_feature("MESSAGE_TOO_LARGE: the batch is split and resent")
def test_batches_over_the_topic_limit_are_split(compat_kafka, topic_factory):
    topic = topic_factory(compat_kafka, partitions=1, config={"max.message.bytes": 2048})
    sent = [b"r%04d-" % i + bytes(random.Random(i).randbytes(90)) for i in range(300)]
    with Producer(bootstrap_servers=compat_kafka.bootstrap_servers, batch_size=64 * 1024,
                  linger_ms=1000) as p:
        futures = [p.send(topic, v) for v in sent]
        p.flush(120)
        assert [f.exception(0) for f in futures] == [None] * len(sent)
        assert p.metrics()["batch-split-total"] > 0
    assert [r.value for r in read_all(compat_kafka.bootstrap_servers, topic)] == sent


@pytest.mark.compat_feature("SASL SCRAM-SHA-256 and SCRAM-SHA-512")
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_scram(compat_kafka, topic_factory, mechanism):
    topic = topic_factory(compat_kafka)
    user, password = next(iter(SCRAM_USERS.items()))
    with Producer(bootstrap_servers=compat_kafka.bootstrap_servers_for("SASL_PLAINTEXT"),
                  security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                  sasl_username=user, sasl_password=password) as p:
        p.send(topic, mechanism.encode()).result(60)
    assert [r.value for r in read_all(compat_kafka.bootstrap_servers, topic)] == \
        [mechanism.encode()]


# --------------------------------------------------------------------------- transactions


@pytest.mark.compat_feature("Transactions: commit and abort, read_committed")
def test_transactions_commit_and_abort(compat_kafka, topic_factory, kafka_version):
    topics = [topic_factory(compat_kafka, partitions=3) for _ in range(2)]
    committed, aborted = [], []
    with Producer(bootstrap_servers=compat_kafka.bootstrap_servers,
                  transactional_id=_txn_id(topics[0])) as p:
        p.init_transactions()
        for t in range(12):
            p.begin_transaction()
            values = [b"t%d-r%d" % (t, r) for r in range(200)]
            for r, v in enumerate(values):
                p.send(topics[r % 2], v, key=b"%d" % r)
            if t % 3 == 2:
                p.abort_transaction()
                aborted += values
            else:
                p.commit_transaction()
                committed += values
        expected_v2 = BROKER_MAXIMA[kafka_version]["transaction.version"] >= 2
        assert _uses_transactions_v2(p) is expected_v2
    seen = [r.value for t in topics
            for r in read_all(compat_kafka.bootstrap_servers, t, read_committed=True)]
    assert sorted(seen) == sorted(committed)
    assert not set(seen) & set(aborted)


@pytest.mark.compat_feature("Transactions: a zombie producer is fenced")
def test_zombie_is_fenced(compat_kafka, topic_factory):
    topic = topic_factory(compat_kafka, partitions=2)
    txn_id = _txn_id(topic)
    zombie = Producer(bootstrap_servers=compat_kafka.bootstrap_servers, transactional_id=txn_id)
    try:
        zombie.init_transactions()
        zombie.begin_transaction()
        for i in range(50):
            zombie.send(topic, b"zombie-%d" % i)
        zombie.flush(60)
        with Producer(bootstrap_servers=compat_kafka.bootstrap_servers,
                      transactional_id=txn_id) as successor:
            successor.init_transactions()     # fences the zombie, aborts its transaction
            with successor.transaction():
                for i in range(50):
                    successor.send(topic, b"fresh-%d" % i)
        with pytest.raises(KafkaError) as info:
            zombie.commit_transaction()
        # Java: ProducerFencedException (v1), or INVALID_PRODUCER_EPOCH reported as fenced (v2)
        assert isinstance(info.value, ProducerFencedError) or "fenced" in str(info.value).lower()
    finally:
        zombie.close(10)
    values = [r.value for r in read_all(compat_kafka.bootstrap_servers, topic,
                                        read_committed=True)]
    assert sorted(values) == sorted(b"fresh-%d" % i for i in range(50))


@pytest.mark.compat_feature("send_offsets_to_transaction")
def test_send_offsets_to_transaction(compat_kafka, topic_factory):
    from confluent_kafka import Consumer, TopicPartition

    source = topic_factory(compat_kafka, partitions=2)
    sink = topic_factory(compat_kafka, partitions=1)
    group = f"compat-group-{uuid.uuid4().hex[:8]}"
    with Producer(bootstrap_servers=compat_kafka.bootstrap_servers,
                  transactional_id=_txn_id(sink)) as p:
        p.init_transactions()
        with p.transaction():
            p.send(sink, b"processed-1")
            p.send_offsets_to_transaction({(source, 0): 42, (source, 1): 7}, group)
        p.begin_transaction()
        p.send(sink, b"processed-2")
        p.send_offsets_to_transaction({(source, 0): 99, (source, 1): 99}, group)
        p.abort_transaction()
    consumer = Consumer({"bootstrap.servers": compat_kafka.bootstrap_servers,
                         "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_committed", "log_level": 4})
    try:
        committed = consumer.committed([TopicPartition(source, 0), TopicPartition(source, 1)],
                                       timeout=60)
    finally:
        consumer.close()
    assert [(tp.partition, tp.offset) for tp in committed] == [(0, 42), (1, 7)]
    assert [r.value for r in read_all(compat_kafka.bootstrap_servers, sink,
                                      read_committed=True)] == [b"processed-1"]


@pytest.mark.compat_feature("Transactions v1 where the cluster has no transactions v2")
def test_transactions_v1_without_transaction_version_2(tmp_path_factory, compat_kafka,
                                                       topic_factory, kafka_version):
    """As Java's client: transactions v2 only when the cluster finalized transaction.version 2
    (and the brokers speak EndTxn v5 / Produce v12); otherwise v1 (AddPartitionsToTxn before
    the first record of each partition). On 4.x this runs on a broker formatted with
    transaction.version=1; a 3.x broker has no transaction.version at all."""
    if BROKER_MAXIMA[kafka_version]["transaction.version"] >= 2:
        with KafkaCluster(1, tmp_path_factory.mktemp("tv1"), kafka_version=kafka_version,
                          format_args=["--feature", "transaction.version=1"]) as tv1:
            _v1_commit_and_abort(tv1, topic_factory)
    else:
        _v1_commit_and_abort(compat_kafka, topic_factory)


def _v1_commit_and_abort(cluster: KafkaCluster, topic_factory) -> None:
    topic = topic_factory(cluster, partitions=2)
    with Producer(bootstrap_servers=cluster.bootstrap_servers,
                  transactional_id=_txn_id(topic)) as p:
        p.init_transactions()
        with p.transaction():
            for i in range(100):
                p.send(topic, b"kept-%d" % i)
        p.begin_transaction()
        for i in range(100):
            p.send(topic, b"dropped-%d" % i)
        p.abort_transaction()
        assert _uses_transactions_v2(p) is False
    values = [r.value for r in read_all(cluster.bootstrap_servers, topic, read_committed=True)]
    assert sorted(values) == sorted(b"kept-%d" % i for i in range(100))


# --------------------------------------------------------------------------- negotiation


@pytest.mark.compat_feature("Negotiated versions as expected for the release")
def test_negotiated_versions(compat_kafka, topic_factory, kafka_version, compat_record):
    """Each request kind at min(kengine's newest, the broker's newest) version, and
    transactions v2 exactly when the cluster finalized transaction.version >= 2."""
    broker = BROKER_MAXIMA[kafka_version]
    topic = topic_factory(compat_kafka)
    with Producer(bootstrap_servers=compat_kafka.bootstrap_servers,
                  transactional_id=_txn_id(topic)) as p:
        p.init_transactions()
        with p.transaction():
            p.send(topic, b"x")
        negotiated = _negotiated(p)
        v2 = _uses_transactions_v2(p)
        features = {conn.finalized_features.get("transaction.version", 0)
                    for conn in p._client.connections.values()}
    compat_record("negotiated", negotiated)
    compat_record("transactions", "v2" if v2 else "v1")
    for name, key in _API_KEYS.items():
        ours = 4 if key == API.API_VERSIONS else pick_version(key, 0, 1 << 15)
        assert negotiated[name] == min(ours, broker[name]), (name, negotiated, broker)
    assert features == {broker["transaction.version"]}
    assert v2 is (broker["transaction.version"] >= 2)
