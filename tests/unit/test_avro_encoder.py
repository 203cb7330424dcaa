"""kengine_ext's compiled Avro encoder against fastavro (an encoder nobody here wrote): the same
bytes for every value both accept, over generated schemas' values; values that do not fit are
refused with the path of the field; schemas it does not cover are left to fastavro."""
from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kengine_ext import AvroValueError, AvroWriter, compile_avro

ADDRESS = {"type": "record", "name": "Address", "namespace": "shop",
           "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]}
ORDER = {
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "quantity", "type": "int"},
        {"name": "amount", "type": "double"},
        {"name": "score", "type": "float"},
        {"name": "paid", "type": "boolean"},
        {"name": "customer", "type": "string"},
        {"name": "blob", "type": "bytes"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "number", "type": ["null", "int", "long", "double", "string"]},
        {"name": "money", "type": ["double", "long"]},
        {"name": "status", "type": {"type": "enum", "name": "Status",
                                    "symbols": ["NEW", "PAID", "SHIPPED"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": ["null", "long"]}},
        {"name": "address", "type": ADDRESS},
        {"name": "billing", "type": ["null", "shop.Address"], "default": None},
        {"name": "history", "type": {"type": "array", "items": "shop.Address"}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "nothing", "type": "null"},
        {"name": "defaulted", "type": "int", "default": 42},
    ],
}
LIST = {"type": "record", "name": "Node", "fields": [
    {"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}

int32 = st.integers(-(2 ** 31), 2 ** 31 - 1)
int64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
text = st.text(max_size=40)
address = st.fixed_dictionaries({"city": text, "zip": text})
orders = st.fixed_dictionaries({
    "id": int64, "quantity": int32, "amount": st.floats(allow_nan=False),
    "score": st.floats(width=32, allow_nan=False), "paid": st.booleans(), "customer": text,
    "blob": st.binary(max_size=40), "note": st.none() | text,
    "number": st.none() | int64 | st.floats(allow_nan=False) | text,
    "money": int64 | st.floats(allow_nan=False),
    "status": st.sampled_from(["NEW", "PAID", "SHIPPED"]),
    "tags": st.lists(text, max_size=5) | st.lists(text, max_size=5).map(tuple),
    "attrs": st.dictionaries(text, st.none() | int64, max_size=5),
    "address": address, "billing": st.none() | address,
    "history": st.lists(address, max_size=3), "digest": st.binary(min_size=4, max_size=4),
    "nothing": st.none()},
    optional={"defaulted": int32})


def writers(schema: Any) -> tuple[AvroWriter, Any]:
    named: dict[str, Any] = {}
    parsed = parse_schema(schema, named_schemas=named)
    root = compile_avro(parsed, named)
    assert root is not None
    return AvroWriter(root), parsed


def fastavro_bytes(parsed: Any, value: Any) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parsed, value)
    return out.getvalue()


ORDER_WRITER, ORDER_PARSED = writers(ORDER)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders)
def test_same_bytes_as_fastavro(value: dict[str, Any]) -> None:
    assert ORDER_WRITER.write(b"\x00\x00\x00\x00\x07", value) == \
        b"\x00\x00\x00\x00\x07" + fastavro_bytes(ORDER_PARSED, value)


def test_recursive_types_and_large_records() -> None:
    writer, parsed = writers(LIST)
    chain: dict[str, Any] | None = None
    for i in range(200):
        chain = {"value": i, "next": chain}
    assert writer.write(b"", chain) == fastavro_bytes(parsed, chain)
    big = {"type": "record", "name": "Big", "fields": [{"name": "b", "type": "bytes"}]}
    writer, parsed = writers(big)
    value = {"b": bytes(range(256)) * 400}   # past the inline buffer: the heap path
    assert writer.write(b"prefix", value) == b"prefix" + fastavro_bytes(parsed, value)


@pytest.mark.parametrize("change, path, reason", [
    ({"quantity": "three"}, "quantity", "expected int, got str 'three'"),
    ({"quantity": 2 ** 31}, "quantity", "does not fit an Avro int"),
    ({"paid": 1}, "paid", "expected boolean"),
    ({"id": True}, "id", "expected long, got bool"),
    ({"amount": "1.5"}, "amount", "expected a number"),
    ({"status": "LOST"}, "status", "is not a symbol of enum shop.Status"),
    ({"address": {"city": "Lyon", "zip": 69000}}, "address.zip", "expected string"),
    ({"history": [{"city": "a", "zip": "b"}, {"city": None, "zip": "c"}]}, "history.[1].city",
     "expected string, got NoneType"),
    ({"attrs": {"k": "v"}}, "attrs.['k']", "fits no branch of the union [null, long]"),
    ({"digest": b"abc"}, "digest", "expected 4 bytes for fixed shop.Digest"),
    ({"tags": "not a list"}, "tags", "expected a list"),
    ({"address": None}, "address", "expected a dict for record shop.Address"),
])
def test_values_that_do_not_fit_name_their_field(change: dict[str, Any], path: str,
                                                  reason: str) -> None:
    value = {"id": 1, "quantity": 2, "amount": 1.0, "score": 0.5, "paid": True, "customer": "c",
             "blob": b"", "note": None, "number": None, "money": 1, "status": "NEW",
             "tags": [], "attrs": {}, "address": {"city": "a", "zip": "b"}, "billing": None,
             "history": [], "digest": b"abcd", "nothing": None}
    ORDER_WRITER.write(b"", value)   # fits as it is
    value.update(change)
    with pytest.raises(AvroValueError) as raised:
        ORDER_WRITER.write(b"", value)
    assert raised.value.path == path.split(".")
    assert reason in raised.value.reason
    assert str(raised.value).startswith(f"{path}: ")


def test_a_missing_field_without_default() -> None:
    with pytest.raises(AvroValueError) as raised:
        ORDER_WRITER.write(b"", {"id": 1})
    assert raised.value.path == ["quantity"]
    assert "missing, and it has no default" in raised.value.reason
    with pytest.raises(AvroValueError, match="expected a dict for record shop.Order"):
        ORDER_WRITER.write(b"", [1, 2])


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "T", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]},
    {"type": "record", "name": "U", "fields": [{"name": "u", "type": [
        {"type": "record", "name": "A", "fields": [{"name": "a", "type": "int"}]},
        {"type": "record", "name": "B", "fields": [{"name": "b", "type": "int"}]}]}]},
])
def test_schemas_left_to_fastavro(schema: Any) -> None:
    named: dict[str, Any] = {}
    assert compile_avro(parse_schema(schema, named_schemas=named), named) is None
