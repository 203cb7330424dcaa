"""The outcome of an asyncio ``send_many()`` that had to wait for buffer.memory part-way.

The core appends what fits and refuses the rest with BufferFullError; the asyncio producer
waits for memory and sends those records again, in their input order (so each partition
keeps the order of its records). ``ResumedBulkFuture`` joins the calls' BulkFutures back into
one outcome indexed like the caller's input, with the same attributes as ``BulkResult``.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

from kengine.errors import BufferFullError, KafkaError

__all__ = ["ResumedBulkFuture", "ResumedBulkResult"]


class ResumedBulkResult:
    """As ``kengine.BulkResult``: ``errors`` maps input indices to errors (failed records
    only), ``ok``, ``failed_count``, ``metadata()``."""

    def __init__(self, topic: str, record_count: int, errors: dict[int, KafkaError],
                 parts: list[tuple[Any, Sequence[int] | None]]) -> None:
        self.topic = topic
        self.record_count = record_count
        self.errors = dict(sorted(errors.items()))
        self._parts = parts   # [(BulkResult, input index of each of its records or None)]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def failed_count(self) -> int:
        return len(self.errors)

    def metadata(self) -> list[Any]:
        """RecordMetadata (None where the record failed) for every record, in input order."""
        out: list[Any] = [None] * self.record_count
        for result, index in self._parts:
            for i, md in enumerate(result.metadata()):
                if md is not None:
                    out[i if index is None else index[i]] = md
        return out

    def __repr__(self) -> str:
        return (f"BulkResult({self.topic!r}, records={self.record_count}, "
                f"failed={len(self.errors)})")


class ResumedBulkFuture:
    """Awaitable like ``BulkFuture``; ``await`` gives a ResumedBulkResult. ``refused``: input
    index -> error for records given up on without a retry (max.block.ms ran out)."""

    def __init__(self, topic: str, record_count: int,
                 parts: list[tuple[Any, Sequence[int] | None]],
                 refused: dict[int, KafkaError]) -> None:
        self.topic = topic
        self.record_count = record_count
        self._parts = parts
        self._refused = refused

    def done(self) -> bool:
        return all(bulk.done() for bulk, _ in self._parts)

    def add_done_callback(self, fn: Callable[[ResumedBulkResult], object]) -> None:
        """fn(ResumedBulkResult) once every part has its outcome (on the sender thread that
        settled the last one, or now), as ``BulkFuture.add_done_callback``."""
        if not self._parts:   # every record refused before any call: the outcome is known
            fn(self._combine([]))
            return
        results: list[Any] = [None] * len(self._parts)
        remaining = [len(self._parts)]
        lock = threading.Lock()   # parts may settle on different threads' calls

        def part_done(k: int, result: Any) -> None:
            with lock:
                results[k] = result
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                fn(self._combine(results))
        for k, (bulk, _) in enumerate(self._parts):
            bulk.add_done_callback(functools.partial(part_done, k))

    def _combine(self, results: list[Any]) -> ResumedBulkResult:
        errors: dict[int, KafkaError] = {}
        kept: list[tuple[Any, Sequence[int] | None]] = []
        for (_, index), result in zip(self._parts, results, strict=True):
            kept.append((result, index))
            for i, err in result.errors.items():
                if isinstance(err, BufferFullError):
                    continue   # sent again by a later part (or listed in _refused)
                errors[i if index is None else index[i]] = err
        errors.update(self._refused)
        return ResumedBulkResult(self.topic, self.record_count, errors, kept)

    def result(self, timeout: float | None = None) -> ResumedBulkResult:
        """Blocks (not for the event loop: for threads) like BulkFuture.result()."""
        return self._combine([bulk.result(timeout) for bulk, _ in self._parts])

    def exception(self, timeout: float | None = None) -> KafkaError | None:
        return next(iter(self.result(timeout).errors.values()), None)

    def __await__(self) -> Generator[Any, None, ResumedBulkResult]:
        results = []
        for bulk, _ in self._parts:
            results.append((yield from bulk.__await__()))
        return self._combine(results)

    def __repr__(self) -> str:
        return (f"BulkFuture({self.topic!r}, records={self.record_count}, "
                f"resumed in {len(self._parts)} calls, done={self.done()})")
