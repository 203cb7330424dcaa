"""The Kafka a benchmark writes to, and the independent checks of what each client wrote.

:class:`BenchKafka` starts a :class:`~kengine.localkafka.KafkaCluster` for a layout, gives every
run a fresh topic, and after the run checks the topic with clients that are not kengine:

* **count**: the sum of the partitions' end offsets, from confluent-kafka (librdkafka), must
  equal the records the client sent (warm-up included). In a transactional run every commit
  also writes a marker (a control record, which takes an offset) into each partition the
  transaction touched, so there the records are counted by reading the whole topic with
  ``isolation.level=read_committed``, which delivers committed records only, and the end
  offsets must exceed that count by exactly the markers the run's transactions write.
* **sample**: the first records of every partition are consumed (confluent-kafka,
  read_committed): each value must come from the workload's pool, each key be one of its keys,
  and each keyed record sit in the partition Java's murmur2 partitioner assigns it.
* **idempotence and transactions**: the partition leaders are asked (DescribeProducers,
  KIP-664) which producers wrote to the topic. A producer id means the client was idempotent;
  a coordinator epoch for it means its transactions reached the partition (only a transaction
  marker sets one), and an open transaction start offset that one was left open.

The topic is then deleted, so long runs do not fill the disk.
"""
from __future__ import annotations

import os
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from benchmarks.plan import Layout
from benchmarks.workload import KEY_SPACE, keys, min_records_per_key, payload_pool
from kengine.localkafka import KafkaCluster
from kengine.localkafka.probe import read_frame
from kengine_ext import decode_response, encode_request, partition_for_key

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BROKER_CONFIG", "BenchKafka", "Verification", "process_cpu_s", "wait_partitions_loaded",
           "wait_topic_files_gone"]

_DESCRIBE_PRODUCERS = 61
_SAMPLE_PER_PARTITION = 50
_COUNT_TIMEOUT_S = 60.0
_COUNT_STALL_S = 10.0
_SAMPLE_TIMEOUT_S = 30.0
# reading a whole topic: 1M records take a few seconds; a minute more is generous
_READ_ALL_TIMEOUT_S = 120.0

# Broker settings on top of the harness defaults, the same for every client; benchmarks that
# start their own KafkaCluster pass them too:
# * a deleted topic's files go 1 s after the deletion, not 60 s (log.segment.delete.delay.ms,
#   the broker's name for the topic setting file.delete.delay.ms), so that a benchmark can wait
#   for them to go (wait_topic_files_gone) before its next run. Removing a topic of a few GB
#   costs the broker's writers kernel time: a Dask ingest lane that ran while the previous
#   lane's 2.2 GB topic was removed spent 13-20 s of broker CPU where one that did not spent
#   3-8 s, and ran at a third to a half of the rate;
# * each partition's offset and time index is preallocated as a sparse file of
#   log.index.size.max.bytes (10 MiB by default) and mmapped. On this machine's ext4 the first
#   write into such a file costs 2-40 ms, against 0.04 ms for a 64 KiB one, and a broker writes
#   into both when a partition of a new topic gets its first records: on a new 5,000-partition
#   topic that took ~100 s of broker CPU for 205,000 records, every client at ~2,000 records/s
#   (kengine 1,627-2,319, confluent-kafka 2,026-2,091, a fresh broker per run; 42,000-70,000
#   with 64 KiB indexes). A benchmark of clients should not measure that, so the indexes are
#   64 KiB (5,461 time-index entries, one per 4 KiB appended: a segment rolls after ~22 MB
#   instead of 1 GB).
BROKER_CONFIG = {"log.segment.delete.delay.ms": 1000, "log.index.size.max.bytes": 65536}


def wait_partitions_loaded(consumer: Consumer, partitions: list[TopicPartition], what: str,
                           timeout: float) -> None:
    """Returns once every partition's leader answers ListOffsets for it, that is once the
    broker has loaded the partition's log. Metadata names a leader before that: until then
    produce requests get NOT_LEADER_OR_FOLLOWER, and a run started then measures the topic's
    creation, not the client."""
    deadline = time.monotonic() + timeout
    waiting = partitions
    while waiting:
        left = []
        # librdkafka answers "unknown partition" for topics its metadata has not seen,
        # and does not look them up by itself: ask for them
        for name in sorted({tp.topic for tp in waiting}):
            try:
                consumer.list_topics(name, timeout=10)
            except KafkaException:
                break   # a broker busy creating partitions: ask again next time round
        for tp in waiting:
            try:   # ListOffsets: answered by the leader once it holds the partition
                consumer.get_watermark_offsets(tp, timeout=10)
            except KafkaException:
                left.append(tp)
        waiting = left
        if waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} partition(s) of {what} still refuse "
                                   f"requests {timeout:.0f} s after they were created")
            time.sleep(0.2)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (a broker's JVM), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Verification:
    """What the independent checks found in one run's topic."""

    expected: int
    #: records in the topic: end offsets, or in a transactional run the committed records
    #: read back with read_committed
    counted: int
    #: problems found in the sampled records (empty: none)
    sample_problems: list[str]
    #: producer ids the partition leaders report for the topic (empty: not idempotent)
    producer_ids: list[int]
    #: of those, the ids with a coordinator epoch: transaction markers of theirs are in the topic
    txn_producer_ids: list[int] = field(default_factory=list)
    #: the highest producer epoch reported (transactions v2 bump the epoch every transaction)
    max_producer_epoch: int = -1
    #: partitions where a producer still has a transaction open
    open_transactions: int = 0
    #: transactional runs: offsets holding no committed record (end offsets - counted), which
    #: must all be the markers of committed transactions
    control_records: int | None = None
    #: transactional runs: the markers the run's transactions write, one per transaction and
    #: partition it touched
    expected_control_records: int | None = None


def wait_topic_files_gone(cluster: KafkaCluster, topics: list[str], timeout: float = 600) -> None:
    """Waits until no broker of ``cluster`` holds a directory of ``topics``' partitions any
    more. Deleting a topic returns before the brokers remove its partitions' files (renamed
    ``<topic>-<p>.<id>-delete``, removed log.segment.delete.delay.ms later); removing a topic
    of 5,000 partitions, or of a few GB, kept the machine busy in the window of whichever run
    came next."""
    pattern = re.compile("|".join(rf"{re.escape(t)}-\d+(\.[0-9a-f]+-delete)?" for t in topics))
    dirs = [cluster.data_dir(n) for n in cluster.nodes]
    deadline = time.monotonic() + timeout
    while True:
        left = sum(1 for d in dirs if d.is_dir() for e in os.scandir(d)
                   if pattern.fullmatch(e.name))
        if not left:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{left} partition directories of deleted topic(s) "
                               f"{', '.join(topics)} still on the brokers {timeout:.0f} s "
                               f"after the deletion")
        time.sleep(0.5)


class BenchKafka:
    """A running cluster for one layout. Use as a context manager: closing kills the brokers."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        config: dict[str, Any] = dict(BROKER_CONFIG)
        if "min.insync.replicas" in layout.topic_config:
            config["min.insync.replicas"] = layout.topic_config["min.insync.replicas"]
        self.cluster = KafkaCluster(layout.brokers, broker_config=config)
        try:
            common: dict[str, Any] = {"bootstrap.servers": self.cluster.bootstrap_servers,
                                      "log_level": 4}
            self._admin: AdminClient | None = AdminClient({**common, "client.id": "bench-admin"})
            reading = {**common, "group.id": f"bench-verify-{uuid.uuid4().hex}",
                       "enable.auto.commit": False, "check.crcs": True,
                       "isolation.level": "read_committed", "fetch.wait.max.ms": 50}
            self._consumer = Consumer({**reading, "client.id": "bench-verify"})
            # reads topics to their end, which it reports as an event per partition; a
            # consumer of its own, since unassign() warns about each such event it drops
            self._reader = Consumer({**reading, "client.id": "bench-verify-reader",
                                     "enable.partition.eof": True})
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
            self._reader.close()
        finally:
            # dropping the admin client destroys it: it stops reconnecting to dead brokers
            self._admin = None
            self.cluster.close()

    # -- topics ------------------------------------------------------------------------------

    def fresh_topic(self, stem: str) -> str:
        """A new topic, returned once every partition's leader takes requests for it.

        Metadata names a leader before that broker has loaded the partition; until it has,
        produce requests get NOT_LEADER_OR_FOLLOWER (on one broker, with 1,000 partitions,
        for several seconds on this machine). A run that started then would measure retries of
        a topic being created, different for each client's luck, not the throughput asked
        for, so every client gets a topic that is ready."""
        name = f"{stem}-{uuid.uuid4().hex[:8]}"
        self.cluster.create_topic(name, self.layout.partitions, self.layout.replication_factor,
                                  self.layout.topic_config)
        assert self._consumer is not None, "fresh_topic() after close()"
        self._wait_ready([TopicPartition(name, p) for p in range(self.layout.partitions)], name)
        return name

    def fresh_topics(self, stem: str, count: int) -> list[str]:
        """``count`` new topics of the layout's shape, created in one request, returned once
        every partition of each takes requests (see :meth:`fresh_topic`)."""
        if count == 1:
            return [self.fresh_topic(stem)]
        assert self._admin is not None, "fresh_topics() after close()"
        run = uuid.uuid4().hex[:8]
        names = [f"{stem}-{run}-{i}" for i in range(count)]
        futures = self._admin.create_topics(
            [NewTopic(n, self.layout.partitions, self.layout.replication_factor,
                      config=dict(self.layout.topic_config)) for n in names],
            operation_timeout=120, request_timeout=130)
        for f in futures.values():
            f.result(timeout=180)
        self._wait_ready([TopicPartition(n, p) for n in names
                          for p in range(self.layout.partitions)], f"{count} topics {stem}-*")
        return names

    def warm_up(self, seconds: float, records: int) -> tuple[int, float]:
        """Writes to a topic of the layout's shape until ``records`` are acknowledged or
        ``seconds`` pass, then deletes it; returns (records acknowledged, seconds taken).

        A new broker appends slowly for its first minutes on topics of many partitions (on
        this machine: a 1,000-partition topic took 3,000 records/s for the first two runs of
        a round, 40,000-370,000 after): whichever client ran first paid for the broker's
        warming. confluent-kafka does the warming here, with the benchmark's settings."""
        from confluent_kafka import Producer

        topic = self.fresh_topic("warm-up")
        producer = Producer({"bootstrap.servers": self.bootstrap_servers, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5, "batch.size": 65536,
                             "partitioner": "murmur2_random", "log_level": 4,
                             "queue.buffering.max.messages": 0})
        value, started = b"w" * 100, time.monotonic()
        sent = 0
        try:
            while sent < records and time.monotonic() - started < seconds:
                try:
                    producer.produce(topic, value, str(sent % 20_000).encode())
                    sent += 1
                except BufferError:
                    producer.poll(0.001)
            left = producer.flush(max(1.0, seconds))
        finally:
            self.delete_topic(topic)
        return sent - left, time.monotonic() - started

    def _wait_ready(self, partitions: list[TopicPartition], what: str) -> None:
        assert self._consumer is not None, "_wait_ready() after close()"
        wait_partitions_loaded(self._consumer, partitions, what, timeout=180)

    def delete_topic(self, topic: str) -> None:
        self.delete_topics([topic])

    def delete_topics(self, topics: list[str]) -> None:
        assert self._admin is not None, "delete_topics() after close()"
        futures = self._admin.delete_topics(topics, operation_timeout=60, request_timeout=70)
        for f in futures.values():
            f.result(timeout=120)
        wait_topic_files_gone(self.cluster, topics)

    # -- checks ------------------------------------------------------------------------------

    def verify(self, topics: str | list[str], expected: int | tuple[int, ...],
               record_bytes: int, key_space: int = KEY_SPACE, *,
               expected_markers: int | None = None) -> Verification:
        """Counts, samples and asks who wrote ``topics`` (one name or several, written as
        :func:`benchmarks.workload.schedule` spreads records). ``expected``: the records
        sent, or the records of each phase (warm-up, measured), each starting again at record
        0. ``expected_markers``: the run was transactional and its commits wrote this many
        markers; the committed records are then counted by reading the topics to their end."""
        names = [topics] if isinstance(topics, str) else list(topics)
        phases = (expected,) if isinstance(expected, int) else tuple(expected)
        total = sum(phases)
        per_key = min_records_per_key(phases, key_space)
        control = None
        if expected_markers is None:
            counted = self.count(names, total)
            _, problems = self._read(names, record_bytes, key_space, per_key, to_end=False)
        else:
            # the coordinator writes the markers after commit_transaction() returns: wait for
            # them, so that read_committed sees the last transactions too
            offsets = self.count(names, total + expected_markers)
            counted, problems = self._read(names, record_bytes, key_space, per_key,
                                           to_end=True)
            control = offsets - counted
        states = self.producer_states(names)
        return Verification(
            expected=total, counted=counted, sample_problems=problems,
            producer_ids=sorted({s["producer_id"] for s in states}),
            txn_producer_ids=sorted({s["producer_id"] for s in states
                                     if s["coordinator_epoch"] >= 0}),
            max_producer_epoch=max((s["producer_epoch"] for s in states), default=-1),
            open_transactions=sum(s["current_txn_start_offset"] >= 0 for s in states),
            control_records=control, expected_control_records=expected_markers)

    def count(self, topics: str | list[str], expected: int) -> int:
        """Offsets in ``topics`` (sum of end offsets), waiting up to a minute for ``expected``
        (a replicated topic's high watermark can trail an acks=1 acknowledgement, and
        transaction markers are written after the commit returns), but no longer than
        ``_COUNT_STALL_S`` without any progress: what is missing then is not coming."""
        names = [topics] if isinstance(topics, str) else topics
        now = time.monotonic()
        deadline, stalled_at = now + _COUNT_TIMEOUT_S, now + _COUNT_STALL_S
        last = -1
        while True:
            total = 0
            for topic in names:
                for p in range(self.layout.partitions):
                    low, high = self._consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=10, cached=False)
                    total += high - low
            now = time.monotonic()
            if total >= expected or now > deadline or now > stalled_at:
                return total
            if total != last:
                last, stalled_at = total, now + _COUNT_STALL_S
            time.sleep(0.2)

    def _read(self, topics: list[str], record_bytes: int, key_space: int, per_key: int, *,
              to_end: bool) -> tuple[int, list[str]]:
        """Consumes committed records of ``topics`` from the start, checking the first ones
        of every partition; with ``to_end`` until every partition's end (else until each has
        given its sample). Returns (records consumed, problems found)."""
        everything = [(t, p) for t in topics for p in range(self.layout.partitions)]
        sample = _Sample(record_bytes, self.layout.partitions, topics, key_space, per_key)
        at_end: set[tuple[str, int]] = set()
        consumed = 0
        consumer = self._reader if to_end else self._consumer
        consumer.assign([TopicPartition(t, p, 0) for t, p in everything])
        # a minute more per 1,000 partitions: the consumer fetches them a few at a time
        extra = 60.0 * len(everything) / 1000
        deadline = time.monotonic() + extra + (_READ_ALL_TIMEOUT_S if to_end
                                               else _SAMPLE_TIMEOUT_S)
        try:
            while len(at_end) < len(everything) and (to_end or not sample.full) \
                    and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                    error = msg.error()
                    if error is None:
                        consumed += 1
                        sample.check(msg)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        at_end.add((msg.topic(), msg.partition()))   # type: ignore[arg-type]
                    else:
                        sample.problems.append(f"{msg.topic()}-{msg.partition()}: "
                                               f"{error.str()}")
        finally:
            consumer.unassign()
        problems = sample.problems[:10]
        short = sample.short_partitions()
        if short:
            problems.append(f"{len(short)} partitions ({short[:5]}...) gave fewer records "
                            "than their keys must have put there to sample")
        if to_end and len(at_end) < len(everything):
            missing = sorted(set(everything) - at_end)
            problems.append(f"{len(missing)} partitions ({missing[:5]}...) were not read to "
                            f"their end within {_READ_ALL_TIMEOUT_S + extra:.0f} s")
        return consumed, problems

    def producer_states(self, topics: str | list[str]) -> list[dict[str, Any]]:
        """Every active producer of every partition of ``topics`` as its leader describes it
        (DescribeProducers v0: producer_id, producer_epoch, last_sequence, last_timestamp,
        coordinator_epoch, current_txn_start_offset)."""
        names = [topics] if isinstance(topics, str) else topics
        by_leader: dict[int, dict[str, list[int]]] = {}
        for topic in names:
            for p in self.cluster.topic(topic).partitions:
                by_leader.setdefault(p.leader, {}).setdefault(topic, []).append(p.partition)
        states: list[dict[str, Any]] = []
        for leader, mine in by_leader.items():
            body = self._request(leader, _DESCRIBE_PRODUCERS, 0, {
                "topics": [{"name": t, "partition_indexes": ps} for t, ps in mine.items()]})
            for t in body["topics"]:
                for part in t["partitions"]:
                    if part["error_code"] != 0:
                        raise RuntimeError(f"DescribeProducers for {t['name']}-"
                                           f"{part['partition_index']} failed with error code "
                                           f"{part['error_code']}: {part['error_message']}")
                    states.extend(part["active_producers"])
        return states

    def _request(self, node: int, api_key: int, version: int,
                 body: dict[str, Any]) -> dict[str, Any]:
        self._correlation_id += 1
        host, _, port = self.cluster.address(node).rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(encode_request(api_key, version, self._correlation_id,
                                        "bench-verify", body))
            correlation_id, response = decode_response(api_key, version, read_frame(sock))
        if correlation_id != self._correlation_id:
            raise RuntimeError(f"node {node} answered correlation id {correlation_id}, "
                               f"expected {self._correlation_id}")
        decoded: dict[str, Any] = response
        return decoded


class _Sample:
    """Checks the first records of every partition against the workload: value from the pool,
    key one of ``str(i % key_space)`` and one of its topic's (record ``i`` goes to topic
    ``i % len(topics)``), partition the one Java's murmur2 partitioner gives the key.

    A partition must give as many records as its keys surely put there (``per_key`` records
    each, at most ``_SAMPLE_PER_PARTITION``). Only the partitions its topic's keys hash to get
    records: ``str(i % 1000)`` reaches about 630 of 1,000 partitions, so the others are
    empty, and a record in one of them fails the murmur2 check."""

    def __init__(self, record_bytes: int, partitions: int, topics: list[str] | None = None,
                 key_space: int = KEY_SPACE, per_key: int = _SAMPLE_PER_PARTITION) -> None:
        self._pool = set(payload_pool(record_bytes))
        topics = topics or [""]
        self._topic_index = {t: i for i, t in enumerate(topics)}
        self._key_index = {k: i for i, k in enumerate(keys(key_space))}
        self._key_space = key_space
        self._partitions = partitions
        self._owner = {}
        counts: dict[tuple[str, int], int] = {}
        for k, i in self._key_index.items():
            p = partition_for_key(k, partitions)
            self._owner[k] = p
            where = (topics[i % len(topics)] if len(topics) > 1 else "", p)
            counts[where] = counts.get(where, 0) + 1
        #: records each partition must give before it is fully sampled
        self._want = {where: min(_SAMPLE_PER_PARTITION, n * per_key)
                      for where, n in counts.items() if n * per_key}
        self._seen = dict.fromkeys(self._want, 0)
        self.problems: list[str] = []

    @property
    def full(self) -> bool:
        return all(self._seen[w] >= n for w, n in self._want.items())

    def short_partitions(self) -> list[tuple[str, int]]:
        return sorted(w for w, n in self._want.items() if self._seen[w] < n)

    def check(self, msg: Message) -> None:
        p, key, value = msg.partition(), msg.key(), msg.value() or b""
        assert p is not None  # only errors come without a partition
        topic = msg.topic() or ""
        where = (topic if len(self._topic_index) > 1 else "", p)
        if where in self._seen:
            if self._seen[where] >= self._want[where]:
                return
            self._seen[where] += 1
        # else: a partition no key hashes to; the key check below says whose records it holds
        place = f"{topic} partition {p} offset {msg.offset()}"
        if value not in self._pool:
            self.problems.append(f"{place}: value {value[:40]!r}... is not from the pool")
        index = self._key_index.get(key)   # type: ignore[arg-type]
        if index is None:
            self.problems.append(f"{place}: key {key!r} is not one of "
                                 f"str(i % {self._key_space})")
            return
        if self._owner[key] != p:   # type: ignore[index]
            self.problems.append(f"{place}: key {key!r} belongs in partition "
                                 f"{self._owner[key]} (murmur2)")   # type: ignore[index]
        topics = len(self._topic_index)
        if topics > 1 and self._topic_index.get(topic) != index % topics:
            self.problems.append(f"{place}: key {key!r} belongs in topic number "
                                 f"{index % topics}")
