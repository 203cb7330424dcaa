"""``composite``: the partition of a key built from several fields of the record.

Records that must stay together (in order, on one consumer) are often identified by more than
the record key: a tenant and an order id, a region and a device. This partitioner builds a
*composite key* from configured fields and hashes it as Java hashes record keys. The record's
own key is written unchanged.

Fields (``partitioner.composite.fields``, or the ``fields`` argument), in order:

* ``"key"``: the record's serialized key;
* ``"header:NAME"``: the value of the record's first header called NAME;
* ``"value:NAME"``: ``value[NAME]`` of a mapping value, or the attribute NAME of an object
  value, as given to ``send()`` (before ``value.serializer``);
* a callable (Python only): ``fn(value)``.

Each field's value becomes bytes: bytes as they are, str as UTF-8, int as its decimal digits
in ASCII (so ``42`` and ``"42"`` are the same field), None or a missing header/field as *null*.
Anything else fails the record with :class:`~kengine.errors.PartitionerError`.

The encoding, stable across versions and languages, is Kafka's NULLABLE_BYTES for each field,
concatenated: a 4-byte big-endian signed length followed by the bytes, and length -1
(``ff ff ff ff``) with no bytes for null. The partition is Java's default for that byte string:
``(murmur2(composite) & 0x7fffffff) % num_partitions``.

Worked example: fields ``["header:tenant", "key"]``, a record with header ``tenant=acme`` and
key ``order-17``, on a topic of 12 partitions::

    composite = 00 00 00 04 61 63 6d 65  00 00 00 08 6f 72 64 65 72 2d 31 37
                (len 4)     "acme"       (len 8)     "order-17"
    murmur2(composite) = -1471628701;  & 0x7fffffff = 675854947;  % 12 = 7

In Java the same partition is ``Utils.toPositive(Utils.murmur2(composite)) % 12``, and a Java
(or librdkafka ``murmur2_random``) producer whose record key *is* ``composite`` lands on it
with its default partitioner. :func:`encode_composite_key` computes ``composite`` in Python.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kengine_ext import partition_for_key

from ..config import Setting, SettingsGroup, contribute
from ..errors import ConfigError
from .base import Headers

__all__ = ["SETTINGS", "CompositeKeyPartitioner", "FieldSpec", "encode_composite_key",
           "parse_fields"]

#: A field of the composite key: "key", "header:NAME", "value:NAME" or a callable of the value.
FieldSpec = str | Callable[[Any], Any]

_NULL = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct(">i")


def _field_bytes(value: Any, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return b"%d" % value
    raise TypeError(f"composite key field {what} is a {type(value).__name__}; it must give "
                    f"bytes, str, int or None")


def encode_composite_key(fields: Iterable[bytes | str | int | None]) -> bytes:
    """The composite key of these field values (see the module documentation)."""
    out = []
    for i, value in enumerate(fields):
        data = _field_bytes(value, f"#{i}")
        out.append(_NULL if data is None else _LENGTH.pack(len(data)) + data)
    return b"".join(out)


@dataclass(frozen=True)
class _Field:
    source: str                               # "key", "header", "value" or "call"
    name: str = ""                            # header or value field name
    fn: Callable[[Any], Any] | None = None    # for "call"

    def reader(self) -> Callable[[bytes | None, Any, Any], Any]:
        """A function (key, value, headers) -> the field's raw value."""
        name = self.name
        if self.source == "key":
            return lambda key, value, headers: key
        if self.source == "header":
            def header(key: bytes | None, value: Any, headers: Any) -> Any:
                if not headers:
                    return None
                # exact-type checks first: isinstance() against an ABC costs ~100 ns a record
                if type(headers) is not list and isinstance(headers, Mapping):
                    return headers.get(name)
                for h, data in headers:
                    if h == name:
                        return data
                return None
            return header
        if self.source == "value":
            def field(key: bytes | None, value: Any, headers: Any) -> Any:
                if type(value) is dict or isinstance(value, Mapping):
                    return value.get(name)
                return getattr(value, name, None)
            return field
        fn = self.fn
        assert fn is not None
        return lambda key, value, headers: fn(value)

    def __str__(self) -> str:
        if self.source == "call":
            return getattr(self.fn, "__qualname__", repr(self.fn))
        return self.source if self.source == "key" else f"{self.source}:{self.name}"


def parse_fields(fields: str | Sequence[FieldSpec]) -> tuple[_Field, ...]:
    """Validates field specifications (a list, or a comma-separated string); raises
    ConfigError naming the one that is wrong."""
    items: Sequence[FieldSpec] = fields.split(",") if isinstance(fields, str) else fields
    allowed = "'key', 'header:NAME', 'value:NAME' or a callable of the value"
    out = []
    for spec in items:
        if callable(spec):
            out.append(_Field("call", fn=spec))
            continue
        if not isinstance(spec, str):
            raise ConfigError("partitioner.composite.fields", fields,
                              f"fields that are {allowed}, not {spec!r}")
        text = spec.strip()
        source, sep, name = text.partition(":")
        if text == "key":
            out.append(_Field("key"))
        elif sep and source in ("header", "value") and name:
            out.append(_Field(source, name))
        else:
            raise ConfigError("partitioner.composite.fields", fields,
                              f"fields that are {allowed}, not {spec!r}")
    return tuple(out)


class CompositeKeyPartitioner:
    """Partitions by a composite key built from record fields (see the module documentation).

    ``CompositeKeyPartitioner(["header:tenant", "key"])``, or ``partitioner="composite"`` with
    ``partitioner.composite.fields``."""

    def __init__(self, fields: str | Sequence[FieldSpec] = ()) -> None:
        self._set_fields(fields)

    def _set_fields(self, fields: str | Sequence[FieldSpec]) -> None:
        self._fields = parse_fields(fields)
        self._readers = tuple((f.reader(), repr(str(f))) for f in self._fields)

    def configure(self, settings: Mapping[str, Any]) -> None:
        self._set_fields(settings.get("partitioner.composite.fields", ()))
        if not self._fields:
            raise ConfigError("partitioner.composite.fields", (),
                              "at least one field when partitioner='composite'")

    def _encode(self, key: bytes | None, value: Any, headers: Headers | None) -> bytearray:
        out = bytearray()
        for read, label in self._readers:
            data = read(key, value, headers)
            if type(data) is not bytes:
                data = _field_bytes(data, label)
            if data is None:
                out += _NULL
            else:
                out += _LENGTH.pack(len(data))
                out += data
        return out

    def composite_key(self, key: bytes | None, value: Any, headers: Headers | None) -> bytes:
        """The bytes this record's partition is computed from."""
        return bytes(self._encode(key, value, headers))

    def partition(self, topic: str, key: bytes | None, value: Any, headers: Headers | None,
                  num_partitions: int, available: tuple[int, ...]) -> int:
        return partition_for_key(self._encode(key, value, headers), num_partitions)

    def __repr__(self) -> str:
        return f"CompositeKeyPartitioner([{', '.join(repr(str(f)) for f in self._fields)}])"


# ---------------------------------------------------------------- partitioner.composite.*

def _composite_fields(key: str, value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    parse_fields(value)  # raises ConfigError naming the bad field
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip() if isinstance(item, str) else item for item in items)


def _applies(values: dict[str, Any]) -> str | None:
    partitioner = values["partitioner"]
    if partitioner == "composite" or isinstance(partitioner, type):
        return None   # a class may be this partitioner, or read them as a plugin would
    return f"only used with partitioner='composite', not {partitioner!r}"


def _check(values: dict[str, Any], explicit: frozenset[str]) -> None:
    if values["partitioner"] == "composite" and not values["partitioner.composite.fields"]:
        raise ConfigError("partitioner.composite.fields", values["partitioner.composite.fields"],
                          "at least one field when partitioner='composite'")


#: What CompositeKeyPartitioner.configure() reads.
SETTINGS = SettingsGroup(
    owner=__name__,
    settings=(
        Setting("partitioner.composite.fields", (), _composite_fields,
                "composite: the key's fields in order: 'key', 'header:NAME', 'value:NAME' or "
                "callables of the value (list, or a comma-separated string)"),
    ),
    applies=_applies,
    check=_check,
    after="partitioner.salted.detect.window.records",
)
contribute(SETTINGS)
