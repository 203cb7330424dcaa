"""What send_offsets_to_transaction() reads from the Python consumers' group metadata and
offsets (kengine.group_metadata), with the real client libraries' own objects. The broker's
side (the generation reaching it, a stale one refused) is in
tests/integration/test_transactional_offsets.py."""
from __future__ import annotations

import struct

import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CkTopicPartition
from kafka.structs import ConsumerGroupMetadata as KpGroupMetadata
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KpTopicPartition

from kengine import ConsumerGroupMetadata
from kengine.errors import GroupMetadataError, InvalidOffsetError
from kengine.group_metadata import commit_offsets, group_metadata


def _confluent_consumer(**extra: str) -> Consumer:
    # never connects: consumer_group_metadata() answers from the consumer's own state
    return Consumer({"bootstrap.servers": "127.0.0.1:9", "group.id": "orders-etl",
                     "log_level": 0, **extra})


def test_confluent_kafka_metadata_of_a_consumer_that_has_not_joined():
    consumer = _confluent_consumer()
    try:
        blob = consumer.consumer_group_metadata()
        assert group_metadata(blob) == ConsumerGroupMetadata("orders-etl", -1, "", None)
        # the consumer object itself is read through the same call
        assert group_metadata(consumer) == ConsumerGroupMetadata("orders-etl", -1, "", None)
    finally:
        consumer.close()


def test_confluent_kafka_metadata_keeps_the_static_instance_id():
    consumer = _confluent_consumer(**{"group.instance.id": "worker-7"})
    try:
        md = group_metadata(consumer.consumer_group_metadata())
    finally:
        consumer.close()
    assert md == ConsumerGroupMetadata("orders-etl", -1, "", "worker-7")


def test_librdkafka_bytes_of_a_joined_member():
    # the layout librdkafka writes for a member that joined (as the integration test sees
    # from a consumer in a live group): generation, member id and no instance id
    blob = (b"CGMDv2:" + struct.pack("=i", 12) + b"grp\0" + b"rdkafka-5f0c\0" + b"\x01")
    assert group_metadata(blob) == ConsumerGroupMetadata("grp", 12, "rdkafka-5f0c", None)


@pytest.mark.parametrize("blob, words", [
    (b"CGMDv1:\0\0\0\0g\0\0\x01", "not librdkafka's"),
    (b"CGMDv2:\x01\x00", "truncated or corrupt"),
    (b"CGMDv2:" + struct.pack("=i", 3) + b"grp", "truncated or corrupt"),
])
def test_unreadable_librdkafka_bytes_are_refused_by_name(blob, words):
    with pytest.raises(GroupMetadataError, match=words):
        group_metadata(blob)


def test_kafka_python_group_metadata_and_java_shaped_objects():
    kp = KpGroupMetadata(group_id="g", generation_id=4, member_id="m-1", group_instance_id="i")
    assert group_metadata(kp) == ConsumerGroupMetadata("g", 4, "m-1", "i")
    with pytest.raises(GroupMetadataError, match="no group id"):
        group_metadata(KpGroupMetadata(group_id=None))


def test_plain_group_id_and_kengines_own():
    assert group_metadata("g") == ConsumerGroupMetadata("g")
    md = ConsumerGroupMetadata("g", 3, "m", None)
    assert group_metadata(md) is md
    with pytest.raises(GroupMetadataError, match="empty"):
        group_metadata("")


def test_something_else_is_refused_with_what_to_pass():
    with pytest.raises(GroupMetadataError, match="consumer_group_metadata\\(\\)"):
        group_metadata(42)


def test_aiokafka_consumer_is_read_from_its_group_coordinator():
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def main() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", group_id="ai")
        # not started: no coordinator yet, so nothing to fence with
        with pytest.raises(GroupMetadataError, match="not in a consumer group"):
            group_metadata(consumer)

    asyncio.run(main())


def test_offsets_as_mapping_and_topic_partition_lists():
    expected = {("in", 0): (10, -1, None), ("in", 1): (20, -1, "m")}
    assert commit_offsets({("in", 0): 10, ("in", 1): (20, "m")}) == expected
    assert commit_offsets([CkTopicPartition("in", 0, 10),
                           CkTopicPartition("in", 1, 20, metadata="m")]) == expected
    assert commit_offsets({KpTopicPartition("in", 0): OffsetAndMetadata(10, None, -1),
                           KpTopicPartition("in", 1): OffsetAndMetadata(20, "m", -1)}) == expected
    # confluent-kafka's leader epoch is committed with the offset (KIP-320)
    assert commit_offsets([CkTopicPartition("in", 2, 5, leader_epoch=7)]) == {
        ("in", 2): (5, 7, None)}


@pytest.mark.parametrize("offsets, words", [
    ({}, "at least one offset"),
    ([], "at least one offset"),
    ({("in", 0): -1}, "in-0 must be an int >= 0"),
    ([CkTopicPartition("in", 3)], "in-3 must be an int >= 0"),   # position never set: -1001
    ({("in", 0): "7"}, "the offset for in-0 is '7'"),
    ({("in", 0): True}, "the offset for in-0"),
    ({"in": 7}, "not a \\(topic, partition\\) pair"),
    ({("in", -2): 7}, "not a partition of in"),
    ("in", "not str"),
])
def test_bad_offsets_name_the_partition(offsets, words):
    with pytest.raises(InvalidOffsetError, match=words):
        commit_offsets(offsets)
