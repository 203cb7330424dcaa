# send() of the asyncio producer (part of kengine_ext._core; fields in aio_send.pxd).
#
# `await producer.send(...)` used to run an `async def`: a coroutine object and its frame per
# record, about 0.15 us on top of the append, half again the synchronous send()'s cost. Most
# sends need not wait, so send() is a plain method: it appends at once, in C, and returns a
# ReadySend, which `await` finishes without suspending (through the am_send slot on CPython
# 3.10 and 3.11; through StopIteration on 3.12+). Only a send that has to wait (buffer.memory,
# metadata, a serializer's registry lookup, or the periodic yield that keeps a tight sending
# loop from starving the other tasks) returns the Python coroutine that waits, which appends
# when awaited.

from cpython.exc cimport PyErr_SetObject
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
import collections.abc

__all__ += ["ReadySend", "AsyncSendMethods"]

# A task sending in a tight loop never suspends on the fast path, so every this many sends one
# yields to the loop first (~10 us per yield: ~0.02 us per record; no stall longer than these
# sends take, well under a millisecond).
SENDS_PER_YIELD = 512


cdef extern from "Python.h":
    ctypedef int (*am_send_fn)(PyObject *, PyObject *, PyObject **)
    ctypedef struct PyAsyncMethods:
        am_send_fn am_send
    ctypedef struct TypeWithAsyncSlots "PyTypeObject":
        PyAsyncMethods *tp_as_async
    cdef enum:
        PYGEN_RETURN
        PYGEN_ERROR


@cython.final
@cython.freelist(64)
cdef class ReadySend:
    """What ``AIOProducer.send()`` returns when the record went into a batch at once: a
    coroutine that has already finished. ``await`` gives the record's DeliveryFuture (or raises
    the error the append raised) without suspending; ``asyncio.create_task()`` and
    ``asyncio.gather()`` take it as they take a coroutine."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):   # `await ready` on CPython 3.12+, which does not call am_send
        self.finish()

    def send(self, arg):
        self.finish()

    cdef finish(self):
        if self.error is not None:
            raise self.error
        raise StopIteration(self.value)

    def throw(self, typ, val=None, tb=None):
        # nothing to interrupt: the append is over; raise what was thrown in, as a coroutine
        # that has not started does
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        if tb is not None:
            val = val.with_traceback(tb)
        raise val

    def close(self):
        pass

    def __repr__(self):
        return f"<ReadySend {self.error if self.error is not None else self.value!r}>"


cdef int ready_am_send(PyObject *obj, PyObject *arg, PyObject **result) noexcept:
    # `await ready` on CPython 3.10/3.11: the result comes back without a StopIteration
    cdef ReadySend r = <ReadySend>obj
    if r.error is not None:
        PyErr_SetObject(type(r.error), r.error)
        result[0] = NULL
        return PYGEN_ERROR
    Py_INCREF(r.value)
    result[0] = <PyObject *>r.value
    return PYGEN_RETURN


cdef TypeWithAsyncSlots *_ready_type = <TypeWithAsyncSlots *><PyObject *>ReadySend
if _ready_type.tp_as_async != NULL:
    _ready_type.tp_as_async.am_send = ready_am_send
collections.abc.Coroutine.register(ReadySend)


cdef inline ReadySend ready(object value, object error):
    cdef ReadySend r = ReadySend.__new__(ReadySend)
    r.value = value
    r.error = error
    return r


cdef class AsyncSendMethods:
    """send() of kengine.AIOProducer (its base class). The Python class supplies
    ``_send_later(topic, value, key, headers, partition, timestamp_ms, on_delivery,
    yield_first)``, the coroutine of a send that waits, and ``_on_loop(fut, on_delivery)``."""

    def __cinit__(self):
        self._sends_to_yield = SENDS_PER_YIELD

    def send(self, str topic, value=None, key=None, headers=None, partition=None,
             timestamp_ms=None, on_delivery=None):
        """Appends one record and returns an awaitable of its DeliveryFuture: finished at once
        when the record went into a batch, else a coroutine that waits on the loop (for
        buffer.memory or the topic's metadata) and appends when awaited."""
        return self.send_one(topic, value, key, headers, partition, timestamp_ms, on_delivery,
                             True)

    def send_untraced(self, str topic, value=None, key=None, headers=None, partition=None,
                      timestamp_ms=None, on_delivery=None):
        """send() without the sampling decision in C: the path of a record the SDK traces,
        whose span and headers are already made."""
        return self.send_one(topic, value, key, headers, partition, timestamp_ms, on_delivery,
                             False)

    cdef object send_one(self, str topic, object value, object key, object headers,
                         object partition, object timestamp_ms, object on_delivery,
                         bint traced):
        cdef char trace_header[TRACEPARENT_HEADER_BYTES]
        cdef int outcome
        if traced and self._trace is not None:
            # decided once, before any wait: a send that waits keeps the headers made here
            outcome = self._trace.decide_for(headers, trace_header)
            if outcome != TRACE_UNSAMPLED:
                return self._send_sampled(
                    self._trace.root_trace_id() if outcome == TRACE_SAMPLED else None, topic,
                    value, key, headers, partition, timestamp_ms, on_delivery)
            try:
                headers = (with_traceparent(headers, trace_header)
                           if self._send_path.python_sees_headers()
                           else encoded_with_traceparent(headers, trace_header))
            except Exception:
                pass   # headers of the wrong shape: the append refuses them, in its words
        self._sends_to_yield -= 1
        if self._sends_to_yield <= 0:
            self._sends_to_yield = SENDS_PER_YIELD
            return self._send_later(topic, value, key, headers, partition, timestamp_ms,
                                    on_delivery, True)
        if not self._gate.idle or (self._prepared is not None
                                   and topic not in self._prepared):
            return self._send_later(topic, value, key, headers, partition, timestamp_ms,
                                    on_delivery, False)
        try:
            # (the asyncio producer runs its interceptors in Python, tracing's too)
            fut = self._send_path.send_record(topic, value, key, headers, partition,
                                              timestamp_ms, None, False)
        except Exception as e:   # KeyboardInterrupt and the like go on at once
            if isinstance(e, self._retry_errors):
                return self._send_later(topic, value, key, headers, partition, timestamp_ms,
                                        on_delivery, False)
            return ready(None, e)   # raised by await, as a coroutine would
        if on_delivery is not None:
            self._on_loop(fut, on_delivery)
        return ready(fut, None)
