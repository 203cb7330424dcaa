"""kengine's AdminClient against real brokers; topics it creates are checked with the
launcher's own Metadata probe and written to by an independent client where it matters."""
from __future__ import annotations

import socket
import uuid

import pytest

from kengine import Producer
from kengine.admin import AdminClient, NewTopic, format_topic_id
from kengine.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from kengine.localkafka import KafkaCluster
from tests.support.readback import read_all
from tests.support.wait import wait_until


def fresh(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def test_create_describe_list_and_grow(kafka: KafkaCluster) -> None:
    name, other, invalid = fresh("admin"), fresh("admin-b"), fresh("admin-c")
    with AdminClient(bootstrap_servers=kafka.bootstrap_servers) as admin:
        outcome = admin.create_topics([
            NewTopic(name, 3, 1, {"cleanup.policy": "compact", "retention.ms": 60000}),
            NewTopic(other),                                   # the broker's defaults
            NewTopic(invalid, 1, 1, {"cleanup.policy": "sometimes"}),
        ])
        assert outcome[name] is None and outcome[other] is None
        assert isinstance(outcome[invalid], InvalidConfigError)
        with pytest.raises(TopicAlreadyExistsError, match=name):
            admin.create_topic(name, 3)
        wait_until(lambda: all(p.leader >= 0 for p in kafka.topic(name).partitions),
                   what="leaders for the new partitions")
        described = admin.describe_topics([name])[name]
        assert [p.partition for p in described.partitions] == [0, 1, 2]
        assert all(p.replicas == (1,) and p.isr == (1,) for p in described.partitions)
        assert described.replication_factor == 1 and not described.is_internal
        assert len(format_topic_id(described.topic_id)) == 22
        assert {name, other} <= set(admin.list_topics())
        assert invalid not in admin.list_topics()

        admin.create_partitions(name, 5)
        with pytest.raises(InvalidPartitionsError, match="5 partition"):
            admin.create_partitions(name, 4)
        wait_until(lambda: len(kafka.topic(name).partitions) == 5, what="five partitions")
        assert len(admin.describe_topics([name])[name].partitions) == 5
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.describe_topics([fresh("never-created")])
        with pytest.raises(InvalidTopicError):
            admin.create_topic("bad/name")


def test_validate_only_and_broker_side_errors(kafka: KafkaCluster) -> None:
    name = fresh("admin-validate")
    with AdminClient(bootstrap_servers=kafka.bootstrap_servers) as admin:
        assert admin.create_topics([NewTopic(name, 2)], validate_only=True) == {name: None}
        assert name not in admin.list_topics()
        outcome = admin.create_topics([NewTopic(name, 1, 3)])   # 3 replicas, 1 broker
        assert isinstance(outcome[name], InvalidReplicationFactorError)


def test_describe_cluster(kafka: KafkaCluster) -> None:
    with AdminClient(bootstrap_servers=kafka.bootstrap_servers) as admin:
        cluster = admin.describe_cluster()
    assert cluster.cluster_id == kafka.cluster_id
    assert [b.node_id for b in cluster.brokers] == [1]
    assert f"{cluster.brokers[0].host}:{cluster.brokers[0].port}" == kafka.address(1)
    assert cluster.controller_id in (-1, 1)


def test_topics_made_by_the_admin_client_take_writes(kafka: KafkaCluster) -> None:
    name = fresh("admin-writes")
    with AdminClient(bootstrap_servers=kafka.bootstrap_servers) as admin:
        admin.create_topic(name, 2, 1)
    with Producer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=False) as p:
        p.send_many(name, [b"%d" % i for i in range(100)]).result(60)
    assert sorted(int(r.value) for r in read_all(kafka.bootstrap_servers, name)) == list(
        range(100))


def test_three_brokers_replicated_topic(kafka_cluster: KafkaCluster) -> None:
    name = fresh("admin-replicated")
    with AdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers) as admin:
        admin.create_topic(name, 6, 3, {"min.insync.replicas": "2"})
        admin.create_partitions(name, 8)
    wait_until(lambda: len(kafka_cluster.topic(name).partitions) == 8
               and all(p.leader >= 0 for p in kafka_cluster.topic(name).partitions),
               what="eight partitions with leaders")
    assert all(sorted(p.replicas) == [1, 2, 3] for p in kafka_cluster.topic(name).partitions)


def test_unreachable_brokers_time_out_with_the_cause() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]        # closed again: nothing listens there
    with AdminClient(bootstrap_servers=f"127.0.0.1:{port}", reconnect_backoff_ms=20) as admin, \
            pytest.raises(KafkaTimeoutError, match=f"127.0.0.1:{port}"):
        admin.list_topics(timeout=1.5)
