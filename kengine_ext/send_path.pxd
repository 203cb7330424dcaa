# The per-record send path: send() / send_many() on user threads (part of kengine_ext._core).
#
# One writer per field: send_path.pyx. Every field is fixed at construction except the
# last-topic cache (GIL). The accumulator's state is changed only through its own methods.
from libc.stdint cimport int32_t
cimport cython


@cython.final
cdef class SendPath:
    cdef readonly RecordAccumulator accumulator  # where records go (the sender's handle too)
    cdef Partitioning _partitioning          # accumulator.partitioning
    cdef str _last_topic                     # GIL; the topic of the previous send() ...
    cdef TopicState _last_state              # GIL; ... and its state: skips the dict lookup
    cdef int _key_kind                       # SER_*: how keys become bytes
    cdef int _value_kind
    cdef object _key_serializer              # the callable or object of SER_CALLABLE /
                                             # SER_CONTEXT / SER_OBJECT, else None
    cdef object _value_serializer
    # Up-calls into the Python layer, injected at construction. Each runs on the user thread
    # that called send()/send_many(), with the GIL held and nothing of the accumulator in an
    # inconsistent state (before a record is appended, or after the call's records are).
    # await_metadata(topic, partition=None) -> TopicState: the topic's partitions when send()
    # does not know them yet (or an explicit partition is outside them); blocks up to
    # max.block.ms, raises KafkaTimeoutError.
    cdef object _await_metadata
    # transaction_refusal() -> KafkaError | None: why a transactional producer refuses sends
    # outside an open transaction (a failed transaction, a fatal error); None: none begun.
    cdef object _transaction_refusal
    # records_refused(topic, count, first_index, first_error): send_many() refused `count`
    # records and sent the rest (a transaction cannot commit without them). May be None.
    cdef object _records_refused
    # The OpenTelemetry sampling decision made in C (trace_stamp.pxd), or None: set once by
    # trace_with(), by the producer's constructor, before any other thread can see it.
    cdef readonly TraceStamp _trace
    # send_sampled(trace_id, topic, value, key, headers, partition, timestamp_ms,
    # on_delivery) -> DeliveryFuture: a record the SDK traces (sampled, or a case _trace leaves
    # to it), sent through the interceptor's Python path; trace_id is the id _trace chose for
    # a new trace, else None. Set with _trace; runs on the user thread, nothing appended yet.
    cdef object _send_sampled

    cdef inline object send_record(self, str topic, object value, object key, object headers,
                                   object partition, object timestamp_ms, object on_delivery,
                                   bint traced)
    cdef object send_traced(self, str topic, object value, object key, object headers,
                            object partition, object timestamp_ms, object on_delivery,
                            bint sampled)
    cdef object send_records(self, str topic, object values, object keys, object headers,
                             object timestamps, object partition)
    cdef object send_arrow_rows(self, str topic, object data, object value, object key,
                                object headers, object timestamp, object partition,
                                object rows)
    cdef int refuse_arrow_rows(self, BulkFuture fut, ArrowInput inp, RecordColumns *c,
                               const int32_t *row_parts, Py_ssize_t pos,
                               Py_ssize_t n) except -1
    cdef object place_and_append(self, TopicState t, BulkFuture fut, ColumnsHolder holder,
                                 Py_ssize_t start, Py_ssize_t n, object partition,
                                 const int32_t *row_parts, object py_keys, object py_values,
                                 object py_headers, Py_ssize_t py_base)
    cdef bint python_sees_headers(self)
    cdef TopicState topic_for_send(self, str topic)
    cdef TopicState refresh_for_partition(self, str topic, int32_t partition)
    cdef int32_t choose_partition(self, TopicState t, object key, object value, object headers,
                                  const char *key_ptr, Py_ssize_t key_len,
                                  bint *sticky) except -2
    cdef object send_chunk(self, TopicState t, BulkFuture fut, object values, object raw_values,
                           object keys, object headers, object timestamps, object partition,
                           Py_ssize_t start, Py_ssize_t n)
    cdef object serialize(self, object obj, str topic, int kind, object serializer, str what,
                          object ctx)
    cdef list serialize_all(self, object objs, str topic, int kind, object serializer, str what,
                            BulkFuture fut, list contexts)
    cdef ColumnsHolder fill_refusing(self, BulkFuture fut, object values, object keys,
                                     object headers, object timestamps, Py_ssize_t start,
                                     Py_ssize_t n)
    cdef object refusal(self, str call)
    cdef object not_in_transaction(self)


cdef class SendMethods:
    # The public Producer's send() and send_many() (it derives from this class): the send path
    # it composes, set once by its constructor, before any other thread can see the producer.
    cdef public SendPath _send_path
