"""JSON Schema in the Confluent wire format: each record is validated against the schema before
it is sent, then written as compact UTF-8 JSON after the magic byte and schema id.

``JSONSchemaSerializer(registry, schema, conf)``: ``schema`` is the JSON Schema (text or dict);
its ``$schema`` picks the draft (Draft 7 when absent); ``references`` are registered schemas its
``$ref`` s name. A record that does not validate fails alone, naming the field (as a JSON path)
and the rule it broke.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .client import Schema, SchemaReference, SchemaRegistryClient, references_from
from .serializer import SchemaSerializer

try:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7
except ImportError as _e:   # pragma: no cover - the message is the test
    raise ImportError("kengine's JSON Schema serializer needs jsonschema: pip install "
                      "'kengine-kafka[jsonschema]'") from _e

__all__ = ["JSONSchemaSerializer"]


class JSONSchemaSerializer(SchemaSerializer):
    """JSON values validated against a JSON Schema, in the Confluent wire format."""

    schema_type = "JSON"

    def __init__(self, registry: SchemaRegistryClient | Mapping[str, Any] | str,
                 schema: str | Mapping[str, Any] | None = None,
                 conf: Mapping[str, Any] | None = None, *,
                 references: Sequence[SchemaReference | Mapping[str, Any]] | None = None,
                 to_dict: Callable[[Any], Any] | None = None, is_key: bool | None = None) -> None:
        super().__init__(registry, conf, is_key=is_key)
        self._to_dict = to_dict
        self._given: Schema | None = None
        self._title: str | None = None
        if schema is not None:
            text = schema if isinstance(schema, str) else json.dumps(schema)
            try:
                parsed = json.loads(text)
            except ValueError as e:
                raise ConfigError("schema", text[:200], f"JSON Schema text: {e}") from None
            self._given = Schema(text, "JSON", references_from(references))
            if isinstance(parsed, dict) and isinstance(parsed.get("title"), str):
                self._title = parsed["title"]
            if not references:
                self._compile(self._given, False)   # a schema that is not valid fails here

    def _schema(self) -> Schema | None:
        return self._given

    def _record_name(self) -> str | None:
        return self._title

    def _compile(self, schema: Schema, from_registry: bool) -> Any:
        resources = []
        seen: set[tuple[str, int]] = set()
        pending = list(schema.references)
        while pending:
            ref = pending.pop()
            if (ref.subject, ref.version) in seen:
                continue
            seen.add((ref.subject, ref.version))
            registered = self.registry.get_version(ref.subject, ref.version)
            pending.extend(registered.schema.references)
            resources.append((ref.name, Resource.from_contents(
                json.loads(registered.schema.schema_str), default_specification=DRAFT7)))
        parsed = json.loads(schema.schema_str)
        cls = jsonschema.validators.validator_for(parsed, default=jsonschema.Draft7Validator)
        try:
            cls.check_schema(parsed)
        except jsonschema.SchemaError as e:
            where = "registered" if from_registry else "given"
            raise ConfigError("schema", schema.schema_str[:200],
                              f"the {where} JSON Schema is not valid: {e.message}") from None
        return cls(parsed, registry=Registry().with_resources(resources))

    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        target = self._targets.get(topic) or self.target(topic)
        if self._to_dict is not None:
            value = self._to_dict(value)
        error = jsonschema.exceptions.best_match(target.writer.iter_errors(value))
        if error is not None:
            where = error.json_path if error.path else "the record"
            raise self.record_error(topic, target, f"{where}: {error.message}", error)
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise self.record_error(topic, target, f"not JSON: {e}", e) from None
        return target.prefix + text.encode()
