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
from collections.abc import Mapping
from typing import Any

from kengine_ext import ProducerCore, TopicState

from . import config as _config
from .deadletter import DeadLetterQueue
from .errors import IllegalStateError, KafkaTimeoutError
from .metadata import Metadata, PartitionInfo
from .network import NetworkClient
from .partitioners import load_partitioner
from .sasl import authenticator_factory
from .security import ssl_context
from .sender import Sender, SenderSettings

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
        tls = ssl_context(cfg)   # before any thread starts: bad files fail the constructor
        self._client = NetworkClient(
            client_id=self._client_id,
            bootstrap=cfg["bootstrap.servers"],
            request_timeout_ms=cfg["request.timeout.ms"],
            setup_timeout_ms=cfg["socket.connection.setup.timeout.ms"],
            reconnect_backoff_ms=cfg["reconnect.backoff.ms"],
            reconnect_backoff_max_ms=cfg["reconnect.backoff.max.ms"],
            connections_max_idle_ms=cfg["connections.max.idle.ms"],
            max_in_flight=cfg["max.in.flight.requests.per.connection"],
            send_buffer_bytes=cfg["send.buffer.bytes"],
            receive_buffer_bytes=cfg["receive.buffer.bytes"],
            ssl_context=tls,
            authenticator_factory=authenticator_factory(cfg),
        )
        codec = cfg["compression.type"]
        self._configure_core(
            linger_ms=cfg["linger.ms"],
            batch_size=cfg["batch.size"],
            max_request_size=cfg["max.request.size"],
            buffer_memory=cfg["buffer.memory"],
            compression=codec,
            compression_level=cfg.get(f"compression.{codec}.level"),
            key_serializer=cfg["key.serializer"],
            value_serializer=cfg["value.serializer"],
            partitioner=load_partitioner(cfg["partitioner"], cfg),
            ignore_keys=cfg["partitioner.ignore.keys"],
            idempotent=False,
            transactional=False,
            wakeup=self._client.wakeup,
            max_block_ms=cfg["max.block.ms"],
        )
        self._metadata = Metadata(
            self, self._client, client_id=self._client_id,
            max_age_ms=cfg["metadata.max.age.ms"],
            refresh_backoff_ms=cfg["retry.backoff.ms"],
            refresh_backoff_max_ms=cfg["retry.backoff.max.ms"],
        )
        self._sender = Sender(self, self._client, self._metadata, SenderSettings(
            client_id=self._client_id,
            acks=cfg["acks"],
            request_timeout_ms=cfg["request.timeout.ms"],
            delivery_timeout_ms=cfg["delivery.timeout.ms"],
            retries=cfg["retries"],
            retry_backoff_ms=cfg["retry.backoff.ms"],
            retry_backoff_max_ms=cfg["retry.backoff.max.ms"],
            max_request_size=cfg["max.request.size"],
        ))
        #: dead-letter routing (dead.letter.topic / dead_letter_router), or None
        self.dead_letters: DeadLetterQueue | None = None
        if cfg["dead.letter.topic"] is not None or cfg["dead_letter_router"] is not None:
            self.dead_letters = DeadLetterQueue(
                self, self._dead_letter_producer, topic=cfg["dead.letter.topic"],
                router=cfg["dead_letter_router"], on_dead_letter=cfg["on_dead_letter"],
                client_id=self._client_id, max_pending_bytes=cfg["buffer.memory"])
            self._sender.on_batch_failed = self.dead_letters.batch_failed
        self._sender.start()

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
        self._close_for_sends()
        self._set_draining_all(True)
        deadline = None if timeout is None else time.monotonic() + timeout
        for batch in self.incomplete_batches():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not batch.wait(remaining):
                break
        forced = bool(self.incomplete_batches())
        self._sender.initiate_close(force=forced)
        if not self._sender.join(None if deadline is None else max(1.0, deadline - time.monotonic())):
            raise IllegalStateError("the sender thread did not stop")
        if self.dead_letters is not None:   # failures above may have queued dead letters
            self.dead_letters.close(None if deadline is None
                                    else max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Producer(client_id={self._client_id!r})"
