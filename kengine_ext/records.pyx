# RecordBatch v2 (magic 2): builder, bulk encoders and decoder (part of kengine_ext._core).
#
# Layout of a batch (all integers big-endian; see records.pxd for the header offsets):
#   baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 | crc uint32 |
#   attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64 |
#   producerId int64 | producerEpoch int16 | baseSequence int32 | recordCount int32 | records...
# Each record: length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
#   keyLength varint | key | valueLength varint | value | headerCount varint |
#   (headerKeyLength varint | headerKey | headerValueLength varint | headerValue)*
# Varints are zigzag-encoded; a length of -1 means null. The CRC-32C covers attributes..end.
#
# One pass per record: the record's size follows from the field lengths alone, so the length
# prefix is written first and every payload byte is copied exactly once, into the batch.

cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_READ, PyBUF_FORMAT, PyBUF_ND
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize, PyBytes_CheckExact
from cpython.unicode cimport PyUnicode_Check
from cpython.number cimport PyNumber_Index
from cpython.sequence cimport PySequence_Fast
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport uint8_t, uint16_t, INT32_MAX

from kengine_ext.errors import CorruptRecordError, IllegalStateError, RecordTooLargeError, SerializationError

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    PyObject **PySequence_Fast_ITEMS(object o)

__all__ += ["RecordBatchBuilder", "DecodedBatch", "DecodedRecord", "decode_batches",
            "encode_batch", "encode_batch_flat", "record_size_upper_bound"]

# Java's CompressionRatioEstimator factor: expect batches to compress a bit worse than the
# estimate so that a full compressed batch rarely overshoots batch.size.
cdef double COMPRESSION_RATE_ESTIMATION_FACTOR = 1.05
# Records are encoded in chunks of this many when the inputs are Python sequences, bounding the
# temporary pointer arrays (about 60 bytes per record) whatever the input size.
cdef Py_ssize_t BULK_CHUNK_RECORDS = 4096


cdef inline Py_ssize_t record_body_size(int64_t timestamp_delta, int32_t offset_delta,
                                        Py_ssize_t key_len, Py_ssize_t value_len,
                                        Py_ssize_t headers_len, int32_t header_count) noexcept nogil:
    # key_len / value_len of -1 encode null (one byte: zigzag(-1) == 1)
    cdef Py_ssize_t n = 1 + uvarint_size(zigzag64(timestamp_delta)) + uvarint_size(zigzag32(offset_delta))
    if key_len < 0:
        n += 1
    else:
        n += uvarint_size(zigzag32(<int32_t>key_len)) + key_len
    if value_len < 0:
        n += 1
    else:
        n += uvarint_size(zigzag32(<int32_t>value_len)) + value_len
    return n + uvarint_size(zigzag32(header_count)) + headers_len


def record_size_upper_bound(Py_ssize_t key_len, Py_ssize_t value_len, Py_ssize_t headers_len=0):
    """Bytes a record can take in a batch, at most (for size checks before encoding), header of a
    one-record batch included. Lengths of -1 mean null."""
    cdef Py_ssize_t body = record_body_size(INT32_MAX, INT32_MAX, key_len, value_len, headers_len, 0) + 5
    return BATCH_HEADER_BYTES + uvarint_size(zigzag32(<int32_t>body)) + body


# ---- record fields ----

cdef object indexed(object error, Py_ssize_t index):
    """``error`` again, of the same type, naming the input index of the record it is about."""
    out = type(error)(f"record {index}: {error}")
    out.__cause__ = error.__cause__
    # attributes that say more than the message (a schema error's field, subject, reason)
    out.__dict__.update(error.__dict__)
    return out


@cython.final
@cython.freelist(64)
cdef class EncodedHeaders:
    """A record's headers already in their wire form, as encode_headers() makes them: what
    TraceStamp gives a record whose traceparent it wrote (kengine-internal; never handed to
    Python code that reads headers)."""

    def __repr__(self):
        return f"<EncodedHeaders {self.count} headers, {len(self.blob)} bytes>"


cdef EncodedHeaders encoded_headers(bytes blob, int32_t count):
    cdef EncodedHeaders h = EncodedHeaders.__new__(EncodedHeaders)
    h.blob = blob
    h.count = count
    return h


cdef object encode_headers(object headers, int32_t *count):
    """Encodes header entries (without the count prefix) into a new bytes object.
    headers: a sequence of (str key, bytes | str | None value) pairs, a mapping, or
    EncodedHeaders (returned as they are)."""
    if type(headers) is EncodedHeaders:
        count[0] = (<EncodedHeaders>headers).count
        return (<EncodedHeaders>headers).blob
    if isinstance(headers, dict):
        headers = headers.items()
    cdef Py_ssize_t total = 0, klen, vlen, i = 0
    cdef const char *kp
    cdef const char *vp
    cdef Py_buffer view
    cdef bint has_view
    cdef list pairs
    try:
        pairs = [(k, v) for k, v in headers]
    except (TypeError, ValueError):
        raise SerializationError(
            f"headers must be a list of (str, bytes | None) pairs or a dict, not {headers!r}") from None
    for k, v in pairs:
        if not PyUnicode_Check(k):
            raise SerializationError(f"header key {k!r} must be str, not {type(k).__name__}")
        if utf8_or_null(k, &klen) == NULL:
            PyErr_Clear()
            raise_not_utf8(k, "header key", -1)
        if v is None:
            vlen = -1
        else:
            borrow_bytes(v, &vp, &vlen, &view, &has_view, f"value of header {k!r}", -1)
            if has_view:
                PyBuffer_Release(&view)
        total += uvarint_size(zigzag32(<int32_t>klen)) + klen
        total += 1 if vlen < 0 else uvarint_size(zigzag32(<int32_t>vlen)) + vlen
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *p = PyBytes_AS_STRING(out)
    for k, v in pairs:
        kp = PyUnicode_AsUTF8AndSize(k, &klen)
        p = put_uvarint(p, zigzag32(<int32_t>klen))
        memcpy(p, kp, klen)
        p += klen
        if v is None:
            p = put_uvarint(p, 1)
        else:
            borrow_bytes(v, &vp, &vlen, &view, &has_view, "header value", -1)
            p = put_uvarint(p, zigzag32(<int32_t>vlen))
            memcpy(p, vp, vlen)
            p += vlen
            if has_view:
                PyBuffer_Release(&view)
        i += 1
    count[0] = <int32_t>i
    return out


@cython.final
cdef class BufferPool:
    """A stack of reusable buffers of one size (batch.size), up to max_pooled of them."""

    def __cinit__(self, Py_ssize_t buffer_bytes, Py_ssize_t max_pooled):
        self.buffer_bytes = buffer_bytes
        self._max_pooled = max_pooled if max_pooled > 0 else 0
        self._free = <char **>malloc((self._max_pooled + 1) * sizeof(char *))
        if self._free == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self._count):
            free(self._free[i])
        free(self._free)

    cdef char *take(self) noexcept:
        if self._count > 0:
            self._count -= 1
            return self._free[self._count]
        return <char *>malloc(self.buffer_bytes)

    cdef void give(self, char *buf) noexcept:
        if self._count < self._max_pooled:
            self._free[self._count] = buf
            self._count += 1
        else:
            free(buf)

    @property
    def pooled(self) -> int:
        return self._count


# Builders made outside a producer (encode_batch, tools, tests) that need at most 128 KiB take
# a buffer from here and give it back: a freshly malloc'd buffer costs a page fault per 4 KiB
# the first time it is written, more than encoding the records into it. (A producer's builders
# use its own pool of batch.size buffers.)
cdef enum:
    DEFAULT_POOL_BUFFER_BYTES = 131072
cdef BufferPool _default_pool = BufferPool(DEFAULT_POOL_BUFFER_BYTES, 16)


@cython.final
cdef class RecordBatchBuilder:
    """Builds one RecordBatch v2 in a buffer allocated up front.

    ``append()`` returns the record's offset delta within the batch, or -1 when the batch has no
    room for it (the caller seals this batch and opens a new one). The first record is always
    accepted when it fits in ``max_bytes``; later ones when the batch, estimated after
    compression, stays within ``batch_size``. ``build()`` compresses (keeping the batch
    uncompressed when that is not smaller), fills the header and CRC and returns the final bytes.
    """

    def __cinit__(self, Py_ssize_t batch_size=16384, *, Py_ssize_t max_bytes=1048576,
                  compression="none", compression_level=None, double ratio_estimate=1.0,
                  int64_t producer_id=-1, int producer_epoch=-1, int32_t base_sequence=-1,
                  bint transactional=False, Py_ssize_t initial_capacity=-1,
                  BufferPool pool=None):
        if batch_size <= BATCH_HEADER_BYTES:
            raise ValueError(f"batch_size must exceed the {BATCH_HEADER_BYTES}-byte batch header, "
                             f"got {batch_size}")
        if max_bytes < batch_size:
            max_bytes = batch_size
        self._codec = codec_id(compression)
        self._level = validate_compression_level(self._codec, compression_level) or 0
        self._batch_size_bytes = batch_size
        self._max_bytes = max_bytes
        self._ratio_estimate = ratio_estimate if ratio_estimate > 0 else 1.0
        self._ratio = 1.0
        self._producer_id = producer_id
        self._producer_epoch = <int16_t>producer_epoch
        self._base_sequence = base_sequence
        self._transactional = transactional
        if initial_capacity < BATCH_HEADER_BYTES:
            # start at most at the pool's size and grow on demand: a builder made for a large
            # limit does not pay for (and fault in) memory its records never use
            initial_capacity = min(batch_size, DEFAULT_POOL_BUFFER_BYTES)
        if pool is None and initial_capacity <= DEFAULT_POOL_BUFFER_BYTES:
            pool = _default_pool
            initial_capacity = DEFAULT_POOL_BUFFER_BYTES
        self._capacity_bytes = initial_capacity
        if pool is not None and pool.buffer_bytes == self._capacity_bytes:
            self._pool = pool
            self._buf = pool.take()
        else:
            self._buf = <char *>malloc(self._capacity_bytes)
        if self._buf == NULL:
            raise MemoryError()
        self._size_bytes = BATCH_HEADER_BYTES

    def __dealloc__(self):
        if self._pool is not None and self._capacity_bytes == self._pool.buffer_bytes:
            self._pool.give(self._buf)
        else:
            free(self._buf)

    # -- sizes and room --

    cdef bint has_room_for(self, Py_ssize_t record_bytes) noexcept nogil:
        if self._count == 0:
            return self._size_bytes + record_bytes <= self._max_bytes
        if self._codec == CODEC_NONE:
            return self._size_bytes + record_bytes <= self._batch_size_bytes
        return (BATCH_HEADER_BYTES + (self._size_bytes - BATCH_HEADER_BYTES + record_bytes)
                * self._ratio_estimate * COMPRESSION_RATE_ESTIMATION_FACTOR) <= self._batch_size_bytes

    cdef Py_ssize_t append_record(self, int64_t timestamp_ms,
                                  const char *key, Py_ssize_t key_len,
                                  const char *value, Py_ssize_t value_len,
                                  const char *headers, Py_ssize_t headers_len,
                                  int32_t header_count) noexcept nogil:
        cdef int64_t delta = 0 if self._count == 0 else timestamp_ms - self._base_timestamp_ms
        cdef Py_ssize_t body = record_body_size(delta, self._count, key_len, value_len,
                                                headers_len, header_count)
        cdef Py_ssize_t total = uvarint_size(zigzag32(<int32_t>body)) + body
        cdef Py_ssize_t need, cap
        cdef char *p
        if self._built or self._exports > 0:
            return APPEND_FULL
        if not self.has_room_for(total):
            return APPEND_TOO_LARGE if self._count == 0 else APPEND_FULL
        need = self._size_bytes + total
        if need > self._capacity_bytes:
            if self._owner_grows and self._count > 0:
                return APPEND_NEEDS_ROOM
            # Compressed batches (whose uncompressed records may pass batch.size) and an
            # oversized first record get here; doubling keeps it amortised O(1).
            cap = self._capacity_bytes * 2
            if cap < need:
                cap = need
            p = <char *>realloc(self._buf, cap)
            if p == NULL:
                return APPEND_NO_MEMORY
            self._buf = p
            self._capacity_bytes = cap
        p = self._buf + self._size_bytes
        p = put_uvarint(p, zigzag32(<int32_t>body))
        p[0] = 0  # record attributes: unused in v2
        p = put_uvarint(p + 1, zigzag64(delta))
        p = put_uvarint(p, zigzag32(self._count))
        if key == NULL:
            p = put_uvarint(p, 1)
        else:
            p = put_uvarint(p, zigzag32(<int32_t>key_len))
            memcpy(p, key, key_len)
            p += key_len
        if value == NULL:
            p = put_uvarint(p, 1)
        else:
            p = put_uvarint(p, zigzag32(<int32_t>value_len))
            memcpy(p, value, value_len)
            p += value_len
        p = put_uvarint(p, zigzag32(header_count))
        if headers_len > 0:
            memcpy(p, headers, headers_len)
        self._size_bytes = need
        if self._count == 0:
            self._base_timestamp_ms = timestamp_ms
            self._max_timestamp_ms = timestamp_ms
        elif timestamp_ms > self._max_timestamp_ms:
            self._max_timestamp_ms = timestamp_ms
        self._count += 1
        return self._count - 1

    cdef Py_ssize_t append_columns(self, const RecordColumns *cols, Py_ssize_t start,
                                   Py_ssize_t stop) noexcept nogil:
        """Appends records [start, stop) of cols until the batch is full; returns how many were
        appended, or a negative APPEND_* code when the first one could not be appended at all.
        When it stops early, _columns_stop says why (APPEND_FULL, APPEND_NEEDS_ROOM...)."""
        cdef Py_ssize_t i = start, r
        cdef int64_t ts
        self._columns_stop = 0
        while i < stop:
            ts = cols.timestamp_ms[i] if cols.timestamp_ms != NULL else cols.default_timestamp_ms
            if cols.headers_ptr != NULL:
                r = self.append_record(ts, cols.key_ptr[i], cols.key_len[i], cols.value_ptr[i],
                                       cols.value_len[i], cols.headers_ptr[i], cols.headers_len[i],
                                       cols.header_count[i])
            else:
                r = self.append_record(ts, cols.key_ptr[i], cols.key_len[i], cols.value_ptr[i],
                                       cols.value_len[i], NULL, 0, 0)
            if r < 0:
                self._columns_stop = r
                if i == start and r != APPEND_FULL and r != APPEND_NEEDS_ROOM:
                    return r
                break
            i += 1
        return i - start

    def append(self, key, value, headers=None, timestamp_ms=None):
        """Appends one record; returns its offset delta, or -1 if the batch has no room.

        key/value: bytes, str (UTF-8), any buffer-protocol object, or None (null, distinct from
        empty). headers: sequence of (str, bytes | None) pairs or a dict. timestamp_ms: epoch
        milliseconds (default: now)."""
        cdef const char *kp
        cdef const char *vp
        cdef const char *hp = NULL
        cdef Py_ssize_t kl, vl, hl = 0, r
        cdef int32_t hc = 0
        cdef Py_buffer kview, vview
        cdef bint khas = False, vhas = False
        cdef int64_t ts = now_ms() if timestamp_ms is None else <int64_t>timestamp_ms
        if self._built:
            raise IllegalStateError("this batch was already built; open a new RecordBatchBuilder")
        hbytes = None
        if headers:
            hbytes = encode_headers(headers, &hc)
            hp = PyBytes_AS_STRING(hbytes)
            hl = PyBytes_GET_SIZE(hbytes)
        if PyBytes_CheckExact(key):   # the common case, without a call
            kp = PyBytes_AS_STRING(key)
            kl = PyBytes_GET_SIZE(key)
        else:
            borrow_bytes(key, &kp, &kl, &kview, &khas, "key", -1)
        try:
            if PyBytes_CheckExact(value):
                vp = PyBytes_AS_STRING(value)
                vl = PyBytes_GET_SIZE(value)
            else:
                borrow_bytes(value, &vp, &vl, &vview, &vhas, "value", -1)
            try:
                r = self.append_record(ts, kp, kl, vp, vl, hp, hl, hc)
            finally:
                if vhas:
                    PyBuffer_Release(&vview)
        finally:
            if khas:
                PyBuffer_Release(&kview)
        if r == APPEND_TOO_LARGE:
            raise RecordTooLargeError(
                f"a record of key {kl} bytes and value {vl} bytes does not fit in the "
                f"{self._max_bytes}-byte limit (max.request.size)")
        if r == APPEND_NO_MEMORY:
            raise MemoryError()
        return r

    def append_many(self, values, keys=None, headers=None, timestamps=None, Py_ssize_t start=0):
        """Appends records start, start+1, ... of the given equal-length sequences until the batch
        is full or they run out; returns how many were appended. Pointers to the records are
        gathered with the GIL held, then the bytes are written without it. keys, headers and
        timestamps may be None (all null / no headers / now)."""
        cdef Py_ssize_t n = len(values), pos = start, chunk, r, avg
        if start < 0 or start > n:
            raise IndexError(f"start {start} is outside 0..{n}")
        cdef ColumnsHolder holder
        while pos < n:
            # Convert only about as many records as can still fit, so a full batch does not
            # make us gather pointers for thousands of records it will not take.
            if self._count == 0:
                chunk = 64
            else:
                avg = (self._size_bytes - BATCH_HEADER_BYTES) // self._count + 1
                chunk = (self._batch_size_bytes - self.estimated_size_c()) // avg + 8
            chunk = max(1, min(chunk, BULK_CHUNK_RECORDS, n - pos))
            holder = ColumnsHolder()
            holder.fill(values, keys, headers, timestamps, pos, pos + chunk)
            with nogil:
                r = self.append_columns(&holder.cols, 0, chunk)
            if r == APPEND_TOO_LARGE:
                raise RecordTooLargeError(
                    f"record {pos} does not fit in the {self._max_bytes}-byte limit "
                    f"(max.request.size)")
            if r == APPEND_NO_MEMORY:
                raise MemoryError()
            pos += r
            if r < chunk:
                break
        return pos - start

    cdef Py_ssize_t estimated_size_c(self) noexcept nogil:
        if self._codec == CODEC_NONE:
            return self._size_bytes
        return BATCH_HEADER_BYTES + <Py_ssize_t>((self._size_bytes - BATCH_HEADER_BYTES)
                                                 * self._ratio_estimate * COMPRESSION_RATE_ESTIMATION_FACTOR)

    # -- producer state (idempotence / transactions) --

    cdef void write_producer_fields(self) noexcept nogil:
        store_be64(self._buf + PRODUCER_ID_OFFSET, <uint64_t>self._producer_id)
        store_be16(self._buf + PRODUCER_EPOCH_OFFSET, <uint16_t>self._producer_epoch)
        store_be32(self._buf + BASE_SEQUENCE_OFFSET, <uint32_t>self._base_sequence)

    def set_producer_state(self, int64_t producer_id, int producer_epoch, int32_t base_sequence,
                           transactional=None):
        """Sets producer id, epoch and base sequence. On a built batch this patches the header
        and recomputes the CRC (retries after an epoch bump re-sequence batches already built);
        the transactional flag can only change before build()."""
        self._producer_id = producer_id
        self._producer_epoch = <int16_t>producer_epoch
        self._base_sequence = base_sequence
        if transactional is not None:
            if self._built and bool(transactional) != self._transactional:
                raise IllegalStateError("the transactional flag cannot change after build()")
            self._transactional = bool(transactional)
        if self._built:
            self.write_producer_fields()
            with nogil:
                store_be32(self._buf + CRC_OFFSET, kengine_crc32c(
                    0, self._buf + ATTRIBUTES_OFFSET, self._size_bytes - ATTRIBUTES_OFFSET))

    # -- sealing --

    cdef int seal(self) except -1:
        cdef Py_ssize_t records_bytes = self._size_bytes - BATCH_HEADER_BYTES
        cdef Py_ssize_t clen
        cdef int16_t attributes
        cdef Py_buffer cbuf
        if self._built:
            return 0
        if self._count == 0:
            raise IllegalStateError("cannot build a batch with no records")
        self._uncompressed_bytes = self._size_bytes
        self._built_codec = CODEC_NONE
        if self._codec != CODEC_NONE:
            compressed = compress_records(self._codec, self._level,
                                          self._buf + BATCH_HEADER_BYTES, records_bytes)
            PyObject_GetBuffer(compressed, &cbuf, PyBUF_SIMPLE)
            try:
                clen = cbuf.len
                self._ratio = <double>clen / <double>records_bytes
                if clen < records_bytes:
                    # smaller by definition, so the compressed bytes replace the records in place
                    memcpy(self._buf + BATCH_HEADER_BYTES, cbuf.buf, clen)
                    self._size_bytes = BATCH_HEADER_BYTES + clen
                    self._built_codec = self._codec
            finally:
                PyBuffer_Release(&cbuf)
        attributes = <int16_t>(self._built_codec | (ATTR_TRANSACTIONAL if self._transactional else 0))
        with nogil:
            store_be64(self._buf + BASE_OFFSET_OFFSET, 0)
            store_be32(self._buf + BATCH_LENGTH_OFFSET, <uint32_t>(self._size_bytes - BATCH_LOG_OVERHEAD))
            store_be32(self._buf + LEADER_EPOCH_OFFSET, <uint32_t>-1)
            self._buf[MAGIC_OFFSET] = 2
            store_be16(self._buf + ATTRIBUTES_OFFSET, <uint16_t>attributes)
            store_be32(self._buf + LAST_OFFSET_DELTA_OFFSET, <uint32_t>(self._count - 1))
            store_be64(self._buf + BASE_TIMESTAMP_OFFSET, <uint64_t>self._base_timestamp_ms)
            store_be64(self._buf + MAX_TIMESTAMP_OFFSET, <uint64_t>self._max_timestamp_ms)
            self.write_producer_fields()
            store_be32(self._buf + RECORD_COUNT_OFFSET, <uint32_t>self._count)
            store_be32(self._buf + CRC_OFFSET, kengine_crc32c(
                0, self._buf + ATTRIBUTES_OFFSET, self._size_bytes - ATTRIBUTES_OFFSET))
        self._built = True
        return 0

    cdef int shrink_to_fit(self) except -1:
        # A batch filled in one go (the pieces of a split batch) knows its final size: give
        # back the rest of the buffer, so that its buffer.memory charge is what it really holds.
        cdef char *p
        if self._capacity_bytes > self._size_bytes and self._exports == 0:
            p = <char *>realloc(self._buf, self._size_bytes)
            if p != NULL:   # keeping the larger buffer is harmless
                self._buf = p
                self._capacity_bytes = self._size_bytes
        return 0

    cdef int grow(self, Py_ssize_t capacity) except -1:
        # the owner reserved buffer.memory for `capacity` bytes (APPEND_NEEDS_ROOM)
        cdef char *p
        if capacity <= self._capacity_bytes:
            return 0
        if self._exports > 0:
            raise BufferError("a batch cannot grow while its bytes are exported")
        p = <char *>realloc(self._buf, capacity)
        if p == NULL:
            raise MemoryError()
        self._buf = p
        self._capacity_bytes = capacity
        return 0

    def build(self):
        """Seals the batch and returns its bytes as a read-only memoryview over this builder's
        buffer (no copy). Idempotent."""
        self.seal()
        return memoryview(self)

    def __getbuffer__(self, Py_buffer *view, int flags):
        if not self._built:
            raise IllegalStateError("build() the batch before reading its bytes")
        view.buf = self._buf
        view.obj = self
        view.len = self._size_bytes
        view.readonly = 1
        view.itemsize = 1
        view.format = NULL
        view.ndim = 1
        view.shape = NULL
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    # -- read-only state --

    @property
    def record_count(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        """Bytes written so far (final size once built)."""
        return self._size_bytes

    @property
    def estimated_size_bytes(self) -> int:
        """Expected final size: the written size, scaled by the compression estimate."""
        return self._size_bytes if self._built else self.estimated_size_c()

    @property
    def uncompressed_size_bytes(self) -> int:
        return self._uncompressed_bytes if self._built else self._size_bytes

    @property
    def compression_ratio(self) -> float:
        """compressed / uncompressed size of the records section, measured by build()."""
        return self._ratio

    @property
    def compression(self) -> str:
        """The codec actually used once built (none when compressing did not make it smaller)."""
        return _CODEC_NAMES[self._built_codec if self._built else self._codec]

    @property
    def is_built(self) -> bool:
        return self._built

    @property
    def base_timestamp(self) -> int:
        return self._base_timestamp_ms

    @property
    def max_timestamp(self) -> int:
        return self._max_timestamp_ms

    @property
    def producer_id(self) -> int:
        return self._producer_id

    @property
    def producer_epoch(self) -> int:
        return self._producer_epoch

    @property
    def base_sequence(self) -> int:
        return self._base_sequence

    @property
    def transactional(self) -> bool:
        return self._transactional


@cython.final
cdef class ColumnsHolder:
    """Pointers to records [start, stop) of Python sequences, for the bulk encoders."""

    def __cinit__(self):
        self._keep = []

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self._view_count):
            PyBuffer_Release(&self._views[i])
        PyMem_Free(self._views)
        PyMem_Free(self._arrays)

    cdef int _borrow(self, object obj, const char **ptr, Py_ssize_t *length, str what,
                     Py_ssize_t index) except -1:
        cdef bint has_view
        cdef Py_buffer *grown
        if PyBytes_CheckExact(obj):
            ptr[0] = PyBytes_AS_STRING(obj)
            length[0] = PyBytes_GET_SIZE(obj)
            return 0
        if self._view_count == self._view_capacity:
            self._view_capacity = self._view_capacity * 2 + 8
            grown = <Py_buffer *>PyMem_Realloc(self._views, self._view_capacity * sizeof(Py_buffer))
            if grown == NULL:
                raise MemoryError()
            self._views = grown
        borrow_bytes(obj, ptr, length, &self._views[self._view_count], &has_view, what, index)
        if has_view:
            self._view_count += 1
        return 0

    cdef int allocate(self, Py_ssize_t n, bint with_headers, bint with_ts) except -1:
        """One allocation for every pointer array of n records (only the columns in use)."""
        cdef Py_ssize_t per = 4 * sizeof(void *)
        cdef char *mem
        cdef RecordColumns *c = &self.cols
        if with_headers:
            per += 2 * sizeof(void *) + sizeof(int32_t)
        if with_ts:
            per += sizeof(int64_t)
        mem = <char *>PyMem_Malloc(per * n + 8)
        if mem == NULL:
            raise MemoryError()
        self._arrays = mem
        c.count = n
        c.key_ptr = <const char **>mem; mem += n * sizeof(void *)
        c.key_len = <Py_ssize_t *>mem; mem += n * sizeof(Py_ssize_t)
        c.value_ptr = <const char **>mem; mem += n * sizeof(void *)
        c.value_len = <Py_ssize_t *>mem; mem += n * sizeof(Py_ssize_t)
        c.timestamp_ms = NULL
        c.headers_ptr = NULL
        if with_ts:
            c.timestamp_ms = <int64_t *>mem; mem += n * sizeof(int64_t)
        if with_headers:
            c.headers_ptr = <const char **>mem; mem += n * sizeof(void *)
            c.headers_len = <Py_ssize_t *>mem; mem += n * sizeof(Py_ssize_t)
            c.header_count = <int32_t *>mem
        return 0

    cdef int regroup(self, ColumnsHolder src, const Py_ssize_t *order, Py_ssize_t n) except -1:
        """This holder's columns become src's records in the given order (pointers only; src
        must outlive this holder, which keeps it alive)."""
        cdef RecordColumns *s = &src.cols
        cdef RecordColumns *c = &self.cols
        cdef bint with_headers = s.headers_ptr != NULL, with_ts = s.timestamp_ms != NULL
        cdef Py_ssize_t j
        self.allocate(n, with_headers, with_ts)
        self._keep.append(src)
        c.default_timestamp_ms = s.default_timestamp_ms
        for j in range(n):
            c.key_ptr[j] = s.key_ptr[order[j]]
            c.key_len[j] = s.key_len[order[j]]
            c.value_ptr[j] = s.value_ptr[order[j]]
            c.value_len[j] = s.value_len[order[j]]
            if with_ts:
                c.timestamp_ms[j] = s.timestamp_ms[order[j]]
            if with_headers:
                c.headers_ptr[j] = s.headers_ptr[order[j]]
                c.headers_len[j] = s.headers_len[order[j]]
                c.header_count[j] = s.header_count[order[j]]
        return 0

    cdef int fill_from_batch(self, RecordBatchBuilder batch) except -1:
        """Points at every record of a batch (absolute timestamps, keys, values, encoded
        headers), for re-encoding them into other batches: into the batch's own buffer, or
        into a decompressed copy of its records when it was sealed compressed. Holds the batch
        or the copy alive. Only for the rare paths (splitting a batch the broker refused):
        compressed batches cost a decompression."""
        cdef const unsigned char *p
        cdef const unsigned char *end
        cdef const unsigned char *rec_end
        cdef int64_t length, ts_delta, off_delta, hcount
        cdef int32_t i, n = batch._count
        cdef RecordColumns *c = &self.cols
        if batch._built and batch._built_codec != CODEC_NONE:
            raw = decompress_records(batch._built_codec, batch._buf + BATCH_HEADER_BYTES,
                                     batch._size_bytes - BATCH_HEADER_BYTES)
            if not PyBytes_CheckExact(raw):
                raw = bytes(raw)
            self._keep.append(raw)
            p = <const unsigned char *>PyBytes_AS_STRING(raw)
            end = p + PyBytes_GET_SIZE(raw)
        else:
            self._keep.append(batch)
            p = <const unsigned char *>batch._buf + BATCH_HEADER_BYTES
            end = <const unsigned char *>batch._buf + batch._size_bytes
        self.allocate(n, True, True)
        c.default_timestamp_ms = batch._base_timestamp_ms
        for i in range(n):
            p = read_varint32(p, end, &length)
            if p == NULL or length < 6 or length > end - p:
                raise CorruptRecordError(f"record {i} of {n}: length malformed or past the end")
            rec_end = p + length
            p = read_varint64(p + 1, rec_end, &ts_delta)   # + 1: the record's attributes
            if p != NULL:
                p = read_varint32(p, rec_end, &off_delta)
            if p != NULL:
                p = read_span(p, rec_end, &c.key_ptr[i], &c.key_len[i])
            if p != NULL:
                p = read_span(p, rec_end, &c.value_ptr[i], &c.value_len[i])
            if p != NULL:
                p = read_varint32(p, rec_end, &hcount)
            if p == NULL or off_delta != i or hcount < 0:
                raise CorruptRecordError(f"record {i} of {n}: a field is malformed")
            c.timestamp_ms[i] = batch._base_timestamp_ms + ts_delta
            c.headers_ptr[i] = <const char *>p
            c.headers_len[i] = rec_end - p
            c.header_count[i] = <int32_t>hcount
            p = rec_end
        if p != end:
            raise CorruptRecordError(f"{end - p} bytes follow the batch's {n} records")
        return 0

    cdef int fill(self, object values, object keys, object headers, object timestamps,
                  Py_ssize_t start, Py_ssize_t stop) except -1:
        """Gathers records start..stop-1 (regroup() reorders them, e.g. by partition)."""
        cdef Py_ssize_t n = stop - start, j, i
        cdef bint with_headers = headers is not None
        cdef bint with_ts = timestamps is not None
        cdef int32_t hc
        cdef RecordColumns *c = &self.cols
        self.allocate(n, with_headers, with_ts)
        c.default_timestamp_ms = now_ms()
        # Slices (made into lists or tuples) hold references to every object we point into,
        # so no other thread can free one while the bytes are copied without the GIL.
        vals = PySequence_Fast(values[start:stop], "values must be a sequence")
        ks = PySequence_Fast(keys[start:stop], "keys must be a sequence") \
            if keys is not None else None
        hs = headers[start:stop] if with_headers else None
        tss = timestamps[start:stop] if with_ts else None
        if len(vals) != n or (ks is not None and len(ks) != n) or (hs is not None and len(hs) != n) \
                or (tss is not None and len(tss) != n):
            raise ValueError("values, keys, headers and timestamps must have the same length")
        self._keep.append(vals)
        self._keep.append(ks)
        self._keep.append(hs)
        cdef PyObject **vitems = PySequence_Fast_ITEMS(vals)
        cdef PyObject **kitems = PySequence_Fast_ITEMS(ks) if ks is not None else NULL
        cdef object item
        for j in range(n):
            i = start + j
            item = <object>vitems[j]
            if PyBytes_CheckExact(item):   # the common case, without a call
                c.value_ptr[j] = PyBytes_AS_STRING(item)
                c.value_len[j] = PyBytes_GET_SIZE(item)
            else:
                self._borrow(item, &c.value_ptr[j], &c.value_len[j], "value", i)
            if ks is None:
                c.key_ptr[j] = NULL
                c.key_len[j] = -1
            else:
                item = <object>kitems[j]
                if PyBytes_CheckExact(item):
                    c.key_ptr[j] = PyBytes_AS_STRING(item)
                    c.key_len[j] = PyBytes_GET_SIZE(item)
                else:
                    self._borrow(item, &c.key_ptr[j], &c.key_len[j], "key", i)
            if with_headers:
                h = hs[j]
                if h:
                    try:
                        hb = encode_headers(h, &hc)
                    except SerializationError as e:
                        raise indexed(e, i) from None
                    self._keep.append(hb)
                    c.headers_ptr[j] = PyBytes_AS_STRING(hb)
                    c.headers_len[j] = PyBytes_GET_SIZE(hb)
                    c.header_count[j] = hc
                else:
                    c.headers_ptr[j] = NULL
                    c.headers_len[j] = 0
                    c.header_count[j] = 0
            if with_ts:
                t = tss[j]
                if t is None:
                    c.timestamp_ms[j] = c.default_timestamp_ms
                else:
                    try:   # an int or another integer (numpy's); not a float, which
                        c.timestamp_ms[j] = <int64_t>PyNumber_Index(t)   # would lose its ms
                    except (TypeError, OverflowError):
                        c.timestamp_ms[j] = -1
                    if c.timestamp_ms[j] < 0:
                        raise SerializationError(
                            f"timestamp of record {i} must be an int of epoch milliseconds "
                            f">= 0 or None, not {t!r}") from None
        return 0


def encode_batch(values, keys=None, headers=None, timestamps=None, *, compression="none",
                 compression_level=None, int64_t producer_id=-1, int producer_epoch=-1,
                 int32_t base_sequence=-1, bint transactional=False):
    """Encodes all the given records as ONE RecordBatch and returns its bytes (a read-only
    memoryview, no copy). The byte work runs without the GIL."""
    cdef RecordBatchBuilder b = RecordBatchBuilder(
        0x7FFFFFFF, max_bytes=0x7FFFFFFF, compression=compression,
        compression_level=compression_level, producer_id=producer_id,
        producer_epoch=producer_epoch, base_sequence=base_sequence, transactional=transactional,
        initial_capacity=65536)
    cdef Py_ssize_t n = len(values), pos = 0, chunk, r
    cdef ColumnsHolder holder
    while pos < n:
        chunk = min(BULK_CHUNK_RECORDS, n - pos)
        holder = ColumnsHolder()
        holder.fill(values, keys, headers, timestamps, pos, pos + chunk)
        with nogil:
            r = b.append_columns(&holder.cols, 0, chunk)
        if r != chunk:
            if r == APPEND_NO_MEMORY:
                raise MemoryError()
            raise RecordTooLargeError(f"records from {pos} on exceed the 2 GiB batch limit")
        pos += chunk
    return b.build()


cdef class FlatColumns:
    """The buffers of encode_batch_flat(), acquired and checked; released on deallocation."""
    cdef Py_buffer values, value_offsets, keys, key_offsets, values_valid, keys_valid, timestamps
    cdef bint got_values, got_value_offsets, got_keys, got_key_offsets, got_values_valid
    cdef bint got_keys_valid, got_timestamps
    cdef Py_ssize_t count

    def __dealloc__(self):
        if self.got_values: PyBuffer_Release(&self.values)
        if self.got_value_offsets: PyBuffer_Release(&self.value_offsets)
        if self.got_keys: PyBuffer_Release(&self.keys)
        if self.got_key_offsets: PyBuffer_Release(&self.key_offsets)
        if self.got_values_valid: PyBuffer_Release(&self.values_valid)
        if self.got_keys_valid: PyBuffer_Release(&self.keys_valid)
        if self.got_timestamps: PyBuffer_Release(&self.timestamps)

    cdef int acquire(self, values, value_offsets, keys, key_offsets, values_valid, keys_valid,
                     timestamps) except -1:
        PyObject_GetBuffer(values, &self.values, PyBUF_SIMPLE)
        self.got_values = True
        PyObject_GetBuffer(value_offsets, &self.value_offsets, PyBUF_FORMAT | PyBUF_ND)
        self.got_value_offsets = True
        check_offsets(&self.value_offsets, -1, "value_offsets")
        self.count = self.value_offsets.shape[0] - 1
        if keys is not None:
            PyObject_GetBuffer(keys, &self.keys, PyBUF_SIMPLE)
            self.got_keys = True
            PyObject_GetBuffer(key_offsets, &self.key_offsets, PyBUF_FORMAT | PyBUF_ND)
            self.got_key_offsets = True
            check_offsets(&self.key_offsets, self.count, "key_offsets")
        if values_valid is not None:
            PyObject_GetBuffer(values_valid, &self.values_valid, PyBUF_SIMPLE)
            self.got_values_valid = True
            check_bitmap(&self.values_valid, self.count, "values_valid")
        if keys_valid is not None:
            PyObject_GetBuffer(keys_valid, &self.keys_valid, PyBUF_SIMPLE)
            self.got_keys_valid = True
            check_bitmap(&self.keys_valid, self.count, "keys_valid")
        if timestamps is not None:
            PyObject_GetBuffer(timestamps, &self.timestamps, PyBUF_FORMAT | PyBUF_ND)
            self.got_timestamps = True
            if self.timestamps.itemsize != 8 or not is_signed_int_format(&self.timestamps) \
                    or self.timestamps.ndim != 1 \
                    or self.timestamps.shape[0] != self.count:
                raise ValueError(f"timestamps must be a 1-D int64 buffer of {self.count} entries")
        return 0


cdef bint is_signed_int_format(Py_buffer *b) noexcept:
    """True for 1-D buffers of int32/int64 ('i', 'l', 'q', optionally with a byte-order prefix)."""
    cdef const char *f = b.format
    if f == NULL:
        return False
    if f[0] in b"@=<>!":
        f += 1
    return f[0] in b"ilq" and f[1] == 0 and b.itemsize in (4, 8)


cdef int check_offsets(Py_buffer *b, Py_ssize_t count, str name) except -1:
    if b.ndim != 1 or not is_signed_int_format(b) or b.shape[0] < 1:
        raise ValueError(f"{name} must be a 1-D int32 or int64 buffer of n+1 offsets")
    if count >= 0 and b.shape[0] != count + 1:
        raise ValueError(f"{name} has {b.shape[0]} entries; {count + 1} expected")
    return 0


cdef int check_bitmap(Py_buffer *b, Py_ssize_t count, str name) except -1:
    if b.len * 8 < count:
        raise ValueError(f"{name} has {b.len * 8} bits for {count} records")
    return 0


cdef inline Py_ssize_t offset_at(Py_buffer *offs, Py_ssize_t i) noexcept nogil:
    if offs.itemsize == 8:
        return <Py_ssize_t>(<const int64_t *>offs.buf)[i]
    return <Py_ssize_t>(<const int32_t *>offs.buf)[i]


cdef inline bint bit_set(const unsigned char *bitmap, Py_ssize_t i) noexcept nogil:
    return bitmap == NULL or (bitmap[i >> 3] >> (i & 7)) & 1


def encode_batch_flat(values, value_offsets, keys=None, key_offsets=None, *, values_valid=None,
                      keys_valid=None, timestamps=None, compression="none", compression_level=None,
                      int64_t producer_id=-1, int producer_epoch=-1, int32_t base_sequence=-1,
                      bint transactional=False):
    """Encodes one RecordBatch straight from columnar buffers, Arrow style, with no Python object
    per record: ``values`` is one contiguous buffer and ``value_offsets`` n+1 int32 or int64
    offsets into it (record i is values[offsets[i]:offsets[i+1]]); likewise keys. Optional
    validity bitmaps (bit i set = not null, least significant bit first) give null values/keys;
    ``timestamps`` is an int64 buffer of n epoch milliseconds. Once the buffers are acquired
    everything runs without the GIL. Returns a read-only memoryview of the batch."""
    if (keys is None) != (key_offsets is None):
        raise ValueError("keys and key_offsets go together")
    cdef FlatColumns f = FlatColumns()
    f.acquire(values, value_offsets, keys, key_offsets, values_valid, keys_valid, timestamps)
    cdef Py_ssize_t n = f.count, i, a, b, ka = 0, kb = 0, r = 0, bad = -1
    cdef const char *vbase = <const char *>f.values.buf
    cdef const char *kbase = <const char *>f.keys.buf if f.got_keys else NULL
    cdef const unsigned char *vbits = <const unsigned char *>f.values_valid.buf if f.got_values_valid else NULL
    cdef const unsigned char *kbits = <const unsigned char *>f.keys_valid.buf if f.got_keys_valid else NULL
    cdef const int64_t *ts = <const int64_t *>f.timestamps.buf if f.got_timestamps else NULL
    cdef int64_t default_ts = now_ms()
    cdef bint has_k = f.got_keys
    cdef RecordBatchBuilder builder = RecordBatchBuilder(
        0x7FFFFFFF, max_bytes=0x7FFFFFFF, compression=compression,
        compression_level=compression_level, producer_id=producer_id,
        producer_epoch=producer_epoch, base_sequence=base_sequence,
        transactional=transactional, initial_capacity=f.values.len + 16 * n + 64)
    with nogil:
        for i in range(n):
            a = offset_at(&f.value_offsets, i)
            b = offset_at(&f.value_offsets, i + 1)
            if a < 0 or b < a or b > f.values.len:
                bad = i
                break
            if has_k:
                ka = offset_at(&f.key_offsets, i)
                kb = offset_at(&f.key_offsets, i + 1)
                if ka < 0 or kb < ka or kb > f.keys.len:
                    bad = i
                    break
            r = builder.append_record(
                ts[i] if ts != NULL else default_ts,
                kbase + ka if has_k and bit_set(kbits, i) else NULL,
                kb - ka if has_k and bit_set(kbits, i) else -1,
                vbase + a if bit_set(vbits, i) else NULL,
                b - a if bit_set(vbits, i) else -1,
                NULL, 0, 0)
            if r < 0:
                bad = i
                break
    if bad >= 0:
        if r == APPEND_NO_MEMORY:
            raise MemoryError()
        if r < 0:
            raise RecordTooLargeError(f"record {bad} makes the batch exceed 2 GiB")
        raise ValueError(f"offsets of record {bad} are decreasing or outside their buffer")
    return builder.build()


# ---- decoding ----

cdef class DecodedRecord:
    """One record of a decoded batch; offset is absolute (base offset + delta)."""

    def __repr__(self):
        return (f"DecodedRecord(offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, "
                f"value={self.value!r}, headers={self.headers!r})")


cdef class DecodedBatch:
    """A decoded RecordBatch v2: the header fields and its records."""

    @property
    def compression(self) -> str:
        return _CODEC_NAMES[self.attributes & 7] if (self.attributes & 7) <= 4 else f"unknown({self.attributes & 7})"

    @property
    def timestamp_type(self) -> int:
        """0 CreateTime, 1 LogAppendTime."""
        return 1 if self.attributes & ATTR_TIMESTAMP_LOG_APPEND else 0

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    def __len__(self):
        return len(self.records)

    def __repr__(self):
        return (f"DecodedBatch(base_offset={self.base_offset}, records={len(self.records)}, "
                f"compression={self.compression}, producer_id={self.producer_id}, "
                f"producer_epoch={self.producer_epoch}, base_sequence={self.base_sequence})")


cdef inline const unsigned char *read_span(const unsigned char *p, const unsigned char *end,
                                           const char **ptr, Py_ssize_t *length) noexcept nogil:
    """Points ptr/length at a length-prefixed field in place (NULL, -1 for a null one);
    NULL when malformed."""
    cdef int64_t n
    p = read_varint32(p, end, &n)
    if p == NULL or n < -1 or n > end - p:
        return NULL
    if n == -1:
        ptr[0] = NULL
        length[0] = -1
        return p
    ptr[0] = <const char *>p
    length[0] = n
    return p + n


cdef object read_field(const unsigned char **pp, const unsigned char *end, str what,
                       Py_ssize_t where):
    """Reads a length-prefixed (varint) byte field; None for length -1."""
    cdef int64_t length
    cdef const unsigned char *p = read_varint32(pp[0], end, &length)
    if p == NULL:
        raise CorruptRecordError(f"{what} length of the record at byte {where} is truncated or malformed")
    if length == -1:
        pp[0] = p
        return None
    if length < 0 or length > end - p:
        raise CorruptRecordError(f"{what} of the record at byte {where} claims {length} bytes; "
                                 f"{end - p} remain in the record")
    pp[0] = p + length
    return PyBytes_FromStringAndSize(<const char *>p, length)


cdef list decode_records(const unsigned char *p, const unsigned char *end, int32_t count,
                         int64_t base_offset, int64_t base_ts, Py_ssize_t region_start):
    cdef list out = []
    cdef int64_t length, ts_delta, off_delta, hcount
    cdef const unsigned char *rec_end
    cdef const unsigned char *start = p
    cdef DecodedRecord rec
    cdef int32_t i
    cdef Py_ssize_t where
    for i in range(count):
        where = region_start + (p - start)
        p = read_varint32(p, end, &length)
        if p == NULL:
            raise CorruptRecordError(f"record {i} of {count}: length truncated or malformed at byte {where}")
        if length < 6 or length > end - p:
            raise CorruptRecordError(f"record {i} of {count} at byte {where} claims {length} bytes; "
                                     f"{end - p} remain")
        rec_end = p + length
        p += 1  # attributes
        p = read_varint64(p, rec_end, &ts_delta)
        if p != NULL:
            p = read_varint32(p, rec_end, &off_delta)
        if p == NULL:
            raise CorruptRecordError(f"record {i} at byte {where}: timestamp or offset delta malformed")
        rec = DecodedRecord.__new__(DecodedRecord)
        rec.offset = base_offset + off_delta
        rec.timestamp = base_ts + ts_delta
        rec.key = read_field(&p, rec_end, "key", where)
        rec.value = read_field(&p, rec_end, "value", where)
        p = read_varint32(p, rec_end, &hcount)
        if p == NULL or hcount < 0 or hcount > rec_end - p:
            raise CorruptRecordError(f"record {i} at byte {where}: header count malformed")
        rec.headers = []
        for _ in range(hcount):
            hk = read_field(&p, rec_end, "header key", where)
            if hk is None:
                raise CorruptRecordError(f"record {i} at byte {where}: null header key")
            try:
                hk = (<bytes>hk).decode("utf-8")
            except UnicodeDecodeError:
                raise CorruptRecordError(f"record {i} at byte {where}: header key is not UTF-8") from None
            rec.headers.append((hk, read_field(&p, rec_end, "header value", where)))
        if p != rec_end:
            raise CorruptRecordError(f"record {i} at byte {where}: {rec_end - p} bytes left over "
                                     f"after its last field")
        out.append(rec)
    if p != end:
        raise CorruptRecordError(f"{end - p} bytes follow the batch's {count} records")
    return out


def decode_batches(data, *, bint verify_crc=True, bint allow_partial_tail=False):
    """Decodes concatenated RecordBatch v2 batches (a Produce payload or a Fetch response's
    records). Checks magic, lengths, CRC and every record's bounds; decompresses. Raises
    CorruptRecordError saying what is wrong and where. With allow_partial_tail, a truncated last
    batch (as brokers may send in Fetch responses) is ignored instead."""
    cdef Py_buffer buf
    cdef const unsigned char *base
    cdef Py_ssize_t n, pos = 0, end
    cdef int64_t batch_len
    cdef int32_t count
    cdef uint32_t crc, computed
    cdef int codec
    cdef DecodedBatch b
    cdef list batches = []
    PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
    try:
        base = <const unsigned char *>buf.buf
        n = buf.len
        while pos < n:
            if n - pos < BATCH_HEADER_BYTES:
                if allow_partial_tail:
                    break
                raise CorruptRecordError(f"batch at byte {pos}: {n - pos} bytes, fewer than the "
                                         f"{BATCH_HEADER_BYTES}-byte header")
            batch_len = <int32_t>load_be32(base + pos + BATCH_LENGTH_OFFSET)
            if batch_len < BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD:
                raise CorruptRecordError(f"batch at byte {pos}: batchLength {batch_len} is smaller "
                                         f"than a batch header")
            end = pos + BATCH_LOG_OVERHEAD + batch_len
            if end > n:
                if allow_partial_tail:
                    break
                raise CorruptRecordError(f"batch at byte {pos}: batchLength {batch_len} runs "
                                         f"{end - n} bytes past the end of the data")
            if base[pos + MAGIC_OFFSET] != 2:
                raise CorruptRecordError(f"batch at byte {pos}: magic {base[pos + MAGIC_OFFSET]}, "
                                         f"only RecordBatch v2 (magic 2) is supported")
            crc = load_be32(base + pos + CRC_OFFSET)
            if verify_crc:
                with nogil:
                    computed = kengine_crc32c(0, base + pos + ATTRIBUTES_OFFSET,
                                              end - pos - ATTRIBUTES_OFFSET)
                if computed != crc:
                    raise CorruptRecordError(f"batch at byte {pos}: CRC mismatch (stored "
                                             f"0x{crc:08x}, computed 0x{computed:08x})")
            b = DecodedBatch.__new__(DecodedBatch)
            b.crc = crc
            b.base_offset = <int64_t>load_be64(base + pos)
            b.partition_leader_epoch = <int32_t>load_be32(base + pos + LEADER_EPOCH_OFFSET)
            b.attributes = <int16_t>load_be16(base + pos + ATTRIBUTES_OFFSET)
            b.last_offset_delta = <int32_t>load_be32(base + pos + LAST_OFFSET_DELTA_OFFSET)
            b.base_timestamp = <int64_t>load_be64(base + pos + BASE_TIMESTAMP_OFFSET)
            b.max_timestamp = <int64_t>load_be64(base + pos + MAX_TIMESTAMP_OFFSET)
            b.producer_id = <int64_t>load_be64(base + pos + PRODUCER_ID_OFFSET)
            b.producer_epoch = <int16_t>load_be16(base + pos + PRODUCER_EPOCH_OFFSET)
            b.base_sequence = <int32_t>load_be32(base + pos + BASE_SEQUENCE_OFFSET)
            count = <int32_t>load_be32(base + pos + RECORD_COUNT_OFFSET)
            if count < 0:
                raise CorruptRecordError(f"batch at byte {pos}: negative record count {count}")
            codec = b.attributes & 7
            if codec == CODEC_NONE:
                b.records = decode_records(base + pos + BATCH_HEADER_BYTES, base + end, count,
                                           b.base_offset, b.base_timestamp, pos + BATCH_HEADER_BYTES)
            else:
                if codec > CODEC_ZSTD:
                    raise CorruptRecordError(f"batch at byte {pos}: unknown compression codec {codec}")
                try:
                    raw = decompress_records(codec, <const char *>base + pos + BATCH_HEADER_BYTES,
                                             end - pos - BATCH_HEADER_BYTES)
                except CorruptRecordError:
                    raise
                except Exception as e:
                    raise CorruptRecordError(f"batch at byte {pos}: {_CODEC_NAMES[codec]} payload "
                                             f"does not decompress: {e}") from None
                if not PyBytes_CheckExact(raw):
                    raw = bytes(raw)
                b.records = decode_records(<const unsigned char *>PyBytes_AS_STRING(raw),
                                           <const unsigned char *>PyBytes_AS_STRING(raw) + PyBytes_GET_SIZE(raw),
                                           count, b.base_offset, b.base_timestamp, 0)
            batches.append(b)
            pos = end
    finally:
        PyBuffer_Release(&buf)
    return batches
