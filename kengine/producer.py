"""The public Producer: thread-safe, one instance shared by every thread of a process.

``send()`` and ``send_many()`` are implemented in Cython (kengine_ext ProducerCore, which this
class extends), so a record costs one call into the core; this module wires the core to the
configuration, metadata, network client and sender thread, and implements the blocking calls
(flush, close) and the slow paths the core delegates (waiting for metadata).
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kengine_ext import ProducerCore, TopicState

from . import config as _config
from .deadletter import DeadLetterQueue
from .errors import IllegalStateError, KafkaError, KafkaTimeoutError
from .metadata import Metadata, PartitionInfo
from .metrics import ProducerMetrics
from .network import NetworkClient
from .partitioners import load_partitioner
from .sender import Sender, SenderSettings
from .transactions import ConsumerGroupMetadata, TransactionManager, TxnState

__all__ = ["Producer"]

_log = logging.getLogger("kengine.producer")


class Producer(ProducerCore):
    """A Kafka producer.

    ``Producer({"bootstrap.servers": "host:9092", "acks": "all"})`` or
    ``Producer(bootstrap_servers="host:9092", linger_ms=10)``: settings use Kafka's own names
    (dots, or underscores in keyword arguments); see ``kengine.config.SETTINGS``.

    ``send(topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None,
    on_delivery=None)`` appends a record and returns a ``DeliveryFuture`` as soon as it is in a
    batch; ``send_many(topic, values, keys=None, headers=None, timestamps=None, partition=None)``
    appends many in one call and returns one ``BulkFuture``. Callbacks ``on_delivery(error,
    metadata)`` run on the producer's sender thread; keep them short.

    TLS and SASL take Kafka's ``security.protocol``, ``ssl.*`` and ``sasl.*`` settings; a failed
    authentication is fatal: pending records fail with it and later sends raise it. With
    ``dead.letter.topic`` (or ``dead_letter_router``), records failing with a non-retriable
    error are re-sent there; :attr:`dead_letters` counts the outcomes.
    """

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
        codec = cfg["compression.type"]
        idempotent: bool = cfg["enable.idempotence"]
        transactional_id: str | None = cfg["transactional.id"]
        partitioner = load_partitioner(cfg["partitioner"], cfg)
        self._configure_core(
            linger_ms=cfg["linger.ms"],
            batch_size=cfg["batch.size"],
            max_request_size=cfg["max.request.size"],
            buffer_memory=cfg["buffer.memory"],
            compression=codec,
            compression_level=cfg.get(f"compression.{codec}.level"),
            key_serializer=cfg["key.serializer"],
            value_serializer=cfg["value.serializer"],
            partitioner=partitioner,
            ignore_keys=cfg["partitioner.ignore.keys"],
            adaptive_partitioning=cfg["partitioner.adaptive.partitioning.enable"],
            availability_timeout_ms=cfg["partitioner.availability.timeout.ms"],
            idempotent=idempotent,
            transactional=transactional_id is not None,
            wakeup=self._client.wakeup,
            max_block_ms=cfg["max.block.ms"],
            client_id=self._client_id,
        )
        self._metadata = Metadata(
            self, self._client, client_id=self._client_id,
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
                self, self._client, self._metadata, client_id=self._client_id,
                transactional_id=transactional_id,
                transaction_timeout_ms=cfg["transaction.timeout.ms"],
                retry_backoff_ms=cfg["retry.backoff.ms"], max_block_ms=cfg["max.block.ms"],
                wakeup=self._client.wakeup)
        self._metrics = ProducerMetrics(self._client_id, self, self._client,
                                        partitioner=partitioner,
                                        stats_callback=cfg["stats_callback"],
                                        stats_interval_ms=cfg["statistics.interval.ms"])
        self._sender = Sender(self, self._client, self._metadata, SenderSettings(
            client_id=self._client_id,
            acks=cfg["acks"],
            request_timeout_ms=cfg["request.timeout.ms"],
            delivery_timeout_ms=cfg["delivery.timeout.ms"],
            retries=cfg["retries"],
            retry_backoff_ms=cfg["retry.backoff.ms"],
            retry_backoff_max_ms=cfg["retry.backoff.max.ms"],
            max_request_size=cfg["max.request.size"],
            transactional_id=transactional_id,
        ), metrics=self._metrics, txn=self._txn)
        #: dead-letter routing (dead.letter.topic / dead_letter_router), or None
        self.dead_letters: DeadLetterQueue | None = None
        if cfg["dead.letter.topic"] is not None or cfg["dead_letter_router"] is not None:
            self.dead_letters = DeadLetterQueue(
                self, self._dead_letter_producer, topic=cfg["dead.letter.topic"],
                router=cfg["dead_letter_router"], on_dead_letter=cfg["on_dead_letter"],
                client_id=self._client_id, max_pending_bytes=cfg["buffer.memory"])
            self._sender.on_batch_failed = self.dead_letters.batch_failed
        self._sender.start()
        _log.info("[%s] producer started: bootstrap %s, acks=%s, linger.ms=%d, batch.size=%d, "
                  "compression.type=%s", self._client_id,
                  ",".join(f"{h}:{p}" for h, p in cfg["bootstrap.servers"]), cfg["acks"],
                  cfg["linger.ms"], cfg["batch.size"], codec)

    def _dead_letter_producer(self) -> Producer:
        """The producer writing dead letters: this one's connection, security and delivery
        settings, raw bytes in (the records are already serialized), no transactions."""
        own = {"key.serializer", "value.serializer", "partitioner", "transactional.id",
               "client.id", "dead.letter.topic", "dead_letter_router", "on_dead_letter",
               "stats_callback", "statistics.interval.ms"}
        settings = {k: self.config[k] for k in self.config.explicit if k not in own}
        return Producer(settings, client_id=f"{self._client_id}-dead-letters")

    # ------------------------------------------------------------------ slow paths of send()

    def _await_metadata(self, topic: str, partition: int | None = None) -> TopicState:
        fatal = self._client.fatal_error
        if fatal is not None:
            raise copy.copy(fatal)
        try:
            return self._metadata.await_topic(topic, self.config["max.block.ms"], partition,
                                              wakeup=self._client.wakeup)
        except KafkaTimeoutError as e:
            # "no broker answered" is more useful with the reason attached
            cause = self._client.last_error
            if cause is None:
                raise
            raise KafkaTimeoutError(f"{e}; last connection error: {cause}") from None

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
        self._transactions().init_transactions()

    def begin_transaction(self) -> None:
        """Opens a transaction: records sent from now on commit or abort together."""
        self._transactions().begin_transaction()

    def send_offsets_to_transaction(self, offsets: Mapping[Any, Any],
                                    group_metadata: ConsumerGroupMetadata | str) -> None:
        """Commits consumer offsets as part of the transaction (consume-transform-produce).
        offsets: {(topic, partition): next offset to read} (or objects with .topic/.partition
        and .offset); group_metadata: the consumer's group (ConsumerGroupMetadata or group id)."""
        self._transactions().send_offsets_to_transaction(offsets, group_metadata)

    def commit_transaction(self) -> None:
        """Sends what is buffered, waits for it, then commits. Raises the error that made the
        transaction fail (abort it then), ProducerFencedError (fatal) or KafkaTimeoutError."""
        self._transactions().commit_transaction()

    def abort_transaction(self) -> None:
        """Drops records not yet sent, waits for those in flight, then aborts the transaction;
        it also recovers a transaction that failed with an abortable error."""
        self._transactions().abort_transaction()

    @contextmanager
    def transaction(self) -> Iterator[Producer]:
        """``with producer.transaction(): ...`` commits when the block ends and aborts (then
        re-raises) when it raises or when the commit raises TransactionAbortableError (a
        record of the transaction failed)."""
        with self._transactions().transaction():
            yield self

    def _not_in_transaction(self) -> KafkaError:
        refusal = self._txn.send_refusal() if self._txn is not None else None
        return refusal if refusal is not None else super()._not_in_transaction()

    def _records_refused(self, topic: str, count: int, first_index: int,
                         first_error: KafkaError) -> None:
        # send_many() sent the rest of its records; inside a transaction the refused ones
        # would silently be missing from it: the transaction can only abort now.
        if self._txn is not None and self._txn.transactional:
            self._txn.on_records_refused(topic, count, first_index, first_error)

    def _transactions(self) -> TransactionManager:
        if self._txn is None or not self._txn.transactional:
            raise IllegalStateError("transactions need transactional.id to be set")
        return self._txn

    def flush(self, timeout: float | None = None) -> None:
        """Sends everything buffered now (ignoring linger.ms) and waits until every record sent
        before this call is acknowledged or failed. Raises KafkaTimeoutError after `timeout`
        seconds; the records stay queued."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.begin_flush()
        try:
            for batch in self.incomplete_batches():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not batch.wait(remaining):
                    raise KafkaTimeoutError(
                        f"flush() did not finish within {timeout} s: records are still waiting "
                        f"for a broker ({self.queued_batch_count} batches queued)")
        finally:
            self.end_flush()
        if self.dead_letters is not None:
            self.dead_letters.flush(None if deadline is None
                                    else max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float | None = None) -> None:
        """Stops accepting records, delivers what is buffered (up to `timeout` seconds; None:
        until done or delivery.timeout.ms), then stops the sender and closes the sockets.
        Records still unacknowledged at the deadline fail. Safe to call more than once."""
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
        self._close_for_sends()
        self._set_draining_all(True)
        deadline = None if timeout is None else time.monotonic() + timeout
        for batch in self.incomplete_batches():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not batch.wait(remaining):
                break
        forced = bool(self.incomplete_batches())
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
        _log.info("[%s] producer closed", self._client_id)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Producer(client_id={self._client_id!r})"
