# OpenTelemetry's sampling decision for send(), made in C: declarations (part of kengine_ext._core).
#
# Locking: the GIL. decide() runs inside send() with the GIL held and calls no Python code that
# could release it between reading and writing a field (the Python calls it makes, on a new
# Context only, happen before any field is written).
from libc.stdint cimport uint8_t, uint64_t
cimport cython

# How a sampler judges a trace id (TraceStamp._root_mode).
cdef enum:
    SAMPLE_NEVER = 0     # opentelemetry.sdk.trace.sampling.ALWAYS_OFF
    SAMPLE_ALWAYS = 1    # ALWAYS_ON
    SAMPLE_RATIO = 2     # TraceIdRatioBased: sampled iff the trace id's low 64 bits < bound

# What decide() found.
cdef enum:
    TRACE_UNSAMPLED = 0  # the record's traceparent header is written; nothing else to do
    TRACE_SAMPLED = 1    # the SDK must make the span (root_trace_id: the id chosen, or 0)
    TRACE_PYTHON = 2     # a case decide() leaves to the SDK (a tracestate to carry, an odd span)

# The encoded `traceparent` record header: varint key length, the key, varint value length and
# the 55-byte value 00-<32 hex>-<16 hex>-<2 hex>.
cdef enum:
    TRACEPARENT_HEADER_BYTES = 68


@cython.final
cdef class TraceStamp:
    # Fixed at construction (kengine.otel.fast_sampling reads the SDK's objects once):
    cdef object _context_var        # opentelemetry.context's ContextVar of the current Context
    cdef object _span_key           # str: the Context key under which the current span is
    cdef object _span_type          # opentelemetry.trace.Span: anything else there is no span
    cdef int _root_mode             # SAMPLE_*: the decision for a record with no parent span
    cdef bint _parent_based         # ParentBased with its default delegates: a parent's own
                                    # sampled flag decides; else _root_mode judges its trace id
    cdef uint64_t _bound            # SAMPLE_RATIO: TraceIdRatioBased's bound (< 2**64) ...
    cdef bint _bound_all            # ... or rate 1.0, whose bound is 2**64: every id
    cdef uint8_t _random_flag       # 0x02 (W3C random-trace-id) when the SDK sets it, else 0
    # GIL: the last Context seen and what its span says (a Context never changes once made)
    cdef object _last_context
    cdef int _parent                # 0: no valid parent; 1: valid; 2: one to leave to the SDK
    cdef uint64_t _parent_hi, _parent_lo
    cdef uint8_t _parent_flags
    cdef uint64_t _rng[4]           # GIL; xoshiro256** state: span and trace ids
    # GIL: the trace id decide() chose for a sampled record with no parent, for the SDK's
    # id generator (kengine.otel.fast_sampling.HandOffIds); 0 for the other outcomes
    cdef readonly uint64_t root_trace_hi, root_trace_lo

    cdef int decide_for(self, object headers, char *header) except -1
    cdef object root_trace_id(self)
    cdef int decide(self, char *header) except -1
    cdef int read_context(self, object context) except -1
    cdef uint64_t next_id(self) noexcept
    cdef bint judge(self, uint64_t trace_lo) noexcept
