"""Partitioner selection. The built-in ``default`` partitioner (Java-exact murmur2 for keyed
records, KIP-794 sticky placement for unkeyed ones) runs inside the Cython core and is
represented by ``None``; anything else is an object with a ``partition()`` method that the core
calls once per record.
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from ..config import ProducerConfig
from ..errors import ConfigError

__all__ = ["Partitioner", "load_partitioner"]


@runtime_checkable
class Partitioner(Protocol):
    """Chooses a record's partition. Return an int in ``[0, num_partitions)``, or None to let
    the built-in sticky partitioner place the record."""

    def partition(self, topic: str, key: Any, value: Any, headers: Any,
                  num_partitions: int) -> int | None: ...


def load_partitioner(spec: Any, config: ProducerConfig | None = None) -> Partitioner | None:
    """Resolves the ``partitioner`` setting: "default" (None: built into the core), an
    instance with ``partition()``, or "module:Class"."""
    if spec is None or spec == "default":
        return None
    if isinstance(spec, str) and ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError("partitioner", spec, f"an importable 'module:Class' ({e})") from None
        spec = obj() if isinstance(obj, type) else obj
    if isinstance(spec, Partitioner):
        return spec
    raise ConfigError("partitioner", spec,
                      "'default', 'module:Class', or an object with a partition() method")
