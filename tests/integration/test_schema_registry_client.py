"""The Schema Registry client's transport: TLS against the real registry served over HTTPS,
thread safety and caching (one registration for many threads), and, on a recording HTTP server
in addition (the real registry runs without authentication), the credentials it sends and how it
retries."""
from __future__ import annotations

import json
import threading

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentRegistry
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kengine.errors import ConfigError, SchemaRegistryError
from kengine.schema_registry import Schema, SchemaRegistryClient
from kengine.schema_registry.avro import AvroSerializer
from tests.support.http_recorder import HttpRecorder
from tests.support.schema_registry import SchemaRegistryServer

SCHEMA = {"type": "record", "name": "T", "fields": [{"name": "n", "type": "int"}]}


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory, certs):
    with SchemaRegistryServer(tmp_path_factory.mktemp("tls-registry"),
                              tls=(certs.broker_cert, certs.broker_key)) as registry:
        yield registry


def test_tls_checks_the_registry_certificate(tls_registry, certs):
    assert tls_registry.url.startswith("https://")
    client = SchemaRegistryClient({"url": tls_registry.url, "ssl.ca.location": str(certs.ca)})
    schema_id = client.register_schema("tls-value", Schema(json.dumps(SCHEMA)))
    assert client.get_latest_version("tls-value").schema_id == schema_id
    data = AvroSerializer(client, SCHEMA).serialize("tls", {"n": 5})
    decoded = AvroDeserializer(ConfluentRegistry({"url": tls_registry.url,
                                                  "ssl.ca.location": str(certs.ca)}))(
        data, SerializationContext("tls", MessageField.VALUE))
    assert decoded == {"n": 5}
    untrusting = SchemaRegistryClient({"url": tls_registry.url, "max.retries": 0,
                                       "ssl.ca.location": str(certs.rogue_ca)})
    with pytest.raises(SchemaRegistryError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.get_subjects()


def test_threads_share_one_registration(schema_registry):
    client = SchemaRegistryClient({"url": schema_registry.url})
    serializer = AvroSerializer(client, SCHEMA)
    calls = []
    real = client._request

    def counting(method, path, *args, **kwargs):
        calls.append((method, path))
        return real(method, path, *args, **kwargs)

    client._request = counting   # type: ignore[method-assign]
    outputs: list[bytes] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        try:
            outputs.extend(serializer.serialize("threads", {"n": i}) for i in range(500))
        except BaseException as e:   # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(outputs) == 4000 and len({o[:5] for o in outputs}) == 1
    # one thread registered while the others waited for it; then every record used the cache
    assert calls == [("POST", "/subjects/threads-value/versions")]
    serializer.serialize("threads", {"n": 1})
    assert len(calls) == 1


def test_basic_auth_bearer_and_url_credentials():
    with HttpRecorder([(200, ["a"])] * 3) as server:
        SchemaRegistryClient({"url": server.url,
                              "basic.auth.user.info": "ann:s3cret"}).get_subjects()
        SchemaRegistryClient({"url": server.url, "bearer.auth.token": "tok"}).get_subjects()
        host = server.url.removeprefix("http://")
        SchemaRegistryClient({"url": f"http://bob:pw%40x@{host}"}).get_subjects()
    auth = [headers.get("Authorization") for _, _, headers, _ in server.requests]
    assert auth == ["Basic YW5uOnMzY3JldA==", "Bearer tok", "Basic Ym9iOnB3QHg="]
    with pytest.raises(ConfigError, match="not both"):
        SchemaRegistryClient({"url": "http://x", "basic.auth.user.info": "a:b",
                              "bearer.auth.token": "t"})
    with pytest.raises(ConfigError, match="not a Schema Registry client setting"):
        SchemaRegistryClient({"url": "http://x", "schema.registry.url": "http://x"})


def test_retries_5xx_but_not_4xx():
    answers = [(503, {"error_code": 50003, "message": "busy"}), (500, {}), (200, {"id": 9})]
    with HttpRecorder(answers) as server:
        client = SchemaRegistryClient({"url": server.url, "retries.wait.ms": 10})
        assert client.register_schema("s", Schema('"int"')) == 9
        assert len(server.requests) == 3
        assert client.register_schema("s", Schema('"int"')) == 9   # cached
        assert len(server.requests) == 3
        method, path, headers, body = server.requests[0]
        assert (method, path) == ("POST", "/subjects/s/versions")
        assert headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
        assert json.loads(body) == {"schema": '"int"'}
    with HttpRecorder([(422, {"error_code": 42201, "message": "Invalid schema"})]) as server:
        client = SchemaRegistryClient({"url": server.url, "retries.wait.ms": 10})
        with pytest.raises(SchemaRegistryError) as raised:
            client.register_schema("s", Schema('"nope"'))
        assert (raised.value.http_status, raised.value.error_code) == (422, 42201)
        assert "Invalid schema" in str(raised.value) and len(server.requests) == 1
    with HttpRecorder([(503, {})] * 10) as server:
        client = SchemaRegistryClient({"url": server.url, "retries.wait.ms": 10,
                                       "max.retries": 2})
        with pytest.raises(SchemaRegistryError, match="gave up after 3 attempts") as raised:
            client.get_subjects()
        assert raised.value.http_status == 503 and len(server.requests) == 3


def test_a_second_url_takes_over(schema_registry):
    with HttpRecorder([]) as dead:
        pass   # closed: connections to it are refused
    client = SchemaRegistryClient({"url": f"{dead.url},{schema_registry.url}",
                                   "retries.wait.ms": 10})
    assert isinstance(client.get_subjects(), list)
