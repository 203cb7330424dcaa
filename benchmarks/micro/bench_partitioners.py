"""send() cost per record by partitioner, on the send path with metadata from a dict (no broker,
no sender thread), so only the per-record path is measured:

    python -m pytest benchmarks/micro --benchmark-only -p no:cacheprovider -k partition

(on a machine shared with other work, add ``--benchmark-timer=time.process_time``: CPU time
of this process, unaffected by time spent waiting for a core).

Every variant makes the same call, ``send(topic, value, key, None, partition)`` with positional
arguments, 100-byte values and keys ``str(i % 1000)`` encoded (as in the end-to-end runs), so
the differences are the partition choice and where the records land. ``explicit`` (a fixed
partition) is the baseline: ``default keyed`` should cost at most ~20 ns more per record.
Batches filled by one round are drained and completed before the next, untimed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import kengine_ext as k
from kengine.partitioners import CompositeKeyPartitioner, SaltedHotKeyPartitioner

PARTITIONS = 16
RECORDS = 5_000            # per timed round
KEYS = [str(i % 1000).encode() for i in range(RECORDS)]
VALUE = b"v" * 100
GROUP = f"send() per record, {PARTITIONS} partitions, 100 B values"
Record = Callable[..., None]  # the `record` fixture of conftest.py


class PluginPartitioner:
    """A typical Python plugin: Java's hash of the key, through the public C function."""

    def partition(self, topic: str, key: bytes | None, value: Any, headers: Any,
                  num_partitions: int, available: tuple[int, ...]) -> int | None:
        return None if key is None else k.partition_for_key(key, num_partitions)


class Core:
    """The compiled send path and its accumulator, wired as kengine.Producer wires them, with
    topic "t" known up front (no metadata wait) and no sender."""

    def __init__(self, partitioner: Any) -> None:
        self.acc = k.RecordAccumulator(
            k.BufferMemory(256 << 20, max_block_ms=1000),
            k.Partitioning(partitioner, batch_size=16384), linger_ms=5, batch_size=16384,
            max_request_size=1 << 20, compression="none", compression_level=None,
            idempotent=False, transactional=False, wakeup=lambda: None)
        self.acc.update_topic("t", [(0, 0)] * PARTITIONS)
        self.send = k.SendPath(self.acc, await_metadata=self._known_topic).send

    def _known_topic(self, topic: str, partition: int | None = None) -> Any:
        return self.acc.topic_state(topic)

    def reset(self) -> None:
        """Sends nothing: takes every queued batch and completes it, freeing its memory."""
        for b in self.acc.take_all_queued():
            self.acc.complete(b, 0)


VARIANTS: dict[str, tuple[Any, bool, int | None]] = {
    # name: (partitioner, keyed, explicit partition)
    "explicit": (None, True, 3),
    "default keyed": (None, True, None),
    "default unkeyed": (None, False, None),
    "round_robin": ("round_robin", True, None),
    "consistent_random": ("consistent_random", True, None),
    "python plugin": (PluginPartitioner(), True, None),
    "salted_hot_key": (SaltedHotKeyPartitioner([b"7"], 8), True, None),
    "composite": (CompositeKeyPartitioner(["key"]), True, None),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_partitioner_send_cost(benchmark: BenchmarkFixture, record: Record, variant: str) -> None:
    partitioner, keyed, partition = VARIANTS[variant]
    core = Core(partitioner)
    send = core.send
    keys = KEYS if keyed else [None] * RECORDS

    def run() -> None:
        for key in keys:
            send("t", VALUE, key, None, partition)

    benchmark.pedantic(run, setup=core.reset, rounds=60, iterations=1, warmup_rounds=3)
    record(GROUP, variant, f"{RECORDS} records", RECORDS, "records",
           baseline=variant == "explicit")
    stats = benchmark.stats
    if stats is not None:
        benchmark.extra_info["ns/record"] = stats.stats.median / RECORDS * 1e9
    core.reset()
