"""The background I/O thread: drains ready batches, sends one ProduceRequest per broker, handles
responses, retries and timeouts, and runs delivery callbacks.

``run_once()`` is one step of the loop (refresh metadata if due, drain, send, expire, poll), so
tests can drive the sender deterministically; ``start()`` runs it on a daemon thread.
"""
from __future__ import annotations

import copy
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kengine_ext import ProducerBatch, monotonic_ms

from .connection import API
from .errors import (
    ConcurrentTransactionsError,
    DuplicateSequenceNumberError,
    InvalidRecordError,
    KafkaError,
    KafkaTimeoutError,
    MessageTooLargeError,
    NotEnoughReplicasAfterAppendError,
    OutOfOrderSequenceNumberError,
    ProtocolError,
    RecordPurgedError,
    RequestTimedOutError,
    delivery_timeout,
    error_for_code,
)
from .failure_log import FailureLog

if TYPE_CHECKING:
    from kengine_ext import RecordAccumulator

    from .metadata import Metadata
    from .metrics import ProducerMetrics
    from .network import NetworkClient
    from .transactions import TransactionManager

__all__ = ["Sender", "SenderSettings"]

_log = logging.getLogger("kengine.sender")

# Longest the loop sleeps with nothing scheduled: bounds the delay of work nobody woke it for.
_MAX_POLL_MS = 1000
# Produce answers given after the leader appended the batch: the records may be in the log
# (REQUEST_TIMED_OUT: not replicated within timeout.ms; NOT_ENOUGH_REPLICAS_AFTER_APPEND).
_WRITTEN_BUT_REFUSED = frozenset({RequestTimedOutError.code,
                                  NotEnoughReplicasAfterAppendError.code})
_CONCURRENT_TXN_BACKOFF_MS = 20


class _Purge:
    """One purge() call: answered by the sender thread with the records it dropped."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.dropped = 0

    def done(self, dropped: int) -> None:
        self.dropped = dropped
        self._event.set()

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)


@dataclass(frozen=True)
class SenderSettings:
    client_id: str
    acks: int
    request_timeout_ms: int
    delivery_timeout_ms: int
    retries: int
    retry_backoff_ms: int
    retry_backoff_max_ms: int
    max_request_size: int
    transactional_id: str | None = None


_BatchFailedHook = Callable[[ProducerBatch, KafkaError, "dict[int, KafkaError] | None"], None]


class Sender:
    """The I/O thread. It holds the record accumulator (its only handle on the batches), the
    network client, metadata, and optionally metrics and the transaction manager; it never
    sees the public Producer."""

    def __init__(self, accumulator: RecordAccumulator, client: NetworkClient, metadata: Metadata,
                 settings: SenderSettings, metrics: ProducerMetrics | None = None,
                 txn: TransactionManager | None = None,
                 clock: Callable[[], int] = monotonic_ms,
                 on_batch_failed: _BatchFailedHook | None = None) -> None:
        self._acc = accumulator
        #: idempotence: sequence rules, told of every answer and expiry (None without it)
        self._seqs = accumulator.sequences
        #: idempotence / transactions: producer id/epoch, coordinator requests
        self._txn = txn
        self._client = client
        self._metadata = metadata
        self._s = settings
        self._metrics = metrics
        #: monotonic ms (tests step a fake one; batch creation times come from the real one,
        #: so a fake clock may only run ahead of it)
        self._clock = clock
        #: batches inside an unanswered produce request -> the error of their last attempt
        self._in_flight: dict[ProducerBatch, KafkaError | None] = {}
        #: purge() calls waiting for this thread (it owns the queues): user threads append,
        #: run_once() pops and answers each with the number of records dropped (GIL)
        self._purges: list[_Purge] = []
        self._last_errors: dict[ProducerBatch, KafkaError] = {}
        #: unfinished batches an attempt of which may have been written (an answer lost, or
        #: written but refused): their failure says so (KafkaError.maybe_written)
        self._maybe_written: set[ProducerBatch] = set()
        self._throttled_until_ms: dict[int, int] = {}
        # Earliest moment a batch can pass delivery.timeout.ms: expiry scans wait for it.
        # Queued batches expire from a C scan of queue heads; in-flight ones from _in_flight.
        self._next_expiry_ms = 0
        self._running = False
        self._force_close = False
        self._thread: threading.Thread | None = None
        #: called with (batch, error, record_errors) for every batch about to fail, while its
        #: sealed bytes still exist (dead-letter routing, kengine.deadletter)
        self._on_batch_failed = on_batch_failed
        #: failed batches, written to the log per topic and kind of error, with counts
        self._failure_log = FailureLog(settings.client_id)
        self.stopped = threading.Event()

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"kengine-sender-{self._s.client_id}")
        self._thread.start()

    def _run(self) -> None:
        try:
            while self._running:
                self.run_once()
            # close(): keep sending until nothing is left, unless forced
            while not self._force_close and self._acc.incomplete_batches():
                self.run_once()
        except BaseException:
            _log.exception("[%s] the sender thread failed; failing every pending record",
                           self._s.client_id)
            self._fail_everything(KafkaError("the producer's sender thread crashed; see the log"))
        finally:
            if self._force_close:
                self._fail_everything(KafkaError(
                    "the producer was closed before these records were acknowledged"))
            self._failure_log.close()
            self._client.close()
            self.stopped.set()

    def initiate_close(self, force: bool = False) -> None:
        self._force_close = force
        self._running = False
        self._client.wakeup()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wakeup(self) -> None:
        self._client.wakeup()

    def request_purge(self) -> _Purge:
        """Any thread: asks run_once() to drop every record not sent yet (Producer.purge())."""
        purge = _Purge()
        self._purges.append(purge)
        self._client.wakeup()
        return purge

    def _purge_unsent(self) -> int:
        """Fails every batch that was never sent (none has a sequence number yet, so
        idempotence loses nothing); those sent before, waiting for an answer or a retry, go on."""
        dropped = 0
        for b in self._acc.take_unsent_queued():
            dropped += b.record_count
            self._acc.complete(b, error=RecordPurgedError(
                f"purge() dropped this record to {b.topic}-{b.partition} before it was sent; "
                f"it was not written"))
        return dropped

    # ------------------------------------------------------------------ one step

    def run_once(self) -> None:
        now = self._clock()
        acc = self._acc
        while self._purges:
            purge = self._purges.pop()
            purge.done(self._purge_unsent())
        fatal = self._client.fatal_error
        if fatal is not None:
            self._stop_for(fatal)
            return
        self._metadata.maybe_update(now)
        sendable: set[int] = set()
        blocked: set[int] = set()   # nodes with ready data that cannot take a request now
        timeout = self._poll_timeout(now)
        txn = self._txn
        if txn is not None and txn.state.value == "fatal-error":
            # fenced, not authorized...: as with authentication, only close() is left
            assert txn.last_error is not None
            self._stop_for(txn.last_error)
            return
        if txn is None or txn.poll(now):
            nodes, _, unknown = acc.ready(now)
            if unknown:
                self._metadata.request_update(unknown)
            for node in nodes:
                throttled = self._throttled_until_ms.get(node, 0) - now
                if throttled > 0:
                    blocked.add(node)
                    timeout = min(timeout, throttled)
                elif self._client.can_send(node):
                    sendable.add(node)
                else:
                    blocked.add(node)   # a response or the connection's set-up wakes us
                    if not self._client.is_ready(node) and not self._client.connect(node, now):
                        # a leader that cannot be connected to (its last attempt failed, or
                        # the client forgot its address in a rebootstrap): fresh metadata may
                        # name another leader or its address, as Java asks for on every failed
                        # connection (Metadata spaces the requests by retry.backoff.ms)
                        self._metadata.request_update()
                        timeout = min(timeout, max(1, self._client.backoff_remaining_ms(node, now)))
            if sendable:
                drained = acc.drain(sendable, self._s.max_request_size, now)
                for node, batches in drained.items():
                    self._send_produce(node, batches, now)
        if now >= self._next_expiry_ms:
            self._expire(now)
        self._failure_log.flush(now)
        if self._metrics is not None:   # statistics.interval.ms
            timeout = min(timeout, self._metrics.poll(now))
        if txn is not None:
            # a coordinator request retrying after its backoff: wake for it, not at the
            # next metadata refresh (up to _MAX_POLL_MS later)
            due_ms = txn.time_to_next_request_ms(now)
            if due_ms is not None:
                timeout = min(timeout, due_ms)
        timeout = acc.prepare_sleep(min(timeout, max(0, self._next_expiry_ms - now)), now,
                                    blocked)
        try:
            self._client.poll(timeout)
        finally:
            acc.end_sleep()

    def _poll_timeout(self, now: int) -> int:
        return max(0, min(_MAX_POLL_MS, self._metadata.time_to_next_update_ms(now)))

    # ------------------------------------------------------------------ produce

    def _send_produce(self, node: int, batches: list[ProducerBatch], now: int) -> None:
        conn = self._client.connection(node)
        assert conn is not None
        version = conn.version(API.PRODUCE)
        assert version is not None
        by_topic: dict[str, list[dict[str, Any]]] = {}
        sent: dict[tuple[str, int], ProducerBatch] = {}
        for b in batches:
            records = self._acc.seal(b)
            by_topic.setdefault(b.topic, []).append({"index": b.partition, "records": records})
            sent[(b.topic, b.partition)] = b
            self._in_flight[b] = None
            self._next_expiry_ms = min(self._next_expiry_ms,
                                       b.created_ms + self._s.delivery_timeout_ms)
        self._metadata.touch(by_topic, now)   # in use: metadata.max.idle.ms keeps them
        cap = self._txn.produce_version_cap() if self._txn is not None else None
        if cap is not None:
            version = min(version, cap)
        if version >= 13 and any(self._metadata.topic_id(t) == bytes(16) for t in by_topic):
            version = 12  # a topic id is still unknown: address topics by name
        topic_data = [
            {"name": t, "topic_id": self._metadata.topic_id(t), "partition_data": parts}
            for t, parts in by_topic.items()
        ]
        body = {"transactional_id": self._s.transactional_id, "acks": self._s.acks,
                "timeout_ms": self._s.request_timeout_ms, "topic_data": topic_data}

        def on_response(resp: Any, error: KafkaError | None) -> None:
            self._on_produce_response(node, sent, now, resp, error)

        if self._metrics is not None:   # first: a request can fail inside send()
            self._metrics.on_request(node, batches, now)
        if not self._client.send(node, API.PRODUCE, body, on_response, now_ms=now,
                                 version=version, expect_response=self._s.acks != 0):
            on_response(None, ProtocolError(f"broker {node} connection was not ready"))

    def _on_produce_response(self, node: int, sent: dict[tuple[str, int], ProducerBatch],
                             sent_ms: int, resp: Any, error: KafkaError | None) -> None:
        now = self._clock()
        if self._metrics is not None:
            self._metrics.on_response(node, now - sent_ms, resp, error)
        if error is not None:
            # the connection failed or timed out: every batch may or may not have been written
            self._metadata.request_update()
            self._maybe_written.update(sent.values())
            for b in sent.values():
                self._retry_or_fail(b, error, now, None, from_broker=False)
            return
        if resp is None:  # acks=0: done once written; the broker reports nothing
            for b in sent.values():
                self._succeed(b, -1, -1)
            return
        throttle = resp.get("throttle_time_ms", 0)
        if throttle > 0:
            # KIP-219: back off this broker. At most request.timeout.ms: the broker enforces
            # the rest itself (it mutes the channel), and a garbled answer claiming days of
            # throttling must not stall the producer.
            throttle = min(throttle, self._s.request_timeout_ms)
            self._throttled_until_ms[node] = now + throttle
            _log.debug("[%s] broker %d throttled a produce request: no request to it for %d ms",
                       self._s.client_id, node, throttle)
        endpoints = {e["node_id"]: (e["host"], e["port"]) for e in resp.get("node_endpoints", ())}
        for t in resp["responses"]:
            name: str | None = t.get("name") or self._metadata.topic_name(t.get("topic_id", b""))
            for p in t["partition_responses"]:
                tp = (name or "", p["index"])
                if tp not in sent:
                    continue   # a partition we did not ask about: ignore it
                b = sent.pop(tp)
                code = p["error_code"]
                if code == 0 or (code == DuplicateSequenceNumberError.code
                                 and self._seqs is not None
                                 and self._seqs.duplicate_is_written(b)):
                    # DUPLICATE_SEQUENCE_NUMBER: an earlier attempt with these very sequences
                    # was written (a broker that no longer has its offset says so; Kafka's own
                    # answers a retry with the offset instead)
                    self._succeed(b, p["base_offset"], p["log_append_time_ms"])
                    continue
                err = error_for_code(code, p.get("error_message"), topic=b.topic,
                                     partition=b.partition, broker=node)
                if code in _WRITTEN_BUT_REFUSED:
                    self._maybe_written.add(b)
                elif b in self._maybe_written and self._seqs is not None \
                        and self._seqs.refusal_proves_unwritten(b, err):
                    self._maybe_written.discard(b)
                record_errors: dict[int, KafkaError] | None = None
                if p.get("record_errors"):
                    record_errors = {
                        r["batch_index"]: InvalidRecordError(
                            r.get("batch_index_error_message") or err.message,
                            topic=b.topic, partition=b.partition)
                        for r in p["record_errors"]}
                    # the other records of the batch: refused for being in its company (as
                    # Java says), each reported once with that reason rather than with the
                    # broker's list of the invalid ones
                    err = type(err)(
                        f"not written: the broker refused the whole batch because "
                        f"{len(record_errors)} other record(s) of it were invalid (batch "
                        f"index(es) {', '.join(map(str, sorted(record_errors)[:10]))}); "
                        f"this record may be sent again",
                        topic=b.topic, partition=b.partition, broker=node)
                leader = p.get("current_leader")
                if leader and leader.get("leader_id", -1) >= 0:
                    self._metadata.apply_leader_hint(b.topic, b.partition, leader["leader_id"],
                                                     leader["leader_epoch"], endpoints)
                self._retry_or_fail(b, err, now, record_errors,
                                    log_start_offset=p.get("log_start_offset", -1))
        for b in sent.values():  # the broker did not mention these partitions
            self._retry_or_fail(b, ProtocolError(
                f"broker {node} left {b.topic}-{b.partition} out of its produce response"),
                now, None, from_broker=False)

    def _succeed(self, b: ProducerBatch, base_offset: int, log_append_time_ms: int) -> None:
        self._in_flight.pop(b, None)
        self._last_errors.pop(b, None)
        self._maybe_written.discard(b)
        if self._seqs is not None:
            self._sequences_lost(self._seqs.on_success(b, base_offset))
        if self._metrics is not None:
            self._metrics.on_batch_done(b, None)
        self._acc.complete(b, base_offset, log_append_time_ms)

    def _retry_or_fail(self, b: ProducerBatch, error: KafkaError, now: int,
                       record_errors: dict[int, KafkaError] | None, *, from_broker: bool = True,
                       log_start_offset: int = -1) -> None:
        self._in_flight.pop(b, None)
        if b.done:
            return  # already expired by delivery.timeout.ms
        s = self._s
        if isinstance(error, MessageTooLargeError) and from_broker and b.record_count > 1 \
                and self._split(b, error):
            return
        if self._seqs is not None and from_broker:
            retriable = self._seqs.can_retry(b, error, log_start_offset)
        else:
            retriable = error.retriable
        if (retriable and record_errors is None and b.attempts <= s.retries
                and now - b.created_ms < s.delivery_timeout_ms):
            self._last_errors[b] = error
            if getattr(error, "invalid_metadata", False):
                self._metadata.request_update((b.topic,))
            routine = isinstance(error, (ConcurrentTransactionsError,
                                         OutOfOrderSequenceNumberError))
            if isinstance(error, ConcurrentTransactionsError):
                # Transactions v2: the previous transaction's markers are still being written,
                # which takes a few ms; retry.backoff.ms (100) would put a floor of 100 ms
                # under every transaction (Java lowered the same wait for AddPartitionsToTxn
                # to 20 ms, KAFKA-5477)
                backoff = min(_CONCURRENT_TXN_BACKOFF_MS, s.retry_backoff_ms)
            else:
                backoff = min(s.retry_backoff_max_ms,
                              s.retry_backoff_ms * (2 ** min(max(b.attempts - 1, 0), 20)))
            backoff = int(backoff * random.uniform(0.8, 1.2))   # KIP-580 jitter
            _log.log(logging.DEBUG if routine else logging.INFO,
                     "[%s] retrying %d record(s) for %s-%d after %s (attempt %d, in %d ms)",
                     s.client_id, b.record_count, b.topic, b.partition, error, b.attempts,
                     backoff)
            if self._metrics is not None:
                self._metrics.on_retry(b)
            self._acc.reenqueue(b, now + backoff,
                                 isinstance(error, OutOfOrderSequenceNumberError))
            return
        if self._seqs is not None:
            # without an answer from the broker: written or not? only later batches can tell
            self._sequences_lost(self._seqs.on_failed(b, error, True) if from_broker
                                 else self._seqs.on_expired(b))
        self._fail(b, error, record_errors)

    def _split(self, b: ProducerBatch, error: KafkaError) -> bool:
        """The broker refused b as too large for the topic (its max.message.bytes, or a batch
        that compressed worse than estimated): resend its records in smaller batches, as Java
        does, rather than fail them all. Not a retry: it uses none of retries. False when b
        could not be split (it then fails with the broker's error)."""
        size = b.size_bytes
        self._last_errors.pop(b, None)
        try:
            pieces = self._acc.split_batch(b)
        except Exception:   # noqa: BLE001 (logged; the batch fails with the broker's error)
            _log.exception("[%s] could not split a batch of %d record(s) for %s-%d",
                           self._s.client_id, b.record_count, b.topic, b.partition)
            return False
        if self._seqs is not None:
            self._seqs.on_split(b, pieces)
        if self._metrics is not None:
            self._metrics.on_split(b)
        if b in self._maybe_written:   # an earlier attempt of the whole batch may be in the log
            self._maybe_written.discard(b)
            self._maybe_written.update(pieces)
        _log.info("[%s] the broker refused a batch of %d record(s) for %s-%d, %d bytes, as too "
                  "large (%s); resending them in %d batches of at most %d bytes before "
                  "compression", self._s.client_id, b.record_count, b.topic, b.partition, size,
                  error, len(pieces), max(p.size_bytes for p in pieces))
        return True

    def _fail(self, b: ProducerBatch, error: KafkaError,
              record_errors: dict[int, KafkaError] | None = None) -> None:
        self._in_flight.pop(b, None)
        self._last_errors.pop(b, None)
        maybe_written = b in self._maybe_written
        self._maybe_written.discard(b)
        if error.maybe_written != maybe_written:
            error = copy.copy(error)   # errors may be shared by the batches of a request
            error.maybe_written = maybe_written
        _log.debug("[%s] %d record(s) for %s-%d failed: %s", self._s.client_id,
                   b.record_count, b.topic, b.partition, error)
        self._failure_log.failed(b.topic, b.partition, b.record_count, error)
        if self._txn is not None:
            self._txn.on_batch_failed(error)
        if self._metrics is not None:
            self._metrics.on_batch_done(b, error)
        if self._on_batch_failed is not None:
            try:
                self._on_batch_failed(b, error, record_errors)
            except Exception:  # noqa: BLE001 (logged; the batch must still complete)
                _log.exception("[%s] the failure hook for %s-%d raised; failing the batch anyway",
                               self._s.client_id, b.topic, b.partition)
        self._acc.complete(b, error=error, record_errors=record_errors)

    # ------------------------------------------------------------------ expiry

    def _expire(self, now: int) -> None:
        limit = self._s.delivery_timeout_ms
        for b in self._acc.expire(now, limit):
            if self._seqs is not None:
                self._sequences_lost(self._seqs.on_expired(b))   # if sent before
            self._fail(b, self._timeout_error(b, now))
        for b in [b for b in self._in_flight if now - b.created_ms >= limit]:
            # The request may still succeed; the record's outcome is no longer reported as
            # success (Java does the same). A late response finds the batch done.
            if self._seqs is not None:
                self._sequences_lost(self._seqs.on_expired(b))
            self._maybe_written.add(b)
            self._fail(b, self._timeout_error(b, now))
        oldest = min((b.created_ms for b in self._in_flight), default=None)
        oldest_queued = self._acc.oldest_queued_ms()
        if oldest_queued >= 0 and (oldest is None or oldest_queued < oldest):
            oldest = oldest_queued
        # batches created from now on cannot expire before now + limit
        self._next_expiry_ms = (now if oldest is None else oldest) + limit

    def _timeout_error(self, b: ProducerBatch, now: int) -> KafkaTimeoutError:
        last = self._last_errors.get(b)
        cause = f"; last error: {last}" if last is not None else ""
        away = self._unreachable_leader(b)
        if away is not None:
            cause += f"; {away}"
        unknown = ("; an attempt may have been written, so the records may be in the log "
                   "(maybe_written)" if b in self._maybe_written else
                   "; no attempt was written" if b.attempts > 0 else "; never sent")
        message = (f"{b.record_count} record(s) for {b.topic}-{b.partition} expired: "
                   f"{now - b.created_ms} ms passed since the batch was created "
                   f"(delivery.timeout.ms={self._s.delivery_timeout_ms}){cause}{unknown}")
        return delivery_timeout(message, last)

    def _unreachable_leader(self, b: ProducerBatch) -> str | None:
        """Why b's leader could not be reached, while it cannot ("broker 1 (h:p) unreachable
        for 30.2 s (...; last: Connection refused)"); every unreachable address when the
        leader or its address is not known; None when nothing is known to be out."""
        reach = self._client.reachability
        leader = next((p.leader for p in self._metadata.partitions_for(b.topic)
                       if p.partition == b.partition), -1)
        address = self._client.addresses.get(leader) if leader >= 0 else None
        if address is not None:
            return reach.describe(f"{address[0]}:{address[1]}")
        # no leader known, or its address forgotten (a rebootstrap after every broker the
        # producer knew was lost): whatever is out now is why
        return reach.describe_all()

    def _stop_for(self, fatal: KafkaError) -> None:
        """A fatal error (authentication): later sends raise it, everything pending fails with
        it, and the loop only idles until close(); reconnecting would fail the same way."""
        if self._acc.fatal_error is None:
            _log.error("[%s] %s; failing every pending record and refusing new ones",
                       self._s.client_id, fatal)
            self._acc.fail(fatal)
        self._fail_everything(fatal)
        self._metadata.fail_waiters(fatal)  # type: ignore[arg-type]
        self._client.poll(_MAX_POLL_MS)

    def _sequences_lost(self, error: KafkaError | None) -> None:
        """A transactional producer's sequences cannot account for a sent batch."""
        if error is not None and self._txn is not None:
            self._txn.on_sequences_lost(error)

    def _fail_everything(self, error: KafkaError) -> None:
        for b in [*self._acc.take_all_queued(), *self._in_flight]:
            if self._seqs is not None:
                self._seqs.on_abandoned(b)
            self._fail(b, error)
