"""The Kafka a benchmark writes to, and the independent checks of what each client wrote.

:class:`BenchKafka` starts a :class:`~kengine.localkafka.KafkaCluster` for a layout, gives every
run a fresh topic, and after the run checks the topic with clients that are not kengine:

* **count**: the sum of the partitions' end offsets, from confluent-kafka (librdkafka), must
  equal the records the client sent (warm-up included). Runs are never transactional, so no
  control record takes an offset.
* **sample**: the first records of every partition are consumed (confluent-kafka): each value
  must come from the workload's pool, each key be one of its keys, and each keyed record sit in
  the partition Java's murmur2 partitioner assigns it.
* **idempotence**: the partition leaders are asked (DescribeProducers, KIP-664) which producer
  ids wrote to the topic. A client that asked for idempotence and shows none did not get it.

The topic is then deleted, so long runs do not fill the disk.
"""
from __future__ import annotations

import socket
import struct
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from benchmarks.plan import Layout
from benchmarks.workload import keys, payload_pool
from kengine.localkafka import KafkaCluster
from kengine_ext import decode_response, encode_request, partition_for_key

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BenchKafka", "Verification"]

_DESCRIBE_PRODUCERS = 61
_SAMPLE_PER_PARTITION = 50
_COUNT_TIMEOUT_S = 60.0

# Broker settings on top of the harness defaults: deleted topics free their disk at once.
_BROKER_CONFIG = {"file.delete.delay.ms": 1000}


@dataclass
class Verification:
    """What the independent checks found in one run's topic."""

    expected: int
    counted: int
    #: problems found in the sampled records (empty: none)
    sample_problems: list[str]
    #: producer ids the partition leaders report for the topic (empty: not idempotent)
    producer_ids: list[int]

    @property
    def complete(self) -> bool:
        return self.counted == self.expected and not self.sample_problems


class BenchKafka:
    """A running cluster for one layout. Use as a context manager: closing kills the brokers."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        config: dict[str, Any] = dict(_BROKER_CONFIG)
        if "min.insync.replicas" in layout.topic_config:
            config["min.insync.replicas"] = layout.topic_config["min.insync.replicas"]
        self.cluster = KafkaCluster(layout.brokers, broker_config=config)
        try:
            common: dict[str, Any] = {"bootstrap.servers": self.cluster.bootstrap_servers,
                                      "log_level": 4}
            self._admin: AdminClient | None = AdminClient({**common, "client.id": "bench-admin"})
            self._consumer = Consumer({**common, "client.id": "bench-verify",
                                       "group.id": f"bench-verify-{uuid.uuid4().hex}",
                                       "enable.auto.commit": False, "check.crcs": True,
                                       "fetch.wait.max.ms": 50})
        except BaseException:
            self.cluster.close()
            raise
        self._correlation_id = 0

    @property
    def bootstrap_servers(self) -> str:
        return self.cluster.bootstrap_servers

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._consumer.close()
        finally:
            # dropping the admin client destroys it: it stops reconnecting to dead brokers
            self._admin = None
            self.cluster.close()

    # -- topics ------------------------------------------------------------------------------

    def fresh_topic(self, stem: str) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:8]}"
        return self.cluster.create_topic(name, self.layout.partitions,
                                         self.layout.replication_factor,
                                         self.layout.topic_config)

    def delete_topic(self, topic: str) -> None:
        assert self._admin is not None, "delete_topic() after close()"
        futures = self._admin.delete_topics([topic], operation_timeout=30, request_timeout=30)
        futures[topic].result(timeout=60)

    # -- checks ------------------------------------------------------------------------------

    def verify(self, topic: str, expected: int, record_bytes: int) -> Verification:
        return Verification(expected=expected,
                            counted=self.count(topic, expected),
                            sample_problems=self.sample_problems(topic, record_bytes),
                            producer_ids=self.producer_ids(topic))

    def count(self, topic: str, expected: int) -> int:
        """Records in ``topic`` (sum of end offsets), waiting up to a minute for ``expected``
        (a replicated topic's high watermark can trail an acks=1 acknowledgement)."""
        deadline = time.monotonic() + _COUNT_TIMEOUT_S
        while True:
            total = 0
            for p in range(self.layout.partitions):
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10, cached=False)
                total += high - low
            if total >= expected or time.monotonic() > deadline:
                return total
            time.sleep(0.2)

    def sample_problems(self, topic: str, record_bytes: int) -> list[str]:
        pool = set(payload_pool(record_bytes))
        key_set = set(keys())
        partitions = self.layout.partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        seen = dict.fromkeys(range(partitions), 0)
        problems: list[str] = []
        deadline = time.monotonic() + 30
        try:
            while min(seen.values()) < _SAMPLE_PER_PARTITION and time.monotonic() < deadline:
                for msg in self._consumer.consume(num_messages=1000, timeout=0.5):
                    error = msg.error()
                    if error is not None:
                        problems.append(f"partition {msg.partition()}: {error.str()}")
                        continue
                    p, key, value = msg.partition(), msg.key(), msg.value() or b""
                    assert p is not None  # only errors come without a partition
                    if seen[p] >= _SAMPLE_PER_PARTITION:
                        continue
                    seen[p] += 1
                    where = f"partition {p} offset {msg.offset()}"
                    if value not in pool:
                        problems.append(f"{where}: value {value[:40]!r}... is not from the pool")
                    if key not in key_set:
                        problems.append(f"{where}: key {key!r} is not one of str(i % 1000)")
                    elif partition_for_key(key, partitions) != p:
                        problems.append(f"{where}: key {key!r} belongs in partition "
                                        f"{partition_for_key(key, partitions)} (murmur2)")
        finally:
            self._consumer.unassign()
        short = [p for p, n in seen.items() if n < _SAMPLE_PER_PARTITION]
        if short:
            problems.append(f"partitions {short} had fewer than {_SAMPLE_PER_PARTITION} "
                            "records to sample")
        return problems[:10]

    def producer_ids(self, topic: str) -> list[int]:
        """Producer ids with state on the topic's partitions, from each partition's leader."""
        by_leader: dict[int, list[int]] = {}
        for p in self.cluster.topic(topic).partitions:
            by_leader.setdefault(p.leader, []).append(p.partition)
        ids: set[int] = set()
        for leader, indexes in by_leader.items():
            body = self._request(leader, _DESCRIBE_PRODUCERS, 0, {
                "topics": [{"name": topic, "partition_indexes": indexes}]})
            for t in body["topics"]:
                for part in t["partitions"]:
                    if part["error_code"] != 0:
                        raise RuntimeError(f"DescribeProducers for {topic}-"
                                           f"{part['partition_index']} failed with error code "
                                           f"{part['error_code']}: {part['error_message']}")
                    ids.update(s["producer_id"] for s in part["active_producers"])
        return sorted(ids)

    def _request(self, node: int, api_key: int, version: int,
                 body: dict[str, Any]) -> dict[str, Any]:
        self._correlation_id += 1
        host, _, port = self.cluster.address(node).rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(encode_request(api_key, version, self._correlation_id,
                                        "bench-verify", body))
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            correlation_id, response = decode_response(api_key, version,
                                                       _recv_exact(sock, size))
        if correlation_id != self._correlation_id:
            raise RuntimeError(f"node {node} answered correlation id {correlation_id}, "
                               f"expected {self._correlation_id}")
        decoded: dict[str, Any] = response
        return decoded


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("the broker closed the connection mid-response")
        buf += chunk
    return bytes(buf)
