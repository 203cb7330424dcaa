"""AIOProducer's send(), send_many() and send_arrow() through the interceptors, for
producers that have them.

The inner synchronous producer does not run them (``_intercepts_sends = False``): an asyncio
send may try its append several times (buffer.memory, metadata, a serializer's registry
lookup), and on_send must run once per record, and on_acknowledgement once, with the final
outcome. An ``AIOProducer`` constructed with interceptors becomes an instance of a subclass
with ``InterceptedAIOSends``; one without keeps AIOProducer's own methods (nothing per record).
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from kengine_ext import AsyncSendMethods

from ..interceptors.base import ProducerRecord
from ..interceptors.intercepted import (
    Acknowledgement,
    ArrowRecords,
    acknowledge_bulk,
    check_callback,
    check_columns,
    failed_part_way,
    groups,
    joined,
    on_send_all,
)
from ..interceptors.traced import SampledCall

__all__ = ["InterceptedAIOSends", "TracedAIOSends"]


class InterceptedAIOSends:
    """send() and send_many() of an AIOProducer with interceptors (mixed in before it)."""

    _producer: Any

    async def send(self, topic: str, value: Any = None, key: Any = None,
                   headers: Any = None, partition: int | None = None,
                   timestamp_ms: int | None = None, on_delivery: Any = None) -> Any:
        return await self._send_through(super().send, None,  # type: ignore[misc]
                                        topic, value, key, headers, partition, timestamp_ms,
                                        on_delivery)

    async def _traced_send(self, trace_id: int | None, topic: str, value: Any, key: Any,
                           headers: Any, partition: int | None, timestamp_ms: int | None,
                           on_delivery: Any) -> Any:
        """The compiled send()'s up-call for a record the SDK traces (TracedAIOSends):
        through the chain, then the send without the decision in C."""
        return await self._send_through(self.send_untraced,  # type: ignore[attr-defined]
                                        trace_id, topic, value, key, headers, partition,
                                        timestamp_ms, on_delivery)

    async def _send_through(self, send: Any, trace_id: int | None, topic: str, value: Any,
                            key: Any, headers: Any, partition: int | None,
                            timestamp_ms: int | None, on_delivery: Any) -> Any:
        chain = self._producer._interceptors
        assert chain is not None
        if self._preparers and topic not in self._prepared:   # type: ignore[attr-defined]
            # interceptors may ask the serializers (audit_headers: the schema id): let them
            # reach the registry off the loop first, as a send does
            await self._prepare_serializers(topic)   # type: ignore[attr-defined]
        if trace_id is not None:   # the id drawn in C, for the span on_send starts now
            tracing = chain.interceptors[0]
            tracing.hand_over(trace_id)
            try:
                record = chain.on_send(ProducerRecord(topic, value, key, headers, partition,
                                                      timestamp_ms))
            finally:
                tracing.hand_over(None)
        else:
            record = chain.on_send(ProducerRecord(topic, value, key, headers, partition,
                                                  timestamp_ms))
        try:
            check_callback(on_delivery)
            fut = await send(record.topic, record.value, record.key, record.headers or None,
                             record.partition, record.timestamp_ms)
        except (Exception, asyncio.CancelledError) as e:   # cancelled before the append
            chain.on_send_error(record, e)
            raise
        # the chain on the sender thread; the caller's on_delivery on the loop, after it
        if chain.acknowledges:
            fut.add_callback(Acknowledgement(chain, fut, record, None))
        if on_delivery is not None:
            self._on_loop(fut, on_delivery)  # type: ignore[attr-defined]
        return fut

    async def send_many(self, topic: str, values: Sequence[Any],
                        keys: Sequence[Any] | None = None,
                        headers: Sequence[Any] | None = None,
                        timestamps: Sequence[int] | None = None,
                        partition: int | None = None) -> Any:
        chain = self._producer._interceptors
        assert chain is not None
        records = on_send_all(chain, topic, values, keys, headers, timestamps, partition)
        return (await self._send_records(topic, partition, records))[0]

    async def send_arrow(self, topic: str, data: Any, value: str, key: str | None = None,
                         headers: Any = None, timestamp: str | None = None,
                         partition: int | str | None = None) -> Any:
        chain = self._producer._interceptors
        assert chain is not None
        rows = ArrowRecords(chain, topic, data, value, key, headers, timestamp, partition)
        explicit = partition if isinstance(partition, int) else None
        return rows.result(*await self._send_records(topic, explicit, rows.records))

    async def _send_records(self, topic: str, partition: int | None,
                            records: list[ProducerRecord]) -> tuple[Any, list[tuple[Any, Any]]]:
        """As the synchronous producer's: the records in calls of one (topic, partition)."""
        chain = self._producer._interceptors
        assert chain is not None
        done = chain.on_send_many(records)
        parts: list[tuple[Any, Any]] = []
        try:   # the groups one after the other, each waiting for memory on the loop
            for t, p, index, columns in groups(topic, partition, records):
                bulk = await super().send_many(t, *columns, p)  # type: ignore[misc]
                parts.append((bulk, index))
        except (Exception, asyncio.CancelledError) as e:
            failed_part_way(chain, records, parts, e, done)
            raise
        bulk = joined(topic, records, parts)
        acknowledge_bulk(chain, records, bulk, done)
        return bulk, parts


class TracedAIOSends(InterceptedAIOSends):
    """send() and send_many() of an AIOProducer whose only interceptor is ``otel`` with a
    sampler decided in C (kengine/otel/fast_sampling.py): the compiled send(), which adds an
    unsampled record's traceparent itself and calls ``_traced_send()`` for the others; a
    send_many() whose decisions are one C loop, only the sampled records going through the
    chain. send_arrow() is InterceptedAIOSends'."""

    send = AsyncSendMethods.send

    async def send_many(self, topic: str, values: Sequence[Any],
                        keys: Sequence[Any] | None = None,
                        headers: Sequence[Any] | None = None,
                        timestamps: Sequence[int] | None = None,
                        partition: int | None = None) -> Any:
        n = check_columns(values, keys, headers, timestamps)
        all_headers, sampled = self._trace.decide_many(  # type: ignore[attr-defined]
            headers, n, self._send_path.headers_may_be_encoded())  # type: ignore[attr-defined]
        untraced = super(InterceptedAIOSends, self).send_many  # type: ignore[misc]
        if not sampled:
            return await untraced(topic, values, keys, all_headers, timestamps, partition)
        call = SampledCall(self._producer._interceptors, topic, values, keys, all_headers,
                           timestamps, partition, sampled)
        try:
            bulk = await untraced(topic, values, keys, all_headers, timestamps, partition)
        except (Exception, asyncio.CancelledError) as e:   # cancelled before the append
            call.failed(e)
            raise
        return call.sent(bulk)
