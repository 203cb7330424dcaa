"""Schema serializers in the asyncio producer, against the real Schema Registry and broker:
kengine's Avro serializer and (value, ctx) serializers (confluent-kafka's own AvroSerializer)
through AIOProducer, read back with confluent-kafka and decoded by its AvroDeserializer; the
registry is asked on a worker thread while the event loop goes on running; records that do not
fit, and an unreachable registry, fail as they do in the synchronous Producer."""
from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentRegistry
from confluent_kafka.schema_registry.avro import AvroDeserializer as CAvroDeserializer
from confluent_kafka.schema_registry.avro import AvroSerializer as CAvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kengine import AIOProducer
from kengine.errors import SerializationError
from kengine.schema_registry import SchemaRegistryClient
from kengine.schema_registry.avro import AvroSerializer
from tests.integration.test_schema_registry import ORDER_V1, order
from tests.support.loops import LOOPS, LagProbe, run
from tests.support.readback import read_all

pytestmark = pytest.mark.integration

ORDER_V1_JSON = json.dumps(ORDER_V1)
KEY_SCHEMA = {"type": "record", "name": "OrderKey", "namespace": "shop",
              "fields": [{"name": "id", "type": "long"}]}


class WatchedRegistry(SchemaRegistryClient):
    """The real client, noting which threads ask the registry and whether a request is under
    way (for the loop-lag probe)."""

    def __init__(self, conf: dict[str, Any]) -> None:
        super().__init__(conf)
        self.threads: set[int] = set()
        self.in_request = False

    def _request(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.add(threading.get_ident())
        self.in_request = True
        try:
            return super()._request(*args, **kwargs)
        finally:
            self.in_request = False


def ctx(topic: str, field: str = "value") -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE if field == "value"
                                else MessageField.KEY)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_aio_avro_records_decoded_by_confluent_and_registry_asked_off_the_loop(
        kafka, topic_factory, schema_registry, loop_kind):
    one, many = topic_factory(kafka, partitions=3), topic_factory(kafka, partitions=3)
    registry = WatchedRegistry({"url": schema_registry.url})
    loop_threads = []

    async def main() -> None:
        loop_threads.append(threading.get_ident())
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5,
                               key_serializer=AvroSerializer(registry, KEY_SCHEMA),
                               value_serializer=AvroSerializer(registry, ORDER_V1)) as p:
            futs = [await p.send(one, order(i), key={"id": i}) for i in range(40)]
            bulk = await p.send_many(many, [order(i) for i in range(40, 80)],
                                     keys=[{"id": i} for i in range(40, 80)])
            for f in futs:
                await f
            assert (await bulk).failed_count == 0
        # four registrations (two topics, key and value), none of them on the loop's thread
        assert registry.threads and loop_threads[0] not in registry.threads

    run(loop_kind, main)
    values = CAvroDeserializer(ConfluentRegistry({"url": schema_registry.url}))
    keys = CAvroDeserializer(ConfluentRegistry({"url": schema_registry.url}))
    for topic, first in ((one, 0), (many, 40)):
        read = read_all(kafka.bootstrap_servers, topic, at_least=40)
        assert sorted(values(r.value, ctx(topic))["id"] for r in read) == \
            list(range(first, first + 40))
        for r in read:
            value = values(r.value, ctx(topic))
            assert value == order(value["id"])
            assert keys(r.key, ctx(topic, "key")) == {"id": value["id"]}


def test_aio_context_serializers_confluents_avro_and_headers(kafka, topic, schema_registry):
    """(value, ctx) serializers get the topic, field and headers in AIOProducer as in Producer:
    confluent-kafka's AvroSerializer for values, a key serializer that adds a header."""
    confluent = ConfluentRegistry({"url": schema_registry.url})

    def key_serializer(key: str, c: Any) -> bytes:
        c.headers.append(("key-of", c.topic.encode()))
        return key.encode()

    async def main() -> None:
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                               key_serializer=key_serializer,
                               value_serializer=CAvroSerializer(confluent, ORDER_V1_JSON)) as p:
            f = await p.send(topic, order(1), key="k1", headers=[("trace", b"t1")])
            bulk = await p.send_many(topic, [order(2), order(3)], keys=["k2", "k3"])
            await f
            assert (await bulk).failed_count == 0

    run("asyncio", main)
    read = read_all(kafka.bootstrap_servers, topic, at_least=3)
    decode = CAvroDeserializer(confluent)
    assert [decode(r.value, ctx(topic)) for r in read] == [order(1), order(2), order(3)]
    assert [r.key for r in read] == [b"k1", b"k2", b"k3"]
    assert [r.headers for r in read] == [
        [("trace", b"t1"), ("key-of", topic.encode())],
        [("key-of", topic.encode())], [("key-of", topic.encode())]]


def test_aio_record_that_does_not_fit_fails_alone(kafka, topic, schema_registry):
    registry = SchemaRegistryClient({"url": schema_registry.url})
    bad = order(3)
    bad["quantity"] = "three"

    async def main() -> None:
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                               value_serializer=AvroSerializer(registry, ORDER_V1)) as p:
            with pytest.raises(SerializationError) as raised:
                await p.send(topic, bad)
            assert (raised.value.field, raised.value.subject) == ("value", f"{topic}-value")
            assert "quantity" in raised.value.reason
            result = await (await p.send_many(topic, [order(1), bad, order(2)]))
            assert list(result.errors) == [1]
            assert result.errors[1].subject == f"{topic}-value"

    run("asyncio", main)
    decode = CAvroDeserializer(ConfluentRegistry({"url": schema_registry.url}))
    read = read_all(kafka.bootstrap_servers, topic, at_least=2)
    assert [decode(r.value, ctx(topic)) for r in read] == [order(1), order(2)]


def test_aio_unreachable_registry_fails_the_records_and_the_loop_runs_meanwhile(kafka, topic):
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry = WatchedRegistry({"url": f"http://127.0.0.1:{port}", "retries.wait.ms": 50,
                                "retries.max.wait.ms": 200})
    serializer = AvroSerializer(registry, {"type": "record", "name": "R",
                                           "fields": [{"name": "n", "type": "int"}]})

    async def main() -> None:
        async with LagProbe() as probe, \
                AIOProducer(bootstrap_servers=kafka.bootstrap_servers, max_block_ms=1500,
                            value_serializer=serializer) as p:
            asking = probe.ticks_when(lambda: registry.in_request)
            with pytest.raises(SerializationError) as raised:
                await p.send(topic, {"n": 1})
            assert "unreachable" in str(raised.value) and "max.block.ms=1500" in str(raised.value)
            # the records of a send_many() right behind it fail alike, each under its index
            result = await (await p.send_many(topic, [{"n": i} for i in range(20)]))
            assert sorted(result.errors) == list(range(20))
            assert all("unreachable" in str(e) for e in result.errors.values())
        assert asking[0] > 0, "the loop did not run while the registry was retried"
        assert threading.get_ident() not in registry.threads

    run("asyncio", main)
