"""The public Producer: thread-safe, one instance shared by every thread of a process.

The Producer is made of parts it owns and wires together, and exposes only the documented API:
the compiled send path (kengine_ext.SendPath), the record accumulator the send path fills and
the sender thread drains (kengine_ext.RecordAccumulator, with its BufferMemory and
Partitioning), and the Python parts (network client, metadata, transaction manager, metrics,
sender), each handed the narrow object it needs. ``send()`` and ``send_many()`` come from
kengine_ext.SendMethods, the one class it derives from: two methods that forward to its send
path in C, so a record costs one call into C. This module also implements the blocking calls
(flush, close) and the up-calls the send path makes (waiting for metadata).
"""
from __future__ import annotations

import copy
import functools
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from kengine_ext import (
    BufferMemory,
    Partitioning,
    RecordAccumulator,
    SendMethods,
    SendPath,
    TopicState,
)

from . import config as _config
from . import fork_guard
from .deadletter import DeadLetterQueue
from .errors import (
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    ProducerClosedError,
    ProducerForkedError,
)
from .interceptors.chain import InterceptorChain
from .interceptors.intercepted import InterceptedSends, intercepted_class
from .interceptors.registry import load_interceptors
from .interceptors.traced import TracedSends, send_sampled
from .metadata import Metadata, PartitionInfo
from .metrics import ProducerMetrics
from .network import NetworkClient
from .partitioners import load_partitioner
from .sender import Sender, SenderSettings
from .transactions import ConsumerGroupMetadata, TransactionManager, TxnState

__all__ = ["Producer"]

_log = logging.getLogger("kengine.producer")


class Producer(SendMethods):
    """A Kafka producer.

    ``Producer({"bootstrap.servers": "host:9092", "acks": "all"})`` or
    ``Producer(bootstrap_servers="host:9092", linger_ms=10)``: settings use Kafka's own names
    (dots, or underscores in keyword arguments); see ``kengine.config.SETTINGS``.

    ``send(topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None,
    on_delivery=None)`` appends a record and returns a ``DeliveryFuture`` as soon as it is in a
    batch; ``send_many(topic, values, keys=None, headers=None, timestamps=None, partition=None)``
    appends many in one call and returns one ``BulkFuture``; ``send_arrow(topic, data,
    value=..., key=None, headers=None, timestamp=None, partition=None)`` sends the rows of Arrow
    data (a pyarrow Table, a Polars or pandas frame) with no Python object per row. Callbacks
    ``on_delivery(error, metadata)`` run on the producer's sender thread; keep them short.

    TLS and SASL take Kafka's ``security.protocol``, ``ssl.*`` and ``sasl.*`` settings; a failed
    authentication is fatal: pending records fail with it and later sends raise it. With
    ``dead.letter.topic`` (or ``dead_letter_router``), records failing with a non-retriable
    error are re-sent there; :attr:`dead_letters` counts the outcomes.
    """

    #: whether send()/send_many() run the interceptors (kengine.aio's inner producer does
    #: not: AIOProducer runs them once per record however often it retries the append)
    _intercepts_sends = True

    def __init__(self, config: Mapping[str, Any] | None = None, **settings: Any) -> None:
        cfg = _config.resolve(config, **settings)
        self.config = cfg
        self._client_id: str = cfg["client.id"]
        self._close_lock = threading.Lock()
        self._closed_done = False
        # bad certificate files fail the constructor, before any thread starts
        self._client = NetworkClient.from_config(
            cfg, client_id=self._client_id,
            max_in_flight=cfg["max.in.flight.requests.per.connection"])
        # Interceptors are loaded (and configured) before anything starts: a bad one fails
        # the constructor. With none, send() stays the compiled method of the type.
        interceptors = load_interceptors(cfg)
        #: the interceptors' chain, or None (fixed at construction)
        self._interceptors: InterceptorChain | None = (
            InterceptorChain(interceptors, self._client_id) if interceptors else None)
        #: the otel interceptor's sampling decision made in C by send(), or None
        trace_stamp = None
        if self._interceptors is not None and self._intercepts_sends:
            trace_stamp = self._interceptors.compiled_sampling()
            self.__class__ = intercepted_class(
                type(self), InterceptedSends if trace_stamp is None else TracedSends)
        codec = cfg["compression.type"]
        idempotent: bool = cfg["enable.idempotence"]
        transactional_id: str | None = cfg["transactional.id"]
        partitioner = load_partitioner(cfg["partitioner"], cfg)
        for is_key, serializer in ((True, cfg["key.serializer"]),
                                   (False, cfg["value.serializer"])):
            # Java's Serializer.configure(configs, isKey): schema serializers take the field
            # of their subjects and max.block.ms from here
            configure = getattr(serializer, "configure", None)
            if callable(configure) and not isinstance(serializer, str):
                configure(cfg, is_key)
        self._memory = BufferMemory(cfg["buffer.memory"], max_block_ms=cfg["max.block.ms"])
        #: the process that created it: the only one where it works (kengine/fork_guard.py)
        self._owner_pid: int = self._memory.owner_pid
        self._accumulator = RecordAccumulator(
            self._memory,
            Partitioning(partitioner, ignore_keys=cfg["partitioner.ignore.keys"],
                         adaptive_partitioning=cfg["partitioner.adaptive.partitioning.enable"],
                         availability_timeout_ms=cfg["partitioner.availability.timeout.ms"],
                         batch_size=cfg["batch.size"]),
            linger_ms=cfg["linger.ms"],
            batch_size=cfg["batch.size"],
            max_request_size=cfg["max.request.size"],
            compression=codec,
            compression_level=cfg.get(f"compression.{codec}.level"),
            idempotent=idempotent,
            transactional=transactional_id is not None,
            wakeup=self._client.wakeup,
            client_id=self._client_id,
        )
        # send() and send_many() (SendMethods) forward to it
        self._send_path = SendPath(
            self._accumulator,
            key_serializer=cfg["key.serializer"],
            value_serializer=cfg["value.serializer"],
            await_metadata=self._await_metadata,
            transaction_refusal=self._transaction_refusal,
            records_refused=self._records_refused,
        )
        if trace_stamp is not None:
            self._send_path.trace_with(trace_stamp, functools.partial(send_sampled, self))
        self._metadata = Metadata(
            self._accumulator, self._client, client_id=self._client_id,
            max_age_ms=cfg["metadata.max.age.ms"],
            refresh_backoff_ms=cfg["retry.backoff.ms"],
            refresh_backoff_max_ms=cfg["retry.backoff.max.ms"],
            max_idle_ms=cfg["metadata.max.idle.ms"],
            rebootstrap=cfg["metadata.recovery.strategy"] == "rebootstrap",
            rebootstrap_trigger_ms=cfg["metadata.recovery.rebootstrap.trigger.ms"],
        )
        self._txn: TransactionManager | None = None
        if idempotent:
            self._txn = TransactionManager(
                self._accumulator, self._client, self._metadata, client_id=self._client_id,
                transactional_id=transactional_id,
                transaction_timeout_ms=cfg["transaction.timeout.ms"],
                retry_backoff_ms=cfg["retry.backoff.ms"], max_block_ms=cfg["max.block.ms"],
                wakeup=self._client.wakeup)
        self._metrics = ProducerMetrics(self._client_id, self._memory, self._client,
                                        partitioner=partitioner,
                                        stats_callback=cfg["stats_callback"],
                                        stats_interval_ms=cfg["statistics.interval.ms"],
                                        metadata_refreshed_ms=self._metadata.last_refresh_ms)
        #: dead-letter routing (dead.letter.topic / dead_letter_router), or None
        self.dead_letters: DeadLetterQueue | None = None
        if cfg["dead.letter.topic"] is not None or cfg["dead_letter_router"] is not None:
            self.dead_letters = DeadLetterQueue(
                self._accumulator.seal, self._dead_letter_producer,
                topic=cfg["dead.letter.topic"], router=cfg["dead_letter_router"],
                on_dead_letter=cfg["on_dead_letter"], client_id=self._client_id,
                max_pending_bytes=cfg["buffer.memory"])
        self._sender = Sender(self._accumulator, self._client, self._metadata, SenderSettings(
            client_id=self._client_id,
            acks=cfg["acks"],
            request_timeout_ms=cfg["request.timeout.ms"],
            delivery_timeout_ms=cfg["delivery.timeout.ms"],
            retries=cfg["retries"],
            retry_backoff_ms=cfg["retry.backoff.ms"],
            retry_backoff_max_ms=cfg["retry.backoff.max.ms"],
            max_request_size=cfg["max.request.size"],
            transactional_id=transactional_id,
        ), metrics=self._metrics, txn=self._txn,
            on_batch_failed=None if self.dead_letters is None else self.dead_letters.batch_failed)
        self._sender.start()
        fork_guard.track(self)
        _log.info("[%s] producer started: bootstrap %s, acks=%s, linger.ms=%d, batch.size=%d, "
                  "compression.type=%s", self._client_id,
                  ",".join(f"{h}:{p}" for h, p in cfg["bootstrap.servers"]), cfg["acks"],
                  cfg["linger.ms"], cfg["batch.size"], codec)

    def _dead_letter_producer(self) -> Producer:
        """The producer writing dead letters: this one's connection, security and delivery
        settings, raw bytes in (the records are already serialized), no transactions."""
        # dead letters are records already intercepted once: no interceptor sees them again
        own = {"key.serializer", "value.serializer", "partitioner", "transactional.id",
               "client.id", "dead.letter.topic", "dead_letter_router", "on_dead_letter",
               "stats_callback", "statistics.interval.ms", "interceptors",
               "interceptor.classes"}
        settings = {k: self.config[k] for k in self.config.explicit
                    if k not in own and not k.startswith("interceptor.")}
        return Producer(settings, client_id=f"{self._client_id}-dead-letters")

    # ------------------------------------------------------------------ fork()

    def _forked(self) -> None:
        """In a child made by fork() (fork_guard's hook, the child's only thread): nothing
        here will ever send, so every send raises at once."""
        self._accumulator.fail(ProducerForkedError("send()", self._owner_pid, os.getpid()))

    def _check_process(self, call: str) -> None:
        """Raises ProducerForkedError when called in a process other than the creator."""
        pid = os.getpid()
        if pid != self._owner_pid:
            raise ProducerForkedError(call, self._owner_pid, pid)

    # ------------------------------------------------------------------ up-calls of the send path

    def _await_metadata(self, topic: str, partition: int | None = None) -> TopicState:
        self._check_process(f"send() to {topic!r}")
        fatal = self._client.fatal_error
        if fatal is not None:
            raise copy.copy(fatal)
        # its timeout says whether brokers answered without the topic or none answered
        started = time.perf_counter_ns()
        try:
            return self._metadata.await_topic(topic, self.config["max.block.ms"], partition,
                                              wakeup=self._client.wakeup)
        finally:
            self._metrics.add_call_time("metadata-wait-time-ns-total",
                                        time.perf_counter_ns() - started)

    def _transaction_refusal(self) -> KafkaError | None:
        return self._txn.send_refusal() if self._txn is not None else None

    def _records_refused(self, topic: str, count: int, first_index: int,
                         first_error: KafkaError) -> None:
        # send_many() sent the rest of its records; inside a transaction the refused ones
        # would silently be missing from it: the transaction can only abort now.
        if self._txn is not None and self._txn.transactional:
            self._txn.on_records_refused(topic, count, first_index, first_error)

    # ------------------------------------------------------------------ public API

    def partitions_for(self, topic: str) -> list[PartitionInfo]:
        """The topic's partitions (leader, replicas, ISR), fetching metadata if needed."""
        self._await_metadata(topic)
        return self._metadata.partitions_for(topic)

    def metrics(self) -> dict[str, Any]:
        """The producer's metrics now, with the Java producer's names: client-level ones at the
        top (``record-send-rate``, ``request-latency-avg``...), ``topics`` and ``brokers``
        breakdowns, and ``partitioner`` when the partitioner reports metrics. Meanings are in
        ``kengine.metrics.METRICS``."""
        return self._metrics.snapshot()

    # ------------------------------------------------------------------ transactions

    def init_transactions(self) -> None:
        """Registers transactional.id with its coordinator: fences any older producer with the
        same id and aborts (or completes) the transaction it left open. Call once, first."""
        with self._timed("txn-init-time-ns-total"):
            self._transactions().init_transactions()

    def begin_transaction(self) -> None:
        """Opens a transaction: records sent from now on commit or abort together."""
        with self._timed("txn-begin-time-ns-total"):
            self._transactions().begin_transaction()

    def send_offsets_to_transaction(
            self, offsets: Mapping[Any, Any] | Sequence[Any],
            group_metadata: ConsumerGroupMetadata | str | bytes | object) -> None:
        """Commits consumer offsets as part of the open transaction (consume-transform-produce):
        they become the group's committed offsets if and only if the transaction commits.

        offsets: the next offset to read per partition, as ``{(topic, partition): offset}`` or a
        list of ``TopicPartition`` objects (confluent-kafka's ``consumer.position(...)``).
        group_metadata: what the consumer says of its group membership, so that the broker
        refuses a consumer that lost its partitions (KIP-447): confluent-kafka's
        ``consumer.consumer_group_metadata()``, kafka-python's ``consumer.group_metadata()``,
        the consumer itself (confluent-kafka, kafka-python, aiokafka), a
        ``ConsumerGroupMetadata``, or a group id (no fencing). Bad input raises
        ``InvalidOffsetError`` / ``GroupMetadataError`` and changes nothing; a stale member
        raises ``IllegalGenerationError``, ``UnknownMemberIdError`` or ``FencedInstanceIdError``
        and the transaction must be aborted."""
        with self._timed("txn-send-offsets-time-ns-total"):
            self._transactions().send_offsets_to_transaction(offsets, group_metadata)

    def commit_transaction(self) -> None:
        """Sends what is buffered, waits for it, then commits. Raises the error that made the
        transaction fail (abort it then), ProducerFencedError (fatal) or KafkaTimeoutError."""
        with self._timed("txn-commit-time-ns-total"):
            self._transactions().commit_transaction()

    def abort_transaction(self) -> None:
        """Drops records not yet sent, waits for those in flight, then aborts the transaction;
        it also recovers a transaction that failed with an abortable error."""
        with self._timed("txn-abort-time-ns-total"):
            self._transactions().abort_transaction()

    @contextmanager
    def transaction(self) -> Iterator[Producer]:
        """``with producer.transaction(): ...`` commits when the block ends and aborts (then
        re-raises) when it raises or when the commit raises TransactionAbortableError (a
        record of the transaction failed)."""
        with self._transactions().transaction():
            yield self

    @contextmanager
    def _timed(self, metric: str) -> Iterator[None]:
        started = time.perf_counter_ns()
        try:
            yield
        finally:
            self._metrics.add_call_time(metric, time.perf_counter_ns() - started)

    def _transactions(self) -> TransactionManager:
        self._check_process("a transaction call")
        if self._txn is None or not self._txn.transactional:
            raise IllegalStateError("transactions need transactional.id to be set")
        return self._txn

    def purge(self) -> int:
        """Drops every record buffered and not sent yet, and returns how many: their futures
        and callbacks fail with RecordPurgedError (not written; resending cannot duplicate
        them). Records already sent, waiting for their answer or a retry, are not recalled.
        Not for transactional producers: abort_transaction() drops the transaction's unsent
        records and ends it (as librdkafka's purge(queue) and franz-go's
        AbortBufferedRecords)."""
        self._check_process("purge()")
        if self._txn is not None and self._txn.transactional:
            raise IllegalStateError(
                "purge() in a transactional producer would leave records out of the "
                "transaction: abort_transaction() drops the ones not sent and ends it")
        if self._closed_done:
            raise ProducerClosedError("purge() after close(): nothing is buffered any more")
        request = self._sender.request_purge()
        if not request.wait(self.config["max.block.ms"] / 1000.0):
            raise KafkaTimeoutError(
                f"purge() was not done within max.block.ms ({self.config['max.block.ms']} ms): "
                f"the producer's sender thread did not answer")
        return request.dropped

    def flush(self, timeout: float | None = None) -> None:
        """Sends everything buffered now (ignoring linger.ms) and waits until every record sent
        before this call is acknowledged or failed. Raises KafkaTimeoutError after `timeout`
        seconds; the records stay queued."""
        self._check_process("flush()")
        with self._timed("flush-time-ns-total"):
            self._flush(timeout)

    def _flush(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        acc = self._accumulator
        acc.begin_flush()
        try:
            for batch in acc.incomplete_batches():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not batch.wait(remaining):
                    raise KafkaTimeoutError(
                        f"flush() did not finish within {timeout} s: records are still waiting "
                        f"for a broker ({acc.queued_batch_count} batches queued)")
        finally:
            acc.end_flush()
        if self.dead_letters is not None:
            self.dead_letters.flush(None if deadline is None
                                    else max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float | None = None) -> None:
        """Stops accepting records, delivers what is buffered (up to `timeout` seconds; None:
        until done or delivery.timeout.ms), then stops the sender and closes the sockets.
        Records still unacknowledged at the deadline fail. Safe to call more than once."""
        self._check_process("close()")
        with self._close_lock:
            if self._closed_done:
                return
            self._closed_done = True
        txn = self._txn
        if txn is not None and txn.transactional and \
                txn.state in (TxnState.IN_TRANSACTION, TxnState.ABORTABLE_ERROR):
            try:   # as Java: an open transaction is aborted, not left to time out
                txn.abort_transaction()
            except Exception as e:
                _log.warning("[%s] aborting the open transaction on close failed: %s",
                             self._client_id, e)
        acc = self._accumulator
        acc.close()
        acc.set_draining_all(True)
        deadline = None if timeout is None else time.monotonic() + timeout
        for batch in acc.incomplete_batches():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not batch.wait(remaining):
                break
        forced = bool(acc.incomplete_batches())
        if forced:
            _log.warning("[%s] closing with records still unacknowledged after %s s: they fail",
                         self._client_id, timeout)
        if txn is not None:
            txn.close()
        self._sender.initiate_close(force=forced)
        join_timeout = None if deadline is None else max(1.0, deadline - time.monotonic())
        if not self._sender.join(join_timeout):
            raise IllegalStateError("the sender thread did not stop")
        if self.dead_letters is not None:   # failures above may have queued dead letters
            self.dead_letters.close(None if deadline is None
                                    else max(0.0, deadline - time.monotonic()))
        if self._interceptors is not None:   # every record has had its acknowledgement
            self._interceptors.close()
        _log.info("[%s] producer closed", self._client_id)

    def __reduce__(self) -> Any:
        # multiprocessing's spawn (and forkserver) start methods pickle what a child gets
        raise TypeError(
            "a Producer cannot be pickled or sent to another process: its sender thread and "
            "connections belong to this one. Create the producer in the process that uses it "
            "(for a multiprocessing.Pool, in its initializer)")

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Producer(client_id={self._client_id!r})"
