# The shared low-level helpers of kengine_ext._core (declarations and the C side in
# primitives.pxd): clocks, varints, and borrowing the bytes of bytes / str / buffer objects.
# Every other part uses these; none defines its own.

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint32_t, uint64_t

from kengine_ext.errors import RecordTooLargeError, SerializationError

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    # the same, NULL checked by hand: a str without a UTF-8 form is told apart without a
    # try/except on the per-record path (one costs ~30 instructions per field, measured)
    const char *utf8_or_null "PyUnicode_AsUTF8AndSize"(object s, Py_ssize_t *size)
    void PyErr_Clear()

__all__ += ["monotonic_ms", "wall_clock_ms"]

kengine_wallclock_init()


# ---- clocks ----

cdef inline int64_t now_ms() noexcept nogil:
    """Epoch ms, for record timestamps (wallclock.h). Call with the GIL held."""
    return kengine_wall_ms()


cdef inline int64_t mono_ms() noexcept nogil:
    """Monotonic ms, for linger, backoff and timeouts."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


def monotonic_ms() -> int:
    """The monotonic clock (ms) used for linger, backoff and timeouts."""
    return mono_ms()


def wall_clock_ms() -> int:
    """Epoch milliseconds, as used for record timestamps."""
    return now_ms()


# ---- varints (Kafka's: base-128 groups, least significant first; zigzag for signed) ----

cdef inline uint32_t zigzag32(int32_t v) noexcept nogil:
    return (<uint32_t>v << 1) ^ <uint32_t>(v >> 31)

cdef inline uint64_t zigzag64(int64_t v) noexcept nogil:
    return (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)

cdef inline int32_t unzigzag32(uint32_t u) noexcept nogil:
    return <int32_t>((u >> 1) ^ (<uint32_t>0 - (u & 1)))

cdef inline int64_t unzigzag64(uint64_t u) noexcept nogil:
    return <int64_t>((u >> 1) ^ (<uint64_t>0 - (u & 1)))

cdef inline Py_ssize_t uvarint_size(uint64_t v) noexcept nogil:
    # bits needed / 7, rounded up; branch-free (v | 1 keeps clz defined for 0)
    return (70 - kengine_clzll(v | 1)) // 7

cdef inline char *put_uvarint(char *p, uint64_t v) noexcept nogil:
    """Writes v at p (room for uvarint_size(v) bytes); returns the byte after it."""
    if v < 0x80:  # lengths of short keys, deltas and counts: the common case
        p[0] = <char>v
        return p + 1
    while v >= 0x80:
        p[0] = <char>((v & 0x7F) | 0x80)
        v >>= 7
        p += 1
    p[0] = <char>v
    return p + 1

cdef inline const unsigned char *read_uvarint(const unsigned char *p, const unsigned char *end,
                                              int max_bytes, uint64_t *out) noexcept nogil:
    """Reads an unsigned varint of at most max_bytes; NULL when truncated (it reaches end) or
    too long. Bits beyond 64 are dropped: callers that care check the value they got."""
    cdef uint64_t v = 0
    cdef int shift = 0, i
    for i in range(max_bytes):
        if p >= end:
            return NULL
        v |= <uint64_t>(p[0] & 0x7F) << shift
        if not (p[0] & 0x80):
            out[0] = v
            return p + 1
        p += 1
        shift += 7
    return NULL

cdef inline const unsigned char *read_varint32(const unsigned char *p, const unsigned char *end,
                                               int64_t *out) noexcept nogil:
    cdef uint64_t u
    p = read_uvarint(p, end, 5, &u)
    if p != NULL:
        if (u >> 32) != 0:
            return NULL
        out[0] = unzigzag32(<uint32_t>u)
    return p

cdef inline const unsigned char *read_varint64(const unsigned char *p, const unsigned char *end,
                                               int64_t *out) noexcept nogil:
    cdef uint64_t u
    p = read_uvarint(p, end, 10, &u)
    if p != NULL:
        out[0] = unzigzag64(u)
    return p


# ---- Python values -> borrowed byte ranges ----

cdef inline int borrow_view(object obj, const char **ptr, Py_ssize_t *length,
                            Py_buffer *view) except -2:
    """Points ptr/length at the bytes of obj without copying: bytes and str (as its UTF-8
    form, which CPython caches on the str and which is the str's own storage when it is
    ASCII) directly, other buffer-protocol objects through ``view``. Returns 1 when ``view``
    was filled (release it), 0 when not needed, -1 when obj is none of these (nothing set),
    -3 when it is a str with no UTF-8 form (lone surrogates; no error is left set)."""
    if PyBytes_CheckExact(obj):
        ptr[0] = PyBytes_AS_STRING(obj)
        length[0] = PyBytes_GET_SIZE(obj)
        return 0
    if PyUnicode_Check(obj):
        ptr[0] = utf8_or_null(obj, length)
        if ptr[0] == NULL:
            PyErr_Clear()   # the UnicodeEncodeError: the caller says which field it was
            return -3
        return 0
    if not PyObject_CheckBuffer(obj):
        return -1
    PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    ptr[0] = <const char *>view.buf
    length[0] = view.len
    return 1


cdef int borrow_bytes(object obj, const char **ptr, Py_ssize_t *length, Py_buffer *view,
                      bint *has_view, object what, Py_ssize_t index) except -1:
    """A record's key, value or header value as borrowed bytes (borrow_view), None giving ptr
    NULL and length -1; has_view set when the caller must release view. what/index only name
    the field in errors (index -1: no record number), so callers pass constants and nothing is
    formatted unless something is wrong."""
    cdef int r
    has_view[0] = False
    if obj is None:
        ptr[0] = NULL
        length[0] = -1
        return 0
    r = borrow_view(obj, ptr, length, view)
    if r == -3:   # a str holding lone surrogates has no UTF-8 form
        raise_not_utf8(obj, what, index)
    if r < 0:
        raise SerializationError(
            f"{describe_field(what, index)} must be bytes, str, a buffer-protocol object or "
            f"None, not {type(obj).__name__}; configure a serializer for other types")
    has_view[0] = r == 1
    if length[0] > INT32_MAX:
        if has_view[0]:
            PyBuffer_Release(view)
            has_view[0] = False
        raise RecordTooLargeError(f"{describe_field(what, index)} is {length[0]} bytes; Kafka "
                                  f"limits it to {INT32_MAX}")
    return 0


cdef int raise_not_utf8(str obj, object what, Py_ssize_t index) except -1:
    """Raises the SerializationError of a str field with no UTF-8 form. A function of its
    own: a try/except in borrow_bytes() would cost every record its thread-state set-up."""
    try:
        obj.encode("utf-8")
    except UnicodeEncodeError as e:
        raise not_utf8(what, index, e) from None
    return 0


cdef object not_utf8(object what, Py_ssize_t index, object e):
    """The SerializationError of a str field that cannot be encoded as UTF-8."""
    return SerializationError(
        f"{describe_field(what, index)} is a str that cannot be encoded as UTF-8 ({e.reason}: "
        f"{e.object[e.start:e.end]!r} at index {e.start}, e.g. from "
        f"os.fsdecode/surrogateescape); pass bytes, or a str of valid text",
        field=what if what in ("key", "value") else None)


cdef str describe_field(object what, Py_ssize_t index):
    return str(what) if index < 0 else f"{what} of record {index}"
