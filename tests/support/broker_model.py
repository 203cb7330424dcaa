"""What a Kafka partition leader does with an idempotent producer's batches, as Kafka 4.x decides
it, for the fake brokers of the tests (tests/support/fake_broker.py over sockets,
tests/support/sim_cluster.py in process).

Per partition, per producer id, the leader remembers the epoch, the last sequence and the last
five batches it appended (Kafka's ProducerStateEntry, NUM_BATCHES_TO_RETAIN = 5). For a batch:

1. one of those five, same epoch and same sequence range: a duplicate, answered NONE with the
   original offset and nothing appended (UnifiedLog.analyzeAndValidateProducerState);
2. an older epoch: INVALID_PRODUCER_EPOCH;
3. a producer the leader has no state for: any first sequence is accepted
   (ProducerAppendInfo.checkSequence; this is what makes pipelining behind a producer's first
   batch unsafe);
4. a newer epoch: only sequence 0 (the five remembered batches are forgotten);
5. the same epoch: only the sequence after the last one (OUT_OF_ORDER_SEQUENCE_NUMBER
   otherwise).

Sequences wrap from INT32_MAX to 0. Kafka never answers DUPLICATE_SEQUENCE_NUMBER to a produce
request; :data:`DUPLICATE_SEQUENCE_NUMBER` is here for brokers that do, when asked to.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BATCHES_REMEMBERED", "DUPLICATE_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH",
           "OUT_OF_ORDER_SEQUENCE_NUMBER", "PartitionLog", "ProducerState", "StoredRecord"]

BATCHES_REMEMBERED = 5
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46
INVALID_PRODUCER_EPOCH = 47
_INT32_MAX = 0x7FFFFFFF


@dataclass(frozen=True)
class StoredRecord:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int
    producer_id: int
    base_sequence: int
    epoch: int = -1
    sequence: int = -1          # the record's own sequence: base + its offset delta


@dataclass
class ProducerState:
    epoch: int
    last_sequence: int
    #: (first sequence, last sequence, first offset) of the last batches appended, oldest first
    batches: deque[tuple[int, int, int]] = field(
        default_factory=lambda: deque(maxlen=BATCHES_REMEMBERED))


def _last_sequence(first: int, count: int) -> int:
    return (first + count - 1) & _INT32_MAX


def _follows(last: int, first: int) -> bool:
    return first == ((last + 1) & _INT32_MAX)


class PartitionLog:
    """One partition's log and the producer state its leader keeps. Not thread-safe: the
    caller holds its own lock."""

    def __init__(self) -> None:
        self.records: list[StoredRecord] = []
        self.producers: dict[int, ProducerState] = {}

    def check(self, producer_id: int, epoch: int, first: int, count: int) -> tuple[int, int | None]:
        """Kafka's decision for a batch: (error code, None) to refuse it, (0, first offset) for
        a duplicate of a remembered batch, (0, None) to append it."""
        if producer_id < 0:
            return 0, None
        last = _last_sequence(first, count)
        state = self.producers.get(producer_id)
        if state is None:
            return 0, None                                    # 3: any first sequence
        if epoch == state.epoch:
            for seen_first, seen_last, offset in state.batches:
                if (seen_first, seen_last) == (first, last):
                    return 0, offset                          # 1: a duplicate
        if epoch < state.epoch:
            return INVALID_PRODUCER_EPOCH, None               # 2
        if epoch > state.epoch:
            return (0, None) if first == 0 else (OUT_OF_ORDER_SEQUENCE_NUMBER, None)   # 4
        if not _follows(state.last_sequence, first):
            return OUT_OF_ORDER_SEQUENCE_NUMBER, None         # 5
        return 0, None

    def append(self, batch: Any) -> tuple[int, int]:
        """Checks and appends one decoded batch (kengine_ext.decode_batches): (error code, base
        offset), the base offset being the original one for a duplicate and -1 when refused."""
        count = len(batch.records)
        code, duplicate_at = self.check(batch.producer_id, batch.producer_epoch,
                                        batch.base_sequence, count)
        if code:
            return code, -1
        if duplicate_at is not None:
            return 0, duplicate_at
        base = len(self.records)
        for r in batch.records:
            delta = r.offset - batch.base_offset
            self.records.append(StoredRecord(
                r.key, r.value, list(r.headers), r.timestamp, batch.producer_id,
                batch.base_sequence, batch.producer_epoch,
                (batch.base_sequence + delta) & _INT32_MAX if batch.base_sequence >= 0 else -1))
        if batch.producer_id >= 0:
            state = self.producers.get(batch.producer_id)
            if state is None or state.epoch != batch.producer_epoch:
                state = self.producers[batch.producer_id] = ProducerState(
                    batch.producer_epoch, -1)
            state.last_sequence = _last_sequence(batch.base_sequence, count)
            state.batches.append((batch.base_sequence, state.last_sequence, base))
        return 0, base
