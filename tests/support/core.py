"""The compiled core without brokers: kengine_ext's parts wired as kengine.Producer wires them
(BufferMemory, Partitioning, RecordAccumulator, SendPath), with plain callables for the
up-calls, so unit tests and micro-benchmarks drive the send path and the accumulator directly.

    core = Core({"t": 3})                  # topic "t", 3 partitions, leaders 0 and 1 in turn
    core.send("t", b"v", key=b"k")         # the send path
    core.acc.drain({0, 1}, 1 << 20, now)   # the sender's side
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kengine_ext as k
from kengine.errors import KafkaError, KafkaTimeoutError

__all__ = ["Core", "DEFAULTS", "drain_all"]

#: What build_core() passes unless told otherwise: small batches, no linger, bytes in.
DEFAULTS: dict[str, Any] = dict(
    linger_ms=5, batch_size=1024, max_request_size=1 << 20, buffer_memory=1 << 20,
    compression="none", compression_level=None, key_serializer="bytes",
    value_serializer="bytes", partitioner=None, ignore_keys=False, adaptive_partitioning=True,
    availability_timeout_ms=0, idempotent=False, transactional=False, max_block_ms=200,
    client_id="")


class Core:
    """A send path and its accumulator, memory and partitioner. ``topics`` (default
    ``{"t": 3}``) maps each topic to its partition count (leaders 0 and 1 in turn) or to its
    leaders, one per partition (-1: none). Metadata of other topics is never known: send() to
    them raises KafkaTimeoutError (or what ``await_metadata`` does). ``wakeups`` counts the
    sender wake-ups asked for."""

    def __init__(self, topics: Mapping[str, int | Sequence[int]] | None = None, *,
                 await_metadata: Callable[..., Any] | None = None,
                 transaction_refusal: Callable[[], KafkaError | None] | None = None,
                 records_refused: Callable[[str, int, int, KafkaError], object] | None = None,
                 **settings: Any) -> None:
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown core settings {sorted(unknown)}")
        s = {**DEFAULTS, **settings}
        self.wakeups = 0
        self.memory = k.BufferMemory(s["buffer_memory"], max_block_ms=s["max_block_ms"])
        self.partitioning = k.Partitioning(
            s["partitioner"], ignore_keys=s["ignore_keys"],
            adaptive_partitioning=s["adaptive_partitioning"],
            availability_timeout_ms=s["availability_timeout_ms"], batch_size=s["batch_size"])
        self.acc = k.RecordAccumulator(
            self.memory, self.partitioning, linger_ms=s["linger_ms"],
            batch_size=s["batch_size"], max_request_size=s["max_request_size"],
            compression=s["compression"], compression_level=s["compression_level"],
            idempotent=s["idempotent"], transactional=s["transactional"], wakeup=self._wake,
            client_id=s["client_id"])
        self.path = k.SendPath(
            self.acc, key_serializer=s["key_serializer"], value_serializer=s["value_serializer"],
            await_metadata=await_metadata or self._known_topic,
            transaction_refusal=transaction_refusal, records_refused=records_refused)
        self.send = self.path.send
        self.send_many = self.path.send_many
        for topic, spec in ({"t": 3} if topics is None else topics).items():
            leaders = [i % 2 for i in range(spec)] if isinstance(spec, int) else list(spec)
            self.acc.update_topic(topic, [(leader, 0) for leader in leaders])

    def _wake(self) -> None:
        self.wakeups += 1

    def _known_topic(self, topic: str, partition: int | None = None) -> k.TopicState:
        state = self.acc.topic_state(topic)
        if state is None:
            raise KafkaTimeoutError(f"topic {topic!r} not present in metadata")
        return state

    def complete_all_queued(self) -> None:
        """A stub sender: takes every queued batch and completes it (offset 0), freeing its
        memory; nothing is sent."""
        for b in self.acc.take_all_queued():
            self.acc.complete(b, 0)




def drain_all(core: Core, now: int | None = None) -> list[k.ProducerBatch]:
    """Drains every sendable batch led by node 0 or 1 (linger long past), in drain order, as
    close() does: a partition's open batch goes even while its earlier batch is in flight
    (the sender otherwise holds it until that batch is answered). The batches are in
    flight, not completed."""
    now = k.monotonic_ms() + 10_000 if now is None else now
    out: list[k.ProducerBatch] = []
    core.acc.set_draining_all(True)
    try:
        while True:
            got = core.acc.drain({0, 1}, 1 << 30, now)
            if not got:
                return out
            for batches in got.values():
                out.extend(batches)
    finally:
        core.acc.set_draining_all(False)
