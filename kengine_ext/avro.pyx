# Avro binary encoding (Avro 1.11 specification, "Binary Encoding") of Python values, for the
# Confluent-framed serializer in kengine/schema_registry/avro.py.
#
# compile_avro() turns a fastavro-parsed schema into a tree of AvroNode once; AvroWriter.write()
# then encodes a record by walking the tree in C: no Python-level call per field, one bytes object
# per record (the inline buffer absorbs records up to AVRO_INLINE_BYTES without malloc). Values
# are checked as fastavro's validator checks them (an int field takes an int, not a bool or a
# float...), and a union takes the first branch that accepts the value, as fastavro's writer
# does, so the bytes equal fastavro's for every value both accept. Schemas this encoder does not
# cover (logical types, a union of several record or map types) make compile_avro() return None,
# and the serializer uses fastavro for them.
from cpython.bool cimport PyBool_Check
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Check, PyDict_GetItem, PyDict_Next, PyDict_Size
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.list cimport PyList_Check
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_Check
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1

__all__ += ["AvroNode", "AvroWriter", "AvroValueError", "compile_avro"]

cdef object _av_NO_DEFAULT = object()
_AVRO_INT_MIN = -(1 << 31)
_AVRO_INT_MAX = (1 << 31) - 1
_AVRO_LONG_MIN = -(1 << 63)
_AVRO_LONG_MAX = (1 << 63) - 1


class AvroValueError(ValueError):
    """A value that does not fit its Avro schema. ``path`` is the field path from the record
    (["address", "city"]), ``reason`` what is wrong there."""

    def __init__(self, reason):
        super().__init__(reason)
        self.path = []
        self.reason = reason

    def __str__(self):
        where = ".".join(self.path) if self.path else "the record"
        return f"{where}: {self.reason}"


cdef inline str _av_show(object datum):
    text = repr(datum)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(datum).__name__} {text}"


cdef class AvroNode:
    def __repr__(self):
        return f"<AvroNode kind={self.kind} name={self.name!r}>"


# ------------------------------------------------------------------ compiling a schema

_av_PRIMITIVES = {"null": AV_NULL, "boolean": AV_BOOLEAN, "int": AV_INT, "long": AV_LONG,
               "float": AV_FLOAT, "double": AV_DOUBLE, "bytes": AV_BYTES, "string": AV_STRING}


class _av_Unsupported(Exception):
    pass


cdef AvroNode _av_node(int kind, str name=""):
    cdef AvroNode n = AvroNode.__new__(AvroNode)
    n.kind = kind
    n.name = name
    return n


cdef AvroNode _av_compile(object schema, dict named, dict done):
    cdef AvroNode n
    if isinstance(schema, str):
        if schema in _av_PRIMITIVES:
            return _av_node(_av_PRIMITIVES[schema])
        if schema in done:
            return done[schema]
        if schema in named:
            return _av_compile(named[schema], named, done)
        raise _av_Unsupported(f"unknown named type {schema!r}")
    if isinstance(schema, list):
        n = _av_node(AV_UNION)
        n.children = [_av_compile(s, named, done) for s in schema]
        dict_like = sum(1 for b in n.children if (<AvroNode>b).kind in (AV_RECORD, AV_MAP))
        if dict_like > 1:   # choosing among them needs fastavro's best-match search
            raise _av_Unsupported("a union of several record or map types")
        return n
    if not isinstance(schema, dict):
        raise _av_Unsupported(f"schema {schema!r}")
    if "logicalType" in schema:   # datetime, Decimal, UUID conversions: fastavro's
        raise _av_Unsupported(f"logical type {schema['logicalType']!r}")
    t = schema["type"]
    if t in _av_PRIMITIVES:
        return _av_node(_av_PRIMITIVES[t])
    if t == "record" or t == "error":
        n = _av_node(AV_RECORD, schema["name"])
        done[schema["name"]] = n   # before the fields: a record may contain itself
        fields = schema["fields"]
        n.field_names = tuple(f["name"] for f in fields)
        n.defaults = tuple(f.get("default", _av_NO_DEFAULT) for f in fields)
        n.children = [_av_compile(f["type"], named, done) for f in fields]
        return n
    if t == "enum":
        n = _av_node(AV_ENUM, schema["name"])
        n.symbols = {s: i for i, s in enumerate(schema["symbols"])}
        done[schema["name"]] = n
        return n
    if t == "fixed":
        n = _av_node(AV_FIXED, schema["name"])
        n.size = schema["size"]
        done[schema["name"]] = n
        return n
    if t == "array":
        n = _av_node(AV_ARRAY)
        n.children = [_av_compile(schema["items"], named, done)]
        return n
    if t == "map":
        n = _av_node(AV_MAP)
        n.children = [_av_compile(schema["values"], named, done)]
        return n
    return _av_compile(t, named, done)   # {"type": "int"}, {"type": "some.Named"}


def compile_avro(parsed_schema, named_schemas):
    """The encoder tree of a fastavro-parsed schema (``named_schemas``: fastavro's map of full
    names to parsed named types), or None when the schema needs fastavro (logical types, a
    union of several record or map types)."""
    try:
        return _av_compile(parsed_schema, dict(named_schemas), {})
    except _av_Unsupported:
        return None


# ------------------------------------------------------------------ encoding

cdef int _av_grow(AvroOut *o, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = o.capacity * 2
    while cap < o.length + extra:
        cap *= 2
    cdef char *p
    if o.heap == NULL:
        p = <char *>malloc(cap)
        if p == NULL:
            raise MemoryError()
        memcpy(p, o.data, o.length)
    else:
        p = <char *>realloc(o.heap, cap)
        if p == NULL:
            raise MemoryError()
    o.heap = p
    o.data = p
    o.capacity = cap
    return 0


cdef inline int _av_ensure(AvroOut *o, Py_ssize_t extra) except -1:
    if o.length + extra > o.capacity:
        _av_grow(o, extra)
    return 0


cdef inline int _av_put_long(AvroOut *o, int64_t v) except -1:
    # Avro's int and long are Kafka's varlong: zigzag, then 7 bits a byte (primitives)
    _av_ensure(o, 10)
    o.length = put_uvarint(o.data + o.length, zigzag64(v)) - o.data
    return 0


cdef inline int _av_put_raw(AvroOut *o, const char *data, Py_ssize_t n) except -1:
    _av_ensure(o, n)
    memcpy(o.data + o.length, data, n)
    o.length += n
    return 0


cdef inline int _av_put_le(AvroOut *o, uint64_t bits, int n) except -1:
    _av_ensure(o, n)
    cdef char *p = o.data + o.length
    cdef int i
    for i in range(n):
        p[i] = <char>(bits >> (8 * i))
    o.length += n
    return 0


cdef inline bint _av_is_int(object datum):
    return PyLong_Check(datum) and not PyBool_Check(datum)


cdef int64_t _av_as_long(object datum, bint int32) except? -1:
    cdef int overflow = 0
    cdef long long v
    if not _av_is_int(datum):
        if PyBool_Check(datum) or not hasattr(datum, "__index__"):
            raise AvroValueError(f"expected {'int' if int32 else 'long'}, got {_av_show(datum)}")
        datum = datum.__index__()   # numpy integers
    v = PyLong_AsLongLongAndOverflow(datum, &overflow)
    if overflow or (int32 and not (-2147483648 <= v <= 2147483647)):
        raise AvroValueError(f"{datum} does not fit an Avro {'int' if int32 else 'long'}")
    return v


cdef double _av_as_double(object datum) except? -1.5:
    if PyFloat_Check(datum):
        return PyFloat_AS_DOUBLE(datum)
    if _av_is_int(datum):
        return <double>datum
    if not PyBool_Check(datum) and hasattr(datum, "__float__") and not PyUnicode_Check(datum):
        return float(datum)   # numpy floats, Decimal
    raise AvroValueError(f"expected a number, got {_av_show(datum)}")


cdef int _av_put_bytes_of(AvroOut *o, object datum, bint as_string) except -1:
    cdef Py_ssize_t n
    cdef const char *p
    if as_string:
        if not PyUnicode_Check(datum):
            raise AvroValueError(f"expected string, got {_av_show(datum)}")
        p = PyUnicode_AsUTF8AndSize(datum, &n)
    elif PyBytes_Check(datum):
        p = PyBytes_AS_STRING(datum)
        n = PyBytes_GET_SIZE(datum)
    elif isinstance(datum, (bytearray, memoryview)):
        datum = bytes(datum)
        p = PyBytes_AS_STRING(datum)
        n = PyBytes_GET_SIZE(datum)
    else:
        raise AvroValueError(f"expected bytes, got {_av_show(datum)}")
    _av_put_long(o, n)
    _av_put_raw(o, p, n)
    return 0


cdef bint _av_accepts(AvroNode b, object datum) except -1:
    """Whether union branch b takes datum: fastavro's validation, shallow for records and maps
    (a union holds at most one of those here, see _av_compile)."""
    cdef int k = b.kind
    if k == AV_NULL:
        return datum is None
    if k == AV_BOOLEAN:
        return PyBool_Check(datum)
    if k == AV_INT:
        return _av_is_int(datum) and _AVRO_INT_MIN <= datum <= _AVRO_INT_MAX
    if k == AV_LONG:
        return _av_is_int(datum) and _AVRO_LONG_MIN <= datum <= _AVRO_LONG_MAX
    if k == AV_FLOAT or k == AV_DOUBLE:
        return (PyFloat_Check(datum) or PyLong_Check(datum)) and not PyBool_Check(datum)
    if k == AV_STRING:
        return PyUnicode_Check(datum)
    if k == AV_BYTES:
        return isinstance(datum, (bytes, bytearray))
    if k == AV_FIXED:
        return isinstance(datum, (bytes, bytearray)) and len(datum) == b.size
    if k == AV_ENUM:
        return PyUnicode_Check(datum) and datum in b.symbols
    if k == AV_ARRAY:
        return PyList_Check(datum) or PyTuple_Check(datum)
    if k == AV_RECORD or k == AV_MAP:
        return PyDict_Check(datum)
    return False


cdef int _av_put(AvroOut *o, AvroNode node, object datum) except -1:
    cdef int k = node.kind
    cdef Py_ssize_t i, n, pos
    cdef PyObject *found
    cdef PyObject *pkey
    cdef PyObject *pvalue
    cdef AvroNode child
    cdef float f32
    cdef uint32_t bits32
    cdef double f64
    if k == AV_STRING:
        return _av_put_bytes_of(o, datum, True)
    if k == AV_LONG or k == AV_INT:
        return _av_put_long(o, _av_as_long(datum, k == AV_INT))
    if k == AV_RECORD:
        if not PyDict_Check(datum):
            raise AvroValueError(f"expected a dict for record {node.name}, got {_av_show(datum)}")
        n = len(node.field_names)
        for i in range(n):
            name = <str>node.field_names[i]
            found = PyDict_GetItem(datum, name)
            if found != NULL:
                value = <object>found
            else:   # fastavro: the field's default, else None
                value = node.defaults[i]
                if value is _av_NO_DEFAULT:
                    value = None
            try:
                _av_put(o, <AvroNode>node.children[i], value)
            except AvroValueError as e:
                e.path.insert(0, name)
                if found == NULL and not e.path[1:]:
                    e.reason = f"missing, and it has no default ({e.reason})"
                raise
        return 0
    if k == AV_UNION:
        n = len(node.children)
        for i in range(n):
            child = <AvroNode>node.children[i]
            if _av_accepts(child, datum):
                _av_put_long(o, i)
                return _av_put(o, child, datum)
        raise AvroValueError(f"{_av_show(datum)} fits no branch of the union "
                             f"[{', '.join(_av_kind_name(<AvroNode>c) for c in node.children)}]")
    if k == AV_NULL:
        if datum is not None:
            raise AvroValueError(f"expected null, got {_av_show(datum)}")
        return 0
    if k == AV_BOOLEAN:
        if not PyBool_Check(datum):
            raise AvroValueError(f"expected boolean, got {_av_show(datum)}")
        _av_ensure(o, 1)
        o.data[o.length] = 1 if datum is True else 0
        o.length += 1
        return 0
    if k == AV_DOUBLE:
        f64 = _av_as_double(datum)
        return _av_put_le(o, double_bits(f64), 8)
    if k == AV_FLOAT:
        f32 = <float>_av_as_double(datum)
        memcpy(&bits32, &f32, 4)
        return _av_put_le(o, bits32, 4)
    if k == AV_ENUM:
        found = PyDict_GetItem(node.symbols, datum) if PyUnicode_Check(datum) else NULL
        if found == NULL:
            raise AvroValueError(f"{_av_show(datum)} is not a symbol of enum {node.name} "
                                 f"({', '.join(node.symbols)})")
        return _av_put_long(o, <object>found)
    if k == AV_BYTES:
        return _av_put_bytes_of(o, datum, False)
    if k == AV_FIXED:
        if not isinstance(datum, (bytes, bytearray)) or len(datum) != node.size:
            raise AvroValueError(f"expected {node.size} bytes for fixed {node.name}, got "
                                 f"{_av_show(datum)}")
        datum = bytes(datum)
        return _av_put_raw(o, PyBytes_AS_STRING(datum), node.size)
    if k == AV_ARRAY:
        if not (PyList_Check(datum) or PyTuple_Check(datum)):
            raise AvroValueError(f"expected a list, got {_av_show(datum)}")
        n = len(datum)
        if n:
            _av_put_long(o, n)
            child = <AvroNode>node.children[0]
            for i in range(n):
                try:
                    _av_put(o, child, datum[i])
                except AvroValueError as e:
                    e.path.insert(0, f"[{i}]")
                    raise
        return _av_put_long(o, 0)
    if k == AV_MAP:
        if not PyDict_Check(datum):
            raise AvroValueError(f"expected a dict for a map, got {_av_show(datum)}")
        n = PyDict_Size(datum)
        if n:
            _av_put_long(o, n)
            child = <AvroNode>node.children[0]
            pos = 0
            while PyDict_Next(datum, &pos, &pkey, &pvalue):
                key = <object>pkey
                if not PyUnicode_Check(key):
                    raise AvroValueError(f"map keys must be strings, got {_av_show(key)}")
                _av_put_bytes_of(o, key, True)
                try:
                    _av_put(o, child, <object>pvalue)
                except AvroValueError as e:
                    e.path.insert(0, f"[{key!r}]")
                    raise
        return _av_put_long(o, 0)
    raise AssertionError(f"Avro node kind {k}")


cdef str _av_kind_name(AvroNode n):
    names = ("null", "boolean", "int", "long", "float", "double", "bytes", "string", "record",
             "enum", "array", "map", "union", "fixed")
    return n.name or names[n.kind]


cdef class AvroWriter:
    """Encodes records with one compiled schema: ``write(prefix, datum)`` returns ``prefix``
    followed by the datum's Avro binary encoding; AvroValueError when it does not fit."""

    def __init__(self, AvroNode root):
        self.root = root

    cpdef bytes write(self, bytes prefix, object datum):
        cdef AvroOut o
        o.data = o.inline
        o.length = 0
        o.capacity = AVRO_INLINE_BYTES
        o.heap = NULL
        try:
            _av_put_raw(&o, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix))
            _av_put(&o, self.root, datum)
            return PyBytes_FromStringAndSize(o.data, o.length)
        finally:
            if o.heap != NULL:
                free(o.heap)
