"""An in-process Kafka cluster and network client for stepping kengine's real Sender,
TransactionManager, Metadata and Cython accumulator deterministically, as Java's SenderTest
steps its Sender with a MockClient.

Nothing runs by itself: a test sends records, calls ``sender.run_once()``, and decides which
connection answers its oldest produce request next (:meth:`SimNetworkClient.respond`), which
request is lost, refused or written-but-refused, when a partition's leader moves and how far
the clock jumps. Produce requests on one connection are answered in order (as by a real
broker); across connections, in any order. Metadata and InitProducerId are answered at once.

The brokers share one set of partition logs, each with the idempotent producer state a Kafka
leader keeps (tests/support/broker_model.py: the same checks as the socket fake broker), as
replicas do. A request carries the batch bytes as they were when it was sent.

    sim = Simulation(topics={"t": 10}, nodes=3)
    futures = [sim.core.send("t", b"v", key=b"k")]    # sim.core.acc: the accumulator
    sim.run_until_done()
"""
from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kengine.errors import (
    KafkaError,
    KafkaTimeoutError,
    MessageTooLargeError,
    NetworkError,
    NotLeaderOrFollowerError,
)
from kengine.metadata import Metadata
from kengine.reachability import BrokerReachability
from kengine.sender import Sender, SenderSettings
from kengine.transactions import TransactionManager
from kengine_ext import decode_batches, monotonic_ms
from tests.support.broker_model import PartitionLog
from tests.support.core import Core

__all__ = ["SimCluster", "SimNetworkClient", "Simulation"]

PRODUCE, METADATA, INIT_PRODUCER_ID = 0, 3, 22
NOT_LEADER_OR_FOLLOWER = NotLeaderOrFollowerError.code
MESSAGE_TOO_LARGE = MessageTooLargeError.code
_VERSIONS = {PRODUCE: 12, METADATA: 12, INIT_PRODUCER_ID: 4}   # Produce v12: topics by name


class SimCluster:
    """Brokers 0..nodes-1 leading the partitions of ``topics`` round robin."""

    def __init__(self, topics: Mapping[str, int], nodes: int = 1,
                 max_message_bytes: int | None = None) -> None:
        self.nodes = list(range(nodes))
        #: the topics' max.message.bytes: a batch over it is refused, MESSAGE_TOO_LARGE
        self.max_message_bytes = max_message_bytes
        self.topics = dict(topics)
        self.leaders: dict[tuple[str, int], int] = {}
        self.leader_epochs: dict[tuple[str, int], int] = {}
        for t, n in self.topics.items():
            for p in range(n):
                self.leaders[(t, p)] = p % nodes
                self.leader_epochs[(t, p)] = 0
        self.logs: dict[tuple[str, int], PartitionLog] = defaultdict(PartitionLog)
        #: every sequence or epoch refusal the leaders answered: (topic, partition, code)
        self.sequence_errors: list[tuple[str, int, int]] = []
        self._producer_ids = itertools.count(1000)

    def move_leader(self, topic: str, partition: int, to: int) -> None:
        self.leaders[(topic, partition)] = to
        self.leader_epochs[(topic, partition)] += 1

    def handle(self, node: int, api_key: int, body: dict[str, Any],
               write: bool = True, error_code: int = 0) -> dict[str, Any]:
        """The answer of broker ``node``. Produce: with ``write`` False nothing is appended and
        every partition answers ``error_code``; with ``write`` and an ``error_code``, the
        batches are appended, then refused with it (NOT_ENOUGH_REPLICAS_AFTER_APPEND...)."""
        if api_key == METADATA:
            return self._metadata(body)
        if api_key == INIT_PRODUCER_ID:
            return {"throttle_time_ms": 0, "error_code": 0,
                    "producer_id": next(self._producer_ids), "producer_epoch": 0}
        assert api_key == PRODUCE, api_key
        responses = []
        for t in body["topic_data"]:
            parts = []
            for p in t["partition_data"]:
                entry: dict[str, Any] = {"index": p["index"], "error_code": error_code,
                                         "base_offset": -1, "log_append_time_ms": -1,
                                         "log_start_offset": 0}
                if self.leaders.get((t["name"], p["index"])) != node:
                    entry["error_code"] = NOT_LEADER_OR_FOLLOWER
                elif self.max_message_bytes is not None and \
                        len(p["records"]) > self.max_message_bytes:
                    entry["error_code"] = MESSAGE_TOO_LARGE     # before any append, as Kafka
                elif write:
                    log = self.logs[(t["name"], p["index"])]
                    (batch,) = decode_batches(p["records"])   # one batch per partition
                    code, base = log.append(batch)
                    if code:
                        self.sequence_errors.append((t["name"], p["index"], code))
                    entry["base_offset"] = base
                    entry["error_code"] = code or error_code
                parts.append(entry)
            responses.append({"name": t["name"], "partition_responses": parts})
        return {"responses": responses, "throttle_time_ms": 0}

    def _metadata(self, body: dict[str, Any]) -> dict[str, Any]:
        topics = []
        for t in body["topics"]:
            name = t["name"]
            topics.append({"error_code": 0, "name": name, "topic_id": bytes(16),
                           "is_internal": False, "partitions": [
                               {"error_code": 0, "partition_index": p,
                                "leader_id": self.leaders[(name, p)],
                                "leader_epoch": self.leader_epochs[(name, p)],
                                "replica_nodes": self.nodes, "isr_nodes": self.nodes,
                                "offline_replicas": []}
                               for p in range(self.topics[name])]})
        return {"throttle_time_ms": 0, "cluster_id": "sim", "controller_id": 0,
                "topics": topics,
                "brokers": [{"node_id": n, "host": "sim", "port": 9000 + n, "rack": None}
                            for n in self.nodes]}


@dataclass
class _Request:
    api_key: int
    body: dict[str, Any]
    callback: Callable[[Any, KafkaError | None], None]


class _Connection:
    finalized_features: dict[str, int] = {}

    def __init__(self) -> None:
        self.in_flight: deque[_Request] = deque()

    @property
    def in_flight_count(self) -> int:
        return len(self.in_flight)

    def version(self, api_key: int) -> int | None:
        return _VERSIONS.get(api_key)


class SimNetworkClient:
    """The part of kengine.network.NetworkClient that the sender, metadata and transaction
    manager use, connected to a :class:`SimCluster`. Connecting is instant."""

    def __init__(self, cluster: SimCluster, max_in_flight: int) -> None:
        self.cluster = cluster
        self.max_in_flight = max_in_flight
        self.fatal_error: KafkaError | None = None
        self.addresses: dict[int, tuple[str, int]] = {n: ("sim", 9000 + n) for n in cluster.nodes}
        self.reachability = BrokerReachability("sim")
        self._conns: dict[int, _Connection] = {}
        self.rebootstrap_count = 0
        #: brokers the client cannot reach (a connection attempt fails at once, as to a broker
        #: that was killed); the cluster still counts them until the test moves their leaders
        self.unreachable: set[int] = set()

    # -- what the producer calls --

    def set_brokers(self, brokers: dict[int, tuple[str, int]]) -> None:
        self.addresses.update(brokers)

    def replace_brokers(self, brokers: dict[int, tuple[str, int]]) -> None:
        self.addresses = dict(brokers)

    def rebootstrap(self, reason: str) -> None:
        raise AssertionError(f"the simulated cluster never needs a rebootstrap: {reason}")

    def forget_brokers(self) -> None:
        """What a KIP-899 rebootstrap that someone other than Metadata triggered (the
        transaction manager or the sender looking for a node) leaves: every broker's address
        forgotten, connections closed unanswered, only a bootstrap address (node -1) known."""
        self.rebootstrap_count += 1
        for node in list(self._conns):
            self.disconnect(node)
        self.addresses = {-1: ("sim", 9000)}

    def known_nodes(self) -> list[int]:
        return sorted(self.addresses)

    def is_ready(self, node_id: int) -> bool:
        return node_id in self._conns

    def can_send(self, node_id: int) -> bool:
        conn = self._conns.get(node_id)
        return conn is not None and len(conn.in_flight) < self.max_in_flight

    def connection(self, node_id: int) -> _Connection | None:
        return self._conns.get(node_id)

    def connect(self, node_id: int, now_ms: int) -> bool:
        if node_id not in self.addresses or node_id in self.unreachable:
            return False    # as NetworkClient: no address, or the attempt failed (backoff)
        self._conns.setdefault(node_id, _Connection())
        return True

    def backoff_remaining_ms(self, node_id: int, now_ms: int) -> int:
        return 0

    def send(self, node_id: int, api_key: int, body: Any, callback: Any, *, now_ms: int,
             version: int | None = None, expect_response: bool = True) -> bool:
        conn = self._conns.get(node_id)
        if conn is None:
            return False
        assert expect_response, "acks=0 is not simulated"
        if api_key != PRODUCE:
            # metadata and producer ids are answered at once: the test decides about produce
            callback(self.cluster.handle(node_id, api_key, body), None)
            return True
        # the bytes as they are now: the request is written
        body = {**body, "topic_data": [
            {**t, "partition_data": [{**p, "records": bytes(p["records"])}
                                     for p in t["partition_data"]]}
            for t in body["topic_data"]]}
        conn.in_flight.append(_Request(api_key, body, callback))
        return True

    def least_loaded_node(self, now_ms: int) -> int | None:
        return min([n for n in self.known_nodes() if n not in self.unreachable], key=lambda n: (
            len(self._conns[n].in_flight) if n in self._conns else 0, n))

    def wakeup(self) -> None:
        pass

    def poll(self, timeout_ms: int, now_ms: int | None = None) -> None:
        pass   # answers come only from the test's respond()/fail() calls

    def close(self) -> None:
        self._conns.clear()

    @property
    def connections(self) -> dict[int, _Connection]:
        return dict(self._conns)

    # -- what the test decides --

    def busy_nodes(self) -> list[int]:
        return [n for n, c in self._conns.items() if c.in_flight]

    def respond(self, node: int, *, write: bool = True, error_code: int = 0) -> None:
        """The oldest request on node's connection is answered (see SimCluster.handle)."""
        req = self._conns[node].in_flight.popleft()
        req.callback(self.cluster.handle(node, req.api_key, req.body, write, error_code), None)

    def disconnect(self, node: int, *, written: int = 0) -> None:
        """The connection to node breaks: its oldest ``written`` requests reached the broker
        (and were processed), the rest did not; none is answered."""
        conn = self._conns.pop(node)
        for i, req in enumerate(conn.in_flight):
            if i < written:
                self.cluster.handle(node, req.api_key, req.body)
        for req in conn.in_flight:
            req.callback(None, NetworkError(f"connection to broker {node} lost",
                                            broker=node))


@dataclass
class Simulation:
    """A producer core, its metadata, idempotence and sender, on a simulated cluster. The
    clock is the real monotonic clock plus ``skew_ms``, which only grows."""

    topics: Mapping[str, int]
    nodes: int = 1
    max_in_flight: int = 5
    max_request_size: int = 1 << 20
    batch_size: int = 16384
    linger_ms: int = 0
    delivery_timeout_ms: int = 120_000
    request_timeout_ms: int = 30_000
    retry_backoff_ms: int = 100
    idempotent: bool = True
    max_message_bytes: int | None = None
    skew_ms: int = 0
    futures: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cluster = SimCluster(self.topics, self.nodes, self.max_message_bytes)
        self.client = SimNetworkClient(self.cluster, self.max_in_flight)
        # Metadata comes from the simulated cluster up front: send() never waits for it.
        self.core = Core({}, await_metadata=self._known_topic, linger_ms=self.linger_ms,
                         batch_size=self.batch_size, max_request_size=self.max_request_size,
                         buffer_memory=64 << 20, idempotent=self.idempotent,
                         max_block_ms=1000, client_id="sim")
        self.metadata = Metadata(self.core.acc, self.client, client_id="sim",  # type: ignore[arg-type]
                                 max_age_ms=300_000, refresh_backoff_ms=self.retry_backoff_ms,
                                 refresh_backoff_max_ms=1000)
        self.metadata.apply(self.cluster.handle(0, METADATA, {"topics": [
            {"name": t} for t in self.topics]}), self.now())
        self.txn = TransactionManager(
            self.core.acc, self.client, self.metadata, client_id="sim",  # type: ignore[arg-type]
            transactional_id=None, transaction_timeout_ms=60_000,
            retry_backoff_ms=self.retry_backoff_ms, max_block_ms=1000,
            wakeup=lambda: None) if self.idempotent else None
        self.sender = Sender(self.core.acc, self.client, self.metadata, SenderSettings(  # type: ignore[arg-type]
            client_id="sim", acks=-1, request_timeout_ms=self.request_timeout_ms,
            delivery_timeout_ms=self.delivery_timeout_ms, retries=1 << 30,
            retry_backoff_ms=self.retry_backoff_ms, retry_backoff_max_ms=1000,
            max_request_size=self.max_request_size), txn=self.txn, clock=self.now)
        while self.idempotent and self.core.acc.producer_id < 0:   # InitProducerId
            self.step()

    def now(self) -> int:
        return monotonic_ms() + self.skew_ms

    def advance(self, ms: int) -> None:
        self.skew_ms += ms

    def step(self) -> None:
        self.sender.run_once()

    def run_until_done(self, max_steps: int = 100_000) -> None:
        """No more faults: answer everything, let backoffs pass, until every batch finished."""
        for _ in range(max_steps):
            if not self.core.acc.incomplete_batches():
                return
            self.step()
            busy = self.client.busy_nodes()
            if busy:
                for node in busy:
                    self.client.respond(node)
            else:
                self.advance(self.retry_backoff_ms)
        raise KafkaTimeoutError(
            f"{len(self.core.acc.incomplete_batches())} batch(es) still unfinished after "
            f"{max_steps} steps without faults: the producer is wedged")

    def _known_topic(self, topic: str, partition: int | None = None) -> Any:
        state = self.core.acc.topic_state(topic)
        if state is None:
            raise KafkaTimeoutError(f"topic {topic!r} is not in the simulated cluster")
        return state
