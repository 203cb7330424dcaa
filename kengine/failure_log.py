"""The log lines of failed records: one WARNING per topic and kind of error for a burst of
failed batches, with counts, instead of one per batch.

An outage that outlasts ``delivery.timeout.ms`` fails every batch that waited for the broker,
hundreds of them within seconds; a line per batch buried the one thing to know (which topic,
how many records, why). The sender reports each failed batch here (``failed``) and calls
``flush`` once per loop: a topic's failures of one kind are written at the end of the loop
that saw the first of them, then at most once per ``INTERVAL_MS`` while they go on, each line
counting records, batches and partitions since the previous one, with the first error's text
as the example. ``close`` writes what is left. The sender thread alone uses it (no lock).
"""
from __future__ import annotations

import logging

from .errors import DeliveryTimeoutError, KafkaError

__all__ = ["FAILURES_LOGGER", "FailureLog", "INTERVAL_MS"]

#: the logger of these lines, of its own so that a program that reports every failed record
#: itself (``kengine produce``, ``kengine perf``) can leave them out
FAILURES_LOGGER = "kengine.failures"
_log = logging.getLogger(FAILURES_LOGGER)

#: at most one line per (topic, kind of error) in this many ms
INTERVAL_MS = 10_000


class _Pending:
    __slots__ = ("records", "batches", "partitions", "maybe_written", "example")

    def __init__(self, example: KafkaError) -> None:
        self.records = 0
        self.batches = 0
        self.partitions: set[int] = set()
        self.maybe_written = 0      # records whose error says they may be in the log
        self.example = example      # the first error since the last line


class FailureLog:
    def __init__(self, client_id: str) -> None:
        self._client_id = client_id
        #: (topic, error kind) -> failures not written yet
        self._pending: dict[tuple[str, str], _Pending] = {}
        #: (topic, error kind) -> monotonic ms of its last line
        self._written_ms: dict[tuple[str, str], int] = {}

    def failed(self, topic: str, partition: int, records: int, error: KafkaError) -> None:
        key = (topic, _kind(error))
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(error)
        pending.records += records
        pending.batches += 1
        pending.partitions.add(partition)
        if error.maybe_written:
            pending.maybe_written += records

    def flush(self, now_ms: int) -> None:
        """Writes the failures of every key whose last line is INTERVAL_MS old or more."""
        if not self._pending:
            return
        for key in [k for k in self._pending
                    if now_ms - self._written_ms.get(k, now_ms - INTERVAL_MS) >= INTERVAL_MS]:
            self._write(key, self._pending.pop(key))
            self._written_ms[key] = now_ms

    def close(self) -> None:
        for key, pending in self._pending.items():
            self._write(key, pending)
        self._pending.clear()

    def _write(self, key: tuple[str, str], p: _Pending) -> None:
        topic, kind = key
        parts = sorted(p.partitions)
        shown = ", ".join(map(str, parts[:10])) + (f", ... ({len(parts)} in all)"
                                                   if len(parts) > 10 else "")
        maybe = (f"; {p.maybe_written} may have been written (maybe_written)"
                 if p.maybe_written else "")
        _log.warning("[%s] %d record(s) in %d batch(es) for topic %s (partition(s) %s) failed "
                     "with %s%s; the first: %s", self._client_id, p.records, p.batches, topic,
                     shown, kind, maybe, p.example)


def _kind(error: KafkaError) -> str:
    # a delivery timeout is typed after the last broker error (NotEnoughReplicasDeliveryTimeout):
    # one kind whatever that was
    return "DeliveryTimeoutError" if isinstance(error, DeliveryTimeoutError) \
        else type(error).__name__
