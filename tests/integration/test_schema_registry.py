"""Schema-aware producing against a real Schema Registry (Apicurio, Confluent API) and a real
broker: what kengine's Avro, Protobuf and JSON Schema serializers write is read back with
confluent-kafka and decoded by *its* deserializers from the same registry; where the format is
deterministic the bytes equal those of confluent-kafka's serializers. Schema evolution, records
that do not fit, registries that refuse or cannot be reached.
"""
from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentRegistry
from confluent_kafka.schema_registry.avro import AvroDeserializer as CAvroDeserializer
from confluent_kafka.schema_registry.avro import AvroSerializer as CAvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer as CJSONDeserializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer as CJSONSerializer
from confluent_kafka.schema_registry.protobuf import (
    ProtobufDeserializer as CProtobufDeserializer,
)
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer as CProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

from kengine import Producer
from kengine.errors import SchemaRegistryError, SerializationError
from kengine.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from kengine.schema_registry.avro import AvroSerializer
from kengine.schema_registry.json_schema import JSONSchemaSerializer
from kengine.schema_registry.protobuf import ProtobufSerializer
from tests.support.proto_messages import Order, Refund
from tests.support.readback import read_all

ORDER_V1 = {
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "quantity", "type": "int"},
        {"name": "paid", "type": "boolean"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "status", "type": {"type": "enum", "name": "Status",
                                    "symbols": ["NEW", "PAID", "SHIPPED"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
            {"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]}},
        {"name": "billing", "type": ["null", "Address"], "default": None},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "blob", "type": "bytes"},
        {"name": "score", "type": "float"},
    ],
}


def order(i: int) -> dict[str, Any]:
    return {"id": i, "customer": f"customer-{i} ü", "amount": i * 1.25, "quantity": i % 7,
            "paid": i % 2 == 0, "note": None if i % 3 else f"note {i}",
            "status": ["NEW", "PAID", "SHIPPED"][i % 3], "tags": [f"t{j}" for j in range(i % 4)],
            "attrs": {f"a{j}": j * i for j in range(i % 3)},
            "address": {"city": "Lyon", "zip": f"{69000 + i}"},
            "billing": None if i % 2 else {"city": "Paris", "zip": "75001"},
            "digest": i.to_bytes(4, "big"), "blob": bytes(range(i % 9)), "score": 0.5}


def cctx(topic: str, field: str = "value") -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE if field == "value" else
                                MessageField.KEY)


@pytest.fixture
def registry(schema_registry: Any) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry.url})


@pytest.fixture
def confluent_registry(schema_registry: Any) -> ConfluentRegistry:
    return ConfluentRegistry({"url": schema_registry.url})


def produce(kafka: Any, topic: str, records: list[Any], keys: list[Any] | None = None,
            **settings: Any) -> None:
    with Producer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5, **settings) as p:
        futures = [p.send(topic, value=v, key=None if keys is None else keys[i])
                   for i, v in enumerate(records)]
        p.flush()
        for f in futures:
            f.result(30)


# ---------------------------------------------------------------------------------- Avro

def test_avro_records_are_decoded_by_confluent_deserializer(kafka, topic, registry,
                                                            confluent_registry):
    records = [order(i) for i in range(50)]
    key_schema = json.dumps({"type": "record", "name": "OrderKey", "namespace": "shop",
                             "fields": [{"name": "id", "type": "long"}]})
    produce(kafka, topic, records, keys=[{"id": r["id"]} for r in records],
            value_serializer=AvroSerializer(registry, ORDER_V1),
            key_serializer=AvroSerializer(registry, key_schema))

    read = read_all(kafka.bootstrap_servers, topic, at_least=len(records))
    assert len(read) == len(records)
    values = CAvroDeserializer(confluent_registry)
    keys = CAvroDeserializer(confluent_registry)
    assert [values(r.value, cctx(topic)) for r in read] == records
    assert [keys(r.key, cctx(topic, "key")) for r in read] == [{"id": i} for i in range(50)]
    # TopicNameStrategy: the producer told each serializer which field it serializes
    assert {f"{topic}-key", f"{topic}-value"} <= set(confluent_registry.get_subjects())


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "fastavro"])
def test_avro_bytes_equal_confluent_serializer(topic, registry, confluent_registry, compiled):
    ours = AvroSerializer(registry, ORDER_V1, compiled=compiled)
    assert (ours.target(topic).writer[0] is not None) == compiled
    theirs = CAvroSerializer(confluent_registry, json.dumps(ORDER_V1))
    for i in range(40):
        assert ours.serialize(topic, order(i)) == theirs(order(i), cctx(topic)), i
    assert ours.serialize(topic, None) is None


def test_avro_named_types_and_references(kafka, topic, registry, confluent_registry):
    money = {"type": "record", "name": "Money", "namespace": "shop.common",
             "fields": [{"name": "currency", "type": "string"}, {"name": "units", "type": "long"}]}
    ref_subject = f"shop.common.Money-{uuid.uuid4().hex[:6]}"
    registry.register_schema(ref_subject, Schema(json.dumps(money)))
    version = registry.get_latest_version(ref_subject).version
    invoice = {"type": "record", "name": "Invoice", "namespace": "shop",
               "fields": [{"name": "id", "type": "long"},
                          {"name": "total", "type": "shop.common.Money"},
                          {"name": "lines", "type": {"type": "array",
                                                     "items": "shop.common.Money"}}]}
    serializer = AvroSerializer(registry, invoice, references=[
        SchemaReference("shop.common.Money", ref_subject, version)])
    records = [{"id": i, "total": {"currency": "EUR", "units": i * 100},
                "lines": [{"currency": "EUR", "units": i}] * (i % 3)} for i in range(10)]
    produce(kafka, topic, records, value_serializer=serializer)

    registered = registry.get_latest_version(f"{topic}-value")
    assert [r.name for r in registered.schema.references] == ["shop.common.Money"]
    read = read_all(kafka.bootstrap_servers, topic, at_least=len(records))
    decode = CAvroDeserializer(confluent_registry)
    assert [decode(r.value, cctx(topic)) for r in read] == records


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "fastavro"])
def test_avro_record_that_does_not_fit_fails_alone(kafka, topic, registry, confluent_registry,
                                                   compiled):
    bad = order(3)
    bad["quantity"] = "three"
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  value_serializer=AvroSerializer(registry, ORDER_V1, compiled=compiled)) as p:
        with pytest.raises(SerializationError) as raised:
            p.send(topic, bad)
        e = raised.value
        assert (e.field, e.subject) == ("value", f"{topic}-value")
        assert "quantity" in e.reason and "quantity" in str(e), e
        # send_many(): the record that does not fit is refused, the others are sent
        fut = p.send_many(topic, [order(1), bad, order(2)])
        p.flush()
        result = fut.result(30)
        refused = result.errors
        assert list(refused) == [1] and result.failed_count == 1
        assert isinstance(refused[1], SerializationError)
        assert refused[1].subject == f"{topic}-value" and "quantity" in refused[1].reason
    read = read_all(kafka.bootstrap_servers, topic, at_least=2)
    decode = CAvroDeserializer(confluent_registry)
    assert [decode(r.value, cctx(topic)) for r in read] == [order(1), order(2)]


def test_avro_schema_evolution(kafka, topic, registry, confluent_registry, schema_registry):
    schema_registry.set_compatibility("BACKWARD", f"{topic}-value")
    v1 = {"type": "record", "name": "User", "namespace": "shop",
          "fields": [{"name": "name", "type": "string"}]}
    v2 = {**v1, "fields": v1["fields"] + [{"name": "age", "type": "int", "default": -1}]}
    incompatible = {**v1, "fields": [{"name": "name", "type": "long"}]}
    produce(kafka, topic, [{"name": "a"}], value_serializer=AvroSerializer(registry, v1))
    produce(kafka, topic, [{"name": "b", "age": 7}], value_serializer=AvroSerializer(registry, v2))
    assert registry.get_versions(f"{topic}-value") == [1, 2]

    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  value_serializer=AvroSerializer(registry, incompatible)) as p:
        with pytest.raises(SerializationError) as raised:
            p.send(topic, {"name": 5})
    e = raised.value
    assert e.subject == f"{topic}-value" and "incompatible" in str(e)
    assert isinstance(e.__cause__, SchemaRegistryError) and e.__cause__.http_status == 409
    assert registry.get_versions(f"{topic}-value") == [1, 2]   # nothing registered

    read = read_all(kafka.bootstrap_servers, topic, at_least=2)
    assert len(read) == 2   # the refused record was not sent
    # an old consumer (reader schema v1) decodes both; a new one sees the default
    old = CAvroDeserializer(confluent_registry, json.dumps(v1))
    new = CAvroDeserializer(confluent_registry, json.dumps(v2))
    assert [old(r.value, cctx(topic)) for r in read] == [{"name": "a"}, {"name": "b"}]
    assert [new(r.value, cctx(topic)) for r in read] == [{"name": "a", "age": -1},
                                                         {"name": "b", "age": 7}]


def test_options_auto_register_use_latest_and_strategies(topic, registry, confluent_registry):
    schema = {"type": "record", "name": "Ping", "namespace": "net",
              "fields": [{"name": "n", "type": "int"}]}
    lookup_only = AvroSerializer(registry, schema, {"auto.register.schemas": False})
    with pytest.raises(SerializationError) as raised:
        lookup_only.serialize(topic, {"n": 1})
    assert raised.value.subject == f"{topic}-value"
    assert "auto.register.schemas" in str(raised.value)

    schema_id = registry.register_schema(f"{topic}-value", Schema(json.dumps(schema)))
    # (the failure answers for this serializer's records of the next second: a new one)
    lookup_only = AvroSerializer(registry, schema, {"auto.register.schemas": False})
    assert lookup_only.serialize(topic, {"n": 1})[1:5] == schema_id.to_bytes(4, "big")
    latest = AvroSerializer(registry, None, {"use.latest.version": True,
                                             "auto.register.schemas": False})
    assert latest.serialize(topic, {"n": 2}) == lookup_only.serialize(topic, {"n": 2})

    by_name = AvroSerializer(registry, schema, {"subject.name.strategy": "RecordNameStrategy"})
    by_name.serialize(topic, {"n": 3})
    assert by_name.target(topic).subject == "net.Ping"
    both = AvroSerializer(registry, schema,
                          {"subject.name.strategy": "TopicRecordNameStrategy"}, is_key=True)
    both.serialize(topic, {"n": 3})
    assert both.target(topic).subject == f"{topic}-net.Ping"
    subjects = set(confluent_registry.get_subjects())
    assert {"net.Ping", f"{topic}-net.Ping"} <= subjects
    theirs = CAvroSerializer(confluent_registry, json.dumps(schema), conf={
        "auto.register.schemas": False, "normalize.schemas": True})
    ours = AvroSerializer(registry, schema, {"auto.register.schemas": False,
                                             "normalize.schemas": True})
    assert ours.serialize(topic, {"n": 9}) == theirs({"n": 9}, cctx(topic))


def test_unreachable_registry_is_retried_within_max_block_ms_then_fails(kafka, topic):
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = SchemaRegistryClient({"url": f"http://127.0.0.1:{port}", "retries.wait.ms": 50,
                                   "retries.max.wait.ms": 200})
    serializer = AvroSerializer(client, {"type": "record", "name": "R",
                                         "fields": [{"name": "n", "type": "int"}]})
    with Producer(bootstrap_servers=kafka.bootstrap_servers, max_block_ms=1500,
                  value_serializer=serializer) as p:
        assert serializer.max_block_ms == 1500
        with pytest.raises(SerializationError) as raised:
            p.send(topic, {"n": 1})
    e = raised.value
    assert e.subject == f"{topic}-value" and "unreachable" in str(e)
    assert "max.block.ms=1500" in str(e) and f"127.0.0.1:{port}" in str(e)
    attempts = int(str(e).split("gave up after ")[1].split(" attempt")[0])
    assert attempts > 1   # retried, not failed at the first refusal

    # send_many(): the records behind the first fail with it, without waiting again each
    calls = []
    real = client._request

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    client._request = counting   # type: ignore[method-assign]
    serializer._failures.clear()
    with Producer(bootstrap_servers=kafka.bootstrap_servers, max_block_ms=1500,
                  value_serializer=serializer) as p:
        result = p.send_many(topic, [{"n": i} for i in range(50)]).result(30)
    assert sorted(result.errors) == list(range(50)) and len(calls) == 1
    assert all("unreachable" in str(err) for err in result.errors.values())


# ---------------------------------------------------------------------------------- Protobuf

def make_order(i: int) -> Any:
    o = Order(id=i, customer=f"c{i}", status=i % 2)
    o.total.currency = "EUR"
    o.total.units = 100 * i
    o.created.seconds = 1_700_000_000 + i
    for j in range(i % 3):
        o.lines.add(sku=f"sku-{j}", quantity=j + 1)
    return o


def test_protobuf_records_are_decoded_by_confluent_deserializer(kafka, topic, registry,
                                                                confluent_registry):
    records = [make_order(i) for i in range(20)]
    produce(kafka, topic, records,
            value_serializer=ProtobufSerializer(registry, Order))
    read = read_all(kafka.bootstrap_servers, topic, at_least=len(records))
    decode = CProtobufDeserializer(Order, {"use.deprecated.format": False})
    assert [decode(r.value, cctx(topic)) for r in read] == records
    # the import was registered as a reference under its own path; the well-known one was not
    latest = registry.get_latest_version(f"{topic}-value")
    assert [r.name for r in latest.schema.references] == ["kengine/tests/money.proto"]


def test_protobuf_a_dict_and_a_wrong_type(topic, registry):
    serializer = ProtobufSerializer(registry, Order)
    as_dict = serializer.serialize(topic, {"id": "5", "customer": "c5",
                                           "total": {"currency": "EUR", "units": "500"}})
    expected = Order(id=5, customer="c5")
    expected.total.currency, expected.total.units = "EUR", 500
    assert as_dict == serializer.target(topic).prefix + expected.SerializeToString()
    with pytest.raises(SerializationError) as raised:
        serializer.serialize(topic, {"id": "x"})
    assert raised.value.subject == f"{topic}-value" and "id" in raised.value.reason
    with pytest.raises(SerializationError, match="expected a kengine.tests.Order"):
        serializer.serialize(topic, Refund(order_id=1))


def test_protobuf_bytes_equal_confluent_serializer(topic, registry, confluent_registry):
    theirs = CProtobufSerializer(Order, confluent_registry, {"use.deprecated.format": False})
    ours = ProtobufSerializer(registry, Order)
    for i in range(10):
        assert ours.serialize(topic, make_order(i)) == theirs(make_order(i), cctx(topic)), i
    # a nested message and a second top-level one: their message-index lists
    line_topic, refund_topic = f"{topic}-line", f"{topic}-refund"
    line = Order.Line(sku="a", quantity=2)
    assert ProtobufSerializer(registry, Order.Line).serialize(line_topic, line) == \
        CProtobufSerializer(Order.Line, confluent_registry, {"use.deprecated.format": False})(
            line, cctx(line_topic))
    refund = Refund(order_id=3)
    ours_refund = ProtobufSerializer(registry, Refund).serialize(refund_topic, refund)
    assert ours_refund[5:7] == b"\x02\x02"   # one index (zigzag 1), index 1 (zigzag 2)
    assert ours_refund == CProtobufSerializer(Refund, confluent_registry, {
        "use.deprecated.format": False})(refund, cctx(refund_topic))


# ---------------------------------------------------------------------------------- JSON Schema

PERSON = {
    "$schema": "http://json-schema.org/draft-07/schema#", "title": "Person", "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                   "emails": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "age"], "additionalProperties": False,
}


def test_json_schema_records_are_decoded_by_confluent_deserializer(kafka, topic, registry,
                                                                   confluent_registry):
    records = [{"name": f"p{i} é", "age": i, "emails": [f"p{i}@x"] * (i % 2)} for i in range(20)]
    produce(kafka, topic, records, value_serializer=JSONSchemaSerializer(registry, PERSON))
    read = read_all(kafka.bootstrap_servers, topic, at_least=len(records))
    decode = CJSONDeserializer(None, schema_registry_client=confluent_registry)
    assert [decode(r.value, cctx(topic)) for r in read] == records
    theirs = CJSONSerializer(json.dumps(PERSON), confluent_registry)
    ours = JSONSchemaSerializer(registry, PERSON)
    for r in records:
        assert ours.serialize(topic, r) == theirs(r, cctx(topic))


def test_json_schema_validates_before_sending(kafka, topic, registry):
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  value_serializer=JSONSchemaSerializer(registry, PERSON)) as p:
        with pytest.raises(SerializationError) as raised:
            p.send(topic, {"name": "x", "age": -3})
        assert raised.value.subject == f"{topic}-value"
        assert "$.age" in raised.value.reason and "minimum" in raised.value.reason
        fut = p.send_many(topic, [{"name": "a", "age": 1}, {"name": "b"}, {"name": "c", "age": 2}])
        p.flush()
    errors = fut.result(30).errors
    assert list(errors) == [1] and "'age' is a required property" in str(errors[1])
    assert [json.loads(r.value[5:])["name"]
            for r in read_all(kafka.bootstrap_servers, topic, at_least=2)] == ["a", "c"]


# ---------------------------------------------------------------------------------- the client

def test_client_api(topic, registry, schema_registry):
    subject = f"{topic}-value"
    v1 = Schema(json.dumps({"type": "record", "name": "A", "fields": [
        {"name": "x", "type": "int"}]}))
    v2 = Schema(json.dumps({"type": "record", "name": "A", "fields": [
        {"name": "x", "type": "int"}, {"name": "y", "type": "string", "default": ""}]}))
    bad = Schema(json.dumps({"type": "record", "name": "A", "fields": [
        {"name": "x", "type": "string"}]}))
    id1 = registry.register_schema(subject, v1)
    assert registry.register_schema(subject, v1) == id1
    assert registry.set_compatibility("BACKWARD", subject) == "BACKWARD"
    assert registry.get_compatibility(subject) == "BACKWARD"
    assert registry.test_compatibility(subject, v2) is True
    ok, reasons = registry.test_compatibility(subject, bad, verbose=True)
    assert ok is False
    id2 = registry.register_schema(subject, v2)
    assert id2 != id1
    fresh = SchemaRegistryClient({"url": schema_registry.url})   # nothing cached
    assert json.loads(fresh.get_schema(id1).schema_str) == json.loads(v1.schema_str)
    assert fresh.get_version(subject, 1).schema_id == id1
    assert fresh.get_latest_version(subject).schema_id == id2
    assert fresh.lookup_schema(subject, v1).version == 1
    with pytest.raises(SchemaRegistryError) as raised:
        fresh.register_schema(subject, bad)
    assert raised.value.http_status == 409
    with pytest.raises(SchemaRegistryError) as raised:
        fresh.get_schema(987654321)
    assert raised.value.http_status == 404
    assert sorted(fresh.delete_subject(subject)) == [1, 2]
    assert subject not in fresh.get_subjects()


def test_the_readme_avro_example_runs(kafka, schema_registry, confluent_registry):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Schemas: Avro, Protobuf and JSON Schema", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 1)
    code = (code.replace("http://127.0.0.1:8081", schema_registry.url)
            .replace("127.0.0.1:9092", kafka.bootstrap_servers)
            .replace('"orders"', repr(topic)))
    exec(compile(code, "README.md", "exec"), {})
    [record] = read_all(kafka.bootstrap_servers, topic, at_least=1)
    assert record.key == b"order-17"
    assert CAvroDeserializer(confluent_registry)(record.value, cctx(topic)) == {
        "id": 17, "customer": "ada", "amount": 12.5, "note": None}


def test_confluent_kafkas_serializers_plug_in_as_they_are(kafka, topic):
    # a (value, ctx) serializer: kengine calls it with its SerializationContext
    produce(kafka, topic, ["héllo"], value_serializer=StringSerializer("utf_8"))
    read = read_all(kafka.bootstrap_servers, topic, at_least=1)
    assert [r.value for r in read] == ["héllo".encode()]


def test_kengine_serializers_in_a_confluent_kafka_producer(kafka, topic, registry,
                                                           confluent_registry):
    """confluent-kafka's calling convention: the context's topic and field name the subject."""
    from confluent_kafka import Producer as ConfluentProducer

    schema = {"type": "record", "name": "Id", "fields": [{"name": "id", "type": "long"}]}
    serializer = AvroSerializer(registry, schema)
    p = ConfluentProducer({"bootstrap.servers": kafka.bootstrap_servers})
    p.produce(topic, key=serializer({"id": 1}, cctx(topic, "key")),
              value=serializer({"id": 2}, cctx(topic)))
    assert p.flush(30) == 0
    [record] = read_all(kafka.bootstrap_servers, topic, at_least=1)
    decode = CAvroDeserializer(confluent_registry)
    assert decode(record.key, cctx(topic, "key")) == {"id": 1}
    assert decode(record.value, cctx(topic)) == {"id": 2}
    assert {f"{topic}-key", f"{topic}-value"} <= set(confluent_registry.get_subjects())


def test_many_topics_one_registration_each(kafka, topic_factory, registry, confluent_registry):
    """100 topics, one subject each (TopicNameStrategy): every topic's schema is registered
    once, then cached; every record is read back and decoded."""
    topics = [topic_factory(kafka) for _ in range(100)]
    try:
        requests = []
        real = registry._request

        def counting(method, path, *args, **kwargs):
            requests.append((method, path))
            return real(method, path, *args, **kwargs)

        registry._request = counting   # type: ignore[method-assign]
        schema = {"type": "record", "name": "Event", "namespace": "many",
                  "fields": [{"name": "n", "type": "int"}, {"name": "topic", "type": "string"}]}
        with Producer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5,
                      value_serializer=AvroSerializer(registry, schema)) as p:
            for round_ in range(10):
                for t in topics:
                    p.send(t, {"n": round_, "topic": t})
            p.send_many(topics[0], [{"n": i, "topic": topics[0]} for i in range(10, 1000)])
            p.flush()
        assert sorted(requests) == sorted(("POST", f"/subjects/{t}-value/versions")
                                          for t in topics)
        decode = CAvroDeserializer(confluent_registry)
        for t in topics:
            expected = 1000 if t == topics[0] else 10
            read = read_all(kafka.bootstrap_servers, t, at_least=expected)
            values = [decode(r.value, cctx(t)) for r in read]
            assert len(values) == expected and {v["topic"] for v in values} == {t}
    finally:
        for t in topics:
            kafka.delete_topic(t)


def test_audit_headers_name_the_schema_the_registry_gave(kafka, topic, registry,
                                                         confluent_registry):
    """audit_headers with a registry serializer: each record says which schema id and subject
    its value is written with; confluent-kafka's registry client and the value's own wire
    prefix agree."""
    records = [order(i) for i in range(20)]
    produce(kafka, topic, records, value_serializer=AvroSerializer(registry, ORDER_V1),
            interceptors=["audit_headers"], interceptor_audit_application="orders-svc")
    read = read_all(kafka.bootstrap_servers, topic, at_least=len(records))
    latest = confluent_registry.get_latest_version(f"{topic}-value")
    assert len(read) == len(records)
    for r in read:
        headers = dict(r.headers)
        assert headers["audit.schema.id"] == str(latest.schema_id).encode()
        assert headers["audit.schema.subject"] == f"{topic}-value".encode()
        assert headers["audit.application"] == b"orders-svc"
        assert int.from_bytes(r.value[1:5], "big") == latest.schema_id
    assert [CAvroDeserializer(confluent_registry)(r.value, cctx(topic)) for r in read] == records
