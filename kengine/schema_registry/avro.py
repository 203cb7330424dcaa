"""Avro in the Confluent wire format: named types, references, and the schema evolution rules
the registry enforces.

Records are encoded by kengine_ext's compiled encoder (``compile_avro``: the schema is compiled
once, a record costs one C call); schemas it does not cover (logical types, unions of several
record types) are encoded by fastavro, which also parses and checks every schema.

``AvroSerializer(registry, schema, conf)``: ``schema`` is the writer schema (JSON text or a
parsed dict); ``references`` lists registered schemas it uses by name. A record is a dict (or
anything ``to_dict`` turns into one); one that does not fit the schema fails alone with a
:class:`~kengine.errors.SerializationError` naming the field, subject and what did not fit.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kengine_ext import AvroValueError, AvroWriter, compile_avro

from ..errors import ConfigError
from .client import Schema, SchemaReference, SchemaRegistryClient, references_from
from .serializer import SchemaSerializer

try:
    from fastavro import parse_schema, schemaless_writer
    from fastavro.validation import validate as _validate
except ImportError as _e:   # pragma: no cover - the message is the test
    raise ImportError("kengine's Avro serializer needs fastavro: pip install "
                      "'kengine-kafka[avro]'") from _e

__all__ = ["AvroSerializer"]


class AvroSerializer(SchemaSerializer):
    """Avro values in the Confluent wire format (magic byte, schema id, Avro binary)."""

    schema_type = "AVRO"

    def __init__(self, registry: SchemaRegistryClient | Mapping[str, Any] | str,
                 schema: str | Mapping[str, Any] | None = None,
                 conf: Mapping[str, Any] | None = None, *,
                 references: Sequence[SchemaReference | Mapping[str, Any]] | None = None,
                 to_dict: Callable[[Any], Any] | None = None, is_key: bool | None = None,
                 compiled: bool = True) -> None:
        super().__init__(registry, conf, is_key=is_key)
        self._to_dict = to_dict
        # False: every record through fastavro (the compiled encoder's reference in tests)
        self._compiled = compiled
        self._given: Schema | None = None
        self._name: str | None = None
        if schema is not None:
            text = schema if isinstance(schema, str) else json.dumps(schema)
            try:
                parsed = json.loads(text)
            except ValueError as e:
                raise ConfigError("schema", text[:200], f"Avro schema JSON: {e}") from None
            self._given = Schema(text, "AVRO", references_from(references))
            if isinstance(parsed, dict) and "name" in parsed:
                name = parsed["name"]
                ns = parsed.get("namespace")
                self._name = name if "." in name or not ns else f"{ns}.{name}"
            self._compile(self._given, False)   # a schema that does not parse fails here

    def _schema(self) -> Schema | None:
        return self._given

    def _record_name(self) -> str | None:
        return self._name

    def _compile(self, schema: Schema, from_registry: bool) -> Any:
        """(the compiled encoder or None, fastavro's parsed schema): kengine_ext encodes what
        it covers, fastavro the rest (logical types, unions of several records)."""
        named: dict[str, Any] = {}
        seen: set[tuple[str, int]] = set()
        self._parse_references(schema.references, named, seen)
        try:
            parsed = parse_schema(json.loads(schema.schema_str), named_schemas=named)
        except Exception as e:
            where = "registered" if from_registry else "given"
            raise ConfigError("schema", schema.schema_str[:200],
                              f"the {where} Avro schema does not parse: {e}") from None
        root = compile_avro(parsed, named) if self._compiled else None
        return (None if root is None else AvroWriter(root)), parsed

    def _parse_references(self, refs: Sequence[SchemaReference], named: dict[str, Any],
                          seen: set[tuple[str, int]]) -> None:
        """Parses referenced schemas (theirs first) into ``named``, so the referring schema can
        use their names."""
        for ref in refs:
            if (ref.subject, ref.version) in seen:
                continue
            seen.add((ref.subject, ref.version))
            registered = self.registry.get_version(ref.subject, ref.version)
            self._parse_references(registered.schema.references, named, seen)
            parse_schema(json.loads(registered.schema.schema_str), named_schemas=named)

    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        target = self._targets.get(topic) or self.target(topic)
        if self._to_dict is not None:
            value = self._to_dict(value)
        compiled, parsed = target.writer
        if compiled is not None:
            try:
                return compiled.write(target.prefix, value)   # type: ignore[no-any-return]
            except AvroValueError as e:
                raise self.record_error(topic, target, str(e), e) from None
        out = io.BytesIO()
        out.write(target.prefix)
        try:
            schemaless_writer(out, parsed, value)
        except Exception as e:
            raise self.record_error(topic, target, self._why(parsed, value, e), e) from None
        return out.getvalue()

    @staticmethod
    def _why(parsed: Any, value: Any, error: Exception) -> str:
        """The field that does not fit and why (fastavro's writer errors rarely say which)."""
        try:
            _validate(value, parsed, raise_errors=True)
        except Exception as e:   # ValidationError: the path of each field that does not fit
            errors = getattr(e, "errors", None)
            if errors:
                return "; ".join(str(x) for x in errors)
            return f"{type(e).__name__}: {e}"
        return f"{type(error).__name__}: {error}"
