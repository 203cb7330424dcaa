"""The partitioner contract: what a Python partitioner (built-in or plugin) implements.

Only :meth:`Partitioner.partition` is required. The other methods are optional and detected by
name when the producer starts, as franz-go detects optional partitioner behaviours by type:

* ``for_topic(topic) -> Partitioner``: per-topic state. Called once per topic, the first time a
  record of that topic needs a partition; that object's ``partition()`` (and
  ``on_new_batch()``) then serve the topic, so per-topic state needs no dictionary lookup
  per record.
* ``on_new_batch(topic, partition)``: called after a record opened a new batch on
  ``partition``: a partitioner that sticks to a partition (as the built-in one does) can
  move on. The record that opened the batch is already queued; an exception here is logged.
* ``configure(settings)``: called once, right after a partitioner named in ``partitioner=``
  (built-in, plugin name or ``"module:Class"``) was constructed without arguments, with the
  producer's validated settings by their Kafka names; ``settings["partitioner.config"]`` is the
  mapping the user gave for the plugin. Not called for an instance the user passed, which is
  already configured.
* ``metrics() -> dict``: what the partitioner wants to report; ``Producer.metrics()`` includes it.

Every method may be called from several threads at once (every thread that calls ``send()``),
with the GIL held; keep ``partition()`` short, since it runs once per record.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Configurable", "Headers", "NewBatchListener", "Partitioner", "ReportsMetrics",
           "TopicPartitionerFactory"]

#: Record headers as given to ``send()``: (name, value) pairs or a mapping.
Headers = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]


@runtime_checkable
class Partitioner(Protocol):
    """Chooses the partition of each record sent without an explicit one."""

    def partition(self, topic: str, key: bytes | None, value: Any, headers: Headers | None,
                  num_partitions: int, available: tuple[int, ...]) -> int | None:
        """The record's partition, an int in ``[0, num_partitions)``; or None to let the
        built-in sticky partitioner place it (as it places records without a key).

        ``key`` is the serialized key (the bytes written; a str key arrives UTF-8 encoded) or
        None; ``value`` and ``headers`` are as given to ``send()`` (``value`` before
        ``value.serializer``). ``available`` lists, in ascending order, the partitions whose
        leader is known. An exception, or a result outside the range, fails that record with
        :class:`~kengine.errors.PartitionerError`; the producer keeps running."""
        ...


@runtime_checkable
class TopicPartitionerFactory(Protocol):
    """Optional: per-topic partitioner state."""

    def for_topic(self, topic: str) -> Partitioner:
        """The partitioner that serves ``topic`` from now on; called once per topic."""
        ...


@runtime_checkable
class NewBatchListener(Protocol):
    """Optional: hears when a record opens a new batch."""

    def on_new_batch(self, topic: str, partition: int) -> None:
        """A record just opened a new batch of ``topic``/``partition``."""
        ...


@runtime_checkable
class Configurable(Protocol):
    """Optional: reads the producer's settings once, after construction by name."""

    def configure(self, settings: Mapping[str, Any]) -> None:
        """``settings``: every producer setting by its Kafka name, validated. Raise
        :class:`~kengine.errors.ConfigError` for a bad value. A partitioner's own settings are
        declared by its module, as the built-ins declare theirs
        (``kengine.config.contribute(SettingsGroup(...))`` when the module is imported);
        otherwise it reads its options from ``partitioner.config``."""
        ...


@runtime_checkable
class ReportsMetrics(Protocol):
    """Optional: state worth reporting in ``Producer.metrics()``."""

    def metrics(self) -> dict[str, Any]:
        """A JSON-serializable snapshot."""
        ...
