# The Kafka protocol codec (declared in protocol.pxd); part of kengine_ext._core.
#
# A message's schema (kengine_ext/schemas.py, generated from Kafka's JSON) is compiled per
# version, on first use, into a _Program: for each struct a flat C array of _FieldOp that
# knows its kind, nullability, compactness and tag in *that* version, so the interpreter below
# never looks at version ranges. Programs are cached forever (a few dozen per process) and
# are immutable once built, so threads share them freely; two threads compiling the same
# program at once just build it twice.
#
# Errors: encoding raises TypeError / ValueError / OverflowError for bad values and
# UnsupportedVersionError for a value the chosen version cannot carry; decoding raises only
# ProtocolError. Every message names the message, version and field path, e.g.
# "ProduceRequest v9, field topic_data[0].partition_data[2].index: ...".

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Check, PyDict_Size
from cpython.list cimport PyList_CheckExact
from cpython.long cimport PyLong_Check
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_CheckExact
from libc.stdint cimport int32_t, uint32_t
from libc.string cimport memset

from uuid import UUID as _UUID

from kengine_ext.errors import IllegalStateError, ProtocolError, UnsupportedVersionError
from kengine_ext.schemas import (MESSAGES as _GENERATED_MESSAGES,
                                 REQUESTS as _GENERATED_REQUESTS,
                                 RESPONSES as _GENERATED_RESPONSES, TYPE_DEFAULT as _TYPE_DEFAULT)

cdef extern from "Python.h":
    # borrowed reference or NULL, no refcounting on the hot path
    PyObject* _kengine_dict_get "PyDict_GetItem"(PyObject* d, PyObject* key)

__all__ += [
    "encode_request", "write_request", "decode_response", "decode_request", "encode_response",
    "encode_message", "decode_message", "supported_versions", "pick_version",
    "peek_correlation_id",
]

# The generated table (schemas.py, from spec/kafka-protocol/messages): every API kengine speaks,
# the admin client's included.
cdef dict _MESSAGES = _GENERATED_MESSAGES
cdef dict _REQUESTS = _GENERATED_REQUESTS
cdef dict _RESPONSES = _GENERATED_RESPONSES

cdef int _API_VERSIONS_KEY = 18
# Functions that return bytes reference payloads this large while encoding, so to_bytes()
# copies them once instead of twice; below it a memcpy is cheaper than keeping a reference.
cdef Py_ssize_t _ONE_COPY_MIN_BYTES = 4096
cdef bytes _ZERO_UUID = bytes(16)

cdef dict _SCALAR_KINDS = {
    "bool": OP_BOOL, "int8": OP_INT8, "int16": OP_INT16, "uint16": OP_UINT16,
    "int32": OP_INT32, "uint32": OP_UINT32, "int64": OP_INT64, "float64": OP_FLOAT64,
    "uuid": OP_UUID, "string": OP_STRING, "bytes": OP_BYTES, "records": OP_RECORDS,
}

# --- compiling ---

cdef tuple _version_range(str text):
    """Kafka's "3+", "0-12", "5" or "none" as an inclusive (lo, hi)."""
    if text == "none":
        return (1, 0)
    if text.endswith("+"):
        return (int(text[:len(text) - 1]), 0x7FFF)
    lo, sep, hi = text.partition("-")
    return (int(lo), int(hi) if sep else int(lo))


cdef bint _in_versions(str text, int version) except -1:
    lo, hi = _version_range(text)
    return lo <= version <= hi


cdef Py_ssize_t _scalar_min_bytes(int kind, bint compact):
    if kind == OP_BOOL or kind == OP_INT8:
        return 1
    if kind == OP_INT16 or kind == OP_UINT16:
        return 2
    if kind == OP_INT32 or kind == OP_UINT32:
        return 4
    if kind == OP_INT64 or kind == OP_FLOAT64:
        return 8
    if kind == OP_UUID:
        return 16
    if compact:
        return 1  # uvarint length
    return 2 if kind == OP_STRING else 4


cdef object _type_default(int kind):
    if kind == OP_BOOL:
        return False
    if kind == OP_FLOAT64:
        return 0.0
    if kind == OP_STRING:
        return ""
    if kind == OP_BYTES:
        return b""
    if kind == OP_RECORDS:
        return None
    if kind == OP_UUID:
        return _ZERO_UUID
    return 0


cdef class _Program:
    """One struct of one message version, compiled (see protocol.pxd)."""

    def __dealloc__(self):
        PyMem_Free(self.ops)
        PyMem_Free(self.absent)
        PyMem_Free(self.tag_order)


cdef int _fill_op(_FieldOp* op, object f, int version, bint flexible, list refs) except -1:
    cdef str ftype = f.type
    cdef bint is_array = ftype.startswith("[]")
    cdef str elem = ftype[2:] if is_array else ftype
    cdef int ekind = _SCALAR_KINDS.get(elem, OP_STRUCT)
    cdef _Program child = None
    op.kind = OP_ARRAY if is_array else ekind
    op.elem_kind = ekind if is_array else 0
    op.nullable = _in_versions(f.nullable_versions, version)
    op.compact = flexible if f.flexible_versions is None else _in_versions(f.flexible_versions,
                                                                          version)
    op.tagged = f.tag is not None and _in_versions(f.tagged_versions, version)
    if op.tagged and not flexible:
        raise ValueError(f"{f.name}: tagged in version {version}, which is not flexible")
    op.tag = f.tag if f.tag is not None else 0
    op.ignorable = f.ignorable
    if ekind == OP_STRUCT:
        child = _compile(f.fields, version, flexible, elem)
        refs.append(child)
        op.child = <PyObject*>child
    else:
        op.child = NULL

    default = f.default
    if default is _TYPE_DEFAULT:
        if is_array:
            default = ()
        elif ekind == OP_STRUCT:
            default = {}
        else:
            default = _type_default(ekind)
    refs.append(default)
    op.default = <PyObject*>default
    refs.append(f.name)
    op.name = <PyObject*>f.name
    refs.append(f.versions)
    op.versions = <PyObject*>f.versions

    if is_array:
        op.min_bytes = 1 if op.compact else 4
        op.elem_min_bytes = (child.min_bytes if child is not None
                             else _scalar_min_bytes(ekind, op.compact))
    elif child is not None:
        op.min_bytes = child.min_bytes
        op.elem_min_bytes = 0
    else:
        op.min_bytes = _scalar_min_bytes(ekind, op.compact)
        op.elem_min_bytes = 0
    if op.tagged:
        op.min_bytes = 0
    return 0


cdef _Program _compile(object fields, int version, bint flexible, str name):
    cdef _Program prog = _Program.__new__(_Program)
    cdef Py_ssize_t i
    present = [f for f in fields if _in_versions(f.versions, version)]
    absent = [f for f in fields if not _in_versions(f.versions, version)]
    prog.name = name
    prog.flexible = flexible
    prog._refs = []
    prog.n_ops = len(present)
    prog.n_absent = len(absent)
    # +1: PyMem_Malloc(0) may return NULL, which would read as a failure
    prog.ops = <_FieldOp*>PyMem_Malloc((prog.n_ops + 1) * sizeof(_FieldOp))
    prog.absent = <_FieldOp*>PyMem_Malloc((prog.n_absent + 1) * sizeof(_FieldOp))
    prog.tag_order = <Py_ssize_t*>PyMem_Malloc((prog.n_ops + 1) * sizeof(Py_ssize_t))
    if prog.ops == NULL or prog.absent == NULL or prog.tag_order == NULL:
        raise MemoryError()
    memset(prog.ops, 0, (prog.n_ops + 1) * sizeof(_FieldOp))
    memset(prog.absent, 0, (prog.n_absent + 1) * sizeof(_FieldOp))
    for i, f in enumerate(present):
        _fill_op(&prog.ops[i], f, version, flexible, prog._refs)
    for i, f in enumerate(absent):
        _fill_op(&prog.absent[i], f, version, flexible, prog._refs)
        prog.absent[i].tagged = False

    tagged = sorted((prog.ops[i].tag, i) for i in range(prog.n_ops) if prog.ops[i].tagged)
    prog.n_tagged = len(tagged)
    prog.by_tag = {} if tagged else None
    for i, (tag, index) in enumerate(tagged):
        if tag in prog.by_tag:
            raise ValueError(f"{name} v{version}: two fields share tag {tag}")
        prog.by_tag[tag] = index
        prog.tag_order[i] = index
    prog.min_bytes = 1 if flexible else 0  # the tagged-field count
    for i in range(prog.n_ops):
        prog.min_bytes += prog.ops[i].min_bytes
    return prog


cdef dict _PROGRAMS = {}            # (message name, version) -> _Program
cdef dict _REQUEST_PROGRAMS = {}    # api_key << 16 | version -> _Program
cdef dict _RESPONSE_PROGRAMS = {}   # api_key << 16 | version -> _Program


cdef _Program _compile_message(object msg, int version):
    if not _in_versions(msg.valid_versions, version):
        raise UnsupportedVersionError(
            f"{msg.name} v{version} is not supported: kengine knows versions "
            f"{msg.valid_versions}", api_key=msg.api_key, api_version=version)
    return _compile(msg.fields, version, _in_versions(msg.flexible_versions, version),
                    f"{msg.name} v{version}")


cdef _Program _named_program(str name, int version):
    key = (name, version)
    prog = _PROGRAMS.get(key)
    if prog is None:
        msg = _MESSAGES.get(name)
        if msg is None:
            raise ValueError(f"no message named {name!r}; known: {', '.join(sorted(_MESSAGES))}")
        prog = _compile_message(msg, version)
        _PROGRAMS[key] = prog
    return <_Program>prog


cdef _Program _api_program(dict cache, dict table, int api_key, int version):
    if version < 0 or version > 0x7FFF or api_key < 0 or api_key > 0x7FFF:
        raise UnsupportedVersionError(f"api key {api_key} version {version} is out of range",
                                      api_key=api_key, api_version=version)
    key = (api_key << 16) | version
    prog = cache.get(key)
    if prog is None:
        msg = table.get(api_key)
        if msg is None:
            raise UnsupportedVersionError(f"kengine has no schema for api key {api_key}",
                                          api_key=api_key, api_version=version)
        prog = _named_program(msg.name, version)
        cache[key] = prog
    return <_Program>prog


cdef _Program _message_program(object message, int version):
    if isinstance(message, str):
        return _named_program(message, version)
    # a Message-shaped object outside the table (custom or test schemas): not cached
    return _compile_message(message, version)


# --- error context ---

cdef int _note_path(object exc, object component) except -1:
    """Records a field name or [index] on an exception travelling out of the codec; the top
    level turns the components into one path."""
    path = getattr(exc, "_kengine_path", None)
    if path is None:
        exc._kengine_path = [component]
    else:
        path.append(component)
    return 0


cdef object _contextualize(object exc, str where):
    """A new exception of exc's kind whose message starts with the message, version and the
    field path recorded by _note_path."""
    path = getattr(exc, "_kengine_path", None)
    cdef str text = ""
    # a broker error's str() carries its code; the new one adds it again
    detail = exc.message if isinstance(exc, UnsupportedVersionError) else str(exc)
    if path:
        for component in reversed(path):
            text += component if component.startswith("[") else ("." if text else "") + component
        message = f"{where}, field {text}: {detail}"
    else:
        message = f"{where}: {detail}"
    if isinstance(exc, UnsupportedVersionError):
        return UnsupportedVersionError(message, **exc.context)
    for cls in (ProtocolError, OverflowError, TypeError, ValueError):
        if isinstance(exc, cls):
            return cls(message)
    return exc


# --- encoding ---

cdef bint _is_default(_FieldOp* op, object v) except -1:
    cdef object d = <object>op.default
    cdef int kind = op.kind
    if v is d:
        return True
    if kind == OP_STRUCT:
        return _is_default_struct(<_Program>op.child, v)
    if d is None or v is None:
        return v is d
    if kind == OP_ARRAY:
        # anything but a list or tuple is "not default", so the encoder reports its type
        return isinstance(v, (list, tuple)) and len(v) == 0 and len(d) == 0
    if kind == OP_BYTES or kind == OP_RECORDS:
        try:
            return len(v) == 0 and len(d) == 0
        except TypeError:
            return False
    if kind == OP_UUID:
        if isinstance(v, _UUID):
            return v.bytes == d
        return v == d
    return v == d


cdef bint _is_default_struct(_Program prog, object v) except -1:
    cdef _FieldOp* op
    if not PyDict_Check(v):
        return False
    for key, item in (<dict>v).items():
        op = _find_op(prog, key)
        if op == NULL or not _is_default(op, item):
            return False
    return True


cdef _FieldOp* _find_op(_Program prog, object name):
    cdef Py_ssize_t i
    for i in range(prog.n_ops):
        if <object>prog.ops[i].name == name:
            return &prog.ops[i]
    for i in range(prog.n_absent):
        if <object>prog.absent[i].name == name:
            return &prog.absent[i]
    return NULL


cdef int _reject_unknown_keys(_Program prog, dict value) except -1:
    cdef Py_ssize_t i
    known = {<object>prog.ops[i].name for i in range(prog.n_ops)}
    known.update(<object>prog.absent[i].name for i in range(prog.n_absent))
    unknown = [k for k in value if k not in known]
    raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; {prog.name} has "
                     f"{', '.join(sorted(known)) or 'no fields'}")


cdef int _encode_scalar(int kind, bint compact, bint nullable, object v,
                        WriteBuffer wb) except -1:
    if kind == OP_INT32:
        return wb.write_int32(_as_int(v))
    if kind == OP_INT64:
        return wb.write_int64(_as_int(v))
    if kind == OP_INT16:
        return wb.write_int16(_as_int(v))
    if kind == OP_STRING:
        return wb._write_str(v, compact, nullable)
    if kind == OP_INT8:
        return wb.write_int8(_as_int(v))
    if kind == OP_BOOL:
        if v is True or v is False or PyLong_Check(v):
            return wb.write_bool(v)
        raise TypeError(f"expected bool, got {type(v).__name__}")
    if kind == OP_BYTES:
        return wb._write_bytes_obj(v, compact, nullable)
    if kind == OP_UUID:
        return wb.write_uuid(v)
    if kind == OP_UINT16:
        return wb.write_uint16(_as_int(v))
    if kind == OP_UINT32:
        return wb.write_uint32(_as_int(v))
    if kind == OP_FLOAT64:
        return wb.write_float64(v)
    raise AssertionError(f"kind {kind} is not a scalar")


cdef Py_ssize_t _payload_len(object piece) except -1:
    cdef Py_buffer view
    cdef Py_ssize_t n
    if PyBytes_CheckExact(piece):
        return PyBytes_GET_SIZE(piece)
    PyObject_GetBuffer(piece, &view, PyBUF_SIMPLE)
    n = view.len
    PyBuffer_Release(&view)
    return n


cdef Py_ssize_t _write_piece(WriteBuffer wb, object piece) except -1:
    cdef Py_buffer view
    cdef Py_ssize_t n
    if PyBytes_CheckExact(piece):
        wb.write_payload(piece, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece))
        return PyBytes_GET_SIZE(piece)
    PyObject_GetBuffer(piece, &view, PyBUF_SIMPLE)
    try:
        wb.write_payload(piece, <const char*>view.buf, view.len)
        n = view.len
    finally:
        PyBuffer_Release(&view)
    return n


cdef int _encode_records(_FieldOp* op, object v, WriteBuffer wb) except -1:
    """None, one bytes-like object, or a list/tuple of them written back to back (record
    batches from several sources, with no intermediate join)."""
    cdef Py_ssize_t total = 0, written = 0
    if not (PyList_CheckExact(v) or PyTuple_CheckExact(v)):
        if v is None and not op.nullable:
            raise TypeError("expected records, got None (not nullable in this version)")
        return wb._write_bytes_obj(v, op.compact, op.nullable)
    for piece in v:
        total += _payload_len(piece)
    wb.write_length(total, op.compact)
    for piece in v:
        written += _write_piece(wb, piece)
    if written != total:
        raise ValueError(f"records changed size while being encoded ({total} then {written} "
                         f"bytes); do not modify them until the request is sent")
    return 0


cdef int _encode_array(_FieldOp* op, object v, WriteBuffer wb) except -1:
    cdef Py_ssize_t i = -1, n
    cdef int ekind = op.elem_kind
    cdef _Program child
    if v is None:
        if not op.nullable:
            raise TypeError("expected a list, got None (not nullable in this version)")
        return wb.write_length(-1, op.compact)
    if not (PyList_CheckExact(v) or PyTuple_CheckExact(v) or isinstance(v, (list, tuple))):
        raise TypeError(f"expected a list, got {type(v).__name__}")
    n = len(v)
    wb.write_length(n, op.compact)
    try:
        if ekind == OP_STRUCT:
            child = <_Program>op.child
            for i in range(n):
                _encode_struct(child, v[i], wb)
        else:
            for i in range(n):
                _encode_scalar(ekind, op.compact, False, v[i], wb)
    except (TypeError, ValueError, OverflowError, UnsupportedVersionError) as e:
        if i >= 0:
            _note_path(e, f"[{i}]")
        raise
    return 0


cdef inline int _encode_value(_FieldOp* op, object v, WriteBuffer wb) except -1:
    cdef int kind = op.kind
    if kind == OP_ARRAY:
        return _encode_array(op, v, wb)
    if kind == OP_STRUCT:
        return _encode_struct(<_Program>op.child, v, wb)
    if kind == OP_RECORDS:
        return _encode_records(op, v, wb)
    return _encode_scalar(kind, op.compact, op.nullable, v, wb)


cdef Py_ssize_t _encode_tagged(_Program prog, object value, WriteBuffer wb) except -1:
    """Writes the struct's tagged-field section (non-default values only, ascending tags);
    returns how many tagged-field keys the dict held."""
    cdef Py_ssize_t i, found = 0
    cdef _FieldOp* op = NULL
    cdef PyObject* v
    cdef WriteBuffer scratch
    cdef list to_write = []
    try:
        for i in range(prog.n_tagged):
            op = &prog.ops[prog.tag_order[i]]
            v = _kengine_dict_get(<PyObject*>value, op.name)
            if v != NULL:
                found += 1
                if not _is_default(op, <object>v):
                    to_write.append((i, <object>v))
        wb.write_uvarint(len(to_write))
        for i, item in to_write:
            op = &prog.ops[prog.tag_order[i]]
            # the size precedes the value: encode it aside first (tagged fields are rare, small)
            scratch = WriteBuffer()
            _encode_value(op, item, scratch)
            wb.write_uvarint(op.tag)
            wb.write_uvarint(<uint32_t>scratch._length)
            wb.write_bytes_raw(scratch._buf, scratch._length)
    except (TypeError, ValueError, OverflowError, UnsupportedVersionError) as e:
        if op != NULL:
            _note_path(e, <object>op.name)
        raise
    return found


cdef int _encode_struct(_Program prog, object value, WriteBuffer wb) except -1:
    cdef Py_ssize_t i, found = 0
    cdef _FieldOp* op = NULL
    cdef PyObject* v
    if not PyDict_Check(value):
        raise TypeError(f"expected a dict of {prog.name} fields, got {type(value).__name__}")
    try:
        for i in range(prog.n_ops):
            op = &prog.ops[i]
            if op.tagged:
                continue
            v = _kengine_dict_get(<PyObject*>value, op.name)
            if v == NULL:
                v = op.default
            else:
                found += 1
            _encode_value(op, <object>v, wb)
        op = NULL
        if prog.flexible:
            found += _encode_tagged(prog, value, wb)
        for i in range(prog.n_absent):
            op = &prog.absent[i]
            v = _kengine_dict_get(<PyObject*>value, op.name)
            if v != NULL:
                found += 1
                if not op.ignorable and not _is_default(op, <object>v):
                    raise UnsupportedVersionError(
                        f"the field exists only in versions {<object>op.versions}; leave it "
                        f"out (or at its default {<object>op.default!r}) or use a version "
                        f"that has it")
        op = NULL
        if found != PyDict_Size(value):
            _reject_unknown_keys(prog, <dict>value)
    except (TypeError, ValueError, OverflowError, UnsupportedVersionError) as e:
        if op != NULL:
            _note_path(e, <object>op.name)
        raise
    return 0


cdef int _encode_top(_Program prog, object body, WriteBuffer wb) except -1:
    try:
        _encode_struct(prog, body, wb)
    except (TypeError, ValueError, OverflowError, UnsupportedVersionError) as e:
        raise _contextualize(e, prog.name) from None
    return 0


# --- decoding ---

cdef object _fresh_default(_FieldOp* op):
    """The value a missing tagged field decodes to (new containers, never shared)."""
    cdef object d = <object>op.default
    if op.kind == OP_ARRAY:
        return None if d is None else []
    if op.kind == OP_STRUCT:
        return _default_struct(<_Program>op.child)
    return d


cdef dict _default_struct(_Program prog):
    cdef Py_ssize_t i
    cdef dict d = {}
    for i in range(prog.n_ops):
        d[<object>prog.ops[i].name] = _fresh_default(&prog.ops[i])
    return d


cdef object _decode_scalar(int kind, bint compact, bint nullable, ReadBuffer rb):
    if kind == OP_INT32:
        return rb.read_int32()
    if kind == OP_INT64:
        return rb.read_int64()
    if kind == OP_INT16:
        return rb.read_int16()
    if kind == OP_STRING:
        return rb._read_str(compact, nullable)
    if kind == OP_INT8:
        return rb.read_int8()
    if kind == OP_BOOL:
        return True if rb.read_bool() else False
    if kind == OP_BYTES:
        return rb._read_bytes(compact, nullable)
    if kind == OP_UUID:
        return rb.read_uuid()
    if kind == OP_UINT16:
        return rb.read_uint16()
    if kind == OP_UINT32:
        return rb.read_uint32()
    if kind == OP_FLOAT64:
        return rb.read_float64()
    raise AssertionError(f"kind {kind} is not a scalar")


cdef object _decode_array(_FieldOp* op, ReadBuffer rb):
    cdef Py_ssize_t at = rb._pos
    cdef Py_ssize_t n = rb.read_length(op.compact, "array length")
    cdef Py_ssize_t i = -1, remaining
    cdef int ekind = op.elem_kind
    cdef _Program child
    cdef list result
    if n == -1:
        if not op.nullable:
            rb._fail(at, "null array where the field is not nullable")
        return None
    # every element takes at least elem_min_bytes: a count the input cannot hold is rejected
    # before allocating or looping
    remaining = rb._end - rb._pos
    if n > (remaining // op.elem_min_bytes if op.elem_min_bytes > 0 else remaining):
        rb._fail(at, f"array of {n} elements cannot fit in the {remaining} bytes left")
    result = []
    try:
        if ekind == OP_STRUCT:
            child = <_Program>op.child
            for i in range(n):
                result.append(_decode_struct(child, rb))
        elif ekind == OP_INT32:
            for i in range(n):
                result.append(rb.read_int32())
        else:
            for i in range(n):
                result.append(_decode_scalar(ekind, op.compact, False, rb))
    except ProtocolError as e:
        if i >= 0:
            _note_path(e, f"[{i}]")
        raise
    return result


cdef object _decode_value(_FieldOp* op, ReadBuffer rb):
    cdef int kind = op.kind
    cdef Py_ssize_t at, n
    if kind == OP_ARRAY:
        return _decode_array(op, rb)
    if kind == OP_STRUCT:
        return _decode_struct(<_Program>op.child, rb)
    if kind == OP_RECORDS:
        at = rb._pos
        n = rb.read_length(op.compact, "records length")
        if n == -1:
            if not op.nullable:
                rb._fail(at, "null records where the field is not nullable")
            return None
        return rb.read_view(n)
    return _decode_scalar(kind, op.compact, op.nullable, rb)


cdef int _decode_tagged(_Program prog, ReadBuffer rb, dict d) except -1:
    """Reads a tagged-field section into d; unknown tags are skipped (forward compatibility)."""
    cdef uint32_t count = rb.read_uvarint()
    cdef uint32_t k, tag, size
    cdef Py_ssize_t at, start, saved_end
    cdef _FieldOp* op
    for k in range(count):
        at = rb._pos
        tag = rb.read_uvarint()
        size = rb.read_uvarint()
        index = None if prog.by_tag is None else prog.by_tag.get(tag)
        if index is None:
            rb.skip(size, "unknown tagged field")
            continue
        op = &prog.ops[<Py_ssize_t>index]
        # the declared size bounds the value: it may neither read past it nor stop short
        start = rb._pos
        saved_end = rb._end
        try:
            if size > rb._end - rb._pos:
                rb._short(size, "tagged field")
            rb._end = start + size
            value = _decode_value(op, rb)
            if rb._pos != rb._end:
                rb._fail(at, f"tagged field {tag} declares {size} bytes but its value used "
                             f"{rb._pos - start}")
        except ProtocolError as e:
            _note_path(e, <object>op.name)
            raise
        finally:
            rb._end = saved_end
        d[<object>op.name] = value
    return 0


cdef dict _decode_struct(_Program prog, ReadBuffer rb):
    cdef Py_ssize_t i
    cdef _FieldOp* op = NULL
    cdef dict d = {}
    try:
        for i in range(prog.n_ops):
            op = &prog.ops[i]
            if op.tagged:
                d[<object>op.name] = _fresh_default(op)
            else:
                d[<object>op.name] = _decode_value(op, rb)
        op = NULL
        if prog.flexible:
            _decode_tagged(prog, rb, d)
    except ProtocolError as e:
        if op != NULL:
            _note_path(e, <object>op.name)
        raise
    return d


cdef dict _decode_top(_Program prog, ReadBuffer rb):
    """Decodes a whole message: the input must end exactly where the message does."""
    try:
        body = _decode_struct(prog, rb)
        if rb._pos != rb._end:
            rb._fail(rb._pos, f"{rb._end - rb._pos} bytes left after the end of the message "
                              f"(a different version or message?)")
    except ProtocolError as e:
        raise _contextualize(e, prog.name) from None
    return body


# --- public API ---

cdef bint _response_header_flexible(int api_key, _Program body):
    # KIP-511: the ApiVersions response header stays v0 at every version, so a client can
    # read the error code of a response to a version the broker does not know
    return body.flexible and api_key != _API_VERSIONS_KEY


def write_request(WriteBuffer buf not None, int api_key, int api_version, int32_t correlation_id,
                  client_id, body):
    """Appends one size-prefixed request (header v1, or v2 for a flexible version) to ``buf``.
    On error nothing is appended."""
    cdef _Program prog = _api_program(_REQUEST_PROGRAMS, _REQUESTS, api_key, api_version)
    cdef _Program header = _named_program("RequestHeader", 2 if prog.flexible else 1)
    cdef Py_ssize_t length = buf._length, ref_bytes = buf._ref_bytes
    cdef Py_ssize_t n_refs = len(buf._refs) if buf._refs is not None else 0
    if buf._message_start >= 0:
        raise IllegalStateError("write_request(): the buffer has an open message; "
                                "end_message() first")
    try:
        buf.start_message()
        _encode_top(header, {"request_api_key": api_key, "request_api_version": api_version,
                             "correlation_id": correlation_id, "client_id": client_id}, buf)
        _encode_top(prog, body, buf)
        buf.end_message()
    except BaseException:
        buf._length = length
        buf._ref_bytes = ref_bytes
        if buf._refs is not None:
            del buf._refs[n_refs:]
            if not buf._refs:
                buf._refs = None
        buf._message_start = -1
        raise


def encode_request(int api_key, int api_version, int32_t correlation_id, client_id, body):
    """One request frame (int32 size, header, body) as bytes. ``body`` is a dict of the
    request's fields (snake_case; missing keys take the schema default)."""
    cdef WriteBuffer buf = WriteBuffer(_ONE_COPY_MIN_BYTES)
    write_request(buf, api_key, api_version, correlation_id, client_id, body)
    return buf.to_bytes()


def decode_response(int api_key, int api_version, frame):
    """``(correlation_id, body)`` of a response frame (the bytes after the size prefix) to a
    request of ``api_key`` at ``api_version``. Raises ProtocolError on malformed input."""
    cdef _Program prog = _api_program(_RESPONSE_PROGRAMS, _RESPONSES, api_key, api_version)
    cdef bint flexible_header = _response_header_flexible(api_key, prog)
    cdef _Program header = _named_program("ResponseHeader", 1 if flexible_header else 0)
    cdef ReadBuffer rb = ReadBuffer(frame)
    cdef Py_ssize_t body_start
    hdr = _decode_struct_top_header(header, rb)
    body_start = rb._pos
    try:
        body = _decode_top(prog, rb)
    except ProtocolError:
        if api_key != _API_VERSIONS_KEY or api_version == 0:
            raise
        # KIP-511: a broker that does not know our ApiVersions version answers in v0
        # (UNSUPPORTED_VERSION plus its own ranges); read it as such, as Java's client does
        rb._pos = body_start
        try:
            body = _decode_top(_named_program("ApiVersionsResponse", 0), rb)
        except ProtocolError:
            pass
        else:
            return hdr["correlation_id"], body
        raise
    return hdr["correlation_id"], body


cdef dict _decode_struct_top_header(_Program header, ReadBuffer rb):
    try:
        return _decode_struct(header, rb)
    except ProtocolError as e:
        raise _contextualize(e, header.name) from None


def decode_request(frame):
    """``(header, body)`` of a request frame (the bytes after the size prefix), for a broker.
    Raises ProtocolError on malformed input, and UnsupportedVersionError (with ``api_key``,
    ``api_version`` and ``correlation_id`` in its ``context``) for an API or version missing
    from the schema table, so a broker can still answer it."""
    cdef ReadBuffer rb = ReadBuffer(frame)
    cdef int api_key, api_version
    cdef _Program prog
    if rb._end < 8:
        raise ProtocolError(f"truncated request header: {rb._end} bytes, need at least 8")
    api_key = rb.read_int16()
    api_version = rb.read_int16()
    try:
        prog = _api_program(_REQUEST_PROGRAMS, _REQUESTS, api_key, api_version)
    except UnsupportedVersionError as e:
        e.context["correlation_id"] = rb.read_int32()
        raise
    rb._pos = 0
    header = _decode_struct_top_header(_named_program("RequestHeader",
                                                      2 if prog.flexible else 1), rb)
    return header, _decode_top(prog, rb)


def encode_response(int api_key, int api_version, int32_t correlation_id, body):
    """One response frame (int32 size, header v0/v1, body) as bytes, for a broker."""
    cdef _Program prog = _api_program(_RESPONSE_PROGRAMS, _RESPONSES, api_key, api_version)
    cdef bint flexible_header = _response_header_flexible(api_key, prog)
    cdef WriteBuffer buf = WriteBuffer(_ONE_COPY_MIN_BYTES)
    buf.start_message()
    _encode_top(_named_program("ResponseHeader", 1 if flexible_header else 0),
                {"correlation_id": correlation_id}, buf)
    _encode_top(prog, body, buf)
    buf.end_message()
    return buf.to_bytes()


def encode_message(message, int version, value):
    """A bare struct (no size, no header): ``message`` is a name from the schema table
    (``"ProduceRequest"``, ``"RequestHeader"``...) or a ``schemas.Message``."""
    cdef WriteBuffer buf = WriteBuffer(_ONE_COPY_MIN_BYTES)
    _encode_top(_message_program(message, version), value, buf)
    return buf.to_bytes()


def decode_message(message, int version, data):
    """The dict of a bare struct that must fill ``data`` exactly (see ``encode_message``)."""
    return _decode_top(_message_program(message, version), ReadBuffer(data))


def supported_versions(int api_key):
    """``(min, max)`` versions of an API that kengine can encode and decode, leaving out a
    latest version Kafka marks unstable."""
    msg = _REQUESTS.get(api_key)
    if msg is None:
        raise UnsupportedVersionError(f"kengine has no schema for api key {api_key}",
                                      api_key=api_key)
    lo, hi = _version_range(msg.valid_versions)
    if msg.latest_version_unstable:
        hi -= 1
    return lo, hi


def pick_version(int api_key, int broker_min, int broker_max):
    """The highest version both kengine and a broker (its ApiVersions range) support, or
    None when the ranges do not meet."""
    lo, hi = supported_versions(api_key)
    top = min(hi, broker_max)
    return top if top >= max(lo, broker_min) else None


def peek_correlation_id(frame):
    """The correlation id of a response frame (its first field in every header version),
    to find the request it answers before decoding it."""
    cdef ReadBuffer rb = ReadBuffer(frame)
    try:
        return rb.read_int32()
    except ProtocolError as e:
        raise ProtocolError(f"response header: {e}") from None
