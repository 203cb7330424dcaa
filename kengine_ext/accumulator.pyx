# The record accumulator (part of kengine_ext._core; fields and their writers in
# accumulator.pxd): what is known of each topic, one queue of batches per partition, the
# appends of the send path, and the sender's side: ready(), drain(), seal(), complete(),
# reenqueue(), split_batch(), expire(), the sleep/wake handshake and the transaction's
# partitions. The Python sender, metadata and transaction manager hold this object, never the
# send path. Batches are sealed (compressed, CRC'd) by the sender thread when drained, with the
# GIL released for the byte work.

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject

from kengine_ext.errors import IllegalStateError, KafkaTimeoutError, RecordTooLargeError

__all__ += ["RecordAccumulator", "PartitionQueue", "TopicState"]

# Java's CompressionRatioEstimator steps.
cdef double RATIO_IMPROVING_STEP = 0.005
cdef double RATIO_DETERIORATE_STEP = 0.05


cdef inline Py_ssize_t columns_bytes(const RecordColumns *cols, Py_ssize_t lo, Py_ssize_t hi,
                                      Py_ssize_t cap) noexcept:
    """An upper bound of the bytes records [lo, hi) of cols take in a batch, with its header:
    each record's own bytes plus RECORD_OVERHEAD_MAX_BYTES of varints and attributes. With a
    cap > 0 (batch.size): between OPEN_BATCH_MIN_BYTES and cap, unless the first record alone
    needs more (it may go alone, as in send())."""
    cdef Py_ssize_t total = BATCH_HEADER_BYTES, i, first = 0
    for i in range(lo, hi):
        total += cols.key_len[i] + cols.value_len[i] + RECORD_OVERHEAD_MAX_BYTES
        if cols.headers_ptr != NULL:
            total += cols.headers_len[i]
        if i == lo:
            first = total
        if cap > 0 and total >= cap:
            break
    if cap > 0:
        if total > cap:
            total = cap if cap > first else first
        elif total < OPEN_BATCH_MIN_BYTES:
            total = OPEN_BATCH_MIN_BYTES if OPEN_BATCH_MIN_BYTES < cap else cap
    return total


@cython.final
cdef class PartitionQueue:
    """Batches of one partition waiting to be sent, oldest first."""

    def __cinit__(self, str topic, int32_t partition):
        self.topic = topic
        self.partition = partition
        self.leader_id = -1
        self.leader_epoch = -1
        self.sequences = PartitionSequences(topic, partition)
        self.open_bytes = OPEN_BATCH_MIN_BYTES

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


@cython.final
cdef class TopicState:
    """What the hot path knows of a topic: its partitions' queues and partitioner state."""

    def __cinit__(self, str name):
        self.name = name
        self.queues = []
        self.compression_ratio = 1.0
        self.partitioning = TopicPartitioner.__new__(TopicPartitioner)

    def __repr__(self):
        return f"TopicState({self.name!r}, partitions={self.num_partitions})"


@cython.final
cdef class RecordAccumulator:
    """The batches waiting to be sent, by partition, and the sender's handle on them (Java's
    RecordAccumulator). The send path appends records through it; the sender thread drains,
    completes, retries, splits and expires batches through it; metadata updates its topics."""

    def __cinit__(self, BufferMemory memory not None, Partitioning partitioning not None, *,
                  int64_t linger_ms, Py_ssize_t batch_size, Py_ssize_t max_request_size,
                  compression, compression_level, bint idempotent, bint transactional,
                  wakeup, str client_id=""):
        self.memory = memory
        self.partitioning = partitioning
        self.owner_pid = memory.owner_pid
        self._linger_ms = linger_ms
        # batch.size 0 disables batching: a batch that only ever takes its first record
        self.batch_size_bytes = max(batch_size, BATCH_HEADER_BYTES + 1)
        self.max_request_size_bytes = max_request_size
        self._codec = codec_id(compression)
        self._level = validate_compression_level(self._codec, compression_level) or 0
        self._pool = BufferPool(self.batch_size_bytes, memory.total_bytes // self.batch_size_bytes)
        self.transactional = transactional
        self.sequences = Sequences(transactional=transactional, client_id=client_id) \
            if idempotent else None
        self._wakeup = wakeup
        self._topics = {}
        self._queues = []
        self._active = []
        self._drain_starts = {}
        self._incomplete = set()
        self._txn_new_partitions = []

    # -- appends (the send path, on user threads) --

    cdef inline ProducerBatch append(self, PartitionQueue q, int64_t ts, const char *kp,
                                     Py_ssize_t kl, const char *vp, Py_ssize_t vl,
                                     const char *hp, Py_ssize_t hl, int32_t hc,
                                     Py_ssize_t record_bytes, Py_ssize_t *index,
                                     Py_ssize_t *est_before, bint *new_batch):
        """Appends one record (its fields as borrowed bytes; record_bytes: its size bound) to
        q's open batch, opening one when q has none or it is full, which reserves buffer.memory
        (waiting up to max.block.ms for it, outside any critical section). Returns the batch,
        with the record's offset delta in *index, the batch's estimated size before the record
        in *est_before and *new_batch set when it opened the batch: the caller then calls
        wake_for() once it holds the record's future, so no callback is registered too late."""
        cdef ProducerBatch b = q.tail
        cdef Py_ssize_t r
        if b is not None and not b.closed:   # the common case, inlined into send()
            est_before[0] = b.builder.estimated_size_c()
            r = b.builder.append_record(ts, kp, kl, vp, vl, hp, hl, hc)
            if r >= 0:
                b.record_count += 1
                q.queued_bytes += record_bytes
                index[0] = r
                return b
        return self.append_to_new_batch(q, ts, kp, kl, vp, vl, hp, hl, hc, record_bytes, index,
                                        est_before, new_batch)

    cdef ProducerBatch append_to_new_batch(self, PartitionQueue q, int64_t ts, const char *kp,
                                           Py_ssize_t kl, const char *vp, Py_ssize_t vl,
                                           const char *hp, Py_ssize_t hl, int32_t hc,
                                           Py_ssize_t record_bytes, Py_ssize_t *index,
                                           Py_ssize_t *est_before, bint *new_batch):
        """append() when q's open batch is missing or full: close it, open another."""
        cdef ProducerBatch b
        cdef Py_ssize_t r, reserved = 0
        try:
            while True:
                b = q.tail
                if b is not None and not b.closed:
                    est_before[0] = b.builder.estimated_size_c()
                    r = b.builder.append_record(ts, kp, kl, vp, vl, hp, hl, hc)
                    if r >= 0:
                        break
                    if r == APPEND_NEEDS_ROOM and self.grow_batch(b, record_bytes):
                        continue
                    if r != APPEND_FULL and r != APPEND_NEEDS_ROOM:
                        raise MemoryError()
                    # full, or buffer.memory cannot let it grow now: it goes out as it is
                    b.closed = True
                    self.maybe_wake_sender(0)
                b = self.open_batch(q, record_bytes, mono_ms(), reserved)
                if b is None:
                    # buffer.memory is exhausted (or others wait for it first): block here,
                    # outside any critical section, then look at the queue again. Meanwhile
                    # every batch is sendable (sendable()): wake the sender to send them.
                    self.maybe_wake_sender(0)
                    reserved = self.memory.wait_for(self.batch_bytes_for(q, record_bytes),
                                                    q.topic)
                    continue
                reserved = 0  # open_batch used it
                new_batch[0] = True
                est_before[0] = 0
                r = b.builder.append_record(ts, kp, kl, vp, vl, hp, hl, hc)
                if r < 0:
                    raise MemoryError()
                break
        finally:
            if reserved:  # waited for memory, then found room in a batch another thread opened
                self.memory.release(reserved)
        b.record_count += 1
        q.queued_bytes += record_bytes
        index[0] = r
        return b

    cdef object append_columns(self, PartitionQueue q, BulkFuture fut, RecordColumns *cols,
                               Py_ssize_t *order, Py_ssize_t start, Py_ssize_t lo, Py_ssize_t hi):
        """Appends grouped records [lo, hi) of one partition (send_many()): first into its open
        batch, with the GIL held (a small call must not leave a half-empty batch behind), then
        into new batches filled without the GIL before they join the queue; each batch's share
        is recorded in fut. Returns None, or the KafkaTimeoutError of a wait for buffer.memory
        that ran out of max.block.ms: the records not appended by then are refused with it.

        A new batch reserves what its records take (an upper bound, at most batch.size), not
        batch.size: on a topic of a thousand partitions a call puts a few records in each, and
        reserving batch.size for each of those batches exhausted buffer.memory with batches
        nearly empty, which then all went out as they were (sendable()). Batches grow, as
        send()'s do, only by bytes buffer.memory has (grow_batch())."""
        cdef ProducerBatch b = q.tail
        cdef Py_ssize_t r, n, need, reserved
        if b is not None and not b.closed:
            while lo < hi:
                r = b.builder.append_columns(cols, lo, hi)
                if r < 0 and r != APPEND_FULL and r != APPEND_NEEDS_ROOM:
                    raise MemoryError()
                if r > 0:
                    fut.add_segment(b, b.record_count, order, start, lo, r)
                    b.record_count += <int32_t>r
                    lo += r
                if lo < hi and not (b.builder._columns_stop == APPEND_NEEDS_ROOM and
                                    self.grow_batch(b, columns_bytes(cols, lo, lo + 1, 0))):
                    b.closed = True   # full, or buffer.memory cannot let it grow now
                    self.maybe_wake_sender(0)
                    break
        while lo < hi:
            need = columns_bytes(cols, lo, hi, self.batch_size_bytes)
            if self.memory.try_take(need, 0):
                reserved = need
            else:
                self.maybe_wake_sender(0)
                try:
                    reserved = self.memory.wait_for(need, q.topic)
                except KafkaTimeoutError as e:
                    timeout = e
                    for r in range(lo, hi):
                        fut.refuse(start + order[r], timeout)
                    return timeout
            b = self.make_batch(q, need, mono_ms(), True)
            b.reserved_bytes = reserved
            n = 0
            while True:
                with nogil:
                    r = b.builder.append_columns(cols, lo + n, hi)
                if r < 0 or r == 0 and n == 0:
                    if n > 0:
                        break   # the record that failed opens the next batch, and fails there
                    self.memory.release(b.reserved_bytes)
                    b.reserved_bytes = 0
                    raise MemoryError() if r == APPEND_NO_MEMORY else RecordTooLargeError(
                        f"a record does not fit in an empty batch of max.request.size "
                        f"({self.max_request_size_bytes}) bytes")
                n += r
                # need covers the records up to batch.size; a compressed batch's raw records
                # may pass it (APPEND_NEEDS_ROOM), by bytes buffer.memory has now
                if lo + n >= hi or not (b.builder._columns_stop == APPEND_NEEDS_ROOM and
                                        self.grow_batch(b, columns_bytes(cols, lo + n,
                                                                         lo + n + 1, 0))):
                    break
            self.enqueue(q, b)
            self._incomplete.add(b)
            fut.add_segment(b, b.record_count, order, start, lo, n)
            b.record_count += <int32_t>n
            lo += n
            if lo < hi:
                b.closed = True
            self.maybe_wake_sender(0 if b.closed else b.created_ms + self._linger_ms)
        return None

    cdef Py_ssize_t batch_bytes_for(self, PartitionQueue q, Py_ssize_t record_bytes) noexcept:
        """What a new batch of q starts with: q.open_bytes, or more for a large record."""
        cdef Py_ssize_t need = record_bytes + BATCH_HEADER_BYTES
        cdef Py_ssize_t start = q.open_bytes
        if start > self.batch_size_bytes:
            start = self.batch_size_bytes
        return need if need > start else start

    cdef bint grow_batch(self, ProducerBatch b, Py_ssize_t record_bytes) except -1:
        """b's buffer is full (APPEND_NEEDS_ROOM): doubles it (to batch.size at most, unless
        the record needs more or compression lets raw records pass batch.size) if buffer.memory
        has the bytes now, without waiting. False: it has not; the caller seals b."""
        cdef RecordBatchBuilder builder = b.builder
        cdef Py_ssize_t cap = builder._capacity_bytes
        cdef Py_ssize_t want = cap * 2
        cdef Py_ssize_t need = builder._size_bytes + record_bytes
        if cap < self.batch_size_bytes < want:
            want = self.batch_size_bytes
        if want < need:
            want = need
        if not self.memory.try_take(want - cap, 0):
            return False
        builder.grow(want)
        b.reserved_bytes += want - cap
        return True

    cdef ProducerBatch open_batch(self, PartitionQueue q, Py_ssize_t record_bytes, int64_t now,
                                  Py_ssize_t reserved):
        """A new batch at the tail of q, or None when buffer.memory cannot cover it now.
        reserved: bytes this caller already holds (it waited for them in BufferMemory)."""
        cdef Py_ssize_t need = self.batch_bytes_for(q, record_bytes)
        if not self.memory.try_take(need, reserved):
            return None
        cdef ProducerBatch b = self.make_batch(q, need, now, True)
        b.reserved_bytes = need
        self.enqueue(q, b)
        self._incomplete.add(b)
        return b

    cdef ProducerBatch make_batch(self, PartitionQueue q, Py_ssize_t capacity, int64_t now,
                                  bint owner_grows=False):
        """A batch for q, not yet queued; the caller accounts its memory (owner_grows: and
        grows its buffer, grow_batch())."""
        cdef TopicState t = <TopicState>self._topics[q.topic]
        cdef RecordBatchBuilder builder = RecordBatchBuilder(
            self.batch_size_bytes, max_bytes=self.max_request_size_bytes,
            compression=self._codec, compression_level=self._level or None,
            ratio_estimate=t.compression_ratio, transactional=self.transactional,
            initial_capacity=capacity, pool=self._pool)
        builder._owner_grows = owner_grows
        return new_batch(q, builder, now, 0, self.owner_pid)

    cdef int enqueue(self, PartitionQueue q, ProducerBatch b) except -1:
        if self.transactional and q.txn_state == TXN_NOT_ADDED:
            # The sender adds it to the transaction (AddPartitionsToTxn) before sending to it,
            # or, with transactions v2, the Produce request itself adds it.
            q.txn_state = TXN_ADDED if self._implicit_txn_partitions else TXN_PENDING
            self._txn_new_partitions.append(q)
        if q.tail is not None:
            q.tail.closed = True   # appends go to the newest batch only: keeps per-partition order
            q.tail.next = b
        else:
            q.head = b
            self._list_active(q)
        q.tail = b
        q.batch_count += 1
        return 0

    cdef int _list_active(self, PartitionQueue q) except -1:
        """q has a batch now: the sender's scans must see it."""
        if not q.listed:
            q.listed = True
            self._active.append(q)
        return 0

    cdef int _prune_active(self) except -1:
        """Drops the queues that hold no batch from _active, keeping the others' order (the
        order drain() rotates through), and moves each node's drain start with its queue (to
        the next one kept, if its own leaves), so that pruning does not reorder whose turn
        comes first. Runs twice per sender turn: no allocation for up to PRUNE_MARKS nodes."""
        cdef list active = self._active
        cdef dict starts = self._drain_starts
        cdef Py_ssize_t i, j = 0, n = len(active), m, marks_n = 0
        cdef Py_ssize_t mark_at[PRUNE_MARKS]
        cdef Py_ssize_t mark_to[PRUNE_MARKS]
        cdef PartitionQueue q
        cdef bint few = len(starts) <= PRUNE_MARKS
        if few:
            for start in starts.values():
                mark_at[marks_n] = start
                mark_to[marks_n] = -1
                marks_n += 1
        for i in range(n):
            for m in range(marks_n):
                if mark_at[m] == i:
                    mark_to[m] = j     # the queues kept before i: where i's queue (or the next) goes
            q = <PartitionQueue>active[i]
            if q.head is None:
                q.listed = False
            else:
                if j != i:
                    active[j] = q
                j += 1
        if j == n:
            return 0
        del active[j:]
        if few:
            m = 0
            for node in list(starts):
                starts[node] = mark_to[m] if mark_to[m] >= 0 else j
                m += 1
        else:
            starts.clear()   # more nodes than marks: every node starts over at the front
        return 0

    cdef int maybe_wake_sender(self, int64_t ready_at_ms) except -1:
        """Wakes the sender if it sleeps past the moment a batch becomes sendable."""
        if self._sender_sleeping and ready_at_ms < self._sender_wake_at_ms:
            self._sender_sleeping = False
            self._wakeup()
        return 0

    cdef int wake_for(self, ProducerBatch b) except -1:
        """A batch was opened: the sender must not sleep past its linger."""
        return self.maybe_wake_sender(b.created_ms + self._linger_ms)

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
        if b.closed:
            return True
        if self.held(b):
            return False
        if self._flushes > 0 or self._draining_all:
            return True
        if self.memory._waiters > 0:
            # a send waits for buffer.memory: what is queued goes now, to give it back sooner
            # (Java's RecordAccumulator.ready(), `exhausted`)
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
        self._prune_active()
        for q in self._active:
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
            elif b.retry_at_ms <= now and self.held(b):
                continue
            else:
                d = b.retry_at_ms - now if b.retry_at_ms > now else b.created_ms + self._linger_ms - now
                if delay < 0 or d < delay:
                    delay = d
        self.partitioning.nodes_ready(nodes, now, False)
        return nodes, delay, unknown or ()

    def drain(self, nodes, Py_ssize_t max_request_size, int64_t now):
        """Takes the sendable head batch of each partition led by one of `nodes`, at most
        max_request_size bytes per node (a lone larger batch still goes). Each node has its own
        rotating start in the list of queues holding batches (_active): the next drain for a
        node begins at the first of its partitions left out for lack of room, so none starves
        however many partitions it leads. Returns
        {node: [ProducerBatch]}; the batches are the caller's, in flight, until complete() or
        reenqueue(). With idempotence, a batch gets its sequence here, once it is certain to
        go (sequences.pyx)."""
        cdef dict out = {}
        cdef dict sizes = {}
        cdef dict starts = {}
        cdef dict skipped = {}
        cdef list active = self._active
        cdef Py_ssize_t n = len(active), i, size, used, start
        cdef int pass_
        cdef PartitionQueue q
        cdef ProducerBatch b
        cdef Sequences seqs = self.sequences
        cdef PyObject *found
        self.partitioning.nodes_ready(nodes, now, True)   # the sender can send to every one
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
                q = <PartitionQueue>active[i]
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
                if self.transactional and q.txn_state != TXN_ADDED:
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
                q.in_flight_batches += 1
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
            # the partition's next batch starts at what this one held, rounded up to a step of
            # the doubling (so a busy partition's batches start at batch.size, and a partition
            # whose traffic fell starts small again)
            grown = OPEN_BATCH_MIN_BYTES
            while grown < builder._size_bytes and grown < self.batch_size_bytes:
                grown *= 2
            b.queue.open_bytes = grown if grown < self.batch_size_bytes else self.batch_size_bytes
            builder.seal()
            b.sealed = True
            grown = builder._capacity_bytes - b.reserved_bytes
            if grown > 0:   # a compressed batch's raw records outgrew the reservation
                self.memory.take(grown)
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

    cdef bint held(self, ProducerBatch b) noexcept:
        """b, its partition's open batch, fills until the partition's batch in flight is
        answered (unless close() drains everything); that answer wakes the sender, so a held
        batch sets no wake-up time."""
        return not b.closed and b.queue.in_flight_batches > 0 and not self._draining_all

    cdef int landed(self, ProducerBatch b) except -1:
        """b is no longer in flight: answered, failed, to be resent or split."""
        if b.in_flight:
            b.in_flight = False
            b.queue.in_flight_batches -= 1
        return 0

    def complete(self, ProducerBatch b, int64_t base_offset=-1, int64_t log_append_time_ms=-1,
                 error=None, record_errors=None):
        """Finishes a batch: stores the outcome, frees its memory, wakes its waiters and runs
        its records' callbacks (on this thread). Finishing twice is a no-op, and so is
        finishing a batch that was split: its records' outcomes are its pieces'."""
        cdef DeliveryFuture f
        if b.done or b.split_into is not None:
            return
        self._incomplete.discard(b)
        self.memory.release(b.reserved_bytes)
        b.reserved_bytes = 0
        self.landed(b)
        b.finish(base_offset, log_append_time_ms, error, record_errors)
        futs = b.take_callback_futures()
        if futs is not None:
            for f in futs:
                f.fire()

    def reenqueue(self, ProducerBatch b, int64_t retry_at_ms, bint follow_earlier=False):
        """Puts a batch that failed with a retriable error back at the head of its queue, to be
        resent after retry_at_ms (monotonic). With follow_earlier, a sequenced batch that lands
        behind an earlier sequence of its partition is resent right after that batch instead:
        it cannot go first anyway, and a backoff of its own would only add to the earlier
        batch's (its error, OUT_OF_ORDER_SEQUENCE_NUMBER, echoed the earlier failure)."""
        cdef ProducerBatch prev
        self.landed(b)
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
            self._list_active(q)
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
        limit = min(self.batch_size_bytes, limit // 2)
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
                limit, max_bytes=self.max_request_size_bytes, compression=big._codec,
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
            piece = new_batch(q, builder, b.created_ms, <int32_t>pos, b.owner_pid)
            piece.closed = True
            piece.record_count = <int32_t>r
            piece.reserved_bytes = builder._capacity_bytes
            if last is not None:
                last.next = piece
            last = piece
            pieces.append(piece)
            charged += builder._capacity_bytes
            queued += builder._size_bytes
            if seq >= 0:
                seq = sequence_after(seq, <int32_t>r)
            pos += r
        # The pieces are complete: hand over b's callbacks, queue place and memory.
        futs = b.take_callback_futures()
        if futs is not None:
            for fut in futs:
                f = <DeliveryFuture>fut
                piece = piece_for(pieces, f.index)
                f.follow_split(piece)
                piece.add_callback_future(f)
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
        self.memory.take(charged)
        self.memory.release(b.reserved_bytes)
        b.reserved_bytes = 0
        self.landed(b)
        b.closed = True
        b.hand_over(pieces)     # last: futures that follow it find the pieces complete
        return list(pieces)

    def expire(self, int64_t now, int64_t delivery_timeout_ms):
        """Removes and returns the queued batches that have waited delivery.timeout.ms since
        their first record; the caller fails them."""
        cdef list out = []
        cdef PartitionQueue q
        cdef ProducerBatch b
        for q in self._active:
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
        for q in self._active:
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
        the sleep: socket events or the caller's timeout end it. Nor do batches that drain()
        would leave where they are whatever the time (awaiting the producer id, their
        partition's AddPartitionsToTxn, or an answer for an earlier batch of their partition,
        sequences.pyx's may_drain()): only an answer frees them. Counting them spun the sender
        on topics of many partitions, hundreds of partitions each waiting for its first batch's
        answer while their next batches were past linger.ms: a sweep of every queue per
        turn, tens of microseconds of CPU per record."""
        cdef PartitionQueue q
        cdef ProducerBatch b
        cdef int64_t d
        cdef Sequences seqs = self.sequences
        self._prune_active()
        for q in self._active:
            b = q.head
            if b is None or q.leader_id < 0 or q.muted or q.leader_id in blocked:
                continue
            if self.transactional and q.txn_state != TXN_ADDED:
                continue
            if seqs is not None and (seqs.producer_id < 0 or not seqs.may_drain(q, b)):
                continue
            if self.sendable(b, now):
                timeout_ms = 0
                break
            if b.retry_at_ms <= now and self.held(b):
                continue
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

    # -- appends accepted or refused (the producer's close, the sender's fatal errors) --

    @property
    def closed(self) -> bool:
        """No more appends: the producer closed, or a fatal error ended it."""
        return self._closed

    def close(self):
        """Refuses every later append (the producer is closing)."""
        self._closed = True

    def fail(self, error):
        """A fatal error (failed authentication): every later send raises a copy of it."""
        if self._fatal_error is None:
            self._fatal_error = error
        self._closed = True

    @property
    def fatal_error(self):
        """The error that ended the producer (an AuthenticationError), or None."""
        return self._fatal_error

    def set_draining_all(self, bint value):
        """close(): every queued batch is sendable now, linger or not."""
        self._draining_all = value

    def set_muted(self, PartitionQueue q not None, bint value):
        """A muted partition is left out of ready() and drain() until unmuted."""
        q.muted = value

    @property
    def queued_batch_count(self) -> int:
        cdef PartitionQueue q
        return sum(q.batch_count for q in self._queues)

    # -- transactions (the transaction manager) --

    def set_in_transaction(self, bint value):
        """Whether a transactional producer's sends are accepted now."""
        self._in_transaction = value

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    def set_implicit_txn_partitions(self, bint value):
        """Transactions v2: a Produce request adds its partitions to the transaction itself."""
        self._implicit_txn_partitions = value

    def take_new_txn_partitions(self) -> list:
        """The queues that got their first batch of the current transaction since the last call
        (their txn_state is TXN_PENDING, or TXN_ADDED with transactions v2)."""
        out = self._txn_new_partitions
        self._txn_new_partitions = []
        return out

    def txn_partitions_added(self, queues):
        """AddPartitionsToTxn acknowledged these queues: their batches may be sent now."""
        cdef PartitionQueue q
        for q in queues:
            q.txn_state = TXN_ADDED

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

    def __repr__(self):
        return (f"RecordAccumulator(topics={len(self._topics)}, partitions={len(self._queues)}, "
                f"incomplete batches={len(self._incomplete)})")
