"""Exactly-once proofs against a real three-broker cluster (replication factor 3,
min.insync.replicas=2): idempotence under leader kills, transactions, zombie fencing, not enough
replicas, crash recovery. Every check reads back with an independent consumer (confluent-kafka),
read_committed where transactions are involved."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kengine import Producer
from kengine.errors import KafkaTimeoutError, NotEnoughReplicasError, ProducerFencedError
from kengine.localkafka.launcher import KafkaCluster
from tests.support.log_dump import dump_partition, summary
from tests.support.readback import read_all
from tests.support.txn_coordinator import transaction_coordinator

ROOT = Path(__file__).resolve().parents[2]


def test_no_loss_no_duplicates_while_leaders_are_killed(kafka_cluster, topic_factory):
    """500,000 keyed records with per-key sequence numbers, acks=all, idempotent, while the
    leader of a partition is SIGKILLed and restarted at least five times."""
    topic = topic_factory(kafka_cluster, partitions=6, replication_factor=3)
    total, keys = 500_000, 1000
    failures: list[BaseException] = []
    kills: list[int] = []
    done = threading.Event()

    def on_delivery(err, md):
        if err is not None:
            failures.append(err)

    def chaos() -> None:
        rnd = random.Random(7)
        while not done.is_set() or len(kills) < 5:
            time.sleep(2.0)
            victim = kafka_cluster.leader_of(topic, rnd.randrange(6))
            kafka_cluster.kill(victim)
            kills.append(victim)
            time.sleep(3.0)
            kafka_cluster.start(victim)   # waits until it answers again
            kafka_cluster.wait_in_sync(topic, timeout=120)

    with Producer(bootstrap_servers=kafka_cluster.bootstrap_servers, acks="all",
                  linger_ms=5, request_timeout_ms=10_000, delivery_timeout_ms=600_000,
                  max_block_ms=600_000, retry_backoff_ms=50) as p:
        assert p.config["enable.idempotence"]
        killer = threading.Thread(target=chaos, daemon=True)
        killer.start()
        seq = [0] * keys
        started = time.monotonic()
        for i in range(total):
            k = i % keys
            p.send(topic, b"%d:%d" % (k, seq[k]), key=b"key-%d" % k, on_delivery=on_delivery)
            seq[k] += 1
            if i % 10_000 == 9_999:
                # pace the run (~60 s) so the kills land while records are in flight
                ahead = (i + 1) / 8_500 - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        p.flush()
        done.set()
        killer.join(timeout=300)
    assert len(kills) >= 5
    assert not failures, failures[:3]

    records = read_all(kafka_cluster.bootstrap_servers, topic, at_least=total, timeout=300)
    seen = [tuple(map(int, r.value.split(b":"))) for r in records]
    assert len(seen) == total, f"{len(seen) - total:+d} records"       # nothing lost or doubled
    assert len(set(seen)) == total                                     # no duplicates
    per_key: dict[int, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        k, s = map(int, r.value.split(b":"))
        per_key[k].append(s)
    for k, seqs in per_key.items():
        assert seqs == list(range(len(seqs))), f"key {k} out of order"  # order kept per key


def test_transactions_commit_and_abort_across_three_topics(kafka_cluster, topic_factory):
    topics = [topic_factory(kafka_cluster, partitions=3, replication_factor=3) for _ in range(3)]
    committed, aborted = set(), set()
    with Producer(bootstrap_servers=kafka_cluster.bootstrap_servers,
                  transactional_id=f"txn-{topics[0]}") as p:
        p.init_transactions()
        for t in range(100):
            p.begin_transaction()
            values = [b"t%d-r%d" % (t, r) for r in range(1000)]
            for r, v in enumerate(values):
                p.send(topics[r % 3], v, key=b"%d" % r)
            if t % 10 == 9:
                p.abort_transaction()
                aborted.update(values)
            else:
                p.commit_transaction()
                committed.update(values)
    seen = []
    for topic in topics:
        seen += [r.value for r in read_all(kafka_cluster.bootstrap_servers, topic,
                                           read_committed=True, timeout=120)]
    assert len(seen) == len(set(seen)) == 90_000
    assert set(seen) == committed
    assert not set(seen) & aborted


def _child(bootstrap: str, topic: str, txn_id: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.txn_child", bootstrap, topic, txn_id, str(count)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 120) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert result and result[0].startswith(expected), f"child said {result!r}"
    return result[0]


def test_zombie_producer_is_fenced(kafka_cluster, topic_factory):
    topic = topic_factory(kafka_cluster, partitions=3, replication_factor=3)
    txn_id = f"zombie-{topic}"
    zombie = _child(kafka_cluster.bootstrap_servers, topic, txn_id, 500)
    try:
        _wait_for_line(zombie, "READY")
        os.kill(zombie.pid, signal.SIGSTOP)      # frozen with its transaction open
        with Producer(bootstrap_servers=kafka_cluster.bootstrap_servers,
                      transactional_id=txn_id) as b:
            b.init_transactions()                # fences the zombie, aborts its transaction
            with b.transaction():
                for i in range(100):
                    b.send(topic, b"fresh-%d" % i)
        os.kill(zombie.pid, signal.SIGCONT)
        zombie.stdin.write("commit\n")           # type: ignore[union-attr]
        zombie.stdin.flush()                     # type: ignore[union-attr]
        line = _wait_for_line(zombie, "FENCED")
        assert "fenced" in line.lower()
        assert zombie.wait(60) == 0
    finally:
        if zombie.poll() is None:
            os.kill(zombie.pid, signal.SIGCONT)
            zombie.kill()
    values = [r.value for r in read_all(kafka_cluster.bootstrap_servers, topic,
                                        read_committed=True)]
    assert sorted(values) == sorted(b"fresh-%d" % i for i in range(100))
    # the zombie's records did reach the log (aborted): the fence, not a lost send, hid them
    everything = [r.value for r in read_all(kafka_cluster.bootstrap_servers, topic)]
    assert sum(v.startswith(b"zombie-") for v in everything) == 500


def test_a_transaction_begun_while_its_coordinator_is_down_gets_its_own_epoch(kafka_cluster,
                                                                            topic_factory):
    """Transactions v2 ends every transaction with a new epoch, which is what keeps one
    transaction's batches out of the previous one's while its markers are on their way. A
    transaction begun while its coordinator was down once ran under v1, which keeps the epoch:
    the next transaction then wrote with that same epoch, and in the exactly-once chaos test a
    partition leader put its batches into the v1 transaction, whose late COMMIT marker made an
    aborted transaction's records visible. The oracle is the broker's own log (Kafka's
    DumpLogSegments): three transactions, three epochs, each batch followed by a COMMIT
    marker of its own."""
    topic = topic_factory(kafka_cluster, partitions=1, replication_factor=3)
    txn_id = f"coordinator-down-{uuid.uuid4().hex[:8]}"
    with Producer(bootstrap_servers=kafka_cluster.bootstrap_servers, transactional_id=txn_id,
                  acks="all", max_block_ms=120_000) as p:
        p.init_transactions()
        with p.transaction():
            p.send(topic, b"before the kill")
        victim = transaction_coordinator(kafka_cluster, txn_id)
        kafka_cluster.kill(victim)
        try:
            time.sleep(1)   # the producer has seen its connection to the coordinator close
            with p.transaction():   # begun while no coordinator answers; commits once one does
                p.send(topic, b"begun with the coordinator down")
            with p.transaction():
                p.send(topic, b"after")
        finally:
            kafka_cluster.start(victim)
            kafka_cluster.wait_in_sync(topic, timeout=120)
    committed = read_all(kafka_cluster.bootstrap_servers, topic, read_committed=True,
                         at_least=3, timeout=120)
    assert [r.value for r in committed] == [b"before the kill", b"begun with the coordinator down",
                                            b"after"]
    batches = dump_partition(kafka_cluster, topic, 0)
    data = [b for b in batches if b.marker is None]
    assert len({b.producer_epoch for b in data}) == 3, summary(batches)
    # A coordinator that takes over a transaction it finds in PrepareCommit writes its markers
    # again, so a COMMIT may repeat (same epoch, nothing between): the second one ends nothing.
    ended = [b for i, b in enumerate(batches)
             if not (i and b.marker and batches[i - 1].marker == b.marker
                     and batches[i - 1].producer_epoch == b.producer_epoch)]
    assert [b.marker for b in ended] == [None, "COMMIT"] * 3, summary(batches)


def test_crashed_transactional_producer_is_recovered_by_its_successor(kafka_cluster,
                                                                       topic_factory):
    topic = topic_factory(kafka_cluster, partitions=3, replication_factor=3)
    txn_id = f"crash-{topic}"
    crashed = _child(kafka_cluster.bootstrap_servers, topic, txn_id, 300)
    try:
        _wait_for_line(crashed, "READY")
        crashed.kill()                           # SIGKILL in the middle of its transaction
        crashed.wait(30)
    finally:
        if crashed.poll() is None:
            crashed.kill()
    with Producer(bootstrap_servers=kafka_cluster.bootstrap_servers,
                  transactional_id=txn_id) as p:
        p.init_transactions()                    # aborts what the crashed one left open
        with p.transaction():
            for i in range(50):
                p.send(topic, b"after-%d" % i)
    values = [r.value for r in read_all(kafka_cluster.bootstrap_servers, topic,
                                        read_committed=True)]
    assert sorted(values) == sorted(b"after-%d" % i for i in range(50))
    everything = [r.value for r in read_all(kafka_cluster.bootstrap_servers, topic)]
    assert sum(v.startswith(b"zombie-") for v in everything) == 300


@pytest.fixture(scope="module")
def controller_cluster(tmp_path_factory) -> Iterator[KafkaCluster]:
    """Three broker-only nodes and a controller of their own: two brokers can be killed while
    the controller shrinks the ISR (with combined nodes that would lose the quorum)."""
    with KafkaCluster(3, tmp_path_factory.mktemp("controller_cluster"),
                      broker_config={"min.insync.replicas": 2},
                      dedicated_controller=True) as cluster:
        yield cluster


@contextmanager
def _leader_alone(cluster: KafkaCluster, topic: str) -> Iterator[None]:
    """Kills partition 0's followers and waits until the ISR is its leader alone; restarts
    them on the way out."""
    leader = cluster.leader_of(topic, 0)
    for n in cluster.nodes:
        if n != leader:
            cluster.kill(n)
    try:
        deadline = time.monotonic() + 60
        while set(cluster.partition(topic, 0).isr) != {leader}:
            assert time.monotonic() < deadline, f"ISR never shrank to {{{leader}}}"
            time.sleep(0.2)
        yield
    finally:
        cluster.heal()


def _acks_all_producer(cluster: KafkaCluster, delivery_timeout_ms: int) -> Producer:
    return Producer(bootstrap_servers=cluster.bootstrap_servers, acks="all",
                    delivery_timeout_ms=delivery_timeout_ms, request_timeout_ms=5_000,
                    linger_ms=0, retry_backoff_ms=200)


def test_not_enough_replicas_is_retried_until_delivery_timeout(controller_cluster,
                                                               topic_factory):
    cluster = controller_cluster
    topic = topic_factory(cluster, partitions=1, replication_factor=3)
    with _acks_all_producer(cluster, 12_000) as p:
        p.send(topic, b"before").result(60)
        with _leader_alone(cluster, topic):
            t0 = time.monotonic()
            futures = [p.send(topic, b"doomed-%d" % i) for i in range(20)]
            errors = [f.exception(timeout=60) for f in futures]
            elapsed = time.monotonic() - t0
            assert all(isinstance(e, NotEnoughReplicasError) for e in errors), errors[:2]
            assert all(isinstance(e, KafkaTimeoutError) for e in errors)
            assert "delivery.timeout.ms" in str(errors[0])
            assert 10 <= elapsed < 40   # retried until the delivery timeout, not failed at once
    values = [r.value for r in read_all(cluster.bootstrap_servers, topic)]
    assert values == [b"before"]


def test_records_sent_while_replicas_are_down_arrive_once_when_they_return(controller_cluster,
                                                                           topic_factory):
    cluster = controller_cluster
    topic = topic_factory(cluster, partitions=1, replication_factor=3)
    with _acks_all_producer(cluster, 180_000) as p:
        p.send(topic, b"before").result(60)
        with _leader_alone(cluster, topic):
            futures = [p.send(topic, b"held-%d" % i, key=b"k") for i in range(200)]
            time.sleep(3)
            assert not any(f.done() for f in futures)   # retrying NOT_ENOUGH_REPLICAS
        offsets = [f.result(timeout=170).offset for f in futures]
    assert offsets == list(range(1, 201))
    values = [r.value for r in read_all(cluster.bootstrap_servers, topic)]
    assert values == [b"before"] + [b"held-%d" % i for i in range(200)]


def test_wrong_state_calls_fail_clearly(kafka):
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  transactional_id="state-checks") as p:
        with pytest.raises(Exception, match="begin_transaction"):
            p.send("any-topic", b"x")
        p.init_transactions()
        with pytest.raises(Exception, match="commit_transaction\\(\\) needs an open transaction"):
            p.commit_transaction()
        p.begin_transaction()
        with pytest.raises(Exception, match="begin_transaction"):
            p.begin_transaction()
        p.abort_transaction()
    with Producer(bootstrap_servers=kafka.bootstrap_servers) as plain:
        with pytest.raises(Exception, match="transactional.id"):
            plain.begin_transaction()
    assert ProducerFencedError.retriable is False
