# The schema-driven Kafka protocol codec. Each (message, version) is compiled once from the
# table in kengine_ext/schemas.py into a _Program: a flat C array of _FieldOp per struct, which
# a small interpreter runs over WriteBuffer / ReadBuffer. Values are plain Python: dicts keyed
# by snake_case field names, lists for arrays.
from cpython.ref cimport PyObject
from libc.stdint cimport uint32_t

cdef enum _OpKind:
    OP_BOOL = 1
    OP_INT8
    OP_INT16
    OP_UINT16
    OP_INT32
    OP_UINT32
    OP_INT64
    OP_FLOAT64
    OP_UUID
    OP_STRING
    OP_BYTES
    OP_RECORDS
    OP_STRUCT
    OP_ARRAY

cdef struct _FieldOp:
    int kind                    # _OpKind of the value; OP_ARRAY: elem_kind says of what
    int elem_kind               # _OpKind of an array's elements (0 for non-arrays)
    bint nullable               # null allowed in this version
    bint compact                # flexible encoding: uvarint lengths for strings/bytes/arrays
    bint tagged                 # travels in the struct's tagged-field section under `tag`
    bint ignorable              # (absent fields) a non-default value is dropped, not an error
    uint32_t tag
    Py_ssize_t min_bytes        # smallest inline encoding (0 when tagged)
    Py_ssize_t elem_min_bytes   # smallest encoding of one array element
    PyObject* name              # str: the key in value dicts       (owned by _Program._refs)
    PyObject* default           # value encoded for a missing key   (owned by _Program._refs)
    PyObject* versions          # str: Kafka's version range, for error messages (owned)
    PyObject* child             # _Program of a struct / struct-array element, else NULL (owned)


cdef class _Program:
    cdef:
        _FieldOp* ops               # fields present in this version, in schema order (PyMem)
        Py_ssize_t n_ops
        _FieldOp* absent            # fields this version lacks, checked when encoding (PyMem)
        Py_ssize_t n_absent
        Py_ssize_t* tag_order       # indexes into ops of the tagged fields, ascending tag (PyMem)
        Py_ssize_t n_tagged
        bint flexible               # the struct ends with a tagged-field section
        Py_ssize_t min_bytes        # smallest encoding of the whole struct
        str name                    # "ProduceRequest v9" (top level) or the struct type name
        dict by_tag                 # tag -> index into ops, for decoding; None if no tags
        list _refs                  # owns every object the ops point to
