"""Partitioners: which partition each record sent without an explicit one goes to.

Select one with the ``partitioner`` setting (see :mod:`.registry`). The built-ins:

========================  ==================================================================
``default``               Java's: ``(murmur2(key) & 0x7fffffff) % partitions`` for keyed
                          records; KIP-794 uniform sticky placement (adaptive, with the
                          availability timeout) for records without a key. Runs in the core.
``round_robin``           Java's ``RoundRobinPartitioner``: record after record over the
                          partitions whose leader is known; keys ignored. In the core.
``consistent_random``     librdkafka's: CRC-32 of the key; null or empty keys sticky. In the core.
``murmur2_random``        librdkafka's: the same placement as ``default``. In the core.
``salted_hot_key``        hot keys spread over salted sub-keys; others as ``default``
                          (:mod:`.salted_hot_key`).
``composite``             a key built from several record fields, with a documented byte
                          encoding (:mod:`.composite`).
========================  ==================================================================

Anything else implements :class:`Partitioner` (:mod:`.base`) and is named by an entry point in
the ``kengine.partitioners`` group, given as ``"module:Class"``, or passed as an instance.
"""
from __future__ import annotations

from .base import (
    Configurable,
    Headers,
    NewBatchListener,
    Partitioner,
    ReportsMetrics,
    TopicPartitionerFactory,
)
from .composite import CompositeKeyPartitioner, encode_composite_key
from .registry import (
    CORE_PARTITIONERS,
    ENTRY_POINT_GROUP,
    PYTHON_PARTITIONERS,
    builtin_names,
    load_partitioner,
    plugin_names,
)
from .salted_hot_key import SaltedHotKeyPartitioner, salted_subkeys

__all__ = [
    "CORE_PARTITIONERS",
    "ENTRY_POINT_GROUP",
    "PYTHON_PARTITIONERS",
    "CompositeKeyPartitioner",
    "Configurable",
    "Headers",
    "NewBatchListener",
    "Partitioner",
    "ReportsMetrics",
    "SaltedHotKeyPartitioner",
    "TopicPartitionerFactory",
    "builtin_names",
    "encode_composite_key",
    "load_partitioner",
    "plugin_names",
    "salted_subkeys",
]
