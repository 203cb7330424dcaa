# OpenTelemetry's sampling decision for send(), made in C (part of kengine_ext._core; fields in
# trace_stamp.pxd). A producer traced by the `otel` interceptor alone, with a sampler whose
# decision depends only on the parent's sampled flag and the trace id (kengine.otel.fast_sampling
# checks that once), gives send() one of these. For a record it does not sample, the SDK would
# only make a NonRecordingSpan and the W3C propagator would write its context into a
# `traceparent` header: decide() writes that header itself, with no Python call, so an
# unsampled record costs a context-variable read and 68 header bytes. A sampled record goes to
# the SDK (the interceptor's Python path), with the trace id chosen here.

import os

from cpython.contextvars cimport get_value
from libc.string cimport memcpy

__all__ += ["TraceStamp"]

cdef const char *HEX = b"0123456789abcdef"


cdef inline char *put_hex(char *p, uint64_t v, int digits) noexcept:
    cdef int i
    for i in range(digits - 1, -1, -1):
        p[i] = HEX[v & 0xF]
        v >>= 4
    return p + digits


cdef inline uint64_t rotl(uint64_t x, int k) noexcept:
    return (x << k) | (x >> (64 - k))


cdef bint has_trace_context(object headers) except -1:
    """Whether the caller's headers name traceparent or tracestate. Headers of a shape
    encode_headers() refuses say False: it reports them, with its own message."""
    try:   # no list of names: this runs for every record that has headers
        if isinstance(headers, dict):
            return "traceparent" in headers or "tracestate" in headers
        for pair in headers:
            name = pair[0]
            if name == "traceparent" or name == "tracestate":
                return True
    except Exception:
        pass
    return False


cdef list with_traceparent(object headers, const char *header):
    """The caller's headers (a list of pairs or a dict, or None) and then the traceparent
    decide() encoded, as a new list of pairs: for a send path that may have to keep them
    (the asyncio producer's waiting send)."""
    out = [] if not headers else list(headers.items() if isinstance(headers, dict) else headers)
    out.append(("traceparent", PyBytes_FromStringAndSize(header + 13,
                                                         TRACEPARENT_HEADER_BYTES - 13)))
    return out


cdef object encoded_with_traceparent(object headers, const char *header):
    """The caller's headers and then the traceparent decide() encoded, in their wire form
    (EncodedHeaders), for a send path where no Python code reads a record's headers (no
    Python partitioner, no serializer taking a context): no list, no pair, no second
    encoding per record. Headers that cannot be encoded raise SerializationError."""
    cdef int32_t count = 0
    tail = PyBytes_FromStringAndSize(header, TRACEPARENT_HEADER_BYTES)
    if not headers:
        return encoded_headers(tail, 1)
    return encoded_headers(encode_headers(headers, &count) + tail, count + 1)


@cython.final
cdef class TraceStamp:
    """The sampling decision of ``ParentBased`` (with its default delegates), of
    ``TraceIdRatioBased``, ``ALWAYS_ON`` or ``ALWAYS_OFF``, made as the SDK's ``Tracer.start_span``
    makes it, and an unsampled record's ``traceparent`` written as the W3C propagator writes it.
    Built by kengine.otel.fast_sampling, which checks that the SDK's objects are the ones whose
    behaviour this repeats."""

    def __cinit__(self, context_var, str span_key not None, span_type, int root_mode,
                  bint parent_based, object rate_bound, int random_flag):
        if root_mode not in (SAMPLE_NEVER, SAMPLE_ALWAYS, SAMPLE_RATIO):
            raise ValueError(f"root_mode must be 0, 1 or 2, not {root_mode}")
        self._context_var = context_var
        self._span_key = span_key
        self._span_type = span_type
        self._root_mode = root_mode
        self._parent_based = parent_based
        bound = int(rate_bound or 0)
        if not 0 <= bound <= 1 << 64:
            raise ValueError(f"rate_bound must be in [0, 2**64], not {bound}")
        self._bound_all = bound == 1 << 64
        self._bound = 0 if self._bound_all else <uint64_t>bound
        self._random_flag = <uint8_t>(random_flag & 0x02)
        seed = os.urandom(32)
        memcpy(self._rng, <const char *>seed, 32)
        if self._rng[0] == 0 and self._rng[1] == 0 and self._rng[2] == 0 and self._rng[3] == 0:
            self._rng[0] = 1   # xoshiro's one state that never leaves zero
        self._parent = 0

    cdef uint64_t next_id(self) noexcept:
        """A non-zero random 64-bit id (xoshiro256**; zero is OpenTelemetry's invalid id)."""
        cdef uint64_t result, t
        while True:
            result = rotl(self._rng[1] * 5, 7) * 9
            t = self._rng[1] << 17
            self._rng[2] ^= self._rng[0]
            self._rng[3] ^= self._rng[1]
            self._rng[1] ^= self._rng[2]
            self._rng[0] ^= self._rng[3]
            self._rng[2] ^= t
            self._rng[3] = rotl(self._rng[3], 45)
            if result != 0:
                return result

    cdef int read_context(self, object context) except -1:
        """What the current span of a Context new to us says, as trace_api.get_current_span()
        and SpanContext read it. Python calls here, on a new Context only; fields last."""
        cdef int parent = 0
        cdef uint64_t hi = 0, lo = 0
        cdef uint8_t flags = 0
        span = context.get(self._span_key) if isinstance(context, dict) else None
        if span is not None and isinstance(span, self._span_type):
            sc = span.get_span_context()
            if sc is not None and sc.is_valid:
                if sc.trace_state:
                    parent = 2   # a tracestate travels too: the propagator writes it
                else:
                    parent = 1
                    tid = sc.trace_id
                    hi = <uint64_t>((tid >> 64) & 0xFFFFFFFFFFFFFFFF)
                    lo = <uint64_t>(tid & 0xFFFFFFFFFFFFFFFF)
                    flags = <uint8_t>(int(sc.trace_flags) & 0xFF)
        # the old Context is released when this frame ends, after every field is written:
        # a release that ran Python code could let another thread in between them
        old = self._last_context
        self._parent = parent
        self._parent_hi = hi
        self._parent_lo = lo
        self._parent_flags = flags
        self._last_context = context
        return 0

    cdef int decide_for(self, object headers, char *header) except -1:
        """decide() for a record with the caller's ``headers``: TRACE_PYTHON when they carry
        a trace context already, which the propagator replaces (the SDK's path does)."""
        if headers and has_trace_context(headers):
            return TRACE_PYTHON
        return self.decide(header)

    cdef object root_trace_id(self):
        """The trace id decide() chose for a sampled record's new trace, or None."""
        if self.root_trace_hi == 0 and self.root_trace_lo == 0:
            return None
        return (<object>self.root_trace_hi << 64) | self.root_trace_lo

    cdef int decide(self, char *header) except -1:
        """TRACE_UNSAMPLED (``header`` holds the encoded traceparent header,
        TRACEPARENT_HEADER_BYTES), TRACE_SAMPLED (root_trace_hi/lo: the new trace's id, or 0
        under a parent) or TRACE_PYTHON."""
        cdef uint64_t hi, lo
        cdef uint8_t flags
        cdef bint sampled
        context = get_value(self._context_var)
        if context is not self._last_context:
            self.read_context(context)
        self.root_trace_hi = 0
        self.root_trace_lo = 0
        if self._parent == 2:
            return TRACE_PYTHON
        if self._parent == 1:
            hi = self._parent_hi
            lo = self._parent_lo
            if self._parent_based:
                sampled = self._parent_flags & 0x01
            else:
                sampled = self.judge(lo)
            # the SDK keeps the parent's random-trace-id flag
            flags = (0x01 if sampled else 0) | (self._parent_flags & 0x02)
            if sampled:
                return TRACE_SAMPLED
        else:
            hi = self.next_id()
            lo = self.next_id()
            sampled = self.judge(lo)
            flags = (0x01 if sampled else 0) | self._random_flag
            if sampled:
                self.root_trace_hi = hi
                self.root_trace_lo = lo
                return TRACE_SAMPLED
        cdef char *p = header
        p[0] = 22       # zigzag varint of the key's 11 bytes
        memcpy(p + 1, b"traceparent", 11)
        p[12] = 110     # zigzag varint of the value's 55 bytes
        p += 13
        memcpy(p, b"00-", 3)
        p = put_hex(p + 3, hi, 16)
        p = put_hex(p, lo, 16)
        p[0] = b'-'
        p = put_hex(p + 1, self.next_id(), 16)
        p[0] = b'-'
        put_hex(p + 1, flags, 2)
        return TRACE_UNSAMPLED

    cdef bint judge(self, uint64_t trace_lo) noexcept:
        if self._root_mode == SAMPLE_ALWAYS:
            return True
        if self._root_mode == SAMPLE_NEVER:
            return False
        return self._bound_all or trace_lo < self._bound

    def decide_many(self, headers, Py_ssize_t count, bint encoded):
        """The decisions for the ``count`` records of a send_many() call whose headers are
        ``headers`` (a sequence, or None): ``(headers, sampled)``. An unsampled record's entry
        is its headers and then its traceparent: in wire form (EncodedHeaders) when
        ``encoded`` (no Python code of the send path reads headers), else as a new list;
        another record's is its headers as given. ``sampled``: ``(index, trace id of a new
        trace or None)`` of each record the SDK must trace. Headers that cannot be encoded are
        left as they are, for send_many() to refuse that record with its own message."""
        cdef char header[TRACEPARENT_HEADER_BYTES]
        cdef Py_ssize_t i
        cdef int outcome
        out = [None] * count
        sampled = []
        for i in range(count):
            h = None if headers is None else headers[i]
            outcome = self.decide_for(h, header)
            if outcome == TRACE_UNSAMPLED:
                try:
                    out[i] = (encoded_with_traceparent(h, header) if encoded
                              else with_traceparent(h, header))
                except Exception:
                    out[i] = h
            else:
                out[i] = h
                sampled.append((i, self.root_trace_id() if outcome == TRACE_SAMPLED
                                else None))
        return out, sampled

    def decide_for_test(self):
        """decide() from Python, for the tests: (outcome, the header's value or None)."""
        cdef char header[TRACEPARENT_HEADER_BYTES]
        outcome = self.decide(header)
        if outcome != TRACE_UNSAMPLED:
            return outcome, None
        return outcome, (<char *>header)[13:TRACEPARENT_HEADER_BYTES]
