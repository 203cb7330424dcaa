"""Which broker coordinates a transactional id, computed as Kafka places it: the id's Java
String.hashCode(), made non-negative (Kafka's Utils.abs), modulo the partitions of
__transaction_state; the leader of that partition is the coordinator. Tests kill it."""
from __future__ import annotations

from kengine.localkafka import KafkaCluster

__all__ = ["transaction_coordinator"]

#: kengine.localkafka's transaction.state.log.num.partitions
TXN_STATE_PARTITIONS = 5


def _java_hash(s: str) -> int:
    # Java's String.hashCode: over UTF-16 code units, in 32-bit two's complement
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def transaction_coordinator(cluster: KafkaCluster, transactional_id: str) -> int:
    """The node that coordinates ``transactional_id``'s transactions now."""
    h = _java_hash(transactional_id)
    partition = (0 if h == -(1 << 31) else abs(h)) % TXN_STATE_PARTITIONS
    return cluster.leader_of("__transaction_state", partition)
