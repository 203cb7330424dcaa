# The per-record hot path (ProducerCore.send / send_many) and the per-partition batch queues the
# sender drains (part of kengine_ext._core). See accumulator.pxd for the fields and their guards.
#
# A record costs one call into this file: serialize (built-in serializers without a Python call),
# pick the partition (Java-exact murmur2 or the sticky partitioner, in C), copy the bytes into the
# partition's open batch, and hand back a small freelisted future. Batches are sealed (compressed,
# CRC'd) by the sender thread when drained, with the GIL released for the byte work.

import copy
import json
import logging
import threading
import time

cimport cython
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Malloc, PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint32_t
from libc.string cimport memcpy

from kengine.errors import (
    IllegalStateError,
    KafkaTimeoutError,
    PartitionerError,
    ProducerClosedError,
    RecordTooLargeError,
    SerializationError,
    InvalidPartitionError,
)

__all__ += ["ProducerCore", "ProducerBatch", "DeliveryFuture", "BulkFuture", "BulkResult",
            "RecordMetadata", "PartitionQueue", "TopicState", "monotonic_ms", "wall_clock_ms"]

_log = logging.getLogger("kengine.producer")

cdef extern from "<time.h>" nogil:
    int CLOCK_MONOTONIC

# How keys and values become bytes.
cdef enum:
    SER_BYTES = 0      # bytes-like, str (UTF-8) or None, borrowed without a copy
    SER_STR = 1        # same acceptance; the name documents intent
    SER_JSON = 2       # json.dumps(value) as UTF-8; None stays null
    SER_CALLABLE = 3   # serializer(value) -> bytes-like | None
    SER_OBJECT = 4     # serializer.serialize(topic, value) -> bytes-like | None (Kafka's shape)

# Java's CompressionRatioEstimator steps.
cdef double RATIO_IMPROVING_STEP = 0.005
cdef double RATIO_DETERIORATE_STEP = 0.05


cdef inline int64_t mono_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


def monotonic_ms() -> int:
    """The monotonic clock (ms) used for linger, backoff and timeouts."""
    return mono_ms()


def wall_clock_ms() -> int:
    """Epoch milliseconds, as used for record timestamps."""
    return now_ms()


cdef tuple serializer_kind(object serializer):
    """(SER_* kind, callable or None) for a key.serializer / value.serializer setting."""
    if serializer is None or serializer == "bytes":
        return SER_BYTES, None
    if serializer == "str":
        return SER_STR, None
    if serializer == "json":
        return SER_JSON, None
    if callable(getattr(serializer, "serialize", None)):
        return SER_OBJECT, serializer
    if callable(serializer):
        return SER_CALLABLE, serializer
    raise ValueError(f"serializer {serializer!r}: use bytes, str, json, a callable or an object "
                     f"with serialize(topic, value)")


# Plain data (a str and ints): no reason for the cyclic GC to track it.
@cython.no_gc
@cython.freelist(64)
cdef class RecordMetadata:
    """Where a record was written: topic, partition, offset, timestamp and sizes."""

    def __repr__(self):
        return (f"RecordMetadata(topic={self.topic!r}, partition={self.partition}, "
                f"offset={self.offset}, timestamp={self.timestamp}, "
                f"timestamp_type={self.timestamp_type}, "
                f"serialized_key_size={self.serialized_key_size}, "
                f"serialized_value_size={self.serialized_value_size})")

    def __eq__(self, other):
        if not isinstance(other, RecordMetadata):
            return NotImplemented
        return self._tuple() == (<RecordMetadata>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def _tuple(self):
        return (self.topic, self.partition, self.offset, self.timestamp, self.timestamp_type,
                self.serialized_key_size, self.serialized_value_size)


cdef class ProducerBatch:
    """A batch of records for one partition, from its first append until the broker answers.
    Owned by the accumulator while queued, by the sender while in flight."""

    cdef int finish(self, int64_t base_offset, int64_t log_append_time_ms, object error,
                    object record_errors) except -1:
        self.base_offset = base_offset
        self.log_append_time_ms = log_append_time_ms
        self.error = error
        self.record_errors = record_errors or None
        self.in_flight = False
        self.done = True           # before the event, so a waiter that misses the event sees it
        self.builder = None        # frees the batch's buffer; futures keep only this object
        ev = self.done_event
        if ev is not None:
            ev.set()
        return 0

    cdef object record_error(self, int32_t index):
        if self.error is not None:
            return self.error
        if self.record_errors is not None:
            return self.record_errors.get(index)
        return None

    def wait(self, timeout=None) -> bool:
        """Blocks until every record of the batch has its outcome: the batch is done, or it
        was split (split_into) and every batch it was split into is. False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.done and self.split_into is None:
            ev = self.done_event
            if ev is None:
                ev = threading.Event()
                if self.done_event is None:
                    self.done_event = ev
                else:
                    ev = self.done_event
            # finish() and split_batch() change the state before they look for the event: one
            # made meanwhile is seen set, or the state is seen changed here
            if not self.done and self.split_into is None and not ev.wait(timeout):
                return False
        if self.split_into is None:
            return True
        for piece in self.split_into:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not (<ProducerBatch>piece).wait(remaining):
                return False
        return True

    @property
    def builder_or_none(self):
        return self.builder

    @property
    def size_bytes(self) -> int:
        return 0 if self.builder is None else self.builder._size_bytes

    @property
    def base_sequence(self) -> int:
        return -1 if self.builder is None else self.builder._base_sequence

    def __repr__(self):
        return (f"ProducerBatch({self.topic}-{self.partition}, records={self.record_count}, "
                f"attempts={self.attempts}, done={self.done}"
                f"{'' if self.split_into is None else f', split into {len(self.split_into)}'})")


# ---- following splits (ProducerCore.split_batch): futures keep the batch they were given ----

cdef inline int32_t add_sequence(int32_t seq, int32_t count) noexcept:
    # Kafka's sequences wrap from INT32_MAX to 0 (DefaultRecordBatch.incrementSequence)
    if seq > 0x7FFFFFFF - count:
        return count - (0x7FFFFFFF - seq) - 1
    return seq + count


cdef ProducerBatch piece_for(list pieces, int32_t index):
    """The piece holding record `index` of the batch that was split into `pieces`."""
    cdef Py_ssize_t i = len(pieces) - 1
    cdef ProducerBatch p = <ProducerBatch>pieces[i]
    while i > 0 and p.split_first > index:
        i -= 1
        p = <ProducerBatch>pieces[i]
    return p


cdef bint settled(ProducerBatch b) except -1:
    """Every record of b has its outcome: b is done, or every batch it was split into is."""
    if b.split_into is None:
        return b.done
    for piece in b.split_into:
        if not settled(<ProducerBatch>piece):
            return False
    return True


cdef list resolve_segments(list segments):
    """BulkFuture segments with each split batch replaced by the batches now holding its
    records; the list itself when no batch of it was split."""
    cdef list out = None
    cdef Py_ssize_t i
    cdef ProducerBatch b
    for i in range(len(segments)):
        seg = segments[i]
        b = <ProducerBatch>seg[0]
        if b.split_into is None:
            if out is not None:
                out.append(seg)
            continue
        if out is None:
            out = segments[:i]
        add_resolved_segments(b, seg[1], seg[2], out)
    return segments if out is None else out


cdef int add_resolved_segments(ProducerBatch b, int32_t first, bytes indices,
                               list out) except -1:
    """Appends to out the segments of b's records [first, first + len(indices) / 4)."""
    cdef int32_t count = <int32_t>(len(indices) // sizeof(int32_t)), lo, hi
    cdef ProducerBatch p
    if b.split_into is None:
        out.append((b, first, indices))
        return 0
    for piece in b.split_into:
        p = <ProducerBatch>piece
        lo = max(first, p.split_first)
        hi = min(first + count, p.split_first + p.record_count)
        if lo < hi:
            add_resolved_segments(p, lo - p.split_first,
                                  indices[(lo - first) * sizeof(int32_t):
                                          (hi - first) * sizeof(int32_t)], out)
    return 0


cdef class PartitionQueue:
    """Batches of one partition waiting to be sent, oldest first."""

    def __cinit__(self, str topic, int32_t partition):
        self.topic = topic
        self.partition = partition
        self.leader_id = -1
        self.leader_epoch = -1
        self.sequences = PartitionSequences(topic, partition)

    def batches(self) -> list:
        """The queued batches, oldest first (a snapshot)."""
        out = []
        b = self.head
        while b is not None:
            out.append(b)
            b = b.next
        return out

    def __repr__(self):
        return (f"PartitionQueue({self.topic}-{self.partition}, leader={self.leader_id}, "
                f"batches={self.batch_count})")


cdef class TopicState:
    """What the hot path knows of a topic: its partitions' queues and partitioner state."""

    def __cinit__(self, str name):
        self.name = name
        self.queues = []
        self.compression_ratio = 1.0
        self.partitioning = TopicPartitioner.__new__(TopicPartitioner)

    def __repr__(self):
        return f"TopicState({self.name!r}, partitions={self.num_partitions})"


# Untracked by the cyclic GC: with a callback, a future is kept (batch -> callback list ->
# future -> batch) until its batch completes, and at 1M records/s tracking them costs about
# 1 us per record in collections. The cycle is broken when the batch completes (complete()
# drops the list, fire() drops the callbacks), so nothing is left for the GC to find.
@cython.no_gc
@cython.freelist(1024)
cdef class DeliveryFuture:
    """The outcome of one send(): ``result(timeout)`` gives its RecordMetadata or raises the
    error that failed it; ``add_callback(fn)`` calls ``fn(error, metadata)`` once it is known
    (at once if it already is)."""

    cdef ProducerBatch resolve(self):
        """The batch holding this record now, following splits; remembered, so a future walks
        a split once. (Futures with callbacks are moved by split_batch() itself.)"""
        cdef ProducerBatch b = self.batch, piece
        cdef int32_t index = self.index
        while b.split_into is not None:
            piece = piece_for(b.split_into, index)
            index -= piece.split_first
            b = piece
        self.batch = b
        self.index = index
        return b

    cdef object metadata(self):
        cdef RecordMetadata md = RecordMetadata.__new__(RecordMetadata)
        cdef ProducerBatch b = self.batch
        md.topic = b.topic
        md.partition = b.partition
        md.offset = b.base_offset + self.index if b.base_offset >= 0 else -1
        if b.log_append_time_ms >= 0:
            md.timestamp = b.log_append_time_ms
            md.timestamp_type = 1
        else:
            md.timestamp = self.timestamp_ms
            md.timestamp_type = 0
        md.serialized_key_size = self.key_size
        md.serialized_value_size = self.value_size
        return md

    cdef int fire(self) except -1:
        err = self.batch.record_error(self.index)
        md = None if err is not None else self.metadata()
        cbs = self.callbacks
        if cbs is None:
            return 0
        self.callbacks = None
        if isinstance(cbs, list):
            for cb in cbs:
                run_callback(cb, err, md, self.batch)
        else:
            run_callback(cbs, err, md, self.batch)
        return 0

    def done(self) -> bool:
        return self.resolve().done

    cdef ProducerBatch settle(self, object timeout):
        """The finished batch holding the record, after waiting up to timeout seconds; raises
        KafkaTimeoutError when it is not finished by then (the record stays in flight)."""
        cdef ProducerBatch b = self.resolve()
        if not b.done:
            if not b.wait(timeout):
                raise KafkaTimeoutError(
                    f"the record to {b.topic}-{b.partition} was not acknowledged within "
                    f"{timeout} s; it is still being delivered")
            b = self.resolve()   # split while we waited: the piece with the record is done
        return b

    def result(self, timeout=None):
        """The record's RecordMetadata; raises its error, or KafkaTimeoutError when it is not
        known within timeout seconds (the record stays in flight)."""
        err = self.settle(timeout).record_error(self.index)
        if err is not None:
            raise err
        return self.metadata()

    def exception(self, timeout=None):
        """The record's error, or None if it was delivered."""
        return self.settle(timeout).record_error(self.index)

    def add_callback(self, fn):
        """Calls fn(error, metadata) when the outcome is known (now, if it already is)."""
        cdef ProducerBatch b = self.resolve()
        if b.done:
            err = b.record_error(self.index)
            run_callback(fn, err, None if err is not None else self.metadata(), b)
            return
        if self.callbacks is None:
            self.callbacks = fn
            if b.callback_futures is None:
                b.callback_futures = [self]
            else:
                b.callback_futures.append(self)
        elif isinstance(self.callbacks, list):
            self.callbacks.append(fn)
        else:
            self.callbacks = [self.callbacks, fn]

    @property
    def topic(self) -> str:
        return self.batch.topic

    @property
    def partition(self) -> int:
        return self.batch.partition

    def __repr__(self):
        state = "done" if self.resolve().done else "pending"
        return f"DeliveryFuture({self.batch.topic}-{self.batch.partition}, {state})"


cdef void run_callback(object fn, object err, object md, ProducerBatch b):
    # A user callback must never take the sender down: log it with the record's partition.
    try:
        fn(err, md)
    except BaseException:
        _log.exception("delivery callback %r for a record of %s-%d raised; continuing",
                       fn, b.topic, b.partition)


cdef class BulkResult:
    """Outcome of one send_many(): per-record failures by input index, metadata on demand."""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def failed_count(self) -> int:
        return len(self.errors)

    def metadata(self):
        """RecordMetadata (None where the record failed) for every record, in input order.
        Builds one object per record: ask for it only when you need them all."""
        out = [None] * self.record_count
        cdef ProducerBatch b
        cdef RecordMetadata md
        cdef int32_t first, k
        for b, first, indices in self._segments:
            for k, i in enumerate(memoryview(indices).cast("i")):
                if b.record_error(first + k) is None:
                    md = RecordMetadata.__new__(RecordMetadata)
                    md.topic = b.topic
                    md.partition = b.partition
                    md.offset = b.base_offset + first + k if b.base_offset >= 0 else -1
                    md.timestamp = b.log_append_time_ms
                    md.timestamp_type = 1 if b.log_append_time_ms >= 0 else 0
                    md.serialized_key_size = -1
                    md.serialized_value_size = -1
                    out[i] = md
        return out

    def __repr__(self):
        return (f"BulkResult({self.topic!r}, records={self.record_count}, "
                f"failed={len(self.errors)})")


cdef class BulkFuture:
    """The outcome of one send_many() call: ``result(timeout)`` waits for every batch the call
    wrote into and returns a BulkResult listing per-record failures, those the call refused
    included (it raises only when the timeout passes). Per record it keeps no Python object,
    only int32 indices."""

    cdef int refuse(self, Py_ssize_t index, object error) except -1:
        """Record ``index`` is not sent: the call could not encode or place it. The first
        reason given for a record is the one kept."""
        if self._refused is None:
            self._refused = {}
        self._refused.setdefault(index, error)
        return 0

    def done(self) -> bool:
        for s in self._segments:
            if not settled(<ProducerBatch>s[0]):
                return False
        return True

    def result(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        cdef ProducerBatch b
        cdef int32_t first, k
        for seg in self._segments:
            b = seg[0]
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not b.done and not b.wait(remaining):   # wait() follows splits
                raise KafkaTimeoutError(f"send_many to {self.topic!r} was not acknowledged "
                                        f"within {timeout} s; its records are still in flight")
        # every batch is settled: no split can happen any more, the segments are final
        cdef list segments = resolve_segments(self._segments)
        self._segments = segments
        cdef BulkResult r = BulkResult.__new__(BulkResult)
        r.topic = self.topic
        r.record_count = self.record_count
        r.errors = dict(self._refused) if self._refused is not None else {}
        r._segments = segments
        for b, first, indices in segments:
            if b.error is None and b.record_errors is None:
                continue
            for k, i in enumerate(memoryview(indices).cast("i")):
                err = b.record_error(first + k)
                if err is not None:
                    r.errors[i] = err
        return r

    def exception(self, timeout=None):
        """The first error among the records, or None if all were delivered."""
        r = self.result(timeout)
        return next(iter(r.errors.values()), None)

    def __repr__(self):
        return f"BulkFuture({self.topic!r}, records={self.record_count}, done={self.done()})"


cdef class ProducerCore:
    """The accumulator and the per-record path of the producer. kengine.Producer subclasses it
    and supplies configuration, metadata (``_await_metadata``) and the sender thread."""

    def __cinit__(self, *args, **kwargs):
        self._topics = {}
        self._queues = []
        self._txn_new_partitions = []
        self._incomplete = set()
        self._memory_cond = threading.Condition()
        self._drain_starts = {}
        self._linger_ms = 5
        self._batch_size_bytes = 16384
        self._max_request_size_bytes = 1048576
        self._buffer_total_bytes = 32 * 1024 * 1024
        self._partitioning = make_partitioning(None, False, True, 0, self._batch_size_bytes)
        self._skipped_tickets = set()

    # -- configuration (called once by the Python Producer before any send) --

    def _configure_core(self, *, int64_t linger_ms, Py_ssize_t batch_size,
                        Py_ssize_t max_request_size, int64_t buffer_memory, compression,
                        compression_level, key_serializer, value_serializer, partitioner,
                        bint ignore_keys, bint idempotent, bint transactional, wakeup,
                        max_block_ms, bint adaptive_partitioning=True,
                        int64_t availability_timeout_ms=0, str client_id=""):
        self._linger_ms = linger_ms
        # batch.size 0 disables batching: a batch that only ever takes its first record
        self._batch_size_bytes = max(batch_size, BATCH_HEADER_BYTES + 1)
        self._max_request_size_bytes = max_request_size
        self._buffer_total_bytes = buffer_memory
        self._codec = codec_id(compression)
        self._level = validate_compression_level(self._codec, compression_level) or 0
        self._pool = BufferPool(self._batch_size_bytes, buffer_memory // self._batch_size_bytes)
        self._key_kind, self._key_serializer = serializer_kind(key_serializer)
        self._value_kind, self._value_serializer = serializer_kind(value_serializer)
        self._partitioning = make_partitioning(partitioner, ignore_keys, adaptive_partitioning,
                                               availability_timeout_ms, batch_size)
        self._idempotent = idempotent
        self._transactional = transactional
        self.sequences = Sequences(transactional=transactional, client_id=client_id) \
            if idempotent else None
        self._wakeup = wakeup
        self._max_block_ms = max_block_ms

    # -- the per-record path --

    def send(self, str topic, value=None, key=None, headers=None, partition=None,
             timestamp_ms=None, on_delivery=None):
        """Appends one record to its partition's batch and returns a DeliveryFuture.

        Returns as soon as the record is in a batch. Blocks (up to max.block.ms) only when
        buffer.memory is exhausted or the topic's metadata is not known yet."""
        cdef const char *kp
        cdef const char *vp
        cdef const char *hp = NULL
        cdef Py_ssize_t kl, vl, hl = 0, body, record_bytes, r
        cdef int32_t hc = 0, p
        cdef Py_buffer kview, vview
        cdef bint khas = False, vhas = False, new_batch = False, sticky = False
        cdef int64_t ts, now, ready_at
        cdef Py_ssize_t est_before = 0   # the open batch's estimated size before this record
        cdef TopicState t
        cdef PartitionQueue q
        cdef ProducerBatch b
        cdef DeliveryFuture fut
        cdef PyObject *found
        cdef Py_ssize_t reserved = 0

        if self._closed:
            raise self.refusal("send()")
        if self._transactional and not self._in_transaction:
            raise self._not_in_transaction()
        if topic is self._last_topic:
            t = self._last_state
        else:
            found = PyDict_GetItem(self._topics, topic)
            t = self.topic_for_send(topic) if found == NULL else <TopicState>found
            self._last_topic = topic
            self._last_state = t
        if self._key_kind > SER_STR and key is not None:
            key = self.serialize(key, topic, self._key_kind, self._key_serializer, "key")
        raw_value = value   # what a Python partitioner sees
        if self._value_kind > SER_STR and value is not None:
            value = self.serialize(value, topic, self._value_kind, self._value_serializer, "value")
        if timestamp_ms is None:
            ts = now_ms()
        else:
            try:   # an int or another integer (numpy's); not a float, which would lose its ms
                ts = PyNumber_Index(timestamp_ms)
            except TypeError:
                raise SerializationError(f"timestamp_ms must be an int of epoch milliseconds, "
                                         f"not {timestamp_ms!r}") from None
            if ts < 0:
                raise ValueError(f"timestamp_ms must be epoch milliseconds >= 0, not {timestamp_ms}")
        hbytes = None
        if headers:
            hbytes = encode_headers(headers, &hc)
            hp = PyBytes_AS_STRING(hbytes)
            hl = PyBytes_GET_SIZE(hbytes)
        borrow_bytes(key, &kp, &kl, &kview, &khas, "key", -1)
        try:
            borrow_bytes(value, &vp, &vl, &vview, &vhas, "value", -1)
            try:
                # Upper bound of the record's size in a batch: its deltas are not known yet.
                body = record_body_size(0x7FFFFFFF, 0x7FFFFFFF, kl, vl, hl, hc)
                record_bytes = uvarint_size(zigzag32(<int32_t>body)) + body
                if record_bytes + BATCH_HEADER_BYTES > self._max_request_size_bytes \
                        or record_bytes + BATCH_HEADER_BYTES > self._buffer_total_bytes:
                    raise RecordTooLargeError(
                        f"the record to {topic!r} is {record_bytes + BATCH_HEADER_BYTES} bytes "
                        f"when serialized, more than max.request.size "
                        f"({self._max_request_size_bytes}) or buffer.memory "
                        f"({self._buffer_total_bytes}); nothing was sent")
                if partition is not None:
                    p = partition
                    if p < 0 or p >= t.num_partitions:
                        t = self._refresh_for_partition(topic, p)
                else:
                    p = self.choose_partition(t, key, raw_value, headers, kp, kl, &sticky)
                q = <PartitionQueue>t.queues[p]
                while True:
                    b = q.tail
                    if b is not None and not b.closed:
                        est_before = b.builder.estimated_size_c()
                        r = b.builder.append_record(ts, kp, kl, vp, vl, hp, hl, hc)
                        if r >= 0:
                            break
                        if r != APPEND_FULL:
                            raise MemoryError()
                        b.closed = True
                        self.maybe_wake_sender(0)
                    now = mono_ms()
                    b = self.open_batch(q, record_bytes, now, reserved)
                    if b is None:
                        # buffer.memory is exhausted (or others wait for it first): block here,
                        # outside any critical section, then look at the queue again.
                        reserved = self._wait_for_memory(self.batch_bytes_for(record_bytes), topic)
                        continue
                    reserved = 0  # open_batch used it
                    new_batch = True
                    est_before = 0
                    r = b.builder.append_record(ts, kp, kl, vp, vl, hp, hl, hc)
                    if r < 0:
                        raise MemoryError()
                    break
            finally:
                if vhas:
                    PyBuffer_Release(&vview)
        finally:
            if khas:
                PyBuffer_Release(&kview)
            if reserved:  # waited for memory, then found room in a batch another thread opened
                self.release_memory(reserved)
        b.record_count += 1
        q.queued_bytes += record_bytes
        if sticky:
            self._partitioning.sticky_appended(t, q, b.builder.estimated_size_c() - est_before,
                                               False)
        fut = DeliveryFuture.__new__(DeliveryFuture)
        fut.batch = b
        fut.index = <int32_t>r
        fut.timestamp_ms = ts
        fut.key_size = <int32_t>kl
        fut.value_size = <int32_t>vl
        if on_delivery is not None:
            fut.callbacks = on_delivery
            if b.callback_futures is None:
                b.callback_futures = [fut]
            else:
                b.callback_futures.append(fut)
        if new_batch:
            self.maybe_wake_sender(b.created_ms + self._linger_ms)
            if self._partitioning.kind == PARTITIONER_PYTHON:
                self._partitioning.on_new_batch(t, p)
        return fut

    def send_many(self, str topic, values, keys=None, headers=None, timestamps=None,
                  partition=None):
        """Appends many records in one call and returns one BulkFuture.

        values (and keys, headers, timestamps when given) are equal-length sequences. Records
        are partitioned like send() (keyed: murmur2; unkeyed: sticky; or the configured
        partitioner), grouped by partition with their order kept, and encoded into batches
        with the byte work done without the GIL. Blocks like send() for buffer memory.

        A record that cannot be sent (its serializer raised, a value, header or timestamp of
        the wrong type, larger than max.request.size, refused by the partitioner) fails alone:
        the others are sent and the BulkResult lists its error under its index. A wait for
        buffer.memory that runs out of max.block.ms refuses every record not appended by then.
        Inside a transaction a refusal makes the transaction abortable, so that it cannot
        commit without the record."""
        if self._closed:
            raise self.refusal("send_many()")
        if self._transactional and not self._in_transaction:
            raise self._not_in_transaction()
        cdef Py_ssize_t n = len(values)
        for name, seq in (("keys", keys), ("headers", headers), ("timestamps", timestamps)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries for {n} values")
        cdef TopicState t = self._topics.get(topic)
        if t is None:
            t = self.topic_for_send(topic)
        if partition is not None and not (0 <= partition < t.num_partitions):
            t = self._refresh_for_partition(topic, partition)
        cdef BulkFuture fut = BulkFuture.__new__(BulkFuture)
        fut.topic = topic
        fut.record_count = n
        fut._segments = []
        raw_values = values   # what a Python partitioner sees
        if self._value_kind > SER_STR:
            values = self.serialize_all(values, topic, self._value_kind, self._value_serializer,
                                        "value", fut)
        if keys is not None and self._key_kind > SER_STR:
            keys = self.serialize_all(keys, topic, self._key_kind, self._key_serializer, "key",
                                      fut)
        cdef Py_ssize_t pos = 0, chunk, i
        while pos < n:
            chunk = min(BULK_CHUNK_RECORDS, n - pos)
            timeout = self.send_chunk(t, fut, values, raw_values, keys, headers, timestamps,
                                      partition, pos, chunk)
            pos += chunk
            if timeout is not None:
                for i in range(pos, n):   # waited max.block.ms once: no more waiting
                    fut.refuse(i, timeout)
                break
        if fut._refused is not None:
            fut._refused = dict(sorted(fut._refused.items()))   # by input index
            index, error = next(iter(fut._refused.items()))
            self._records_refused(topic, len(fut._refused), index, error)
        return fut

    def _not_in_transaction(self):
        """The error a transactional producer's send raises outside an open transaction. The
        Python Producer overrides this to tell a failed transaction from none begun."""
        return IllegalStateError("a transactional producer sends only inside a transaction: "
                                 "call begin_transaction() first")

    def _records_refused(self, topic, count, first_index, first_error):
        """send_many() refused ``count`` records, the first being ``first_index``. The Python
        Producer overrides this: a transaction cannot commit without them."""

    cdef object send_chunk(self, TopicState t, BulkFuture fut, object values, object raw_values,
                           object keys, object headers, object timestamps, object partition,
                           Py_ssize_t start, Py_ssize_t n):
        """Sends records [start, start + n). Returns None, or the KafkaTimeoutError that stopped
        it waiting for buffer.memory (every record from then on is refused with it)."""
        cdef ColumnsHolder holder = ColumnsHolder()
        try:
            holder.fill(values, keys, headers, timestamps, start, start + n)
        except SerializationError:
            holder = self.fill_refusing(fut, values, keys, headers, timestamps, start, n)
        cdef dict refused = fut._refused
        cdef RecordColumns *c = &holder.cols
        cdef int32_t nparts = t.num_partitions, p, explicit = -1
        cdef Py_ssize_t j, body, rec_bytes, lo, hi, r, sent
        cdef Partitioning pt = self._partitioning
        cdef bint sticky = False
        cdef PartitionQueue q
        cdef list new_batches = None   # partitions that opened a batch, for on_new_batch()
        timeout = None
        cdef int32_t *parts = <int32_t *>PyMem_Malloc(n * sizeof(int32_t))
        cdef Py_ssize_t *counts = <Py_ssize_t *>PyMem_Malloc((nparts + 1) * sizeof(Py_ssize_t))
        cdef Py_ssize_t *grown
        cdef Py_ssize_t *order = <Py_ssize_t *>PyMem_Malloc(n * sizeof(Py_ssize_t))
        cdef RecordColumns g      # the chunk's columns regrouped by partition
        cdef ColumnsHolder grouped = ColumnsHolder()
        if parts == NULL or counts == NULL or order == NULL:
            PyMem_Free(parts); PyMem_Free(counts); PyMem_Free(order)
            raise MemoryError()
        try:
            if partition is not None:
                explicit = partition
            for j in range(n):
                if refused is not None and start + j in refused:
                    parts[j] = -1
                    continue
                body = record_body_size(0x7FFFFFFF, 0x7FFFFFFF, c.key_len[j], c.value_len[j],
                                        c.headers_len[j] if c.headers_ptr != NULL else 0,
                                        c.header_count[j] if c.headers_ptr != NULL else 0)
                rec_bytes = uvarint_size(zigzag32(<int32_t>body)) + body
                if rec_bytes + BATCH_HEADER_BYTES > self._max_request_size_bytes:
                    fut.refuse(start + j, RecordTooLargeError(
                        f"record {start + j} to {t.name!r} is {rec_bytes + BATCH_HEADER_BYTES} "
                        f"bytes when serialized, more than max.request.size "
                        f"({self._max_request_size_bytes}); it was not sent"))
                    refused = fut._refused
                    parts[j] = -1
                    continue
                if explicit >= 0:
                    p = explicit
                elif pt.kind == PARTITIONER_DEFAULT and c.key_ptr[j] != NULL \
                        and not pt.ignore_keys:
                    p = kengine_partition_for_key(c.key_ptr[j], c.key_len[j], nparts)
                else:
                    if pt.kind != PARTITIONER_PYTHON:
                        p = pt.choose(t, None, None, None, c.key_ptr[j], c.key_len[j], &sticky)
                    else:
                        try:
                            p = pt.choose(t, keys[start + j] if keys is not None else None,
                                          raw_values[start + j],
                                          headers[start + j] if headers is not None else None,
                                          c.key_ptr[j], c.key_len[j], &sticky)
                        except PartitionerError as e:
                            fut.refuse(start + j, indexed(e, start + j))
                            refused = fut._refused
                            parts[j] = -1
                            continue
                        if p >= nparts:   # partitions were added while the partitioner ran
                            grown = <Py_ssize_t *>PyMem_Realloc(
                                counts, (t.num_partitions + 1) * sizeof(Py_ssize_t))
                            if grown == NULL:
                                raise MemoryError()
                            counts = grown
                            nparts = t.num_partitions
                    if sticky:
                        # This call's records are appended back to back after the loop, so a
                        # partition's batches are full when the next one opens: switch at
                        # batch.size, charging each record's size bound.
                        pt.sticky_appended(t, <PartitionQueue>t.queues[p], rec_bytes, True)
                parts[j] = p
            # counting sort by partition, stable: each partition's records keep their order;
            # refused records (partition -1) are left out
            for j in range(nparts + 1):
                counts[j] = 0
            for j in range(n):
                if parts[j] >= 0:
                    counts[parts[j] + 1] += 1
            for j in range(nparts):
                counts[j + 1] += counts[j]
            sent = counts[nparts]
            for j in range(n):
                if parts[j] >= 0:
                    order[counts[parts[j]]] = j
                    counts[parts[j]] += 1
            grouped.regroup(holder, order, sent)
            lo = 0
            while lo < sent:
                p = parts[order[lo]]
                hi = lo
                while hi < sent and parts[order[hi]] == p:
                    hi += 1
                q = <PartitionQueue>t.queues[p]
                tail = q.tail
                timeout = self.append_group(q, fut, &grouped.cols, order, start, lo, hi)
                if pt.kind == PARTITIONER_PYTHON and q.tail is not tail:
                    if new_batches is None:
                        new_batches = []
                    new_batches.append(p)
                if timeout is not None:
                    for r in range(hi, sent):
                        fut.refuse(start + order[r], timeout)
                    break
                lo = hi
            if new_batches is not None:
                for p in new_batches:
                    pt.on_new_batch(t, p)
        finally:
            PyMem_Free(parts)
            PyMem_Free(counts)
            PyMem_Free(order)
        return timeout

    cdef object append_group(self, PartitionQueue q, BulkFuture fut, RecordColumns *cols,
                             Py_ssize_t *order, Py_ssize_t start, Py_ssize_t lo, Py_ssize_t hi):
        """Appends grouped records [lo, hi) of one partition: first into its open batch, with
        the GIL held (a small call must not leave a half-empty batch behind), then into new
        batches filled without the GIL before they join the queue. Returns None, or the
        KafkaTimeoutError of a wait for buffer.memory that ran out of max.block.ms: the records
        not appended by then are refused with it."""
        cdef ProducerBatch b = q.tail
        cdef Py_ssize_t r, need, reserved
        cdef int64_t now
        if b is not None and not b.closed:
            r = b.builder.append_columns(cols, lo, hi)
            if r < 0 and r != APPEND_FULL:
                raise MemoryError()
            if r > 0:
                self.add_segment(fut, b, order, start, lo, r)
                lo += r
            if lo < hi:
                b.closed = True
                self.maybe_wake_sender(0)
        while lo < hi:
            need = self._batch_size_bytes
            reserved = 0
            if self._memory_waiters > 0 or self._buffer_used_bytes + need > self._buffer_total_bytes:
                try:
                    reserved = self._wait_for_memory(need, q.topic)
                except KafkaTimeoutError as e:
                    timeout = e
                    for r in range(lo, hi):
                        fut.refuse(start + order[r], timeout)
                    return timeout
            else:
                self._buffer_used_bytes += need
                reserved = need
            now = mono_ms()
            b = self.new_batch(q, need, now)
            b.reserved_bytes = reserved
            with nogil:
                r = b.builder.append_columns(cols, lo, hi)
            if r <= 0:
                self.release_memory(reserved)
                raise MemoryError() if r == APPEND_NO_MEMORY else RecordTooLargeError(
                    f"a record does not fit in an empty batch of max.request.size "
                    f"({self._max_request_size_bytes}) bytes")
            self.enqueue(q, b)
            self._incomplete.add(b)
            self.add_segment(fut, b, order, start, lo, r)
            lo += r
            if lo < hi:
                b.closed = True
            self.maybe_wake_sender(0 if b.closed else b.created_ms + self._linger_ms)
        return None

    cdef int add_segment(self, BulkFuture fut, ProducerBatch b, Py_ssize_t *order,
                         Py_ssize_t start, Py_ssize_t lo, Py_ssize_t count) except -1:
        cdef bytes idx = PyBytes_FromStringAndSize(NULL, count * sizeof(int32_t))
        cdef int32_t *dst = <int32_t *>PyBytes_AS_STRING(idx)
        cdef Py_ssize_t k
        for k in range(count):
            dst[k] = <int32_t>(start + order[lo + k])
        fut._segments.append((b, b.record_count, idx))
        b.record_count += <int32_t>count
        return 0

    cdef object refusal(self, str call):
        """The error a send refused after close() or a fatal error raises: a copy each time, so
        that threads raising it concurrently do not share one traceback."""
        if self._fatal_error is not None:
            return copy.copy(self._fatal_error)
        return ProducerClosedError(f"{call} after close(): the producer accepts no more records")

    cdef object serialize(self, object obj, str topic, int kind, object serializer, str what):
        try:
            if kind == SER_JSON:
                out = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
            elif kind == SER_CALLABLE:
                out = serializer(obj)
            else:
                out = serializer.serialize(topic, obj)
        except SerializationError:
            raise
        except Exception as e:
            raise SerializationError(f"the {what} serializer failed for a record to {topic!r}: "
                                     f"{type(e).__name__}: {e}") from e
        return out

    cdef list serialize_all(self, object objs, str topic, int kind, object serializer, str what,
                            BulkFuture fut):
        """send_many()'s serialization: a record whose serializer raises is refused alone (None
        stands in for it)."""
        cdef list out = []
        cdef Py_ssize_t i = 0
        for obj in objs:
            if obj is None:
                out.append(None)
            else:
                try:
                    out.append(self.serialize(obj, topic, kind, serializer, what))
                except SerializationError as e:
                    fut.refuse(i, indexed(e, i))
                    out.append(None)
            i += 1
        return out

    cdef ColumnsHolder fill_refusing(self, BulkFuture fut, object values, object keys,
                                     object headers, object timestamps, Py_ssize_t start,
                                     Py_ssize_t n):
        """The slow path of a chunk that fill() refused (a value or key that is not bytes, a
        header that is not (str, bytes)): finds each such record, refuses it, and gathers the
        chunk with empty records standing in for the refused ones (they are not sent)."""
        vals = list(values[start:start + n])
        ks = list(keys[start:start + n]) if keys is not None else None
        hs = list(headers[start:start + n]) if headers is not None else None
        tss = list(timestamps[start:start + n]) if timestamps is not None else None
        cdef ColumnsHolder probe
        cdef Py_ssize_t j
        for j in range(n):
            probe = ColumnsHolder()
            try:
                probe.fill(values, keys, headers, timestamps, start + j, start + j + 1)
            except SerializationError as e:
                fut.refuse(start + j, e)    # fill() names the record's index already
                vals[j] = None
                if ks is not None:
                    ks[j] = None
                if hs is not None:
                    hs[j] = None
                if tss is not None:
                    tss[j] = None
        cdef ColumnsHolder holder = ColumnsHolder()
        holder.fill(vals, ks, hs, tss, 0, n)
        return holder

    cdef TopicState topic_for_send(self, str topic):
        """Slow path: the topic's partitions are not known yet; the subclass fetches metadata,
        blocking up to max.block.ms."""
        state = self._await_metadata(topic)
        if not isinstance(state, TopicState):
            raise IllegalStateError(f"no metadata for {topic!r}")
        return <TopicState>state

    def _refresh_for_partition(self, topic, int32_t partition):
        """An explicit partition outside the known range: refresh metadata once (partitions may
        have been added), then fail clearly."""
        state = self._await_metadata(topic, partition)
        cdef TopicState t = <TopicState>state
        if partition < 0 or partition >= t.num_partitions:
            raise InvalidPartitionError(
                f"partition {partition} is outside [0, {t.num_partitions}) for topic {topic!r}")
        return t

    cdef int32_t choose_partition(self, TopicState t, object key, object value, object headers,
                                  const char *key_ptr, Py_ssize_t key_len,
                                  bint *sticky) except -2:
        """The partition of a record sent without one (partitioner.pyx); *sticky is set when
        the sticky partitioner chose it, and the caller then reports the bytes it appended."""
        cdef Partitioning pt = self._partitioning
        if pt.kind == PARTITIONER_DEFAULT and key_ptr != NULL and not pt.ignore_keys:
            sticky[0] = False
            return kengine_partition_for_key(key_ptr, key_len, t.num_partitions)
        return pt.choose(t, key, value, headers, key_ptr, key_len, sticky)

    cdef Py_ssize_t batch_bytes_for(self, Py_ssize_t record_bytes) noexcept:
        cdef Py_ssize_t need = record_bytes + BATCH_HEADER_BYTES
        return need if need > self._batch_size_bytes else self._batch_size_bytes

    cdef ProducerBatch open_batch(self, PartitionQueue q, Py_ssize_t record_bytes, int64_t now,
                                  Py_ssize_t reserved):
        """A new batch at the tail of q, or None when buffer.memory cannot cover it now.
        reserved: bytes this caller already holds (it waited for them in _wait_for_memory)."""
        cdef Py_ssize_t need = self.batch_bytes_for(record_bytes)
        if reserved < need:
            if self._memory_waiters > 0 or \
                    self._buffer_used_bytes + need - reserved > self._buffer_total_bytes:
                return None
            self._buffer_used_bytes += need - reserved
        elif reserved > need:
            self._buffer_used_bytes -= reserved - need
        cdef ProducerBatch b = self.new_batch(q, need, now)
        b.reserved_bytes = need
        self.enqueue(q, b)
        self._incomplete.add(b)
        return b

    cdef ProducerBatch new_batch(self, PartitionQueue q, Py_ssize_t capacity, int64_t now):
        """A batch for q, not yet queued; the caller accounts its memory."""
        cdef TopicState t = <TopicState>self._topics[q.topic]
        cdef ProducerBatch b = ProducerBatch.__new__(ProducerBatch)
        b.topic = q.topic
        b.partition = q.partition
        b.queue = q
        b.builder = RecordBatchBuilder(self._batch_size_bytes,
                                       max_bytes=self._max_request_size_bytes,
                                       compression=self._codec,
                                       compression_level=self._level or None,
                                       ratio_estimate=t.compression_ratio,
                                       transactional=self._transactional,
                                       initial_capacity=capacity, pool=self._pool)
        b.created_ms = now
        b.base_offset = -1
        b.log_append_time_ms = -1
        return b

    cdef int enqueue(self, PartitionQueue q, ProducerBatch b) except -1:
        if self._transactional and q.txn_state == TXN_NOT_ADDED:
            # The sender adds it to the transaction (AddPartitionsToTxn) before sending to it,
            # or, with transactions v2, the Produce request itself adds it.
            q.txn_state = TXN_ADDED if self._implicit_txn_partitions else TXN_PENDING
            self._txn_new_partitions.append(q)
        if q.tail is not None:
            q.tail.closed = True   # appends go to the newest batch only: keeps per-partition order
            q.tail.next = b
        else:
            q.head = b
        q.tail = b
        q.batch_count += 1
        return 0

    cdef int maybe_wake_sender(self, int64_t ready_at_ms) except -1:
        """Wakes the sender if it sleeps past the moment this batch becomes sendable."""
        if self._sender_sleeping and ready_at_ms < self._sender_wake_at_ms:
            self._sender_sleeping = False
            self._wakeup()
        return 0

    # -- buffer memory (send() blocks here, fairly, when buffer.memory is used up) --

    cdef int release_memory(self, Py_ssize_t nbytes) except -1:
        self._buffer_used_bytes -= nbytes
        if self._memory_waiters > 0:
            with self._memory_cond:
                self._memory_cond.notify_all()
        return 0

    def _wait_for_memory(self, Py_ssize_t need, str topic):
        """Blocks until `need` bytes of buffer.memory are free, first come first served, and
        reserves them; returns the bytes reserved, which the caller hands to open_batch() or
        releases. Raises KafkaTimeoutError after max.block.ms."""
        started_ns = time.monotonic_ns()
        deadline = time.monotonic() + self._max_block_ms / 1000.0
        with self._memory_cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._memory_waiters += 1
            try:
                while ticket != self._serving_ticket or \
                        self._buffer_used_bytes + need > self._buffer_total_bytes:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise KafkaTimeoutError(
                            f"a send to {topic!r} waited {self._max_block_ms} ms (max.block.ms) "
                            f"for {need} bytes of buffer.memory ({self._buffer_total_bytes} bytes, "
                            f"{self._buffer_used_bytes} in use by unsent records); the records "
                            f"it waited for were not sent")
                    self._memory_cond.wait(remaining)
                self._buffer_used_bytes += need
            finally:
                self._memory_waiters -= 1
                self.memory_wait_ns += time.monotonic_ns() - started_ns
                if ticket == self._serving_ticket:
                    self._serving_ticket += 1
                else:
                    # timed out before its turn: let the queue move past this ticket
                    self._skipped_tickets.add(ticket)
                while self._serving_ticket in self._skipped_tickets:
                    self._skipped_tickets.discard(self._serving_ticket)
                    self._serving_ticket += 1
                self._memory_cond.notify_all()
        return need

    # -- metadata (called by the sender thread) --

    def update_topic(self, str topic, list partitions):
        """Records a topic's partitions as (leader_id, leader_epoch) by index, from a metadata
        response; adds queues for new partitions (Kafka never removes partitions)."""
        cdef TopicState t = self._topics.get(topic)
        cdef PartitionQueue q
        cdef Py_ssize_t i
        if t is None:
            t = TopicState(topic)
        while len(t.queues) < len(partitions):
            q = PartitionQueue(topic, len(t.queues))
            t.queues.append(q)
            self._queues.append(q)
        for i, (leader, epoch) in enumerate(partitions):
            q = <PartitionQueue>t.queues[i]
            q.leader_id = leader
            q.leader_epoch = epoch
        t.num_partitions = len(t.queues)
        t.partitioning.refresh(t.queues)
        self._topics[topic] = t   # published last: send() never sees a half-built TopicState
        return t

    def topic_state(self, str topic):
        return self._topics.get(topic)

    def queues(self) -> list:
        return list(self._queues)

    # -- the sender's side --

    cdef bint sendable(self, ProducerBatch b, int64_t now) noexcept:
        if b.retry_at_ms > now:
            return False
        if b.closed or self._flushes > 0 or self._draining_all:
            return True
        return now - b.created_ms >= self._linger_ms

    def ready(self, int64_t now):
        """(leaders with a sendable batch, ms until another batch becomes sendable (-1: none
        queued), topics with queued batches whose partition leader is unknown)."""
        cdef set nodes = set()
        cdef set unknown = None
        cdef int64_t delay = -1, d
        cdef PartitionQueue q
        cdef ProducerBatch b
        for q in self._queues:
            b = q.head
            if b is None:
                continue
            if q.leader_id < 0:
                if unknown is None:
                    unknown = set()
                unknown.add(q.topic)
                continue
            if q.muted:
                continue
            if self.sendable(b, now):
                nodes.add(q.leader_id)
            else:
                d = b.retry_at_ms - now if b.retry_at_ms > now else b.created_ms + self._linger_ms - now
                if delay < 0 or d < delay:
                    delay = d
        self._partitioning.nodes_ready(nodes, now, False)
        return nodes, delay, unknown or ()

    def drain(self, nodes, Py_ssize_t max_request_size, int64_t now):
        """Takes the sendable head batch of each partition led by one of `nodes`, at most
        max_request_size bytes per node (a lone larger batch still goes). Each node has its own
        rotating start: the next drain for a node begins at the first of its partitions left
        out for lack of room, so none starves however many partitions it leads. Returns
        {node: [ProducerBatch]}; the batches are the caller's, in flight, until complete() or
        reenqueue(). With idempotence, a batch gets its sequence here, once it is certain to
        go (sequences.pyx)."""
        cdef dict out = {}
        cdef dict sizes = {}
        cdef dict starts = {}
        cdef dict skipped = {}
        cdef Py_ssize_t n = len(self._queues), i, size, used, start
        cdef int pass_
        cdef PartitionQueue q
        cdef ProducerBatch b
        cdef Sequences seqs = self.sequences
        cdef PyObject *found
        self._partitioning.nodes_ready(nodes, now, True)   # the sender can send to every one
        if n == 0 or not nodes:
            return out
        if seqs is not None and seqs.producer_id < 0:
            return out   # no producer id yet: sequences cannot be assigned
        for node in nodes:
            starts[node] = self._drain_starts.get(node, 0) % n
        # Two passes visit each node's partitions in its own rotation: from its start to the
        # end, then from the beginning to its start.
        for pass_ in range(2):
            for i in range(n):
                q = <PartitionQueue>self._queues[i]
                b = q.head
                if b is None or q.muted or q.leader_id < 0:
                    continue
                found = PyDict_GetItem(starts, q.leader_id)
                if found is NULL:
                    continue   # not a node we send to now
                start = <Py_ssize_t><object>found
                if (i >= start) == (pass_ == 1):
                    continue   # this partition's turn is in the other pass
                if not self.sendable(b, now):
                    continue
                if self._transactional and q.txn_state != TXN_ADDED:
                    continue   # AddPartitionsToTxn for it is not acknowledged yet
                if seqs is not None and not seqs.may_drain(q, b):
                    continue
                size = b.builder.estimated_size_c()
                used = sizes.get(q.leader_id, 0)
                if used > 0 and used + size > max_request_size:
                    if q.leader_id not in skipped:
                        skipped[q.leader_id] = i
                    continue
                q.head = b.next
                if q.head is None:
                    q.tail = None
                b.next = None
                b.closed = True
                b.in_flight = True
                b.attempts += 1
                q.batch_count -= 1
                q.queued_bytes -= b.builder._uncompressed_bytes if b.builder._built else b.builder._size_bytes
                if q.queued_bytes < 0:
                    q.queued_bytes = 0
                if seqs is not None:
                    seqs.on_drain(q, b)
                sizes[q.leader_id] = used + size
                lst = out.get(q.leader_id)
                if lst is None:
                    out[q.leader_id] = [b]
                else:
                    lst.append(b)
        for node, start in starts.items():
            self._drain_starts[node] = skipped.get(node, (start + 1) % n)
        return out

    def seal(self, ProducerBatch b):
        """Compresses the batch and writes its CRC (codecs and CRC run without the GIL), once;
        updates the topic's compression estimate and returns the batch's bytes."""
        cdef RecordBatchBuilder builder = b.builder
        cdef TopicState t
        cdef double observed, est
        cdef Py_ssize_t grown
        if not b.sealed:
            builder.seal()
            b.sealed = True
            grown = builder._capacity_bytes - b.reserved_bytes
            if grown > 0:   # a compressed batch's raw records outgrew the reservation
                self._buffer_used_bytes += grown
                b.reserved_bytes += grown
            if builder._codec != CODEC_NONE:
                t = self._topics.get(b.topic)
                if t is not None:
                    observed = builder._ratio
                    est = t.compression_ratio
                    if observed > est:
                        t.compression_ratio = max(est + RATIO_DETERIORATE_STEP, observed)
                    elif observed < est:
                        t.compression_ratio = max(est - RATIO_IMPROVING_STEP, observed)
        return memoryview(builder)

    def complete(self, ProducerBatch b, int64_t base_offset=-1, int64_t log_append_time_ms=-1,
                 error=None, record_errors=None):
        """Finishes a batch: stores the outcome, frees its memory, wakes its waiters and runs
        its records' callbacks (on this thread). Finishing twice is a no-op, and so is
        finishing a batch that was split: its records' outcomes are its pieces'."""
        cdef DeliveryFuture f
        if b.done or b.split_into is not None:
            return
        self._incomplete.discard(b)
        self.release_memory(b.reserved_bytes)
        b.reserved_bytes = 0
        b.finish(base_offset, log_append_time_ms, error, record_errors)
        futs = b.callback_futures
        if futs is not None:
            b.callback_futures = None
            for f in futs:
                f.fire()

    def reenqueue(self, ProducerBatch b, int64_t retry_at_ms, bint follow_earlier=False):
        """Puts a batch that failed with a retriable error back at the head of its queue, to be
        resent after retry_at_ms (monotonic). With follow_earlier, a sequenced batch that lands
        behind an earlier sequence of its partition is resent right after that batch instead:
        it cannot go first anyway, and a backoff of its own would only add to the earlier
        batch's (its error, OUT_OF_ORDER_SEQUENCE_NUMBER, echoed the earlier failure)."""
        cdef ProducerBatch prev
        b.in_flight = False
        b.retry_at_ms = retry_at_ms
        prev = self.requeue_chain(b.queue, b, b, 1,
                                  -1 if self.sequences is None else self.sequences.order_of(b))
        if follow_earlier and prev is not None:
            b.retry_at_ms = prev.retry_at_ms

    cdef ProducerBatch requeue_chain(self, PartitionQueue q, ProducerBatch first,
                                     ProducerBatch last, int32_t count, Py_ssize_t order):
        """Puts `count` linked batches, first to last, back at the front of q; returns the
        queued batch they went behind (one of an earlier sequence), or None. `order` is the
        chain's place in its partition's sequence window (-1: no sequence): the chain goes
        behind every queued batch with an earlier place."""
        cdef ProducerBatch prev = None, cur = q.head
        cdef Py_ssize_t o
        if order >= 0:
            # Idempotence: retries go back in sequence order, ahead of batches without one,
            # whatever order their responses came back in.
            while cur is not None:
                o = self.sequences.order_of(cur)
                if o < 0 or o > order:
                    break
                prev = cur
                cur = cur.next
        last.next = cur
        if prev is None:
            q.head = first
        else:
            prev.next = first
        if cur is None:
            q.tail = last
        q.batch_count += count
        return prev

    def split_batch(self, ProducerBatch b):
        """The broker refused b, a batch of several records, as too large (MESSAGE_TOO_LARGE):
        re-encodes its records into smaller batches, puts them at the front of its partition's
        queue in record order and returns them, oldest first (Java's splitAndReenqueue).

        b must be drained and not yet requeued or completed. A piece holds at most batch.size
        bytes and at most half of the smallest batch the topic was refused (a larger record
        goes alone), so a piece the broker refuses again is split again, down to single
        records.
        Compressed pieces are sized by b's measured compression ratio. The pieces take over b's
        sequence range (same producer id and epoch), its creation time (delivery.timeout.ms
        still counts from b's first record), its futures and callbacks and its buffer.memory;
        b keeps no records and is finished only through its pieces (split_into). The topic's
        compression estimate goes up to no compression (or b's ratio if worse)."""
        cdef RecordBatchBuilder big = b.builder
        cdef RecordBatchBuilder builder
        cdef ColumnsHolder holder = ColumnsHolder()
        cdef RecordColumns *c = &holder.cols
        cdef PartitionQueue q = b.queue
        cdef TopicState t = self._topics.get(b.topic)
        cdef ProducerBatch piece, last = None
        cdef DeliveryFuture f
        cdef list pieces = []
        cdef Py_ssize_t n, pos = 0, r, limit, body, first_bytes, charged = 0, queued = 0
        cdef int32_t seq
        cdef double ratio = 1.0
        if not b.in_flight or b.done or big is None or b.record_count < 2:
            # queued (its queue still links it), finished, or one record: nothing to split
            raise IllegalStateError(f"{b!r} cannot be split: only a drained, unfinished batch "
                                    f"of several records can")
        holder.fill_from_batch(big)
        n = c.count
        # The broker does not say its limit (the topic's max.message.bytes). Halving at each
        # refusal (Java's KAFKA-8350 fix) finds it in log2(records) rounds at most; halving the
        # smallest size the topic refused, not b's, spares the other pieces of an earlier split
        # those rounds.
        limit = big._size_bytes
        if t is not None:
            if t.refused_bytes == 0 or limit < t.refused_bytes:
                t.refused_bytes = limit
            limit = t.refused_bytes
        limit = min(self._batch_size_bytes, limit // 2)
        if limit <= BATCH_HEADER_BYTES:
            limit = BATCH_HEADER_BYTES + 1
        if big._codec != CODEC_NONE:
            # The pieces hold b's records: they are sized by what those really compressed to.
            # The topic's later batches assume no compression until batches show better, as
            # Java resets its estimator, so they are not built too big again.
            if big._ratio > 0:
                ratio = big._ratio
            if t is not None and t.compression_ratio < max(1.0, ratio):
                t.compression_ratio = max(1.0, ratio)
        seq = big._base_sequence
        while pos < n:
            body = record_body_size(0x7FFFFFFF, 0x7FFFFFFF, c.key_len[pos], c.value_len[pos],
                                    c.headers_len[pos], c.header_count[pos])
            first_bytes = BATCH_HEADER_BYTES + uvarint_size(zigzag32(<int32_t>body)) + body
            builder = RecordBatchBuilder(
                limit, max_bytes=self._max_request_size_bytes, compression=big._codec,
                compression_level=big._level or None, ratio_estimate=ratio,
                producer_id=big._producer_id, producer_epoch=big._producer_epoch,
                base_sequence=seq, transactional=big._transactional,
                initial_capacity=max(limit, first_bytes), pool=self._pool)
            with nogil:
                r = builder.append_columns(c, pos, n)
            if r <= 0:
                if r == APPEND_NO_MEMORY:
                    raise MemoryError()
                raise IllegalStateError(f"record {pos} of {b!r} does not fit in an empty batch")
            builder.shrink_to_fit()
            piece = ProducerBatch.__new__(ProducerBatch)
            piece.topic = b.topic
            piece.partition = b.partition
            piece.queue = q
            piece.builder = builder
            piece.created_ms = b.created_ms
            piece.closed = True
            piece.record_count = <int32_t>r
            piece.base_offset = -1
            piece.log_append_time_ms = -1
            piece.split_first = <int32_t>pos
            piece.reserved_bytes = builder._capacity_bytes
            if last is not None:
                last.next = piece
            last = piece
            pieces.append(piece)
            charged += builder._capacity_bytes
            queued += builder._size_bytes
            if seq >= 0:
                seq = add_sequence(seq, <int32_t>r)
            pos += r
        # The pieces are complete: hand over b's callbacks, queue place and memory.
        futs = b.callback_futures
        b.callback_futures = None
        if futs is not None:
            for fut in futs:
                f = <DeliveryFuture>fut
                piece = piece_for(pieces, f.index)
                f.index -= piece.split_first
                f.batch = piece
                if piece.callback_futures is None:
                    piece.callback_futures = [f]
                else:
                    piece.callback_futures.append(f)
        # The pieces are not in the window yet (the sender's Sequences.on_split puts them in
        # b's place next): they go where b's place in it says, behind pieces of an earlier
        # split still queued, or the queue's head would be a later sequence than what must
        # go out first, and the partition would wait for it forever.
        self.requeue_chain(q, <ProducerBatch>pieces[0], last, <int32_t>len(pieces),
                           -1 if self.sequences is None else self.sequences.order_of(b))
        q.queued_bytes += queued
        for piece in pieces:
            self._incomplete.add(piece)
        self._incomplete.discard(b)
        self._buffer_used_bytes += charged
        self.release_memory(b.reserved_bytes)
        b.reserved_bytes = 0
        b.in_flight = False
        b.closed = True
        b.builder = None        # the buffer goes once the request's views of it are gone
        b.split_into = pieces   # last: futures that follow it find the pieces complete
        ev = b.done_event
        if ev is not None:
            ev.set()            # wakes wait(), which then waits for the pieces
        return list(pieces)

    def expire(self, int64_t now, int64_t delivery_timeout_ms):
        """Removes and returns the queued batches that have waited delivery.timeout.ms since
        their first record; the caller fails them."""
        cdef list out = []
        cdef PartitionQueue q
        cdef ProducerBatch b
        for q in self._queues:
            b = q.head
            while b is not None and now - b.created_ms >= delivery_timeout_ms:
                q.head = b.next
                if q.head is None:
                    q.tail = None
                b.next = None
                b.closed = True
                q.batch_count -= 1
                out.append(b)
                b = q.head
        return out

    def oldest_queued_ms(self):
        """created_ms of the oldest queued batch, -1 when none is queued."""
        cdef PartitionQueue q
        cdef int64_t oldest = -1
        for q in self._queues:
            if q.head is not None and (oldest < 0 or q.head.created_ms < oldest):
                oldest = q.head.created_ms
        return oldest

    def take_all_queued(self):
        """Removes and returns every queued batch (close without flushing, fatal errors)."""
        cdef list out = []
        cdef PartitionQueue q
        cdef ProducerBatch b
        for q in self._queues:
            b = q.head
            while b is not None:
                out.append(b)
                nxt = b.next
                b.next = None
                b.closed = True
                b = nxt
            q.head = q.tail = None
            q.batch_count = 0
            q.queued_bytes = 0
        return out

    def take_unsent_queued(self):
        """Removes and returns every queued batch that was never sent (an aborted transaction
        drops them). Batches sent before stay: their sequences are taken, so they go out and
        are answered (the abort marker then discards them), as Java does."""
        cdef list out = []
        cdef PartitionQueue q
        cdef ProducerBatch b, keep
        for q in self._queues:
            keep = None
            b = q.head
            while b is not None and b.seq_status != SEQ_NONE:
                keep = b
                b = b.next
            if b is None:
                continue
            if keep is None:
                q.head = q.tail = None
            else:
                keep.next = None
                q.tail = keep
            while b is not None:
                out.append(b)
                q.batch_count -= 1
                q.queued_bytes -= b.builder._uncompressed_bytes if b.builder._built else b.builder._size_bytes
                nxt = b.next
                b.next = None
                b.closed = True
                b = nxt
            if q.head is None or q.queued_bytes < 0:
                q.queued_bytes = 0
        return out

    def incomplete_batches(self) -> list:
        return list(self._incomplete)

    def begin_flush(self):
        self._flushes += 1
        self._sender_sleeping = False
        self._wakeup()

    def end_flush(self):
        self._flushes -= 1

    def prepare_sleep(self, int64_t timeout_ms, int64_t now, blocked=()):
        """Called by the sender right before it blocks: returns how long it may sleep (the given
        timeout, shortened to the next batch's linger/backoff deadline) and, atomically with that
        decision, lets send() know it must wake the sender for anything sooner. Batches led by
        a `blocked` node (no room for another request, connecting, throttled) do not shorten
        the sleep: socket events or the caller's timeout end it."""
        cdef PartitionQueue q
        cdef ProducerBatch b
        cdef int64_t d
        for q in self._queues:
            b = q.head
            if b is None or q.leader_id < 0 or q.muted or q.leader_id in blocked:
                continue
            if self.sendable(b, now):
                timeout_ms = 0
                break
            d = b.retry_at_ms - now if b.retry_at_ms > now else b.created_ms + self._linger_ms - now
            if d < timeout_ms:
                timeout_ms = d
        if timeout_ms < 0:
            timeout_ms = 0
        self._sender_wake_at_ms = now + timeout_ms
        self._sender_sleeping = timeout_ms > 0
        return timeout_ms

    def end_sleep(self):
        self._sender_sleeping = False

    # -- state the Python layer reads or sets --

    @property
    def partitioner(self):
        """The configured partitioner: a built-in's name (str) or the Python partitioner."""
        pt = self._partitioning
        return pt.plugin if pt.kind == PARTITIONER_PYTHON else pt.name

    @property
    def closed(self) -> bool:
        return self._closed

    def _close_for_sends(self):
        self._closed = True

    def _fail_for_sends(self, error):
        """A fatal error (failed authentication): every later send() raises a copy of it."""
        if self._fatal_error is None:
            self._fatal_error = error
        self._closed = True

    @property
    def fatal_error(self):
        """The error that ended the producer (an AuthenticationError), or None."""
        return self._fatal_error

    def _set_draining_all(self, bint value):
        self._draining_all = value

    @property
    def buffer_used_bytes(self) -> int:
        return self._buffer_used_bytes

    @property
    def buffer_total_bytes(self) -> int:
        return self._buffer_total_bytes

    @property
    def memory_waiters(self) -> int:
        return self._memory_waiters

    @property
    def queued_batch_count(self) -> int:
        cdef PartitionQueue q
        return sum(q.batch_count for q in self._queues)

    def _set_in_transaction(self, bint value):
        self._in_transaction = value

    def _set_implicit_txn_partitions(self, bint value):
        self._implicit_txn_partitions = value

    def take_new_txn_partitions(self) -> list:
        """The queues that got their first batch of the current transaction since the last call
        (their txn_state is TXN_PENDING, or TXN_ADDED with transactions v2)."""
        out = self._txn_new_partitions
        self._txn_new_partitions = []
        return out

    def reset_txn_partitions(self):
        """A transaction ended: every partition must join the next one anew."""
        cdef PartitionQueue q
        for q in self._queues:
            q.txn_state = TXN_NOT_ADDED
        self._txn_new_partitions = []

    @property
    def producer_id(self) -> int:
        """The producer id (-1 until InitProducerId answered, or without idempotence)."""
        return -1 if self.sequences is None else self.sequences.producer_id

    @property
    def producer_epoch(self) -> int:
        return -1 if self.sequences is None else self.sequences.producer_epoch
