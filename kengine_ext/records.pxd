# RecordBatch v2 (magic 2) builder and decoder, declared for the other parts of kengine_ext._core.
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint32_t, uint64_t
cimport cython
from cpython.buffer cimport Py_buffer

# Codec ids as stored in bits 0-2 of a batch's attributes.
cdef enum:
    CODEC_NONE = 0
    CODEC_GZIP = 1
    CODEC_SNAPPY = 2
    CODEC_LZ4 = 3
    CODEC_ZSTD = 4

# Byte offsets of the batch header fields (the CRC covers [ATTRIBUTES_OFFSET, end)).
cdef enum:
    BASE_OFFSET_OFFSET = 0
    BATCH_LENGTH_OFFSET = 8
    LEADER_EPOCH_OFFSET = 12
    MAGIC_OFFSET = 16
    CRC_OFFSET = 17
    ATTRIBUTES_OFFSET = 21
    LAST_OFFSET_DELTA_OFFSET = 23
    BASE_TIMESTAMP_OFFSET = 27
    MAX_TIMESTAMP_OFFSET = 35
    PRODUCER_ID_OFFSET = 43
    PRODUCER_EPOCH_OFFSET = 51
    BASE_SEQUENCE_OFFSET = 53
    RECORD_COUNT_OFFSET = 57
    BATCH_HEADER_BYTES = 61
    # batchLength counts from the leader epoch on: the whole batch minus offset and length.
    BATCH_LOG_OVERHEAD = 12

cdef enum:
    ATTR_TIMESTAMP_LOG_APPEND = 0x08
    ATTR_TRANSACTIONAL = 0x10
    ATTR_CONTROL = 0x20

# append_record() results other than an offset delta (>= 0).
cdef enum:
    APPEND_FULL = -1        # the batch has no room; seal it and open a new one
    APPEND_NO_MEMORY = -2   # realloc failed
    APPEND_TOO_LARGE = -3   # the record alone exceeds the builder's hard limit
    APPEND_NEEDS_ROOM = -4  # owner-grown buffer (_owner_grows) is full: grow() it, or seal

# Borrowed pointers to many records' fields, for the bulk encoders. Built with the GIL held
# from objects kept alive by the caller; read without the GIL.
ctypedef struct RecordColumns:
    Py_ssize_t count
    const char **key_ptr          # NULL entry: null key
    Py_ssize_t *key_len
    const char **value_ptr        # NULL entry: null value
    Py_ssize_t *value_len
    const char **headers_ptr      # encoded header entries (no count prefix); NULL array: none
    Py_ssize_t *headers_len
    int32_t *header_count
    int64_t *timestamp_ms         # NULL array: every record gets default_timestamp_ms
    int64_t default_timestamp_ms


# Recycles batch.size buffers, as Java's BufferPool does: a producer opens and completes batches
# continuously, and fresh malloc'd buffers of 16-64 KiB cost a page fault per 4 KiB when first
# written (the kernel zeroes every page). Guarded by the GIL.
@cython.final
cdef class BufferPool:
    cdef readonly Py_ssize_t buffer_bytes   # only buffers of exactly this size are pooled
    cdef Py_ssize_t _max_pooled             # buffers kept at most
    cdef char **_free                       # stack of pooled buffers
    cdef Py_ssize_t _count

    cdef char *take(self) noexcept
    cdef void give(self, char *buf) noexcept


@cython.final
cdef class RecordBatchBuilder:
    cdef char *_buf                    # owned (malloc); [0, 61) header, then records
    cdef Py_ssize_t _capacity_bytes    # allocated size of _buf
    cdef Py_ssize_t _size_bytes        # bytes written so far, header included
    cdef Py_ssize_t _batch_size_bytes  # soft limit (batch.size): a record that would pass it does not fit
    cdef Py_ssize_t _max_bytes         # hard limit (max.request.size) for a batch holding one record
    cdef int32_t _count                # records appended
    cdef int64_t _base_timestamp_ms    # timestamp of the first record
    cdef int64_t _max_timestamp_ms
    cdef int _codec                    # CODEC_*
    cdef int _level                    # validated codec level (ignored for none/snappy)
    cdef double _ratio_estimate        # expected compressed/uncompressed size, from earlier batches
    cdef double _ratio                 # measured by build(); 1.0 until then or if uncompressed
    cdef int _built_codec              # codec actually used: none when compression did not pay
    cdef int64_t _producer_id
    cdef int16_t _producer_epoch
    cdef int32_t _base_sequence
    cdef bint _transactional
    cdef bint _built                   # sealed: appends refused, bytes final
    cdef Py_ssize_t _uncompressed_bytes  # size before compression (records section + header)
    cdef int _exports                  # live buffer exports; appends refused while > 0
    cdef BufferPool _pool              # where _buf came from and goes back to, or None
    # Set by a producer's accumulator, which charges buffer.memory for _buf: past its capacity
    # an append returns APPEND_NEEDS_ROOM instead of reallocating, and the owner grow()s it once
    # the memory is reserved (or seals the batch). Otherwise _buf grows on its own.
    cdef bint _owner_grows
    # Why the last append_columns() stopped before its stop index: APPEND_FULL or
    # APPEND_NEEDS_ROOM (the owner may grow() and go on), or another APPEND_* code. Written only
    # by append_columns(), read by its caller right after, on the same thread.
    cdef Py_ssize_t _columns_stop

    cdef Py_ssize_t append_record(self, int64_t timestamp_ms,
                                  const char *key, Py_ssize_t key_len,
                                  const char *value, Py_ssize_t value_len,
                                  const char *headers, Py_ssize_t headers_len,
                                  int32_t header_count) noexcept nogil
    cdef Py_ssize_t append_columns(self, const RecordColumns *cols, Py_ssize_t start,
                                   Py_ssize_t stop) noexcept nogil
    cdef int seal(self) except -1
    cdef int shrink_to_fit(self) except -1
    cdef int grow(self, Py_ssize_t capacity) except -1
    cdef void write_producer_fields(self) noexcept nogil
    cdef bint has_room_for(self, Py_ssize_t record_bytes) noexcept nogil
    cdef Py_ssize_t estimated_size_c(self) noexcept nogil


cdef class DecodedRecord:
    cdef readonly int64_t offset
    cdef readonly int64_t timestamp
    cdef readonly object key          # bytes or None
    cdef readonly object value        # bytes or None
    cdef readonly list headers        # [(str, bytes | None)]


cdef class DecodedBatch:
    cdef readonly int64_t base_offset
    cdef readonly int32_t partition_leader_epoch
    cdef readonly int16_t attributes
    cdef readonly int32_t last_offset_delta
    cdef readonly int64_t base_timestamp
    cdef readonly int64_t max_timestamp
    cdef readonly int64_t producer_id
    cdef readonly int16_t producer_epoch
    cdef readonly int32_t base_sequence
    cdef readonly uint32_t crc
    cdef readonly list records        # [DecodedRecord]


# Owns what a RecordColumns points into: the Python objects (kept alive), Py_buffer exports
# of non-bytes objects, encoded headers and the pointer arrays themselves.
@cython.final
cdef class ColumnsHolder:
    cdef RecordColumns cols
    cdef list _keep                   # objects the pointers borrow from
    cdef Py_buffer *_views            # exports of non-bytes buffer objects
    cdef Py_ssize_t _view_count
    cdef Py_ssize_t _view_capacity
    cdef void *_arrays                # one allocation backing every array of cols

    cdef int fill(self, object values, object keys, object headers, object timestamps,
                  Py_ssize_t start, Py_ssize_t stop) except -1
    cdef int allocate(self, Py_ssize_t n, bint with_headers, bint with_ts) except -1
    cdef int regroup(self, ColumnsHolder src, const Py_ssize_t *order, Py_ssize_t n) except -1
    cdef int fill_from_batch(self, RecordBatchBuilder batch) except -1
    cdef int _borrow(self, object obj, const char **ptr, Py_ssize_t *length, str what,
                     Py_ssize_t index) except -1


@cython.final
cdef class EncodedHeaders:
    # Headers in their wire form (encode_headers()'s output) and how many; fixed once made.
    cdef readonly bytes blob
    cdef readonly int32_t count

cdef EncodedHeaders encoded_headers(bytes blob, int32_t count)
