"""What ``send_offsets_to_transaction()`` accepts: the consumer group a transaction commits
offsets for, and the offsets themselves, read from the objects the Python consumers hand out.

kengine has no consumer of its own, so a consume-transform-produce pipeline pairs it with the
consumer its users already run. KIP-447 fencing needs four things from that consumer: the
group id, the group generation, the member id and the static group instance id. The broker
refuses an offset commit whose generation or member is not the group's current one, which is
how a paused or partitioned consumer (a zombie) is kept from committing over the member that
took its partitions. Losing the generation (sending -1) would turn that check off, so every
form below keeps it whenever the consumer has it.

Accepted group forms (``group_metadata()``):

* ``kengine.ConsumerGroupMetadata``;
* confluent-kafka's ``Consumer.consumer_group_metadata()``: librdkafka's serialized
  ``rd_kafka_consumer_group_metadata_t`` (``rd_kafka_consumer_group_metadata_write()``), which
  confluent-kafka returns as ``bytes``. Its layout is versioned by a magic prefix; version 2
  (``CGMDv2:``, librdkafka 1.4 and later) is read here, any other is refused by name;
* kafka-python's ``KafkaConsumer.group_metadata()`` (a named tuple) or any object with the
  attributes ``group_id``, ``generation_id``, ``member_id``, ``group_instance_id``
  (Java's field names);
* a consumer object itself: confluent-kafka's and kafka-python's (their methods above are
  called), aiokafka's ``AIOKafkaConsumer`` (aiokafka has no public call for its generation and
  member id: they are read from its group coordinator, and a consumer without one is refused);
* a plain group id (``str``): no generation, so the broker cannot fence a zombie consumer.

Accepted offsets (``commit_offsets()``): a mapping ``{(topic, partition): offset}`` (the value
may also be ``(offset, metadata)`` or an object with ``.offset``), or a list of confluent-kafka
/ kafka-python ``TopicPartition``-like objects with ``.topic``, ``.partition`` and ``.offset``
(confluent-kafka's ``consumer.position(consumer.assignment())`` is one). The offset is the next
one to read (the last processed offset + 1), as every Kafka client commits it.
"""
from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import GroupMetadataError, InvalidOffsetError

__all__ = ["ConsumerGroupMetadata", "group_metadata", "commit_offsets", "CommitOffsets"]

#: (topic, partition) -> (offset, leader epoch or -1, metadata or None)
CommitOffsets = dict[tuple[str, int], tuple[int, int, "str | None"]]


@dataclass(frozen=True)
class ConsumerGroupMetadata:
    """The consumer group whose offsets a transaction commits, with the fields the broker
    checks to fence a stale member (KIP-447): the group's ``generation_id`` when this member
    joined (-1: none, no fencing), its ``member_id`` and its static ``group_instance_id``."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


# librdkafka's serialized group metadata (rdkafka_cgrp.c, rd_kafka_consumer_group_metadata_
# write): the magic, the generation as a native-endian int32 (the format is for the process
# that wrote it; confluent-kafka hands it over within one process), then NUL-terminated group
# id and member id, a one-byte "instance id is null" flag and, if not null, the
# NUL-terminated instance id.
_LIBRDKAFKA_MAGIC = b"CGMDv2:"
_NATIVE_INT32 = struct.Struct("=i")


def _from_librdkafka(blob: bytes) -> ConsumerGroupMetadata:
    if not blob.startswith(_LIBRDKAFKA_MAGIC):
        head = bytes(blob[:7])
        raise GroupMetadataError(
            f"group metadata bytes start with {head!r}, not librdkafka's {_LIBRDKAFKA_MAGIC!r}: "
            "pass what confluent-kafka's consumer.consumer_group_metadata() returned as it is, "
            "or build a kengine.ConsumerGroupMetadata(group_id, generation_id, member_id, "
            "group_instance_id)")
    try:
        at = len(_LIBRDKAFKA_MAGIC)
        (generation,) = _NATIVE_INT32.unpack_from(blob, at)
        at += _NATIVE_INT32.size
        fields = []
        for _ in range(2):
            end = blob.index(b"\0", at)
            fields.append(blob[at:end].decode("utf-8"))
            at = end + 1
        instance: str | None = None
        if blob[at] == 0:   # "is null" is false: an instance id follows
            end = blob.index(b"\0", at + 1)
            instance = blob[at + 1:end].decode("utf-8")
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise GroupMetadataError(
            f"librdkafka group metadata of {len(blob)} bytes is truncated or corrupt ({exc}): "
            "pass consumer.consumer_group_metadata()'s result unchanged") from exc
    group_id, member_id = fields
    return ConsumerGroupMetadata(group_id, generation, member_id, instance)


def _from_aiokafka(consumer: Any) -> ConsumerGroupMetadata:
    group_id = getattr(consumer, "_group_id", None)
    coordinator = getattr(consumer, "_coordinator", None)
    if not group_id or coordinator is None or not hasattr(coordinator, "generation"):
        raise GroupMetadataError(
            "this aiokafka consumer is not in a consumer group (no group_id, or not started): "
            "start it with a group_id and subscribe before committing offsets through a "
            "transaction")
    return ConsumerGroupMetadata(
        str(group_id), int(coordinator.generation), str(coordinator.member_id or ""),
        getattr(coordinator, "_group_instance_id", None))


def group_metadata(group: Any) -> ConsumerGroupMetadata:
    """The ``ConsumerGroupMetadata`` of any accepted form (see the module's documentation);
    ``GroupMetadataError`` says what was passed and what to pass instead."""
    if isinstance(group, ConsumerGroupMetadata):
        return group
    if isinstance(group, str):
        if not group:
            raise GroupMetadataError("the group id is empty: pass the consumer's group.id")
        return ConsumerGroupMetadata(group)
    if isinstance(group, (bytes, bytearray, memoryview)):
        return _from_librdkafka(bytes(group))
    if callable(getattr(group, "consumer_group_metadata", None)):   # confluent-kafka Consumer
        return group_metadata(group.consumer_group_metadata())
    if callable(getattr(group, "group_metadata", None)):            # kafka-python KafkaConsumer
        return group_metadata(group.group_metadata())
    if hasattr(group, "group_id"):                                  # kafka-python / Java shape
        group_id = group.group_id
        if not group_id:
            raise GroupMetadataError(
                f"{type(group).__name__} has no group id (a consumer without group.id, or "
                "with partitions assigned by hand): only a consumer group's offsets can be "
                "committed through a transaction")
        instance = getattr(group, "group_instance_id", None)
        return ConsumerGroupMetadata(
            str(group_id), int(getattr(group, "generation_id", -1)),
            str(getattr(group, "member_id", "") or ""),
            None if instance is None else str(instance))
    if type(group).__module__.startswith("aiokafka"):
        return _from_aiokafka(group)
    raise GroupMetadataError(
        f"cannot read consumer group metadata from a {type(group).__module__}."
        f"{type(group).__qualname__}: pass confluent-kafka's consumer.consumer_group_metadata(), "
        "kafka-python's consumer.group_metadata(), the consumer itself, a "
        "kengine.ConsumerGroupMetadata or the group id")


def _one_offset(topic: Any, partition: Any, value: Any) -> tuple[str, int, tuple[int, int,
                                                                                   str | None]]:
    epoch, meta = -1, None
    if isinstance(value, int) and not isinstance(value, bool):
        offset = value
    elif hasattr(value, "offset"):
        offset = value.offset
        meta = getattr(value, "metadata", None)
        # confluent-kafka's TopicPartition carries the leader epoch (None: unknown)
        leader_epoch = getattr(value, "leader_epoch", None)
        epoch = leader_epoch if isinstance(leader_epoch, int) and leader_epoch >= 0 else -1
    elif isinstance(value, tuple) and len(value) == 2:
        offset, meta = value
    else:
        raise InvalidOffsetError(
            f"the offset for {topic}-{partition} is {value!r}: give the next offset to read as "
            "an int, an (offset, metadata) pair or an object with .offset")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidOffsetError(
            f"the offset for {topic}-{partition} must be an int >= 0 (the next offset to read: "
            f"the last processed record's offset + 1), not {offset!r}; a negative value is "
            "usually a consumer position that was never set (nothing consumed yet from that "
            "partition): leave such partitions out")
    if meta is not None and not isinstance(meta, str):
        raise InvalidOffsetError(
            f"the offset metadata for {topic}-{partition} must be a str or None, not "
            f"{type(meta).__name__}")
    if not isinstance(topic, str) or not topic:
        raise InvalidOffsetError(f"{topic!r} is not a topic name (offset {offset})")
    if isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
        raise InvalidOffsetError(f"{partition!r} is not a partition of {topic} (offset {offset})")
    return topic, partition, (offset, epoch, meta)


def commit_offsets(offsets: Any) -> CommitOffsets:
    """The offsets of any accepted form (see the module's documentation), checked;
    ``InvalidOffsetError`` names the partition whose offset is wrong. Nothing is sent when one
    is wrong."""
    out: CommitOffsets = {}
    if isinstance(offsets, Mapping):
        for tp, value in offsets.items():
            if hasattr(tp, "topic"):
                topic, partition = tp.topic, tp.partition
            elif isinstance(tp, tuple) and len(tp) == 2:
                topic, partition = tp
            else:
                raise InvalidOffsetError(
                    f"{tp!r} is not a (topic, partition) pair or a TopicPartition")
            topic, partition, value = _one_offset(topic, partition, value)
            out[(topic, partition)] = value
    elif isinstance(offsets, (list, tuple)):
        for tp in offsets:
            if not hasattr(tp, "topic") or not hasattr(tp, "offset"):
                raise InvalidOffsetError(
                    f"{tp!r} has no .topic/.partition/.offset: pass TopicPartition objects with "
                    "offsets, or a mapping {(topic, partition): offset}")
            error = getattr(tp, "error", None)
            if error:
                raise InvalidOffsetError(
                    f"{tp.topic}-{tp.partition} carries the consumer's error {error}: its "
                    "position is not known, leave it out")
            topic, partition, value = _one_offset(tp.topic, tp.partition, tp)
            out[(topic, partition)] = value
    else:
        raise InvalidOffsetError(
            f"offsets must be a mapping {{(topic, partition): offset}} or a list of "
            f"TopicPartition objects, not {type(offsets).__name__}")
    if not out:
        raise InvalidOffsetError("send_offsets_to_transaction() needs at least one offset")
    return out

