# The Arrow C data interface and C stream interface (part of kengine_ext._core's declarations):
# the three structs of Arrow's stable, published ABI, written from the specification
# (arrow.apache.org/docs/format/CDataInterface.html and CStreamInterface.html), and the names of
# the PyCapsules that carry them (the Arrow PyCapsule interface). kengine reads them itself, so
# send_arrow() needs no Arrow library at run time: any exporter (pyarrow, Polars, pandas,
# nanoarrow, DuckDB) hands its buffers over without a copy.
#
# Ownership (the spec's "move" rule): whoever holds a struct with a non-NULL release callback
# must call it exactly once; moving a struct means copying its bytes and setting the source's
# release to NULL, after which the source's destructor (a capsule's) does nothing.
from libc.stdint cimport int64_t


cdef struct ArrowSchema:
    const char *format           # the type, e.g. "z" binary, "U" large utf8, "+s" struct
    const char *name             # the field's name (a column's), UTF-8, may be NULL
    const char *metadata         # key/value metadata, binary encoded, may be NULL
    int64_t flags                # ARROW_FLAG_*
    int64_t n_children
    ArrowSchema **children
    ArrowSchema *dictionary      # the value type of a dictionary-encoded field, else NULL
    void (*release)(ArrowSchema *) noexcept nogil   # NULL: released (or moved away)
    void *private_data           # the producer's


cdef struct ArrowArray:
    int64_t length               # elements (rows)
    int64_t null_count           # -1: not computed
    int64_t offset               # logical offset into every buffer (slices), in elements
    int64_t n_buffers
    int64_t n_children
    const void **buffers         # buffers[0] is the validity bitmap for most types (NULL: no nulls)
    ArrowArray **children
    ArrowArray *dictionary       # the values of a dictionary-encoded array, else NULL
    void (*release)(ArrowArray *) noexcept nogil    # NULL: released (or moved away)
    void *private_data


cdef struct ArrowArrayStream:
    # 0 or an errno value; get_next() sets out->release to NULL at the end of the stream
    int (*get_schema)(ArrowArrayStream *, ArrowSchema *out) noexcept nogil
    int (*get_next)(ArrowArrayStream *, ArrowArray *out) noexcept nogil
    const char *(*get_last_error)(ArrowArrayStream *) noexcept nogil   # valid until the next call
    void (*release)(ArrowArrayStream *) noexcept nogil
    void *private_data


cdef enum:
    ARROW_FLAG_DICTIONARY_ORDERED = 1
    ARROW_FLAG_NULLABLE = 2
    ARROW_FLAG_MAP_KEYS_SORTED = 4
