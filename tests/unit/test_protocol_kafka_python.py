"""Cross-check against encoders nobody here wrote: kafka-python's protocol classes.

* ``kafka.protocol.old``: kafka-python's hand-written structs (no JSON involved), for the
  versions it implements (Produce 3-8, Fetch 4-11, Metadata 0-8, ApiVersions 0-4, ...).
* ``kafka.protocol``: kafka-python 3's own generator over its own copy of Kafka's JSON, for
  every version including the flexible ones.

For each random value: kengine encodes it; kafka-python decodes those bytes to the same
struct (decode direction) and encodes its struct back to the very same bytes (encode
direction)."""
from __future__ import annotations

import importlib
import io
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_values import (
    expected,
    expected_message,
    is_tagged,
    message_strategy,
    present,
    valid_versions,
)

from kengine_ext import encode_message
from kengine_ext.schemas import MESSAGES, Field

with warnings.catch_warnings():
    # kafka-python loads its JSON with importlib.resources calls deprecated on 3.11+
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol.admin as kp_admin
    import kafka.protocol.consumer as kp_consumer
    import kafka.protocol.metadata as kp_metadata
    import kafka.protocol.old.types as old_types
    import kafka.protocol.producer as kp_producer
    import kafka.protocol.sasl as kp_sasl

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

OLD_MODULES = {
    "Produce": "produce", "Fetch": "fetch", "ListOffsets": "list_offsets",
    "Metadata": "metadata", "FindCoordinator": "find_coordinator", "ApiVersions": "api_versions",
    "SaslHandshake": "sasl_handshake", "SaslAuthenticate": "sasl_authenticate",
    "CreateTopics": "admin", "InitProducerId": "init_producer_id",
    "AddPartitionsToTxn": "add_partitions_to_txn", "AddOffsetsToTxn": "add_offsets_to_txn",
    "EndTxn": "end_txn", "TxnOffsetCommit": "txn_offset_commit",
}


def _old_pairs() -> Iterator[tuple[str, int, Any]]:
    for name, msg in MESSAGES.items():
        api = name.removesuffix("Request").removesuffix("Response")
        if msg.type == "header" or api not in OLD_MODULES:
            continue
        module = importlib.import_module(f"kafka.protocol.old.{OLD_MODULES[api]}")
        for version in valid_versions(msg):
            cls = getattr(module, f"{name}_v{version}", None)
            if cls is not None:
                yield name, version, cls


OLD_PAIRS = list(_old_pairs())


def _leaf(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, uuid.UUID):
        return value.bytes
    return value


def flatten_ours(fields: tuple[Field, ...], version: int, value: dict[str, Any]) -> Iterator:
    """Wire-order leaves of a value, arrays as ('len', n) then their elements; tagged fields
    are left out (the old structs have no names for them)."""
    for f in present(fields, version):
        if is_tagged(f, version):
            continue
        item = value[f.name]
        if f.type.startswith("[]"):
            if item is None:
                yield None
                continue
            yield ("len", len(item))
            for element in item:
                if f.fields:
                    yield from flatten_ours(f.fields, version, element)
                else:
                    yield _leaf(element)
        elif f.fields:
            yield from flatten_ours(f.fields, version, item)
        else:
            yield _leaf(item)


def flatten_old(kind: Any, value: Any) -> Iterator:
    """The same leaves from an old kafka-python struct, walking its schema alongside."""
    if isinstance(kind, old_types.Schema):
        for field_kind, item in zip(kind.fields, value, strict=False):  # may omit trailing fields
            yield from flatten_old(field_kind, item)
    elif isinstance(kind, old_types.Array):
        if value is None:
            yield None
            return
        yield ("len", len(value))
        for element in value:
            yield from flatten_old(kind.array_of, element)
    elif kind is old_types.TaggedFields:
        assert value == {}
    elif kind is old_types.BitField:
        # authorized-operations bit sets; None stands for Kafka's INT32_MIN "not requested"
        bits = old_types.BitField.to_32_bit_field(value if value is not None else {31})
        yield bits - (1 << 32) if bits >= 1 << 31 else bits
    else:
        yield _leaf(value)


def test_old_kafka_python_implements_what_we_cross_check() -> None:
    implemented = {(name, version) for name, version, _ in OLD_PAIRS}
    assert {("ProduceRequest", v) for v in range(3, 9)} <= implemented
    assert {("ProduceResponse", v) for v in range(3, 9)} <= implemented
    assert {("MetadataRequest", v) for v in range(9)} <= implemented
    assert {("ApiVersionsResponse", v) for v in range(5)} <= implemented
    assert len(OLD_PAIRS) >= 100


@pytest.mark.parametrize("name,version,cls", OLD_PAIRS,
                         ids=[f"{n}-v{v}" for n, v, _ in OLD_PAIRS])
@SETTINGS
@given(data=st.data())
def test_old_kafka_python_structs_agree(name: str, version: int, cls: Any,
                                        data: st.DataObject) -> None:
    value = data.draw(message_strategy(name, version, tagged=False))
    ours = encode_message(name, version, value)
    theirs = cls.SCHEMA.decode(io.BytesIO(ours))
    assert list(flatten_old(cls.SCHEMA, theirs)) == list(
        flatten_ours(MESSAGES[name].fields, version, expected_message(name, version, value)))
    assert cls.SCHEMA.encode(theirs) == ours


# --- kafka-python 3's generated classes ------------------------------------------------------

def _new_class(name: str) -> Any:
    for module in (kp_producer, kp_metadata, kp_consumer, kp_admin, kp_sasl):
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError(f"kafka-python has no {name}")


NEW_PAIRS = [(name, version) for name, msg in MESSAGES.items() if msg.type != "header"
             for version in valid_versions(msg)]


def normalize_theirs(fields: tuple[Field, ...], version: int, theirs: dict[str, Any]) -> dict:
    """kafka-python 3's to_dict() in kengine's representation: it shows a zero uuid and a
    default tagged struct as None, and authorized-operations int32 fields as bit sets named
    authorized_operations."""
    out: dict[str, Any] = {}
    for f in present(fields, version):
        if f.name in theirs:
            item = theirs[f.name]
        else:
            assert f.name.endswith("authorized_operations"), f.name
            bits = theirs["authorized_operations"]
            raw = old_types.BitField.to_32_bit_field(bits if bits is not None else {31})
            item = raw - (1 << 32) if raw >= 1 << 31 else raw
        if f.type == "uuid":
            item = item.bytes if item is not None else bytes(16)
        elif f.fields and not f.type.startswith("[]"):
            item = (expected(f.fields, version, {}) if item is None
                    else normalize_theirs(f.fields, version, item))
        elif f.fields and item is not None:
            item = [normalize_theirs(f.fields, version, e) for e in item]
        elif isinstance(item, (bytes, bytearray, memoryview)):
            item = bytes(item)
        out[f.name] = item
    return out


@pytest.mark.parametrize("name,version", NEW_PAIRS, ids=[f"{n}-v{v}" for n, v in NEW_PAIRS])
@SETTINGS
@given(data=st.data())
def test_kafka_python_generated_classes_agree(name: str, version: int,
                                              data: st.DataObject) -> None:
    value = data.draw(message_strategy(name, version))
    if name == "ApiVersionsResponse":
        # kafka-python reads any ApiVersions error response as v0 (its take on KIP-511)
        value["error_code"] = 0
    ours = encode_message(name, version, value)
    cls = _new_class(name)
    theirs = cls.decode(ours, version=version)
    assert normalize_theirs(MESSAGES[name].fields, version, theirs.to_dict(json=False)) == \
        expected_message(name, version, value)
    theirs._header = None  # decode() leaves it unset and encode() reads it
    assert theirs.encode(version=version) == ours
