"""``kengine produce --value-format/--key-format`` run as a subprocess against a real broker and
Schema Registry: JSON lines in, Confluent wire format out, decoded by confluent-kafka's
deserializers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentRegistry
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2

from tests.support.proto_messages import Order
from tests.support.readback import read_all

ROOT = Path(__file__).resolve().parents[2]
AVRO = {"type": "record", "name": "Order", "namespace": "shop",
        "fields": [{"name": "id", "type": "long"}, {"name": "customer", "type": "string"},
                   {"name": "note", "type": ["null", "string"], "default": None}]}


def produce(kafka: Any, registry: Any, topic: str, stdin: bytes,
            *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "kengine", "produce", "--bootstrap-server",
         kafka.bootstrap_servers, "--topic", topic, "--timeout", "5",
         "--schema-registry", registry.url, *args],
        input=stdin, check=False, capture_output=True, timeout=180, cwd=ROOT, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode())


def ctx(topic: str, field: MessageField = MessageField.VALUE) -> SerializationContext:
    return SerializationContext(topic, field)


def test_avro_keys_and_values_from_json_lines(kafka, topic, schema_registry, tmp_path):
    schema = tmp_path / "order.avsc"
    schema.write_text(json.dumps(AVRO))
    key_schema = tmp_path / "key.avsc"
    key_schema.write_text('"long"')
    lines = [{"id": i, "customer": f"c{i}", "note": None if i % 2 else "n"} for i in range(5)]
    stdin = b"".join(f"{r['id']}\t{json.dumps(r)}\n".encode() for r in lines)
    # a value that does not fit (a string id) and one that is not JSON: reported, the rest sent
    stdin += b'7\t{"id": "seven", "customer": "x"}\n8\tnot json\n'
    run = produce(kafka, schema_registry, topic, stdin, "--reader-property", "parse.key=true",
                  "--value-format", "avro", "--value-schema", str(schema),
                  "--key-format", "avro", "--key-schema", str(key_schema), "--skip-bad-lines")
    assert run.returncode == 1, run.stderr
    assert "line 6:" in run.stderr and f"'{topic}-value'" in run.stderr, run.stderr
    assert "line 7: the value is not JSON" in run.stderr, run.stderr
    registry = ConfluentRegistry({"url": schema_registry.url})
    read = read_all(kafka.bootstrap_servers, topic, at_least=len(lines))
    values, keys = AvroDeserializer(registry), AvroDeserializer(registry)
    assert [values(r.value, ctx(topic)) for r in read] == lines
    assert [keys(r.key, ctx(topic, MessageField.KEY)) for r in read] == list(range(5))


def test_json_schema_and_protobuf_values(kafka, topic_factory, schema_registry, tmp_path):
    registry = ConfluentRegistry({"url": schema_registry.url})
    json_topic, proto_topic = topic_factory(kafka), topic_factory(kafka)
    person = tmp_path / "person.json"
    person.write_text(json.dumps({"type": "object", "properties": {"name": {"type": "string"}},
                                  "required": ["name"]}))
    run = produce(kafka, schema_registry, json_topic, b'{"name": "a"}\n{"name": "b"}\n',
                  "--value-format", "json-schema", "--value-schema", str(person))
    assert run.returncode == 0, run.stderr
    decode = JSONDeserializer(None, schema_registry_client=registry)
    assert [decode(r.value, ctx(json_topic))
            for r in read_all(kafka.bootstrap_servers, json_topic, at_least=2)] == \
        [{"name": "a"}, {"name": "b"}]

    # a descriptor set, as protoc --include_imports --descriptor_set_out writes it
    fds = descriptor_pb2.FileDescriptorSet()
    for file in (Order.DESCRIPTOR.file.dependencies[1], Order.DESCRIPTOR.file.dependencies[0],
                 Order.DESCRIPTOR.file):
        file.CopyToProto(fds.file.add())
    desc = tmp_path / "orders.desc"
    desc.write_bytes(fds.SerializeToString())
    run = produce(kafka, schema_registry, proto_topic,
                  b'{"id": "1", "customer": "c", "total": {"currency": "EUR", "units": "5"}}\n',
                  "--value-format", "protobuf", "--value-schema", f"{desc}#kengine.tests.Order")
    assert run.returncode == 0, run.stderr
    [record] = read_all(kafka.bootstrap_servers, proto_topic, at_least=1)
    got = ProtobufDeserializer(Order, {"use.deprecated.format": False})(record.value,
                                                                        ctx(proto_topic))
    assert (got.id, got.customer, got.total.currency, got.total.units) == (1, "c", "EUR", 5)


def test_usage_errors(kafka, topic, schema_registry):
    run = produce(kafka, schema_registry, topic, b"{}\n", "--value-format", "avro")
    assert run.returncode == 2 and "--value-schema" in run.stderr, run.stderr
