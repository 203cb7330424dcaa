"""Cluster metadata as the producer needs it: brokers, topic ids and partition leaders.

The sender thread refreshes it (on a schedule, on demand, and after errors that mean it is
stale) and pushes each topic's leaders into the Cython accumulator, which is what the hot path
and the drain read. User threads only wait here, in ``await_topic()``, when they send to a
topic whose partitions are not known yet.

A topic the producer has not seen is fetched at once, in a request for the new topics alone
(Java's partial update): not after ``retry.backoff.ms``, which only spaces out refreshes of
what is known and retries after errors. Topics that become new while a request is in flight
go out together in the next one. A topic nothing was sent to for ``metadata.max.idle.ms`` is
dropped from the refreshes, so a producer that wrote to 10,000 topics once does not ask for
all of them every ``metadata.max.age.ms`` forever.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kengine_ext import TopicState
from kengine_ext.schemas import ApiKey as API

from .errors import (
    BrokerError,
    InvalidTopicError,
    KafkaError,
    KafkaTimeoutError,
    ReplicaNotAvailableError,
    TopicAuthorizationFailedError,
    error_for_code,
)

if TYPE_CHECKING:
    from kengine_ext import RecordAccumulator

    from .network import NetworkClient

__all__ = ["Metadata", "PartitionInfo", "validate_topic_name"]

_log = logging.getLogger("kengine.metadata")

_LEGAL_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_ZERO_UUID = bytes(16)
# KIP-1102: a Metadata response (v13+) telling the client to start again from bootstrap.servers
_REBOOTSTRAP_REQUIRED = 129


def validate_topic_name(topic: str) -> None:
    """Kafka's own rules (org.apache.kafka.common.internals.Topic.validate)."""
    if not isinstance(topic, str) or not topic:
        raise InvalidTopicError(f"topic name must be a non-empty string, not {topic!r}")
    if topic in (".", ".."):
        raise InvalidTopicError(f"topic name cannot be {topic!r}")
    if len(topic) > 249:
        raise InvalidTopicError(f"topic name is {len(topic)} characters; the limit is 249")
    bad = set(topic) - _LEGAL_TOPIC_CHARS
    if bad:
        raise InvalidTopicError(
            f"topic name {topic!r} contains {''.join(sorted(bad))!r}; only ASCII letters, digits, "
            f"'.', '_' and '-' are allowed")


@dataclass(frozen=True)
class PartitionInfo:
    topic: str
    partition: int
    leader: int                 # -1 when unknown
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()


@dataclass
class _TopicInfo:
    topic_id: bytes = _ZERO_UUID
    partitions: list[PartitionInfo] = field(default_factory=list)


class Metadata:
    """What the producer knows of the cluster: brokers, topic ids and partition leaders. It
    pushes each topic's leaders into the record accumulator (update_topic), which is all of
    the producer it sees."""

    def __init__(self, accumulator: RecordAccumulator, client: NetworkClient, *, client_id: str,
                 max_age_ms: int, refresh_backoff_ms: int,
                 refresh_backoff_max_ms: int, max_idle_ms: int = 300_000,
                 rebootstrap: bool = True, rebootstrap_trigger_ms: int = 300_000) -> None:
        self._acc = accumulator
        self._client = client
        self._client_id = client_id
        self._max_age_ms = max_age_ms
        self._backoff_ms = refresh_backoff_ms
        self._backoff_max_ms = refresh_backoff_max_ms
        self._max_idle_ms = max_idle_ms
        self._rebootstrap = rebootstrap
        self._rebootstrap_trigger_ms = rebootstrap_trigger_ms
        #: when a wanted refresh started going without success (None: the last one worked)
        self._unanswered_since_ms: int | None = None
        # Guards everything below: user threads (await_topic) and the sender thread.
        self._cond = threading.Condition()
        self._topics: dict[str, _TopicInfo] = {}           # topics the producer uses
        self._topic_errors: dict[str, KafkaError] = {}      # last non-retriable error per topic
        #: the last retriable error a broker answered for a topic (UNKNOWN_TOPIC_OR_PARTITION,
        #: LEADER_NOT_AVAILABLE...), for the message of a wait that runs out; under _cond
        self._topic_retriable: dict[str, KafkaError] = {}
        self._topic_names_by_id: dict[bytes, str] = {}
        self.brokers: dict[int, tuple[str, int, str | None]] = {}
        self.cluster_id: str | None = None
        self.controller_id: int = -1
        self._update_requested = True
        #: topics a send waits for that no response has answered yet: asked for at once
        self._new_topics: set[str] = set()
        #: monotonic ms a send last waited for, or a request carried, each topic (sender
        #: thread writes, user threads write in await_topic; under _cond)
        self._last_used_ms: dict[str, int] = {}
        self._in_flight = False
        self._in_flight_full = True
        self._in_flight_new: set[str] = set()   # the new topics the request in flight asks
        self._last_refresh_ms = 0
        self._failures = 0
        self._next_attempt_ms = 0    # refreshes of known topics are spaced by retry.backoff.ms
        self._failed_until_ms = 0    # after a failed request: no request at all before this
        self._version = 0     # bumped by every applied response, for waiters
        #: the client's rebootstrap count when last looked at (sender thread): a rebootstrap
        #: forgets every broker's address, which only a fresh response brings back
        self._rebootstraps_seen = 0

    # ------------------------------------------------------------------ user threads

    def await_topic(self, topic: str, max_block_ms: int, partition: int | None = None,
                    wakeup: Any = None) -> TopicState:
        """Blocks until `topic` has partitions (and `partition` exists, if given) or
        max_block_ms passes. An explicit partition forces one fresh metadata response first,
        because partitions may have been added."""
        from kengine_ext import monotonic_ms

        validate_topic_name(topic)
        deadline = time.monotonic() + max_block_ms / 1000.0
        with self._cond:
            info = self._topics.get(topic)
            if info is None:
                self._topics[topic] = _TopicInfo()
            self._topic_errors.pop(topic, None)
            self._last_used_ms[topic] = monotonic_ms()
            # asked for at once, alone (with other new topics); a response answering it
            # bumps _version, which an explicit partition waits for
            self._new_topics.add(topic)
            start_version = self._version
            while True:
                state = self._acc.topic_state(topic)
                known = state is not None and state.num_partitions > 0
                # An explicit partition waits for one metadata response newer than the call:
                # partitions may have been added since the last one.
                if state is not None and known and \
                        (partition is None or self._version > start_version):
                    return state
                err = self._topic_errors.get(topic)
                if err is not None:
                    raise err
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if state is not None and known:
                        return state   # the caller reports the partition as out of range
                    raise KafkaTimeoutError(
                        f"topic {topic!r} not present in metadata after {max_block_ms} ms "
                        f"(max.block.ms): "
                        + self._why_missing(topic, answered=self._version > start_version))
                if wakeup is not None:
                    wakeup()
                self._cond.wait(min(remaining, 0.5))

    def _why_missing(self, topic: str, answered: bool) -> str:
        """Which of the two reasons a topic stays unknown held: brokers answered without it,
        or none answered (with the last connection error). Under _cond."""
        if not answered:
            cause = self._client.last_error
            return ("no broker answered a metadata request in that time" +
                    (f"; last connection error: {cause}" if cause is not None else
                     ": check bootstrap.servers and that the brokers are up"))
        err = self._topic_retriable.get(topic)
        if err is None or getattr(err, "name", "") == "UNKNOWN_TOPIC_OR_PARTITION":
            return ("the brokers answered that it does not exist, and they do not create "
                    "topics on first use (auto.create.topics.enable=false): create it first "
                    "(kengine topics create, or kafka-topics.sh --create)")
        return f"the brokers answered, but not with its partitions: {err}"

    def partitions_for(self, topic: str) -> list[PartitionInfo]:
        with self._cond:
            info = self._topics.get(topic)
            return list(info.partitions) if info is not None else []

    def topic_id(self, topic: str) -> bytes:
        with self._cond:
            info = self._topics.get(topic)
            return info.topic_id if info is not None else _ZERO_UUID

    def topic_name(self, topic_id: bytes) -> str | None:
        with self._cond:
            return self._topic_names_by_id.get(bytes(topic_id))

    def request_update(self, topics: Any = None) -> None:
        """Asks for a refresh at the next opportunity (thread-safe)."""
        with self._cond:
            self._update_requested = True
            if topics:
                for t in topics:
                    self._topics.setdefault(t, _TopicInfo())

    def touch(self, topics: Any, now_ms: int) -> None:
        """The sender sent records of ``topics`` (per request, never per record): they are in
        use, so metadata.max.idle.ms does not drop them."""
        with self._cond:
            for t in topics:
                self._last_used_ms[t] = now_ms
                if t not in self._topics:
                    # dropped as idle, but the core still knew its partitions, so send() did
                    # not wait for it: refresh it again from now on, starting at once
                    self._topics[t] = _TopicInfo()
                    self._new_topics.add(t)

    @property
    def topic_count(self) -> int:
        """Topics whose metadata the producer keeps and refreshes."""
        with self._cond:
            return len(self._topics)

    # ------------------------------------------------------------------ sender thread

    def _notice_rebootstrap(self) -> None:
        """Whoever made the client rebootstrap (this class, the transaction manager looking
        for a node, or the sender), its brokers' addresses are gone: leaders cannot be reached
        until metadata names them again, so a full update is due at once, not at the next
        metadata.max.age.ms."""
        count = self._client.rebootstrap_count
        if count != self._rebootstraps_seen:
            self._rebootstraps_seen = count
            with self._cond:
                self._update_requested = True
            self._next_attempt_ms = 0

    def time_to_next_update_ms(self, now_ms: int) -> int:
        self._notice_rebootstrap()
        if self._in_flight:
            return 1 << 30
        failed = max(0, self._failed_until_ms - now_ms)
        if self._new_topics:
            return failed    # a send is waiting: no spacing after the last success
        wait_backoff = max(failed, self._next_attempt_ms - now_ms)
        if self._update_requested:
            return wait_backoff
        return max(wait_backoff, self._last_refresh_ms + self._max_age_ms - now_ms)

    def _full_update_due(self, now_ms: int) -> bool:
        return (self._update_requested and now_ms >= self._next_attempt_ms) or \
            now_ms >= self._last_refresh_ms + self._max_age_ms

    def maybe_update(self, now_ms: int) -> None:
        """Sends a Metadata request when one is due and a broker can take it: for every topic
        in use (a full update), or for the new topics alone when only they are due."""
        if self.time_to_next_update_ms(now_ms) > 0:
            return
        if self._unanswered_since_ms is None:
            self._unanswered_since_ms = now_ms
        elif self._rebootstrap and \
                now_ms - self._unanswered_since_ms >= self._rebootstrap_trigger_ms:
            # KIP-1102: brokers may still accept connections yet not answer metadata
            self._unanswered_since_ms = now_ms
            self._client.rebootstrap(f"no metadata for metadata.recovery.rebootstrap.trigger.ms "
                                     f"({self._rebootstrap_trigger_ms} ms)")
        node = self._client.least_loaded_node(now_ms)
        if node is None:
            return
        if not self._client.is_ready(node):
            self._client.connect(node, now_ms)
            return
        conn = self._client.connection(node)
        assert conn is not None
        version = conn.version(API.METADATA)
        if version is None:
            return
        with self._cond:
            full = self._full_update_due(now_ms)
            if full:
                self._drop_idle_topics(now_ms)
                topics = sorted(self._topics)
                self._update_requested = False
            else:
                topics = sorted(self._new_topics)
            self._in_flight_new = set(self._new_topics)
            self._new_topics.clear()
        body: dict[str, Any] = {
            "topics": [{"name": t, "topic_id": _ZERO_UUID} for t in topics],
            # As Java's producer: let the broker decide (auto.create.topics.enable)
            "allow_auto_topic_creation": True,
        }
        self._in_flight = True
        self._in_flight_full = full
        self._client.send(node, API.METADATA, body, self._on_response, now_ms=now_ms)

    def _drop_idle_topics(self, now_ms: int) -> None:
        """metadata.max.idle.ms: forget topics nothing was sent to for that long and with no
        records waiting (under _cond). A later send() to one fetches it again, as a new one."""
        horizon = now_ms - self._max_idle_ms
        for name in [t for t, used in self._last_used_ms.items() if used < horizon]:
            state = self._acc.topic_state(name)
            if state is not None and any(q.batch_count for q in state.queues):
                continue
            del self._last_used_ms[name]
            info = self._topics.pop(name, None)
            self._topic_errors.pop(name, None)
            if info is not None and info.topic_id != _ZERO_UUID:
                self._topic_names_by_id.pop(info.topic_id, None)
            _log.debug("[%s] topic %r unused for metadata.max.idle.ms (%d ms): no longer "
                       "refreshed", self._client_id, name, self._max_idle_ms)

    def _on_response(self, body: Any, error: KafkaError | None) -> None:
        from kengine_ext import monotonic_ms

        now_ms = monotonic_ms()
        self._in_flight = False
        asked_new, self._in_flight_new = self._in_flight_new, set()
        if error is None and body.get("error_code") == _REBOOTSTRAP_REQUIRED:
            error = KafkaError("the broker answered REBOOTSTRAP_REQUIRED")
            if self._rebootstrap:
                self._client.rebootstrap("the broker answered REBOOTSTRAP_REQUIRED")
        if error is not None:
            self._failures += 1
            delay = min(self._backoff_max_ms, self._backoff_ms * 2 ** min(self._failures - 1, 20))
            self._failed_until_ms = now_ms + delay
            with self._cond:
                self._update_requested = True
                self._new_topics |= asked_new   # still waited for: ask again after the backoff
            _log.debug("[%s] metadata request failed: %s", self._client_id, error)
            return
        self._failures = 0
        self._unanswered_since_ms = None
        if self._in_flight_full:
            self._next_attempt_ms = now_ms + self._backoff_ms
        self.apply(body, now_ms, partial=not self._in_flight_full)

    def apply(self, body: dict[str, Any], now_ms: int, *, partial: bool = False) -> None:
        """Takes a Metadata response in. A ``partial`` one answered new topics only: it does
        not count as the periodic refresh of the others."""
        brokers = {b["node_id"]: (b["host"], b["port"], b.get("rack")) for b in body["brokers"]}
        if brokers:
            if brokers != self.brokers:
                _log.info("[%s] brokers of cluster %s: %s", self._client_id,
                          body.get("cluster_id"), ", ".join(
                              f"{n} at {h}:{p}" for n, (h, p, _) in sorted(brokers.items())))
            self.brokers = brokers
            self._client.replace_brokers({n: (h, p) for n, (h, p, _) in brokers.items()})
        self.cluster_id = body.get("cluster_id")
        self.controller_id = body.get("controller_id", -1)
        retry_soon = False
        with self._cond:
            for t in body["topics"]:
                name = t["name"]
                code = t["error_code"]
                if name is None:
                    continue
                if code:
                    err = error_for_code(code, topic=name)
                    if isinstance(err, (InvalidTopicError, TopicAuthorizationFailedError)) \
                            or not err.retriable:
                        self._topic_errors[name] = err
                        _log.warning("[%s] metadata for topic %r: %s", self._client_id, name, err)
                    else:
                        retry_soon = True  # UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE...
                        self._topic_retriable[name] = err
                    continue
                self._topic_errors.pop(name, None)
                self._topic_retriable.pop(name, None)
                info = self._topics.setdefault(name, _TopicInfo())
                topic_id = bytes(t.get("topic_id") or _ZERO_UUID)
                if topic_id != _ZERO_UUID:
                    info.topic_id = topic_id
                    self._topic_names_by_id[topic_id] = name
                parts = sorted(t["partitions"], key=lambda p: p["partition_index"])
                if [p["partition_index"] for p in parts] != list(range(len(parts))) or not parts:
                    # no partitions, a gap, a repeat or a negative index: an incomplete (or
                    # broken) answer; the core must never see a topic without partitions
                    retry_soon = True
                    continue
                state = self._acc.topic_state(name)
                infos, leaders = [], []
                for p in parts:
                    # leader_epoch exists from Metadata v7 (Kafka 2.1) on
                    index, leader = p["partition_index"], p["leader_id"]
                    epoch = p.get("leader_epoch", -1)
                    if p["error_code"] and leader >= 0 and \
                            p["error_code"] != ReplicaNotAvailableError.code:
                        leader = -1   # LEADER_NOT_AVAILABLE and the like
                    if leader >= 0 and brokers and leader not in brokers:
                        # a leader the response does not list (fenced, going away): unknown,
                        # as in Java, so the partition waits for the next answer instead of
                        # for a broker the client no longer has an address for
                        leader = -1
                    if state is not None and index < state.num_partitions:
                        q = state.queues[index]
                        if 0 <= epoch < q.leader_epoch:
                            # KIP-320: a lagging broker answered; keep the newer leader we know
                            leader, epoch = q.leader_id, q.leader_epoch
                    if leader < 0:
                        retry_soon = True
                    infos.append(PartitionInfo(name, index, leader, epoch,
                                               tuple(p["replica_nodes"]), tuple(p["isr_nodes"]),
                                               tuple(p.get("offline_replicas", ()))))
                    leaders.append((leader, epoch))
                self._log_changes(name, info.partitions, infos)
                info.partitions = infos
                self._acc.update_topic(name, leaders)
            if not partial:
                self._last_refresh_ms = now_ms
            self._version += 1
            if retry_soon:
                self._update_requested = True
            self._cond.notify_all()

    def last_refresh_ms(self) -> int:
        """Monotonic ms of the last full refresh applied (0: none yet); for metadata-age."""
        return self._last_refresh_ms

    def _log_changes(self, topic: str, old: list[PartitionInfo],
                     new: list[PartitionInfo]) -> None:
        if not old:
            _log.info("[%s] topic %r: %d partitions", self._client_id, topic, len(new))
        elif len(old) != len(new):
            _log.info("[%s] topic %r grew to %d partitions (from %d)", self._client_id, topic,
                      len(new), len(old))
        if _log.isEnabledFor(logging.DEBUG):
            for before, now in zip(old, new, strict=False):
                if before.leader != now.leader:
                    _log.debug("[%s] leader of %s-%d: broker %d (was %d), epoch %d",
                               self._client_id, topic, now.partition, now.leader,
                               before.leader, now.leader_epoch)

    def apply_leader_hint(self, topic: str, partition: int, leader_id: int, leader_epoch: int,
                          endpoints: dict[int, tuple[str, int]]) -> bool:
        """KIP-951: a Produce response named the partition's new leader; use it before the
        next metadata refresh. Returns True when it was newer than what we had."""
        state = self._acc.topic_state(topic)
        if state is None or partition >= state.num_partitions or leader_id < 0:
            return False
        q = state.queues[partition]
        if leader_epoch <= q.leader_epoch:
            return False
        if endpoints:
            self._client.set_brokers(endpoints)
        if leader_id not in self._client.addresses:
            return False
        leaders = [(x.leader_id, x.leader_epoch) for x in state.queues]
        leaders[partition] = (leader_id, leader_epoch)
        self._acc.update_topic(topic, leaders)
        return True

    def fail_waiters(self, error: BrokerError) -> None:
        with self._cond:
            for name in self._topics:
                self._topic_errors.setdefault(name, error)
            self._cond.notify_all()
