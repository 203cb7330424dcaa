"""Dead-letter routing: records that fail with a non-retriable broker error are written again to
a dead-letter topic, with headers saying where they were going and why they failed.

The sender hands every failed batch to :meth:`DeadLetterQueue.batch_failed` just before it
completes the batch's futures, while the batch's sealed bytes still exist. When the error is
one retrying cannot fix (an ACL denial, a record the broker refuses), the records are decoded
from those bytes, routed (``dead.letter.topic`` or the ``dead_letter_router`` callable) and
queued. A worker thread writes them with a producer of their own, as Kafka Connect's
dead-letter reporter does: the sender thread never blocks on the dead-letter topic's metadata
or memory, and a flood of dead letters cannot take the buffer memory of the records still
being produced.

Nothing is hidden: every routed record ends in exactly one report, to the log, to the
counters (:attr:`DeadLetterQueue.delivered` / :attr:`failed`) and to ``on_dead_letter``,
whether its dead-letter write succeeded, failed, or could not even be queued.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kengine_ext import decode_batches

from .errors import AuthenticationError, BrokerError, KafkaError, KafkaTimeoutError

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from kengine_ext import ProducerBatch, RecordMetadata

__all__ = ["HEADER_PREFIX", "DeadLetter", "DeadLetterQueue", "RecordSink", "routable"]

_log = logging.getLogger("kengine.deadletter")

#: Headers added to every dead-letter record (values are UTF-8 text).
HEADER_PREFIX = "kengine.dlq."
HEADER_TOPIC = HEADER_PREFIX + "topic"
HEADER_PARTITION = HEADER_PREFIX + "partition"
HEADER_ERROR_CODE = HEADER_PREFIX + "error.code"
HEADER_ERROR_NAME = HEADER_PREFIX + "error.name"
HEADER_ERROR_MESSAGE = HEADER_PREFIX + "error.message"
HEADER_TIMESTAMP = HEADER_PREFIX + "timestamp"

Router = Callable[[str, KafkaError], "str | None"]


@dataclass(frozen=True)
class DeadLetter:
    """One record that failed with a non-retriable error, and what became of its copy."""

    topic: str                                  #: where it was going
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]     #: the record's own headers
    timestamp_ms: int                           #: the record's own timestamp
    error: KafkaError                           #: why it failed
    dead_letter_topic: str
    #: where the copy was written, when it was
    metadata: RecordMetadata | None = None
    #: why the copy could not be written, when it could not
    dead_letter_error: KafkaError | None = None

    @property
    def delivered(self) -> bool:
        return self.metadata is not None


def routable(error: KafkaError) -> bool:
    """Whether a record that failed with ``error`` goes to the dead-letter topic: broker errors
    retrying cannot fix, except authentication, which stops the whole producer."""
    return (isinstance(error, BrokerError) and not error.retriable
            and not isinstance(error, AuthenticationError))


class RecordSink(Protocol):
    """What the dead letters are written with: a producer (kengine.Producer, in practice)."""

    def send(self, topic: str, value: object = None, key: object = None, headers: Any = None,
             *, on_delivery: Callable[[KafkaError | None, RecordMetadata | None], object]
             ) -> object: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


class DeadLetterQueue:
    """Routes failed records to dead-letter topics through a producer of its own.

    ``seal`` gives a failed batch's bytes (RecordAccumulator.seal); ``make_producer`` builds
    that producer on first use (from the main producer's connection,
    security and delivery settings). ``max_pending_bytes`` bounds the records waiting for it;
    beyond, records are reported as failed dead letters instead of queued."""

    def __init__(self, seal: Callable[[ProducerBatch], Buffer],
                 make_producer: Callable[[], RecordSink], *,
                 topic: str | None, router: Router | None,
                 on_dead_letter: Callable[[DeadLetter], Any] | None, client_id: str,
                 max_pending_bytes: int) -> None:
        self._seal = seal
        self._make_producer = make_producer
        self._topic = topic
        self._router = router
        self._hook = on_dead_letter
        self._client_id = client_id
        self._max_pending_bytes = max_pending_bytes
        # Guards every field below; the sender thread, the worker and the dead-letter
        # producer's sender thread (its delivery callbacks) all take it briefly.
        self._cond = threading.Condition()
        self._queue: deque[DeadLetter] = deque()
        self._pending = 0                 # records queued or being written
        self._pending_bytes = 0           # key + value bytes of the queued records
        self._delivered = 0
        self._failed = 0
        self._closing = False
        self._worker: threading.Thread | None = None
        self._producer: RecordSink | None = None   # worker thread only, until close()

    # ------------------------------------------------------------------ counters

    @property
    def delivered(self) -> int:
        """Records written to a dead-letter topic."""
        with self._cond:
            return self._delivered

    @property
    def failed(self) -> int:
        """Records whose dead-letter write failed (or could not be queued)."""
        with self._cond:
            return self._failed

    @property
    def pending(self) -> int:
        """Records queued for, or being written to, a dead-letter topic."""
        with self._cond:
            return self._pending

    # ------------------------------------------------------------------ sender thread

    def batch_failed(self, batch: ProducerBatch, error: KafkaError,
                     record_errors: dict[int, KafkaError] | None) -> None:
        """Called by the sender for every batch it fails, before the batch's futures complete
        (so a flush() that sees the failure also waits for its dead letters)."""
        if batch.done or (not routable(error) and not record_errors):
            return
        try:
            batches = decode_batches(bytes(self._seal(batch)))
        except KafkaError as e:
            _log.error("[%s] %d record(s) for %s-%d failed (%s) and cannot be dead-lettered: "
                       "their batch does not decode: %s", self._client_id, batch.record_count,
                       batch.topic, batch.partition, error, e)
            with self._cond:
                self._failed += batch.record_count
            return
        letters = []
        for decoded in batches:
            for record in decoded.records:
                index = record.offset - decoded.base_offset
                record_error = (record_errors or {}).get(index, error)
                if not routable(record_error):
                    continue
                target = self._route(batch.topic, record_error)
                if target is None:
                    continue
                letters.append(DeadLetter(batch.topic, batch.partition, record.key,
                                          record.value, record.headers, record.timestamp,
                                          record_error, target))
        if letters:
            self._enqueue(letters)

    def _route(self, topic: str, error: KafkaError) -> str | None:
        if self._router is None:
            return self._topic
        try:
            target = self._router(topic, error)
        except Exception:  # noqa: BLE001 (user code: logged, and the record still routed)
            _log.exception("[%s] dead_letter_router raised for a record of %r; using "
                           "dead.letter.topic (%s)", self._client_id, topic, self._topic)
            return self._topic
        if target is not None and not isinstance(target, str):
            _log.error("[%s] dead_letter_router returned %r for %r, not a topic name or None; "
                       "using dead.letter.topic (%s)", self._client_id, target, topic,
                       self._topic)
            return self._topic
        return target

    def _enqueue(self, letters: list[DeadLetter]) -> None:
        size = sum(len(x.key or b"") + len(x.value or b"") for x in letters)
        with self._cond:
            refused = self._closing or self._pending_bytes + size > self._max_pending_bytes
            if not refused:
                self._queue.extend(letters)
                self._pending += len(letters)
                self._pending_bytes += size
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._run, name=f"kengine-dead-letters-{self._client_id}",
                        daemon=True)
                    self._worker.start()
                self._cond.notify_all()
                return
            backlog = self._pending_bytes
        reason = ("the producer is closing" if self._closing else
                  f"{backlog} bytes of dead letters are already waiting (the limit is "
                  f"buffer.memory, {self._max_pending_bytes} bytes)")
        for letter in letters:
            self._report(letter, None, KafkaError(
                f"dead letter for {letter.topic}-{letter.partition} not written: {reason}"),
                queued=False)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                letter = self._queue.popleft()
                self._pending_bytes -= len(letter.key or b"") + len(letter.value or b"")
            self._write(letter)

    def _write(self, letter: DeadLetter) -> None:
        try:
            if self._producer is None:
                self._producer = self._make_producer()
            headers = list(letter.headers) + _describe(letter)

            def on_delivery(error: KafkaError | None, metadata: RecordMetadata | None) -> None:
                self._report(letter, metadata, error)

            self._producer.send(letter.dead_letter_topic, letter.value, key=letter.key,
                                headers=headers, on_delivery=on_delivery)
        except KafkaError as e:
            self._report(letter, None, e)
        except Exception as e:  # noqa: BLE001 (a bug must not strand the record unreported)
            _log.exception("[%s] writing a dead letter failed", self._client_id)
            self._report(letter, None, KafkaError(f"writing the dead letter raised "
                                                  f"{type(e).__name__}: {e}"))

    def _report(self, letter: DeadLetter, metadata: RecordMetadata | None,
                error: KafkaError | None, *, queued: bool = True) -> None:
        outcome = DeadLetter(letter.topic, letter.partition, letter.key, letter.value,
                             letter.headers, letter.timestamp_ms, letter.error,
                             letter.dead_letter_topic, metadata, error)
        if error is None:
            _log.warning("[%s] a record for %s-%d failed (%s); written to dead-letter topic "
                         "%s at offset %s", self._client_id, letter.topic, letter.partition,
                         letter.error.name if isinstance(letter.error, BrokerError)
                         else letter.error, letter.dead_letter_topic,
                         getattr(metadata, "offset", "?"))
        else:
            _log.error("[%s] a record for %s-%d failed (%s) and its dead letter to %s failed "
                       "too: %s", self._client_id, letter.topic, letter.partition,
                       letter.error, letter.dead_letter_topic, error)
        with self._cond:
            if error is None:
                self._delivered += 1
            else:
                self._failed += 1
            if queued:
                self._pending -= 1
            self._cond.notify_all()
        if self._hook is not None:
            try:
                self._hook(outcome)
            except Exception:  # noqa: BLE001 (user code: logged, the others still run)
                _log.exception("[%s] on_dead_letter raised for a record of %s-%d; continuing",
                               self._client_id, letter.topic, letter.partition)

    # ------------------------------------------------------------------ flush and close

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every queued dead letter is written or failed. Raises
        KafkaTimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue:
                if not self._wait(deadline):
                    raise KafkaTimeoutError(f"{self._pending} dead letter(s) still queued after "
                                            f"{timeout} s")
        producer = self._producer
        if producer is not None:
            producer.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._cond:
            while self._pending:
                if not self._wait(deadline):
                    raise KafkaTimeoutError(f"{self._pending} dead letter(s) still unacknowledged "
                                            f"after {timeout} s")

    def _wait(self, deadline: float | None) -> bool:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        self._cond.wait(remaining if remaining is None else min(remaining, 1.0))
        return True

    def close(self, timeout: float | None = None) -> None:
        """Writes what is queued (up to ``timeout`` seconds), then closes the dead-letter
        producer. Dead letters not written by then are reported as failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.flush(timeout)
        except KafkaTimeoutError:
            pass
        with self._cond:
            self._closing = True
            left = list(self._queue)
            self._queue.clear()
            self._pending_bytes = 0
            self._cond.notify_all()
            worker = self._worker
        for letter in left:
            self._report(letter, None, KafkaError(
                f"dead letter for {letter.topic}-{letter.partition} not written: the producer "
                f"closed first"))
        if worker is not None:
            worker.join(None if deadline is None else max(0.1, deadline - time.monotonic()))
        if self._producer is not None:
            self._producer.close(None if deadline is None
                                 else max(0.0, deadline - time.monotonic()))


def _describe(letter: DeadLetter) -> list[tuple[str, bytes | None]]:
    error = letter.error
    code = getattr(error, "code", -1)
    name = getattr(error, "name", type(error).__name__)
    message = getattr(error, "message", None) or str(error)
    return [
        (HEADER_TOPIC, letter.topic.encode()),
        (HEADER_PARTITION, str(letter.partition).encode()),
        (HEADER_ERROR_CODE, str(code).encode()),
        (HEADER_ERROR_NAME, str(name).encode()),
        (HEADER_ERROR_MESSAGE, message.encode("utf-8", "replace")),
        (HEADER_TIMESTAMP, str(letter.timestamp_ms).encode()),
    ]
