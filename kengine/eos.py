"""Exactly-once consume-transform-produce: a confluent-kafka consumer reads, your function
transforms, a transactional kengine producer writes, and the consumed offsets commit in the same
transaction as the outputs (KIP-98, with KIP-447's group fencing).

    from confluent_kafka import Consumer
    from kengine import Producer
    from kengine.eos import ExactlyOncePipeline, consumer_settings

    consumer = Consumer(consumer_settings(bootstrap_servers="kafka:9092", group_id="orders-etl"))
    producer = Producer(bootstrap_servers="kafka:9092", transactional_id="orders-etl-1")

    def transform(messages, producer):
        for m in messages:
            producer.send("orders-out", m.value().upper(), key=m.key())

    with producer:
        ExactlyOncePipeline(consumer, producer, ["orders-in"], transform).run()

One loop, one thread. Each round: ``consume()`` up to ``max_records`` records, read the group
metadata the consumer had when it fetched them, ``begin_transaction()``, ``transform()``,
``send_offsets_to_transaction()`` (the next offset of every partition in the batch), and
``commit_transaction()``.

* An abortable error (a refused record, a stale group generation after a rebalance or a
  missed session timeout, a timeout): the transaction is aborted and the consumer is rewound to
  the group's committed offsets of the partitions it still owns, so the batch is read and
  transformed again (the transform must therefore depend only on its input: it may run more
  than once, its outputs commit once).
* A fatal error (the producer was fenced by a newer one with the same ``transactional.id``,
  the group fenced this static member, authorization): ``run()`` closes the consumer and
  raises the error; the outputs of the open transaction never become visible.
* Partitions revoked or lost in a rebalance: a transaction still open is aborted in the
  callback, before the partitions go to another member.

``stop()`` (from another thread or a signal handler) ends ``run()`` after the round in progress.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    AuthorizationError,
    FencedInstanceIdError,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionNotRecoverableError,
)
from .producer import Producer

__all__ = ["ExactlyOncePipeline", "PipelineStats", "consumer_settings", "FATAL_ERRORS"]

_log = logging.getLogger("kengine.eos")

#: errors after which the producer (or this group member) cannot go on: run() raises them
FATAL_ERRORS: tuple[type[BaseException], ...] = (
    ProducerFencedError, FencedInstanceIdError, TransactionNotRecoverableError,
    AuthorizationError, IllegalStateError)


def consumer_settings(bootstrap_servers: str, group_id: str,
                      extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """confluent-kafka consumer settings for an exactly-once pipeline: ``read_committed`` (never
    read an aborted or still-open transaction's records), no automatic offset commits (the
    offsets commit in the producer's transactions), no automatic offset store, and
    ``auto.offset.reset=earliest`` (a partition without committed offsets is read from its
    start, which is also where a rewind takes it). ``extra``: more settings, or overrides, by
    confluent-kafka's names (``{"session.timeout.ms": 10000}``)."""
    settings: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers, "group.id": group_id,
        "isolation.level": "read_committed", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
    }
    settings.update(extra or {})
    return settings


@dataclass
class PipelineStats:
    """What ``run()`` did. Written by the thread in ``run()`` only."""

    records: int = 0            #: input records whose transactions committed
    transactions: int = 0       #: transactions committed
    aborted: int = 0            #: transactions aborted (abortable errors, revocations)
    rewinds: int = 0            #: times the consumer was rewound to the committed offsets
    errors: list[str] = field(default_factory=list)   #: the abortable errors met, in order


Transform = Callable[[list[Any], Producer], None]


class ExactlyOncePipeline:
    """consume → transform → produce with the offsets in the transaction (see the module's
    documentation). ``consumer``: a confluent-kafka ``Consumer`` made with
    ``consumer_settings()`` (not subscribed yet); ``producer``: a kengine ``Producer`` with a
    ``transactional.id`` (``run()`` calls ``init_transactions()`` unless ``initialized``);
    ``transform(messages, producer)``: sends the outputs of a batch of confluent-kafka
    ``Message`` objects with ``producer.send()`` / ``send_many()``; ``max_records``: input
    records per transaction at most; ``poll_timeout_s``: how long one ``consume()`` waits;
    ``commit_attempts``: how many times a ``commit_transaction()`` that timed out
    (``max.block.ms``) is waited for before the transaction is aborted (and an
    ``abort_transaction()`` that timed out before ``run()`` gives up and raises);
    ``on_abort(error)``: called with each abortable error before the abort (logging,
    metrics)."""

    def __init__(self, consumer: Any, producer: Producer, topics: Sequence[str],
                 transform: Transform, *, max_records: int = 1000, poll_timeout_s: float = 1.0,
                 initialized: bool = False, commit_attempts: int = 3,
                 on_abort: Callable[[KafkaError], None] | None = None) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        self.consumer = consumer
        self.producer = producer
        self.topics = list(topics)
        self.transform = transform
        self.max_records = max_records
        self.poll_timeout_s = poll_timeout_s
        self.commit_attempts = commit_attempts
        self.on_abort = on_abort
        self.stats = PipelineStats()
        self._initialized = initialized
        # set by stop() on any thread, read by run()'s thread
        self._stop = threading.Event()
        # written by run()'s thread only (the rebalance callbacks run inside consume(), on it)
        self._in_transaction = False

    def stop(self) -> None:
        """Ends ``run()`` after the round in progress (callable from any thread)."""
        self._stop.set()

    # ----------------------------------------------------------------- rebalance callbacks

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # the partitions go to another member: a transaction still open must not commit
        # offsets (or outputs) of partitions this member no longer owns
        if self._in_transaction:
            _log.info("partitions revoked with a transaction open: aborting it")
            self._abort()

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        self._on_revoke(consumer, partitions)

    # ----------------------------------------------------------------- the loop

    def run(self) -> PipelineStats:
        """Runs until ``stop()``; returns the stats. Raises a fatal error (``FATAL_ERRORS``:
        fenced producer, fenced static member, authorization) after closing the consumer."""
        if not self._initialized:
            self.producer.init_transactions()
            self._initialized = True
        self.consumer.subscribe(self.topics, on_revoke=self._on_revoke, on_lost=self._on_lost)
        try:
            while not self._stop.is_set():
                self._round()
        finally:
            if self._in_transaction:
                self._abort()
            self.consumer.close()
        return self.stats

    def _round(self) -> None:
        messages = self.consumer.consume(self.max_records, self.poll_timeout_s)
        batch = []
        for m in messages:
            err = m.error()
            if err is None:
                batch.append(m)
            elif err.fatal():
                raise KafkaError(f"the consumer failed: {err.str()}")
            # other consumer errors (partition EOF, a broker down) are informational:
            # librdkafka retries by itself
        if not batch:
            return
        # the membership the records were fetched under: if the group has moved on since,
        # the broker refuses the offsets and this batch is redone by their new owner
        group = self.consumer.consumer_group_metadata()
        next_offsets: dict[tuple[str, int], int] = {}
        for m in batch:
            next_offsets[(m.topic(), m.partition())] = m.offset() + 1
        try:
            self.producer.begin_transaction()
            self._in_transaction = True
            self.transform(batch, self.producer)
            self.producer.send_offsets_to_transaction(next_offsets, group)
            self._commit()
            self._in_transaction = False
        except FATAL_ERRORS:
            raise
        except KafkaError as exc:
            self.stats.errors.append(f"{type(exc).__name__}: {exc}")
            _log.warning("transaction of %d records aborted, rewinding: %s", len(batch), exc)
            if self.on_abort is not None:
                self.on_abort(exc)
            self._abort()
            self._rewind()
            return
        self.stats.records += len(batch)
        self.stats.transactions += 1

    def _commit(self) -> None:
        # a commit that timed out may still complete: calling it again waits for the same
        # outcome (aborting instead could race the commit the coordinator is writing)
        for attempt in range(self.commit_attempts):
            try:
                self.producer.commit_transaction()
                return
            except KafkaTimeoutError:
                if attempt == self.commit_attempts - 1:
                    raise
                _log.info("commit_transaction() timed out; waiting for it again")

    def _abort(self) -> None:
        # a fatal error here (fenced while aborting) propagates: nothing more can be written.
        # An abort that timed out (a coordinator moving) may still complete: wait for it again
        self._in_transaction = False
        for attempt in range(self.commit_attempts):
            try:
                self.producer.abort_transaction()
                break
            except KafkaTimeoutError:
                if attempt == self.commit_attempts - 1:
                    raise
                _log.info("abort_transaction() timed out; waiting for it again")
        self.stats.aborted += 1

    def _rewind(self) -> None:
        """Seeks every partition this member still owns to the group's committed offset, so
        the aborted batch is read again (the consumer's position had moved past it)."""
        from confluent_kafka import OFFSET_BEGINNING

        assignment = self.consumer.assignment()
        if not assignment:
            return
        deadline = time.monotonic() + 60
        while True:
            try:
                committed = self.consumer.committed(assignment, timeout=10)
                break
            except Exception as exc:   # confluent_kafka.KafkaException: coordinator moving
                if time.monotonic() > deadline:
                    raise KafkaError(
                        f"could not read the committed offsets to rewind: {exc}") from exc
                time.sleep(0.5)
        for tp in committed:
            if tp.offset < 0:   # nothing committed yet: from the start, as auto.offset.reset
                tp.offset = OFFSET_BEGINNING
            try:
                self.consumer.seek(tp)
            except Exception as exc:   # revoked meanwhile: its new owner reads it
                _log.info("not rewinding %s-%d: %s", tp.topic, tp.partition, exc)
        self.stats.rewinds += 1
