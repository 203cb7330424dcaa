"""Arrow rows as JSON objects, column at a time: the value of a record built from several
columns without a Python loop over the rows.

``json_rows(table)`` returns a pyarrow string array holding one JSON object per row
(``{"column": value, ...}``), made by pyarrow's vectorised compute kernels: each column is
rendered to JSON text as a whole (numbers and booleans cast, strings escaped, nulls as
``null``), then the columns are joined row-wise. Send it with ``Producer.send_arrow()``::

    values = kengine.arrow_json.json_rows(table)
    producer.send_arrow("events", table.append_column("json", values), value="json")

Types: integers, floats (NaN and infinities, which JSON cannot write, become ``null``),
booleans, decimals, strings and dictionaries of them, dates and timestamps (strings, as pyarrow
writes them: ``2023-11-14 22:13:20.000000``). Binary columns are refused (JSON has no bytes:
cast them to string first). Lists, structs and maps are rendered by Python's ``json`` per row,
for that column only: the one slow path.
Requires pyarrow (``pip install 'kengine-kafka[arrow]'``).
"""
from __future__ import annotations

import json
from typing import Any

__all__ = ["json_rows"]

# JSON's escapes of the characters a string must not hold raw (RFC 8259 section 7)
_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
            ("\b", "\\b"), ("\f", "\\f")]
_OTHER_CONTROL = "[\x00-\x07\x0b\x0e-\x1f]"


def json_rows(data: Any) -> Any:
    """One JSON object per row of ``data`` (a pyarrow Table or RecordBatch, or anything that
    exports the Arrow C stream interface), as a pyarrow string array (chunked like a table's
    columns when ``data`` is a table)."""
    import pyarrow as pa

    if not isinstance(data, (pa.Table, pa.RecordBatch)):
        data = pa.table(data)
    if data.num_columns == 0:
        raise ValueError("json_rows() needs at least one column")
    if isinstance(data, pa.Table):   # batch by batch: no copy of the table's chunks
        return pa.chunked_array([_batch_rows(b) for b in data.to_batches()],
                                pa.large_string())
    return _batch_rows(data)


def _batch_rows(data: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    pieces: list[Any] = []
    for i, name in enumerate(data.column_names):
        key = json.dumps(name, ensure_ascii=False) + ":"
        pieces.append(("{" if i == 0 else ",") + key)
        pieces.append(_render(data.column(i), name))
    pieces.append("}")
    arrays = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in pieces]
    # separator "": concatenation; no piece is null (nulls were rendered as "null")
    return pc.binary_join_element_wise(*arrays, pa.scalar("", pa.large_string()))


def _render(column: Any, name: str) -> Any:
    """The column as JSON text, one string per row, never null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if pa.types.is_dictionary(t):
        column = pc.cast(column, t.value_type)   # decoded: dictionaries hold the strings once
        t = column.type
    if pa.types.is_null(t):
        text = pc.cast(column, pa.string())
    elif pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        text = pc.cast(column, pa.string())
    elif pa.types.is_floating(t):
        finite = pc.is_finite(column)
        text = pc.if_else(finite, pc.cast(column, pa.string()), pa.scalar(None, pa.string()))
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        text = _quoted(pc.cast(column, pa.large_string()))
    elif pa.types.is_temporal(t):
        text = _quoted(pc.cast(column, pa.large_string()))
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or \
            pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        raise TypeError(f"column {name!r} is {t}: JSON has no bytes; cast it to string (UTF-8 "
                        f"text) or leave it out of the JSON rows")
    else:   # nested: Python's json per row, this column only
        text = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                         for v in column.to_pylist()], pa.large_string())
    return pc.fill_null(pc.cast(text, pa.large_string()), "null")


def _quoted(strings: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    for raw, escaped in _ESCAPES:
        strings = pc.replace_substring(strings, raw, escaped)
    # the rarest control characters: \u00XX each, by the regex kernel one code at a time
    if pc.any(pc.match_substring_regex(strings, _OTHER_CONTROL)).as_py():
        for code in [*range(0, 8), 11, *range(14, 32)]:
            strings = pc.replace_substring(strings, chr(code), f"\\u{code:04x}")
    quote = pa.scalar('"', pa.large_string())
    return pc.binary_join_element_wise(quote, strings, quote, pa.scalar("", pa.large_string()))
