# The Avro binary encoder of kengine.schema_registry.avro: a schema compiled once into a tree of
# AvroNode, then each record encoded by walking it in C (no Python call per field). Immutable
# after compile_avro(); safe to share between threads (every write() has its own buffer).

cdef enum AvroKind:
    AV_NULL = 0
    AV_BOOLEAN = 1
    AV_INT = 2
    AV_LONG = 3
    AV_FLOAT = 4
    AV_DOUBLE = 5
    AV_BYTES = 6
    AV_STRING = 7
    AV_RECORD = 8
    AV_ENUM = 9
    AV_ARRAY = 10
    AV_MAP = 11
    AV_UNION = 12
    AV_FIXED = 13

# The output of one write(): inline bytes first, the heap only for large records.
cdef enum:
    AVRO_INLINE_BYTES = 512

cdef struct AvroOut:
    char *data                     # inline or heap
    Py_ssize_t length              # bytes written
    Py_ssize_t capacity            # bytes available at data
    char *heap                     # NULL while data is the inline buffer
    char inline[AVRO_INLINE_BYTES]

cdef class AvroNode:
    cdef readonly int kind         # AvroKind
    cdef readonly str name         # a named type's full name ("" for the others), for errors
    cdef tuple field_names         # AV_RECORD: field names (str), in schema order
    cdef list children             # AV_RECORD: each field's node; AV_ARRAY: [items];
                                   # AV_MAP: [values]; AV_UNION: the branches
    cdef tuple defaults            # AV_RECORD: each field's default, or _av_NO_DEFAULT
    cdef dict symbols              # AV_ENUM: symbol -> index
    cdef Py_ssize_t size           # AV_FIXED: its size in bytes

cdef class AvroWriter:
    cdef readonly AvroNode root
    cpdef bytes write(self, bytes prefix, object datum)
