"""Confluent's wire format: magic byte 0, the schema's 4-byte big-endian global id, the payload;
Protobuf payloads are preceded by the message-index list (which message of the .proto file).

Every Kafka client family that uses a Schema Registry reads and writes this framing.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = ["MAGIC_BYTE", "frame_prefix", "message_indexes", "parse_prefix"]

MAGIC_BYTE = 0
_PREFIX = struct.Struct(">bI")


def frame_prefix(schema_id: int) -> bytes:
    """The 5 bytes that precede every payload written with schema ``schema_id``."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise ValueError(f"schema id {schema_id} does not fit the wire format's 4 bytes")
    return _PREFIX.pack(MAGIC_BYTE, schema_id)


def parse_prefix(data: bytes) -> tuple[int, memoryview]:
    """(schema id, payload) of framed bytes; ValueError when they are not framed."""
    if len(data) < _PREFIX.size or data[0] != MAGIC_BYTE:
        raise ValueError("not in the Schema Registry wire format (magic byte 0 + 4-byte id)")
    return _PREFIX.unpack_from(data)[1], memoryview(data)[_PREFIX.size:]


def _zigzag_varint(value: int, out: bytearray) -> None:
    value = (value << 1) ^ (value >> 63)
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def message_indexes(path: Sequence[int]) -> bytes:
    """The message-index list of a Protobuf message: its index among the file's top-level
    messages, then among each parent's nested messages, as a zigzag-varint count and zigzag
    varints; the first message of a file ([0]), the common case, is the single byte 0."""
    if not path:
        raise ValueError("a message-index list has at least one entry")
    if list(path) == [0]:
        return b"\x00"
    out = bytearray()
    _zigzag_varint(len(path), out)
    for index in path:
        _zigzag_varint(index, out)
    return bytes(out)
