# ProducerBatch: one batch of records for one partition, from its first append until every
# record of it has an outcome (part of kengine_ext._core).
#
# One writer per field: each group below names the only part that assigns its fields. Every
# one of them runs with the GIL held and neither releases it nor runs Python code while the
# batch is inconsistent (the GIL is the lock between user threads and the sender thread).
from libc.stdint cimport int32_t, int64_t
cimport cython

# accumulator.pxd, futures.pxd (included after this file)
cdef class PartitionQueue
cdef class DeliveryFuture


@cython.final
cdef class ProducerBatch:
    # -- set once, by new_batch() (batch.pyx) --
    cdef readonly str topic
    cdef readonly int32_t partition
    cdef readonly PartitionQueue queue       # the queue it belongs to
    cdef readonly int64_t created_ms         # monotonic ms of the first append
    cdef int32_t split_first                 # offset delta, in the batch it was split from, of
                                             # its first record; 0 for a batch not from a split
    cdef readonly long owner_pid             # the process of its accumulator (process.pxd):
                                             # waits elsewhere (a fork() child) raise at once
    # -- its bytes: batch.pyx (new_batch(), finish(), hand_over()) --
    cdef RecordBatchBuilder builder          # None once completed or split, which frees the
                                             # buffer (futures keep only this object)
    # -- its place in the queue and its sending: accumulator.pyx --
    cdef ProducerBatch next                  # next batch in queue order
    cdef bint closed                         # takes no more appends
    cdef bint sealed                         # compressed, CRC written: bytes are final
    cdef readonly bint in_flight             # a produce request carrying it is unanswered
    cdef readonly int attempts               # produce requests that carried it
    cdef int64_t retry_at_ms                 # monotonic ms before which it is not resent (backoff)
    cdef readonly int32_t record_count
    cdef Py_ssize_t reserved_bytes           # charged against buffer.memory
    # -- its outcome: batch.pyx (finish(), hand_over(), wait(), the callback list) --
    cdef list callback_futures               # futures with callbacks, in append order, or None
    cdef readonly bint done
    cdef readonly int64_t base_offset        # assigned by the broker; -1 until then / acks=0
    cdef readonly int64_t log_append_time_ms # -1 unless the topic uses LogAppendTime
    cdef readonly object error               # the KafkaError that failed the whole batch, or None
    cdef readonly object record_errors       # {offset delta: KafkaError} (KIP-467), or None
    cdef object done_event                   # threading.Event made by the first waiter, or None
    # Up-calls: listener(batch) for each callable here, run once on the sender thread (GIL
    # held, the outcome or the split already stored) when the batch completes or is split;
    # asyncio waiters hand the news to their event loop (loop_bridge.py). None until
    # add_done_listener(); emptied when they run.
    cdef list done_listeners
    # Split (the broker refused the batch as too large): the batches that took over its
    # records, in record order. Set once, after they are complete and queued; futures holding
    # this batch follow it to their record's piece. None unless split.
    cdef readonly list split_into
    # -- idempotence: sequences.pyx, on the sender thread. The producer id, epoch and base
    # sequence themselves are the builder's (what its bytes carry). --
    cdef int seq_status                      # SEQ_NONE / SEQ_UNFINISHED / SEQ_FINISHED
    cdef bint seq_reassign                   # its next attempt gets a new sequence
    cdef int32_t identity_attempts           # attempts sent with its current id/epoch/sequence
    cdef bint seq_settle                     # maybe written: settles under its old epoch first

    cdef int finish(self, int64_t base_offset, int64_t log_append_time_ms, object error,
                    object record_errors) except -1
    cdef object record_error(self, int32_t index)
    cdef int add_callback_future(self, DeliveryFuture f) except -1
    cdef list take_callback_futures(self)
    cdef int hand_over(self, list pieces) except -1
