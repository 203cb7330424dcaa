"""The test harness itself, against real Kafka: brokers start and log, topics are created,
what confluent-kafka writes is read back exactly (read_committed included), a three-node
cluster survives losing a partition leader, and no JVM outlives its cluster."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from kengine.errors import TopicAlreadyExistsError
from kengine.localkafka import BrokerStartError, KafkaCluster, launcher
from tests.support.readback import TimestampType, by_partition, count, read_all, values
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _produce(bootstrap: str, topic: str, records: Iterable[dict[str, Any]],
             **config: Any) -> list[tuple[int, int]]:
    """Produce with confluent-kafka, flush, and return (partition, offset) of each record in
    the order given; fails the test if any delivery failed."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5, "log_level": 4, **config})
    results: list[Any] = []

    def delivered_to(index: int) -> Any:
        def delivered(err: Any, msg: Any) -> None:
            results[index] = err if err is not None else (msg.partition(), msg.offset())
        return delivered

    for record in records:
        results.append(None)
        producer.produce(topic, on_delivery=delivered_to(len(results) - 1), **record)
    assert producer.flush(120) == 0, "records still queued after flush"
    failed = [r for r in results if not isinstance(r, tuple)]
    assert not failed, f"{len(failed)} deliveries failed: {failed[:5]}"
    return results


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline and _alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


# -- one broker ------------------------------------------------------------------------------

def test_broker_answers_metadata_and_writes_its_log(kafka: KafkaCluster) -> None:
    meta = kafka.metadata(1)
    assert meta.broker_ids == {1}
    assert meta.cluster_id == kafka.cluster_id
    assert kafka.bootstrap_servers == kafka.address(1)
    assert all(_alive(pid) for pid in kafka.pids().values())
    server_log = kafka.workdir / "node-1" / "logs" / "server.log"
    assert "Kafka Server started" in server_log.read_text()


def test_records_are_read_back_exactly(kafka: KafkaCluster, topic_factory: Any) -> None:
    topic = topic_factory(kafka, partitions=3)
    sent = [
        {"partition": 0, "key": b"k0", "value": b"v0", "timestamp": 1_700_000_000_000,
         "headers": [("h", b"1"), ("h", b"2"), ("empty", None)]},
        {"partition": 0, "key": None, "value": b"no key", "timestamp": 1_700_000_000_001},
        {"partition": 1, "key": b"tombstone", "value": None, "timestamp": 1_700_000_000_002},
        {"partition": 2, "key": b"", "value": b"", "timestamp": 1_700_000_000_003,
         "headers": [("utf8-\u00e9", b"\x00\xff")]},
        {"partition": 2, "key": b"k4", "value": bytes(range(256)) * 40,
         "timestamp": 1_700_000_000_004},
    ]
    positions = _produce(kafka.bootstrap_servers, topic, sent)
    assert positions == [(0, 0), (0, 1), (1, 0), (2, 0), (2, 1)]

    got = read_all(kafka.bootstrap_servers, topic)

    assert [(r.partition, r.offset, r.key, r.value, r.headers, r.timestamp_ms, r.timestamp_type)
            for r in got] == [
        (s["partition"], off, s["key"], s["value"], s.get("headers", []), s["timestamp"],
         TimestampType.CREATE_TIME)
        for s, (_, off) in zip(sent, positions, strict=True)]
    assert {p: len(rs) for p, rs in by_partition(got).items()} == {0: 2, 1: 1, 2: 2}
    assert count(kafka.bootstrap_servers, topic) == 5


def test_log_append_time_topic_stamps_records_on_the_broker(kafka: KafkaCluster,
                                                            topic_factory: Any) -> None:
    topic = topic_factory(kafka, config={"message.timestamp.type": "LogAppendTime"})
    _produce(kafka.bootstrap_servers, topic, [{"value": b"x", "timestamp": 1}])
    (record,) = read_all(kafka.bootstrap_servers, topic)
    assert record.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert record.timestamp_ms > 1


def test_read_committed_sees_committed_transactions_only(kafka: KafkaCluster,
                                                         topic_factory: Any) -> None:
    topic = topic_factory(kafka, partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "log_level": 4,
                         "transactional.id": f"{topic}-txn"})
    producer.init_transactions(60)

    def transaction(vals: list[bytes], commit: bool) -> None:
        producer.begin_transaction()
        for i, v in enumerate(vals):
            producer.produce(topic, value=v, partition=i % 2)
        # on the broker before the abort: abort_transaction() purges what is still queued
        producer.flush(60)
        if commit:
            producer.commit_transaction(60)
        else:
            producer.abort_transaction(60)

    transaction([b"a1", b"a2"], commit=True)
    transaction([b"b1", b"b2"], commit=False)
    transaction([b"c1"], commit=True)
    # left open: read_committed stops at the last stable offset instead of waiting for it
    producer.begin_transaction()
    producer.produce(topic, value=b"open", partition=0)
    producer.flush(60)

    committed = read_all(kafka.bootstrap_servers, topic, read_committed=True)
    everything = read_all(kafka.bootstrap_servers, topic)
    producer.abort_transaction(60)

    assert sorted(values(committed)) == [b"a1", b"a2", b"c1"]
    assert sorted(values(everything)) == [b"a1", b"a2", b"b1", b"b2", b"c1", b"open"]


def test_topic_admin(kafka: KafkaCluster, topic_factory: Any) -> None:
    topic = topic_factory(kafka)
    with pytest.raises(TopicAlreadyExistsError):
        kafka.create_topic(topic)
    kafka.add_partitions(topic, 4)
    assert [p.partition for p in kafka.topic(topic).partitions] == [0, 1, 2, 3]
    assert kafka.leader_of(topic, 3) == 1
    _produce(kafka.bootstrap_servers, topic, [{"value": b"p3", "partition": 3}])
    assert [(r.partition, r.value) for r in read_all(kafka.bootstrap_servers, topic)] == [
        (3, b"p3")]


def test_read_all_of_a_missing_topic_raises(kafka: KafkaCluster) -> None:
    with pytest.raises(LookupError, match="does-not-exist"):
        read_all(kafka.bootstrap_servers, "does-not-exist", timeout=3)


# -- three brokers ---------------------------------------------------------------------------

def test_cluster_takes_writes_through_the_loss_of_a_leader(kafka_cluster: KafkaCluster,
                                                           topic_factory: Any) -> None:
    cluster = kafka_cluster
    topic = topic_factory(cluster)
    (partition,) = cluster.topic(topic).partitions
    assert sorted(partition.replicas) == [1, 2, 3]
    boot = cluster.bootstrap_servers
    _produce(boot, topic, [{"value": b"before-%d" % i} for i in range(100)], acks="all")

    leader = cluster.leader_of(topic, 0)
    leader_pid = cluster.pids()[leader]
    cluster.kill(leader)
    assert not _alive(leader_pid)
    assert leader not in cluster.pids()

    # acks=all with min.insync.replicas=2: the two survivors must both have every record
    _produce(boot, topic, [{"value": b"during-%d" % i} for i in range(100)], acks="all")
    new_leader = wait_until(lambda: cluster.leader_of(topic, 0) not in (leader, -1)
                            and cluster.leader_of(topic, 0), what="a new leader")
    assert new_leader in set(cluster.nodes) - {leader}

    cluster.start(leader)
    cluster.wait_in_sync(topic)
    assert sorted(cluster.partition(topic, 0).isr) == [1, 2, 3]
    assert cluster.metadata(leader).broker_ids == {1, 2, 3}

    got = read_all(boot, topic)
    assert values(got) == [b"before-%d" % i for i in range(100)] + [
        b"during-%d" % i for i in range(100)]
    assert [r.offset for r in got] == list(range(200))


def test_paused_node_answers_nothing_until_resumed(kafka_cluster: KafkaCluster) -> None:
    cluster = kafka_cluster
    cluster.pause(3)
    assert Path(f"/proc/{cluster.pids()[3]}/stat").read_text().split(") ")[1][0] == "T"
    assert cluster.status().nodes[2].state == "paused"
    with pytest.raises(OSError):
        cluster.metadata(3)
    assert 1 in cluster.metadata(1).broker_ids
    cluster.resume(3)
    cluster.wait_ready(3)
    assert cluster.metadata(3).broker_ids == {1, 2, 3}
    assert cluster.status().all_running


def test_stopped_node_restarts_on_its_storage(kafka_cluster: KafkaCluster,
                                              topic_factory: Any) -> None:
    cluster = kafka_cluster
    topic = topic_factory(cluster)
    _produce(cluster.bootstrap_servers, topic, [{"value": b"kept"}], acks="all")
    cluster.stop(2)
    assert cluster.status().nodes[1].state == "stopped"
    _produce(cluster.bootstrap_servers, topic, [{"value": b"while-down"}], acks="all")
    cluster.restart(2)
    # back in the ISR means node 2 caught up on what it missed
    cluster.wait_in_sync(topic)
    assert sorted(cluster.partition(topic, 0).isr) == [1, 2, 3]
    assert values(read_all(cluster.bootstrap_servers, topic)) == [b"kept", b"while-down"]


def test_heal_brings_back_killed_and_paused_nodes(kafka_cluster: KafkaCluster) -> None:
    cluster = kafka_cluster
    cluster.kill(2)
    cluster.pause(3)
    assert [n.state for n in cluster.status().nodes] == ["running", "stopped", "paused"]
    cluster.heal()
    assert cluster.status().all_running
    assert all(cluster.metadata(n).broker_ids == {1, 2, 3} for n in cluster.nodes)


# -- teardown: no JVM outlives its cluster ---------------------------------------------------

def test_close_kills_every_jvm_it_started(tmp_path: Path) -> None:
    cluster = KafkaCluster(1, tmp_path)
    pids = list(cluster.pids().values())
    assert pids and all(_alive(p) for p in pids)
    assert _processes_mentioning(str(tmp_path))
    cluster.close()
    assert not any(_alive(p) for p in pids)
    assert _processes_mentioning(str(tmp_path)) == []
    assert not list(tmp_path.glob("node-*/kafka.pid"))
    assert not cluster.status().any_alive


@pytest.mark.parametrize(("settings", "reported"), [
    # rejected while formatting storage
    ({"broker_config": {"num.io.threads": "many"}}, "Invalid value many for configuration"),
    # storage formats, then the node's JVM exits
    ({"jvm_opts": ["-XX:+NoSuchOption"]}, "Unrecognized VM option 'NoSuchOption'"),
])
def test_a_node_that_cannot_start_fails_with_its_log(tmp_path: Path, settings: dict[str, Any],
                                                     reported: str) -> None:
    with pytest.raises(BrokerStartError) as failure:
        KafkaCluster(1, tmp_path, **settings)
    assert reported in str(failure.value)
    assert _processes_mentioning(str(tmp_path)) == []


def test_a_port_taken_before_the_broker_binds_it_is_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        taken = squatter.getsockname()[1]
        choices: list[list[int]] = []
        free_ports = launcher._free_ports

        def first_choice_collides(host: str, count: int) -> list[int]:
            ports = free_ports(host, count)
            if not choices:
                ports[0] = taken
            choices.append(ports)
            return ports

        monkeypatch.setattr(launcher, "_free_ports", first_choice_collides)
        with KafkaCluster(1, tmp_path) as cluster:
            assert len(choices) == 2
            assert cluster.address(1) == f"127.0.0.1:{choices[1][0]}"
            assert cluster.metadata(1).broker_ids == {1}


def test_sigterm_to_the_owner_kills_its_brokers(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import json, sys, time
        from kengine.localkafka import BrokerStartError, KafkaCluster, launcher
        cluster = KafkaCluster(1, {str(tmp_path)!r})
        print(json.dumps(list(cluster.pids().values())), flush=True)
        time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    try:
        assert owner.stdout is not None
        pids = json.loads(owner.stdout.readline())
        assert pids and all(_alive(p) for p in pids)
        owner.send_signal(signal.SIGTERM)
        assert owner.wait(60) == -signal.SIGTERM
        assert not any(_alive(p) for p in pids)
        assert _processes_mentioning(str(tmp_path)) == []
    finally:
        owner.kill()
        KafkaCluster.cleanup_stale(tmp_path)


def test_detached_cluster_outlives_its_owner_and_stops_from_its_workdir(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "kengine.localkafka"]
    workdir = tmp_path / "detached"
    try:
        started = subprocess.run([*cli, "start", "--workdir", str(workdir)], cwd=ROOT,
                                 capture_output=True, text=True, check=False, timeout=300)
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip()

        cluster = KafkaCluster.attach(workdir)
        assert cluster.bootstrap_servers == bootstrap
        assert cluster.metadata(1).broker_ids == {1}
        status = subprocess.run([*cli, "status", "--workdir", str(workdir)], cwd=ROOT,
                                capture_output=True, text=True, check=False, timeout=60)
        assert status.returncode == 0 and "running" in status.stdout
        pids = list(cluster.pids().values())

        stopped = subprocess.run([*cli, "stop", "--workdir", str(workdir)], cwd=ROOT,
                                 capture_output=True, text=True, check=False, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert not any(_alive(p) for p in pids)
        status = subprocess.run([*cli, "status", "--workdir", str(workdir)], cwd=ROOT,
                                capture_output=True, text=True, check=False, timeout=60)
        assert status.returncode == 3 and "stopped" in status.stdout
    finally:
        KafkaCluster.cleanup_stale(workdir)


def test_cleanup_stale_kills_a_cluster_left_behind(tmp_path: Path) -> None:
    orphan = KafkaCluster(1, tmp_path, detach=True)
    pids = list(orphan.pids().values())
    del orphan  # a detached cluster is not stopped by dropping its handle
    assert all(_alive(p) for p in pids)
    assert sorted(KafkaCluster.cleanup_stale(tmp_path)) == sorted(pids)
    assert not any(_alive(p) for p in pids)
    assert KafkaCluster.cleanup_stale(tmp_path) == []

