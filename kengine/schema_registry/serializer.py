"""What every schema serializer shares: its options, the subject and schema id of each topic
(asked of the registry once per topic, then cached), and the errors a record gets.

A serializer is an object with ``serialize(topic, value) -> bytes`` (Kafka's shape), so a
:class:`~kengine.Producer` takes it as ``value.serializer`` or ``key.serializer``. The producer
calls :meth:`SchemaSerializer.configure` with its settings and whether it is the key's: that
gives the serializer ``max.block.ms`` (how long a record may wait for the registry) and the field
("key" or "value") of its subjects, unless the serializer was given them itself.
"""
from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from ..errors import ConfigError, SchemaRegistryError, SerializationError
from .client import Schema, SchemaRegistryClient
from .subject import SubjectNameStrategy, resolve_strategy
from .wire import frame_prefix

__all__ = ["SERIALIZER_SETTINGS", "SchemaSerializer", "Target"]

#: option -> (default, meaning): Confluent's serializer options, with Confluent's meaning
SERIALIZER_SETTINGS: dict[str, tuple[Any, str]] = {
    "auto.register.schemas": (True, "register the schema under the subject when it is not there "
                                    "(False: it must be registered already, else the record "
                                    "fails)"),
    "use.latest.version": (False, "write with the subject's latest registered schema instead of "
                                  "the one given (with auto.register.schemas=False)"),
    "use.schema.id": (None, "write with this registered schema id, asking nothing"),
    "normalize.schemas": (False, "let the registry normalize the schema before looking it up or "
                                 "registering it"),
    "subject.name.strategy": ("TopicNameStrategy", "TopicNameStrategy, RecordNameStrategy, "
                              "TopicRecordNameStrategy, or a callable (topic, field, record_name) "
                              "-> subject"),
    "max.block.ms": (None, "how long a record may wait for an unreachable registry (None: the "
                           "producer's max.block.ms, 60000 outside a producer)"),
}
_DEFAULT_MAX_BLOCK_MS = 60000
# how long a topic's failed subject/schema-id resolution answers for the records behind it
_FAILURE_MEMORY_S = 1.0


class Target(NamedTuple):
    """What a topic's records are written with: the subject, the 5-byte wire prefix (plus the
    Protobuf message indexes), and the writer schema's compiled form (format-specific)."""

    subject: str | None
    prefix: bytes
    writer: Any


class SchemaSerializer:
    """Base of the Avro, Protobuf and JSON Schema serializers."""

    #: the registry's schemaType of this format
    schema_type: ClassVar[str] = ""

    def __init__(self, registry: SchemaRegistryClient | Mapping[str, Any] | str,
                 conf: Mapping[str, Any] | None, *, is_key: bool | None = None) -> None:
        self.registry = registry if isinstance(registry, SchemaRegistryClient) \
            else SchemaRegistryClient(registry)
        conf = dict(conf or {})
        unknown = sorted(set(conf) - set(SERIALIZER_SETTINGS))
        if unknown:
            raise ConfigError(unknown[0], conf[unknown[0]],
                              f"not an option of {type(self).__name__} (known: "
                              f"{', '.join(SERIALIZER_SETTINGS)})")

        def opt(name: str) -> Any:
            return conf.get(name, SERIALIZER_SETTINGS[name][0])

        for name in ("auto.register.schemas", "use.latest.version", "normalize.schemas"):
            if not isinstance(opt(name), bool):
                raise ConfigError(name, opt(name), "True or False")
        self.auto_register: bool = opt("auto.register.schemas")
        self.use_latest: bool = opt("use.latest.version")
        self.normalize: bool = opt("normalize.schemas")
        self.use_schema_id: int | None = opt("use.schema.id")
        if self.use_schema_id is not None and (not isinstance(self.use_schema_id, int)
                                               or self.use_schema_id < 0):
            raise ConfigError("use.schema.id", self.use_schema_id, "a registered schema id")
        if self.use_latest and self.auto_register and "auto.register.schemas" in conf:
            raise ConfigError("use.latest.version", True,
                              "writes with the latest registered schema, which needs "
                              "auto.register.schemas=False")
        if self.use_latest:
            self.auto_register = False
        self.strategy: SubjectNameStrategy = resolve_strategy(opt("subject.name.strategy"))
        max_block = opt("max.block.ms")
        self._max_block_explicit = max_block is not None
        self.max_block_ms: int = _DEFAULT_MAX_BLOCK_MS if max_block is None else int(max_block)
        self._field_explicit = is_key is not None
        #: "key" or "value": the field this serializer's subjects are for
        self.field = "key" if is_key else "value"
        # topic -> Target; written under _lock, read without it (a dict read is atomic)
        self._targets: dict[str, Target] = {}
        self._lock = threading.Lock()
        # held while a topic's subject and schema id are asked of the registry (the per-record
        # path takes no lock: it finds the topic in _targets)
        self._resolving = threading.Lock()
        # topic -> (time.monotonic() until which, the error): a failed resolution, remembered
        # for _FAILURE_MEMORY_S; any thread writes (dict operations are atomic)
        self._failures: dict[str, tuple[float, SerializationError]] = {}
        # the same serializer for the other field, made on demand by __call__
        self._twin: SchemaSerializer | None = None

    # ------------------------------------------------------------------ set by the producer

    def configure(self, producer_config: Mapping[str, Any], is_key: bool) -> None:
        """Called by the producer this serializer is given to (Java's ``Serializer.configure``):
        takes its ``max.block.ms`` and the field, unless they were set on the serializer."""
        max_block = producer_config.get("max.block.ms")
        if not self._max_block_explicit and max_block is not None:
            self.max_block_ms = int(max_block)
        if not self._field_explicit:
            self.field = "key" if is_key else "value"
            self._targets, self._failures = {}, {}

    def prepare(self, topic: str) -> None:
        """Resolves ``topic``'s subject and schema id now (the registry is asked at most once
        per topic, waiting up to max.block.ms); raises SerializationError as a record would.
        The asyncio producer calls it on a worker thread before the first record to a topic,
        so that its event loop never waits for the registry."""
        self.target(topic)

    # ------------------------------------------------------------------ per format

    def _schema(self) -> Schema | None:
        """The schema given to the serializer, as it is registered (None: none was given)."""
        raise NotImplementedError

    def _record_name(self) -> str | None:
        """The full name the record-name strategies use."""
        raise NotImplementedError

    def _compile(self, schema: Schema, from_registry: bool) -> Any:
        """The writer for ``schema``: the given schema's compiled form, or one fetched."""
        raise NotImplementedError

    def _prefix(self, schema_id: int) -> bytes:
        return frame_prefix(schema_id)

    # ------------------------------------------------------------------ shared

    def target(self, topic: str) -> Target:
        """The subject, prefix and writer of ``topic``'s records (asked of the registry the
        first time; a failure answers for the records of the next second, then the registry
        is asked again)."""
        found = self._targets.get(topic)
        if found is not None:
            return found
        # one thread resolves, the others wait for its answer: a registry may refuse
        # concurrent first registrations of one subject (Apicurio answers some with 409)
        with self._resolving:
            found = self._targets.get(topic)
            if found is not None:
                return found
            failed = self._failures.get(topic)
            if failed is not None and time.monotonic() < failed[0]:
                raise self._again(failed[1])
            try:
                return self._resolve(topic)
            except SerializationError as e:
                # the records right behind this one (a send_many() of thousands) fail alike
                # without asking again, or waiting max.block.ms again each
                self._failures[topic] = (time.monotonic() + _FAILURE_MEMORY_S, e)
                raise

    @staticmethod
    def _again(error: SerializationError) -> SerializationError:
        again = SerializationError(str(error), field=error.field, subject=error.subject,
                                   reason=error.reason)
        again.__cause__ = error.__cause__
        return again

    def _resolve(self, topic: str) -> Target:
        subject: str | None = None
        try:
            subject = self.strategy(topic, self.field, self._record_name())
        except Exception as e:
            raise SerializationError(
                f"the {self.field} of a record to {topic!r}: no subject for it: {e}",
                field=self.field, subject=None, reason=str(e)) from e
        deadline = time.monotonic() + self.max_block_ms / 1000.0
        try:
            given = self._schema()
            if self.use_schema_id is not None:
                schema_id = self.use_schema_id
                schema = self.registry.get_schema(schema_id, deadline=deadline)
                writer = self._compile(schema, True)
            elif self.use_latest:
                latest = self.registry.get_latest_version(subject, deadline=deadline)
                schema_id, writer = latest.schema_id, self._compile(latest.schema, True)
            elif given is None:
                raise ConfigError("use.latest.version", False,
                                  f"{type(self).__name__} has no schema of its own: give it one, "
                                  f"or set use.latest.version=True or use.schema.id")
            elif self.auto_register:
                schema_id = self.registry.register_schema(subject, given, self.normalize,
                                                          deadline=deadline)
                writer = self._compile(given, False)
            else:
                schema_id = self.registry.lookup_schema(subject, given, self.normalize,
                                                        deadline=deadline).schema_id
                writer = self._compile(given, False)
        except SchemaRegistryError as e:
            raise SerializationError(
                f"the {self.field} of a record to {topic!r}: no schema id for subject "
                f"{subject!r}: {self._registry_reason(e)}",
                field=self.field, subject=subject, reason=str(e)) from e
        target = Target(subject, self._prefix(schema_id), writer)
        with self._lock:
            self._failures.pop(topic, None)
            return self._targets.setdefault(topic, target)

    def _registry_reason(self, e: SchemaRegistryError) -> str:
        if e.http_status is None:
            return (f"{e}; the Schema Registry at {self.registry.url} was unreachable for "
                    f"max.block.ms={self.max_block_ms}: check its URL and that it is up")
        if e.http_status == 409:
            return f"the registry refused the schema as incompatible: {e}"
        if e.http_status == 404 and not self.auto_register:
            what = "has no versions" if self.use_latest else "does not have this schema"
            return (f"the subject {what} and auto.register.schemas is False: register it "
                    f"first ({e})")
        return str(e)

    def record_error(self, topic: str, target: Target, reason: str,
                     cause: BaseException | None = None) -> SerializationError:
        """The error of one record that does not fit its schema."""
        error = SerializationError(
            f"the {self.field} of a record to {topic!r} does not fit the schema of subject "
            f"{target.subject!r}: {reason}", field=self.field, subject=target.subject,
            reason=reason)
        error.__cause__ = cause
        return error

    def serialize(self, topic: str, value: Any) -> bytes | None:
        raise NotImplementedError

    def __call__(self, value: Any, ctx: Any = None) -> bytes | None:
        """confluent-kafka's calling convention: ``serializer(value, SerializationContext)``
        (so a confluent-kafka producer can use it too): the context's topic, and its field
        ("key" or "value", or confluent-kafka's MessageField) for the subject."""
        topic = getattr(ctx, "topic", None)
        if topic is None:
            raise SerializationError(f"{type(self).__name__} needs the topic: call "
                                     f"serialize(topic, value)")
        field = str(getattr(ctx, "field", None) or self.field).lower()
        if field != self.field:
            return self._for_field(field).serialize(topic, value)
        return self.serialize(topic, value)

    def _for_field(self, field: str) -> SchemaSerializer:
        """This serializer for the other field: same registry and schema, its own subjects."""
        twin = self._twin
        if twin is None:
            twin = copy.copy(self)
            twin.field, twin._field_explicit = field, True
            twin._targets, twin._lock, twin._twin = {}, threading.Lock(), self
            twin._resolving = threading.Lock()
            twin._failures = {}
            self._twin = twin
        return twin

