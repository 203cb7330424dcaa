"""send() and send_many() through an InterceptorChain: the path of producers that have one.

A producer without interceptors never comes here: its send() is the compiled
``SendMethods.send`` found on its type, so the per-record cost does not change (measured in
benchmarks/README.md). A producer constructed with interceptors becomes an instance of a
subclass of its class (``intercepted_class``) whose send() and send_many() run the chain in
Python and then call the compiled methods.

* ``send()``: ``on_send`` on the caller's thread, then the compiled send; a send that raises
  (bad input, closed producer, metadata timeout...) runs ``on_acknowledgement`` with that error
  before raising it; otherwise the record's outcome does, on the sender thread, before the
  caller's ``on_delivery``.
* ``send_many()``: ``on_send`` for each record, in order; records that an interceptor moved to
  another topic or partition go in a call of their own (the result is still indexed like the
  input). ``on_acknowledgement`` runs for each record once every record of the call has its
  outcome (the refused ones included), on the sender thread.
* ``send_arrow()``: the rows become records (read with send_arrow()'s own rules by
  ``kengine_ext.arrow_rows``: a Python object per row, the price of interceptors), then as
  ``send_many()``. A row send_arrow() would refuse (a timestamp before 1970, a negative
  partition) skips ``on_send`` and is acknowledged with its error; the result is indexed by row.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from kengine_ext import arrow_rows

from ..errors import KafkaError
from .base import FailedRecordMetadata, ProducerRecord
from .chain import InterceptorChain

__all__ = ["Acknowledgement", "ArrowRecords", "InterceptedSends", "acknowledge_bulk",
           "acknowledged", "check_callback", "check_columns", "failed_part_way", "groups",
           "intercepted_class", "joined", "on_send_all", "send_through"]


class Acknowledgement:
    """The delivery callback that reports one record's outcome to the chain, then to the
    caller's on_delivery (Java runs the interceptors first too)."""

    __slots__ = ("chain", "fut", "record", "on_delivery")

    def __init__(self, chain: InterceptorChain, fut: Any, record: ProducerRecord,
                 on_delivery: Any) -> None:
        self.chain, self.fut, self.record, self.on_delivery = chain, fut, record, on_delivery

    def __call__(self, error: BaseException | None, metadata: Any) -> None:
        if error is None:
            self.chain.on_acknowledgement(metadata, None, self.record)
        else:
            self.chain.on_acknowledgement(
                FailedRecordMetadata(self.fut.topic, self.fut.partition), error, self.record)
        if self.on_delivery is not None:
            self.on_delivery(error, metadata)


def check_callback(on_delivery: Any) -> None:
    if on_delivery is not None and not callable(on_delivery):
        raise TypeError(f"on_delivery must be a callable(error, metadata) or None, not "
                        f"{type(on_delivery).__name__} ({on_delivery!r}); nothing was sent")


def check_columns(values: Sequence[Any], keys: Sequence[Any] | None,
                  headers: Sequence[Any] | None, timestamps: Sequence[Any] | None) -> int:
    """send_many()'s check of its columns' lengths (the compiled call's own words); the
    record count."""
    n = len(values)
    for name, seq in (("keys", keys), ("headers", headers), ("timestamps", timestamps)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} values")
    return n


def on_send_all(chain: InterceptorChain, topic: str, values: Sequence[Any],
                keys: Sequence[Any] | None, headers: Sequence[Any] | None,
                timestamps: Sequence[Any] | None, partition: int | None
                ) -> list[ProducerRecord]:
    """send_many()'s records through on_send, after the call's own checks of its columns."""
    n = check_columns(values, keys, headers, timestamps)
    return [chain.on_send(ProducerRecord(
        topic, values[i], None if keys is None else keys[i],
        None if headers is None else headers[i], partition,
        None if timestamps is None else timestamps[i], True)) for i in range(n)]


class ArrowRecords:
    """send_arrow()'s rows through on_send: ``records`` (the rows not refused, in order),
    ``rows`` (their row numbers, None when every row is there) and ``refused`` ({row: error},
    acknowledged already)."""

    def __init__(self, chain: InterceptorChain, topic: str, data: Any, value: str,
                 key: str | None, headers: Any, timestamp: str | None,
                 partition: int | str | None) -> None:
        column = partition if isinstance(partition, str) else None
        explicit = partition if isinstance(partition, int) else None
        values, keys, hdrs, stamps, parts, refused = arrow_rows(
            data, value, key, headers, timestamp, column)
        self.topic = topic
        self.row_count = len(values)
        self.refused: dict[int, KafkaError] = refused
        self.records: list[ProducerRecord] = []
        self.rows: list[int] | None = [] if refused else None
        for i in range(self.row_count):
            record = ProducerRecord(
                topic, values[i], None if keys is None else keys[i],
                None if hdrs is None else hdrs[i],
                explicit if parts is None else parts[i],
                None if stamps is None else stamps[i], True)
            error = refused.get(i)
            if error is not None:
                chain.on_send_error(record, error)   # never sent: acknowledged with its error
                continue
            self.records.append(chain.on_send(record))
            if self.rows is not None:
                self.rows.append(i)

    def result(self, records_bulk: Any, parts: list[tuple[Any, Any]]) -> Any:
        """The call's outcome indexed by row, from the calls' outcomes over ``records``."""
        if self.rows is None:
            return records_bulk
        from ..aio.bulk import ResumedBulkFuture
        rows = self.rows
        by_row: list[tuple[Any, Sequence[int] | None]] = [
            (bulk, rows if index is None else [rows[j] for j in index]) for bulk, index in parts]
        return ResumedBulkFuture(self.topic, self.row_count, by_row, dict(self.refused))


def _columns(records: list[ProducerRecord]) -> tuple[Any, ...]:
    values = [r.value for r in records]
    keys = [r.key for r in records]
    headers = [r.headers for r in records]
    stamps = [r.timestamp_ms for r in records]
    if any(t is not None for t in stamps):
        now = int(time.time() * 1000)   # a column is all timestamps or none
        stamps = [now if t is None else t for t in stamps]
    return (values, keys if any(k is not None for k in keys) else None,
            headers if any(headers) else None,
            stamps if stamps and stamps[0] is not None else None)


def groups(topic: str, partition: int | None, records: list[ProducerRecord]
           ) -> list[tuple[str, int | None, list[int] | None, tuple[Any, ...]]]:
    """(topic, partition, input indices or None for all, columns) of each send_many() call the
    records need: one when every record kept the call's topic and partition (the usual case),
    else one per (topic, partition) an interceptor chose."""
    by: dict[tuple[str, Any], list[int]] = {}
    for i, r in enumerate(records):
        by.setdefault((r.topic, r.partition), []).append(i)
    if len(by) <= 1:
        t, p = next(iter(by), (topic, partition))
        return [(t, p, None, _columns(records))]
    return [(t, p, index, _columns([records[i] for i in index]))
            for (t, p), index in by.items()]


def joined(topic: str, records: list[ProducerRecord], parts: list[tuple[Any, Any]]) -> Any:
    """One outcome indexed like the input, from the calls' outcomes."""
    if len(parts) == 1 and parts[0][1] is None:
        return parts[0][0]
    from ..aio.bulk import ResumedBulkFuture  # joins outcomes of several calls by input index
    return ResumedBulkFuture(topic, len(records), parts, {})


def failed_part_way(chain: InterceptorChain, records: list[ProducerRecord],
                    parts: list[tuple[Any, Any]], error: BaseException,
                    done: list[Any]) -> None:
    """A send_many() call of the group raised: the groups sent before it are acknowledged by
    their outcome, every other record with the error (the call's hooks are not called: it
    raised)."""
    sent: set[int] = set()
    for bulk, index in parts:
        acknowledge_bulk(chain, [records[i] for i in index], bulk)
        sent.update(index)
    for i, r in enumerate(records):
        if i not in sent:
            chain.on_send_error(r, error)
    if done:   # their spans must end: with the error, as if every record failed with it
        from ..aio.bulk import ResumedBulkResult
        errors: dict[int, Any] = {i: error for i in range(len(records))}
        chain.send_many_done(done, ResumedBulkResult(
            records[0].topic if records else "", len(records), errors, []))


def acknowledge_bulk(chain: InterceptorChain, records: list[ProducerRecord], bulk: Any,
                     done: list[Any] | None = None) -> None:
    """on_acknowledgement for every record of a send_many(), once all have their outcome;
    then the call's on_send_many hooks (``done``)."""
    if chain.acknowledges or done:
        bulk.add_done_callback(functools.partial(acknowledged, chain, records, done))


def acknowledged(chain: InterceptorChain, records: list[ProducerRecord],
                  done: list[Any] | None, result: Any, *,
                  index: Sequence[int] | None = None) -> None:
    """``index``: each record's index in the call, when ``records`` are only some of its
    records (the traced ones of TracedSends.send_many)."""
    errors = result.errors
    metadata = result.metadata()
    for i, r in zip(range(len(records)) if index is None else index, records, strict=True):
        err = errors.get(i)
        if err is None:
            chain.on_acknowledgement(metadata[i], None, r)
        else:
            chain.on_acknowledgement(FailedRecordMetadata(
                r.topic, r.partition if isinstance(r.partition, int) else -1), err, r)
    if done:
        chain.send_many_done(done, result)


def send_through(chain: InterceptorChain, send: Any, topic: str, value: Any, key: Any,
                 headers: Any, partition: int | None, timestamp_ms: int | None,
                 on_delivery: Any) -> Any:
    """One record through the chain's on_send, then ``send`` (the compiled one), with its
    acknowledgement through the chain."""
    record = chain.on_send(ProducerRecord(topic, value, key, headers, partition, timestamp_ms))
    if not chain.acknowledges:   # on_send only (mask_fields, audit_headers): no callback
        return send(record.topic, record.value, record.key, record.headers or None,
                    record.partition, record.timestamp_ms, on_delivery)
    try:
        check_callback(on_delivery)
        fut = send(record.topic, record.value, record.key, record.headers or None,
                   record.partition, record.timestamp_ms)
    except Exception as e:
        chain.on_send_error(record, e)
        raise
    fut.add_callback(Acknowledgement(chain, fut, record, on_delivery))
    return fut


class InterceptedSends:
    """send() and send_many() of a producer with interceptors (``_interceptors``)."""

    _interceptors: InterceptorChain

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
             partition: int | None = None, timestamp_ms: int | None = None,
             on_delivery: Any = None) -> Any:
        return send_through(self._interceptors, super().send,  # type: ignore[misc]
                            topic, value, key, headers, partition, timestamp_ms, on_delivery)

    def send_many(self, topic: str, values: Sequence[Any], keys: Sequence[Any] | None = None,
                  headers: Sequence[Any] | None = None, timestamps: Sequence[int] | None = None,
                  partition: int | None = None) -> Any:
        records = on_send_all(self._interceptors, topic, values, keys, headers, timestamps,
                              partition)
        return self._send_records(topic, partition, records)[0]


    def send_arrow(self, topic: str, data: Any, value: str, key: str | None = None,
                   headers: Any = None, timestamp: str | None = None,
                   partition: int | str | None = None) -> Any:
        rows = ArrowRecords(self._interceptors, topic, data, value, key, headers, timestamp,
                            partition)
        explicit = partition if isinstance(partition, int) else None
        return rows.result(*self._send_records(topic, explicit, rows.records))

    def _send_records(self, topic: str, partition: int | None, records: list[ProducerRecord]
                      ) -> tuple[Any, list[tuple[Any, Any]]]:
        """Records that went through on_send, in send_many() calls of one (topic, partition)
        each; returns the outcome indexed like ``records`` and the calls' (outcome, indices)."""
        chain = self._interceptors
        done = chain.on_send_many(records)
        parts: list[tuple[Any, Any]] = []
        try:
            for t, p, index, columns in groups(topic, partition, records):
                parts.append((super().send_many(t, *columns, p), index))  # type: ignore[misc]
        except Exception as e:
            failed_part_way(chain, records, parts, e, done)
            raise
        bulk = joined(topic, records, parts)
        acknowledge_bulk(chain, records, bulk, done)
        return bulk, parts


#: (class, mixin) -> the intercepted subclass, made once (a user thread constructing a producer)
_CLASSES: dict[tuple[type, type], type] = {}


def intercepted_class(cls: type, mixin: type = InterceptedSends) -> type:
    """``cls`` with the intercepted send() and send_many() of ``mixin`` (a subclass, so that
    isinstance() and the caller's own subclass methods keep working)."""
    found = _CLASSES.get((cls, mixin))
    if found is None:
        found = _CLASSES.setdefault((cls, mixin), type(cls.__name__, (mixin, cls), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__}))
    return found
