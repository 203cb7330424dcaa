# WriteBuffer / ReadBuffer (declared in buffer.pxd); part of kengine_ext._core.
#
# Hot writers and readers are `cdef inline` methods of final classes, so calls from the other
# parts are direct C calls the compiler inlines. Python sees generic `write(kind, value)` /
# `read(kind)` methods (tests, the fake broker) and the framing/export API.
#
# No method releases the GIL: the only bulk work is memcpy of payloads the caller already
# holds (microseconds), and giving up the GIL there would let a busy user thread keep it for
# a whole switch interval (5 ms) before the sender thread got it back.

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.long cimport PyLong_Check
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.number cimport PyNumber_Index
from cpython.ref cimport PyObject, Py_DECREF
from libc.stdint cimport INT32_MAX
from libc.string cimport memcpy, memset

from uuid import UUID as _UUID

from kengine_ext.errors import IllegalStateError, ProtocolError

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL
    # Returns NULL with an exception set on invalid UTF-8; called raw so the decoder can turn
    # that into ProtocolError instead of leaking UnicodeDecodeError.
    PyObject* _kengine_decode_utf8 "PyUnicode_DecodeUTF8"(const char* s, Py_ssize_t n,
                                                          const char* errors)
    void PyErr_Clear()
    object PyMemoryView_FromObject(object obj)

__all__ += ["WriteBuffer", "ReadBuffer"]

# kind names accepted by WriteBuffer.write() / ReadBuffer.read()
cdef enum _Kind:
    KIND_INT8 = 1
    KIND_BOOL
    KIND_INT16
    KIND_UINT16
    KIND_INT32
    KIND_UINT32
    KIND_INT64
    KIND_FLOAT64
    KIND_UVARINT
    KIND_UVARLONG
    KIND_VARINT
    KIND_VARLONG
    KIND_UUID
    KIND_STRING
    KIND_COMPACT_STRING
    KIND_NULLABLE_STRING
    KIND_COMPACT_NULLABLE_STRING
    KIND_BYTES
    KIND_COMPACT_BYTES
    KIND_NULLABLE_BYTES
    KIND_COMPACT_NULLABLE_BYTES
    KIND_RAW
    KIND_TAGGED_FIELDS

cdef dict _BUFFER_KINDS = {
    "int8": KIND_INT8, "bool": KIND_BOOL, "int16": KIND_INT16, "uint16": KIND_UINT16,
    "int32": KIND_INT32, "uint32": KIND_UINT32, "int64": KIND_INT64, "float64": KIND_FLOAT64,
    "uvarint": KIND_UVARINT, "uvarlong": KIND_UVARLONG, "varint": KIND_VARINT,
    "varlong": KIND_VARLONG, "uuid": KIND_UUID, "string": KIND_STRING,
    "compact_string": KIND_COMPACT_STRING, "nullable_string": KIND_NULLABLE_STRING,
    "compact_nullable_string": KIND_COMPACT_NULLABLE_STRING, "bytes": KIND_BYTES,
    "compact_bytes": KIND_COMPACT_BYTES, "nullable_bytes": KIND_NULLABLE_BYTES,
    "compact_nullable_bytes": KIND_COMPACT_NULLABLE_BYTES, "raw": KIND_RAW,
    "tagged_fields": KIND_TAGGED_FIELDS,
}


cdef inline object _as_int(object v):
    # Cython's C-integer conversion would truncate floats; Kafka fields are integers, so take
    # int and anything with __index__ (numpy integers) and reject the rest with a TypeError.
    return v if PyLong_Check(v) else PyNumber_Index(v)


cdef int _buffer_kind(str kind) except -1:
    code = _BUFFER_KINDS.get(kind)
    if code is None:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(_BUFFER_KINDS)}")
    return code


@cython.final
cdef class WriteBuffer:
    """A growable output buffer of Kafka wire primitives.

    The first 1 KiB lives inside the object (no malloc for small requests); beyond that the
    storage doubles. ``start_message()``/``end_message()`` frame a size-prefixed message.

    ``zero_copy_min_bytes``: bytes/records payloads at least this long are *referenced* rather
    than copied (Kafka's Java client does the same for produce records); the buffer then holds
    the frame as several pieces: send ``segments()`` with ``socket.sendmsg`` or join them with
    ``to_bytes()``. Referenced objects must not be modified until the frame is sent. 0 (the
    default) copies everything, and the buffer exports one contiguous buffer (``memoryview(wb)``,
    ``sock.send(wb)``). While an export is alive the written bytes are frozen: writes that need
    to grow the storage, ``patch()`` and ``clear()`` raise ``BufferError``.
    """

    def __cinit__(self):
        self._buf = &self._inline[0]
        self._capacity = WB_INLINE_BYTES
        self._length = 0
        self._exports = 0
        self._exporting_segments = False
        self._message_start = -1
        self._message_ref_bytes = 0
        self._zero_copy_min_bytes = 0
        self._refs = None
        self._ref_bytes = 0

    def __init__(self, Py_ssize_t zero_copy_min_bytes=0):
        if zero_copy_min_bytes < 0:
            raise ValueError(f"zero_copy_min_bytes must be >= 0 (0 disables references), "
                             f"got {zero_copy_min_bytes}")
        self._zero_copy_min_bytes = zero_copy_min_bytes

    def __dealloc__(self):
        if self._buf != &self._inline[0]:
            PyMem_Free(self._buf)

    # --- storage ---

    cdef int _grow(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t need = self._length + extra
        cdef Py_ssize_t cap = self._capacity
        cdef char* p
        if self._exports > 0:
            raise BufferError("cannot grow a WriteBuffer while it is exported (a memoryview or "
                              "segments() list is alive); release those before writing more")
        if extra < 0 or need < 0:
            raise OverflowError(f"WriteBuffer cannot hold {self._length} + {extra} bytes")
        while cap < need:
            cap <<= 1
        if self._buf == &self._inline[0]:
            p = <char*>PyMem_Malloc(cap)
            if p == NULL:
                raise MemoryError(f"WriteBuffer: cannot allocate {cap} bytes")
            memcpy(p, self._buf, self._length)
        else:
            p = <char*>PyMem_Realloc(self._buf, cap)
            if p == NULL:
                raise MemoryError(f"WriteBuffer: cannot grow to {cap} bytes")
        self._buf = p
        self._capacity = cap
        return 0

    cdef inline int ensure(self, Py_ssize_t extra) except -1:
        if self._length + extra > self._capacity:
            return self._grow(extra)
        return 0

    cdef inline Py_ssize_t tell(self):
        return self._length + self._ref_bytes

    cpdef Py_ssize_t reserve(self, Py_ssize_t n) except -1:
        """Appends ``n`` zero bytes to fill in later with ``patch()``; returns their offset."""
        cdef Py_ssize_t offset
        if n < 0:
            raise ValueError(f"cannot reserve {n} bytes")
        self.ensure(n)
        offset = self._length
        memset(self._buf + offset, 0, n)
        self._length += n
        return offset

    cdef int _check_patch(self, Py_ssize_t offset, Py_ssize_t n) except -1:
        if self._exports > 0:
            raise BufferError("cannot patch a WriteBuffer while it is exported")
        if offset < 0 or offset > self._length - n:
            raise IndexError(f"patch of {n} bytes at offset {offset} is outside the "
                             f"{self._length} bytes written")
        return 0

    cdef int patch_int32(self, Py_ssize_t offset, int32_t v) except -1:
        self._check_patch(offset, 4)
        store_be32(self._buf + offset, <uint32_t>v)
        return 0

    cdef int patch_uint32(self, Py_ssize_t offset, uint32_t v) except -1:
        self._check_patch(offset, 4)
        store_be32(self._buf + offset, v)
        return 0

    cpdef Py_ssize_t start_message(self) except -1:
        """Reserves the int32 size of a message; returns its offset. Messages do not nest."""
        if self._message_start >= 0:
            raise IllegalStateError(f"start_message(): the message started at offset "
                                    f"{self._message_start} is still open; end_message() first")
        self._message_start = self.reserve(4)
        self._message_ref_bytes = self._ref_bytes
        return self._message_start

    cpdef Py_ssize_t end_message(self) except -1:
        """Patches the open message's size (the bytes after the size field); returns it."""
        cdef Py_ssize_t start = self._message_start
        cdef Py_ssize_t size
        if start < 0:
            raise IllegalStateError("end_message() without a start_message()")
        size = self._length - start - 4 + self._ref_bytes - self._message_ref_bytes
        if size > INT32_MAX:
            raise ValueError(f"a message of {size} bytes does not fit Kafka's int32 size field")
        self.patch_int32(start, <int32_t>size)
        self._message_start = -1
        return size

    # --- fixed-width writers ---

    cdef inline int write_bytes_raw(self, const char* data, Py_ssize_t n) except -1:
        if self._length + n > self._capacity:
            self._grow(n)
        memcpy(self._buf + self._length, data, n)
        self._length += n
        return 0

    cdef inline int write_int8(self, int8_t v) except -1:
        if self._length + 1 > self._capacity:
            self._grow(1)
        self._buf[self._length] = <char>v
        self._length += 1
        return 0

    cdef inline int write_bool(self, bint v) except -1:
        return self.write_int8(1 if v else 0)

    cdef inline int write_int16(self, int16_t v) except -1:
        if self._length + 2 > self._capacity:
            self._grow(2)
        store_be16(self._buf + self._length, <uint16_t>v)
        self._length += 2
        return 0

    cdef inline int write_uint16(self, uint16_t v) except -1:
        return self.write_int16(<int16_t>v)

    cdef inline int write_int32(self, int32_t v) except -1:
        if self._length + 4 > self._capacity:
            self._grow(4)
        store_be32(self._buf + self._length, <uint32_t>v)
        self._length += 4
        return 0

    cdef inline int write_uint32(self, uint32_t v) except -1:
        return self.write_int32(<int32_t>v)

    cdef inline int write_int64(self, int64_t v) except -1:
        if self._length + 8 > self._capacity:
            self._grow(8)
        store_be64(self._buf + self._length, <uint64_t>v)
        self._length += 8
        return 0

    cdef inline int write_float64(self, double v) except -1:
        return self.write_int64(<int64_t>double_bits(v))

    # --- varints (protobuf-style base-128, little-endian groups; zigzag for signed) ---

    cdef inline int write_uvarint(self, uint32_t v) except -1:
        if self._length + 5 > self._capacity:
            self._grow(5)
        self._length = put_uvarint(self._buf + self._length, v) - self._buf
        return 0

    cdef inline int write_uvarlong(self, uint64_t v) except -1:
        if self._length + 10 > self._capacity:
            self._grow(10)
        self._length = put_uvarint(self._buf + self._length, v) - self._buf
        return 0

    cdef inline int write_varint(self, int32_t v) except -1:
        return self.write_uvarint(zigzag32(v))

    cdef inline int write_varlong(self, int64_t v) except -1:
        return self.write_uvarlong(zigzag64(v))

    cdef inline int write_length(self, Py_ssize_t n, bint compact) except -1:
        # length of an array, bytes or records; -1 is null
        if n > INT32_MAX or n < -1:
            raise ValueError(f"length {n} does not fit Kafka's int32 lengths")
        if compact:
            return self.write_uvarint(<uint32_t>(n + 1))
        return self.write_int32(<int32_t>n)

    cdef inline int write_empty_tagged_fields(self) except -1:
        return self.write_int8(0)

    # --- strings (UTF-8; classic: int16 length, compact: uvarint length + 1; null: -1 / 0) ---

    cdef int _write_str(self, object s, bint compact, bint nullable) except -1:
        cdef Py_ssize_t n
        cdef const char* p
        if s is None:
            if not nullable:
                raise TypeError("expected str, got None (this string is not nullable)")
            return self.write_uvarint(0) if compact else self.write_int16(-1)
        if not isinstance(s, str):
            raise TypeError(f"expected str, got {type(s).__name__}")
        p = PyUnicode_AsUTF8AndSize(s, &n)
        if n > MAX_STRING_BYTES:
            raise ValueError(f"a string of {n} UTF-8 bytes is longer than Kafka's limit of "
                             f"{MAX_STRING_BYTES}")
        if compact:
            self.write_uvarint(<uint32_t>(n + 1))
        else:
            self.write_int16(<int16_t>n)
        return self.write_bytes_raw(p, n)

    cdef int write_string(self, object s) except -1:
        return self._write_str(s, False, False)

    cdef int write_compact_string(self, object s) except -1:
        return self._write_str(s, True, False)

    cdef int write_nullable_string(self, object s) except -1:
        return self._write_str(s, False, True)

    cdef int write_compact_nullable_string(self, object s) except -1:
        return self._write_str(s, True, True)

    # --- bytes (any buffer-protocol object; classic: int32 length, compact: uvarint + 1) ---

    cdef int _write_bytes_obj(self, object data, bint compact, bint nullable) except -1:
        cdef Py_buffer view
        if data is None:
            if not nullable:
                raise TypeError("expected a bytes-like object, got None (this field is not nullable)")
            return self.write_length(-1, compact)
        if PyBytes_CheckExact(data):
            self.write_length(PyBytes_GET_SIZE(data), compact)
            return self.write_payload(data, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self.write_length(view.len, compact)
            self.write_payload(data, <const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return 0

    cdef int write_bytes(self, object data) except -1:
        return self._write_bytes_obj(data, False, False)

    cdef int write_compact_bytes(self, object data) except -1:
        return self._write_bytes_obj(data, True, False)

    cdef int write_nullable_bytes(self, object data) except -1:
        return self._write_bytes_obj(data, False, True)

    cdef int write_compact_nullable_bytes(self, object data) except -1:
        return self._write_bytes_obj(data, True, True)

    cdef int write_payload(self, object data, const char* p, Py_ssize_t n) except -1:
        """Appends the n bytes at p, which belong to `data`: copied, or referenced when the
        buffer was made with a zero-copy threshold that n reaches."""
        if self._zero_copy_min_bytes == 0 or n < self._zero_copy_min_bytes:
            return self.write_bytes_raw(p, n)
        ref = data if PyBytes_CheckExact(data) else PyMemoryView_FromObject(data)
        if self._refs is None:
            self._refs = []
        self._refs.append((self._length, ref))
        self._ref_bytes += n
        return 0

    cdef int write_uuid(self, object u) except -1:
        cdef Py_buffer view
        if isinstance(u, _UUID):
            u = u.bytes
        if PyBytes_CheckExact(u) and PyBytes_GET_SIZE(u) == 16:
            return self.write_bytes_raw(PyBytes_AS_STRING(u), 16)
        try:
            PyObject_GetBuffer(u, &view, PyBUF_SIMPLE)
        except TypeError:
            raise TypeError(f"a uuid is a uuid.UUID or 16 bytes, got {type(u).__name__}") from None
        try:
            if view.len != 16:
                raise ValueError(f"a uuid is 16 bytes, got {view.len}")
            self.write_bytes_raw(<const char*>view.buf, 16)
        finally:
            PyBuffer_Release(&view)
        return 0

    # --- Python API ---

    def write(self, str kind, value=None):
        """Appends one value of a wire ``kind``: int8, bool, int16, uint16, int32, uint32,
        int64, float64, uvarint, uvarlong, varint, varlong, uuid, [compact_][nullable_]string,
        [compact_][nullable_]bytes, raw (bytes-like, no length) or tagged_fields (an empty
        tagged-field section; ``value`` unused)."""
        cdef int code = _buffer_kind(kind)
        cdef Py_buffer view
        if code == KIND_INT8:
            self.write_int8(_as_int(value))
        elif code == KIND_BOOL:
            if not isinstance(value, (bool, int)):
                raise TypeError(f"expected bool, got {type(value).__name__}")
            self.write_bool(value)
        elif code == KIND_INT16:
            self.write_int16(_as_int(value))
        elif code == KIND_UINT16:
            self.write_uint16(_as_int(value))
        elif code == KIND_INT32:
            self.write_int32(_as_int(value))
        elif code == KIND_UINT32:
            self.write_uint32(_as_int(value))
        elif code == KIND_INT64:
            self.write_int64(_as_int(value))
        elif code == KIND_FLOAT64:
            self.write_float64(value)
        elif code == KIND_UVARINT:
            self.write_uvarint(_as_int(value))
        elif code == KIND_UVARLONG:
            self.write_uvarlong(_as_int(value))
        elif code == KIND_VARINT:
            self.write_varint(_as_int(value))
        elif code == KIND_VARLONG:
            self.write_varlong(_as_int(value))
        elif code == KIND_UUID:
            self.write_uuid(value)
        elif code == KIND_STRING:
            self.write_string(value)
        elif code == KIND_COMPACT_STRING:
            self.write_compact_string(value)
        elif code == KIND_NULLABLE_STRING:
            self.write_nullable_string(value)
        elif code == KIND_COMPACT_NULLABLE_STRING:
            self.write_compact_nullable_string(value)
        elif code == KIND_BYTES:
            self.write_bytes(value)
        elif code == KIND_COMPACT_BYTES:
            self.write_compact_bytes(value)
        elif code == KIND_NULLABLE_BYTES:
            self.write_nullable_bytes(value)
        elif code == KIND_COMPACT_NULLABLE_BYTES:
            self.write_compact_nullable_bytes(value)
        elif code == KIND_RAW:
            PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
            try:
                self.write_payload(value, <const char*>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
        else:
            self.write_empty_tagged_fields()

    def patch(self, str kind, Py_ssize_t offset, value):
        """Overwrites an ``int32`` or ``uint32`` at ``offset`` (from ``reserve()``)."""
        if kind == "int32":
            self.patch_int32(offset, _as_int(value))
        elif kind == "uint32":
            self.patch_uint32(offset, _as_int(value))
        else:
            raise ValueError(f"patch() supports int32 and uint32, not {kind!r}")

    @property
    def position(self):
        """Bytes in the frame so far (referenced payloads included)."""
        return self.tell()

    def __len__(self):
        return self.tell()

    def clear(self):
        """Empties the buffer, keeping its storage for reuse."""
        if self._exports > 0:
            raise BufferError("cannot clear a WriteBuffer while it is exported (a memoryview "
                              "or segments() list is alive)")
        self._length = 0
        self._refs = None
        self._ref_bytes = 0
        self._message_start = -1

    def to_bytes(self):
        """The written bytes as one ``bytes`` object (referenced payloads copied in)."""
        cdef Py_ssize_t start = 0, off
        cdef char* dst
        cdef Py_buffer view
        if self._refs is None:
            return PyBytes_FromStringAndSize(self._buf, self._length)
        result = PyBytes_FromStringAndSize(NULL, self.tell())
        dst = PyBytes_AS_STRING(result)
        for off, ref in self._refs:
            memcpy(dst, self._buf + start, off - start)
            dst += off - start
            start = off
            PyObject_GetBuffer(ref, &view, PyBUF_SIMPLE)
            memcpy(dst, view.buf, view.len)
            dst += view.len
            PyBuffer_Release(&view)
        memcpy(dst, self._buf + start, self._length - start)
        return result

    def segments(self):
        """The frame as a list of buffers in wire order, for ``socket.sendmsg``: views of this
        buffer's own bytes interleaved with the referenced payloads. The views freeze this
        buffer (see the class docs) until they are released."""
        cdef Py_ssize_t start = 0, off
        cdef list out = []
        if self._refs is None:
            if self._length:
                out.append(memoryview(self))
            return out
        self._exporting_segments = True
        try:
            whole = memoryview(self)
        finally:
            self._exporting_segments = False
        for off, ref in self._refs:
            if off > start:
                out.append(whole[start:off])
            out.append(ref)
            start = off
        if self._length > start:
            out.append(whole[start:self._length])
        return out

    def __getbuffer__(self, Py_buffer* view, int flags):
        if self._refs is not None and not self._exporting_segments:
            raise BufferError("this WriteBuffer references payloads it did not copy "
                              "(zero_copy_min_bytes); send segments() or to_bytes() instead")
        PyBuffer_FillInfo(view, self, self._buf, self._length, 1, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self._exports -= 1

    def __repr__(self):
        return (f"<WriteBuffer {self.tell()} bytes, {len(self._refs) if self._refs else 0} "
                f"referenced payloads>")


@cython.final
cdef class ReadBuffer:
    """Bounds-checked reader over any buffer-protocol object (bytes, bytearray, memoryview,
    mmap...). The object's buffer is held until the ReadBuffer is released, so a bytearray
    cannot be resized under it. Every malformed or truncated read raises
    ``kengine.errors.ProtocolError`` naming the offset, what was read and what was missing."""

    def __cinit__(self, data):
        PyObject_GetBuffer(data, &self._view, PyBUF_SIMPLE)
        self._has_view = True
        self._data = <const char*>self._view.buf
        if self._data == NULL:
            # keeps read_raw()'s result non-NULL (NULL is its error value)
            self._data = kengine_empty_bytes
        self._pos = 0
        self._end = self._view.len

    def __dealloc__(self):
        if self._has_view:
            PyBuffer_Release(&self._view)

    cdef int _short(self, Py_ssize_t need, const char* what) except -1:
        cdef Py_ssize_t avail = self._end - self._pos
        raise ProtocolError(f"truncated input: {what.decode('ascii')} at offset {self._pos} "
                            f"needs {need} bytes but {avail} remain ({need - avail} missing)")

    cdef int _fail(self, Py_ssize_t at, str problem) except -1:
        raise ProtocolError(f"malformed input at offset {at}: {problem}")

    cdef inline const char* read_raw(self, Py_ssize_t n, const char* what) except NULL:
        cdef const char* p
        if n > self._end - self._pos:
            self._short(n, what)
            return NULL
        p = self._data + self._pos
        self._pos += n
        return p

    cdef inline int8_t read_int8(self) except? -1:
        if self._pos >= self._end:
            self._short(1, "int8")
            return -1
        self._pos += 1
        return <int8_t>self._data[self._pos - 1]

    cdef inline int read_bool(self) except -1:
        return self.read_int8() != 0

    cdef inline int16_t read_int16(self) except? -1:
        if self._end - self._pos < 2:
            self._short(2, "int16")
            return -1
        self._pos += 2
        return <int16_t>load_be16(self._data + self._pos - 2)

    cdef inline uint16_t read_uint16(self) except? 0xFFFF:
        if self._end - self._pos < 2:
            self._short(2, "uint16")
            return 0xFFFF
        self._pos += 2
        return load_be16(self._data + self._pos - 2)

    cdef inline int32_t read_int32(self) except? -1:
        if self._end - self._pos < 4:
            self._short(4, "int32")
            return -1
        self._pos += 4
        return <int32_t>load_be32(self._data + self._pos - 4)

    cdef inline uint32_t read_uint32(self) except? 0xFFFFFFFF:
        if self._end - self._pos < 4:
            self._short(4, "uint32")
            return 0xFFFFFFFF
        self._pos += 4
        return load_be32(self._data + self._pos - 4)

    cdef inline int64_t read_int64(self) except? -1:
        if self._end - self._pos < 8:
            self._short(8, "int64")
            return -1
        self._pos += 8
        return <int64_t>load_be64(self._data + self._pos - 8)

    cdef inline double read_float64(self) except? -1.0:
        if self._end - self._pos < 8:
            self._short(8, "float64")
            return -1.0
        self._pos += 8
        return bits_double(load_be64(self._data + self._pos - 8))

    cdef uint32_t _read_uvarint_slow(self) except? 0xFFFFFFFF:
        # at most 5 bytes, and the value must fit 32 bits
        cdef uint64_t value
        cdef const unsigned char *start = <const unsigned char *>self._data + self._pos
        cdef const unsigned char *end = <const unsigned char *>self._data + self._end
        cdef const unsigned char *p = read_uvarint(start, end, 5, &value)
        if p == NULL and end - start < 5:
            self._short(end - start + 1, "unsigned varint")
            return 0xFFFFFFFF
        if p == NULL or (value >> 32) != 0:
            self._fail(self._pos, "unsigned varint longer than 5 bytes or above 2^32-1")
            return 0xFFFFFFFF
        self._pos += p - start
        return <uint32_t>value

    cdef inline uint32_t read_uvarint(self) except? 0xFFFFFFFF:
        cdef uint8_t b
        if self._pos < self._end:
            b = <uint8_t>self._data[self._pos]
            if b < 0x80:
                self._pos += 1
                return b
        return self._read_uvarint_slow()

    cdef uint64_t read_uvarlong(self) except? 0xFFFFFFFFFFFFFFFF:
        # at most 10 bytes, and the 10th may only carry the top bit of 64
        cdef uint64_t value
        cdef const unsigned char *start = <const unsigned char *>self._data + self._pos
        cdef const unsigned char *end = <const unsigned char *>self._data + self._end
        cdef const unsigned char *p = read_uvarint(start, end, 10, &value)
        if p == NULL and end - start < 10:
            self._short(end - start + 1, "unsigned varlong")
            return 0xFFFFFFFFFFFFFFFF
        if p == NULL or (p - start == 10 and start[9] > 0x01):
            self._fail(self._pos, "unsigned varlong longer than 10 bytes or above 2^64-1")
            return 0xFFFFFFFFFFFFFFFF
        self._pos += p - start
        return value

    cdef inline int32_t read_varint(self) except? -1:
        return unzigzag32(self.read_uvarint())

    cdef inline int64_t read_varlong(self) except? -1:
        return unzigzag64(self.read_uvarlong())

    cdef Py_ssize_t read_length(self, bint compact, const char* what) except -2:
        """Length of an array, bytes or records: -1 for null. Any other negative length, and
        (for bytes) a length beyond the input, is the caller's to reject."""
        cdef Py_ssize_t at = self._pos
        cdef int32_t n
        if compact:
            return <Py_ssize_t>self.read_uvarint() - 1
        n = self.read_int32()
        if n < -1:
            self._fail(at, f"negative length {n} for {what.decode('ascii')}")
        return n

    cdef object _read_str(self, bint compact, bint nullable):
        cdef Py_ssize_t at = self._pos
        cdef Py_ssize_t n
        cdef const char* p
        cdef PyObject* s
        if compact:
            n = <Py_ssize_t>self.read_uvarint() - 1
        else:
            n = self.read_int16()
            if n < -1:
                self._fail(at, f"negative string length {n}")
        if n == -1:
            if not nullable:
                self._fail(at, "null string where the field is not nullable")
            return None
        if n > MAX_STRING_BYTES:
            self._fail(at, f"string length {n} is above Kafka's limit of {MAX_STRING_BYTES}")
        p = self.read_raw(n, "string")
        s = _kengine_decode_utf8(p, n, NULL)
        if s == NULL:
            PyErr_Clear()
            self._fail(at, f"string of {n} bytes is not valid UTF-8")
        result = <object>s
        Py_DECREF(result)  # <object> took a new reference on top of the one we own
        return result

    cdef object read_string(self):
        return self._read_str(False, False)

    cdef object read_compact_string(self):
        return self._read_str(True, False)

    cdef object read_nullable_string(self):
        return self._read_str(False, True)

    cdef object read_compact_nullable_string(self):
        return self._read_str(True, True)

    cdef object _read_bytes(self, bint compact, bint nullable):
        cdef Py_ssize_t at = self._pos
        cdef Py_ssize_t n = self.read_length(compact, "bytes")
        cdef const char* p
        if n == -1:
            if not nullable:
                self._fail(at, "null bytes where the field is not nullable")
            return None
        p = self.read_raw(n, "bytes")
        return PyBytes_FromStringAndSize(p, n)

    cdef object read_bytes(self):
        return self._read_bytes(False, False)

    cdef object read_compact_bytes(self):
        return self._read_bytes(True, False)

    cdef object read_nullable_bytes(self):
        return self._read_bytes(False, True)

    cdef object read_compact_nullable_bytes(self):
        return self._read_bytes(True, True)

    cdef object read_uuid(self):
        return PyBytes_FromStringAndSize(self.read_raw(16, "uuid"), 16)

    cpdef object read_view(self, Py_ssize_t n):
        """The next ``n`` bytes as a memoryview of the input, without copying."""
        cdef Py_ssize_t start = self._pos
        if n < 0:
            raise ValueError(f"cannot read {n} bytes")
        self.read_raw(n, "bytes")
        if self._memview is None:
            mv = memoryview(<object>self._view.obj)
            if mv.format != "B" or mv.ndim != 1:
                mv = mv.cast("B")
            self._memview = mv
        return self._memview[start:start + n]

    cdef int skip(self, Py_ssize_t n, const char* what) except -1:
        self.read_raw(n, what)
        return 0

    cdef int skip_tagged_fields(self) except -1:
        """Skips a whole tagged-field section; returns how many fields it held."""
        cdef uint32_t count = self.read_uvarint()
        cdef uint32_t i
        for i in range(count):
            self.read_uvarint()  # tag
            self.skip(self.read_uvarint(), "tagged field")
        return count

    # --- Python API ---

    def read(self, str kind):
        """Reads one value of a wire ``kind`` (the names of ``WriteBuffer.write``, except
        ``raw``: use ``read_view``). ``tagged_fields`` skips a tagged-field section and returns
        how many fields it held; strings decode to ``str``, bytes and uuids to ``bytes``."""
        cdef int code = _buffer_kind(kind)
        if code == KIND_INT8:
            return self.read_int8()
        if code == KIND_BOOL:
            return self.read_bool() != 0
        if code == KIND_INT16:
            return self.read_int16()
        if code == KIND_UINT16:
            return self.read_uint16()
        if code == KIND_INT32:
            return self.read_int32()
        if code == KIND_UINT32:
            return self.read_uint32()
        if code == KIND_INT64:
            return self.read_int64()
        if code == KIND_FLOAT64:
            return self.read_float64()
        if code == KIND_UVARINT:
            return self.read_uvarint()
        if code == KIND_UVARLONG:
            return self.read_uvarlong()
        if code == KIND_VARINT:
            return self.read_varint()
        if code == KIND_VARLONG:
            return self.read_varlong()
        if code == KIND_UUID:
            return self.read_uuid()
        if code == KIND_STRING:
            return self.read_string()
        if code == KIND_COMPACT_STRING:
            return self.read_compact_string()
        if code == KIND_NULLABLE_STRING:
            return self.read_nullable_string()
        if code == KIND_COMPACT_NULLABLE_STRING:
            return self.read_compact_nullable_string()
        if code == KIND_BYTES:
            return self.read_bytes()
        if code == KIND_COMPACT_BYTES:
            return self.read_compact_bytes()
        if code == KIND_NULLABLE_BYTES:
            return self.read_nullable_bytes()
        if code == KIND_COMPACT_NULLABLE_BYTES:
            return self.read_compact_nullable_bytes()
        if code == KIND_TAGGED_FIELDS:
            return self.skip_tagged_fields()
        raise ValueError("raw is write-only; use read_view(n)")

    @property
    def position(self):
        """Offset of the next byte to read."""
        return self._pos

    @property
    def remaining(self):
        """Bytes left to read."""
        return self._end - self._pos
