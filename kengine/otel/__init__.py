"""OpenTelemetry for kengine (extra ``kengine-kafka[otel]``): tracing and metrics.

* :class:`TracingInterceptor` (``interceptors=["otel"]``): a span per record following the
  messaging semantic conventions for Kafka, its context injected into the record's headers
  (``traceparent``), ended at the record's acknowledgement.
* :class:`ProducerInstruments` (``kengine.otel.metrics``): the producer's Java-named metrics as
  OpenTelemetry instruments of the meter ``kengine``.
"""
from __future__ import annotations

from .tracing import SEMCONV_VERSION, TracingInterceptor

__all__ = ["SEMCONV_VERSION", "TracingInterceptor"]
