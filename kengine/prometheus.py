"""Producer metrics for Prometheus (the optional extra:
``pip install 'kengine-kafka[prometheus]'``).

    from prometheus_client import start_http_server
    from kengine.prometheus import register

    register(producer)           # into prometheus_client's default registry
    start_http_server(9464)

Every metric of ``Producer.metrics()`` becomes ``kengine_producer_`` + its Java name with
``_`` for ``-``, labelled ``client_id``; per-topic ones are ``kengine_producer_topic_*`` with a
``topic`` label, per-broker ones ``kengine_producer_node_*`` with ``node_id``. ``*-total``
metrics are counters (exposed with Prometheus' ``_total`` suffix), the rest gauges; the
partitioner's numeric metrics, when it reports any, are ``kengine_producer_partitioner_*``.
Each scrape takes one snapshot per producer, so scraping costs nothing between scrapes.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as e:  # pragma: no cover - exercised only without the extra installed
    raise ImportError("kengine.prometheus needs prometheus-client: pip install "
                      "'kengine-kafka[prometheus]'") from e

from .metrics import CLIENT, METRICS, NODE, TOPIC, MetricInfo

__all__ = ["ProducerCollector", "register"]

_PREFIX = {CLIENT: "kengine_producer_", TOPIC: "kengine_producer_topic_",
           NODE: "kengine_producer_node_"}
_LABELS = {CLIENT: ["client_id"], TOPIC: ["client_id", "topic"], NODE: ["client_id", "node_id"]}


class _HasMetrics(Protocol):
    def metrics(self) -> dict[str, Any]: ...


class ProducerCollector(Collector):
    """Exposes the metrics of the producers added to it (``add`` / ``remove``)."""

    def __init__(self, producers: Iterable[_HasMetrics] = ()) -> None:
        self._lock = threading.Lock()
        self._producers: list[_HasMetrics] = list(producers)   # under _lock

    def add(self, producer: _HasMetrics) -> None:
        with self._lock:
            if producer not in self._producers:
                self._producers.append(producer)

    def remove(self, producer: _HasMetrics) -> None:
        with self._lock:
            if producer in self._producers:
                self._producers.remove(producer)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            producers = list(self._producers)
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for producer in producers:
            snapshot = producer.metrics()
            client_id = str(snapshot.get("client-id", ""))
            for name, value in snapshot.items():
                info = METRICS.get((CLIENT, name))
                if info is not None:
                    self._sample(families, CLIENT, name, info, [client_id], value)
            for topic, values in snapshot.get("topics", {}).items():
                for name, value in values.items():
                    info = METRICS.get((TOPIC, name))
                    if info is not None:
                        self._sample(families, TOPIC, name, info, [client_id, topic], value)
            for node, values in snapshot.get("brokers", {}).items():
                for name, value in values.items():
                    info = METRICS.get((NODE, name))
                    if info is not None:
                        self._sample(families, NODE, name, info, [client_id, str(node)], value)
            partitioner = snapshot.get("partitioner")
            if isinstance(partitioner, Mapping):
                for path, value in _numeric_leaves(partitioner, ()):
                    family = "kengine_producer_partitioner_" + "_".join(_snake(p) for p in path)
                    if family not in families:
                        families[family] = GaugeMetricFamily(
                            family, f"partitioner metric {'/'.join(path)}",
                            labels=["client_id"])
                    families[family].add_metric([client_id], float(value))
        yield from families.values()

    @staticmethod
    def _sample(families: dict[str, GaugeMetricFamily | CounterMetricFamily], group: str,
                name: str, info: MetricInfo, labels: list[str], value: Any) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        base = _PREFIX[group] + _snake(name)
        if info.cumulative:
            base = base.removesuffix("_total")
        family = families.get(base)
        if family is None:
            kind = CounterMetricFamily if info.cumulative else GaugeMetricFamily
            family = families[base] = kind(base, info.description, labels=_LABELS[group])
        family.add_metric(labels, float(value))


def register(producer: _HasMetrics, registry: CollectorRegistry = REGISTRY) -> ProducerCollector:
    """Exposes ``producer``'s metrics through ``registry`` (prometheus_client's default one
    unless given) and returns the collector: ``add`` further producers to it (registering a
    second collector raises prometheus_client's duplicate-timeseries error), or pass it to
    ``registry.unregister``."""
    collector = ProducerCollector([producer])
    registry.register(collector)
    return collector


def _snake(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def _numeric_leaves(tree: Mapping[Any, Any],
                    path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    for key, value in tree.items():
        here = (*path, str(key))
        if isinstance(value, Mapping):
            yield from _numeric_leaves(value, here)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield here, value
