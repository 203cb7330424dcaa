"""Schema Registry support: a client of Confluent's REST API and serializers in the Confluent
wire format for Avro (``kengine-kafka[avro]``), Protobuf (``kengine-kafka[protobuf]``) and JSON
Schema (``kengine-kafka[jsonschema]``).

    from kengine import Producer
    from kengine.schema_registry import SchemaRegistryClient
    from kengine.schema_registry.avro import AvroSerializer

    registry = SchemaRegistryClient({"url": "http://localhost:8081"})
    producer = Producer(bootstrap_servers="localhost:9092",
                        value_serializer=AvroSerializer(registry, schema_text))

The format modules import their library on first use, so this package needs none of them.
"""
from __future__ import annotations

from ..errors import SchemaRegistryError, SerializationError
from .client import RegisteredSchema, Schema, SchemaReference, SchemaRegistryClient
from .serializer import SERIALIZER_SETTINGS, SchemaSerializer
from .subject import record_name_strategy, topic_name_strategy, topic_record_name_strategy

__all__ = ["RegisteredSchema", "SERIALIZER_SETTINGS", "Schema", "SchemaReference",
           "SchemaRegistryClient", "SchemaRegistryError", "SchemaSerializer",
           "SerializationError", "record_name_strategy", "topic_name_strategy",
           "topic_record_name_strategy"]
