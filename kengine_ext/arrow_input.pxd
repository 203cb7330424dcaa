# Columnar input: the columns of Arrow data (C data / C stream interface, arrow_abi.pxd) named by
# send_arrow(), resolved to plain pointers and gathered into RecordColumns without a Python
# object per row (part of kengine_ext._core). One writer per field: arrow_input.pyx. An
# ArrowInput is made and used by one send_arrow() call on one user thread (GIL); its buffers
# are read without the GIL while that call holds it.
from libc.stdint cimport int32_t, int64_t, uint8_t
cimport cython

# How a column's values are laid out (Arrow's physical layouts kengine reads).
cdef enum:
    COL_BINARY = 1        # binary / utf8: int32 offsets + data
    COL_LARGE_BINARY = 2  # large_binary / large_utf8: int64 offsets + data
    COL_FIXED = 3         # fixed_size_binary(width)
    COL_VIEW = 4          # binary_view / utf8_view: 16-byte views + variadic data buffers
    COL_INT = 5           # a signed integer of `width` bytes (timestamps, partitions)

# What a column is used for (the checks and messages differ).
cdef enum:
    ROLE_VALUE = 0
    ROLE_KEY = 1
    ROLE_HEADER = 2
    ROLE_TIMESTAMP = 3
    ROLE_PARTITION = 4


# One array of one chunk, resolved: every pointer borrows from the chunk's ArrowArray.
ctypedef struct ArrowValues:
    int kind                      # COL_*
    int64_t offset                # elements to skip in every buffer (Arrow slices)
    int64_t length                # elements (a dictionary's index bound)
    const uint8_t *validity       # bit i (LSB first) set: element i is not null; NULL: none null
    const void *offsets           # COL_BINARY / COL_LARGE_BINARY offsets, COL_VIEW views
    const char *data              # the bytes (COL_BINARY, COL_LARGE_BINARY, COL_FIXED, COL_INT)
    const char **view_data        # COL_VIEW: its data buffers
    int64_t view_buffers          # COL_VIEW: how many
    int32_t width                 # COL_FIXED: bytes per value; COL_INT: 1, 2, 4 or 8


# A column of one chunk: its values, or the indices into a dictionary of values.
ctypedef struct ArrowColumn:
    ArrowValues values            # the column itself, or its dictionary when index_bytes > 0
    int index_bytes               # 0: not dictionary-encoded; else 1, 2, 4 or 8
    bint index_signed
    int64_t offset                # dictionary-encoded: the indices' offset ...
    const uint8_t *validity       # ... validity ...
    const void *indices           # ... and buffer
    int64_t scale_mul             # COL_INT timestamps: value * scale_mul / scale_div = ms
    int64_t scale_div


# Owns one chunk (a struct array: one child per column) moved out of its exporter; released
# when the last ColumnsHolder pointing into it is gone.
@cython.final
cdef class ArrowChunk:
    cdef ArrowArray array         # moved in: this object calls its release callback
    cdef int64_t first_row        # the index of its first row among the call's rows


@cython.final
cdef class ArrowInput:
    cdef ArrowSchema schema       # moved in; released on deallocation
    cdef readonly list chunks     # [ArrowChunk] in row order
    cdef readonly int64_t row_count
    cdef readonly list column_names
    cdef readonly str timestamp_column    # the names bound by bind_columns(), for messages
    cdef readonly str partition_column
    cdef int _value_col           # child index of each role's column; -1: not given
    cdef int _key_col
    cdef int _timestamp_col
    cdef int _partition_col
    cdef int32_t _header_count    # header columns: child index and encoded header key each
    cdef int *_header_cols
    cdef readonly list header_keys        # [str]
    cdef list _header_key_bytes           # [bytes] UTF-8, kept alive for _header_key_ptr
    cdef const char **_header_key_ptr
    cdef Py_ssize_t *_header_key_len

    cdef int check_schema(self) except -1
    cdef int bind_columns(self, object value, object key, object headers, object timestamp,
                          object partition) except -1
    cdef int add_chunk(self, ArrowArray *array) except -1
    cdef int find_column(self, object name, int role) except -2
    cdef int resolve(self, ArrowChunk chunk, int col, int role, ArrowColumn *out) except -1
    cdef Py_ssize_t fill(self, ArrowChunk chunk, ColumnsHolder holder, const int64_t *rows,
                         int64_t first, Py_ssize_t n, int32_t *row_parts,
                         int32_t *max_part) except -1
    cdef str broken_words(self, ArrowChunk chunk, int64_t i, str what)
    cdef list python_headers(self, ArrowChunk chunk, const int64_t *rows, int64_t first,
                             Py_ssize_t n)
