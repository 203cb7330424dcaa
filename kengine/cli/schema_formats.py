"""``kengine produce --value-format/--key-format``: JSON lines encoded with a schema from a
Schema Registry, as Confluent's ``kafka-avro-console-producer`` (and its Protobuf and JSON
Schema twins) do.

    kengine produce --bootstrap-server 127.0.0.1:9092 --topic orders \\
        --schema-registry http://127.0.0.1:8081 \\
        --value-format avro --value-schema order.avsc

Each value (and key) is one JSON document on its line. ``--*-schema`` is an Avro schema file
(``.avsc``) for ``avro``, a JSON Schema file for ``json-schema``, and for ``protobuf`` either
``module:MessageClass`` (a generated class importable from the current directory) or a
``FileDescriptorSet`` file (``protoc --include_imports --descriptor_set_out=FILE``) with the
message's full name after ``#`` (``orders.desc#shop.Order``). Avro unions take plain JSON
values (the branch is chosen by the value's type, not Avro's ``{"type": value}`` wrapping).

``--schema-registry-property KEY=VALUE`` sets a registry client setting (``basic.auth.user.info``,
``ssl.ca.location``...) or a serializer option (``auto.register.schemas``,
``use.latest.version``, ``normalize.schemas``, ``subject.name.strategy``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import UsageError
from .properties import parse_assignments

__all__ = ["FORMATS", "add_arguments", "decode_json", "serializers"]

FORMATS = ("avro", "protobuf", "json-schema")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("schemas (JSON lines encoded with a Schema Registry's schema)")
    g.add_argument("--schema-registry", metavar="URL",
                   help="the Schema Registry's URL (Confluent API), needed by --*-format")
    g.add_argument("--schema-registry-property", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="a registry client setting or serializer option (repeatable)")
    for field in ("value", "key"):
        g.add_argument(f"--{field}-format",
                       choices=FORMATS + ("json",) if field == "value" else FORMATS,
                       help=f"encode each {field} (a JSON document) with --{field}-schema"
                            + ("; with --input, json: each row as a JSON object"
                               if field == "value" else ""))
        g.add_argument(f"--{field}-schema", metavar="FILE",
                       help=f"the {field}'s schema: .avsc, JSON Schema, or for protobuf "
                            f"module:Class or DESCRIPTOR_SET#full.Name")


def _bool(text: str) -> Any:
    low = text.strip().lower()
    return {"true": True, "false": False}.get(low, text)


def _split_properties(assignments: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from ..schema_registry.client import CLIENT_SETTINGS
    from ..schema_registry.serializer import SERIALIZER_SETTINGS

    client: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in parse_assignments(assignments, "--schema-registry-property").items():
        if key in CLIENT_SETTINGS:
            client[key] = value
        elif key in SERIALIZER_SETTINGS:
            options[key] = int(value) if key in ("use.schema.id", "max.block.ms") \
                else _bool(value)
        else:
            raise UsageError(f"--schema-registry-property {key}: neither a registry client "
                             f"setting ({', '.join(CLIENT_SETTINGS)}) nor a serializer option "
                             f"({', '.join(SERIALIZER_SETTINGS)})")
    for key in ("timeout",):
        if key in client:
            client[key] = float(client[key])
    for key in ("max.retries", "retries.wait.ms", "retries.max.wait.ms"):
        if key in client:
            client[key] = int(client[key])
    return client, options


def _protobuf_class(spec: str) -> Any:
    if "#" in spec:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        path, name = spec.rsplit("#", 1)
        fds = descriptor_pb2.FileDescriptorSet()
        try:
            fds.ParseFromString(Path(path).read_bytes())
        except Exception as e:
            raise UsageError(f"{path}: not a FileDescriptorSet ({e}); make one with protoc "
                             f"--include_imports --descriptor_set_out={path} ...") from None
        pool = descriptor_pool.DescriptorPool()
        for file in fds.file:
            pool.Add(file)
        try:
            return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
        except KeyError:
            raise UsageError(f"{path} has no message {name!r}") from None
    if ":" not in spec:
        raise UsageError(f"protobuf schema {spec!r}: give module:MessageClass or "
                         f"DESCRIPTOR_SET_FILE#full.MessageName")
    module, _, attr = spec.partition(":")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"protobuf schema {spec!r}: {e}") from None


def serializers(args: argparse.Namespace) -> dict[str, Any]:
    """{"key.serializer": ..., "value.serializer": ...} for the formats asked for (empty when
    none is)."""
    wanted = [f for f in ("key", "value") if getattr(args, f"{f}_format")]
    for field in ("key", "value"):
        if getattr(args, f"{field}_schema") and not getattr(args, f"{field}_format"):
            raise UsageError(f"--{field}-schema needs --{field}-format")
    if not wanted:
        return {}
    if not args.schema_registry:
        raise UsageError("--key-format/--value-format need --schema-registry URL")
    from ..schema_registry.client import SchemaRegistryClient

    client_settings, options = _split_properties(args.schema_registry_property)
    registry = SchemaRegistryClient({"url": args.schema_registry, **client_settings})
    out: dict[str, Any] = {}
    for field in wanted:
        fmt = getattr(args, f"{field}_format")
        spec = getattr(args, f"{field}_schema")
        if not spec and not options.get("use.latest.version") and fmt != "protobuf":
            raise UsageError(f"--{field}-format {fmt} needs --{field}-schema FILE (or "
                             f"--schema-registry-property use.latest.version=true)")
        if fmt == "protobuf" and not spec:
            raise UsageError("--*-format protobuf needs the message: module:Class or "
                             "DESCRIPTOR_SET#full.Name")
        out[f"{field}.serializer"] = _serializer(fmt, spec, registry, options, field == "key")
    return out


def _read_schema(spec: str | None) -> str | None:
    if spec is None:
        return None
    try:
        return Path(spec).read_text()
    except OSError as e:
        raise UsageError(f"schema file {spec}: {e.strerror}") from None


def _serializer(fmt: str, spec: str | None, registry: Any, options: Mapping[str, Any],
                is_key: bool) -> Any:
    if fmt == "avro":
        from ..schema_registry.avro import AvroSerializer
        return AvroSerializer(registry, _read_schema(spec), options, is_key=is_key)
    if fmt == "json-schema":
        from ..schema_registry.json_schema import JSONSchemaSerializer
        return JSONSchemaSerializer(registry, _read_schema(spec), options, is_key=is_key)
    from ..schema_registry.protobuf import ProtobufSerializer
    assert spec is not None
    return ProtobufSerializer(registry, _protobuf_class(spec), options, is_key=is_key)


def decode_json(data: bytes | None, field: str) -> Any:
    """A key or value of a line, as the JSON document it must be; ValueError says why not."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as e:
        raise ValueError(f"the {field} is not JSON ({e})") from None
