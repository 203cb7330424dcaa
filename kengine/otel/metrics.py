"""ProducerInstruments: a producer's metrics as OpenTelemetry instruments of the meter
``kengine``, beside the Prometheus collector (``kengine.prometheus``).

    from kengine.otel.metrics import ProducerInstruments
    ProducerInstruments(producer)                      # the global MeterProvider
    ProducerInstruments(producer, meter_provider=mp)   # or yours

Every metric of ``kengine.metrics.METRICS`` becomes an asynchronous instrument named
``kafka.producer.<Java name>`` (``kafka.producer.record-send-rate``...): the ``*-total`` ones
(``MetricInfo.cumulative``) observable counters, the others observable gauges, with the
metric's description and the attribute ``client.id``; the per-topic ones add ``topic``, the
per-broker ones ``node.id``. Nothing is counted twice: each collection reads one
``producer.metrics()`` snapshot (taken by the first instrument's callback and reused by the
others of the same collection), the values the producer keeps anyway, so the instruments cost
nothing between collections. NaN values (an average with nothing in its window) are skipped.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from ..metrics import CLIENT, METRICS, NODE, TOPIC
from ..version import __version__

__all__ = ["PREFIX", "ProducerInstruments"]

#: What instrument names start with, before the metric's Java name.
PREFIX = "kafka.producer."
# one collection's callbacks run back to back: a snapshot younger than this is theirs
_SNAPSHOT_REUSE_S = 0.5


class ProducerInstruments:
    """The instruments of one producer (see the module's text). ``close()`` (or the
    producer's end) stops observing it: the callbacks then report nothing."""

    def __init__(self, producer: Any, meter_provider: metrics.MeterProvider | None = None
                 ) -> None:
        self._producer: Any = producer
        self._lock = threading.Lock()   # collections may run on several exporter threads
        self._snapshot: dict[str, Any] | None = None
        self._taken = 0.0
        meter = metrics.get_meter("kengine", __version__, meter_provider)
        self.instruments: list[Any] = []
        for (group, name), info in METRICS.items():
            callback = self._callback(group, name)
            make = meter.create_observable_counter if info.cumulative \
                else meter.create_observable_gauge
            self.instruments.append(make(PREFIX + name if group == CLIENT
                                         else f"{PREFIX}{_scope(group)}.{name}",
                                         callbacks=[callback], description=info.description))

    def close(self) -> None:
        self._producer = None

    def _metrics(self) -> dict[str, Any] | None:
        producer = self._producer
        if producer is None:
            return None
        with self._lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._taken > _SNAPSHOT_REUSE_S:
                self._snapshot, self._taken = producer.metrics(), now
            return self._snapshot

    def _callback(self, group: str, name: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            snapshot = self._metrics()
            if snapshot is None:
                return []
            client = {"client.id": snapshot["client-id"]}
            if group == CLIENT:
                rows: Iterable[tuple[dict[str, Any], Any]] = [(client, snapshot.get(name))]
            elif group == TOPIC:
                rows = [({**client, "topic": topic}, values.get(name))
                        for topic, values in snapshot["topics"].items()]
            else:
                rows = [({**client, "node.id": node}, values.get(name))
                        for node, values in snapshot["brokers"].items()]
            return [Observation(value, attributes) for attributes, value in rows
                    if isinstance(value, (int, float)) and not math.isnan(value)]
        return observe


def _scope(group: str) -> str:
    return {TOPIC: "topic", NODE: "node"}[group]
