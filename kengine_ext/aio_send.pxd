# send() of the asyncio producer (part of kengine_ext._core): appends at once when it need not
# wait and hands back an already-finished awaitable instead of a coroutine.
#
# One writer per field: aio_send.pyx, except _gate and _prepared, which the Python
# AIOProducer (kengine/aio/producer.py) sets when it binds to its loop / constructs. All fields
# are used on the event loop's thread only.
cimport cython


@cython.final
cdef class ReadySend:
    # what AIOProducer.send() hands back when the record went into a batch at once: awaiting
    # it gives `value` (the DeliveryFuture) without suspending, or raises `error`
    cdef object value
    cdef object error
    cdef finish(self)


cdef class AsyncSendMethods:
    # AIOProducer derives from this class: its send() runs here, in C, without a coroutine.
    cdef public SendPath _send_path     # the inner producer's send path (fixed at construction)
    cdef public object _gate            # the MemoryGate of the bound loop; .idle: no one waits
    cdef public object _prepared        # topics whose serializers are ready, or None: no
                                        # serializer needs preparing
    cdef public tuple _retry_errors     # what the fast append raises when the send must wait
    cdef int _sends_to_yield            # sends left before the next one yields to the loop
    # The otel interceptor's sampling decision in C (trace_stamp.pxd), or None, and the
    # coroutine function of a record the SDK traces:
    # _send_sampled(trace_id, topic, value, key, headers, partition, timestamp_ms,
    # on_delivery) (InterceptedAIOSends._traced_send in kengine/aio/intercepted.py). Both set
    # once by AIOProducer's constructor.
    cdef public TraceStamp _trace
    cdef public object _send_sampled

    cdef object send_one(self, str topic, object value, object key, object headers,
                         object partition, object timestamp_ms, object on_delivery,
                         bint traced)
