"""What a new topic of thousands of partitions costs the broker, with Kafka's default 10 MiB
partition indexes and with 64 KiB ones (why ``benchmarks/broker.py`` sets 64 KiB).

    python -m benchmarks.new_topic_indexes [--partitions 5000] [--records 200000] [--rounds 2]
        [--indexes default,64k] [--clients kengine,confluent]

Two parts:

* **first writes into sparse mapped files**: 300 fresh files of each size, each sized with
  ftruncate and mapped, then 8 bytes written at the start of each; the mean time per file.
  This is what a broker does when it writes a partition's first offset and time index entries.
* **a new topic per run, a fresh broker per run**: one broker started with
  ``log.index.size.max.bytes`` at its default or at 64 KiB, a topic of ``--partitions``
  partitions created and loaded (every partition answers ListOffsets), one record written to
  every partition, then ``--records`` records of 100 B, keys ``str(i % 20000)``, idempotent,
  acks=all, linger 5 ms, batch.size 64 KiB, by kengine ``send()`` and by confluent-kafka
  ``produce()`` in turn, each in a process of its own. Records/s and the client's CPU per
  record are over the measured records (from the first send to the flush returning); the
  broker's CPU is read from /proc over the same window. Every run's topic is counted by
  confluent-kafka (the partitions' end offsets must sum to the records sent), or the command
  fails.
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

KEY_SPACE = 20_000
VALUE_BYTES = 100
SIZES = (65536, 1 << 20, 4 << 20, 10 << 20)
INDEX_SETTINGS = {"default": None, "64k": 65536}   # log.index.size.max.bytes (default: 10 MiB)
CLIENTS = ("kengine", "confluent")
ROOT = Path(__file__).resolve().parents[1]


def first_write_ms(directory: Path, size: int, files: int = 300) -> float:
    """Mean ms to write 8 bytes into a fresh sparse, mapped file of ``size`` bytes."""
    maps = []
    try:
        for i in range(files):
            fd = os.open(directory / f"f{size}-{i}", os.O_CREAT | os.O_RDWR, 0o600)
            os.ftruncate(fd, size)
            maps.append((fd, mmap.mmap(fd, size)))
        t0 = time.perf_counter()
        for _, m in maps:
            m[0:8] = b"\x00\x01\x02\x03\x04\x05\x06\x07"
        return (time.perf_counter() - t0) / files * 1000
    finally:
        for fd, m in maps:
            m.close()
            os.close(fd)
        for i in range(files):
            (directory / f"f{size}-{i}").unlink(missing_ok=True)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_client(client: str, bootstrap: str, topic: str, partitions: int, n: int) -> dict[str, Any]:
    """One run in this (child) process: a record to every partition, then n measured ones."""
    values = [b"%09d" % i + b"x" * (VALUE_BYTES - 9) for i in range(n)]
    keys = [str(i % KEY_SPACE) for i in range(n)]
    if client == "kengine":
        from kengine import Producer

        with Producer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                      linger_ms=5, batch_size=65536) as p:
            for q in range(partitions):
                p.send(topic, b"w", partition=q)
            p.flush()
            cpu, t0 = _cpu_s(), time.perf_counter()
            for i in range(n):
                p.send(topic, values[i], key=keys[i])
            p.flush()
            wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
    else:
        from confluent_kafka import Producer as ConfluentProducer

        c = ConfluentProducer({"bootstrap.servers": bootstrap, "acks": "all",
                               "enable.idempotence": True, "linger.ms": 5,
                               "batch.size": 65536, "partitioner": "murmur2_random",
                               "log_level": 3})
        for q in range(partitions):
            c.produce(topic, b"w", partition=q)
        c.flush()
        cpu, t0 = _cpu_s(), time.perf_counter()
        for i in range(n):
            while True:
                try:
                    c.produce(topic, values[i], key=keys[i])
                    break
                except BufferError:
                    c.poll(0.01)
        if c.flush(300) != 0:
            raise RuntimeError("confluent-kafka: records left after flush")
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "started": t0}


def _end_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4().hex}",
                         "log_level": 3})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30,
                                                  cached=False)[1] for p in range(partitions))
    finally:
        consumer.close()


def one_run(index_bytes: int | None, client: str, partitions: int, records: int,
            work: Path) -> dict[str, Any]:
    from confluent_kafka import Consumer, TopicPartition

    from benchmarks.broker import process_cpu_s, wait_partitions_loaded
    from kengine.localkafka import KafkaCluster

    config: dict[str, Any] = {} if index_bytes is None else \
        {"log.index.size.max.bytes": index_bytes}
    with KafkaCluster(1, work / f"kafka-{uuid.uuid4().hex[:6]}", broker_config=config) as cluster:
        topic = f"new-{uuid.uuid4().hex[:8]}"
        cluster.create_topic(topic, partitions, timeout=300)
        waiter = Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                           "group.id": f"wait-{uuid.uuid4().hex}", "log_level": 0})
        try:
            wait_partitions_loaded(waiter, [TopicPartition(topic, p) for p in range(partitions)],
                                   topic, timeout=300)
        finally:
            waiter.close()
        (broker,) = cluster.pids().values()
        broker_cpu = process_cpu_s(broker)
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.new_topic_indexes", "--client", client,
             "--bootstrap", cluster.bootstrap_servers, "--topic", topic,
             "--partitions", str(partitions), "--records", str(records)],
            capture_output=True, text=True, timeout=1800, cwd=ROOT)
        if child.returncode != 0:
            raise RuntimeError(f"{client} run failed: {child.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
        result["broker_cpu_s"] = process_cpu_s(broker) - broker_cpu
        counted = _end_offsets(cluster.bootstrap_servers, topic, partitions)
    expected = records + partitions
    if counted != expected:
        raise RuntimeError(f"{client}: the topic holds {counted:,} records, {expected:,} were "
                           "sent")
    result.update(client=client, records=records, counted=counted,
                  records_per_s=records / result["wall_s"],
                  cpu_us_per_record=1e6 * result["cpu_s"] / records)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.new_topic_indexes")
    ap.add_argument("--partitions", type=int, default=5000)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--indexes", default=",".join(INDEX_SETTINGS),
                    help="broker index sizes to run, of: default (10 MiB), 64k")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="of: kengine, confluent")
    ap.add_argument("--json", type=Path, help="write every run here")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:   # child process: one run, its result as the last line
        print(json.dumps(run_client(args.client, args.bootstrap, args.topic, args.partitions,
                                    args.records)))
        return 0

    settings = [x for x in args.indexes.split(",") if x]
    clients = [x for x in args.clients.split(",") if x]
    unknown = sorted(set(settings) - set(INDEX_SETTINGS)) + sorted(set(clients) - set(CLIENTS))
    if unknown:
        ap.error(f"unknown --indexes or --clients value(s): {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="kengine-index-bench-", dir="/tmp") as tmp:
        work = Path(tmp)
        print("first write into a fresh sparse mapped file (mean of 300 files):", flush=True)
        for size in SIZES:
            print(f"   {size // 1024:>6} KiB: {first_write_ms(work, size):.3f} ms", flush=True)
        runs: list[dict[str, Any]] = []
        for round_index in range(args.rounds):
            for label in settings:
                for client in clients if round_index % 2 == 0 else clients[::-1]:
                    r = one_run(INDEX_SETTINGS[label], client, args.partitions, args.records,
                                work)
                    r.update(indexes=label, round=round_index + 1)
                    runs.append(r)
                    if args.json is not None:
                        args.json.write_text(json.dumps(runs, indent=1))
                    print(f"round {round_index + 1}, indexes {label}, {client}: "
                          f"{r['records_per_s']:,.0f} records/s, {r['cpu_us_per_record']:.2f} "
                          f"us CPU/record, broker CPU {r['broker_cpu_s']:.0f} s, counted "
                          f"{r['counted']:,}", flush=True)
    print()
    print("| partition indexes | client | records/s (median) | client CPU µs/record | "
          "broker CPU s |")
    print("|---|---|---:|---:|---:|")
    for label in settings:
        for client in clients:
            mine = [r for r in runs if r["indexes"] == label and r["client"] == client]
            print(f"| {label} | {client} | "
                  f"{statistics.median(r['records_per_s'] for r in mine):,.0f} | "
                  f"{statistics.median(r['cpu_us_per_record'] for r in mine):.2f} | "
                  f"{statistics.median(r['broker_cpu_s'] for r in mine):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
