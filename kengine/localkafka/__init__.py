"""Real Apache Kafka on 127.0.0.1 for tests, benchmarks and ``kengine local-kafka``.

    from kengine.localkafka import KafkaCluster

    with KafkaCluster(brokers=3) as cluster:
        cluster.create_topic("events", partitions=6, config={"min.insync.replicas": 2})
        ...  # produce to cluster.bootstrap_servers; cluster.kill(cluster.leader_of("events", 0))

Needs a JDK 17+ and Maven; the jars are resolved once (``ensure_kafka``). Network faults between
clients and brokers: a ``Listener(..., proxied=True)`` and :class:`Toxiproxy` (built once from
its Go module, ``ensure_toxiproxy``).
"""
from __future__ import annotations

from .config import Listener
from .distribution import KAFKA_VERSION, KafkaDistribution, ensure_kafka
from .errors import BrokerStartError, JarResolutionError, LocalKafkaError, ToolMissingError
from .launcher import ClusterStatus, KafkaCluster, NodeStatus
from .probe import BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo
from .security import Acl, BrokerTls, SecureBrokers
from .toxiproxy import TOXIPROXY_VERSION, Proxy, Toxiproxy, ToxiproxyError, ensure_toxiproxy

__all__ = [
    "KAFKA_VERSION",
    "Acl",
    "BrokerTls",
    "SecureBrokers",
    "BrokerInfo",
    "BrokerStartError",
    "ClusterMetadata",
    "ClusterStatus",
    "JarResolutionError",
    "KafkaCluster",
    "KafkaDistribution",
    "Listener",
    "LocalKafkaError",
    "NodeStatus",
    "PartitionInfo",
    "Proxy",
    "TOXIPROXY_VERSION",
    "Toxiproxy",
    "ToxiproxyError",
    "ToolMissingError",
    "TopicInfo",
    "ensure_kafka",
    "ensure_toxiproxy",
]
