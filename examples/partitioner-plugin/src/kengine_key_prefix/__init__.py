"""An example kengine partitioner plugin: keys sharing a prefix share a partition.

``tenant-7:order-123`` is placed by its prefix ``tenant-7`` (up to the first delimiter, ``:``
unless ``partitioner.config`` says otherwise), hashed as Kafka's Java client hashes keys. Keys
without the delimiter are hashed whole, as the default partitioner does; records without a key
are left to the built-in sticky partitioner. Registered in pyproject.toml under the entry-point
name ``key_prefix`` of the ``kengine.partitioners`` group.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kengine.errors import ConfigError
from kengine_ext import partition_for_key

__all__ = ["KeyPrefixPartitioner"]


class KeyPrefixPartitioner:
    """Partitions by the part of the key before the first delimiter."""

    def __init__(self, delimiter: bytes | str = b":") -> None:
        self._delimiter = self._checked(delimiter)

    @staticmethod
    def _checked(delimiter: Any) -> bytes:
        data = delimiter.encode() if isinstance(delimiter, str) else delimiter
        if not isinstance(data, bytes) or not data:
            raise ConfigError("partitioner.config", {"delimiter": delimiter},
                              "a non-empty str or bytes delimiter")
        return data

    def configure(self, settings: Mapping[str, Any]) -> None:
        options = settings.get("partitioner.config") or {}
        unknown = set(options) - {"delimiter"}
        if unknown:
            raise ConfigError("partitioner.config", options,
                              f"only 'delimiter' for key_prefix, not {sorted(unknown)}")
        if "delimiter" in options:
            self._delimiter = self._checked(options["delimiter"])

    def partition(self, topic: str, key: bytes | None, value: Any, headers: Any,
                  num_partitions: int, available: tuple[int, ...]) -> int | None:
        if key is None:
            return None
        prefix, found, _ = key.partition(self._delimiter)
        return partition_for_key(prefix if found else key, num_partitions)

    def __repr__(self) -> str:
        return f"KeyPrefixPartitioner(delimiter={self._delimiter!r})"
