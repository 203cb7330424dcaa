"""The sampling decision of the ``otel`` interceptor made in C, for send().

With OpenTelemetry's Python SDK, asking whether a record is sampled costs a
``Tracer.start_span()`` call (trace id, sampler, context look-ups, a ``NonRecordingSpan``): about
10 µs a record even when 99 of 100 are dropped. For the samplers whose decision depends only on
the parent span's sampled flag and the trace id (``ParentBased`` with its default delegates,
``TraceIdRatioBased``, ``ALWAYS_ON``, ``ALWAYS_OFF``, and so ``parentbased_traceidratio``, the
SDK's default family), the decision is made in C by ``kengine_ext.TraceStamp``, which also
writes an unsampled record's ``traceparent`` as the W3C propagator would. A sampled record goes
to the SDK through the interceptor, and a new trace keeps the id the C code drew for it
(``HandOffIds``), so the SDK's sampler, judging the same id, agrees.

``trace_stamp_for()`` checks once, at the producer's construction, that the SDK objects are the
ones whose behaviour the C code repeats; for anything else (a custom sampler or id generator,
another propagator, the SDK's own span metrics on, a proxy tracer because no provider was set
yet) it returns None with the reason, and every record takes the Python path as before.
"""
from __future__ import annotations

import threading
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace

# (an ImportError without the SDK: TracingInterceptor then decides in Python)
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import sampling
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kengine_ext import TraceStamp

__all__ = ["HandOffIds", "trace_stamp_for"]

# TraceStamp's root modes (kengine_ext/trace_stamp.pxd)
_NEVER, _ALWAYS, _RATIO = 0, 1, 2


class HandOffIds(IdGenerator):
    """The SDK tracer's id generator while the C decision is on: the trace id TraceStamp drew
    for a sampled record's new trace, handed over on the thread that sends it, else the
    generator it wraps."""

    def __init__(self, ids: Any) -> None:
        self.wrapped = ids
        self._next = threading.local()

    def hand_over(self, trace_id: int | None) -> None:
        self._next.trace_id = trace_id

    def generate_trace_id(self) -> int:
        trace_id = getattr(self._next, "trace_id", None)
        if trace_id is not None:
            self._next.trace_id = None
            return int(trace_id)
        return int(self.wrapped.generate_trace_id())

    def generate_span_id(self) -> int:
        return int(self.wrapped.generate_span_id())

    def is_trace_id_random(self) -> bool:
        return bool(self.wrapped.is_trace_id_random())


def _root_mode(sampler: Any) -> tuple[int, int] | None:
    """(mode, bound) of a sampler that judges a trace id alone, else None."""
    if sampler is sampling.ALWAYS_ON:
        return _ALWAYS, 0
    if sampler is sampling.ALWAYS_OFF:
        return _NEVER, 0
    if type(sampler) is sampling.TraceIdRatioBased:
        return _RATIO, int(sampler.bound)
    return None


def trace_stamp_for(tracer: Any, propagator: Any) -> tuple[TraceStamp | None, str]:
    """(TraceStamp, "") when send() can decide for ``tracer`` in C, else (None, why not).
    On success the tracer's id generator becomes a HandOffIds around its own."""
    try:
        from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
    except ImportError as e:   # an SDK older than the layout this code was checked with
        return None, f"this OpenTelemetry SDK's internals are not the ones known here ({e})"
    if type(propagator) is not TraceContextTextMapPropagator:
        return None, f"the propagator is {type(propagator).__name__}, not the W3C one"
    if type(tracer) is not sdk_trace.Tracer:
        return None, (f"the tracer is a {type(tracer).__name__}, not the SDK's (set the "
                      f"tracer provider before constructing the producer)")
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ != "ContextVarsRuntimeContext" or var is None:
        return None, "OpenTelemetry's runtime context is not its contextvars one"
    if type(getattr(tracer, "_tracer_metrics", None)) is not NoOpTracerMetrics:
        return None, "the SDK counts spans itself (its internal metrics are on)"
    is_enabled = getattr(tracer, "_is_enabled", None)
    if is_enabled is None or not is_enabled():
        return None, "the tracer is disabled by its configurator"
    ids = getattr(tracer, "id_generator", None)
    if isinstance(ids, HandOffIds):
        ids = ids.wrapped   # another kengine producer's interceptor wrapped it already
    if type(ids) is not RandomIdGenerator:
        return None, f"the id generator is a {type(ids).__name__}, not RandomIdGenerator"
    sampler = tracer.sampler
    parent_based = type(sampler) in (sampling.ParentBased, sampling.ParentBasedTraceIdRatio)
    if parent_based:
        delegates = (getattr(sampler, "_remote_parent_sampled", None),
                     getattr(sampler, "_remote_parent_not_sampled", None),
                     getattr(sampler, "_local_parent_sampled", None),
                     getattr(sampler, "_local_parent_not_sampled", None))
        if delegates != (sampling.ALWAYS_ON, sampling.ALWAYS_OFF,
                         sampling.ALWAYS_ON, sampling.ALWAYS_OFF):
            return None, "the ParentBased sampler has delegates other than its defaults"
        root = _root_mode(getattr(sampler, "_root", None))
    else:
        root = _root_mode(sampler)
    if root is None:
        return None, f"the sampler {sampler.get_description()} is not one decided in C"
    random_flag = int(getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0))
    if not ids.is_trace_id_random():
        random_flag = 0
    span_key = getattr(trace.propagation, "_SPAN_KEY", None)
    if not isinstance(span_key, str):
        return None, "the current span's context key is not where this version expects"
    stamp = TraceStamp(var, span_key, trace.Span, root[0], parent_based, root[1], random_flag)
    tracer.id_generator = (tracer.id_generator if isinstance(tracer.id_generator, HandOffIds)
                           else HandOffIds(ids))
    return stamp, ""
