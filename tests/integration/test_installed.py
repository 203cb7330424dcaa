"""What a user does first after ``pip install kengine-kafka``, against a real broker: produce
with send() and send_many() under every compression codec and read it all back with an
independent consumer (confluent-kafka). tools/test_wheels.py runs this file in a fresh venv of
every supported interpreter with the built wheel installed; the suite runs it on the default
interpreter."""
from __future__ import annotations

import pytest

from kengine import Producer
from kengine_ext import partition_for_key
from tests.support.readback import read_all

PARTITIONS = 3


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_records_sent_one_by_one_and_in_bulk_are_all_read_back(kafka, topic_factory, codec):
    topic = topic_factory(kafka, partitions=PARTITIONS)
    one_by_one = [(b"key-%d" % (i % 7), b"one-%d-" % i + bytes(i % 251) * 4) for i in range(200)]
    bulk_values = [b"bulk-%d" % i for i in range(300)]
    bulk_keys = [b"key-%d" % (i % 5) for i in range(300)]
    with Producer(bootstrap_servers=kafka.bootstrap_servers, compression_type=codec) as producer:
        futures = [producer.send(topic, value, key=key) for key, value in one_by_one]
        bulk = producer.send_many(topic, bulk_values, keys=bulk_keys).result(timeout=60)
        metadata = [f.result(timeout=60) for f in futures]
    assert bulk.ok, bulk.errors
    assert all(m.topic == topic for m in metadata)

    records = read_all(kafka.bootstrap_servers, topic)
    sent = sorted(one_by_one + list(zip(bulk_keys, bulk_values, strict=True)))
    assert sorted((r.key, r.value) for r in records) == sent
    # keyed records are where Java's default partitioner puts them
    assert all(r.partition == partition_for_key(r.key, PARTITIONS) for r in records)
