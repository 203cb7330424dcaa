"""The sends of a producer traced by the ``otel`` interceptor alone, with a sampler whose
decision send() makes in C (kengine/otel/fast_sampling.py, kengine_ext/trace_stamp.pyx).

* ``TracedSends``: the producer's send() stays the compiled one, which writes an unsampled
  record's traceparent itself and calls ``send_sampled()`` (the send path's up-call) for a
  record the SDK traces; send_many() takes every decision of the call from one C loop.
* ``SampledCall``: what a send_many() call (of Producer or AIOProducer) does with the records
  the SDK traces: on_send with the trace id drawn in C handed over, the call's send span,
  acknowledgements by index, every span ended when the call raises.

Nothing here imports OpenTelemetry: Producer imports it whether tracing is installed or not.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from kengine_ext import SendMethods

from .base import ProducerRecord
from .chain import InterceptorChain
from .intercepted import InterceptedSends, acknowledged, check_columns, send_through

__all__ = ["SampledCall", "TracedSends", "send_sampled"]


class TracedSends(InterceptedSends):
    """send() and send_many() of a producer whose only interceptor is ``otel`` with a
    sampler decided in C (kengine/otel/fast_sampling.py; the TraceStamp is its send path's
    ``_trace``). send() is the compiled one, which writes an unsampled record's traceparent
    itself and calls ``send_sampled()`` for the others; send_many() has the decisions made in
    one C loop, and only the sampled records become ProducerRecords for the chain.
    send_arrow() is InterceptedSends'."""

    send = SendMethods.send
    _send_path: Any

    def send_many(self, topic: str, values: Sequence[Any], keys: Sequence[Any] | None = None,
                  headers: Sequence[Any] | None = None, timestamps: Sequence[int] | None = None,
                  partition: int | None = None) -> Any:
        n = check_columns(values, keys, headers, timestamps)
        all_headers, sampled = self._send_path._trace.decide_many(
            headers, n, self._send_path.headers_may_be_encoded())
        if not sampled:
            return SendMethods.send_many(self, topic, values, keys, all_headers,  # type: ignore[arg-type]
                                         timestamps, partition)
        call = SampledCall(self._interceptors, topic, values, keys, all_headers, timestamps,
                           partition, sampled)
        try:
            bulk = SendMethods.send_many(self, topic, values, keys, all_headers,  # type: ignore[arg-type]
                                         timestamps, partition)
        except Exception as e:
            call.failed(e)
            raise
        return call.sent(bulk)


class SampledCall:
    """The records of one send_many() call (TracedSends, TracedAIOSends) that the SDK traces,
    once the call's decisions were made in C: they go through the chain (their create spans,
    with the trace id drawn in C handed over) and their headers replace theirs in
    ``all_headers``; the call's send span counts every record and links them. The caller then
    sends the whole call and hands its outcome to ``sent()``, or its exception to
    ``failed()``."""

    def __init__(self, chain: InterceptorChain, topic: str, values: Sequence[Any],
                 keys: Sequence[Any] | None, all_headers: list[Any],
                 timestamps: Sequence[Any] | None, partition: int | None,
                 sampled: list[tuple[int, int | None]]) -> None:
        self.chain, self.topic, self.count = chain, topic, len(values)
        self.index = [i for i, _ in sampled]
        self.records: list[ProducerRecord] = []
        tracing = chain.interceptors[0]
        for i, trace_id in sampled:
            tracing.hand_over(trace_id)
            try:
                record = chain.on_send(ProducerRecord(
                    topic, values[i], None if keys is None else keys[i], all_headers[i],
                    partition, None if timestamps is None else timestamps[i], True))
            finally:
                tracing.hand_over(None)
            all_headers[i] = record.headers or None
            self.records.append(record)
        self.done = chain.on_send_many(self.records, message_count=self.count)

    def sent(self, bulk: Any) -> Any:
        """The traced records acknowledged through the chain once every record of the call
        has its outcome; returns ``bulk``."""
        if self.chain.acknowledges or self.done:
            bulk.add_done_callback(functools.partial(
                acknowledged, self.chain, self.records, self.done, index=self.index))
        return bulk

    def failed(self, error: BaseException) -> None:
        """The call raised, nothing was sent: every record failed with ``error``."""
        for record in self.records:
            self.chain.on_send_error(record, error)
        if self.done:
            from ..aio.bulk import ResumedBulkResult
            errors: dict[int, Any] = dict.fromkeys(range(self.count), error)
            self.chain.send_many_done(self.done, ResumedBulkResult(self.topic, self.count,
                                                                   errors, []))


def send_sampled(producer: Any, trace_id: int | None, topic: str, value: Any, key: Any,
                 headers: Any, partition: int | None, timestamp_ms: int | None,
                 on_delivery: Any) -> Any:
    """The send path's up-call for a record the SDK traces (send_path.pxd): through the
    chain, the trace id chosen in C handed to the SDK's id generator for a new trace, and
    then the compiled send without the decision in C."""
    chain = producer._interceptors
    tracing = chain.interceptors[0]
    tracing.hand_over(trace_id)
    try:
        return send_through(chain, producer._send_path.send_untraced, topic, value, key,
                            headers, partition, timestamp_ms, on_delivery)
    finally:
        tracing.hand_over(None)
