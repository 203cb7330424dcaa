# WriteBuffer / ReadBuffer: the byte-level base every encoder and decoder of kengine_ext is
# built on. Big-endian fixed-width integers, Kafka varints, classic and compact (KIP-482)
# strings, bytes and lengths, UUIDs, tagged-field sections, all on the byte-order and varint
# helpers of primitives.pxd. Neither class is thread-safe: one owner at a time (the sender
# thread, or a test).
cimport cython
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    # Bytes held inside the WriteBuffer object itself: requests up to this size (metadata,
    # ApiVersions, transaction control, most headers) never touch malloc.
    WB_INLINE_BYTES = 1024
    # Longest string Kafka accepts in either length encoding (Java checks 0x7fff on both sides).
    MAX_STRING_BYTES = 0x7FFF


@cython.final
cdef class WriteBuffer:
    cdef:
        char* _buf                     # _inline until the first growth, then a malloc'd block
        Py_ssize_t _capacity           # bytes available at _buf
        Py_ssize_t _length             # bytes written at _buf (referenced segments not counted)
        Py_ssize_t _exports            # live buffer-protocol exports; growing/clearing refused while > 0
        bint _exporting_segments       # set only inside segments(): lets it export despite _refs
        Py_ssize_t _message_start      # offset of the open message's int32 size field, -1 if none
        Py_ssize_t _message_ref_bytes  # _ref_bytes when that message started
        Py_ssize_t _zero_copy_min_bytes  # payloads this long or longer are referenced, not copied; 0: always copy
        list _refs                     # [(offset in _buf, memoryview or bytes)] referenced payloads, None if none
        Py_ssize_t _ref_bytes          # total length of the referenced payloads
        char _inline[WB_INLINE_BYTES]

    cdef int _grow(self, Py_ssize_t extra) except -1
    cdef inline int ensure(self, Py_ssize_t extra) except -1
    cdef inline Py_ssize_t tell(self)
    cpdef Py_ssize_t reserve(self, Py_ssize_t n) except -1
    cdef int _check_patch(self, Py_ssize_t offset, Py_ssize_t n) except -1
    cdef int patch_int32(self, Py_ssize_t offset, int32_t v) except -1
    cdef int patch_uint32(self, Py_ssize_t offset, uint32_t v) except -1
    cpdef Py_ssize_t start_message(self) except -1
    cpdef Py_ssize_t end_message(self) except -1

    cdef inline int write_bytes_raw(self, const char* data, Py_ssize_t n) except -1
    cdef inline int write_int8(self, int8_t v) except -1
    cdef inline int write_bool(self, bint v) except -1
    cdef inline int write_int16(self, int16_t v) except -1
    cdef inline int write_uint16(self, uint16_t v) except -1
    cdef inline int write_int32(self, int32_t v) except -1
    cdef inline int write_uint32(self, uint32_t v) except -1
    cdef inline int write_int64(self, int64_t v) except -1
    cdef inline int write_float64(self, double v) except -1
    cdef inline int write_uvarint(self, uint32_t v) except -1
    cdef inline int write_uvarlong(self, uint64_t v) except -1
    cdef inline int write_varint(self, int32_t v) except -1
    cdef inline int write_varlong(self, int64_t v) except -1
    cdef inline int write_length(self, Py_ssize_t n, bint compact) except -1
    cdef inline int write_empty_tagged_fields(self) except -1

    cdef int _write_str(self, object s, bint compact, bint nullable) except -1
    cdef int write_string(self, object s) except -1
    cdef int write_compact_string(self, object s) except -1
    cdef int write_nullable_string(self, object s) except -1
    cdef int write_compact_nullable_string(self, object s) except -1
    cdef int _write_bytes_obj(self, object data, bint compact, bint nullable) except -1
    cdef int write_bytes(self, object data) except -1
    cdef int write_compact_bytes(self, object data) except -1
    cdef int write_nullable_bytes(self, object data) except -1
    cdef int write_compact_nullable_bytes(self, object data) except -1
    cdef int write_payload(self, object data, const char* p, Py_ssize_t n) except -1
    cdef int write_uuid(self, object u) except -1


@cython.final
cdef class ReadBuffer:
    cdef:
        Py_buffer _view                # the input's buffer, held for the ReadBuffer's lifetime
        bint _has_view                 # _view must be released in __dealloc__
        const char* _data              # _view.buf
        Py_ssize_t _pos                # offset of the next byte to read
        Py_ssize_t _end                # reads stop here (<= _view.len)
        object _memview                # memoryview over the whole input, made by the first read_view()

    cdef int _short(self, Py_ssize_t need, const char* what) except -1
    cdef int _fail(self, Py_ssize_t at, str problem) except -1
    cdef inline const char* read_raw(self, Py_ssize_t n, const char* what) except NULL
    cdef inline int8_t read_int8(self) except? -1
    cdef inline int read_bool(self) except -1
    cdef inline int16_t read_int16(self) except? -1
    cdef inline uint16_t read_uint16(self) except? 0xFFFF
    cdef inline int32_t read_int32(self) except? -1
    cdef inline uint32_t read_uint32(self) except? 0xFFFFFFFF
    cdef inline int64_t read_int64(self) except? -1
    cdef inline double read_float64(self) except? -1.0
    cdef uint32_t _read_uvarint_slow(self) except? 0xFFFFFFFF
    cdef inline uint32_t read_uvarint(self) except? 0xFFFFFFFF
    cdef uint64_t read_uvarlong(self) except? 0xFFFFFFFFFFFFFFFF
    cdef inline int32_t read_varint(self) except? -1
    cdef inline int64_t read_varlong(self) except? -1
    cdef Py_ssize_t read_length(self, bint compact, const char* what) except -2
    cdef object _read_str(self, bint compact, bint nullable)
    cdef object read_string(self)
    cdef object read_compact_string(self)
    cdef object read_nullable_string(self)
    cdef object read_compact_nullable_string(self)
    cdef object _read_bytes(self, bint compact, bint nullable)
    cdef object read_bytes(self)
    cdef object read_compact_bytes(self)
    cdef object read_nullable_bytes(self)
    cdef object read_compact_nullable_bytes(self)
    cdef object read_uuid(self)
    cpdef object read_view(self, Py_ssize_t n)
    cdef int skip(self, Py_ssize_t n, const char* what) except -1
    cdef int skip_tagged_fields(self) except -1
