"""Reruns the shapes on which the idempotent producer once lost acknowledged records (100 and
1,000 partitions, no broker fault), several rounds each, and prints the table: records sent,
futures that succeeded, records read back (confluent-kafka), acknowledged records missing,
records in the topic twice, acknowledged at a wrong offset, sequence errors logged, and time.
confluent-kafka runs the one-broker shapes too, in the same run.

    python -m benchmarks.idempotence_at_scale [--rounds 3] [--only 3brokers,1broker]

It starts its own clusters (three brokers, RF 3, min.insync.replicas=2; then one broker) with
kengine.localkafka, creates a fresh topic per row and round, and deletes it afterwards.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kengine import Producer
from kengine.localkafka import KafkaCluster
from tests.support.readback import read_all


@dataclass(frozen=True)
class Row:
    label: str
    partitions: int
    records: int
    keys: int
    settings: dict[str, Any] = field(default_factory=dict)


THREE_BROKERS = [
    Row("3 brokers, 100 partitions", 100, 300_000, 500),
    Row("3 brokers, 1,000 partitions", 1_000, 300_000, 500),
]
ONE_BROKER = [
    Row("1 broker, 100 partitions, batch.size 65536", 100, 500_000, 1000,
        {"batch.size": 65536, "delivery.timeout.ms": 40000}),
    Row("1 broker, 100 partitions", 100, 500_000, 1000, {"delivery.timeout.ms": 40000}),
    Row("1 broker, 100 partitions, max.in.flight 1", 100, 500_000, 1000,
        {"delivery.timeout.ms": 40000, "max.in.flight.requests.per.connection": 1}),
    Row("1 broker, 100 partitions, enable.idempotence=false", 100, 500_000, 1000,
        {"delivery.timeout.ms": 40000, "enable.idempotence": False}),
    Row("1 broker, 6 partitions", 6, 500_000, 1000, {"delivery.timeout.ms": 40000}),
]


class _SequenceErrors(logging.Handler):
    """Counts log lines about sequence trouble (the broker refusing a sequence or an epoch)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.name == "kengine.sequences" or "SEQUENCE_NUMBER" in text \
                or "INVALID_PRODUCER_EPOCH" in text:
            self.count += 1


def _value(i: int) -> bytes:
    return b"%09d" % i + b"x" * 91


def run_kengine(cluster: KafkaCluster, topic: str, row: Row) -> dict[str, Any]:
    handler = _SequenceErrors()
    logger = logging.getLogger("kengine")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with Producer({"bootstrap.servers": cluster.bootstrap_servers, **row.settings}) as p:
            started = time.monotonic()
            futures = [p.send(topic, _value(i), key=str(i % row.keys).encode())
                       for i in range(row.records)]
            p.flush()
            elapsed = time.monotonic() - started
    finally:
        logger.removeHandler(handler)
    acked = {}
    failed: Counter[str] = Counter()
    for i, f in enumerate(futures):
        error = f.exception(0)
        if error is None:
            md = f.result(0)
            acked[i] = (md.partition, md.offset)
        else:
            failed[type(error).__name__] += 1
    return _compare(cluster, topic, row, acked, failed, elapsed, handler.count)


def run_confluent(cluster: KafkaCluster, topic: str, row: Row) -> dict[str, Any]:
    from confluent_kafka import Producer as ConfluentProducer

    p = ConfluentProducer({"bootstrap.servers": cluster.bootstrap_servers,
                           "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                           "message.timeout.ms": row.settings.get("delivery.timeout.ms", 120000),
                           "log_level": 3})
    acked: dict[int, tuple[int, int]] = {}
    failed: Counter[str] = Counter()

    def report(i: int) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                acked[i] = (msg.partition(), msg.offset())
            else:
                failed[err.name()] += 1
        return on_delivery

    started = time.monotonic()
    for i in range(row.records):
        while True:
            try:
                p.produce(topic, _value(i), key=str(i % row.keys).encode(), on_delivery=report(i))
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush()
    elapsed = time.monotonic() - started
    return _compare(cluster, topic, row, acked, failed, elapsed, 0)


def _compare(cluster: KafkaCluster, topic: str, row: Row, acked: dict[int, tuple[int, int]],
             failed: Counter[str], elapsed: float, sequence_errors: int) -> dict[str, Any]:
    where: dict[int, list[tuple[int, int]]] = {}
    records = read_all(cluster.bootstrap_servers, topic, timeout=600)
    for r in records:
        where.setdefault(int(r.value[:9]), []).append((r.partition, r.offset))
    return {
        "sent": row.records, "succeeded": len(acked), "failed": dict(failed),
        "in_topic": len(records),
        "missing": sum(1 for i in acked if i not in where),
        "twice": sum(1 for w in where.values() if len(w) > 1),
        "wrong_offset": sum(1 for i, at in acked.items() if i in where and where[i] != [at]),
        "sequence_errors": sequence_errors, "seconds": elapsed,
    }


def _print(client: str, row: Row, round_index: int, r: dict[str, Any]) -> None:
    failed = sum(r["failed"].values())
    print(f"| {row.label} | {client} | {round_index + 1} | {r['sent']:,} | {r['succeeded']:,} | "
          f"{failed:,} | {r['in_topic']:,} | {r['missing']:,} | {r['twice']:,} | "
          f"{r['wrong_offset']:,} | {r['sequence_errors']:,} | {r['seconds']:.1f} |",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.idempotence_at_scale",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="3brokers,1broker")
    args = ap.parse_args(argv)
    print("| set-up | client | round | sent | succeeded | failed | in the topic | acknowledged "
          "missing | in twice | wrong offset | sequence errors logged | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    bad = 0
    for layout, brokers, rows in (("3brokers", 3, THREE_BROKERS), ("1broker", 1, ONE_BROKER)):
        if layout not in args.only.split(","):
            continue
        config = {"min.insync.replicas": 2} if brokers == 3 else None
        with tempfile.TemporaryDirectory(prefix="kengine-idem-scale-") as work, \
                KafkaCluster(brokers, Path(work), broker_config=config) as cluster:
            for row in rows:
                clients = [("kengine", run_kengine)]
                if brokers == 1 and row.settings.get("enable.idempotence", True):
                    clients.append(("confluent-kafka", run_confluent))
                for round_index in range(args.rounds):
                    for name, run in clients:
                        topic = f"idem-scale-{uuid.uuid4().hex[:8]}"
                        cluster.create_topic(topic, row.partitions, timeout=300)
                        try:
                            result = run(cluster, topic, row)
                        finally:
                            cluster.delete_topic(topic)
                        _print(name, row, round_index, result)
                        bad += result["missing"] + result["twice"] + result["wrong_offset"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
