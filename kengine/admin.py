"""A small synchronous admin client: create topics, add partitions, describe topics and the
cluster, read a consumer group's committed offsets, on kengine's own network client and
protocol codec.

    from kengine.admin import AdminClient, NewTopic

    with AdminClient(bootstrap_servers="127.0.0.1:9092") as admin:
        admin.create_topic("events", partitions=6, replication_factor=3,
                           config={"min.insync.replicas": "2"})
        print(admin.describe_topics(["events"])["events"].partitions)

Each call blocks until the brokers answer or its ``timeout`` (seconds) runs out, retrying
through dropped connections. CreateTopics and CreatePartitions go to the controller that
Metadata names (a KRaft broker forwards them to the active controller), and are retried on
NOT_CONTROLLER and THROTTLING_QUOTA_EXCEEDED as Java's admin client does; every other error
is raised as its typed :mod:`kengine.errors` exception. OffsetFetch goes to the group's
coordinator (FindCoordinator) and is retried while the coordinator moves or loads, and, with
``require_stable``, while a transaction that commits offsets of the group is still open. One
call at a time per client (calls from several threads take turns).
"""
from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kengine_ext import monotonic_ms

from . import config as _config
from .connection import API
from .errors import (
    BrokerError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    KafkaTimeoutError,
    NotControllerError,
    NotCoordinatorError,
    ProtocolError,
    ThrottlingQuotaExceededError,
    UnknownTopicOrPartitionError,
    UnstableOffsetCommitError,
    UnsupportedVersionError,
    error_for_code,
)
from .metadata import PartitionInfo, validate_topic_name
from .network import NetworkClient

__all__ = ["AdminClient", "BrokerDescription", "ClusterDescription", "CommittedOffset",
           "NewTopic", "TopicDescription", "format_topic_id"]

_ZERO_UUID = bytes(16)
#: Errors after which Java's admin client sends a controller request again.
_RETRIED_PER_TOPIC = (NotControllerError, ThrottlingQuotaExceededError)
_RETRY_BACKOFF_MS = 100
_POLL_SLICE_MS = 100
#: FindCoordinator's key type of a consumer group
_GROUP_KEY = 0
#: Errors after which an OffsetFetch is sent again: the group's coordinator moved, is loading
#: the group, or (require_stable) a transaction with offsets of the group has not ended yet
_OFFSET_FETCH_RETRIED = (NotCoordinatorError, CoordinatorNotAvailableError,
                         CoordinatorLoadInProgressError, UnstableOffsetCommitError)


def format_topic_id(topic_id: bytes) -> str:
    """Kafka's text form of a topic id (``Uuid.toString()``: URL-safe base64, no padding)."""
    return base64.urlsafe_b64encode(bytes(topic_id)).rstrip(b"=").decode()


def _config_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"   # Kafka's spelling, not Python's
    return str(value)


@dataclass(frozen=True)
class NewTopic:
    """A topic to create. -1 partitions or replication factor takes the broker's default
    (``num.partitions``, ``default.replication.factor``)."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicDescription:
    name: str
    topic_id: bytes              # 16 bytes; all zero from brokers that predate topic ids
    is_internal: bool
    partitions: tuple[PartitionInfo, ...]

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0


@dataclass(frozen=True)
class BrokerDescription:
    node_id: int
    host: str
    port: int
    rack: str | None
    is_fenced: bool = False


@dataclass(frozen=True)
class CommittedOffset:
    """A consumer group's committed offset of one partition."""

    offset: int
    #: the text committed with the offset (OffsetCommit's / TxnOffsetCommit's metadata)
    metadata: str | None
    leader_epoch: int = -1


@dataclass(frozen=True)
class ClusterDescription:
    cluster_id: str | None
    controller_id: int           # -1 when the brokers do not say
    brokers: tuple[BrokerDescription, ...]


class AdminClient:
    """``AdminClient({"bootstrap.servers": "host:9092"})`` or
    ``AdminClient(bootstrap_servers="host:9092", request_timeout_ms=10000)``: the connection
    settings of :mod:`kengine.config` (``bootstrap.servers``, ``client.id`` (default
    ``kengine-admin``), ``request.timeout.ms``, ``socket.connection.setup.timeout.ms``,
    ``reconnect.backoff.ms``...) and the same TLS and SASL settings as the producer
    (``security.protocol``, ``ssl.*``, ``sasl.*``)."""

    def __init__(self, config: Mapping[str, Any] | None = None, **settings: Any) -> None:
        cfg = _config.resolve(config, **settings)
        self.client_id: str = cfg["client.id"] if "client.id" in cfg.explicit else "kengine-admin"
        self._bootstrap = ",".join(f"{h}:{p}" for h, p in cfg["bootstrap.servers"])
        self._request_timeout_ms: int = cfg["request.timeout.ms"]
        self._client = NetworkClient.from_config(cfg, client_id=self.client_id, max_in_flight=1)
        # One call at a time: the network client is single-threaded. Guards _controller_id too.
        self._lock = threading.Lock()
        self._controller_id: int | None = None   # None: not looked up yet

    # ------------------------------------------------------------------ topics

    def create_topics(self, topics: Iterable[NewTopic], *, timeout: float = 60.0,
                      validate_only: bool = False) -> dict[str, KafkaError | None]:
        """CreateTopics: returns each topic's outcome, None for created (or, with
        ``validate_only``, valid), else its typed error (TopicAlreadyExistsError,
        InvalidReplicationFactorError, PolicyViolationError, KafkaTimeoutError...). Raises for
        failures of the whole request (no broker reachable, authentication)."""
        wanted = {t.name: t for t in topics}
        for name in wanted:
            validate_topic_name(name)

        def body(names: list[str], remaining_ms: int) -> dict[str, Any]:
            return {"topics": [{"name": n, "num_partitions": wanted[n].num_partitions,
                                "replication_factor": wanted[n].replication_factor,
                                "configs": [{"name": k, "value": _config_text(v)}
                                            for k, v in wanted[n].config.items()]}
                               for n in names],
                    "timeout_ms": remaining_ms, "validate_only": validate_only}

        return self._controller_call(API.CREATE_TOPICS, "creating", list(wanted), body,
                                     lambda r: r["topics"], timeout)

    def create_topic(self, name: str, partitions: int = -1, replication_factor: int = -1,
                     config: Mapping[str, Any] | None = None, *, timeout: float = 60.0) -> None:
        """Creates one topic; raises its typed error (TopicAlreadyExistsError...)."""
        outcome = self.create_topics([NewTopic(name, partitions, replication_factor,
                                               dict(config or {}))], timeout=timeout)
        error = outcome[name]
        if error is not None:
            raise error

    def create_partitions(self, name: str, total: int, *, timeout: float = 60.0,
                          validate_only: bool = False) -> None:
        """CreatePartitions: grows ``name`` to ``total`` partitions (Kafka never shrinks a
        topic); raises InvalidPartitionsError when ``total`` is not more than it has."""
        validate_topic_name(name)

        def body(names: list[str], remaining_ms: int) -> dict[str, Any]:
            return {"topics": [{"name": n, "count": total, "assignments": None} for n in names],
                    "timeout_ms": remaining_ms, "validate_only": validate_only}

        error = self._controller_call(API.CREATE_PARTITIONS, "adding partitions to", [name],
                                      body, lambda r: r["results"], timeout)[name]
        if error is not None:
            raise error

    def describe_topics(self, names: Iterable[str] | None = None, *,
                        timeout: float = 30.0) -> dict[str, TopicDescription]:
        """Metadata of ``names`` (None: every topic, internal ones included). Raises
        UnknownTopicOrPartitionError (or the broker's other error) for a named topic that
        cannot be described."""
        wanted = None if names is None else list(dict.fromkeys(names))
        for name in wanted or ():
            validate_topic_name(name)
        resp = self._metadata(wanted, monotonic_ms() + int(timeout * 1000))
        out: dict[str, TopicDescription] = {}
        for t in resp["topics"]:
            name = t["name"]
            if t["error_code"]:
                raise error_for_code(t["error_code"], topic=name)
            parts = tuple(sorted(
                (PartitionInfo(name, p["partition_index"], p["leader_id"], p["leader_epoch"],
                               tuple(p["replica_nodes"]), tuple(p["isr_nodes"]),
                               tuple(p.get("offline_replicas", ())))
                 for p in t["partitions"]), key=lambda p: p.partition))
            out[name] = TopicDescription(name, bytes(t.get("topic_id") or _ZERO_UUID),
                                         t.get("is_internal", False), parts)
        for name in wanted or ():
            if name not in out:
                raise UnknownTopicOrPartitionError(f"the broker did not describe topic {name!r}",
                                                   topic=name)
        return out

    def list_topics(self, *, include_internal: bool = True, timeout: float = 30.0) -> list[str]:
        """Every topic name, sorted."""
        resp = self._metadata(None, monotonic_ms() + int(timeout * 1000))
        return sorted(t["name"] for t in resp["topics"]
                      if not t["error_code"] and (include_internal or not t.get("is_internal")))

    # ------------------------------------------------------------------ consumer groups

    def committed_offsets(self, group_id: str, partitions: Iterable[tuple[str, int]], *,
                          require_stable: bool = True,
                          timeout: float = 30.0) -> dict[tuple[str, int], CommittedOffset | None]:
        """OffsetFetch: the group's committed offset of each ``(topic, partition)``, None for
        a partition without one (or a group that does not exist).

        ``require_stable`` (OffsetFetch v7+, KIP-447): while a transaction that commits
        offsets of these partitions for the group is still open, the coordinator answers
        UNSTABLE_OFFSET_COMMIT and this call asks again until it has ended, so the answer
        says what committed, never what may still abort. Brokers before Kafka 2.5 cannot do
        this: UnsupportedVersionError then. Raises KafkaTimeoutError when no definite answer
        came within ``timeout`` seconds."""
        wanted = list(dict.fromkeys((str(t), int(p)) for t, p in partitions))
        for topic, _ in wanted:
            validate_topic_name(topic)
        by_topic: dict[str, list[int]] = {}
        for topic, partition in wanted:
            by_topic.setdefault(topic, []).append(partition)
        topics = [{"name": t, "partition_indexes": ps} for t, ps in by_topic.items()]
        deadline = monotonic_ms() + int(timeout * 1000)

        def body(version: int) -> dict[str, Any]:
            if require_stable and version < 7:
                raise UnsupportedVersionError(
                    f"reading the committed offsets of group {group_id!r} with require_stable "
                    f"needs OffsetFetch v7 (Kafka 2.5 or newer); this broker offers v{version}",
                    api_key=API.OFFSET_FETCH)
            if version >= 8:
                return {"groups": [{"group_id": group_id, "topics": topics}],
                        "require_stable": require_stable}
            return {"group_id": group_id, "topics": topics, "require_stable": require_stable}

        last: KafkaError | None = None
        with self._lock:
            while True:
                # one attempt waits at most request.timeout.ms for its coordinator: a broker
                # that died is left for the coordinator elected in its place
                attempt_deadline = min(deadline, monotonic_ms() + self._request_timeout_ms)
                try:
                    coordinator = self._group_coordinator(group_id, attempt_deadline)
                    _, resp = self._call(API.OFFSET_FETCH, body, attempt_deadline,
                                         node=coordinator)
                    return _committed(resp, group_id, wanted)
                except (*_OFFSET_FETCH_RETRIED, KafkaTimeoutError) as err:
                    last = err
                if monotonic_ms() >= deadline:
                    raise KafkaTimeoutError(
                        f"the committed offsets of group {group_id!r} were not readable within "
                        f"{timeout:g} s; last error: {last}")
                self._client.poll(min(_RETRY_BACKOFF_MS, max(0, deadline - monotonic_ms())))

    def _group_coordinator(self, group_id: str, deadline_ms: int) -> int:
        """FindCoordinator for a group: the coordinator's node id, its address made known to
        the network client. Call with _lock held."""
        def body(version: int) -> dict[str, Any]:
            if version >= 4:
                return {"key_type": _GROUP_KEY, "coordinator_keys": [group_id]}
            return {"key_type": _GROUP_KEY, "key": group_id}

        _, resp = self._call(API.FIND_COORDINATOR, body, deadline_ms)
        entry = resp["coordinators"][0] if resp.get("coordinators") else resp
        if entry["error_code"]:
            raise error_for_code(entry["error_code"], entry.get("error_message"),
                                 api="FindCoordinator")
        self._client.set_brokers({entry["node_id"]: (entry["host"], entry["port"])})
        return int(entry["node_id"])

    # ------------------------------------------------------------------ cluster

    def describe_cluster(self, *, timeout: float = 30.0) -> ClusterDescription:
        """DescribeCluster (KIP-700), or Metadata from brokers older than Kafka 2.8."""
        deadline = monotonic_ms() + int(timeout * 1000)
        with self._lock:
            node = self._ready_node(deadline)
            conn = self._client.connection(node)
            if conn is None or conn.version(API.DESCRIBE_CLUSTER) is None:
                resp = self._metadata_locked([], deadline)
                return ClusterDescription(
                    resp.get("cluster_id"), resp.get("controller_id", -1),
                    tuple(BrokerDescription(b["node_id"], b["host"], b["port"], b.get("rack"))
                          for b in sorted(resp["brokers"], key=lambda b: b["node_id"])))
            _, resp = self._call(API.DESCRIBE_CLUSTER,
                                 lambda v: {"include_cluster_authorized_operations": False},
                                 deadline)
        if resp["error_code"]:
            raise error_for_code(resp["error_code"], resp.get("error_message"),
                                 api="DescribeCluster")
        return ClusterDescription(
            resp["cluster_id"], resp["controller_id"],
            tuple(BrokerDescription(b["broker_id"], b["host"], b["port"], b.get("rack"),
                                    b.get("is_fenced", False))
                  for b in sorted(resp["brokers"], key=lambda b: b["broker_id"])))

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AdminClient(client_id={self.client_id!r}, bootstrap={self._bootstrap!r})"

    # ------------------------------------------------------------------ requests

    def _metadata(self, topics: list[str] | None, deadline_ms: int) -> dict[str, Any]:
        with self._lock:
            return self._metadata_locked(topics, deadline_ms)

    def _metadata_locked(self, topics: list[str] | None, deadline_ms: int) -> dict[str, Any]:
        def body(version: int) -> dict[str, Any]:
            return {"topics": None if topics is None else
                    [{"name": t, "topic_id": _ZERO_UUID} for t in topics],
                    # describing a topic must never create it
                    "allow_auto_topic_creation": False}

        _, resp = self._call(API.METADATA, body, deadline_ms)
        if resp.get("error_code"):
            raise error_for_code(resp["error_code"], api="Metadata")
        self._client.set_brokers({b["node_id"]: (b["host"], b["port"]) for b in resp["brokers"]})
        controller = resp.get("controller_id", -1)
        self._controller_id = controller if controller in self._client.addresses else -1
        return resp

    def _controller_call(self, api_key: int, doing: str, names: list[str],
                         body: Callable[[list[str], int], dict[str, Any]],
                         results: Callable[[dict[str, Any]], list[dict[str, Any]]],
                         timeout: float) -> dict[str, KafkaError | None]:
        """Sends ``body(names, remaining ms)`` to the controller and collects each topic's
        error; names that failed with NOT_CONTROLLER or THROTTLING_QUOTA_EXCEEDED go again
        (to a fresh controller) until ``timeout``."""
        deadline = monotonic_ms() + int(timeout * 1000)
        outcome: dict[str, KafkaError | None] = {}
        pending = list(names)
        last: dict[str, BrokerError] = {}
        with self._lock:
            while pending:
                now = monotonic_ms()
                if now >= deadline:
                    for name in pending:
                        outcome[name] = KafkaTimeoutError(
                            f"{doing} topic {name!r} did not finish within {timeout:g} s"
                            + (f"; last error: {last[name]}" if name in last else ""))
                    break
                if self._controller_id is None:
                    self._metadata_locked([], deadline)
                controller = self._controller_id if self._controller_id != -1 else None
                request = body(pending, max(1, deadline - now))
                _, resp = self._call(api_key, _constant(request), deadline, node=controller)
                retry = []
                for r in results(resp):
                    name = r["name"]
                    if name not in pending:
                        continue
                    if not r["error_code"]:
                        outcome[name] = None
                        continue
                    err = error_for_code(r["error_code"], r.get("error_message"), topic=name)
                    if isinstance(err, _RETRIED_PER_TOPIC):
                        if isinstance(err, NotControllerError):
                            self._controller_id = None
                        last[name] = err
                        retry.append(name)
                    else:
                        outcome[name] = err
                for name in pending:
                    if name not in outcome and name not in retry:
                        outcome[name] = ProtocolError(
                            f"the broker left topic {name!r} out of its answer to {doing} it")
                pending = retry
                if pending:
                    self._client.poll(min(_RETRY_BACKOFF_MS, max(0, deadline - monotonic_ms())))
        return outcome

    def _call(self, api_key: int, body: Callable[[int], dict[str, Any]], deadline_ms: int,
              node: int | None = None) -> tuple[int, dict[str, Any]]:
        """Sends one request (``body(version)``) to ``node`` (None: any broker) and returns
        (node, response), retrying retriable failures (dropped connections, request timeouts)
        until the deadline. Call with _lock held."""
        client = self._client
        while True:
            target = self._ready_node(deadline_ms, node)
            conn = client.connection(target)
            assert conn is not None
            version = conn.version(api_key)
            if version is None:
                raise UnsupportedVersionError(
                    f"broker {target} ({conn.host}:{conn.port}) supports no version of api key "
                    f"{api_key} that kengine speaks", node=target, api_key=api_key)
            box: list[tuple[Any, KafkaError | None]] = []
            now = monotonic_ms()
            def on_response(resp: Any, err: KafkaError | None,
                            box: list[tuple[Any, KafkaError | None]] = box) -> None:
                box.append((resp, err))

            if not client.send(target, api_key, body(version), on_response, now_ms=now,
                               version=version, timeout_ms=max(1, deadline_ms - now)):
                continue   # the connection closed in between: pick a node again
            while not box:
                # the connection fails the request itself at its timeout (the deadline)
                client.poll(_POLL_SLICE_MS)
            resp, err = box[0]
            if err is None:
                return target, resp
            if not err.retriable or monotonic_ms() >= deadline_ms:
                raise err
            client.poll(min(_RETRY_BACKOFF_MS, max(0, deadline_ms - monotonic_ms())))

    def _ready_node(self, deadline_ms: int, node: int | None = None) -> int:
        """A broker with a ready connection: ``node`` if given, else the least loaded one,
        connecting as needed. Raises KafkaTimeoutError at the deadline, or the fatal error
        (authentication...) that stops every connection."""
        client = self._client
        while True:
            now = monotonic_ms()
            if client.fatal_error is not None:
                raise client.fatal_error
            target = node if node is not None else client.least_loaded_node(now)
            if target is not None:
                if client.is_ready(target):
                    return target
                client.connect(target, now)
            if now >= deadline_ms:
                which = f"broker {node}" if node is not None else f"any broker of {self._bootstrap}"
                cause = f": {client.last_error}" if client.last_error is not None else ""
                raise KafkaTimeoutError(f"could not connect to {which} in time{cause}")
            client.poll(min(_POLL_SLICE_MS, deadline_ms - now))


def _committed(resp: dict[str, Any], group_id: str, wanted: list[tuple[str, int]]
               ) -> dict[tuple[str, int], CommittedOffset | None]:
    """The committed offsets of an OffsetFetch answer (v8+: its one group); raises the
    group's or a partition's error."""
    if "groups" in resp and resp["groups"] is not None:
        group = resp["groups"][0]
        code, topics = group["error_code"], group["topics"]
    else:
        code, topics = resp.get("error_code", 0), resp["topics"]
    if code:
        raise error_for_code(code, api="OffsetFetch", group=group_id)
    out: dict[tuple[str, int], CommittedOffset | None] = dict.fromkeys(wanted)
    for t in topics:
        for p in t["partitions"]:
            if p["error_code"]:
                raise error_for_code(p["error_code"], api="OffsetFetch", group=group_id,
                                     topic=t["name"], partition=p["partition_index"])
            # -1: the group has no offset for the partition
            if p["committed_offset"] >= 0:
                out[(t["name"], p["partition_index"])] = CommittedOffset(
                    p["committed_offset"], p["metadata"], p.get("committed_leader_epoch", -1))
    return out


def _constant(body: dict[str, Any]) -> Callable[[int], dict[str, Any]]:
    """A request body that is the same whatever the version."""
    return lambda version: body
