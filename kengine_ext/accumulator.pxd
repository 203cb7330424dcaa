# The per-record hot path and the queues of batches: declarations (part of kengine_ext._core).
#
# Locking: every field below that says "GIL" is read and written only by Cython code that holds the
# GIL and neither releases it nor runs Python code while the structure is inconsistent; that makes
# the GIL the lock between user threads (send) and the sender thread (ready/drain/complete).
from libc.stdint cimport int16_t, int32_t, int64_t, uint64_t

# sequences.pxd (included after this file)
cdef class PartitionSequences
cdef class Sequences


cdef class RecordMetadata:
    cdef readonly str topic
    cdef readonly int32_t partition
    cdef readonly int64_t offset             # -1 when acks=0 (the broker does not say)
    cdef readonly int64_t timestamp          # ms: the record's, or the broker's LogAppendTime
    cdef readonly int timestamp_type         # 0 CreateTime, 1 LogAppendTime
    cdef readonly int32_t serialized_key_size    # -1 for a null key
    cdef readonly int32_t serialized_value_size  # -1 for a null value


cdef class ProducerBatch:
    cdef readonly str topic
    cdef readonly int32_t partition
    cdef readonly PartitionQueue queue       # the queue it belongs to
    cdef RecordBatchBuilder builder          # GIL; None once completed, which frees the buffer
    cdef ProducerBatch next                  # GIL; next batch in queue order
    cdef readonly int64_t created_ms         # monotonic ms of the first append
    cdef int64_t retry_at_ms                 # monotonic ms before which it is not resent (backoff)
    cdef readonly int attempts               # produce requests that carried it
    cdef bint closed                         # GIL; takes no more appends
    cdef bint sealed                         # compressed, CRC written: bytes are final
    cdef readonly int32_t record_count
    cdef Py_ssize_t reserved_bytes           # GIL; charged against buffer.memory
    cdef list callback_futures               # GIL; futures with callbacks, in append order, or None
    cdef readonly bint done
    cdef readonly int64_t base_offset        # assigned by the broker; -1 until then / acks=0
    cdef readonly int64_t log_append_time_ms # -1 unless the topic uses LogAppendTime
    cdef readonly object error               # the KafkaError that failed the whole batch, or None
    cdef readonly object record_errors       # {offset delta: KafkaError} (KIP-467), or None
    cdef object done_event                   # threading.Event made by the first waiter, or None
    cdef readonly bint in_flight             # GIL; a produce request carrying it is unanswered
    # Split (the broker refused the batch as too large): the batches that took over its
    # records, in record order. Set once, after they are complete and queued; futures holding
    # this batch follow it to their record's piece. None unless split.
    cdef readonly list split_into            # GIL
    cdef int32_t split_first                 # offset delta, in the batch it was split from, of
                                             # its first record; 0 for a batch not from a split
    # Idempotence: written only by sequences.pyx, on the sender thread. The producer id, epoch
    # and base sequence themselves are the builder's (what its bytes carry).
    cdef int seq_status                      # SEQ_NONE / SEQ_UNFINISHED / SEQ_FINISHED
    cdef bint seq_reassign                   # its next attempt gets a new sequence
    cdef int32_t identity_attempts           # attempts sent with its current id/epoch/sequence

    cdef int finish(self, int64_t base_offset, int64_t log_append_time_ms, object error,
                    object record_errors) except -1
    cdef object record_error(self, int32_t index)


# PartitionQueue.txn_state
cdef enum:
    TXN_NOT_ADDED = 0       # no record for it in the current transaction yet
    TXN_PENDING = 1         # has records; AddPartitionsToTxn not yet acknowledged
    TXN_ADDED = 2           # part of the transaction: its batches may be sent


cdef class PartitionQueue:
    cdef readonly str topic
    cdef readonly int32_t partition
    cdef readonly int32_t leader_id          # GIL; -1 while unknown
    cdef readonly int32_t leader_epoch       # GIL; -1 while unknown
    cdef ProducerBatch head                  # GIL; oldest batch, drained first
    cdef ProducerBatch tail                  # GIL; newest batch, the one appended to
    cdef readonly int32_t batch_count        # GIL; batches queued (not yet drained)
    cdef readonly int64_t queued_bytes       # GIL; bytes in queued batches (adaptive partitioning)
    cdef public bint muted                   # GIL; not drained while set
    cdef readonly PartitionSequences sequences   # idempotence (sequences.pyx is its only writer)
    cdef public int txn_state                # GIL; transactional: TXN_* (is it in the transaction?)


cdef class TopicState:
    cdef readonly str name
    cdef readonly list queues                # [PartitionQueue], index = partition
    cdef readonly int32_t num_partitions
    cdef readonly double compression_ratio   # GIL; compressed/uncompressed estimate (Java's estimator)
    cdef readonly Py_ssize_t refused_bytes   # GIL; smallest batch (bytes) a broker refused as too
                                             # large (its max.message.bytes is below); 0: none
    cdef readonly TopicPartitioner partitioning  # partitioner state (partitioner.pxd)


cdef class DeliveryFuture:
    cdef ProducerBatch batch                 # GIL; the record's batch; moved to the piece
                                             # holding it after a split (resolve())
    cdef int32_t index                       # GIL; offset delta in the batch
    cdef int32_t key_size
    cdef int32_t value_size
    cdef int64_t timestamp_ms
    cdef object callbacks                    # None, a callable, or a list of callables

    cdef ProducerBatch resolve(self)
    cdef ProducerBatch settle(self, object timeout)
    cdef object metadata(self)
    cdef int fire(self) except -1


cdef class BulkResult:
    cdef readonly str topic
    cdef readonly Py_ssize_t record_count
    cdef readonly dict errors          # input index -> KafkaError, for failed records only
    cdef list _segments                # as BulkFuture's


cdef class BulkFuture:
    cdef readonly str topic
    cdef readonly Py_ssize_t record_count
    cdef list _segments   # [(ProducerBatch, first offset delta, int32 input indices as bytes)]
    cdef dict _refused    # input index -> error, for records refused by the call; None if none
    cdef int refuse(self, Py_ssize_t index, object error) except -1


cdef class ProducerCore:
    cdef dict _topics                        # GIL; name -> TopicState (known partitions)
    cdef str _last_topic                     # GIL; the topic of the previous send() ...
    cdef TopicState _last_state              # GIL; ... and its state: skips the dict lookup
    cdef BufferPool _pool                    # batch.size buffers for reuse
    cdef list _queues                        # GIL; every PartitionQueue, for ready/drain scans
    cdef dict _drain_starts                  # GIL; node -> where its next drain starts
    cdef set _incomplete                     # GIL; batches not yet finished (flush waits on them)
    cdef int64_t _linger_ms
    cdef Py_ssize_t _batch_size_bytes
    cdef Py_ssize_t _max_request_size_bytes
    cdef int64_t _buffer_total_bytes
    cdef int64_t _buffer_used_bytes          # GIL
    cdef int _codec
    cdef int _level
    cdef int _key_kind                       # SER_*: how keys become bytes
    cdef int _value_kind
    cdef object _key_serializer              # callable for SER_CALLABLE / SER_JSON
    cdef object _value_serializer
    cdef Partitioning _partitioning          # the partitioner (built-in kind or Python object)
    cdef bint _closed                        # GIL; send() refused
    cdef object _fatal_error                 # GIL; set once by a fatal error: send() raises it
    cdef int _flushes                        # GIL; flush() calls in progress: linger is ignored
    cdef bint _draining_all                  # GIL; close(): everything is ready
    cdef int _memory_waiters                 # GIL; threads blocked for buffer memory
    cdef object _memory_cond                 # threading.Condition for those threads
    cdef int64_t _next_ticket                # under _memory_cond: FIFO order of blocked sends
    cdef int64_t _serving_ticket             # under _memory_cond: the ticket served next
    cdef set _skipped_tickets                # under _memory_cond: tickets that timed out
    cdef readonly int64_t memory_wait_ns     # under _memory_cond: total ns sends spent blocked
                                             # for buffer.memory (bufferpool-wait-ratio)
    cdef object _wakeup                      # callable waking the sender's selector
    cdef bint _sender_sleeping               # GIL; sender blocked in select
    cdef int64_t _sender_wake_at_ms          # GIL; when it wakes by itself (monotonic ms)
    cdef bint _idempotent
    cdef bint _transactional
    cdef readonly Sequences sequences        # producer id/epoch and sequence rules; None unless
                                             # idempotent (sender thread, sequences.pyx)
    cdef bint _in_transaction                # GIL; transactional sends are allowed
    cdef bint _implicit_txn_partitions       # transactions v2: Produce adds partitions itself
    cdef list _txn_new_partitions            # GIL; queues that joined the current transaction
    cdef public object _max_block_ms

    cdef TopicState topic_for_send(self, str topic)
    cdef int32_t choose_partition(self, TopicState t, object key, object value, object headers,
                                  const char *key_ptr, Py_ssize_t key_len,
                                  bint *sticky) except -2
    cdef ProducerBatch open_batch(self, PartitionQueue q, Py_ssize_t record_bytes, int64_t now,
                                  Py_ssize_t reserved)
    cdef ProducerBatch new_batch(self, PartitionQueue q, Py_ssize_t capacity, int64_t now)
    cdef int enqueue(self, PartitionQueue q, ProducerBatch b) except -1
    cdef ProducerBatch requeue_chain(self, PartitionQueue q, ProducerBatch first,
                                     ProducerBatch last, int32_t count, Py_ssize_t order)
    cdef object send_chunk(self, TopicState t, BulkFuture fut, object values, object raw_values,
                           object keys, object headers, object timestamps, object partition,
                           Py_ssize_t start, Py_ssize_t n)
    cdef object append_group(self, PartitionQueue q, BulkFuture fut, RecordColumns *cols,
                             Py_ssize_t *order, Py_ssize_t start, Py_ssize_t lo, Py_ssize_t hi)
    cdef int add_segment(self, BulkFuture fut, ProducerBatch b, Py_ssize_t *order,
                         Py_ssize_t start, Py_ssize_t lo, Py_ssize_t count) except -1
    cdef int release_memory(self, Py_ssize_t nbytes) except -1
    cdef int maybe_wake_sender(self, int64_t ready_at_ms) except -1
    cdef object serialize(self, object obj, str topic, int kind, object serializer, str what)
    cdef list serialize_all(self, object objs, str topic, int kind, object serializer, str what,
                            BulkFuture fut)
    cdef ColumnsHolder fill_refusing(self, BulkFuture fut, object values, object keys,
                                     object headers, object timestamps, Py_ssize_t start,
                                     Py_ssize_t n)
    cdef object refusal(self, str call)
    cdef Py_ssize_t batch_bytes_for(self, Py_ssize_t record_bytes) noexcept
    cdef bint sendable(self, ProducerBatch b, int64_t now) noexcept
