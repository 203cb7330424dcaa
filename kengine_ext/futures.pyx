# What send() and send_many() hand back (part of kengine_ext._core; fields in futures.pxd):
# RecordMetadata, DeliveryFuture (one record), BulkFuture and BulkResult (one send_many()).
# A future holds its record's batch and reads the outcome from it; it follows the batch to its
# pieces when the batch was split.

import logging
import time

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

from kengine_ext.errors import KafkaTimeoutError

__all__ += ["RecordMetadata", "DeliveryFuture", "BulkFuture", "BulkResult"]

_log = logging.getLogger("kengine.producer")


cdef object loop_waiter(ProducerBatch b):
    # The asyncio side lives in a module of its own, imported by the first await that has
    # to wait (a program that never awaits never imports asyncio through kengine).
    from kengine_ext.loop_bridge import wait_for_batch
    check_owner(b.owner_pid, "await of a future")
    return wait_for_batch(b)


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


cdef inline DeliveryFuture new_delivery_future(ProducerBatch b, int32_t index,
                                               int64_t timestamp_ms, int32_t key_size,
                                               int32_t value_size, object callbacks):
    """The future of record `index` of b (send()); callbacks: None or the on_delivery callable
    (the caller then hands the future to b.add_callback_future())."""
    cdef DeliveryFuture fut = DeliveryFuture.__new__(DeliveryFuture)
    fut.batch = b
    fut.index = index
    fut.timestamp_ms = timestamp_ms
    fut.key_size = key_size
    fut.value_size = value_size
    fut.callbacks = callbacks
    return fut


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

    cdef int follow_split(self, ProducerBatch piece) except -1:
        """Its batch was split (RecordAccumulator.split_batch) and piece holds its record now:
        futures with callbacks move at once, so that the piece runs them."""
        self.index -= piece.split_first
        self.batch = piece
        return 0

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
            if not b.wait(timeout, "DeliveryFuture.result()"):
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

    def __await__(self):
        """``await fut`` in a coroutine: the record's RecordMetadata, or raises its error,
        without blocking the event loop. Cancelling the awaiting task cancels only the wait:
        the record stays sent."""
        cdef ProducerBatch b = self.resolve()
        if b.done:   # no generator: an awaitable that finishes at once (aio_send.pyx)
            err = b.record_error(self.index)
            return ready(None, err) if err is not None else ready(self.metadata(), None)
        return self._outcome()

    def _outcome(self):
        """__await__ of a record whose batch is not done: waits on the loop."""
        cdef ProducerBatch b = self.resolve()
        while not b.done:
            # one hand-off per batch reaches the loop (loop_bridge), not one per record
            yield from loop_waiter(b)
            b = self.resolve()
        err = b.record_error(self.index)
        if err is not None:
            raise err
        return self.metadata()

    def _pending_batch(self):
        """The batch holding the record while it has no outcome yet, else None."""
        cdef ProducerBatch b = self.resolve()
        return None if b.done else b

    def add_callback(self, fn):
        """Calls fn(error, metadata) when the outcome is known (now, if it already is)."""
        cdef ProducerBatch b = self.resolve()
        if b.done:
            err = b.record_error(self.index)
            run_callback(fn, err, None if err is not None else self.metadata(), b)
            return
        check_owner(b.owner_pid, "DeliveryFuture.add_callback()")   # it would never run
        if self.callbacks is None:
            self.callbacks = fn
            b.add_callback_future(self)
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
        cdef char *base = PyBytes_AS_STRING(self._record_info)
        cdef int64_t *ts = <int64_t *>base
        cdef int32_t *ks = <int32_t *>(base + self.record_count * sizeof(int64_t))
        cdef int32_t *vs = ks + self.record_count
        for b, first, indices in self._segments:
            for k, i in enumerate(memoryview(indices).cast("i")):
                if b.record_error(first + k) is None:
                    md = RecordMetadata.__new__(RecordMetadata)
                    md.topic = b.topic
                    md.partition = b.partition
                    md.offset = b.base_offset + first + k if b.base_offset >= 0 else -1
                    if b.log_append_time_ms >= 0:
                        md.timestamp = b.log_append_time_ms
                        md.timestamp_type = 1
                    else:
                        md.timestamp = ts[i]
                        md.timestamp_type = 0
                    md.serialized_key_size = ks[i]
                    md.serialized_value_size = vs[i]
                    out[i] = md
        return out

    def __repr__(self):
        return (f"BulkResult({self.topic!r}, records={self.record_count}, "
                f"failed={len(self.errors)})")


cdef BulkFuture new_bulk_future(str topic, Py_ssize_t record_count):
    cdef BulkFuture fut = BulkFuture.__new__(BulkFuture)
    fut.topic = topic
    fut.record_count = record_count
    fut._segments = []
    fut._record_info = PyBytes_FromStringAndSize(
        NULL, record_count * (sizeof(int64_t) + 2 * sizeof(int32_t)))
    return fut


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

    cdef int note_records(self, const RecordColumns *c, Py_ssize_t start,
                          Py_ssize_t n) except -1:
        """Records start..start+n-1 of the call, as gathered in c (before any regrouping):
        their timestamps and serialized sizes, which their RecordMetadata reports."""
        cdef char *base = PyBytes_AS_STRING(self._record_info)
        cdef int64_t *ts = <int64_t *>base
        cdef int32_t *ks = <int32_t *>(base + self.record_count * sizeof(int64_t))
        cdef int32_t *vs = ks + self.record_count
        cdef Py_ssize_t j
        for j in range(n):
            ts[start + j] = c.timestamp_ms[j] if c.timestamp_ms != NULL \
                else c.default_timestamp_ms
            ks[start + j] = <int32_t>c.key_len[j] if c.key_ptr[j] != NULL else -1
            vs[start + j] = <int32_t>c.value_len[j] if c.value_ptr[j] != NULL else -1
        return 0

    cdef int add_segment(self, ProducerBatch b, int32_t first, const Py_ssize_t *order,
                         Py_ssize_t start, Py_ssize_t lo, Py_ssize_t count) except -1:
        """Records start + order[lo:lo + count] of the call went into b from offset delta
        first on: kept as int32 indices in one bytes object, no Python object per record."""
        cdef bytes idx = PyBytes_FromStringAndSize(NULL, count * sizeof(int32_t))
        cdef int32_t *dst = <int32_t *>PyBytes_AS_STRING(idx)
        cdef Py_ssize_t k
        for k in range(count):
            dst[k] = <int32_t>(start + order[lo + k])
        self._segments.append((b, first, idx))
        return 0

    cdef tuple sort_refusals(self):
        """Puts the refusals in input order once the call is done; returns the first (index,
        error), or None when nothing was refused."""
        if self._refused is None:
            return None
        self._refused = dict(sorted(self._refused.items()))
        return next(iter(self._refused.items()))

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
            if not b.done and not b.wait(remaining, "BulkFuture.result()"):   # follows splits
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
        r._record_info = self._record_info
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

    def __await__(self):
        """``await bulk`` in a coroutine: the BulkResult (as result()), without blocking the
        event loop; cancelling the awaiting task cancels only the wait."""
        cdef ProducerBatch b
        for seg in self._segments:
            b = first_unsettled(<ProducerBatch>seg[0])
            while b is not None:
                yield from loop_waiter(b)
                b = first_unsettled(<ProducerBatch>seg[0])
        return self.result(0)

    def add_done_callback(self, fn):
        """Calls fn(BulkResult) once every record of the call has its outcome: on the sender
        thread that settled the last batch, or now when they all have one. Interceptors'
        on_acknowledgement runs from here; no per-record work until then."""
        cdef ProducerBatch b
        for seg in self._segments:
            b = first_unsettled(<ProducerBatch>seg[0])
            while b is not None:
                check_owner(b.owner_pid, "BulkFuture.add_done_callback()")   # it would never run
                # on completion (or a split) look again: a later batch may still be pending
                if b.add_done_listener(lambda _batch, _self=self, _fn=fn:
                                       _self.add_done_callback(_fn)):
                    return
                b = first_unsettled(<ProducerBatch>seg[0])   # settled or split meanwhile
        try:
            fn(self.result(0))
        except BaseException:
            _log.exception("done callback %r of send_many() to %r raised; continuing",
                                   fn, self.topic)

    def refused(self) -> dict:
        """{input index: error} for the records the call itself refused (a copy)."""
        return dict(self._refused) if self._refused is not None else {}

    def __repr__(self):
        return f"BulkFuture({self.topic!r}, records={self.record_count}, done={self.done()})"
