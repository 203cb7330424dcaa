"""What an interceptor is: the record it sees and rewrites, and the methods the producer calls.

An interceptor is any object with (some of) these methods, Java's ``ProducerInterceptor``:

``on_send(record: ProducerRecord) -> ProducerRecord``
    called on the thread that called ``send()`` / ``send_many()``, before the record is
    serialized or partitioned; returns the record to send (the same one, changed or not, or a
    new one): topic, key, value, headers, partition and timestamp may all be rewritten.
``on_acknowledgement(metadata, error)``
    called once per record when its outcome is known: ``error`` None and ``metadata`` a
    ``RecordMetadata`` when it was written, else ``error`` and a ``FailedRecordMetadata``
    (topic, and the partition when one was chosen). Runs on the producer's sender thread, or
    on the sending thread when the record failed before reaching a batch: keep it short.
``close()``
    called once by ``Producer.close()``.

Beyond Java's interface (each optional too):

``on_acknowledgement(metadata, error, record)``
    a third parameter gets the ProducerRecord that ``on_send`` returned, so that state kept in
    ``record.state`` (a dict, keyed by the interceptor) reaches the acknowledgement: a tracing
    span, a timer.
``on_send_many(records) -> callable | None``
    called once per ``send_many()`` after every record went through ``on_send`` (their
    ``batched`` is True); a callable returned is called with the call's BulkResult once every
    record has its outcome (a span for the whole call, for one).

A missing method is skipped. ``configure(settings)``, when present, is called once after
construction with the producer's settings (as partitioners get them).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["FailedRecordMetadata", "Headers", "ProducerInterceptor", "ProducerRecord"]

#: Header pairs as the producer accepts them.
Headers = Sequence[tuple[str, "bytes | str | None"]] | Mapping[str, "bytes | str | None"]


class ProducerRecord:
    """One record on its way through the interceptors. ``headers`` is a list of
    ``(str, bytes | str | None)`` pairs (a copy of what the caller gave, so appending to it
    never changes the caller's list); ``partition`` and ``timestamp_ms`` None mean chosen by
    the producer. ``batched``: the record is one of a ``send_many()`` call. ``state``: None, or
    a dict where interceptors keep what their acknowledgement needs, each under its own key."""

    __slots__ = ("topic", "value", "key", "headers", "partition", "timestamp_ms", "batched",
                 "state")

    def __init__(self, topic: str, value: Any = None, key: Any = None,
                 headers: Headers | None = None, partition: int | None = None,
                 timestamp_ms: int | None = None, batched: bool = False) -> None:
        self.batched = batched
        self.state: dict[Any, Any] | None = None
        self.topic = topic
        self.value = value
        self.key = key
        if headers is None:
            self.headers: list[tuple[str, Any]] = []
        elif isinstance(headers, Mapping):
            self.headers = list(headers.items())
        else:
            self.headers = list(headers)
        self.partition = partition
        self.timestamp_ms = timestamp_ms

    def header(self, name: str) -> Any:
        """The value of the last header called ``name``, or None."""
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None

    def __repr__(self) -> str:
        return (f"ProducerRecord(topic={self.topic!r}, key={self.key!r}, "
                f"partition={self.partition}, headers={len(self.headers)})")


@dataclass(frozen=True)
class FailedRecordMetadata:
    """What ``on_acknowledgement`` gets for a record that was not written (Java's metadata of
    a failed record): its topic, and its partition (-1 when none was chosen yet)."""

    topic: str
    partition: int = -1
    offset: int = -1
    timestamp: int = -1


@runtime_checkable
class ProducerInterceptor(Protocol):
    """The methods an interceptor may have (each is optional; see the module's text)."""

    def on_send(self, record: ProducerRecord) -> ProducerRecord: ...

    def on_acknowledgement(self, metadata: Any, error: BaseException | None) -> None: ...

    def close(self) -> None: ...
