"""TracingInterceptor: one OpenTelemetry span per record, its context in the record's headers.

It follows OpenTelemetry's messaging semantic conventions for Kafka (semantic-conventions
1.44, whose messaging conventions are still "Development"):

* ``send()``: a ``send {topic}`` span of kind PRODUCER per record, the record's creation
  context; attributes ``messaging.system`` = ``kafka``, ``messaging.operation.name`` =
  ``send``, ``messaging.operation.type`` = ``send``, ``messaging.destination.name``,
  ``messaging.client.id`` and, when the caller chose it, ``messaging.destination.partition.id``
  given when the span starts (samplers see them); ``messaging.kafka.message.key`` (str keys,
  or UTF-8 bytes keys), ``messaging.kafka.message.tombstone`` (null value) once sampled.
* ``send_many()``: batch publishing with "Create" spans, as the conventions describe for
  batch APIs: a ``create {topic}`` span of kind PRODUCER per record (operation ``create``),
  injected into that record; and one ``send {topic}`` span of kind CLIENT for the call, with
  ``messaging.batch.message_count`` and a link to each sampled record's span.
* The span of a record ends when its outcome is known: ``messaging.destination.partition.id``
  and ``messaging.kafka.offset`` when it was written, else status ERROR, ``error.type`` (the
  Kafka error name, such as ``NOT_ENOUGH_REPLICAS``, else the exception's class name) and the
  exception recorded. The call's span ends when every record of it has its outcome.
* The context is injected as ``traceparent`` (and ``tracestate`` when it has entries) with the
  W3C Trace Context propagator, or the ``propagator`` given.

Sampling: the tracer's sampler decides when the span starts. A record it does not sample gets
a non-recording span, whose context (sampled flag off) still goes into ``traceparent`` so the
consumers keep the decision; nothing else is done for it, and its acknowledgement costs one
dictionary lookup. When this interceptor is the producer's only one and the SDK's sampler is
one of those kengine/otel/fast_sampling.py names, send() makes that decision in C and writes an
unsampled record's ``traceparent`` itself, with no Python call: only sampled records come here.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.textmap import Setter, TextMapPropagator
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..interceptors.base import ProducerRecord
from ..version import __version__

__all__ = ["SEMCONV_VERSION", "TracingInterceptor"]

_log = logging.getLogger("kengine.otel")

#: The semantic-conventions version whose names the spans use.
SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"


class _Setter(Setter[list[tuple[str, Any]]]):
    """The propagator writes into the record's header list."""

    def set(self, carrier: list[tuple[str, Any]], key: str, value: str) -> None:
        for i, (k, _) in enumerate(carrier):   # one traceparent per record: replace ours
            if k == key:
                carrier[i] = (key, value.encode())
                return
        carrier.append((key, value.encode()))


_SETTER = _Setter()


def error_type(error: BaseException) -> str:
    """``error.type``: the Kafka error name for broker errors, else the class name."""
    name = getattr(type(error), "name", None)
    return name if isinstance(name, str) else type(error).__qualname__


def key_attribute(key: Any) -> str | None:
    """``messaging.kafka.message.key``: a str key, or a bytes key that is UTF-8 text (the
    conventions: keys with no unambiguous string form are left out)."""
    if isinstance(key, str):
        return key
    if isinstance(key, (bytes, bytearray)):
        try:
            return bytes(key).decode()
        except UnicodeDecodeError:
            return None
    return None


class TracingInterceptor:
    """The ``otel`` interceptor. ``TracingInterceptor(tracer_provider=..., propagator=...)``
    for a provider other than the global one (``opentelemetry.trace.set_tracer_provider``)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None,
                 propagator: TextMapPropagator | None = None) -> None:
        self._tracer = trace.get_tracer("kengine", __version__, tracer_provider,
                                        schema_url=SCHEMA_URL)
        self._propagator = propagator or TraceContextTextMapPropagator()
        self._w3c = type(self._propagator) is TraceContextTextMapPropagator
        self._client_id = ""
        #: (topic, batched) -> the attributes every span of it starts with (user threads;
        #: a dict write is atomic under the GIL, and the dicts are never changed once made)
        self._start_attributes: dict[tuple[str, bool], dict[str, Any]] = {}
        #: whether send() decides sampling in C, and if not why (set by compiled_sampling(),
        #: at the producer's construction; read by users)
        self.sampling_in_c = False
        self.sampling_in_c_reason = "not asked yet: the interceptor is not a producer's"

    def compiled_sampling(self) -> Any:
        """A TraceStamp with which the producer's send() decides sampling in C (see
        kengine/otel/fast_sampling.py), or None, the reason logged once (logger
        ``kengine.otel``, INFO) and kept in ``sampling_in_c_reason``."""
        cls = type(self)
        try:
            from .fast_sampling import trace_stamp_for
        except ImportError as e:
            stamp, why = None, f"the OpenTelemetry SDK is not installed ({e})"
        else:
            if (cls.on_send is not TracingInterceptor.on_send
                    or cls.on_acknowledgement is not TracingInterceptor.on_acknowledgement):
                stamp, why = None, (f"{cls.__qualname__} overrides on_send or "
                                    f"on_acknowledgement")
            else:
                stamp, why = trace_stamp_for(self._tracer, self._propagator)
        self.sampling_in_c = stamp is not None
        self.sampling_in_c_reason = why
        if stamp is None:
            _log.info("kengine.otel: send() decides OpenTelemetry sampling in Python, about "
                      "10 us per record, because %s. Records that are not sampled cost almost "
                      "nothing when the tracer provider is the SDK's, set before the producer "
                      "is made, with a ParentBased, TraceIdRatioBased, ALWAYS_ON or ALWAYS_OFF "
                      "sampler and the W3C propagator.", why)
        return stamp

    def hand_over(self, trace_id: int | None) -> None:
        """The trace id send() drew in C for a sampled record's new trace: the next span this
        thread starts gets it, so that the SDK's sampler judges the same id."""
        ids = getattr(self._tracer, "id_generator", None)
        hand = getattr(ids, "hand_over", None)
        if hand is not None:
            hand(trace_id)

    def configure(self, settings: Mapping[str, Any]) -> None:
        self._client_id = str(settings.get("client.id") or "")

    def _attributes(self, topic: str, batched: bool) -> dict[str, Any]:
        found = self._start_attributes.get((topic, batched))
        if found is None:
            operation = "create" if batched else "send"
            found = {
                "messaging.system": "kafka",
                "messaging.operation.name": operation,
                "messaging.operation.type": operation,
                "messaging.destination.name": topic,
                "messaging.client.id": self._client_id,
            }
            self._start_attributes[(topic, batched)] = found
        return found

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        attributes = self._attributes(record.topic, record.batched)
        if isinstance(record.partition, int):
            attributes = {**attributes,
                          "messaging.destination.partition.id": str(record.partition)}
        name = ("create " if record.batched else "send ") + record.topic
        span = self._tracer.start_span(name, kind=SpanKind.PRODUCER, attributes=attributes)
        if span.is_recording():
            key = key_attribute(record.key)
            if key is not None:
                span.set_attribute("messaging.kafka.message.key", key)
            if record.value is None:
                span.set_attribute("messaging.kafka.message.tombstone", True)
            if record.state is None:
                record.state = {}
            record.state[self] = span
        elif self._w3c:
            # not sampled: the decision still travels (sampled flag off), written as the W3C
            # propagator writes it, without building a Context for it
            ctx = span.get_span_context()
            if ctx.is_valid and not ctx.trace_state:
                _SETTER.set(record.headers, "traceparent",   # replaces a caller's one
                            f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}")
                return record
        self._propagator.inject(record.headers, context=trace.set_span_in_context(span),
                                setter=_SETTER)
        return record

    def on_acknowledgement(self, metadata: Any, error: BaseException | None,
                           record: ProducerRecord | None = None) -> None:
        state = record.state if record is not None else None
        span = state.pop(self, None) if state else None
        if span is None:
            return   # not sampled, or not a record this interceptor saw
        if error is None:
            span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
            if metadata.offset >= 0:
                span.set_attribute("messaging.kafka.offset", metadata.offset)
        else:
            end_with_error(span, error, metadata.partition)
        span.end()

    def on_send_many(self, records: list[ProducerRecord],
                     message_count: int | None = None) -> Any:
        """The call's ``send`` span. ``message_count``: the call's record count when
        ``records`` are only its sampled ones (send_many() decided in C)."""
        if not records:
            return None
        topic = records[0].topic
        links = []
        for r in records:
            span = r.state.get(self) if r.state else None
            if span is not None:
                links.append(Link(span.get_span_context()))
        attributes = {**self._attributes(topic, False),
                      "messaging.batch.message_count": (len(records) if message_count is None
                                                        else message_count)}
        if any(r.topic != topic for r in records):
            del attributes["messaging.destination.name"]   # it does not apply to all of them
        call = self._tracer.start_span(f"send {topic}", kind=SpanKind.CLIENT,
                                       attributes=attributes, links=links)
        if not call.is_recording():
            return None

        def done(result: Any) -> None:
            if result.errors:
                first = next(iter(result.errors.values()))
                call.set_status(Status(StatusCode.ERROR, f"{len(result.errors)} of "
                                       f"{result.record_count} records failed: {first}"))
                call.set_attribute("error.type", error_type(first))
            call.end()
        return done


def end_with_error(span: Any, error: BaseException, partition: int) -> None:
    if partition >= 0:
        span.set_attribute("messaging.destination.partition.id", str(partition))
    span.set_attribute("error.type", error_type(error))
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, str(error)))


