# What send() and send_many() hand back (part of kengine_ext._core): RecordMetadata,
# DeliveryFuture, BulkFuture and BulkResult.
#
# One writer per field: futures.pyx only (its constructors new_delivery_future() and
# new_bulk_future(), and its methods). Fields are read and written with the GIL held; a future
# is read by any thread, its fields change on the sender thread (a split moves it) or in the
# call that made it.
from libc.stdint cimport int32_t, int64_t


cdef class RecordMetadata:
    cdef readonly str topic
    cdef readonly int32_t partition
    cdef readonly int64_t offset             # -1 when acks=0 (the broker does not say)
    cdef readonly int64_t timestamp          # ms: the record's, or the broker's LogAppendTime
    cdef readonly int timestamp_type         # 0 CreateTime, 1 LogAppendTime
    cdef readonly int32_t serialized_key_size    # -1 for a null key
    cdef readonly int32_t serialized_value_size  # -1 for a null value


cdef class DeliveryFuture:
    cdef ProducerBatch batch                 # the record's batch; moved to the piece holding
                                             # it after a split (resolve(), follow_split())
    cdef int32_t index                       # offset delta in the batch
    cdef int32_t key_size
    cdef int32_t value_size
    cdef int64_t timestamp_ms
    cdef object callbacks                    # None, a callable, or a list of callables

    cdef ProducerBatch resolve(self)
    cdef ProducerBatch settle(self, object timeout)
    cdef object metadata(self)
    cdef int fire(self) except -1
    cdef int follow_split(self, ProducerBatch piece) except -1


cdef class BulkResult:
    cdef readonly str topic
    cdef readonly Py_ssize_t record_count
    cdef readonly dict errors          # input index -> KafkaError, for failed records only
    cdef list _segments                # as BulkFuture's
    cdef bytes _record_info            # as BulkFuture's


cdef class BulkFuture:
    cdef readonly str topic
    cdef readonly Py_ssize_t record_count
    cdef list _segments   # [(ProducerBatch, first offset delta, int32 input indices as bytes)]
    cdef dict _refused    # input index -> error, for records refused by the call; None if none
    # Per input index: int64 timestamps (ms), then int32 key sizes, then int32 value sizes (-1:
    # null), for metadata(). Written by send_many() as it gathers each chunk (note_records()).
    cdef bytes _record_info

    cdef int refuse(self, Py_ssize_t index, object error) except -1
    cdef int note_records(self, const RecordColumns *c, Py_ssize_t start,
                          Py_ssize_t n) except -1
    cdef int add_segment(self, ProducerBatch b, int32_t first, const Py_ssize_t *order,
                         Py_ssize_t start, Py_ssize_t lo, Py_ssize_t count) except -1
    cdef tuple sort_refusals(self)
