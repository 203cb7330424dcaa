# hashing: CRC32C and Kafka's murmur2 for Python callers. The C functions behind them are
# declared in hashing.pxd, where the other parts of the core call them directly.
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from "Python.h":
    bint PyBytes_CheckExact(object o)
    bint PyLong_Check(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1

import os as _os

from kengine_ext.errors import ConfigError as _ConfigError

__all__ += ["crc32c", "crc32c_implementation", "murmur2", "partition_for_key"]

cdef enum:
    # Inputs from this size on are checksummed with the GIL released. Measured here: dropping
    # and retaking the GIL costs ~20 ns uncontended, a 32 KiB CRC ~1.2 us (so <2% overhead),
    # 4 KiB ~0.2 us (10%). Under contention retaking the GIL can wait a whole switch interval
    # (5 ms), so releasing only pays when the work handed to other threads is worth it.
    _CRC32C_NOGIL_MIN_BYTES = 32 * 1024


cdef void _crc32c_init_from_env() except *:
    mode = _os.environ.get("KENGINE_CRC32C", "")
    if mode not in ("", "auto", "software"):
        raise _ConfigError(
            "KENGINE_CRC32C", mode,
            "set it to 'software' to force the portable CRC32C, or to 'auto' (or leave it unset) "
            "to use the CPU's CRC32C instructions when it has them")
    kengine_crc32c_init(mode == "software")


_crc32c_init_from_env()


cdef inline uint32_t _crc32c_start(object crc) except? 0xFFFFFFFF:
    try:
        return crc
    except OverflowError:
        raise ValueError(
            f"crc must be a CRC32C value in [0, 2**32) (0 to start, or the result of the "
            f"previous call to continue); got {crc!r}") from None


ctypedef uint32_t (*_crc32c_fn)(uint32_t crc, const void *buf, size_t len) noexcept nogil


cdef object _crc32c_of(_crc32c_fn fn, object data, object crc):
    cdef uint32_t result = _crc32c_start(crc)
    cdef const char *p
    cdef Py_ssize_t size
    cdef Py_buffer view
    cdef bint release = False
    if PyBytes_CheckExact(data):  # immutable and referenced by the caller: no buffer needed
        p = PyBytes_AS_STRING(data)
        size = PyBytes_GET_SIZE(data)
    else:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        release = True
        p = <const char *>view.buf
        size = view.len
    if size >= _CRC32C_NOGIL_MIN_BYTES:
        with nogil:
            result = fn(result, p, <size_t>size)
    else:
        result = fn(result, p, <size_t>size)
    if release:
        PyBuffer_Release(&view)
    return result


def crc32c(data, crc=0):
    """CRC32C (Castagnoli) of a bytes-like object, as Kafka's RecordBatch v2 uses it.

    ``data`` is anything with the buffer protocol in one contiguous piece (bytes, bytearray,
    memoryview, array.array, a contiguous numpy array...). ``crc`` continues a checksum:
    ``crc32c(b, crc32c(a)) == crc32c(a + b)``. Inputs of 32 KiB or more are processed with the
    GIL released.
    """
    return _crc32c_of(kengine_crc32c, data, crc)


def crc32c_implementation():
    """Which CRC32C implementation :func:`crc32c` runs: ``"sse4.2"`` (x86-64),
    ``"armv8-crc"`` (AArch64) or ``"software"`` (portable slicing-by-8; also what
    ``KENGINE_CRC32C=software`` in the environment at import forces)."""
    return kengine_crc32c_impl().decode("ascii")


def _crc32c_software(data, crc=0):
    """:func:`crc32c` on the portable path whatever the CPU, for tests and benchmarks."""
    return _crc32c_of(kengine_crc32c_software, data, crc)


cdef int _key_span(object key, const char **data, Py_ssize_t *size, Py_buffer *view) except -1:
    """Points data/size at the bytes of a key without copying (primitives.borrow_view).
    Returns 1 when ``view`` was filled and must be released, else 0."""
    cdef int r = borrow_view(key, data, size, view)
    if r >= 0:
        return r
    if r == -3:
        key.encode("utf-8")   # raises the str's UnicodeEncodeError
    if key is None:
        raise TypeError(
            "the key is None: a record without a key has no murmur2 hash (the partitioner "
            "chooses its partition); pass the serialized key as bytes or str")
    raise TypeError(
        f"the key must be bytes-like or str (the serialized key), not {type(key).__name__}")


def murmur2(key):
    """Kafka's murmur2 of a key, as the Java client computes it: a signed 32-bit int.

    ``key`` is the serialized key: any bytes-like object, or a ``str``, which is hashed as its
    UTF-8 encoding (as Kafka's StringSerializer sends it). An empty key is hashed; ``None`` is a
    TypeError.
    """
    cdef const char *data
    cdef Py_ssize_t size
    cdef Py_buffer view
    cdef bint release = _key_span(key, &data, &size, &view)
    cdef int32_t h = kengine_murmur2(data, size)
    if release:
        PyBuffer_Release(&view)
    return h


def partition_for_key(key, num_partitions):
    """The partition Kafka's default partitioner gives a keyed record:
    ``(murmur2(key) & 0x7fffffff) % num_partitions``. ``key`` as for :func:`murmur2`;
    ``num_partitions`` is the topic's partition count, at least 1."""
    cdef const char *data
    cdef Py_ssize_t size
    cdef Py_buffer view
    cdef int32_t n = _partition_count(num_partitions)
    cdef bint release = _key_span(key, &data, &size, &view)
    cdef int32_t p = kengine_partition_for_key(data, size, n)
    if release:
        PyBuffer_Release(&view)
    return p


cdef inline int32_t _partition_count(object num_partitions) except -1:
    cdef int overflow = 0
    cdef long long n = 0
    if PyLong_Check(num_partitions):
        n = PyLong_AsLongLongAndOverflow(num_partitions, &overflow)  # overflow: -1, no error
    if not 1 <= n <= 0x7fffffff:
        raise ValueError(
            f"num_partitions must be the topic's partition count, an int in [1, 2**31); "
            f"got {num_partitions!r}")
    return <int32_t>n
