"""Stand-ins for what kengine.metrics.ProducerMetrics is fed: batches, buffer memory and a
network client, with no producer behind them (tests/unit/test_metrics.py, test_split.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kengine.metrics import ProducerMetrics

__all__ = ["Batch", "Builder", "Client", "Memory", "Partitioner", "make"]


@dataclass
class Builder:
    compression_ratio: float


@dataclass
class Batch:
    topic: str
    record_count: int
    size_bytes: int
    created_ms: int
    builder_or_none: Builder | None = field(default_factory=lambda: Builder(1.0))


@dataclass
class Memory:
    """What ProducerMetrics reads of kengine_ext.BufferMemory."""

    wait_ns: int = 0
    total_bytes: int = 1000
    used_bytes: int = 0
    waiters: int = 0
    exhausted_total: int = 0


@dataclass
class Client:
    """What ProducerMetrics reads of kengine.network.NetworkClient."""

    connections: dict[int, Any] = field(default_factory=dict)
    connections_created: int = 0
    connections_closed: int = 0
    bytes_received: int = 0


class Partitioner:
    def metrics(self) -> dict[str, int]:
        return {"hot-keys": 3}


def make(**kwargs: Any) -> tuple[ProducerMetrics, Memory, Client]:
    memory, client = Memory(), Client()
    return ProducerMetrics("cid", memory, client, **kwargs), memory, client
