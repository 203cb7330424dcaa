# The record accumulator: what is known of each topic, the per-partition queues of batches,
# and everything the sender does to them (part of kengine_ext._core).
#
# One writer per field: accumulator.pyx, except PartitionQueue.sequences (sequences.pyx writes
# inside it) and TopicState.partitioning (partitioner.pyx). Locking: every field marked GIL is
# read and written only by Cython code that holds the GIL and neither releases it nor runs
# Python code while the structure is inconsistent; that makes the GIL the lock between user
# threads (append) and the sender thread (ready/drain/complete...).
from libc.stdint cimport int16_t, int32_t, int64_t, uint64_t
cimport cython

# sequences.pxd, partitioner.pxd (included after this file)
cdef class PartitionSequences
cdef class Sequences
cdef class Partitioning
cdef class TopicPartitioner


# PartitionQueue.txn_state
cdef enum:
    TXN_NOT_ADDED = 0       # no record for it in the current transaction yet
    TXN_PENDING = 1         # has records; AddPartitionsToTxn not yet acknowledged
    TXN_ADDED = 2           # part of the transaction: its batches may be sent

# A partition's first batch starts this small and grows (doubling, each step reserved from
# buffer.memory) up to batch.size; later ones start at what the last one grew to. Reserving
# batch.size for every batch, as Java does, lets a few hundred mostly empty batches of a
# topic with many partitions hold all of buffer.memory, and sends then wait for it.
# send_many() knows its records' sizes: a new batch of it reserves their bytes (an upper bound:
# a record's own bytes plus RECORD_OVERHEAD_MAX_BYTES, the longest its varints and attributes
# can be: length 5, attributes 1, timestamp delta 10, offset delta 5, key and value lengths 5
# each, header count 5), at most batch.size and at least OPEN_BATCH_MIN_BYTES.
cdef enum:
    OPEN_BATCH_MIN_BYTES = 4096
    # _prune_active() moves this many nodes' drain starts without allocating (more: they
    # start over at the front of the list)
    PRUNE_MARKS = 16
    RECORD_OVERHEAD_MAX_BYTES = 36


@cython.final
cdef class PartitionQueue:
    cdef readonly str topic
    cdef readonly int32_t partition
    cdef readonly int32_t leader_id          # GIL; -1 while unknown
    cdef readonly int32_t leader_epoch       # GIL; -1 while unknown
    cdef ProducerBatch head                  # GIL; oldest batch, drained first
    cdef ProducerBatch tail                  # GIL; newest batch, the one appended to
    cdef readonly int32_t batch_count        # GIL; batches queued (not yet drained)
    cdef readonly int64_t queued_bytes       # GIL; bytes in queued batches (adaptive partitioning)
    cdef readonly bint muted                 # GIL; not drained while set (set_muted())
    cdef readonly PartitionSequences sequences   # idempotence (sequences.pyx is its only writer)
    cdef readonly int txn_state              # GIL; transactional: TXN_* (is it in the transaction?)
    # Bytes a new batch of this partition starts with (and reserves of buffer.memory): what
    # its last sealed batch grew to, at least OPEN_BATCH_MIN_BYTES, at most batch.size. Written
    # by the sender thread (seal()); read by send threads.
    cdef readonly Py_ssize_t open_bytes
    cdef bint listed                         # GIL; in its accumulator's _active list
    cdef int32_t in_flight_batches           # GIL; drained batches not yet answered (drain() adds,
                                             # landed() takes away)


@cython.final
cdef class TopicState:
    cdef readonly str name
    cdef readonly list queues                # [PartitionQueue], index = partition
    cdef readonly int32_t num_partitions
    cdef readonly double compression_ratio   # GIL; compressed/uncompressed estimate (Java's estimator)
    cdef readonly Py_ssize_t refused_bytes   # GIL; smallest batch (bytes) a broker refused as too
                                             # large (its max.message.bytes is below); 0: none
    cdef readonly TopicPartitioner partitioning  # partitioner state (partitioner.pxd)


@cython.final
cdef class RecordAccumulator:
    # -- settings, fixed at construction --
    cdef readonly BufferMemory memory        # buffer.memory: batches reserve from it when they
                                             # open, complete() gives back
    cdef readonly Partitioning partitioning  # the partitioner: fed node readiness by ready()/drain()
    cdef int64_t _linger_ms
    cdef readonly Py_ssize_t batch_size_bytes
    cdef readonly Py_ssize_t max_request_size_bytes
    cdef int _codec
    cdef int _level
    cdef readonly bint transactional
    cdef readonly long owner_pid             # its memory's: the process that created them
    cdef BufferPool _pool                    # batch.size buffers for reuse
    cdef readonly Sequences sequences        # producer id/epoch and sequence rules; None unless
                                             # idempotent (sender thread, sequences.pyx)
    # Up-call: wakes the sender's selector (NetworkClient.wakeup). Called on any thread with
    # the GIL held and the accumulator consistent; it must not block or call back in here.
    cdef object _wakeup
    # -- state --
    cdef dict _topics                        # GIL; name -> TopicState (known partitions)
    cdef list _queues                        # GIL; every PartitionQueue
    # GIL; the queues that may hold batches: every queue with a head is here (enqueue() and
    # requeue_chain() add it), empty ones leave at the next _prune_active(). The sender's
    # per-turn scans (ready, drain, prepare_sleep) walk this, not _queues: on a topic of
    # thousands of partitions few hold a batch at any moment, and three sweeps of every queue
    # per sender turn cost more than the records did.
    cdef list _active
    cdef dict _drain_starts                  # GIL; node -> where its next drain starts
    cdef set _incomplete                     # GIL; batches not yet finished (flush waits on them)
    cdef bint _closed                        # GIL; appends refused (close(), fail())
    cdef object _fatal_error                 # GIL; set once by fail(): sends raise it
    cdef int _flushes                        # GIL; flush() calls in progress: linger is ignored
    cdef bint _draining_all                  # GIL; close(): everything is ready
    cdef bint _sender_sleeping               # GIL; sender blocked in select
    cdef int64_t _sender_wake_at_ms          # GIL; when it wakes by itself (monotonic ms)
    cdef bint _in_transaction                # GIL; transactional sends are allowed
    cdef bint _implicit_txn_partitions       # GIL; transactions v2: Produce adds partitions itself
    cdef list _txn_new_partitions            # GIL; queues that joined the current transaction

    cdef inline ProducerBatch append(self, PartitionQueue q, int64_t ts, const char *kp,
                                     Py_ssize_t kl, const char *vp, Py_ssize_t vl,
                                     const char *hp, Py_ssize_t hl, int32_t hc,
                                     Py_ssize_t record_bytes, Py_ssize_t *index,
                                     Py_ssize_t *est_before, bint *new_batch)
    cdef ProducerBatch append_to_new_batch(self, PartitionQueue q, int64_t ts, const char *kp,
                                           Py_ssize_t kl, const char *vp, Py_ssize_t vl,
                                           const char *hp, Py_ssize_t hl, int32_t hc,
                                           Py_ssize_t record_bytes, Py_ssize_t *index,
                                           Py_ssize_t *est_before, bint *new_batch)
    cdef object append_columns(self, PartitionQueue q, BulkFuture fut, RecordColumns *cols,
                               Py_ssize_t *order, Py_ssize_t start, Py_ssize_t lo, Py_ssize_t hi)
    cdef ProducerBatch open_batch(self, PartitionQueue q, Py_ssize_t record_bytes, int64_t now,
                                  Py_ssize_t reserved)
    cdef ProducerBatch make_batch(self, PartitionQueue q, Py_ssize_t capacity, int64_t now,
                                  bint owner_grows=*)
    cdef bint grow_batch(self, ProducerBatch b, Py_ssize_t record_bytes) except -1
    cdef int enqueue(self, PartitionQueue q, ProducerBatch b) except -1
    cdef int _list_active(self, PartitionQueue q) except -1
    cdef int _prune_active(self) except -1
    cdef ProducerBatch requeue_chain(self, PartitionQueue q, ProducerBatch first,
                                     ProducerBatch last, int32_t count, Py_ssize_t order)
    cdef int maybe_wake_sender(self, int64_t ready_at_ms) except -1
    cdef int wake_for(self, ProducerBatch b) except -1
    cdef Py_ssize_t batch_bytes_for(self, PartitionQueue q, Py_ssize_t record_bytes) noexcept
    cdef bint sendable(self, ProducerBatch b, int64_t now) noexcept
    cdef bint held(self, ProducerBatch b) noexcept
    cdef int landed(self, ProducerBatch b) except -1
