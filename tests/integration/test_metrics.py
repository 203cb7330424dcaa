"""Producer metrics against known workloads on a real broker, the stats callback, broker
throttling, and the Prometheus collector scraped over HTTP."""
from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from kengine import Producer
from kengine.localkafka import KafkaCluster
from kengine.prometheus import register
from tests.support.kafka_tools import run_tool
from tests.support.readback import read_all
from tests.support.wait import wait_until


def producer(kafka: KafkaCluster, **settings: Any) -> Producer:
    settings.setdefault("enable_idempotence", False)
    return Producer(bootstrap_servers=kafka.bootstrap_servers, **settings)


def test_counts_and_sizes_of_a_known_workload(kafka: KafkaCluster, topic_factory: Any) -> None:
    topic = topic_factory(kafka, partitions=3)
    other = topic_factory(kafka)
    with producer(kafka, batch_size=4096, linger_ms=5, compression_type="lz4") as p:
        for i in range(3000):
            p.send(topic, b"value %d " % i * 10, key=b"%d" % i)
        p.send_many(other, [b"x" * 50] * 500)
        p.flush()
        m = p.metrics()
    # sent once per produce request carrying them, as in Java (retries count again: a topic
    # just created may answer NOT_LEADER once)
    assert m["record-send-total"] == 3500 + m["record-retry-total"]
    assert m["record-error-total"] == 0
    for name, records in ((topic, 3000), (other, 500)):
        per_topic = m["topics"][name]
        assert per_topic["record-send-total"] == records + per_topic["record-retry-total"]
    assert 0 < m["batch-size-avg"] <= m["batch-size-max"] <= 4096
    assert 0 < m["compression-rate-avg"] < 1        # lz4 on repetitive values
    assert m["records-per-request-avg"] > 1
    assert m["request-total"] == sum(b["request-total"] for b in m["brokers"].values())
    assert set(m["brokers"]) == {1}
    assert m["outgoing-byte-total"] == sum(t["byte-total"] for t in m["topics"].values())
    assert 0 <= m["request-latency-p50"] <= m["request-latency-p99"] <= m["request-latency-max"]
    assert m["record-queue-time-max"] >= m["record-queue-time-avg"] >= 0
    assert m["requests-in-flight"] == 0
    assert m["buffer-available-bytes"] == m["buffer-total-bytes"] == 33554432
    assert m["connection-count"] >= 1
    assert m["connection-creation-total"] >= m["connection-count"]
    assert m["incoming-byte-total"] > 0 and m["buffer-exhausted-total"] == 0
    assert m["record-send-rate"] > 0 and m["request-rate"] > 0
    assert len(read_all(kafka.bootstrap_servers, topic)) == 3000


def test_record_error_total_counts_records_the_broker_rejects(kafka: KafkaCluster,
                                                              topic_factory: Any) -> None:
    compacted = topic_factory(kafka, partitions=2, config={"cleanup.policy": "compact"})
    with producer(kafka) as p:
        futures = [p.send(compacted, b"no key %d" % i) for i in range(250)]   # refused
        futures += [p.send(compacted, b"keyed", key=b"k%d" % i) for i in range(40)]
        p.flush()
        m = p.metrics()
    failed = sum(1 for f in futures if f.exception() is not None)
    assert failed >= 250      # a keyed record in a batch with a refused one fails with it
    assert m["record-error-total"] == failed
    assert m["topics"][compacted]["record-error-total"] == failed
    # as in Java, a record counts as sent once per produce request carrying it (a partition
    # that has just been created may answer NOT_LEADER once)
    assert m["record-send-total"] == 290 + m["record-retry-total"]
    assert m["record-error-rate"] > 0


def test_blocked_sends_show_in_bufferpool_wait(kafka: KafkaCluster, topic: str) -> None:
    with producer(kafka, batch_size=16384, buffer_memory=32768, linger_ms=0) as p:
        for _ in range(1000):
            p.send(topic, b"x" * 1000)
        p.flush()
        m = p.metrics()
    assert m["bufferpool-wait-time-ns-total"] > 0
    assert m["bufferpool-wait-ratio"] > 0
    assert m["buffer-total-bytes"] == 32768


def test_stats_callback_runs_on_the_sender_thread_every_interval(kafka: KafkaCluster,
                                                                 topic: str) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    with producer(kafka, statistics_interval_ms=50,
                  stats_callback=lambda s: calls.append((threading.current_thread().name, s))) \
            as p:
        p.send(topic, b"v").result(30)
        wait_until(lambda: any(s["record-send-total"] == 1 for _, s in calls),
                   what="a stats callback that saw the record", timeout=30)
        seen = len(calls)
        wait_until(lambda: len(calls) >= seen + 3, what="three more callbacks", timeout=30)
    assert {name for name, _ in calls} == {f"kengine-sender-{p.config['client.id']}"}


def test_broker_throttling_shows_in_metrics(kafka: KafkaCluster, topic: str) -> None:
    client_id = f"throttled-{time.monotonic_ns()}"
    # a produce quota of 10 KB/s for this client id only, through Kafka's own tool
    run_tool(kafka, "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server",
             kafka.bootstrap_servers, "--alter", "--add-config", "producer_byte_rate=10000",
             "--entity-type", "clients", "--entity-name", client_id, timeout=120, check=True)
    with producer(kafka, client_id=client_id, max_in_flight_requests_per_connection=1) as p:
        deadline = time.monotonic() + 90
        # NaN (no response yet) > 0 is False too; the quota may take a moment to apply
        while not p.metrics()["produce-throttle-time-max"] > 0:
            assert time.monotonic() < deadline, "the broker never throttled the producer"
            for _ in range(20):
                p.send(topic, b"x" * 1000)
            p.flush()
        m = p.metrics()
    assert m["produce-throttle-time-max"] > 0
    assert m["brokers"][1]["produce-throttle-time-max"] == m["produce-throttle-time-max"]


def test_prometheus_collector_scraped_over_http(kafka: KafkaCluster, topic: str) -> None:
    registry = CollectorRegistry()
    with producer(kafka, client_id="scraped") as p:
        for i in range(100):
            p.send(topic, b"v%d" % i)
        p.flush()
        register(p, registry)
        server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        try:
            port = server.server_address[1]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                text = r.read().decode()
        finally:
            server.shutdown()
            server.server_close()
            thread.join(30)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sent,) = families["kengine_producer_record_send"].samples
    assert (sent.name, sent.labels, sent.value) == (
        "kengine_producer_record_send_total", {"client_id": "scraped"}, 100.0)
    assert families["kengine_producer_record_send"].type == "counter"
    assert families["kengine_producer_batch_size_avg"].type == "gauge"
    (per_topic,) = families["kengine_producer_topic_record_send"].samples
    assert per_topic.labels == {"client_id": "scraped", "topic": topic}
    assert per_topic.value == 100.0
    (latency,) = families["kengine_producer_node_request_latency_max"].samples
    assert latency.labels == {"client_id": "scraped", "node_id": "1"} and latency.value >= 0
    assert "kengine_producer_request_latency_p99" in families
    assert len(read_all(kafka.bootstrap_servers, topic)) == 100
