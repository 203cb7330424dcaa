"""Java producer properties: names and values that mean something here are taken with that
meaning; Java-only settings are refused saying so."""
from __future__ import annotations

import pytest

from kengine import config
from kengine.errors import ConfigError

BOOT = {"bootstrap.servers": "127.0.0.1:9092"}


@pytest.mark.parametrize(("java", "partitioner", "ignore_keys"), [
    ("org.apache.kafka.clients.producer.internals.DefaultPartitioner", "default", False),
    ("org.apache.kafka.clients.producer.RoundRobinPartitioner", "round_robin", False),
    ("org.apache.kafka.clients.producer.UniformStickyPartitioner", "default", True),
    ("round_robin", "round_robin", False),          # kengine's own names work there too
])
def test_partitioner_class(java, partitioner, ignore_keys) -> None:
    cfg = config.resolve({**BOOT, "partitioner.class": java})
    assert (cfg["partitioner"], cfg["partitioner.ignore.keys"]) == (partitioner, ignore_keys)


def test_a_java_partitioner_class_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match="Java class cannot run in kengine.*plugin"):
        config.resolve({**BOOT, "partitioner.class": "com.acme.kafka.TenantPartitioner"})


def test_java_serializers() -> None:
    cfg = config.resolve({
        **BOOT, "key.serializer": "org.apache.kafka.common.serialization.StringSerializer",
        "value.serializer": "org.apache.kafka.common.serialization.ByteArraySerializer"})
    assert (cfg["key.serializer"], cfg["value.serializer"]) == ("str", "bytes")
    with pytest.raises(ConfigError, match="Java class cannot run"):
        config.resolve({**BOOT, "value.serializer":
                        "io.confluent.kafka.serializers.KafkaAvroSerializer"})


@pytest.mark.parametrize("name", ["metric.reporters",
                                  "ssl.keymanager.algorithm", "sasl.kerberos.service.name",
                                  "sasl.login.callback.handler.class"])
def test_java_only_settings_are_refused_as_such(name) -> None:
    with pytest.raises(ConfigError, match="Java client setting with no meaning in kengine"):
        config.resolve({**BOOT, name: "x"})


def test_connection_and_metadata_settings_have_java_defaults() -> None:
    cfg = config.resolve(BOOT)
    assert cfg["client.dns.lookup"] == "use_all_dns_ips"
    assert cfg["metadata.recovery.strategy"] == "rebootstrap"
    assert cfg["metadata.recovery.rebootstrap.trigger.ms"] == 300000
    assert cfg["metadata.max.idle.ms"] == 300000
    with pytest.raises(ConfigError, match="use_all_dns_ips"):
        config.resolve({**BOOT, "client.dns.lookup": "default"})
    with pytest.raises(ConfigError, match="5000"):
        config.resolve({**BOOT, "metadata.max.idle.ms": 100})
