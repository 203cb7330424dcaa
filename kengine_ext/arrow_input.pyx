# Columnar input for send_arrow() (part of kengine_ext._core; fields in arrow_input.pxd): Arrow
# data taken through the C stream / C data interface's PyCapsules (arrow_abi.pxd), its columns
# found by name and checked once per call, then, per chunk of rows, pointers into the Arrow
# buffers gathered into a ColumnsHolder without the GIL. No Arrow library is imported here and
# nothing per row is a Python object: the bytes are copied once, by the batch builder.

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from libc.stdint cimport int8_t, int16_t, uint16_t, uint32_t, INT64_MAX
from libc.stdlib cimport atoi
from libc.string cimport memcmp, memcpy, memset

import os

__all__ += ["ArrowInput", "arrow_input"]

cdef extern from *:
    """
    /* Arrow's buffers are aligned for their type (the spec asks 8 bytes, producers give 64), but
       a reader must not assume it of a view's int32 fields: memcpy loads compile to one mov. */
    static inline int32_t kengine_load_i32(const void *p) {
        int32_t v; memcpy(&v, p, sizeof v); return v;
    }
    """
    int32_t load_i32 "kengine_load_i32"(const void *p) nogil


# ---- reading one element ----

cdef inline bint bit_is_set(const uint8_t *bitmap, int64_t j) noexcept nogil:
    return (bitmap[j >> 3] >> (j & 7)) & 1


cdef inline int64_t int_at(const void *data, int width, bint signed, int64_t j) noexcept nogil:
    """Element j of an integer buffer; an unsigned 64-bit one past int64 reads as negative
    (callers treat negative indices and partitions as invalid)."""
    if width == 8:
        return (<const int64_t *>data)[j]
    if width == 4:
        return (<const int32_t *>data)[j] if signed else <int64_t>(<const uint32_t *>data)[j]
    if width == 2:
        return (<const int16_t *>data)[j] if signed else <int64_t>(<const uint16_t *>data)[j]
    return (<const int8_t *>data)[j] if signed else <int64_t>(<const uint8_t *>data)[j]


cdef inline int column_bytes(const ArrowColumn *c, int64_t i, const char **p,
                             Py_ssize_t *n) noexcept nogil:
    """Row i's bytes: 1, or 0 for a null (p NULL, n -1), or -1 when the data is inconsistent (a
    dictionary index outside its dictionary, a view naming a data buffer that does not exist)."""
    cdef const ArrowValues *a = &c.values
    cdef int64_t j, idx, view_buffer
    cdef const char *v
    cdef int32_t length
    if c.index_bytes:
        j = c.offset + i
        if c.validity != NULL and not bit_is_set(c.validity, j):
            p[0] = NULL
            n[0] = -1
            return 0
        idx = int_at(c.indices, c.index_bytes, c.index_signed, j)
        if idx < 0 or idx >= a.length:
            return -1
        j = a.offset + idx
    else:
        j = a.offset + i
    if a.validity != NULL and not bit_is_set(a.validity, j):
        p[0] = NULL
        n[0] = -1
        return 0
    if a.kind == COL_BINARY:
        p[0] = a.data + (<const int32_t *>a.offsets)[j]
        n[0] = (<const int32_t *>a.offsets)[j + 1] - (<const int32_t *>a.offsets)[j]
    elif a.kind == COL_LARGE_BINARY:
        p[0] = a.data + (<const int64_t *>a.offsets)[j]
        n[0] = <Py_ssize_t>((<const int64_t *>a.offsets)[j + 1] - (<const int64_t *>a.offsets)[j])
    elif a.kind == COL_FIXED:
        p[0] = a.data + j * a.width
        n[0] = a.width
    else:   # COL_VIEW: length, then the bytes inline (<= 12) or prefix, buffer, offset
        v = <const char *>a.offsets + 16 * j
        length = load_i32(v)
        if length <= 12:
            p[0] = v + 4
        else:
            view_buffer = load_i32(v + 8)
            if view_buffer < 0 or view_buffer >= a.view_buffers:
                return -1
            p[0] = a.view_data[view_buffer] + load_i32(v + 12)
        n[0] = length
    if p[0] == NULL:   # an exporter may leave the data buffer of empty values out
        p[0] = kengine_empty_bytes
    return 1


cdef inline int column_int(const ArrowColumn *c, int64_t i, int64_t *out) noexcept nogil:
    """Row i of an integer column: 1, or 0 for a null."""
    cdef int64_t j = c.values.offset + i
    if c.values.validity != NULL and not bit_is_set(c.values.validity, j):
        return 0
    out[0] = int_at(c.values.data, c.values.width, True, j)
    return 1


# ---- types ----

cdef str format_name(const char *f):
    return f.decode("utf-8", "replace") if f != NULL else "?"


cdef str type_words(const ArrowSchema *s):
    """A column's Arrow type in the words users know (pyarrow's names)."""
    names = {"z": "binary", "Z": "large_binary", "u": "string", "U": "large_string",
             "vz": "binary_view", "vu": "string_view", "l": "int64", "i": "int32",
             "s": "int16", "c": "int8", "L": "uint64", "I": "uint32", "S": "uint16",
             "C": "uint8", "g": "double", "f": "float", "b": "bool", "n": "null",
             "tdD": "date32", "tdm": "date64", "+s": "struct", "+l": "list", "+L": "large_list"}
    f = format_name(s.format)
    if s.dictionary != NULL:
        return f"dictionary<{names.get(f, f)} -> {type_words(s.dictionary)}>"
    if f.startswith("w:"):
        return f"fixed_size_binary({f[2:]})"
    if f.startswith("ts"):
        return f"timestamp[{f[2]}]"
    return names.get(f, f"Arrow format {f!r}")


cdef int bytes_kind(const char *f, int32_t *width) noexcept:
    """COL_* of a binary-like format, else 0."""
    if f[0] == c"z" or f[0] == c"u":
        return COL_BINARY if f[1] == 0 else 0
    if f[0] == c"Z" or f[0] == c"U":
        return COL_LARGE_BINARY if f[1] == 0 else 0
    if f[0] == c"v" and (f[1] == c"z" or f[1] == c"u") and f[2] == 0:
        return COL_VIEW
    if f[0] == c"w" and f[1] == c":":
        width[0] = atoi(f + 2)
        return COL_FIXED if width[0] > 0 else 0
    return 0


cdef int int_width(const char *f, bint *signed) noexcept:
    """Bytes of an integer format ("c" int8 ... "L" uint64), else 0."""
    if f[0] == 0 or f[1] != 0:
        return 0
    signed[0] = f[0] in b"csil"
    if f[0] == c"c" or f[0] == c"C":
        return 1
    if f[0] == c"s" or f[0] == c"S":
        return 2
    if f[0] == c"i" or f[0] == c"I":
        return 4
    if f[0] == c"l" or f[0] == c"L":
        return 8
    return 0


cdef int64_t timestamp_unit_ms_div(const char *f, int64_t *mul) noexcept:
    """For a timestamp format ("tss:", "tsm:", "tsu:", "tsn:", any zone) or int64 (epoch ms):
    value * mul / div is epoch ms; returns div, or 0 for another type."""
    mul[0] = 1
    if f[0] == c"l" and f[1] == 0:
        return 1
    if f[0] == c"t" and f[1] == c"s" and f[2] != 0 and f[3] == c":":
        if f[2] == c"s":
            mul[0] = 1000
            return 1
        if f[2] == c"m":
            return 1
        if f[2] == c"u":
            return 1000
        if f[2] == c"n":
            return 1000000
    return 0


# ---- the input ----

@cython.final
cdef class ArrowChunk:
    """One chunk (record batch) of Arrow data, owned: released when no holder points into it."""

    def __dealloc__(self):
        if self.array.release != NULL:
            self.array.release(&self.array)


cdef void move_schema(ArrowSchema *dst, ArrowSchema *src) noexcept:
    dst[0] = src[0]
    src.release = NULL


cdef void move_array(ArrowArray *dst, ArrowArray *src) noexcept:
    dst[0] = src[0]
    src.release = NULL


cdef ArrowInput read_arrow(object data, object value, object key, object headers,
                           object timestamp, object partition):
    """The Arrow data of a send_arrow() call with its columns found and checked. data exports
    the C stream interface (``__arrow_c_stream__``: read to its end, each chunk kept as it is,
    without a copy) or the C data interface (``__arrow_c_array__``: one chunk); its type must
    be a struct (a table or record batch: one field per column)."""
    cdef ArrowInput inp = ArrowInput.__new__(ArrowInput)
    cdef ArrowArrayStream stream
    cdef ArrowArrayStream *sp
    cdef ArrowArray arr
    cdef ArrowSchema *schema_p
    cdef ArrowArray *array_p
    cdef int rc
    stream.release = NULL
    arr.release = NULL
    inp.chunks = []
    export = getattr(type(data), "__arrow_c_stream__", None)
    if export is not None:
        capsule = data.__arrow_c_stream__()
        if not PyCapsule_IsValid(capsule, "arrow_array_stream"):
            raise TypeError(f"{type(data).__name__}.__arrow_c_stream__() did not return an "
                            f"'arrow_array_stream' PyCapsule; nothing was sent")
        sp = <ArrowArrayStream *>PyCapsule_GetPointer(capsule, "arrow_array_stream")
        if sp.release == NULL:
            raise ValueError("the Arrow stream was already consumed; nothing was sent")
        stream = sp[0]     # moved: the capsule's destructor does nothing from now on
        sp.release = NULL
        try:
            rc = stream.get_schema(&stream, &inp.schema)
            if rc != 0:
                raise stream_error(&stream, rc, "its schema")
            inp.check_schema()
            while True:
                rc = stream.get_next(&stream, &arr)
                if rc != 0:
                    raise stream_error(&stream, rc, f"chunk {len(inp.chunks)}")
                if arr.release == NULL:   # the end
                    break
                inp.add_chunk(&arr)
        finally:
            if arr.release != NULL:
                arr.release(&arr)
            stream.release(&stream)
    elif getattr(type(data), "__arrow_c_array__", None) is not None:
        pair = data.__arrow_c_array__()
        if not (isinstance(pair, tuple) and len(pair) == 2
                and PyCapsule_IsValid(pair[0], "arrow_schema")
                and PyCapsule_IsValid(pair[1], "arrow_array")):
            raise TypeError(f"{type(data).__name__}.__arrow_c_array__() did not return an "
                            f"('arrow_schema', 'arrow_array') pair of PyCapsules; nothing was "
                            f"sent")
        schema_p = <ArrowSchema *>PyCapsule_GetPointer(pair[0], "arrow_schema")
        array_p = <ArrowArray *>PyCapsule_GetPointer(pair[1], "arrow_array")
        if schema_p.release == NULL or array_p.release == NULL:
            raise ValueError("the Arrow array was already consumed; nothing was sent")
        move_schema(&inp.schema, schema_p)
        move_array(&arr, array_p)
        try:
            inp.check_schema()
            inp.add_chunk(&arr)
        finally:
            if arr.release != NULL:
                arr.release(&arr)
    else:
        raise TypeError(
            f"send_arrow() takes data that exports the Arrow C data interface "
            f"(__arrow_c_stream__ or __arrow_c_array__): a pyarrow Table, RecordBatch or "
            f"RecordBatchReader, a Polars DataFrame, a pandas DataFrame (pandas 2.2+), a "
            f"nanoarrow array; not {type(data).__name__}. Nothing was sent")
    inp.bind_columns(value, key, headers, timestamp, partition)
    return inp


def arrow_input(data, value, key=None, headers=None, timestamp=None, partition=None):
    """Arrow data read once (a stream to its end) with the columns send_arrow() reads found and
    checked; send_arrow() takes it in place of the data. The asyncio producer reads its data
    so, once, and resends rows refused for want of memory from it."""
    return read_arrow(data, value, key, headers, timestamp,
                      partition if isinstance(partition, str) else None)


cdef object stream_error(ArrowArrayStream *stream, int rc, str what):
    cdef const char *msg = stream.get_last_error(stream) if stream.get_last_error != NULL \
        else NULL
    detail = msg.decode("utf-8", "replace") if msg != NULL else os.strerror(rc)
    return ValueError(f"the Arrow stream failed to give {what}: {detail}; nothing was sent")


@cython.final
cdef class ArrowInput:
    """Arrow data and the columns a send_arrow() call reads from it (see read_arrow())."""

    def __cinit__(self):
        self.schema.release = NULL
        self._value_col = self._key_col = self._timestamp_col = self._partition_col = -1

    def __dealloc__(self):
        PyMem_Free(self._header_cols)
        PyMem_Free(self._header_key_ptr)
        PyMem_Free(self._header_key_len)
        if self.schema.release != NULL:
            self.schema.release(&self.schema)

    cdef int check_schema(self) except -1:
        if self.schema.format == NULL or memcmp(self.schema.format, b"+s", 3) != 0:
            raise TypeError(f"send_arrow() needs tabular Arrow data (a table or record batch: "
                            f"a struct of columns), not {type_words(&self.schema)}; wrap one "
                            f"array as a table (pyarrow.table({{'value': array}})). Nothing was "
                            f"sent")
        cdef int64_t k
        self.column_names = []
        for k in range(self.schema.n_children):
            name = self.schema.children[k].name
            self.column_names.append(name.decode("utf-8", "replace") if name != NULL else "")
        return 0

    cdef int add_chunk(self, ArrowArray *array) except -1:
        if array.n_children != self.schema.n_children:
            raise ValueError(f"Arrow chunk {len(self.chunks)} has {array.n_children} columns, "
                             f"its schema {self.schema.n_children}; nothing was sent")
        if array.null_count != 0 and array.n_buffers > 0 and array.buffers[0] != NULL:
            raise ValueError(f"Arrow chunk {len(self.chunks)} has null rows (a null struct): "
                             f"rows must not be null, only their fields; nothing was sent")
        cdef ArrowChunk chunk = ArrowChunk.__new__(ArrowChunk)
        move_array(&chunk.array, array)
        chunk.first_row = self.row_count
        self.row_count += chunk.array.length
        if chunk.array.length > 0:   # an empty chunk has nothing to send
            self.chunks.append(chunk)
        return 0

    cdef int bind_columns(self, object value, object key, object headers, object timestamp,
                          object partition) except -1:
        """Finds the named columns and checks their types against what each is for."""
        cdef Py_ssize_t h
        self._value_col = self.find_column(value, ROLE_VALUE)
        self._key_col = self.find_column(key, ROLE_KEY)
        self._timestamp_col = self.find_column(timestamp, ROLE_TIMESTAMP)
        self._partition_col = self.find_column(partition, ROLE_PARTITION)
        self.timestamp_column = timestamp
        self.partition_column = partition
        if headers is None:
            pairs = []
        elif isinstance(headers, str):
            raise TypeError(f"headers must be a list of column names (each header is named "
                            f"after its column) or a dict of header name -> column name, not "
                            f"the string {headers!r}; did you mean [{headers!r}]? Nothing was "
                            f"sent")
        elif isinstance(headers, dict):
            pairs = list(headers.items())
        else:
            pairs = [(c, c) for c in headers]
        self._header_count = <int32_t>len(pairs)
        self._header_cols = <int *>PyMem_Malloc(max(1, len(pairs)) * sizeof(int))
        self._header_key_ptr = <const char **>PyMem_Malloc(max(1, len(pairs)) * sizeof(char *))
        self._header_key_len = <Py_ssize_t *>PyMem_Malloc(max(1, len(pairs)) * sizeof(Py_ssize_t))
        if self._header_cols == NULL or self._header_key_ptr == NULL \
                or self._header_key_len == NULL:
            raise MemoryError()
        self.header_keys = []
        self._header_key_bytes = []
        for h, (hkey, col) in enumerate(pairs):
            if not isinstance(hkey, str):
                raise TypeError(f"header names must be str, not {hkey!r}; nothing was sent")
            self._header_cols[h] = self.find_column(col, ROLE_HEADER)
            encoded = hkey.encode()
            self.header_keys.append(hkey)
            self._header_key_bytes.append(encoded)
            self._header_key_ptr[h] = PyBytes_AS_STRING(encoded)
            self._header_key_len[h] = PyBytes_GET_SIZE(encoded)
        return 0

    cdef int find_column(self, object name, int role) except -2:
        """The child index of column `name` (None: -1), its type checked for `role`."""
        cdef str what = ("value", "key", "header", "timestamp", "partition")[role]
        cdef const ArrowSchema *s
        cdef int32_t width = 0
        cdef int64_t mul
        cdef bint signed
        if name is None:
            if role == ROLE_VALUE:
                raise TypeError("send_arrow() needs value=: the name of the column that holds "
                                "the record values; nothing was sent")
            return -1
        if not isinstance(name, str):
            raise TypeError(f"the {what} column must be named by a str, not {name!r}; nothing "
                            f"was sent")
        try:
            k = self.column_names.index(name)
        except ValueError:
            raise KeyError(f"no column {name!r} (the {what} column) in the Arrow data; its "
                           f"columns are {self.column_names}. Nothing was sent") from None
        s = self.schema.children[k]
        if role <= ROLE_HEADER:
            if s.dictionary != NULL:
                ok = int_width(s.format, &signed) > 0 and s.dictionary.dictionary == NULL \
                    and bytes_kind(s.dictionary.format, &width) != 0
            else:
                ok = bytes_kind(s.format, &width) != 0
            if not ok:
                raise TypeError(
                    f"the {what} column {name!r} is {type_words(s)}: send_arrow() sends binary, "
                    f"large_binary, string, large_string, binary_view, string_view or "
                    f"fixed_size_binary columns (or dictionaries of them) as they are; convert "
                    f"it first (for JSON rows: kengine's arrow_rows_to_json(), or pyarrow's "
                    f"compute.cast to string). Nothing was sent")
        elif role == ROLE_TIMESTAMP:
            if s.dictionary != NULL or timestamp_unit_ms_div(s.format, &mul) == 0:
                raise TypeError(f"the timestamp column {name!r} is {type_words(s)}: use a "
                                f"timestamp column (any unit, any zone) or int64 epoch "
                                f"milliseconds. Nothing was sent")
        else:
            if s.dictionary != NULL or int_width(s.format, &signed) == 0 or not signed:
                raise TypeError(f"the partition column {name!r} is {type_words(s)}: use a "
                                f"signed integer column of partition numbers (null: the "
                                f"partitioner chooses). Nothing was sent")
        return k

    cdef int resolve(self, ArrowChunk chunk, int col, int role, ArrowColumn *out) except -1:
        """Points `out` at column `col` of `chunk`, checking the array has the buffers its
        type needs (the C interface gives no buffer lengths: offsets are trusted)."""
        cdef const ArrowSchema *s = self.schema.children[col]
        cdef const ArrowSchema *vs = s
        cdef ArrowArray *a = chunk.array.children[col]
        cdef ArrowArray *va = a
        if s.dictionary != NULL:   # the values are the dictionary's
            vs = s.dictionary
            va = a.dictionary
        cdef ArrowValues *v = &out.values
        cdef int32_t width = 0
        cdef int64_t need
        cdef bint signed
        memset(out, 0, sizeof(ArrowColumn))
        out.scale_mul = out.scale_div = 1
        if a.length < chunk.array.length + chunk.array.offset:
            raise ValueError(f"column {self.column_names[col]!r} of Arrow chunk "
                             f"{self.chunks.index(chunk)} is shorter than the chunk; nothing "
                             f"was sent")
        if s.dictionary != NULL:
            if va == NULL or a.n_buffers != 2:
                raise ValueError(f"dictionary column {self.column_names[col]!r} has no "
                                 f"dictionary or the wrong buffers; nothing was sent")
            out.index_bytes = int_width(s.format, &out.index_signed)
            out.offset = a.offset + chunk.array.offset
            out.validity = <const uint8_t *>a.buffers[0] if a.null_count != 0 else NULL
            out.indices = a.buffers[1]
            v.offset = va.offset
        else:
            v.offset = a.offset + chunk.array.offset
        v.length = va.length
        v.validity = <const uint8_t *>va.buffers[0] if va.null_count != 0 else NULL
        if role <= ROLE_HEADER:
            v.kind = bytes_kind(vs.format, &width)
            need = 3 if v.kind in (COL_BINARY, COL_LARGE_BINARY) else 2
            if v.kind == COL_VIEW:
                need = 3   # validity, views, (data buffers...), sizes
            if va.n_buffers < need:
                raise ValueError(f"column {self.column_names[col]!r} has {va.n_buffers} "
                                 f"buffers, fewer than its type needs; nothing was sent")
            v.width = width
            if v.kind == COL_FIXED:
                v.data = <const char *>va.buffers[1]
            elif v.kind == COL_VIEW:
                v.offsets = va.buffers[1]
                v.view_data = <const char **>&va.buffers[2]
                v.view_buffers = va.n_buffers - 3
            else:
                v.offsets = va.buffers[1]
                v.data = <const char *>va.buffers[2]
        else:
            v.kind = COL_INT
            if role == ROLE_TIMESTAMP:
                out.scale_div = timestamp_unit_ms_div(vs.format, &out.scale_mul)
                v.width = 8
            else:
                v.width = int_width(vs.format, &signed)
            if va.n_buffers != 2:
                raise ValueError(f"column {self.column_names[col]!r} has {va.n_buffers} "
                                 f"buffers, not the 2 of its type; nothing was sent")
            v.data = <const char *>va.buffers[1]
        return 0

    cdef Py_ssize_t fill(self, ArrowChunk chunk, ColumnsHolder holder, const int64_t *rows,
                         int64_t first, Py_ssize_t n, int32_t *row_parts,
                         int32_t *max_part) except -1:
        """Points holder at n rows of chunk: rows[0..n) (chunk-relative), or first..first+n-1
        when rows is NULL. row_parts (when a partition column is bound) gets each row's
        partition, -1 for a null (the partitioner's choice) and -2 for a negative or too large
        one; *max_part the largest. Rows with a negative timestamp get -1 as their timestamp.
        Returns how many rows are bad (the caller refuses them), after which holder's pointers
        are valid for as long as it lives (it keeps the chunk)."""
        cdef Py_ssize_t j, h, hbytes = 0, bad = 0
        cdef int64_t i, ts
        cdef const char *p = NULL
        cdef Py_ssize_t ln = 0
        cdef int rc = 1, broken = 0
        cdef int32_t nh = self._header_count
        cdef ArrowColumn vcol, kcol, tcol, pcol
        cdef ArrowColumn *hcols = NULL
        cdef char *out = NULL
        cdef RecordColumns *c = &holder.cols
        holder.allocate(n, nh > 0, self._timestamp_col >= 0)
        holder._keep.append(chunk)
        c.default_timestamp_ms = now_ms()
        self.resolve(chunk, self._value_col, ROLE_VALUE, &vcol)
        if self._key_col >= 0:
            self.resolve(chunk, self._key_col, ROLE_KEY, &kcol)
        if self._timestamp_col >= 0:
            self.resolve(chunk, self._timestamp_col, ROLE_TIMESTAMP, &tcol)
        if self._partition_col >= 0:
            self.resolve(chunk, self._partition_col, ROLE_PARTITION, &pcol)
        hblob = None
        if nh > 0:
            hcols = <ArrowColumn *>PyMem_Malloc(nh * sizeof(ArrowColumn))
            if hcols == NULL:
                raise MemoryError()
        try:
            for h in range(nh):
                self.resolve(chunk, self._header_cols[h], ROLE_HEADER, &hcols[h])
            if nh > 0:
                with nogil:   # the encoded headers' size, for one allocation
                    for j in range(n):
                        i = rows[j] if rows != NULL else first + j
                        for h in range(nh):
                            rc = column_bytes(&hcols[h], i, &p, &ln)
                            if rc < 0:
                                broken = 1
                                break
                            hbytes += uvarint_size(zigzag32(<int32_t>self._header_key_len[h])) \
                                + self._header_key_len[h] \
                                + (1 if rc == 0 else uvarint_size(zigzag32(<int32_t>ln)) + ln)
                        if broken:
                            break
                if broken:
                    raise ValueError(self.broken_words(chunk, i, "header"))
                hblob = PyBytes_FromStringAndSize(NULL, hbytes)
                holder._keep.append(hblob)
                out = PyBytes_AS_STRING(hblob)
            with nogil:
                for j in range(n):
                    i = rows[j] if rows != NULL else first + j
                    if column_bytes(&vcol, i, &c.value_ptr[j], &c.value_len[j]) < 0:
                        broken = 1
                        break
                    if self._key_col < 0:
                        c.key_ptr[j] = NULL
                        c.key_len[j] = -1
                    elif column_bytes(&kcol, i, &c.key_ptr[j], &c.key_len[j]) < 0:
                        broken = 2
                        break
                    if self._timestamp_col >= 0:
                        if not column_int(&tcol, i, &ts):
                            ts = c.default_timestamp_ms
                        elif ts < 0 or ts > INT64_MAX / tcol.scale_mul:
                            ts = -1
                            bad += 1
                        else:
                            ts = ts * tcol.scale_mul // tcol.scale_div
                        c.timestamp_ms[j] = ts
                    if self._partition_col >= 0:
                        if not column_int(&pcol, i, &ts):
                            row_parts[j] = -1
                        elif ts < 0 or ts > 0x7FFFFFFF:
                            row_parts[j] = -2
                            bad += 1
                        else:
                            row_parts[j] = <int32_t>ts
                            if ts > max_part[0]:
                                max_part[0] = <int32_t>ts
                    if nh > 0:
                        c.headers_ptr[j] = out
                        c.header_count[j] = nh
                        for h in range(nh):
                            out = put_uvarint(out, zigzag32(<int32_t>self._header_key_len[h]))
                            memcpy(out, self._header_key_ptr[h], self._header_key_len[h])
                            out += self._header_key_len[h]
                            if column_bytes(&hcols[h], i, &p, &ln) == 0:
                                out = put_uvarint(out, 1)   # zigzag(-1): a null header value
                            else:
                                out = put_uvarint(out, zigzag32(<int32_t>ln))
                                memcpy(out, p, ln)
                                out += ln
                        c.headers_len[j] = out - c.headers_ptr[j]
        finally:
            PyMem_Free(hcols)
        if broken:
            raise ValueError(self.broken_words(chunk, i, "value" if broken == 1 else "key"))
        return bad

    cdef str broken_words(self, ArrowChunk chunk, int64_t i, str what):
        return (f"row {chunk.first_row + i}: its {what} column's dictionary index is outside "
                f"the dictionary, or its view names a data buffer the array does not have "
                f"(the Arrow data is inconsistent); nothing was sent")

    cdef list python_headers(self, ArrowChunk chunk, const int64_t *rows, int64_t first,
                             Py_ssize_t n):
        """The rows' headers as [(name, bytes | None)] each, for a Python partitioner (which
        costs Python objects per row: it is the slow path)."""
        cdef ArrowColumn col
        cdef Py_ssize_t j, h
        cdef const char *p
        cdef Py_ssize_t ln
        out = [[] for j in range(n)] if self._header_count > 0 else None
        for h in range(self._header_count):
            self.resolve(chunk, self._header_cols[h], ROLE_HEADER, &col)
            name = self.header_keys[h]
            for j in range(n):
                if column_bytes(&col, rows[j] if rows != NULL else first + j, &p, &ln) > 0:
                    out[j].append((name, PyBytes_FromStringAndSize(p, ln)))
                else:
                    out[j].append((name, None))
        return out
