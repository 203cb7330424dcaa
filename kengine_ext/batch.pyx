# ProducerBatch and the following of split batches (part of kengine_ext._core; fields and their
# writers in batch.pxd). A batch is the accumulator's while queued, the sender's while in
# flight; futures hold it until their record's outcome is read.

import logging
import threading
import time

__all__ += ["ProducerBatch"]

_batch_log = logging.getLogger("kengine.producer")


cdef void notify_listeners(ProducerBatch b):
    # Listeners are the event loops' bridges; one raising must not take the sender down.
    cdef list listeners = b.done_listeners
    b.done_listeners = None
    for fn in listeners:
        try:
            fn(b)
        except BaseException:
            _batch_log.exception("done listener %r of a batch of %s-%d raised; continuing",
                                 fn, b.topic, b.partition)


cdef ProducerBatch new_batch(PartitionQueue q, RecordBatchBuilder builder, int64_t created_ms,
                             int32_t split_first, long owner_pid):
    """A batch of q holding builder's records, not queued yet (the accumulator queues it and
    accounts its memory)."""
    cdef ProducerBatch b = ProducerBatch.__new__(ProducerBatch)
    b.topic = q.topic
    b.partition = q.partition
    b.queue = q
    b.builder = builder
    b.created_ms = created_ms
    b.split_first = split_first
    b.owner_pid = owner_pid
    b.base_offset = -1
    b.log_append_time_ms = -1
    return b


@cython.final
cdef class ProducerBatch:
    """A batch of records for one partition, from its first append until the broker answers.
    Owned by the accumulator while queued, by the sender while in flight."""

    cdef int finish(self, int64_t base_offset, int64_t log_append_time_ms, object error,
                    object record_errors) except -1:
        self.base_offset = base_offset
        self.log_append_time_ms = log_append_time_ms
        self.error = error
        self.record_errors = record_errors or None
        self.done = True           # before the event, so a waiter that misses the event sees it
        self.builder = None        # frees the batch's buffer; futures keep only this object
        ev = self.done_event
        if ev is not None:
            ev.set()
        if self.done_listeners is not None:
            notify_listeners(self)
        return 0

    cdef object record_error(self, int32_t index):
        # a record the broker named (KIP-467) fails with its own error; the batch's error
        # covers the others
        cdef object own
        if self.record_errors is not None:
            own = self.record_errors.get(index)
            if own is not None:
                return own
        return self.error

    cdef int add_callback_future(self, DeliveryFuture f) except -1:
        """f has callbacks: they run when the batch completes (complete() takes the list)."""
        if self.callback_futures is None:
            self.callback_futures = [f]
        else:
            self.callback_futures.append(f)
        return 0

    cdef list take_callback_futures(self):
        """The futures with callbacks, in append order (None if none); the batch keeps none,
        which breaks the batch -> future -> batch cycle."""
        cdef list futs = self.callback_futures
        self.callback_futures = None
        return futs

    cdef int hand_over(self, list pieces) except -1:
        """The batch was split: its records are in pieces (complete and queued), which take
        over its futures; it keeps none of its bytes."""
        self.builder = None        # the buffer goes once the request's views of it are gone
        self.split_into = pieces   # last: futures that follow it find the pieces complete
        ev = self.done_event
        if ev is not None:
            ev.set()               # wakes wait(), which then waits for the pieces
        if self.done_listeners is not None:
            notify_listeners(self)     # their waiters follow the records into the pieces
        return 0

    def add_done_listener(self, fn) -> bool:
        """Calls fn(batch) once, on the sender thread, when the batch completes or is split
        (then its records are followed into split_into). False, without calling it, when that
        has happened already. fn must be quick and must not raise."""
        if self.done or self.split_into is not None:
            return False
        if self.done_listeners is None:
            self.done_listeners = [fn]
        else:
            self.done_listeners.append(fn)
        return True

    def wait(self, timeout=None, str call="waiting for a batch") -> bool:
        """Blocks until every record of the batch has its outcome: the batch is done, or it
        was split (split_into) and every batch it was split into is. False on timeout.
        Raises ProducerForkedError, naming `call`, in a process other than its producer's
        (nothing there would ever complete it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.done and self.split_into is None:
            check_owner(self.owner_pid, call)
            ev = self.done_event
            if ev is None:
                ev = threading.Event()
                if self.done_event is None:
                    self.done_event = ev
                else:
                    ev = self.done_event
            # finish() and hand_over() change the state before they look for the event: one
            # made meanwhile is seen set, or the state is seen changed here
            if not self.done and self.split_into is None and not ev.wait(timeout):
                return False
        if self.split_into is None:
            return True
        for piece in self.split_into:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not (<ProducerBatch>piece).wait(remaining, call):
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


# ---- following splits (RecordAccumulator.split_batch): futures keep the batch they were given ----

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


cdef ProducerBatch first_unsettled(ProducerBatch b):
    """The first batch, following splits, holding records of b that have no outcome yet;
    None when every record of b has one."""
    cdef ProducerBatch p
    if b.split_into is None:
        return None if b.done else b
    for piece in b.split_into:
        p = first_unsettled(<ProducerBatch>piece)
        if p is not None:
            return p
    return None


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
