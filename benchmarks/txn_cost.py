"""What one transaction costs with transactions v2 (KIP-890) and v1, on the three-broker cluster.

    python -m benchmarks.txn_cost [--rounds 2] [--transactions 40]

The ``eos`` phase of ``python -m benchmarks`` compares kengine (v2) with confluent-kafka (v1, the
only one librdkafka speaks) at 1,000 records per transaction. This script separates the fixed
cost of a transaction from the records in it, and adds Kafka's own Java producer, which uses v2
against Kafka 4 brokers as kengine does:

* kengine ``send_many()`` and confluent-kafka ``produce()``: ``--transactions`` transactions of
  100 and of 1,000 records, one commit each;
* Java ``ProducerPerformance --transaction-duration-ms 1``: it commits as soon as a transaction
  is 1 ms old, so its transactions hold whatever it sent meanwhile (a few hundred records).

Reported: wall-clock ms per transaction (begin to commit returned) and records/s. Every topic is
read back with ``isolation.level=read_committed`` (every record committed, and one marker per
transaction and partition) before its figure is printed. Clients run in turn, round after round.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer as ConfluentProducer

from benchmarks.broker import BenchKafka
from benchmarks.plan import LAYOUTS
from benchmarks.workload import keys, payload_pool, transaction_markers, write_payload_file
from kengine import Producer
from kengine.localkafka import ensure_kafka

_COMMON = {"linger.ms": 5, "batch.size": 65536, "acks": "all"}


def _kengine(bootstrap: str, topic: str, per_txn: int, transactions: int, tid: str) -> float:
    pool, ks = payload_pool(100), keys()
    values = [pool[i % len(pool)] for i in range(per_txn)]
    record_keys = [ks[i % len(ks)] for i in range(per_txn)]
    with Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, **_COMMON}) as p:
        p.init_transactions()
        started = time.perf_counter()
        for _ in range(transactions):
            p.begin_transaction()
            p.send_many(topic, values, keys=record_keys)
            p.commit_transaction()
        return time.perf_counter() - started


def _confluent(bootstrap: str, topic: str, per_txn: int, transactions: int, tid: str) -> float:
    pool, ks = payload_pool(100), keys()
    p = ConfluentProducer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                           "log_level": 4, **_COMMON})
    p.init_transactions()
    started = time.perf_counter()
    for _ in range(transactions):
        p.begin_transaction()
        for i in range(per_txn):
            p.produce(topic, pool[i % len(pool)], ks[i % len(ks)])
            p.poll(0)
        p.commit_transaction()
    elapsed = time.perf_counter() - started
    p.flush()
    return elapsed


def _java(bootstrap: str, topic: str, records: int, tid: str, payload: Path) -> float:
    dist = ensure_kafka()
    command = [dist.java, "-Xmx256M", "-cp", dist.classpath,
               "org.apache.kafka.tools.ProducerPerformance", "--bootstrap-server", bootstrap,
               "--topic", topic, "--num-records", str(records), "--payload-file", str(payload),
               "--key-distribution", "range", "--record-key-range", "1000",
               "--throughput", "-1", "--transactional-id", tid, "--transaction-duration-ms", "1",
               "--command-property", *(f"{k}={v}" for k, v in _COMMON.items())]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"ProducerPerformance failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    # includes the JVM's start (about a second), which the per-transaction figure carries
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--transactions", type=int, default=40)
    args = ap.parse_args()
    layout = LAYOUTS["cluster3"]
    lanes = [("kengine send_many() v2", 100), ("kengine send_many() v2", 1000),
             ("confluent-kafka produce() v1", 100), ("confluent-kafka produce() v1", 1000),
             ("Java ProducerPerformance v2", 0)]
    seen: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with BenchKafka(layout) as kafka, tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "payload.txt"
        write_payload_file(payload, payload_pool(100))
        for r in range(args.rounds):
            for k in range(len(lanes)):
                name, per_txn = lanes[(k + r) % len(lanes)]
                topic = kafka.fresh_topic("txncost")
                tid = f"txncost-{topic}"
                if per_txn:
                    records = per_txn * args.transactions
                    run = _kengine if name.startswith("kengine") else _confluent
                    elapsed = run(kafka.bootstrap_servers, topic, per_txn, args.transactions, tid)
                    markers = args.transactions * transaction_markers(per_txn, per_txn,
                                                                      layout.partitions)
                else:
                    records, markers = 20_000, 0
                    elapsed = _java(kafka.bootstrap_servers, topic, records, tid, payload)
                check = kafka.verify(topic, records, 100, expected_markers=markers)
                if check.counted != records:
                    raise SystemExit(f"{name}: {check.counted} of {records} records committed")
                control = check.control_records or 0
                if per_txn and control != markers:
                    raise SystemExit(f"{name}: {control} markers, expected {markers}")
                # Java: keys cycle through 1,000, so each transaction writes to all partitions
                transactions = args.transactions if per_txn else control / layout.partitions
                seen.setdefault((name, per_txn), []).append(
                    (elapsed * 1000 / transactions, records / transactions, records / elapsed))
                kafka.delete_topic(topic)
                print(f"round {r + 1} {name} {per_txn or '~'}/txn: "
                      f"{elapsed * 1000 / transactions:.1f} ms per transaction, "
                      f"{records / elapsed:,.0f} records/s", flush=True)
    print("\n| client | records per transaction | ms per transaction | records/s |")
    print("|---|---:|---:|---:|")
    for (name, _), figures in seen.items():
        ms, per, rate = (statistics.median(f[i] for f in figures) for i in range(3))
        print(f"| {name} | {per:,.0f} | {ms:.1f} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
