"""Protobuf in the Confluent wire format: magic byte, schema id, the message-index list (which
message of its .proto file), then the message's own encoding.

``ProtobufSerializer(registry, MessageClass, conf)`` takes a generated message class. Its file
is registered as confluent-kafka's serializer registers it (a base64 ``FileDescriptorProto``),
each imported file first, under a subject named after the import path, as a reference; the
well-known ``google/protobuf/*`` files are not registered (``skip.known.types``). A record is a
message of that class, or a dict that ``json_format.ParseDict`` turns into one.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .client import Schema, SchemaReference, SchemaRegistryClient
from .serializer import SchemaSerializer
from .wire import frame_prefix, message_indexes

try:
    from google.protobuf import descriptor_pb2, json_format
    from google.protobuf.descriptor import Descriptor, FileDescriptor
    from google.protobuf.message import Message
except ImportError as _e:   # pragma: no cover - the message is the test
    raise ImportError("kengine's Protobuf serializer needs protobuf: pip install "
                      "'kengine-kafka[protobuf]'") from _e

__all__ = ["ProtobufSerializer", "message_index_path"]

_KNOWN_PREFIXES = ("google/protobuf/", "google/type/", "confluent/")


def message_index_path(desc: Descriptor) -> list[int]:
    """Where a message is in its file: its top-level index, then nested indexes."""
    path: list[int] = []
    while desc.containing_type is not None:
        parent = desc.containing_type
        path.append(list(parent.nested_types).index(desc))
        desc = parent
    path.append(list(desc.file.message_types_by_name).index(desc.name))
    return path[::-1]


def _file_schema(file: FileDescriptor) -> str:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return base64.b64encode(proto.SerializeToString()).decode()


class ProtobufSerializer(SchemaSerializer):
    """Messages of one generated Protobuf class, in the Confluent wire format."""

    schema_type = "PROTOBUF"

    def __init__(self, registry: SchemaRegistryClient | Mapping[str, Any] | str,
                 message_class: type[Message], conf: Mapping[str, Any] | None = None, *,
                 skip_known_types: bool = True, is_key: bool | None = None) -> None:
        super().__init__(registry, conf, is_key=is_key)
        desc = getattr(message_class, "DESCRIPTOR", None)
        if not isinstance(desc, Descriptor):
            raise ConfigError("message_class", message_class, "a generated Protobuf message class")
        self.message_class = message_class
        self._desc = desc
        self._indexes = message_indexes(message_index_path(desc))
        self._skip_known = skip_known_types
        self._given_schema: Schema | None = None   # built on first use: references register

    def _record_name(self) -> str | None:
        return str(self._desc.full_name)

    def _schema(self) -> Schema | None:
        if self._given_schema is None:
            self._given_schema = Schema(_file_schema(self._desc.file), "PROTOBUF",
                                        self._references(self._desc.file))
        return self._given_schema

    def _references(self, file: FileDescriptor) -> tuple[SchemaReference, ...]:
        """Each imported file, registered (or looked up) under its import path first."""
        refs = []
        for dep in file.dependencies:
            if self._skip_known and dep.name.startswith(_KNOWN_PREFIXES):
                continue
            schema = Schema(_file_schema(dep), "PROTOBUF", self._references(dep))
            if self.auto_register:
                self.registry.register_schema(dep.name, schema, self.normalize)
            version = self.registry.lookup_schema(dep.name, schema, self.normalize).version
            refs.append(SchemaReference(dep.name, dep.name, version))
        return tuple(refs)

    def _compile(self, schema: Schema, from_registry: bool) -> Any:
        return self.message_class   # written with the class; the registry gives only the id

    def _prefix(self, schema_id: int) -> bytes:
        return frame_prefix(schema_id) + self._indexes

    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        target = self._targets.get(topic) or self.target(topic)
        if not isinstance(value, self.message_class):
            if not isinstance(value, Mapping):
                raise self.record_error(topic, target, (
                    f"expected a {self._desc.full_name} message or a dict, got "
                    f"{type(value).__name__}"))
            try:
                value = json_format.ParseDict(value, self.message_class())
            except json_format.ParseError as e:
                raise self.record_error(topic, target, str(e), e) from None
        try:
            payload: bytes = value.SerializeToString()
        except Exception as e:   # proto2 required fields unset
            raise self.record_error(topic, target, f"{type(e).__name__}: {e}", e) from None
        return target.prefix + payload
